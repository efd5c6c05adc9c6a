"""Alembic migrations: apply from empty, downgrade to base, apply again, and match the models.

Runs on a fresh database of its own (a new SQLite file, or a new PostgreSQL database beside the
session's test database), so the shared test database is never downgraded.
"""

from __future__ import annotations

import importlib
import json
import os
import pkgutil
import uuid
from collections.abc import Iterator

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import func, insert, inspect, select, text
from sqlmodel import SQLModel

import models
from core.actor import system_actor
from models import PLATFORM_TENANT_ID
from models.base import utcnow
from services import event_search
from services.base import scoped
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
    """The event search's index objects (migrations z006, z008), which SQLAlchemy metadata
    cannot describe (GIN expression indexes; FTS5 virtual tables, their shadow tables and the
    rowid map): autogenerate leaves them to _check_search_objects."""
    if dialect == "postgresql":
        return {"index": {event_search.PG_INDEX, event_search.PG_GRAM_INDEX}, "table": set()}
    fts, grams = event_search.FTS_TABLE, event_search.FTS_GRAM_TABLE
    return {
        "index": set(),
        "table": {fts, grams, event_search.ROW_TABLE}
        | {name + s for name in (fts, grams) for s in FTS5_SHADOWS},
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
    told to leave out exists as z006 and z008 make it, z008's goes when z008 is downgraded
    (z006's triggers back as z006 wrote them), and the rest when z006 is."""
    config = alembic_config(fresh_url)
    command.upgrade(config, "heads")
    assert _differences(fresh_url) == []
    _check_search_objects(config, fresh_url)


def _check_search_objects(config, fresh_url: str) -> None:
    engine = build_engine(fresh_url)
    try:
        with engine.connect() as conn:
            made = _search_schema(conn)
        command.downgrade(config, "z007")
        with engine.connect() as conn:
            trigrams_only = _search_schema(conn)
        command.downgrade(config, "z005")
        with engine.connect() as conn:
            left = _search_schema(conn)
    finally:
        engine.dispose()
    if engine.dialect.name == "postgresql":
        _check_postgres_search(made, trigrams_only)
        assert left == {}
    else:
        _check_sqlite_search(made, trigrams_only)
        assert left == ({}, {})


def _check_postgres_search(made: dict, trigrams_only: dict) -> None:
    config = (True, ["search_path=public, pg_temp", "jit=off"])
    trigrams = made[event_search.PG_INDEX]
    assert "USING gin (tenant_id, " in trigrams[0] and "gin_trgm_ops" in trigrams[0]
    assert all(f"{c})::text" in trigrams[0] for c in event_search.COLUMNS)
    assert trigrams[1] == config
    pieces = made[event_search.PG_GRAM_INDEX]
    assert "USING gin (tenant_id, audit_event_grams(" in pieces[0]
    assert all(f"({c})::text" in pieces[0] for c in event_search.COLUMNS)
    assert pieces[1] == config
    # z006's index as z006 made it: the same expression, no tenant
    z006 = trigrams[0].replace("(tenant_id, ", "(")
    assert trigrams_only == {event_search.PG_INDEX: (z006, config)}


def _check_sqlite_search(made: tuple, trigrams_only: tuple) -> None:
    tables, triggers = made
    fts, grams = event_search.FTS_TABLE, event_search.FTS_GRAM_TABLE
    assert tables[fts].startswith(f"CREATE VIRTUAL TABLE {fts} USING fts5(")
    assert "tokenize='trigram'" in tables[fts]
    assert tables[grams].startswith(f"CREATE VIRTUAL TABLE {grams} USING fts5(")
    assert "detail=none" in tables[grams] and "tokenize='ascii'" in tables[grams]
    assert set(tables) == search_objects("sqlite")["table"] - {
        fts + "_content",  # contentless: the text is audit_event's
        grams + "_content",
        grams + "_docsize",  # columnsize=0
    }
    assert set(triggers) == {"audit_event_search_insert", "audit_event_search_delete"}
    assert all(grams in sql for sql in triggers.values())
    tables_before, triggers_before = trigrams_only
    assert set(tables_before) == set(tables) - {grams} - {grams + s for s in FTS5_SHADOWS}
    assert set(triggers_before) == set(triggers)
    assert not any(grams in sql for sql in triggers_before.values())


def _search_schema(conn) -> dict | tuple:
    if conn.dialect.name == "postgresql":
        rows = conn.execute(
            text(
                "SELECT i.indexname, i.indexdef, p.prosecdef, p.proconfig FROM pg_indexes i "
                "LEFT JOIN pg_proc p ON p.proname = CASE i.indexname "
                "WHEN :trigrams THEN :trigram_function ELSE :gram_function END "
                "WHERE i.indexname IN (:trigrams, :pieces)"
            ),
            {
                "trigrams": event_search.PG_INDEX,
                "pieces": event_search.PG_GRAM_INDEX,
                "trigram_function": event_search.PG_FUNCTION,
                "gram_function": event_search.PG_GRAM_FUNCTION,
            },
        ).all()
        return {r.indexname: (r.indexdef, (r.prosecdef, r.proconfig)) for r in rows}
    tables = dict(
        conn.execute(
            text("SELECT name, sql FROM sqlite_master WHERE type = 'table' AND name LIKE :p"),
            {"p": event_search.FTS_TABLE + "%"},
        ).all()
    )
    triggers = dict(
        conn.execute(
            text("SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND name LIKE :p"),
            {"p": event_search.FTS_TABLE + "%"},
        ).all()
    )
    return tables, triggers


def test_z008_indexes_the_events_written_before_it(fresh_url):
    """Events already in the log when z008 runs are found by one or two characters; downgraded,
    z006's triggers index new events again (a purge's DELETE: tests/security/test_audit_retention)."""
    config = alembic_config(fresh_url)
    command.upgrade(config, "z007")
    engine = build_engine(fresh_url)
    tenant_id = uuid.UUID(int=5)
    events = models.AuditEvent.__table__
    try:
        with engine.begin() as conn:
            conn.execute(
                insert(models.Tenant.__table__),
                {"id": tenant_id, "name": "移行消防団", "created_at": utcnow()},
            )
            conn.execute(
                insert(events), [_event(tenant_id, 1, "出動 H-1"), _event(tenant_id, 2, "水利")]
            )
        command.upgrade(config, "heads")
        found = {k: _found(engine, tenant_id, k) for k in ("出", "h-", "水利", "ー")}
        assert found == {"出": [1], "h-": [1], "水利": [2], "ー": []}
        command.downgrade(config, "z007")
        with engine.begin() as conn:
            conn.execute(insert(events), _event(tenant_id, 3, "水利点検"))
        assert _found(engine, tenant_id, "水利点検") == [3]
    finally:
        engine.dispose()


def _event(tenant_id: uuid.UUID, seq: int, memo: str) -> dict:
    return {
        "id": uuid.uuid4(),
        "tenant_id": tenant_id,
        "seq": seq,
        "occurred_at": utcnow(),
        "category": "operation",
        "action": "member.update",
        "outcome": "success",
        "actor_type": "system",
        "actor_id": "",
        "actor_label": "",
        "target_type": "",
        "target_id": "",
        "request_id": "",
        "client_addr": "",
        "user_agent": "",
        "details": json.dumps({"memo": memo}, ensure_ascii=False),
        "details_enc": "",
        "prev_hash": "0" * 64,
        "hash": "0" * 64,
    }


def _found(engine, tenant_id: uuid.UUID, keyword: str) -> list[int]:
    """The seqs the search index gives for keyword (the service's look-up, not the scan)."""
    e = models.AuditEvent
    query = scoped(select(e), system_actor(tenant_id)).where(event_search.matches(e, keyword))
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(
                text("SELECT set_config('app.tenant_id', :t, true)"), {"t": str(tenant_id)}
            )
        page = event_search.indexed_page(query, keyword, conn.dialect.name, 10)
        return [row.seq for row in conn.execute(page)]


def test_history_has_a_single_base():
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    assert len(script.get_bases()) == 1
