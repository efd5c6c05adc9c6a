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
from sqlalchemy import func, inspect, select
from sqlmodel import SQLModel

import models
from models import PLATFORM_TENANT_ID
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


def _differences(url: str) -> list:
    _all_models_imported()
    engine = build_engine(url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
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
    """What `alembic check` does: autogenerate finds nothing left to migrate."""
    command.upgrade(alembic_config(fresh_url), "heads")
    assert _differences(fresh_url) == []


def test_history_has_a_single_base():
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    assert len(script.get_bases()) == 1
