"""Encryption at rest: what lands on disk (the SQLite file and its WAL, or a pg_dump) holds no
member's personal data and no unwrapped key, and destroying a brigade's keys (crypto-shredding)
leaves its data unreadable while the other brigades carry on."""

from __future__ import annotations

import base64
import json
import subprocess
import uuid
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url
from sqlmodel import Session as DbSession
from sqlmodel import select

from core.personal import ENCRYPTED_MEMBER_FIELDS
from models import MemberPublic, MemberUpdate, TenantKey
from models.enums import Function, Level
from models.tenant import PLATFORM_TENANT_ID
from services import keys, members
from services import validation as v
from services.crypto import DecryptionError, TenantCipher, unwrap_key
from services.db import set_tenant, unit_of_work
from services.errors import NotFound, PermissionDenied, ValidationError
from tests.factories import PLATFORM, actor_with, admin, audit_events, make_member, make_tenant

PG_DUMP = Path("/usr/bin/pg_dump")

SEEDED = (
    {
        "name": "髙橋　🔥灯子",
        "kana": "ヒケシタカハシ　ヅヱヲ",
        "phone": "080-2468-1357",
        "email": "toko.hikeshi-at-rest@example.jp",
        "address": "岩手県火消市髙田町🚒三丁目4番5号",
    },
    {
        "name": "𠮷田　纏🧯之介",
        "kana": "ヨシダ　マトイノスケヰ",
        "phone": "0191-55-9731",
        "email": "matoi.at-rest@example.jp",
        "address": "宮城県纏郡🏮竜頭村字火の見2-8",
    },
)
EDITED_ADDRESS = "福島県纒町🔔半鐘通り9丁目"


def test_the_seed_covers_every_encrypted_member_field():
    assert all(tuple(values) == ENCRYPTED_MEMBER_FIELDS for values in SEEDED)


def seed_brigade() -> tuple[uuid.UUID, list[MemberPublic]]:
    tenant_id = make_tenant()
    people = [
        make_member(tenant_id, member_code=f"AR{uuid.uuid4().hex[:8]}", **values)
        for values in SEEDED
    ]
    people[1] = members.update_member(
        admin(tenant_id),
        people[1].id,
        data=MemberUpdate(address=EDITED_ADDRESS),
        expected_version=people[1].version,
    )
    return tenant_id, people


def personal_texts(people: list[MemberPublic]) -> set[str]:
    texts = {EDITED_ADDRESS}
    for values in SEEDED:
        texts |= set(values.values())
    for m in people:
        texts |= {getattr(m, name) for name in ENCRYPTED_MEMBER_FIELDS} | {v.phone_digits(m.phone)}
    return {t for t in texts if t}


def raw_keys(tenant_id: uuid.UUID) -> list[bytes]:
    with unit_of_work(tenant_id) as db:
        rows = db.exec(select(TenantKey).where(TenantKey.tenant_id == tenant_id)).all()
        return [unwrap_key(row) for row in rows]


def on_disk(engine, database_url: str) -> bytes:
    """Everything the database holds, as an attacker with the files or a backup would see it."""
    url = make_url(database_url)
    if engine.dialect.name == "sqlite":
        path = Path(url.database)
        wal = path.with_name(path.name + "-wal")
        return path.read_bytes() + (wal.read_bytes() if wal.exists() else b"")
    if not PG_DUMP.exists():
        pytest.fail(
            f"{PG_DUMP} is missing: install the PostgreSQL client (apt-get install postgresql-client)"
        )
    dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
    result = subprocess.run(
        [str(PG_DUMP), "--data-only", dsn], capture_output=True, check=False, timeout=120
    )
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    return result.stdout


def test_personal_data_is_not_stored_in_plaintext(engine, database_url):
    tenant_id, people = seed_brigade()

    dump = on_disk(engine, database_url)

    for member in people:
        assert member.member_code.encode() in dump  # not personal: proves we read the rows
    leaked = [text for text in personal_texts(people) if text.encode() in dump]
    assert leaked == []
    for raw in raw_keys(tenant_id):
        for form in (raw, base64.urlsafe_b64encode(raw).rstrip(b"="), base64.b64encode(raw)):
            assert form not in dump


def decrypt_details(engine, tenant_id: uuid.UUID) -> list[dict]:
    events = [e for e in audit_events(engine, tenant_id) if e.details_enc]
    assert events
    with unit_of_work(tenant_id) as db:
        cipher = TenantCipher(db, tenant_id)
        return [
            json.loads(cipher.decrypt(e.details_enc, field="audit_event.details", row_id=e.id))
            for e in events
        ]


def key_rows(engine, tenant_id: uuid.UUID) -> list[TenantKey]:
    with DbSession(engine) as db:
        set_tenant(db, tenant_id)
        return list(db.exec(select(TenantKey).where(TenantKey.tenant_id == tenant_id)).all())


def test_destroyed_keys_make_a_brigade_unreadable(engine, owner_engine):
    shredded, people = seed_brigade()
    other, others = seed_brigade()
    other_details = decrypt_details(engine, other)

    assert keys.destroy_tenant_keys(PLATFORM, shredded) == 3

    with pytest.raises(DecryptionError):
        members.get_member(admin(shredded), people[0].id)
    with pytest.raises(DecryptionError):
        members.list_members(admin(shredded))
    with pytest.raises(DecryptionError):
        decrypt_details(engine, shredded)
    with pytest.raises(DecryptionError):
        make_member(shredded)
    assert key_rows(engine, shredded) == []
    assert key_rows(owner_engine, shredded) == []

    assert [members.get_member(admin(other), m.id) for m in others] == others
    assert {m.id for m in members.list_members(admin(other))} == {m.id for m in others}
    assert decrypt_details(engine, other) == other_details
    assert len(key_rows(engine, other)) == 3


def test_destroying_keys_is_audited_in_the_platform_chain(engine):
    tenant_id, _ = seed_brigade()
    key_ids = sorted(row.key_id for row in key_rows(engine, tenant_id))
    wrapped = [row.wrapped for row in key_rows(engine, tenant_id)]

    keys.destroy_tenant_keys(PLATFORM, tenant_id)

    event = next(
        e
        for e in reversed(audit_events(engine, PLATFORM_TENANT_ID))
        if e.action == "key.destroy" and e.target_id == str(tenant_id)
    )
    assert json.loads(event.details) == {"destroyed_key_ids": key_ids}
    assert not any(w.split(":", 1)[1] in event.details for w in wrapped)
    assert not any(e.action == "key.destroy" for e in audit_events(engine, tenant_id))


def test_destroying_keys_not_permitted_for_a_brigade_admin(engine):
    tenant_id, people = seed_brigade()
    brigade_admin = actor_with(tenant_id, {f: Level.ADMIN for f in Function})

    with pytest.raises(PermissionDenied):
        keys.destroy_tenant_keys(brigade_admin, tenant_id)

    assert len(key_rows(engine, tenant_id)) == 3
    assert members.get_member(admin(tenant_id), people[0].id) == people[0]


def test_destroying_keys_bad_input(engine):
    with pytest.raises(ValidationError):
        keys.destroy_tenant_keys(PLATFORM, PLATFORM_TENANT_ID)
    with pytest.raises(NotFound):
        keys.destroy_tenant_keys(PLATFORM, uuid.uuid4())


def test_a_brigade_account_keeps_no_clear_copy_of_the_name(engine):
    """#16: local_account.display_name held the first administrator's full name in clear."""
    from models import LocalAccount
    from services import tenants

    login = f"first-{uuid.uuid4().hex[:8]}"
    tenants.create_brigade(
        PLATFORM,
        name=f"平文なし消防団{uuid.uuid4().hex[:6]}",
        municipality="",
        admin_code="001",
        admin_name="髙橋　平文子",
        admin_login=login,
        admin_password="long enough password 1",
    )
    with DbSession(engine) as db:
        row = db.exec(select(LocalAccount).where(LocalAccount.login_name == login)).one()
    assert row.display_name == ""
