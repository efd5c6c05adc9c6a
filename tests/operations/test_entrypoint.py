"""The container entrypoint (deploy/entrypoint.py) outside a container: secrets from *_FILE
variables, waiting for the database, migrations to head (once, under a lock, on PostgreSQL),
then the app answering on a loopback port. The database is a scratch one of the kind the
suite runs on: SQLite, or PostgreSQL when HIKESHI_TEST_DATABASE_URL is set."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from deploy import entrypoint
from deploy.make_secrets import write_secrets
from integrations.mail import free_loopback_port
from services.db import normalise_url

ROOT = Path(__file__).resolve().parents[2]
PG_SERVER = os.environ.get("HIKESHI_TEST_DATABASE_URL", "")
APP_FILES = ("master_keys", "session_secret", "audit_signing_key", "audit_verify_key")


def head_revision() -> str:
    return ScriptDirectory.from_config(Config(str(ROOT / "alembic.ini"))).get_current_head()


def revision_of(url: str) -> str:
    engine = create_engine(normalise_url(url), poolclass=NullPool)
    try:
        with engine.connect() as conn:
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
    finally:
        engine.dispose()


@pytest.fixture
def scratch(tmp_path: Path, database_url: str) -> Iterator[tuple[str, str]]:
    """(owner URL, application URL) of an empty database of the suite's kind (database_url's,
    whose server it shares)."""
    if not database_url.startswith("postgresql"):
        if os.environ.get("CI"):
            pytest.skip("CI starts the entrypoint once, on the PostgreSQL pass (the image's)")
        url = f"sqlite:///{tmp_path / 'data' / 'hikeshi.db'}"
        yield url, url
        return
    server = make_url(normalise_url(database_url))
    name = f"hikeshi_entry_{uuid.uuid4().hex[:10]}"
    admin = create_engine(server.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        owner = server.set(database=name)
        app = owner.set(username="hikeshi_app", password="entrypoint-" + uuid.uuid4().hex)
        yield (
            owner.render_as_string(hide_password=False),
            app.render_as_string(hide_password=False),
        )
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def container_env(tmp_path: Path, owner_url: str, app_url: str) -> dict[str, str]:
    """The environment compose.yaml gives a container: URLs and keys only as files."""
    secrets = tmp_path / "secrets"
    write_secrets(secrets)
    for name, value in (("database_url", app_url), ("migration_database_url", owner_url)):
        (secrets / name).write_text(value + "\n", encoding="utf-8")  # as an editor saves it
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HIKESHI_", "STREAMLIT_"))}
    env.update(
        {
            "HIKESHI_DATA_DIR": str(tmp_path / "data"),
            "HIKESHI_DATABASE_URL_FILE": str(secrets / "database_url"),
            "HIKESHI_MIGRATION_DATABASE_URL_FILE": str(secrets / "migration_database_url"),
            "STREAMLIT_SERVER_COOKIE_SECRET_FILE": str(secrets / "streamlit_cookie_secret"),
            "HIKESHI_ARGON2_TIME_COST": "1",
            "HIKESHI_ARGON2_MEMORY_KIB": "8",
            "HIKESHI_ARGON2_PARALLELISM": "1",
            "HIKESHI_GEOCODER_URL": "",
        }
    )
    for name in APP_FILES:
        env[f"HIKESHI_{name.upper()}_FILE"] = str(secrets / name)
    return env


def test_app_starts_after_migrations_with_secrets_from_files(tmp_path, scratch):
    owner_url, app_url = scratch
    env = container_env(tmp_path, owner_url, app_url)
    port = free_loopback_port()
    env.update({"HIKESHI_BIND_ADDRESS": "127.0.0.1", "HIKESHI_PORT": str(port)})
    log = tmp_path / "entrypoint.log"
    with migration_lock_held(owner_url) as release, log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "deploy.entrypoint", "app"],
            cwd=tmp_path,  # the entrypoint finds the code (and .streamlit/) itself
            env={**env, "PYTHONPATH": str(ROOT)},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        release(process, log)
    try:
        health, home = _answers(process, port, log)
        assert (health.status_code, health.text) == (200, "ok")
        assert home.status_code == 200
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=20)
    output = log.read_text(encoding="utf-8", errors="replace")
    assert "HIKESHI_MASTER_KEYS" in output and "HIKESHI_DATABASE_URL" in output
    assert revision_of(owner_url) == head_revision()
    if PG_SERVER:  # the application role got its password from database_url
        engine = create_engine(normalise_url(owner_url), poolclass=NullPool)
        with engine.connect() as conn:
            stored = conn.execute(
                text("SELECT rolpassword FROM pg_authid WHERE rolname = 'hikeshi_app'")
            ).scalar_one()
        engine.dispose()
        assert stored and stored.startswith(("SCRAM-SHA-256$", "md5"))


@contextmanager
def migration_lock_held(owner_url: str) -> Iterator[Callable[[subprocess.Popen, Path], None]]:
    """On PostgreSQL, hold the entrypoint's migration lock as another starting replica would:
    `release` waits until the entrypoint queues for it, checks that it has migrated nothing
    meanwhile, and lets it go. (Without the lock, replicas starting together run the same
    CREATE TABLEs at once and all but one exit.) SQLite has no such lock: release is a no-op."""
    if not owner_url.startswith("postgresql"):
        yield lambda _process, _log: None
        return
    engine = create_engine(normalise_url(owner_url), poolclass=NullPool)
    with engine.connect() as holder:
        holder.execute(text("SELECT pg_advisory_lock(:k)"), {"k": entrypoint.MIGRATION_LOCK})
        holder.commit()

        def release(process: subprocess.Popen, log: Path) -> None:
            waiting = text(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
                " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            )
            deadline = time.monotonic() + 90
            migrated = text("SELECT to_regclass('alembic_version')")
            while not holder.execute(waiting).scalar_one():
                stray = holder.execute(migrated).scalar() is not None
                holder.commit()
                if stray or process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"the entrypoint did not wait for the lock:\n{log.read_text()}")
                time.sleep(0.2)
            assert holder.execute(migrated).scalar() is None
            holder.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": entrypoint.MIGRATION_LOCK})
            holder.commit()

        yield release
    engine.dispose()


def _answers(process: subprocess.Popen, port: int, log: Path) -> tuple[httpx.Response, ...]:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the entrypoint exited ({process.returncode}):\n{log.read_text()}")
        try:
            health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
        except httpx.TransportError:
            time.sleep(0.3)
            continue
        return health, httpx.get(f"http://127.0.0.1:{port}/", timeout=10)
    pytest.fail(f"no answer on port {port}:\n{log.read_text()}")


def test_secret_files_are_read_without_their_final_line_end(tmp_path):
    key = tmp_path / "key"
    key.write_text("k1:abc\n", encoding="utf-8")
    environ = {
        "HIKESHI_MASTER_KEYS_FILE": str(key),
        "STREAMLIT_SERVER_COOKIE_SECRET_FILE": str(key),
        "OTHER_FILE": "/nonexistent",  # not ours: left alone
    }
    loaded = entrypoint.read_secret_files(environ)
    assert loaded == ["HIKESHI_MASTER_KEYS", "STREAMLIT_SERVER_COOKIE_SECRET"]
    assert environ["HIKESHI_MASTER_KEYS"] == "k1:abc"
    assert "OTHER" not in environ


def test_a_secret_set_twice_or_missing_stops_the_start(tmp_path):
    key = tmp_path / "key"
    key.write_text("x", encoding="utf-8")
    both = {"HIKESHI_SESSION_SECRET": "y", "HIKESHI_SESSION_SECRET_FILE": str(key)}
    with pytest.raises(entrypoint.StartupError, match="both set"):
        entrypoint.read_secret_files(both)
    missing = {"HIKESHI_SESSION_SECRET_FILE": str(tmp_path / "absent")}
    with pytest.raises(entrypoint.StartupError, match="cannot read"):
        entrypoint.read_secret_files(missing)


def test_an_absent_database_stops_the_start_after_the_wait():
    url = f"postgresql://nobody@127.0.0.1:{free_loopback_port()}/none"
    with pytest.raises(entrypoint.StartupError, match="did not answer"):
        entrypoint.wait_for_database(url, seconds=0, sleep=lambda _: None)


def test_processes_the_image_runs():
    environ = {"HIKESHI_BIND_ADDRESS": "0.0.0.0", "HIKESHI_PORT": "8501"}
    app = entrypoint.command_line("app", [], environ)
    assert app[1:4] == ["-m", "streamlit", "run"] and app[4].endswith("server.py")
    assert app[app.index("--server.address") + 1] == "0.0.0.0"
    assert app[app.index("--server.port") + 1] == "8501"
    assert entrypoint.command_line("worker", [], environ)[1:] == [str(ROOT / "cli.py"), "worker"]


def test_make_secrets_never_replaces_a_key(tmp_path):
    write_secrets(tmp_path)
    before = (tmp_path / "master_keys").read_text()
    (tmp_path / "session_secret").unlink()
    assert write_secrets(tmp_path) == ["session_secret"]
    assert (tmp_path / "master_keys").read_text() == before
    assert oct((tmp_path / "master_keys").stat().st_mode & 0o777) == "0o600"
