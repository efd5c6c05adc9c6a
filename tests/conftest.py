"""Test databases: SQLite always; PostgreSQL when HIKESHI_TEST_DATABASE_URL is set (CI sets it).

Each run gets a fresh database migrated by Alembic. Tests isolate themselves by creating their own
brigades (tenants), so nothing needs truncating between tests.
"""

from __future__ import annotations

import atexit
import base64
import os
import secrets
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

# The SQLite test database and the data directory live in memory (tmpfs) where there is one:
# a test database need not survive a crash, and every commit then costs no fsync.
# Each process removes its directory when it exits, and what a killed run left behind (named
# after a process that is gone) when the next one starts, since tmpfs keeps files in memory.
_SHM = Path("/dev/shm")
_IN_MEMORY = _SHM.is_dir() and os.access(_SHM, os.W_OK)


def _process_is_gone(pid: str) -> bool:
    return pid.isdigit() and not Path(f"/proc/{pid}").exists()


if _IN_MEMORY:
    for _stale in _SHM.glob("hikeshi-test-*-*"):
        if _process_is_gone(_stale.name.split("-")[2]):
            shutil.rmtree(_stale, ignore_errors=True)
_TMP = Path(
    tempfile.mkdtemp(prefix=f"hikeshi-test-{os.getpid()}-", dir=_SHM if _IN_MEMORY else None)
)
atexit.register(shutil.rmtree, _TMP, ignore_errors=True)
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
# No test asks the real GSI address search: those that geocode start a fake (tests/fakes).
os.environ.setdefault("HIKESHI_GEOCODER_URL", "")

import pytest  # noqa: E402
from alembic import command  # noqa: E402
from alembic.config import Config  # noqa: E402
from hypothesis import HealthCheck  # noqa: E402
from hypothesis import settings as hypothesis_settings  # noqa: E402
from sqlalchemy import Engine, create_engine, event, text  # noqa: E402
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
        # A test database need not survive a crash: commits do not wait for the WAL flush.
        conn.execute(text(f'ALTER DATABASE "{name}" SET synchronous_commit = off'))
    admin.dispose()
    return url.set(database=name).render_as_string(hide_password=False), name


def _drop_postgres_database(server_url: str, name: str) -> None:
    url = make_url(normalise_url(server_url))
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


# Hypothesis times its examples: on a busy 2-core machine (CI, or engineers' tests side by side)
# a first draw that builds a codec's character table can take a second, and the too_slow health
# check and the deadline then fail tests whose property holds. Those are timed assertions; the
# properties are what the tests check.
hypothesis_settings.register_profile(
    "hikeshi", deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
hypothesis_settings.load_profile("hikeshi")

BROWSER_TESTS = "tests/e2e/"
# Tests that share a fixture too costly to build once per worker: the audit chain tests' 2000-
# event chain (long_chain) takes 5-15 s.
# The worker-processes tests share one fake LINE server and brigade.
KEEP_TOGETHER = (
    BROWSER_TESTS,
    "tests/security/test_audit_chain.py",
    "tests/operations/test_worker_processes.py",
)


def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """Spread tests one by one over the workers, but keep the browser tests together on one
    worker, so a run starts one app server and one Chromium, and likewise each group in
    KEEP_TOGETHER. xdist hands out the biggest groups first, so they start at once on their
    workers while the single tests fill in around them. (xdist's own loadgroup marks rely on
    rewriting node ids, which pytest 9.2 no longer allows.)"""
    from xdist.scheduler import LoadScopeScheduling

    class BrowserTestsTogether(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return next((group for group in KEEP_TOGETHER if nodeid.startswith(group)), nodeid)

    return BrowserTestsTogether(config, log)


# --- tests that never touch a database run on the SQLite pass only -----------------------------

# Every fixture that reaches the test database depends on database_url (engine, owner_engine,
# app_database_url, own_database, tenant, open_app, base_url, ...), so a test whose fixture
# closure lacks it does not see which database the run is for.
DATABASE_FIXTURE = "database_url"
# A module that imports these makes databases of its own on the test server (migration tests).
SERVER_HELPERS = ("_create_postgres_database", "alembic_config")
NO_DATABASE_REASON = (
    "use no database (no database_url in their fixture closure) or are browser tests outside "
    "the both_databases smoke set: SQLite pass only"
)


def uses_database(item: pytest.Item) -> bool:
    """Whether a test can behave differently on PostgreSQL: it requests the test database
    (directly or through any fixture), is PostgreSQL-only, or sits in a module that makes
    databases of its own on the server.

    A browser test checks what only a browser shows; the pages and services under it run on
    both databases in the page and service tests. So the PostgreSQL pass runs only the browser
    tests marked both_databases: a smoke set that drives the real server as the unprivileged
    role under row-level security (sign-in and the roster, the call-out from mail to tally, the
    member's page with its 既読 write, the HTTP routes)."""
    if is_browser_test(item):
        return item.get_closest_marker("both_databases") is not None
    if DATABASE_FIXTURE in getattr(item, "fixturenames", ()):
        return True
    if item.get_closest_marker("postgres_only"):
        return True
    module = getattr(item, "module", None)
    return module is not None and any(hasattr(module, name) for name in SERVER_HELPERS)


DESELECTED = pytest.StashKey[int]()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On the PostgreSQL pass, leave out the tests that use no database: the SQLite pass has run
    them, and a second run proves nothing new. (The SQLite pass fails a test that reaches a
    database without asking for it, so none can hide here: see _UndeclaredDatabase.)"""
    if not os.environ.get("HIKESHI_TEST_DATABASE_URL"):
        return
    dropped = [item for item in items if not uses_database(item)]
    if not dropped:
        return
    config.hook.pytest_deselected(items=dropped)
    items[:] = [item for item in items if uses_database(item)]
    config.stash[DESELECTED] = len(dropped)
    if hasattr(config, "workeroutput"):  # an xdist worker: the controller reports it
        config.workeroutput["database_free_deselected"] = len(dropped)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error) -> None:
    count = getattr(node, "workeroutput", {}).get("database_free_deselected", 0)
    config = node.config
    config.stash[DESELECTED] = max(count, config.stash.get(DESELECTED, 0))


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    count = config.stash.get(DESELECTED, 0)
    if count and not hasattr(config, "workerinput"):
        terminalreporter.write_line(
            f"PostgreSQL pass: deselected {count} tests that {NO_DATABASE_REASON}"
        )


class _UndeclaredDatabase:
    """Connections a database-free test makes, in its setup or its body, to the test database
    (or to the app's default one, under the same directory), or to any server: the SQLite pass
    fails such a test, since the PostgreSQL pass would leave it out. A SQLite file of the
    test's own (tmp_path) is the same database on both passes and does not count. Teardown is
    not watched: it also finalizes module and session fixtures that other tests asked for."""

    def __init__(self) -> None:
        self.watching = False
        self.seen: list[str] = []

    def on_connect(self, conn, *_args) -> None:
        if not self.watching:
            return
        url = conn.engine.url
        if url.get_backend_name() == "sqlite":
            database = url.database or ""
            if database in ("", ":memory:") or Path(database).parent != _TMP:
                return
        self.seen.append(url.render_as_string(hide_password=True))

    def check(self, item: pytest.Item, when: str) -> None:
        seen, self.seen = self.seen, []
        if seen:
            pytest.fail(
                f"{item.nodeid} connected to {seen[0]} during {when} but requests no database "
                "fixture, so the PostgreSQL pass would leave it out: request `engine` (or "
                "`database_url`).",
                pytrace=False,
            )


_UNDECLARED = _UndeclaredDatabase()
event.listen(Engine, "engine_connect", _UNDECLARED.on_connect)


def is_browser_test(item: pytest.Item) -> bool:
    return item.nodeid.startswith(BROWSER_TESTS) or item.get_closest_marker("e2e") is not None


def _watched(item: pytest.Item, when: str):
    """Browser tests are not watched: they use the database, and the PostgreSQL pass leaves
    most of them out on purpose (uses_database), not because they would need none."""
    if uses_database(item) or is_browser_test(item):
        return (yield)
    _UNDECLARED.watching, _UNDECLARED.seen = True, []
    try:
        result = yield
    finally:
        _UNDECLARED.watching = False
    _UNDECLARED.check(item, when)
    return result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item):
    return (yield from _watched(item, "setup"))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item):
    return (yield from _watched(item, "the test"))


@pytest.fixture(scope="session", autouse=True)
def _component_manifests_scanned_once() -> Iterator[None]:
    """Every new AppTest scans all installed distributions for Streamlit component manifests
    (a third of a page test's time); the installed packages do not change during a run, so
    the first scan's result serves the rest."""
    try:
        from streamlit.components.v2 import manifest_scanner
    except ImportError:  # a Streamlit without v2 components
        yield
        return
    real = manifest_scanner.scan_component_manifests
    found: list = []

    def scan_once(max_workers: int | None = None) -> list:
        if not found:
            found.append(real(max_workers))
        return list(found[0])

    manifest_scanner.scan_component_manifests = scan_once
    try:
        yield
    finally:
        manifest_scanner.scan_component_manifests = real


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


@pytest.fixture
def line_login_channel() -> Iterator[None]:
    """The installation has a LINE Login channel (registration codes are issued only then)."""
    from tests.fakes.line_server import LOGIN_CHANNEL_ENV, configured

    with configured(LOGIN_CHANNEL_ENV):
        yield
