"""Engines and the unit of work: one transaction per service call."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from contextvars import ContextVar
from functools import cache
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlmodel import Session

from config import get_settings
from models.tenant import PLATFORM_TENANT_ID


def normalise_url(url: str) -> str:
    """Accept postgresql:// and postgres:// URLs and use the psycopg 3 driver."""
    parsed = make_url(url.replace("postgres://", "postgresql://", 1))
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves, below
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection) -> None:
        # IMMEDIATE takes the write lock up front, so two writers queue on busy_timeout instead
        # of failing when a read transaction tries to upgrade. A read-only unit of work takes
        # no lock (WAL readers see the last commit and keep no writer waiting).
        read_only = connection.get_execution_options().get(READ_ONLY)
        connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


def _private_file(path: Path) -> None:
    """The SQLite file holds the brigades' data (encrypted personal fields, but also the event
    logs and everything else): readable by its owner only, 0600 (#16). SQLite gives its -wal
    and -shm files the database file's permissions."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # Created only when missing (O_EXCL opens nothing that exists). Closing a descriptor of
    # a file drops every POSIX lock this process holds on it, SQLite's included: with an
    # engine already open here, another process closing its last connection would then think
    # itself the last one and delete the WAL and its index under our connections ("disk I/O
    # error" on the next, and a database two processes see differently).
    with suppress(FileExistsError):
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    if path.stat().st_mode & 0o077:
        path.chmod(0o600)


def build_engine(url: str, **kwargs) -> Engine:
    url = normalise_url(url)
    if url.startswith("sqlite"):
        database = make_url(url).database
        if database and database != ":memory:":
            _private_file(Path(database))
        engine = create_engine(url, connect_args={"check_same_thread": False}, **kwargs)
        _configure_sqlite(engine)
        return engine
    return create_engine(url, pool_pre_ping=True, **kwargs)


class UnsafeDatabaseRole(RuntimeError):
    pass


def check_application_role(engine: Engine) -> None:
    """On PostgreSQL the app must connect as a role that row-level security applies to."""
    if engine.dialect.name != "postgresql":
        return
    with engine.connect() as conn:
        user, superuser, bypass = conn.execute(
            text(
                "SELECT rolname, rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user"
            )
        ).one()
        owned = conn.execute(
            text(
                "SELECT count(*) FROM pg_tables WHERE schemaname = current_schema() "
                "AND tableowner = current_user"
            )
        ).scalar_one()
    problems = [
        reason
        for reason, present in (
            ("is a superuser", superuser),
            ("has BYPASSRLS", bypass),
            (f"owns {owned} table(s)", owned),
        )
        if present
    ]
    if problems:
        raise UnsafeDatabaseRole(
            f"Refusing to start: database role {user!r} {', '.join(problems)}, so row-level "
            "security would not isolate brigades. Connect HIKESHI_DATABASE_URL as the application "
            "role (default hikeshi_app) and run migrations with HIKESHI_MIGRATION_DATABASE_URL "
            "as the owner (see README, 'PostgreSQL')."
        )


@cache
def get_engine() -> Engine:
    engine = build_engine(get_settings().database_url)
    check_application_role(engine)
    return engine


def set_engine(engine: Engine) -> None:
    """Point the app at another engine (tests)."""
    get_engine.cache_clear()
    _override["engine"] = engine


_override: dict[str, Engine] = {}


def current_engine() -> Engine:
    return _override.get("engine") or get_engine()


RLS_TENANT = "rls_tenant"  # session.info: the tenant set for the transaction under way


def set_tenant(session: Session, tenant_id: uuid.UUID | None) -> None:
    """Tell PostgreSQL's row-level security which tenant this transaction acts for. The setting
    lasts until the transaction (or the savepoint) ends; telling it again meanwhile is skipped."""
    if session.get_bind().dialect.name != "postgresql":
        return
    value = str(tenant_id) if tenant_id else ""
    if session.info.get(RLS_TENANT) == value:
        return
    session.execute(text("SELECT set_config('app.tenant_id', :tid, true)"), {"tid": value})
    session.info[RLS_TENANT] = value


# What a transaction set or locked (the RLS tenant, services.audit's chain heads) is forgotten
# when any transaction or savepoint ends: a rolled-back savepoint undoes set_config and
# releases the row locks taken inside it, and a new transaction starts with neither.
TRANSACTION_SCOPED: list[str] = [RLS_TENANT]


@event.listens_for(Session, "after_transaction_end")
def _forget_transaction_state(session: Session, transaction) -> None:
    if transaction.parent is not None and not transaction.nested:
        return  # the inner transaction of a flush
    for key in TRANSACTION_SCOPED:
        session.info.pop(key, None)


class UncommittedWork(RuntimeError):
    """A unit of work ended normally with writes it neither committed nor rolled back."""


class UnitSession(Session):
    """A session that belongs to one unit of work. Inside a joined (nested) unit, commit only
    flushes: the outermost unit decides."""

    def commit(self) -> None:
        if self.info.get("depth", 0) > 1:
            self.flush()
            return
        super().commit()


READ_ONLY = "hikeshi_read_only"  # an execution option: the unit of work only reads


class ReadOnlyWrite(RuntimeError):
    """A unit of work opened read-only tried to write."""


def _writes(statement: str, context) -> bool:
    """An INSERT, UPDATE or DELETE: compiled by SQLAlchemy (its context says so) or handed to
    the driver as SQL text (exec_driver_sql: the water import's bulk insert on SQLite)."""
    if context is None:
        return False
    if context.isinsert or context.isupdate or context.isdelete:
        return True
    return statement.lstrip()[:6].upper() in ("INSERT", "UPDATE", "DELETE")


@event.listens_for(Engine, "before_cursor_execute")
def _refuse_writes(conn, _cursor, statement, _parameters, context, _executemany) -> None:
    if _writes(statement, context) and conn.get_execution_options().get(READ_ONLY):
        raise ReadOnlyWrite(f"a read-only unit of work tried to write: {statement[:60]}")


_read_only_engines: dict[Engine, Engine] = {}


def _read_only(engine: Engine) -> Engine:
    if engine not in _read_only_engines:
        _read_only_engines[engine] = engine.execution_options(**{READ_ONLY: True})
    return _read_only_engines[engine]


@event.listens_for(Engine, "after_cursor_execute")
def _wrote(conn, _cursor, statement, _parameters, context, _executemany) -> None:
    """Every INSERT, UPDATE or DELETE on a connection, from the ORM's flush, Core or SQL text."""
    if _writes(statement, context):
        conn.info["unsaved"] = True


@event.listens_for(Engine, "commit")
def _committed(conn) -> None:
    if conn.info.get("unsaved"):
        _epoch[0] += 1
    conn.info["unsaved"] = False


@event.listens_for(Engine, "rollback")
def _settled(conn) -> None:
    conn.info["unsaved"] = False


_epoch = [0]


def write_epoch() -> int:
    """How many transactions with writes this process has committed: a cheap way to know that
    nothing changed here since some moment (services.base uses it to skip re-reading an actor
    it has just checked)."""
    return _epoch[0]


def _has_unsaved_writes(session: Session) -> bool:
    if session.new or session.deleted:
        return True
    if session.in_transaction() and session.connection().info.get("unsaved"):
        return True
    return any(session.is_modified(row) for row in session.dirty)


_current: ContextVar[tuple[UnitSession, uuid.UUID | None] | None] = ContextVar(
    "unit_of_work", default=None
)


@contextmanager
def unit_of_work(
    tenant_id: uuid.UUID | None, *, independent: bool = False, read_only: bool = False
) -> Iterator[Session]:
    """A session in one transaction scoped to a tenant. Nothing is kept unless the block calls
    ``session.commit()``; a block that ends with writes it did not commit raises
    UncommittedWork (a dry run calls ``session.rollback()`` to say so).

    A unit opened inside another joins it, so a platform task made of several services (a new
    brigade with its first administrator) is one transaction; only the outermost commit
    commits. Joining is allowed for the same tenant or from a platform unit. ``independent``
    opens a separate transaction instead (a denial must be recorded even though the work it
    refused rolls back). ``read_only`` work takes no write lock on SQLite and runs in a READ
    ONLY transaction on PostgreSQL; any write in it raises ReadOnlyWrite (a read-only unit
    joined to another one is simply part of it)."""
    outer = None if independent else _current.get()
    if outer is not None:
        yield from _joined(outer, tenant_id)
        return
    engine = _read_only(current_engine()) if read_only else current_engine()
    with UnitSession(engine, expire_on_commit=False) as session:
        session.info["depth"] = 1
        token = _current.set((session, tenant_id))
        try:
            if read_only and engine.dialect.name == "postgresql":
                session.execute(text("SET TRANSACTION READ ONLY"))
            set_tenant(session, tenant_id)
            yield session
            if _has_unsaved_writes(session):
                raise UncommittedWork(
                    "the unit of work ended with writes it did not commit; call "
                    "session.commit() to keep them or session.rollback() to discard them"
                )
        except BaseException:
            session.rollback()
            raise
        finally:
            _current.reset(token)


def _joined(
    outer: tuple[UnitSession, uuid.UUID | None], tenant_id: uuid.UUID | None
) -> Iterator[Session]:
    session, outer_tenant = outer
    if tenant_id != outer_tenant and outer_tenant not in (None, PLATFORM_TENANT_ID):
        raise RuntimeError("a unit of work for one brigade cannot join another brigade's")
    session.info["depth"] += 1
    token = _current.set((session, tenant_id))
    try:
        set_tenant(session, tenant_id)
        yield session
    finally:
        _current.reset(token)
        session.info["depth"] -= 1
        if session.is_active:
            set_tenant(session, outer_tenant)
