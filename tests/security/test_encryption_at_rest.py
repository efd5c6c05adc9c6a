"""Encryption at rest: what lands on disk (the SQLite file and its WAL, or a pg_dump) holds no
registered personal value (core/personal.py) in any common encoding and no unwrapped key, and
destroying a brigade's keys (crypto-shredding) leaves its data unreadable while the other
brigades carry on."""

from __future__ import annotations

import base64
import contextlib
import json
import subprocess
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url
from sqlmodel import Session as DbSession
from sqlmodel import select

from core.personal import ENCRYPTED_MEMBER_FIELDS, PERSONAL_FIELDS
from models import MemberPublic, MemberUpdate, TenantKey
from models.dispatch import MailTransport
from models.enums import Function, Level
from models.tenant import PLATFORM_TENANT_ID
from models.water import WaterInspectionCreate
from services import event_log, keys, members, registrations, water_sources
from services import validation as v
from services.crypto import DecryptionError, TenantCipher, unwrap_key
from services.db import set_tenant, unit_of_work
from services.dispatch import callout, incident_map, incidents, intake, line_inbox
from services.dispatch.sources import token_of
from services.errors import NotFound, PermissionDenied, ValidationError
from services.signin import line_sessions, sessions
from tests.dispatch_factories import body, where
from tests.dispatch_factories import mail as dispatch_mail
from tests.dispatch_factories import make_source as make_dispatch_source
from tests.factories import (
    PLATFORM,
    actor_with,
    admin,
    audit_events,
    give_login,
    make_member,
    make_tenant,
    rank_id,
    request_context,
)
from tests.fakes.line_server import LOGIN_CHANNEL_ENV, configured
from tests.water_factories import make_source

PG_DUMP = Path("/usr/bin/pg_dump")

SEEDED = (
    {
        "name": "髙橋　🔥灯子",
        "kana": "ヒケシタカハシ　ヅヱヲ",
        "phone": "080-2468-1357",
        "email": "toko.hikeshi-at-rest@example.jp",
        "address": "岩手県火消市髙田町🚒三丁目4番5号",
        "notes": "休団（療養）2027年3月まで・腰椎椎間板ヘルニア",
    },
    {
        "name": "𠮷田　纏🧯之介",
        "kana": "ヨシダ　マトイノスケヰ",
        "phone": "0191-55-9731",
        "email": "matoi.at-rest@example.jp",
        "address": "宮城県纏郡🏮竜頭村字火の見2-8",
        "notes": "勤務先：纏郡立病院の看護師（夜勤あり）\n妻が第３分団に在籍",
    },
)
EDITED = {"address": "福島県纒町🔔半鐘通り9丁目", "notes": "復団予定：主治医の許可待ち🩺"}
INSPECTION = {
    "inspector_name": "纏屋🪣権兵衛",
    "notes": "吸管の口金に錆🔧、纏屋さん宅の井戸水を併用",
}
DISPATCH = {
    "place": "火消市纏町🔥五丁目7番地付近",
    "landmark": "纏屋🏮酒店",
    "map_url": "https://map.example.jp/?q=matoi-at-rest-7c1",
    "subject": "【出動指令】纏町🔥建物火災",
}
POSITION = {"latitude": 35.6172839, "longitude": 139.2468135}  # the incident map's pin
RAW_MARKER = "RAW-AT-REST-marker-93c1"  # only in the mail's raw text
ENVELOPE_FROM = "kanrinin.at-rest@fd.example.lg.jp"
IMAP_PASSWORD = "imap-pw-at-rest-5d2"
REPORT = {"activity": "纏🧯筒先で放水at-rest", "returned": "纏屋🪣終了時刻の訂正at-rest"}
SEARCHED = "纏屋の権兵衛🧯さん"  # a free-text search, kept in the audit record's personal part
UNIT = "第9分団🧯纏班"  # not personal: stored in clear, proves the scan finds such text
# Registered but kept in clear: operators' display names; brigade accounts hold none (u001).
CLEAR_FIELDS = {("local_account", "display_name")}


def test_the_seed_covers_every_encrypted_member_field():
    assert all(tuple(values) == ENCRYPTED_MEMBER_FIELDS for values in SEEDED)


def test_only_operators_display_names_are_registered_in_clear():
    assert {(f.table, f.name) for f in PERSONAL_FIELDS if not f.encrypted} == CLEAR_FIELDS


def seed_brigade() -> tuple[uuid.UUID, list[MemberPublic]]:
    tenant_id = make_tenant()
    people = [
        make_member(tenant_id, member_code=f"AR{uuid.uuid4().hex[:8]}", affiliation=UNIT, **values)
        for values in SEEDED
    ]
    people[1] = members.update_member(
        admin(tenant_id),
        people[1].id,
        data=MemberUpdate(**EDITED),
        expected_version=people[1].version,
    )
    return tenant_id, people


def seed_everything() -> tuple[uuid.UUID, dict[tuple[str, str], set[str]], set[str]]:
    """A brigade with a distinctive value in every registered encrypted field: members (one
    edited, so audit details hold before and after), an inspection by an outsider with notes, a
    member linked to LINE through a redeemed code, a LINE sign-in still pending, and a search
    of the event log. Returns the brigade, the values by (table, field), and clear texts that
    must be found (proof that the scan reads the rows)."""
    tenant_id, people = seed_brigade()
    source = make_source(tenant_id, unit=UNIT)
    water_sources.record_inspection(
        admin(tenant_id),
        source.id,
        data=WaterInspectionCreate(inspected_on=date(2026, 5, 1), result="異常なし", **INSPECTION),
    )
    linked, waiting = (f"U{uuid.uuid4().hex}" for _ in range(2))
    with configured(LOGIN_CHANNEL_ENV):
        issued = registrations.issue_registration(admin(tenant_id), people[0].id)
    line = sessions.resolve(
        line_sessions.complete_login(linked, "", request_context()).token, request_context()
    )
    assert registrations.redeem(line, user_id=issued.user_id, code=issued.code).token
    line_sessions.complete_login(waiting, "", request_context())
    give_login(tenant_id, people[1].id)
    event_log.query_events(admin(tenant_id), event_log.EventFilter(text=SEARCHED))
    token = seed_dispatch(tenant_id)
    seed_report(tenant_id, people[0].id)

    member_values = [*SEEDED, EDITED, *(m.model_dump() for m in people)]
    seeded = {
        ("member", f): {str(values[f]) for values in member_values if values.get(f)}
        for f in ENCRYPTED_MEMBER_FIELDS
    }
    seeded[("member", "phone")] |= {v.phone_digits(values["phone"]) for values in SEEDED}
    seeded |= {("water_inspection", f): {value} for f, value in INSPECTION.items()}
    seeded[("member_line", "sub")] = {linked}
    seeded[("line_pending_login", "sub")] = {waiting}
    seeded[("audit_event", "details")] = {SEARCHED}
    seeded |= {("incident", f): {value} for f, value in DISPATCH.items()}
    seeded[("inbound_mail", "raw")] = {RAW_MARKER}
    seeded[("inbound_mail", "envelope")] = {ENVELOPE_FROM}
    seeded[("mail_source", "address_token")] = {token}
    seeded[("mail_source", "imap_password")] = {IMAP_PASSWORD}
    seeded[("callout", "messages")] = {DISPATCH["landmark"]}
    seeded[("incident", "position")] = {str(POSITION["latitude"])}
    seeded[("line_webhook_event", "event")] = {seed_webhook_event()}
    seeded |= {("activity_report", f): {value} for f, value in REPORT.items()}
    seeded[("report_step", "comment")] = {REPORT["returned"]}  # the return's reason
    seeded[("pre_change_backup", "data")] = {seed_pre_change_backup(tenant_id)}
    found = {m.member_code for m in people} | {source.code, UNIT}
    return tenant_id, seeded, found


def seed_report(tenant_id: uuid.UUID, member_id: uuid.UUID) -> None:
    """An 出動報告 entered for a member (its activity) and returned by the 団長 (the reason, on
    the report and on its step)."""
    from services.reports import approvals, reports
    from tests.report_factories import actor_of

    start = datetime.now(UTC) - timedelta(hours=5)
    entry = reports.ReportInput("訓練", REPORT["activity"], start, start + timedelta(hours=2))
    view = reports.save_report(admin(tenant_id), None, entry, member_id=member_id, submit=True)
    chief = make_member(tenant_id, rank_id=rank_id(tenant_id, "団長"), affiliation=UNIT)
    approvals.return_report(
        actor_of(tenant_id, chief.id),
        view.id,
        expected_version=view.version,
        reason=REPORT["returned"],
    )


def seed_pre_change_backup(tenant_id: uuid.UUID) -> str:
    """An automatic backup taken before a bulk change (#17); returns the text it seals (the
    ZIP in base64)."""
    from core.access import Need
    from models.enums import Function, Level
    from services import pre_change
    from services.base import transaction

    actor = admin(tenant_id)
    with transaction(actor, Need(Function.RESTORE, Level.EDIT), action="test.seed") as tx:
        entry = pre_change.take(tx, "テスト")
        tx.commit()
    return base64.b64encode(pre_change.backup_data(actor, entry.id)).decode()


def seed_webhook_event() -> str:
    """A LINE webhook event kept and not yet handled; returns its LINE user id."""
    user_id = f"U{uuid.uuid4().hex}"
    event = {"webhookEventId": uuid.uuid4().hex, "type": "follow", "source": {"userId": user_id}}
    assert line_inbox.keep([event])
    return user_id


def seed_dispatch(tenant_id: uuid.UUID) -> str:
    """A dispatch mail received into an incident (place, landmark, map link, subject; the raw
    mail and its envelope), and a mailbox source with a password. Returns the address token."""
    source = make_dispatch_source(tenant_id)
    make_dispatch_source(
        tenant_id,
        transport=MailTransport.IMAP,
        imap_host="127.0.0.1",
        imap_username="dispatch",
        imap_password=IMAP_PASSWORD,
    )
    text = body(place=DISPATCH["place"], landmark=DISPATCH["landmark"], extra=RAW_MARKER)
    text += DISPATCH["map_url"] + "\n"
    raw = dispatch_mail(source.address, text, subject=DISPATCH["subject"], charset="utf-8")
    outcome = intake.receive(where(source), raw, envelope_from=ENVELOPE_FROM)
    assert outcome.incident_id is not None
    (incident,) = incidents.list_incidents(admin(tenant_id))
    assert (incident.place, incident.map_url) == (DISPATCH["place"], DISPATCH["map_url"])
    assert callout.call_out(admin(tenant_id), incident.id, (UNIT,))  # a wave names the landmark
    incident_map.pin_position(admin(tenant_id), incident.id, **POSITION)
    token = token_of(source.address)
    assert token
    return token


def test_the_seed_covers_every_registered_encrypted_field(engine):
    _, seeded, _ = seed_everything()
    encrypted = {(f.table, f.name) for f in PERSONAL_FIELDS if f.encrypted}
    assert set(seeded) == encrypted
    assert all(seeded.values())


def encodings(text: str) -> set[bytes]:
    """The byte forms a value could take on disk: UTF-8 (and as pg_dump escapes it), UTF-16,
    the Japanese legacy encodings, JSON's ASCII escapes; and each line of a multi-line value."""
    forms = set()
    for part in {text, *(line for line in text.splitlines() if len(line) >= 4)}:
        copy_escaped = part.replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t")
        forms |= {part.encode(), copy_escaped.encode(), json.dumps(part)[1:-1].encode()}
        for codec in ("utf-16-le", "utf-16-be", "cp932", "euc_jp"):
            with contextlib.suppress(UnicodeEncodeError):  # characters it cannot hold
                forms.add(part.encode(codec))
    return forms


def hits(dump: bytes, seeded: dict[tuple[str, str], set[str]]) -> dict[str, int]:
    """How many seeded values of each field appear on disk in any of their forms."""
    return {
        f"{table}.{name}": sum(any(form in dump for form in encodings(t)) for t in texts)
        for (table, name), texts in seeded.items()
    }


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
        # Read by another process: closing a file descriptor of the database in this process
        # would drop every lock SQLite holds on it here (POSIX locks are per process), and the
        # next process to close its connection would then delete the WAL index under our feet.
        files = [str(path)] + ([str(wal)] if wal.exists() else [])
        return subprocess.run(["cat", *files], capture_output=True, check=True).stdout
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
    """#16: a scan of the SQLite file (and its WAL) or of pg_dump for every seeded value."""
    tenant_id, seeded, found = seed_everything()

    dump = on_disk(engine, database_url)

    assert all(text.encode() in dump for text in found)  # the scan reads the rows
    assert hits(dump, {("member", "affiliation"): {UNIT}}) == {"member.affiliation": 1}
    assert hits(dump, seeded) == dict.fromkeys(hits(dump, seeded), 0)
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
    tenant_id = tenants.create_brigade(
        PLATFORM,
        name=f"平文なし消防団{uuid.uuid4().hex[:6]}",
        municipality="",
        admin_code="001",
        admin_name="髙橋　平文子",
        admin_login=login,
        admin_password="long enough password 1",
    )
    with DbSession(engine) as db:
        set_tenant(db, tenant_id)  # the account is the brigade's, under its row-level security
        row = db.exec(select(LocalAccount).where(LocalAccount.login_name == login)).one()
    assert row.display_name == ""
