"""Key rotation (services/keys.py): master-key re-wrap, tenant data-key rotation and its resume
after an interruption, with the other tenants left byte for byte as they were."""

from __future__ import annotations

import base64
import json
import re
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import date

import pytest
from sqlalchemy import text
from sqlmodel import Session as DbSession
from sqlmodel import select

import config
from core.actor import system_actor
from core.personal import ENCRYPTED_MEMBER_FIELDS, PERSONAL_FIELDS, personal_fields
from models import Member, MemberLine, MemberPublic, MemberUpdate, Tenant, TenantKey
from models.enums import AuditCategory, Function, Level
from models.tenant import PLATFORM_TENANT_ID
from models.water import WaterInspection, WaterInspectionCreate
from services import audit, keys, members, water_sources
from services.crypto import AUDIT, DATA, INDEX, TenantCipher
from services.db import set_tenant, unit_of_work
from services.errors import NotFound, PermissionDenied, ValidationError
from services.keys import KeyStateError
from services.signin import line_sessions
from tests.factories import (
    PLATFORM,
    actor_with,
    admin,
    audit_events,
    last_audit_seq,
    make_member,
    make_tenant,
)
from tests.water_factories import make_source

MasterKeys = Callable[[dict[str, bytes], str], None]


def _spec(master_keys: dict[str, bytes]) -> str:
    return ",".join(
        f"{kid}:{base64.urlsafe_b64encode(raw).decode()}" for kid, raw in master_keys.items()
    )


@pytest.fixture
def master_keys(engine) -> Iterator[MasterKeys]:
    """Configure master keys for one test. Afterwards every tenant key is wrapped by the original
    master key again and the original settings are back, so the rest of the session runs as
    before."""
    original = config.get_settings()
    seen: dict[str, bytes] = dict(original.master_keys)
    with pytest.MonkeyPatch.context() as mp:

        def configure(master: dict[str, bytes], active: str) -> None:
            seen.update(master)
            mp.setenv("HIKESHI_MASTER_KEYS", _spec(master))
            mp.setenv("HIKESHI_ACTIVE_MASTER_KEY", active)
            config.get_settings.cache_clear()

        yield configure
        configure(seen, original.active_master_key_id)
        restored = keys.rotate_master_key(PLATFORM)
    config.get_settings.cache_clear()
    assert restored.ok, restored.failures


def tenant_ids(engine) -> list[uuid.UUID]:
    with DbSession(engine) as db:
        return list(db.exec(select(Tenant.id)).all())


def stored_keys(engine, tenant_id: uuid.UUID) -> dict[str, dict]:
    """The tenant's key rows as stored, by key id (read under its row-level security)."""
    with DbSession(engine) as db:
        set_tenant(db, tenant_id)
        rows = db.exec(select(TenantKey).where(TenantKey.tenant_id == tenant_id)).all()
        return {row.key_id: row.model_dump() for row in rows}


def stored_members(engine, tenant_id: uuid.UUID) -> dict[uuid.UUID, dict]:
    with DbSession(engine) as db:
        set_tenant(db, tenant_id)
        rows = db.exec(select(Member).where(Member.tenant_id == tenant_id)).all()
        return {row.id: row.model_dump() for row in rows}


def stored_values(engine, tenant_id: uuid.UUID) -> list[str]:
    return [
        row[f"{name}_enc"]
        for row in stored_members(engine, tenant_id).values()
        for name in ENCRYPTED_MEMBER_FIELDS
    ]


def key_of(stored: str) -> str:
    return stored.split(":")[1]


def data_key(engine, tenant_id: uuid.UUID, *, active: bool = True) -> list[str]:
    return [
        kid
        for kid, row in stored_keys(engine, tenant_id).items()
        if row["purpose"] == DATA and row["active"] == active
    ]


def roster(tenant_id: uuid.UUID) -> list[MemberPublic]:
    return members.list_members(admin(tenant_id))


def personal_details(engine, tenant_id: uuid.UUID) -> dict[uuid.UUID, dict]:
    """Every encrypted audit detail of the tenant, decrypted."""
    events = [e for e in audit_events(engine, tenant_id) if e.details_enc]
    with unit_of_work(tenant_id) as db:
        cipher = TenantCipher(db, tenant_id)
        return {
            e.id: json.loads(
                cipher.decrypt(e.details_enc, field="audit_event.details", row_id=e.id)
            )
            for e in events
        }


@pytest.fixture
def brigade(engine) -> uuid.UUID:
    """A brigade with seven members, one of them edited (so audit details hold before/after)."""
    tenant_id = make_tenant()
    people = [make_member(tenant_id, address=f"火消市本町{n}丁目") for n in range(7)]
    members.update_member(
        admin(tenant_id),
        people[0].id,
        data=MemberUpdate(address="火消市新町1丁目"),
        expected_version=people[0].version,
    )
    return tenant_id


@pytest.fixture
def bystander(engine) -> uuid.UUID:
    tenant_id = make_tenant()
    for _ in range(2):
        make_member(tenant_id)
    return tenant_id


# ---------------------------------------------------------------------------
# Master key


def test_master_rotation_rewraps_every_tenant_key(engine, master_keys, brigade, bystander):
    before = {t: roster(t) for t in (brigade, bystander)}
    details = personal_details(engine, brigade)
    old = config.get_settings()
    new_master = secrets.token_bytes(32)
    master_keys({**old.master_keys, "m2": new_master}, "m2")
    assert roster(brigade) == before[brigade]
    start = last_audit_seq(engine, brigade)

    report = keys.rotate_master_key(PLATFORM)

    assert report.ok
    assert report.keys_rewrapped >= 6
    for tenant_id in tenant_ids(engine):
        assert {
            row["wrapped"].split(":")[0] for row in stored_keys(engine, tenant_id).values()
        } <= {"m2"}
    assert len(stored_keys(engine, brigade)) == 3
    events = audit_events(engine, brigade, after_seq=start)
    assert [(e.category, e.action) for e in events] == [
        (str(AuditCategory.OPERATION), "key.master_rewrap")
    ]
    assert json.loads(events[0].details) == {
        "rewrapped": 3,
        "from_master_key_ids": [old.active_master_key_id],
        "to_master_key_id": "m2",
    }

    master_keys({"m2": new_master}, "m2")
    assert {t: roster(t) for t in (brigade, bystander)} == before
    assert personal_details(engine, brigade) == details
    again = keys.rotate_master_key(PLATFORM)
    assert (again.keys_rewrapped, again.tenants) == (0, 0)
    assert audit_events(engine, brigade, after_seq=start) == events


def test_master_rotation_without_the_old_master_key_changes_nothing(engine, master_keys, brigade):
    before = stored_keys(engine, brigade)
    master_keys({"m3": secrets.token_bytes(32)}, "m3")

    report = keys.rotate_master_key(PLATFORM)

    assert not report.ok
    assert brigade in report.failures
    assert "is not configured" in report.failures[brigade]
    assert stored_keys(engine, brigade) == before


@pytest.mark.parametrize(
    "make_actor",
    [
        lambda t: actor_with(t, {f: Level.ADMIN for f in Function}),
        lambda t: system_actor(t, label="tenant-system"),
    ],
    ids=["brigade-admin", "tenant-scoped-system"],
)
def test_key_operations_not_permitted_inside_a_brigade(engine, brigade, make_actor):
    actor = make_actor(brigade)
    before = stored_keys(engine, brigade)
    start = last_audit_seq(engine, brigade)
    for operation in (
        lambda: keys.rotate_master_key(actor),
        lambda: keys.rotate_tenant_data_key(actor, brigade),
        lambda: keys.destroy_tenant_keys(actor, brigade),
    ):
        with pytest.raises(PermissionDenied):
            operation()
    assert stored_keys(engine, brigade) == before
    denials = audit_events(engine, brigade, after_seq=start)
    assert [(e.category, e.action, e.outcome) for e in denials] == [
        (str(AuditCategory.AUTH), "permission_denied", "denied")
    ] * 3
    assert [json.loads(e.details)["attempted"] for e in denials] == [
        "key.master_rewrap",
        "key.data_rotate",
        "key.destroy",
    ]


# ---------------------------------------------------------------------------
# Tenant data key


def test_data_key_rotation_reencrypts_every_value(engine, brigade, bystander):
    before = roster(brigade)
    details = personal_details(engine, brigade)
    rows = stored_members(engine, brigade)
    old_keys = stored_keys(engine, brigade)
    (old,) = data_key(engine, brigade)
    other_rows, other_keys = stored_members(engine, bystander), stored_keys(engine, bystander)
    start = last_audit_seq(engine, brigade)

    report = keys.rotate_tenant_data_key(PLATFORM, brigade, batch_size=3)

    assert report.ok
    assert (report.rows_reencrypted, report.resumed) == (7, False)
    assert report.deleted_key_ids == [old]
    assert data_key(engine, brigade) == [report.new_key_id] != [old]
    assert data_key(engine, brigade, active=False) == []
    assert all(key_of(value) == report.new_key_id for value in stored_values(engine, brigade))
    assert not any(old in value for value in stored_values(engine, brigade))
    unchanged = {kid: row for kid, row in old_keys.items() if row["purpose"] in (INDEX, AUDIT)}
    assert {k: r for k, r in stored_keys(engine, brigade).items() if k != report.new_key_id} == (
        unchanged
    )
    after_rows = stored_members(engine, brigade)
    for member_id, row in rows.items():
        for column in ("phone_bidx", "version", "updated_at", "member_code"):
            assert after_rows[member_id][column] == row[column]
    assert roster(brigade) == before
    assert [members.get_member(admin(brigade), m.id) for m in before] == before
    assert personal_details(engine, brigade) == details
    assert (stored_members(engine, bystander), stored_keys(engine, bystander)) == (
        other_rows,
        other_keys,
    )

    events = audit_events(engine, brigade, after_seq=start)
    assert [e.action for e in events] == ["key.data_rotate.start", "key.data_rotate.finish"]
    assert json.loads(events[0].details) == {
        "new_key_id": report.new_key_id,
        "old_key_ids": [old],
        "resumed": False,
    }
    assert json.loads(events[1].details)["deleted_key_ids"] == [old]
    for event in events:
        assert not any(row["wrapped"] in event.details for row in old_keys.values())


def test_values_written_after_rotation_use_the_new_key(engine, brigade):
    report = keys.rotate_tenant_data_key(PLATFORM, brigade)
    created = make_member(brigade, name="髙木　新")
    stored = stored_members(engine, brigade)[created.id]
    assert {key_of(stored[f"{n}_enc"]) for n in ENCRYPTED_MEMBER_FIELDS} == {report.new_key_id}
    assert members.get_member(admin(brigade), created.id) == created
    second = keys.rotate_tenant_data_key(PLATFORM, brigade)
    assert second.deleted_key_ids == [report.new_key_id]
    assert members.get_member(admin(brigade), created.id) == created


def test_rotation_covers_every_field_sealed_with_the_data_key():
    """A registered field the rotation skipped would lose its key with the old one. Audit
    details have their own key; a pending LINE login and a LINE webhook event not yet handled
    are sealed with platform keys."""
    own_keys = {
        ("audit_event", "details"),
        ("line_pending_login", "sub"),
        ("line_webhook_event", "event"),
    }
    sealed = {(f.table, f.name) for f in PERSONAL_FIELDS if f.encrypted} - own_keys
    rotated = {
        (model.__tablename__, f.name)
        for model in keys.REENCRYPTED
        for f in personal_fields(str(model.__tablename__), encrypted=True)
    }
    assert rotated == sealed


def test_data_key_rotation_reencrypts_inspections_and_line_links(engine, brigade):
    """Every table sealed with the data key moves to the new one, not only the roster: an
    inspection's outside inspector and notes, and a member's LINE user id."""
    person = roster(brigade)[0]
    source = make_source(brigade)
    for values in ({"inspector_name": "纏屋　権兵衛", "notes": "吸管に錆"}, {}):
        data = WaterInspectionCreate(inspected_on=date(2026, 5, 1), result="異常なし", **values)
        water_sources.record_inspection(admin(brigade), source.id, data=data)
    sub = f"U{uuid.uuid4().hex}"
    with unit_of_work(brigade) as db:
        cipher = TenantCipher(db, brigade)
        bidx = cipher.blind_index(sub, field=line_sessions.SUB_FIELD)
        link = MemberLine(tenant_id=brigade, member_id=person.id, sub_enc="", sub_bidx=bidx)
        link.sub_enc = cipher.encrypt(sub, field=line_sessions.SUB_FIELD, row_id=link.id)
        db.add(link)
        db.commit()
    inspections = water_sources.list_inspections(admin(brigade), source.id)

    report = keys.rotate_tenant_data_key(PLATFORM, brigade, batch_size=1)

    assert report.ok and report.rows_reencrypted == 7 + 1 + 1
    with DbSession(engine) as db:
        set_tenant(db, brigade)
        rows = db.exec(select(WaterInspection).where(WaterInspection.tenant_id == brigade)).all()
        stored = [r.inspector_name_enc for r in rows] + [r.notes_enc for r in rows]
        stored += db.exec(select(MemberLine.sub_enc).where(MemberLine.tenant_id == brigade)).all()
    sealed = [value for value in stored if value]
    assert len(sealed) == 3 and {key_of(value) for value in sealed} == {report.new_key_id}
    assert water_sources.list_inspections(admin(brigade), source.id) == inspections
    with unit_of_work(brigade) as db:
        link = db.exec(select(MemberLine).where(MemberLine.tenant_id == brigade)).one()
        opened = TenantCipher(db, brigade).decrypt(
            link.sub_enc, field=line_sessions.SUB_FIELD, row_id=link.id
        )
    assert opened == sub


class Interrupted(Exception):
    pass


def test_interrupted_rotation_resumes_where_it_stopped(engine, brigade, bystander):
    before = roster(brigade)
    (old,) = data_key(engine, brigade)
    other_rows = stored_members(engine, bystander)

    def stop_after_first_batch(_done: int) -> None:
        raise Interrupted()

    with pytest.raises(Interrupted):
        keys.rotate_tenant_data_key(
            PLATFORM, brigade, batch_size=2, on_batch=stop_after_first_batch
        )

    (new,) = data_key(engine, brigade)
    assert data_key(engine, brigade, active=False) == [old]
    rows = stored_members(engine, brigade).values()
    moved = [r for r in rows if all(key_of(r[f"{n}_enc"]) == new for n in ENCRYPTED_MEMBER_FIELDS)]
    assert len(moved) == 2
    assert roster(brigade) == before
    midway = make_member(brigade)

    report = keys.rotate_tenant_data_key(PLATFORM, brigade, batch_size=2)

    assert report.ok
    assert (report.resumed, report.new_key_id, report.rows_reencrypted) == (True, new, 5)
    assert report.deleted_key_ids == [old]
    assert not any(old in value for value in stored_values(engine, brigade))
    assert {key_of(value) for value in stored_values(engine, brigade)} == {new}
    assert roster(brigade) == sorted(
        [*before, midway], key=lambda m: (m.kana or "\uffff", m.member_code)
    )
    assert stored_members(engine, bystander) == other_rows


def test_rotation_interrupted_before_the_old_key_is_deleted_resumes(engine, brigade, monkeypatch):
    before = roster(brigade)
    (old,) = data_key(engine, brigade)

    def crash(*_args: object) -> bool:
        raise Interrupted()

    with monkeypatch.context() as mp:
        mp.setattr(keys, "_finish_rotation", crash)
        with pytest.raises(Interrupted):
            keys.rotate_tenant_data_key(PLATFORM, brigade)
    assert data_key(engine, brigade, active=False) == [old]

    report = keys.rotate_tenant_data_key(PLATFORM, brigade)

    assert (report.resumed, report.rows_reencrypted, report.deleted_key_ids) == (True, 0, [old])
    assert stored_keys(engine, brigade).keys().isdisjoint({old})
    assert roster(brigade) == before


def test_old_data_key_kept_while_audit_events_use_it(engine, brigade, monkeypatch):
    """Audit rows cannot be re-encrypted; should one ever be sealed with the data key, that key
    must survive the rotation rather than take the audit detail with it."""
    (old,) = data_key(engine, brigade)
    with monkeypatch.context() as mp:
        mp.setattr(audit, "AUDIT", DATA)
        make_member(brigade)
    details = personal_details(engine, brigade)
    assert old in {key_of(e.details_enc) for e in audit_events(engine, brigade) if e.details_enc}

    report = keys.rotate_tenant_data_key(PLATFORM, brigade)

    assert not report.ok
    assert (report.retained_key_ids, report.deleted_key_ids) == ([old], [])
    assert {key_of(value) for value in stored_values(engine, brigade)} == {report.new_key_id}
    assert personal_details(engine, brigade) == details


@pytest.mark.postgres_only
def test_old_key_outlives_a_writer_that_loaded_it_before_the_switch(engine, owner_engine, brigade):
    """A writer that read the keys before the rotation started may still commit a value under
    the old key; the rotation must wait for it and re-encrypt that value before deleting the key.
    (On SQLite every transaction begins IMMEDIATE, so the two cannot overlap.)"""
    if engine.dialect.name != "postgresql":
        pytest.skip("concurrent transactions are serialised on SQLite")
    (old,) = data_key(engine, brigade)
    target = roster(brigade)[0]
    outcome: dict[str, object] = {}
    with DbSession(engine) as writer:
        set_tenant(writer, brigade)
        stale_cipher = TenantCipher(writer, brigade)
        row = writer.get(Member, target.id)

        def rotate() -> None:
            try:
                outcome["report"] = keys.rotate_tenant_data_key(PLATFORM, brigade)
            except Exception as exc:  # reported by the assertion below
                outcome["error"] = exc

        rotation = threading.Thread(target=rotate)
        rotation.start()
        assert _waits_for_tenant_key_lock(owner_engine), "rotation did not wait for the writer"
        row.name_enc = stale_cipher.encrypt("髙野　遅筆", field="member.name", row_id=row.id)
        writer.add(row)
        writer.commit()
        rotation.join(timeout=30)

    assert "error" not in outcome, outcome
    report = outcome["report"]
    assert report.deleted_key_ids == [old]
    assert report.rows_reencrypted == 8
    assert {key_of(value) for value in stored_values(engine, brigade)} == {report.new_key_id}
    assert members.get_member(admin(brigade), target.id).name == "髙野　遅筆"


def _waits_for_tenant_key_lock(owner_engine, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with owner_engine.connect() as conn:
            waiting = conn.execute(
                text(
                    "SELECT count(*) FROM pg_locks "
                    "WHERE relation = 'tenant_key'::regclass AND NOT granted"
                )
            ).scalar_one()
        if waiting:
            return True
        time.sleep(0.05)
    return False


def test_data_key_rotation_bad_input(engine, brigade):
    with pytest.raises(ValidationError):
        keys.rotate_tenant_data_key(PLATFORM, brigade, batch_size=0)
    for missing in (uuid.uuid4(), PLATFORM_TENANT_ID):
        with pytest.raises(NotFound):
            keys.rotate_tenant_data_key(PLATFORM, missing)
    keys.destroy_tenant_keys(PLATFORM, brigade)
    with pytest.raises(KeyStateError):
        keys.rotate_tenant_data_key(PLATFORM, brigade)


# ---------------------------------------------------------------------------
# Command line entry points


def test_cli_rotate_tenant_by_name_and_id(engine, brigade, capsys):
    with unit_of_work(PLATFORM_TENANT_ID) as db:
        name = db.get(Tenant, brigade).name
    (old,) = data_key(engine, brigade)

    assert keys.main_rotate_tenant(name) == 0
    assert keys.main_rotate_tenant(str(brigade)) == 0

    out = capsys.readouterr().out
    assert out.count("完了 / done") == 2
    assert f"deleted {old}" in out
    assert "re-encrypted 7 rows" in out
    assert keys.main_rotate_tenant("存在しない消防団") == 2
    assert "brigade not found" in capsys.readouterr().err


def test_cli_rotate_master(engine, master_keys, brigade, capsys):
    master_keys({**config.get_settings().master_keys, "m4": secrets.token_bytes(32)}, "m4")
    assert keys.main_rotate_master() == 0
    assert keys.main_rotate_master() == 0
    first, second = (line for line in capsys.readouterr().out.splitlines() if "done" in line)
    assert re.search(r"done: [1-9]\d* 鍵 keys", first), first
    assert "done: 0 鍵 keys re-wrapped in 0 団" in second
