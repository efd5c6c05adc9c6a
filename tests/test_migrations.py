"""Alembic migrations: apply from empty, downgrade to base, apply again, and match the models.

Runs on a fresh database of its own (a new SQLite file, or a new PostgreSQL database beside the
session's test database), so the shared test database is never downgraded.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
from collections.abc import Iterator

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import func, inspect, select, text
from sqlmodel import SQLModel

import models
from models import PLATFORM_TENANT_ID
from services import event_search
from services.db import build_engine
from tests.conftest import _create_postgres_database, _drop_postgres_database, alembic_config


@pytest.fixture
def fresh_url(tmp_path) -> Iterator[str]:
    server = os.environ.get("HIKESHI_TEST_DATABASE_URL")
    if not server:
        yield f"sqlite:///{tmp_path / 'fresh.db'}"
        return
    url, name = _create_postgres_database(server)
    try:
        yield url
    finally:
        _drop_postgres_database(server, name)


def _state(url: str) -> tuple[set[str], set[str]]:
    """(tables, current revisions) of the database at url."""
    engine = build_engine(url)
    try:
        with engine.connect() as conn:
            tables = set(inspect(conn).get_table_names())
            heads = set(MigrationContext.configure(conn).get_current_heads())
    finally:
        engine.dispose()
    return tables, heads


def _all_models_imported() -> None:
    """Tables in any models/ module count, even one models/__init__.py forgot to import."""
    for info in pkgutil.iter_modules(models.__path__):
        importlib.import_module(f"models.{info.name}")


# FTS5 keeps a virtual table's index in shadow tables named after it (sqlite.org/fts5.html)
FTS5_SHADOWS = ("_data", "_idx", "_content", "_docsize", "_config")


def search_objects(dialect: str) -> dict[str, set[str]]:
    """The event search's index objects (migration z006), which SQLAlchemy metadata cannot
    describe (a trigram GIN expression index; an FTS5 virtual table, its shadow tables and its
    rowid map): autogenerate leaves them to _check_search_objects."""
    if dialect == "postgresql":
        return {"index": {event_search.PG_INDEX}, "table": set()}
    fts = event_search.FTS_TABLE
    return {
        "index": set(),
        "table": {fts, event_search.ROW_TABLE} | {fts + s for s in FTS5_SHADOWS},
    }


def _differences(url: str) -> list:
    _all_models_imported()
    engine = build_engine(url)
    try:
        with engine.connect() as conn:
            skip = search_objects(conn.dialect.name)

            def include_name(name, type_, _parent) -> bool:
                return name not in skip.get(type_, set())

            context = MigrationContext.configure(
                conn, opts={"compare_type": True, "include_name": include_name}
            )
            return compare_metadata(context, SQLModel.metadata)
    finally:
        engine.dispose()


def _platform_tenants(url: str) -> int:
    tenant = models.Tenant.__table__
    query = select(func.count()).select_from(tenant).where(tenant.c.id == PLATFORM_TENANT_ID)
    engine = build_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(query).scalar_one()
    finally:
        engine.dispose()


def test_upgrade_downgrade_upgrade(fresh_url):
    config = alembic_config(fresh_url)
    heads = set(ScriptDirectory.from_config(config).get_heads())
    model_tables = set(SQLModel.metadata.tables)

    assert _state(fresh_url) == (set(), set())

    command.upgrade(config, "heads")
    tables, current = _state(fresh_url)
    assert current == heads
    assert model_tables <= tables
    assert _platform_tenants(fresh_url) == 1

    command.downgrade(config, "base")
    tables, current = _state(fresh_url)
    assert current == set()
    assert tables <= {"alembic_version"}

    command.upgrade(config, "heads")
    tables, current = _state(fresh_url)
    assert current == heads
    assert model_tables <= tables
    assert _platform_tenants(fresh_url) == 1


def test_migrations_match_the_models(fresh_url):
    """What `alembic check` does: autogenerate finds nothing left to migrate; and what it is
    told to leave out exists as z006 makes it, and goes when z006 is downgraded."""
    config = alembic_config(fresh_url)
    command.upgrade(config, "heads")
    assert _differences(fresh_url) == []
    _check_search_objects(config, fresh_url)


def _check_search_objects(config, fresh_url: str) -> None:
    engine = build_engine(fresh_url)
    try:
        with engine.connect() as conn:
            made = _search_schema(conn)
        command.downgrade(config, "z005")
        with engine.connect() as conn:
            left = _search_schema(conn)
    finally:
        engine.dispose()
    if engine.dialect.name == "postgresql":
        index, function = made
        assert "USING gin" in index and "gin_trgm_ops" in index
        assert all(f"{c})::text" in index for c in event_search.COLUMNS)
        assert function == (True, ["search_path=public, pg_temp", "jit=off"])
    else:
        tables, triggers = made
        assert tables[event_search.FTS_TABLE].startswith(
            f"CREATE VIRTUAL TABLE {event_search.FTS_TABLE} USING fts5("
        )
        assert "tokenize='trigram'" in tables[event_search.FTS_TABLE]
        assert set(tables) == search_objects("sqlite")["table"] - {
            event_search.FTS_TABLE + "_content"  # contentless: the text is audit_event's
        }
        assert triggers == {"audit_event_search_insert", "audit_event_search_delete"}
    assert left in ((None, None), ({}, set()))


def _search_schema(conn) -> tuple:
    if conn.dialect.name == "postgresql":
        index = conn.execute(
            text("SELECT indexdef FROM pg_indexes WHERE indexname = :n"),
            {"n": event_search.PG_INDEX},
        ).scalar()
        function = conn.execute(
            text("SELECT prosecdef, proconfig FROM pg_proc WHERE proname = :n"),
            {"n": event_search.PG_FUNCTION},
        ).first()
        return index, (tuple(function) if function else None)
    tables = dict(
        conn.execute(
            text("SELECT name, sql FROM sqlite_master WHERE type = 'table' AND name LIKE :p"),
            {"p": event_search.FTS_TABLE + "%"},
        ).all()
    )
    triggers = conn.execute(
        text("SELECT name FROM sqlite_master WHERE type = 'trigger' AND name LIKE :p"),
        {"p": event_search.FTS_TABLE + "%"},
    ).scalars()
    return tables, set(triggers)


def test_history_has_a_single_base():
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    assert len(script.get_bases()) == 1
