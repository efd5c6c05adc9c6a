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
# Minimal argon2 cost: thousands of test logins; test_local_login checks the production profile.
os.environ.setdefault("HIKESHI_ARGON2_TIME_COST", "1")
os.environ.setdefault("HIKESHI_ARGON2_MEMORY_KIB", "8")
os.environ.setdefault("HIKESHI_ARGON2_PARALLELISM", "1")
# Every test signs in from 127.0.0.1: the per-address limit would tie unrelated tests together.
# The throttling tests set their own.
os.environ.setdefault("HIKESHI_LOGIN_ADDRESS_MAX_FAILURES", "1000000")

import pytest  # noqa: E402
from alembic import command  # noqa: E402
from alembic.config import Config  # noqa: E402
from sqlalchemy import Engine, create_engine, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from services.db import (  # noqa: E402
    build_engine,
    check_application_role,
    current_engine,
    normalise_url,
    set_engine,
)

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


BROWSER_TESTS = "tests/e2e/"


def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """Spread tests one by one over the workers, but keep the browser tests together on one
    worker, so a run starts one app server and one Chromium. (xdist's own loadgroup marks rely
    on rewriting node ids, which pytest 9.2 no longer allows.)"""
    from xdist.scheduler import LoadScopeScheduling

    class BrowserTestsTogether(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return BROWSER_TESTS if nodeid.startswith(BROWSER_TESTS) else nodeid

    return BrowserTestsTogether(config, log)


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


APP_ROLE = os.environ.get("HIKESHI_APP_DB_ROLE", "hikeshi_app")


@pytest.fixture(scope="session")
def app_database_url(database_url: str) -> str:
    """What the application connects with: on PostgreSQL the RLS-bound application role
    (database_url itself is the owner, which runs the migrations)."""
    if not database_url.startswith("postgresql"):
        return database_url
    url = make_url(database_url).set(username=APP_ROLE, password=None)
    return url.render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def engine(database_url: str, app_database_url: str) -> Iterator[Engine]:
    command.upgrade(alembic_config(database_url), "head")
    engine = build_engine(app_database_url)
    check_application_role(engine)
    set_engine(engine)
    os.environ["HIKESHI_DATABASE_URL"] = app_database_url
    os.environ["HIKESHI_MIGRATION_DATABASE_URL"] = database_url
    yield engine
    engine.dispose()


@pytest.fixture
def own_database(engine: Engine, tmp_path: Path) -> Iterator[Engine]:
    """A freshly migrated database of this test's own, which the app uses until the test ends.

    For tests about every brigade in the database (verify every audit chain, checkpoint every
    chain): on the shared test database they would see what other tests left, such as chains
    broken on purpose, and pass or fail by test order."""
    server = os.environ.get("HIKESHI_TEST_DATABASE_URL")
    if server:
        owner_url, name = _create_postgres_database(server)
        app_url = make_url(owner_url).set(username=APP_ROLE, password=None)
        app_url = app_url.render_as_string(hide_password=False)
    else:
        owner_url = app_url = f"sqlite:///{tmp_path / 'own.db'}"
        name = ""
    command.upgrade(alembic_config(owner_url), "head")
    shared = current_engine()
    own = build_engine(app_url)
    set_engine(own)
    try:
        yield own
    finally:
        set_engine(shared)
        own.dispose()
        if name:
            _drop_postgres_database(server, name)


@pytest.fixture(scope="session")
def owner_engine(engine: Engine, database_url: str) -> Iterator[Engine]:
    """The schema owner's connection, for tests that inspect or tamper with the database."""
    owner = build_engine(database_url)
    yield owner
    owner.dispose()


@pytest.fixture
def dialect(engine: Engine) -> str:
    return engine.dialect.name
