"""Migration v001 with data present: member 備考 and inspection notes written in clear by the
earlier schema are sealed on upgrade (readable through the services, absent from the stored
rows), opened again on downgrade, and a brigade whose keys were destroyed keeps none.

Runs on a database of its own (SQLite file or PostgreSQL database), which the application uses
for the length of the test, as the application role on PostgreSQL."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import date

import pytest
from alembic import command
from sqlalchemy import Engine, Uuid, bindparam, inspect, text
from sqlalchemy.engine import make_url

from models.water import WaterInspectionCreate
from services import keys, members, water_sources
from services.db import build_engine, current_engine, set_engine
from tests.conftest import (
    APP_ROLE,
    _create_postgres_database,
    _drop_postgres_database,
    alembic_config,
)
from tests.factories import PLATFORM, admin, make_member, make_tenant
from tests.water_factories import make_source

BEFORE = "u001"
HEALTH = "休団（療養）2026年3月まで・腰椎"
WORK = "勤務先：火消市立病院 看護師（夜勤あり）"
INSPECTION = "吸管の口金に錆、分団長に報告"


@pytest.fixture
def migrated(engine, tmp_path) -> Iterator[str]:
    """The owner's URL of a fresh database at head, used by the application meanwhile."""
    server = os.environ.get("HIKESHI_TEST_DATABASE_URL")
    if server:
        owner_url, name = _create_postgres_database(server)
        app_url = make_url(owner_url).set(username=APP_ROLE, password=None)
        app_url = app_url.render_as_string(hide_password=False)
    else:
        owner_url = app_url = f"sqlite:///{tmp_path / 'notes.db'}"
        name = ""
    command.upgrade(alembic_config(owner_url), "heads")
    shared, own = current_engine(), build_engine(app_url)
    set_engine(own)
    try:
        yield owner_url
    finally:
        set_engine(shared)
        own.dispose()
        if name:
            _drop_postgres_database(server, name)


def _stored(owner: Engine, table: str, column: str) -> dict[uuid.UUID, str]:
    """A column of every row, read by the schema owner (past row-level security: the
    PostgreSQL test server's owner is a superuser)."""
    with owner.connect() as conn:
        rows = conn.execute(text(f"SELECT id, {column} FROM {table}")).all()
    return {uuid.UUID(str(row_id)): value for row_id, value in rows}


def _columns(owner: Engine, table: str) -> set[str]:
    with owner.connect() as conn:
        return {c["name"] for c in inspect(conn).get_columns(table)}


def _inspect(tenant_id: uuid.UUID, notes: str) -> uuid.UUID:
    source = make_source(tenant_id)
    data = WaterInspectionCreate(inspected_on=date(2026, 5, 1), result="異常なし", notes=notes)
    return water_sources.record_inspection(admin(tenant_id), source.id, data=data).water_source_id


def test_notes_are_sealed_on_upgrade_and_opened_on_downgrade(migrated):
    config = alembic_config(migrated)
    brigade = make_tenant()
    ill = make_member(brigade, notes="仮")
    quiet = make_member(brigade)
    inspected = _inspect(brigade, INSPECTION)
    plain = _inspect(brigade, "")
    shredded = make_tenant()
    gone = make_member(shredded, notes=HEALTH)
    keys.destroy_tenant_keys(PLATFORM, shredded)

    command.downgrade(config, BEFORE)
    owner = build_engine(migrated)
    try:
        assert "notes_enc" not in _columns(owner, "member") | _columns(owner, "water_inspection")
        notes = _stored(owner, "member", "notes")
        assert (notes[ill.id], notes[quiet.id], notes[gone.id]) == ("仮", "", "")
        assert set(_stored(owner, "water_inspection", "notes").values()) == {INSPECTION, ""}
        # What the earlier version wrote in clear, as the upgrade finds it.
        update = text("UPDATE member SET notes = :notes WHERE id = :id").bindparams(
            bindparam("id", type_=Uuid())
        )
        with owner.begin() as conn:
            for member_id, value in ((ill.id, HEALTH), (quiet.id, WORK)):
                conn.execute(update, {"notes": value, "id": member_id})
        owner.dispose()

        command.upgrade(config, "heads")

        assert "notes" not in _columns(owner, "member") | _columns(owner, "water_inspection")
        sealed = _stored(owner, "member", "notes_enc")
        assert all(value.startswith("v1:") for i, value in sealed.items() if i != gone.id)
        assert sealed[gone.id] == ""
        inspection_notes = _stored(owner, "water_inspection", "notes_enc").values()
        assert sorted(v[:3] for v in inspection_notes) == ["", "v1:"]
        with owner.connect() as conn:
            dumped = "".join(
                str(row)
                for table in ("member", "water_inspection")
                for row in conn.execute(text(f"SELECT * FROM {table}")).all()
            )
        assert not [t for t in (HEALTH, WORK, INSPECTION, "仮") if t in dumped]
    finally:
        owner.dispose()

    actor = admin(brigade)
    assert members.get_member(actor, ill.id).notes == HEALTH
    assert members.get_member(actor, quiet.id).notes == WORK
    assert [i.notes for i in water_sources.list_inspections(actor, inspected)] == [INSPECTION]
    assert [i.notes for i in water_sources.list_inspections(actor, plain)] == [""]
