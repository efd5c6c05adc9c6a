"""The container's entrypoint, and the same steps outside containers (tests/operations):

    python -m deploy.entrypoint app       # the web app (Streamlit + our routes)
    python -m deploy.entrypoint worker    # the job worker (`python cli.py worker`)
    python -m deploy.entrypoint migrate   # migrations only, then exit (upgrades: run this first)
    python -m deploy.entrypoint <cli.py command and arguments>

Before the command: every HIKESHI_*_FILE / STREAMLIT_*_FILE variable is read into the variable
without _FILE (Docker secrets are files; a secret never sits in the image or in compose.yaml),
the database is waited for, and the migrations run (on PostgreSQL under an advisory lock, so
two replicas and the worker starting together migrate once), after which the application
role's password is set from HIKESHI_DATABASE_URL (the migrations create the role without one).
HIKESHI_MIGRATE_ON_START=false leaves the migrations to a separate `migrate` run.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, MutableMapping, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SECRET_PREFIXES = ("HIKESHI_", "STREAMLIT_")
# pg_advisory_lock key of the start-up migration: "HIKE" in ASCII
MIGRATION_LOCK = 0x48494B45
DATABASE_WAIT_SECONDS = 60.0


class StartupError(RuntimeError):
    pass


def read_secret_files(environ: MutableMapping[str, str]) -> list[str]:
    """Set NAME from the file named by NAME_FILE, for our and Streamlit's variables. The file's
    content is the value, without its final line end. Returns the names set."""
    loaded = []
    for key in sorted(environ):
        if not key.endswith("_FILE") or not key.startswith(SECRET_PREFIXES):
            continue
        name = key.removesuffix("_FILE")
        if environ.get(name):
            raise StartupError(f"{name} and {key} are both set: keep one")
        try:
            value = Path(environ[key]).read_text(encoding="utf-8")
        except OSError as exc:
            raise StartupError(f"{key}: cannot read {environ[key]} ({exc.strerror})") from exc
        environ[name] = value.removesuffix("\n").removesuffix("\r")
        loaded.append(name)
    return loaded


def wait_for_database(
    url: str, *, seconds: float = DATABASE_WAIT_SECONDS, sleep: Callable[[float], None] = time.sleep
) -> None:
    """Return once the database answers SELECT 1 (a PostgreSQL container takes a few seconds
    after its own start); raise StartupError after `seconds`. SQLite needs only its folder."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url
    from sqlalchemy.pool import NullPool

    from services.db import normalise_url

    url = normalise_url(url)
    if url.startswith("sqlite"):
        path = make_url(url).database
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        return
    engine = create_engine(url, poolclass=NullPool, connect_args={"connect_timeout": 5})
    deadline = time.monotonic() + seconds
    try:
        while True:
            try:
                with engine.connect() as conn:
                    conn.execute(text("SELECT 1"))
                return
            except Exception as exc:
                if time.monotonic() >= deadline:
                    raise StartupError(
                        f"the database did not answer: {type(exc).__name__}"
                    ) from exc
                sleep(1.0)
    finally:
        engine.dispose()


def migrate(owner_url: str, app_url: str) -> None:
    """Migrations to head, once even when several processes start together; then the
    application role's password as HIKESHI_DATABASE_URL has it."""
    import cli

    if not owner_url.startswith("postgresql"):
        cli.migrate()
        return
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url
    from sqlalchemy.pool import NullPool

    from services.db import normalise_url

    engine = create_engine(normalise_url(owner_url), poolclass=NullPool)
    try:
        with engine.connect() as lock:
            lock.execute(text("SELECT pg_advisory_lock(:k)"), {"k": MIGRATION_LOCK})
            lock.commit()
            try:
                cli.migrate()
                app = make_url(normalise_url(app_url))
                if app.password and app.username != make_url(normalise_url(owner_url)).username:
                    _set_role_password(lock, app.username, str(app.password))
            finally:
                lock.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": MIGRATION_LOCK})
                lock.commit()
    finally:
        engine.dispose()


def _set_role_password(conn, role: str | None, password: str) -> None:

    if not role or not role.replace("_", "").isalnum():
        raise StartupError(f"unexpected application role name {role!r}")
    # ALTER ROLE takes no bind parameters: the password goes in as a quoted literal
    quoted = conn.exec_driver_sql("SELECT quote_literal(%s)", (password,)).scalar_one()
    conn.exec_driver_sql(f"ALTER ROLE {role} PASSWORD {quoted}")
    conn.commit()


def command_line(command: str, args: Sequence[str], environ: MutableMapping[str, str]) -> list[str]:
    """What runs after the start-up steps (in place of this process)."""
    python = sys.executable
    if command == "app":
        return [
            python,
            "-m",
            "streamlit",
            "run",
            str(ROOT / "server.py"),
            "--server.address",
            environ.get("HIKESHI_BIND_ADDRESS", "0.0.0.0"),
            "--server.port",
            environ.get("HIKESHI_PORT", "8501"),
            "--server.headless",
            "true",
            *args,
        ]
    if command == "worker":
        return [python, str(ROOT / "cli.py"), "worker", *args]
    return [python, str(ROOT / "cli.py"), command, *args]


def _flag(environ: MutableMapping[str, str], name: str, default: bool) -> bool:
    value = environ.get(name, "").strip().lower()
    return default if not value else value in ("1", "true", "yes", "on")


def main(argv: Sequence[str] | None = None, environ: MutableMapping[str, str] = os.environ) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command, args = (argv[0], argv[1:]) if argv else ("app", [])
    try:
        loaded = read_secret_files(environ)
        print(
            f"entrypoint: {command}; secrets from files: {', '.join(loaded) or 'none'}", flush=True
        )
        sys.path.insert(0, str(ROOT))
        import config

        owner_url, app_url = config.migration_database_url(), config.configured_database_url()
        wait_for_database(owner_url)
        if command == "migrate" or _flag(environ, "HIKESHI_MIGRATE_ON_START", True):
            migrate(owner_url, app_url)
            print("entrypoint: migrations at head", flush=True)
    except StartupError as exc:
        print(f"entrypoint: {exc}", file=sys.stderr)
        return 1
    if command == "migrate":
        return 0
    os.chdir(ROOT)  # Streamlit reads .streamlit/config.toml from the working directory
    line = command_line(command, args, environ)
    os.execvpe(line[0], line, dict(environ))
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
