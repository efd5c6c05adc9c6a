"""Test databases: SQLite always; PostgreSQL when HIKESHI_TEST_DATABASE_URL is set (CI sets it).

Each run gets a fresh database migrated by Alembic. Tests isolate themselves by creating their own
brigades (tenants), so nothing needs truncating between tests.
"""

from __future__ import annotations

import base64
import os
import secrets
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

_TMP = Path(tempfile.mkdtemp(prefix="hikeshi-test-"))
os.environ["HIKESHI_DATA_DIR"] = str(_TMP)
os.environ.setdefault(
    "HIKESHI_MASTER_KEYS",
    "test1:" + base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("="),
)
os.environ.setdefault("HIKESHI_SESSION_SECRET", secrets.token_urlsafe(48))
os.environ.setdefault("HIKESHI_PUBLIC_BASE_URL", "http://localhost:8501")

import pytest  # noqa: E402
from alembic import command  # noqa: E402
from alembic.config import Config  # noqa: E402
from sqlalchemy import Engine, create_engine, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from services.db import build_engine, normalise_url, set_engine  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def alembic_config(url: str) -> Config:
    cfg = Config(str(ROOT / "alembic.ini"))
    cfg.set_main_option("sqlalchemy.url", url)
    cfg.attributes["configure_logger"] = False
    return cfg


def _create_postgres_database(server_url: str) -> tuple[str, str]:
    url = make_url(normalise_url(server_url))
    name = f"hikeshi_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return url.set(database=name).render_as_string(hide_password=False), name


def _drop_postgres_database(server_url: str, name: str) -> None:
    url = make_url(normalise_url(server_url))
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    server = os.environ.get("HIKESHI_TEST_DATABASE_URL")
    if not server:
        yield f"sqlite:///{_TMP / 'test.db'}"
        return
    url, name = _create_postgres_database(server)
    try:
        yield url
    finally:
        _drop_postgres_database(server, name)


@pytest.fixture(scope="session")
def engine(database_url: str) -> Iterator[Engine]:
    command.upgrade(alembic_config(database_url), "head")
    engine = build_engine(database_url)
    set_engine(engine)
    os.environ["HIKESHI_DATABASE_URL"] = database_url
    yield engine
    engine.dispose()


@pytest.fixture
def dialect(engine: Engine) -> str:
    return engine.dialect.name
