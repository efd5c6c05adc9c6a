"""Dispatch mail intake (#20): routing, the sender checks, duplicates, follow-ups, 要確認, the
メール受信ログ and its audit events, raw mail sealed and shown to 管理 only, retention."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import select

from config import get_settings
from models import AuditEvent
from models.base import utcnow
from models.dispatch import InboundMail, Incident, IncidentStatus, MailStatus
from models.enums import AuditCategory, Function, Level
from services import keys
from services.db import unit_of_work
from services.dispatch import incidents, intake, mail_log, sources
from services.dispatch.sources import SourceInput
from services.errors import NotFound, PermissionDenied, ValidationError
from tests.dispatch_factories import PROFILE, SENDER, body, mail, make_source, where
from tests.factories import PLATFORM, actor_with, admin, make_tenant
from tests.fakes.dkim_key import SigningKey

pytestmark = pytest.mark.usefixtures("engine")


def mails(tenant_id) -> list[InboundMail]:
    with unit_of_work(tenant_id) as db:
        return list(
            db.exec(
                select(InboundMail)
                .where(InboundMail.tenant_id == tenant_id)
                .order_by(InboundMail.received_at)
            ).all()
        )


def board(tenant_id) -> list[incidents.IncidentView]:
    return incidents.list_incidents(admin(tenant_id))


def test_a_dispatch_mail_becomes_an_incident_with_its_log_entry():
    tenant = make_tenant()
    source = make_source(tenant)
    before = utcnow()
    outcome = intake.receive(where(source), mail(source.address, body()), envelope_from=SENDER)
    assert outcome.status == MailStatus.ACCEPTED
    (incident,) = board(tenant)
    assert incident.number == outcome.incident_number == 1
    assert incident.kind == "建物火災"
    assert incident.place == "デモ市本町1丁目付近" and incident.place_approximate  # digits folded
    assert incident.landmark == "本町公民館"
    assert incident.units == ("第1分団", "第2分団")
    assert incident.reference == "2026-00123"
    assert incident.status == IncidentStatus.RECEIVED and not incident.needs_review
    assert incident.mail_date is not None and before <= incident.received_at <= incident.created_at
    (row,) = mails(tenant)
    assert (row.status, row.parse_status, row.decode_status) == ("accepted", "ok", "ok")
    assert row.incident_id == incident.id and len(row.sha256) == 64
    with unit_of_work(tenant) as db:
        event = db.exec(
            select(AuditEvent).where(
                AuditEvent.tenant_id == tenant, AuditEvent.category == AuditCategory.MAIL
            )
        ).one()
    details = json.loads(event.details)
    assert details["incident"] == 1 and details["sha256"] == row.sha256
    assert SENDER not in event.details and "本町" not in event.details  # sealed part only
    assert event.actor_label == "machine:mail-intake"


def test_unknown_addresses_do_not_route_and_a_rotated_address_stops_working():
    tenant = make_tenant()
    source = make_source(tenant)
    assert intake.route(source.address) is not None
    assert intake.route("dispatch+" + "0" * 24 + "@localhost") is None
    assert intake.route("someone@localhost") is None
    rotated = sources.rotate_address(admin(tenant), source.id)
    assert rotated.address != source.address
    assert intake.route(source.address) is None
    assert intake.route(rotated.address) == intake.Route(tenant, source.id)


def test_a_sender_off_the_allow_list_is_rejected_and_logged_without_an_incident():
    tenant = make_tenant()
    source = make_source(tenant)
    raw = mail(source.address, body(), sender="attacker@evil.example")
    outcome = intake.receive(where(source), raw)
    assert outcome.status == MailStatus.REJECTED_SENDER and outcome.incident_id is None
    assert board(tenant) == []
    (row,) = mail_log.list_mail(admin(tenant))
    assert row.status == MailStatus.REJECTED_SENDER
    assert row.header_from == "attacker@evil.example"  # shown to 管理


def test_a_domain_entry_allows_every_address_of_that_domain():
    tenant = make_tenant()
    source = make_source(tenant, senders=("@fd.example.lg.jp",))
    raw = mail(source.address, body(), sender="other@fd.example.lg.jp")
    assert intake.receive(where(source), raw).status == MailStatus.ACCEPTED
    raw = mail(source.address, body(), sender="x@notfd.example.lg.jp.evil")
    assert intake.receive(where(source), raw).status == MailStatus.REJECTED_SENDER


@pytest.fixture(scope="module")
def headquarters_key() -> SigningKey:
    return SigningKey(domain="fd.example.lg.jp")


@pytest.mark.parametrize(
    ("how", "status"),
    [
        ("signed", MailStatus.ACCEPTED),
        ("altered", MailStatus.REJECTED_DKIM),
        ("unsigned", MailStatus.REJECTED_DKIM),
        ("other domain", MailStatus.REJECTED_DKIM),
    ],
)
def test_a_source_that_requires_dkim_takes_only_mail_signed_by_the_senders_domain(
    headquarters_key, how, status
):
    tenant = make_tenant()
    source = make_source(tenant, dkim_required=True)
    raw = mail(source.address, body())
    if how == "signed":
        raw = headquarters_key.sign(raw)
    elif how == "altered":
        raw = headquarters_key.sign(raw).replace(b"2026-00123", b"2026-00999")
    elif how == "other domain":
        other = SigningKey(domain="evil.example")
        raw = other.sign(raw)
        headquarters_key.records.update(other.records)
    outcome = intake.receive(where(source), raw, dnsfunc=headquarters_key.lookup)
    assert outcome.status == status
    (row,) = mails(tenant)
    assert row.dkim == ("pass" if how in ("signed", "other domain") else row.dkim)
    assert len(board(tenant)) == (1 if status == MailStatus.ACCEPTED else 0)


def test_the_same_message_twice_is_recorded_and_dropped():
    tenant = make_tenant()
    source = make_source(tenant)
    raw = mail(source.address, body(), message_id="<same@fd.example.lg.jp>")
    first = intake.receive(where(source), raw)
    second = intake.receive(where(source), raw)
    assert second.status == MailStatus.DUPLICATE and second.incident_id == first.incident_id
    assert len(board(tenant)) == 1
    assert [m.status for m in mails(tenant)] == ["accepted", "duplicate"]


def test_the_same_mail_to_two_sources_of_one_brigade_makes_one_incident():
    tenant = make_tenant()
    a, b = make_source(tenant), make_source(tenant)
    raw = mail(a.address, body(), message_id="<both@fd.example.lg.jp>")
    intake.receive(where(a), raw)
    intake.receive(where(b), raw)
    assert len(board(tenant)) == 1


def test_follow_ups_update_the_same_incident_and_never_move_it_back():
    tenant = make_tenant()
    source = make_source(tenant)
    send = lambda subject, text: intake.receive(  # noqa: E731
        where(source), mail(source.address, text, subject=subject)
    )
    first = send("【出動指令】建物火災", body(units="本町団1"))
    request = send("【出動要請】建物火災", body(units="第2分団"))
    assert request.incident_id == first.incident_id
    (incident,) = board(tenant)
    assert incident.units == ("第1分団", "第2分団")
    send("【鎮火】建物火災", body(units=""))
    send("【鎮圧】建物火災", body(units=""))  # arrives late: stays 鎮火
    (incident,) = board(tenant)
    assert incident.status == IncidentStatus.EXTINGUISHED
    _, timeline = incidents.get_incident(admin(tenant), incident.id)
    assert [e.kind for e in timeline].count("followup") == 3
    assert any("鎮火" in e.summary for e in timeline if e.kind == "status")


def test_a_follow_up_without_reference_matches_kind_and_place_within_the_window():
    tenant = make_tenant()
    source = make_source(tenant)
    intake.receive(where(source), mail(source.address, body(reference="")))
    outcome = intake.receive(
        where(source),
        mail(source.address, body(reference="", place="デモ市本町1丁目"), subject="【誤報】"),
    )
    (incident,) = board(tenant)
    assert outcome.incident_id == incident.id and incident.status == IncidentStatus.FALSE_ALARM


def test_two_numbers_at_one_place_are_two_incidents():
    tenant = make_tenant()
    source = make_source(tenant)
    intake.receive(where(source), mail(source.address, body(reference="A-1")))
    intake.receive(where(source), mail(source.address, body(reference="A-2")))
    assert [i.reference for i in board(tenant)] == ["A-2", "A-1"]


def test_a_map_mail_after_the_dispatch_adds_the_map_link():
    tenant = make_tenant()
    source = make_source(tenant)
    intake.receive(where(source), mail(source.address, body()))
    text = "災害地図\n【事案番号】2026-00123\nhttps://map.example.jp/?ll=35.1,139.2\n"
    intake.receive(where(source), mail(source.address, text, subject="災害地図メール"))
    (incident,) = board(tenant)
    assert incident.map_url == "https://map.example.jp/?ll=35.1,139.2"


def test_a_mail_that_cannot_be_read_still_makes_an_incident_marked_for_review():
    tenant = make_tenant()
    source = make_source(tenant)
    raw = mail(source.address, "本文に項目がありません。\n", subject="【出動指令】至急")
    outcome = intake.receive(where(source), raw)
    assert outcome.status == MailStatus.ACCEPTED
    (incident,) = board(tenant)
    assert incident.needs_review and incident.review_reasons
    assert incident.subject == "【出動指令】至急"
    assert mails(tenant)[0].parse_status == "review"
    confirmed = incidents.confirm_review(
        admin(tenant), incident.id, expected_version=incident.version
    )
    assert not confirmed.needs_review


def test_a_follow_up_with_no_dispatch_to_join_is_marked_for_review():
    tenant = make_tenant()
    source = make_source(tenant)
    intake.receive(where(source), mail(source.address, body(units=""), subject="【鎮火】"))
    (incident,) = board(tenant)
    assert incident.status == IncidentStatus.EXTINGUISHED
    assert incidents.NO_MATCH in incident.review_reasons


def test_raw_mail_is_sealed_and_shown_to_event_log_admins_only_and_recorded():
    tenant = make_tenant()
    source = make_source(tenant)
    raw = mail(source.address, body())
    intake.receive(where(source), raw)
    (row,) = mails(tenant)
    assert b"2026-00123" not in (row.raw_enc or "").encode() and row.raw_enc
    viewer = actor_with(tenant, {Function.EVENT_LOGS: Level.VIEW})
    (listed,) = mail_log.list_mail(viewer)
    assert listed.header_from == "" and listed.subject == ""  # no personal part for 閲覧
    with pytest.raises(PermissionDenied):
        mail_log.raw_mail(viewer, row.id)
    shown = mail_log.raw_mail(admin(tenant), row.id)
    assert shown.raw == raw and "建物火災" in shown.decoded.body
    with unit_of_work(tenant) as db:
        actions = db.exec(select(AuditEvent.action).where(AuditEvent.tenant_id == tenant)).all()
    assert "mail.raw_view" in actions


def test_raw_text_is_emptied_after_the_retention_but_the_log_entry_stays():
    tenant = make_tenant()
    source = make_source(tenant, raw_retention_days=1)
    intake.receive(where(source), mail(source.address, body()))
    with unit_of_work(tenant) as db:
        row = db.exec(select(InboundMail).where(InboundMail.tenant_id == tenant)).one()
        row.raw_expires_at = utcnow() - timedelta(minutes=1)
        db.add(row)
        db.commit()
    assert intake.purge_expired_raw() >= 1
    (listed,) = mail_log.list_mail(admin(tenant))
    assert not listed.raw_kept and listed.status == MailStatus.ACCEPTED
    with pytest.raises(ValidationError):
        mail_log.raw_mail(admin(tenant), listed.id)


@pytest.fixture
def small_mail_limit(monkeypatch):
    monkeypatch.setenv("HIKESHI_MAIL_MAX_BYTES", "100")
    get_settings.cache_clear()
    yield
    monkeypatch.undo()
    get_settings.cache_clear()


def test_oversized_mail_leaves_only_its_trace(small_mail_limit):
    tenant = make_tenant()
    source = make_source(tenant)
    mail_id = intake.store(where(source), mail(source.address, body()), transport="smtp")
    (row,) = mails(tenant)
    assert row.id == mail_id and row.status == MailStatus.REJECTED_SIZE and row.raw_enc is None


def test_a_mail_left_unhandled_is_handled_by_the_sweep():
    tenant = make_tenant()
    source = make_source(tenant)
    mail_id = intake.store(where(source), mail(source.address, body()), transport="smtp")
    assert board(tenant) == []
    assert intake.process_pending(older_than_seconds=0) >= 1
    (row,) = mails(tenant)
    assert row.id == mail_id and row.status == MailStatus.ACCEPTED and len(board(tenant)) == 1


def test_concurrent_handlers_of_one_mail_make_one_incident():
    """Two intakes (threads with their own connections, no shared lock in our code) handling
    the same stored mail and the same mail stored twice: one incident, one number."""
    tenant = make_tenant()
    source = make_source(tenant)
    raw = mail(source.address, body(), message_id="<race@fd.example.lg.jp>")
    ids = [intake.store(where(source), raw, transport="smtp") for _ in range(2)]
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def handle(mail_id):
        barrier.wait()
        try:
            intake.process(tenant, mail_id)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=handle, args=(i,)) for i in ids * 2]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    if errors and "locked" in str(errors[0]):
        pytest.skip("SQLite serialises writers by locking: the race is PostgreSQL's")
    assert errors == []
    assert len(board(tenant)) == 1
    assert sorted(m.status for m in mails(tenant)) == ["accepted", "duplicate"]


def test_sources_other_brigades_and_permissions():
    a, b = make_tenant(), make_tenant()
    source = make_source(a)
    assert sources.list_sources(admin(b)) == []
    editor = actor_with(a, {Function.DISPATCH: Level.EDIT})
    with pytest.raises(PermissionDenied):
        sources.list_sources(editor)
    with pytest.raises(PermissionDenied):
        sources.rotate_address(editor, source.id)
    intake.receive(where(source), mail(source.address, body()))
    assert board(b) == [] and mail_log.list_mail(admin(b)) == []
    viewer = actor_with(a, {Function.DISPATCH: Level.VIEW})
    assert len(incidents.list_incidents(viewer)) == 1
    with pytest.raises(PermissionDenied):
        incidents.create_incident(viewer, incidents.IncidentInput(kind="建物火災"))


@pytest.mark.parametrize(
    ("field", "value", "label"),
    [
        ("senders", ("not an address",), "送信元"),
        ("senders", (), "送信元"),
        ("profile", {**PROFILE, "patterns": {"kind": "(?P<value>[unclosed"}}, "解析ルール"),
        ("charset_override", "no-such-charset", "文字コード指定"),
        ("followup_window_minutes", 0, "続報の照合時間"),
        ("name", "", "名称"),
    ],
)
def test_a_bad_source_names_the_field(field, value, label):
    tenant = make_tenant()
    with pytest.raises(ValidationError) as caught:
        make_source(tenant, **{field: value})
    assert label in caught.value.errors


@pytest.mark.parametrize("charset", ["CP50220", "windows-31j", "shift_jis", "ISO-2022-JP"])
def test_the_charsets_the_manual_names_are_accepted(charset):
    assert make_source(make_tenant(), charset_override=charset).charset_override == charset


def test_incidents_by_hand_follow_the_status_order():
    tenant = make_tenant()
    made = incidents.create_incident(
        admin(tenant), incidents.IncidentInput(kind="林野火災", place="デモ山", units=("第1分団",))
    )
    assert made.number == 1 and not made.from_mail
    with pytest.raises(ValidationError):
        incidents.set_status(
            admin(tenant), made.id, IncidentStatus.CLOSED, expected_version=made.version
        )
    moved = incidents.set_status(
        admin(tenant), made.id, IncidentStatus.DISPATCHED, expected_version=made.version
    )
    ended = incidents.set_status(
        admin(tenant), made.id, IncidentStatus.EXTINGUISHED, expected_version=moved.version
    )
    assert incidents.next_statuses(ended.status) == (IncidentStatus.CLOSED,)
    with pytest.raises(ValidationError):
        incidents.set_status(
            admin(tenant), made.id, IncidentStatus.DISPATCHED, expected_version=ended.version
        )


def test_places_are_sealed_at_rest():
    tenant = make_tenant()
    source = make_source(tenant)
    intake.receive(where(source), mail(source.address, body(place="秘密町９番地")))
    with unit_of_work(tenant) as db:
        row = db.exec(select(Incident).where(Incident.tenant_id == tenant)).one()
    assert "秘密町" not in row.place_enc and row.place_enc.startswith("v")


HANDLER = """
import sys, uuid
from services.db import build_engine, set_engine
from config import get_settings
from services.dispatch import intake
set_engine(build_engine(get_settings().database_url))
print("ready", flush=True)
sys.stdin.readline()  # both processes are up: go
tenant = uuid.UUID(sys.argv[1])
for mail_id in sys.argv[2:]:
    intake.process(tenant, uuid.UUID(mail_id))
"""


def test_two_intake_processes_on_one_database_make_one_incident(dialect):
    """Two separate processes handle the same two stored copies of one mail, in opposite
    orders, released at once: exactly one incident, one copy accepted, one duplicate."""
    if dialect != "postgresql":
        pytest.skip("several intake processes share a PostgreSQL database; SQLite is embedded")
    tenant = make_tenant()
    source = make_source(tenant)
    raw = mail(source.address, body(), message_id="<two-processes@fd.example.lg.jp>")
    ids = [str(intake.store(where(source), raw, transport="smtp")) for _ in range(2)]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", HANDLER, str(tenant), *order],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd=Path(__file__).resolve().parents[2],
        )
        for order in (ids, ids[::-1])
    ]
    assert [proc.stdout.readline() for proc in procs] == [b"ready\n"] * 2
    for proc in procs:
        proc.stdin.write(b"go\n")
        proc.stdin.flush()
    assert [proc.wait(timeout=60) for proc in procs] == [0, 0]
    assert len(board(tenant)) == 1
    assert sorted(m.status for m in mails(tenant)) == ["accepted", "duplicate"]


def test_dispatch_data_stays_readable_after_the_data_key_rotates():
    """Incidents, stored mail and the source's secrets are re-encrypted with the new key before
    the old one is deleted."""
    tenant = make_tenant()
    source = make_source(tenant)
    raw = mail(source.address, body())
    intake.receive(where(source), raw)
    before = board(tenant)
    report = keys.rotate_tenant_data_key(PLATFORM, tenant)
    assert report.ok and report.deleted_key_ids and report.rows_reencrypted >= 3
    assert board(tenant) == before
    assert mail_log.raw_mail(admin(tenant), mails(tenant)[0].id).raw == raw
    (after,) = sources.list_sources(admin(tenant))
    assert after.address == source.address and intake.route(source.address)


def test_a_long_kind_and_number_as_the_parser_takes_them_are_stored():
    tenant = make_tenant()
    source = make_source(tenant)
    kind, reference = "建物火災（" + "延焼" * 80 + "）", "R-" + "9" * 150
    outcome = intake.receive(
        where(source), mail(source.address, body(kind=kind, reference=reference))
    )
    assert outcome.status == MailStatus.ACCEPTED
    (incident,) = board(tenant)
    assert incident.kind == kind[:200] and incident.reference == reference


def test_another_brigade_cannot_reach_a_source_an_incident_or_a_mail_by_id():
    a, b = make_tenant(), make_tenant()
    source = make_source(a)
    outcome = intake.receive(where(source), mail(source.address, body()))
    (incident,) = board(a)
    other = admin(b)
    calls = [
        lambda: sources.rotate_address(other, source.id),
        lambda: sources.update_source(
            other,
            source.id,
            SourceInput(name="乗っ取り", senders=(SENDER,), profile=PROFILE),
            expected_version=source.version,
        ),
        lambda: incidents.get_incident(other, incident.id),
        lambda: incidents.set_status(
            other, incident.id, IncidentStatus.DISPATCHED, expected_version=incident.version
        ),
        lambda: incidents.confirm_review(other, incident.id, expected_version=incident.version),
        lambda: mail_log.raw_mail(other, outcome.mail_id),
    ]
    for call in calls:
        with pytest.raises(NotFound):
            call()
    assert board(a) == [incident] and sources.list_sources(admin(a))[0].address == source.address
