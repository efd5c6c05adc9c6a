"""Write the secret files compose.yaml hands to the containers, once:

    python -m deploy.make_secrets secrets [--host db] [--database hikeshi]

Each file holds one value (no final line end) and is readable by its owner only; give the
application's files to the image's user (uid 10001) with `chown 10001 secrets/*` before
`docker compose up`. An existing file is never overwritten: a second run fills in only what is
missing, so a lost key is not silently replaced by a new one (data sealed with the old master
key would be unreadable).
"""

from __future__ import annotations

import argparse
import base64
import secrets
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OWNER = "hikeshi"  # POSTGRES_USER in compose.yaml: owns the schema, runs the migrations
APP_ROLE = "hikeshi_app"  # the migrations' default HIKESHI_APP_DB_ROLE


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def secret_values(*, host: str, database: str) -> dict[str, str]:
    sys.path.insert(0, str(ROOT))
    from config import verify_key_of

    owner_password, app_password = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    seed = secrets.token_bytes(32)
    return {
        "postgres_password": owner_password,
        "migration_database_url": (f"postgresql://{OWNER}:{owner_password}@{host}:5432/{database}"),
        "database_url": f"postgresql://{APP_ROLE}:{app_password}@{host}:5432/{database}",
        "master_keys": f"k1:{_b64(secrets.token_bytes(32))}",
        "session_secret": secrets.token_urlsafe(48),
        "audit_signing_key": _b64(seed),
        "audit_verify_key": verify_key_of(seed),
        "streamlit_cookie_secret": secrets.token_urlsafe(48),
    }


def write_secrets(directory: Path, *, host: str = "db", database: str = "hikeshi") -> list[str]:
    """Write the missing files; returns their names. The two database URLs and the owner's
    password belong together, so they are written only all three at once."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    values = secret_values(host=host, database=database)
    database_files = ("postgres_password", "migration_database_url", "database_url")
    present = [name for name in database_files if (directory / name).exists()]
    if present and len(present) != len(database_files):
        raise SystemExit(
            f"{directory}: only {', '.join(present)} of {', '.join(database_files)} exist; "
            "they belong together — restore the missing ones or remove all three"
        )
    written = []
    for name, value in values.items():
        path = directory / name
        if path.exists():
            continue
        path.touch(mode=0o600)
        path.write_text(value, encoding="utf-8")
        written.append(name)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.make_secrets")
    parser.add_argument("directory", type=Path)
    parser.add_argument("--host", default="db", help="the PostgreSQL host the containers reach")
    parser.add_argument("--database", default="hikeshi")
    args = parser.parse_args(argv)
    written = write_secrets(args.directory, host=args.host, database=args.database)
    print(f"written: {', '.join(written) or 'nothing (all present)'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
