"""イベントログ services: the four categories recorded and read back, filters, keyset pages while
events arrive, JST periods, export escaping, integrity, tenants and permissions."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import Engine, text
from sqlmodel import Session

from core.actor import Actor, RequestContext, system_actor
from formats import csv_safe
from models.enums import AuditCategory, Function, Level
from models.tenant import PLATFORM_TENANT_ID
from services import audit, event_log, traffic_log
from services.db import set_tenant, unit_of_work
from services.errors import NotFound, PermissionDenied, ValidationError
from services.event_log import Cursor, EventFilter
from services.signin import local
from tests.factories import (
    PLATFORM,
    actor_with,
    admin,
    audit_events,
    last_audit_seq,
    make_member,
    make_tenant,
)

PAGE = EventFilter(actions=("test.page",))
TOKEN = "SECRET-ACCESS-TOKEN-0123456789"
LINE_USER = "U0123456789abcdef0123456789abcdef"


@pytest.fixture
def tenant(engine) -> uuid.UUID:
    return make_tenant()


def viewer(tenant_id: uuid.UUID, level: Level = Level.VIEW, *, roster: Level = Level.NONE) -> Actor:
    actor = actor_with(tenant_id, {Function.EVENT_LOGS: level, Function.ROSTER: roster})
    return actor.with_request(
        RequestContext(request_id=uuid.uuid4().hex[:16], client_addr="10.0.0.9")
    )


@contextmanager
def clock(when: datetime) -> Iterator[None]:
    """Events recorded inside carry `when` as their time."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(audit, "utcnow", lambda: when)
        yield


def record(tenant_id: uuid.UUID, count: int = 1, actor: Actor | None = None, **values) -> None:
    values.setdefault("category", AuditCategory.OPERATION)
    values.setdefault("action", "test.page")
    with unit_of_work(tenant_id) as session:
        for _ in range(count):
            audit.record(session, actor or admin(tenant_id), **values)
        session.commit()


def all_pages(actor: Actor, filters: EventFilter, page_size: int, between=None) -> list[list[int]]:
    pages, cursor = [], None
    while True:
        page = event_log.query_events(actor, filters, cursor=cursor, page_size=page_size)
        pages.append([e.seq for e in page.events])
        if page.next_cursor is None:
            return pages
        if between is not None:
            between()
        cursor = page.next_cursor


# --- the four categories ----------------------------------------------------------------------


def test_each_category_is_recorded_and_shown(tenant):
    member = make_member(tenant)  # operation: member.create
    account = f"log-{uuid.uuid4().hex[:8]}"
    local.create_account(
        PLATFORM,
        login_name=account,
        password="correct horse battery staple",
        tenant_id=tenant,
        member_id=member.id,
    )
    assert local.login(account, "wrong password!!", RequestContext()).error == "invalid"
    system = system_actor(tenant)
    traffic_log.record_mail_event(
        system,
        sender="yamada@example.jp",
        subject="出動報告 山田",
        size_bytes=2048,
        parse_result="ok",
        message_id="<abc@mail.example.jp>",
    )
    traffic_log.record_external_call(
        system,
        service="line",
        endpoint="https://api.line.me/v2/bot/message/push",
        method="post",
        status=200,
        latency_ms=87.25,
        retry_key="123e4567-e89b-12d3-a456-426614174000",
    )
    actor = viewer(tenant)
    shown = {}
    for category in AuditCategory:
        page = event_log.query_events(actor, EventFilter(categories=(str(category),)))
        shown[category] = {e.action for e in page.events}
        assert {e.category for e in page.events} == {str(category)}
        assert all(e.category_label == category.label for e in page.events)
    assert "member.create" in shown[AuditCategory.OPERATION]
    assert "login.failure" in shown[AuditCategory.AUTH]
    assert shown[AuditCategory.MAIL] == {"mail.receive"}
    assert shown[AuditCategory.EXTERNAL] == {"external.call"}


def test_every_event_carries_time_request_actor_and_client(tenant):
    request = RequestContext(request_id="req-0001", client_addr="192.0.2.7", user_agent="UA/1.0")
    with unit_of_work(tenant) as session:
        for action in ("a.one", "a.two"):
            audit.record(
                session,
                admin(tenant).with_request(request),
                category=AuditCategory.OPERATION,
                action=action,
            )
        session.commit()
    events = event_log.query_events(viewer(tenant), EventFilter(text="req-0001")).events
    assert [e.action for e in events] == ["a.two", "a.one"]
    for e in events:
        assert (e.request_id, e.client_addr, e.user_agent) == ("req-0001", "192.0.2.7", "UA/1.0")
        assert e.occurred_at.tzinfo is not None and e.occurred_at.utcoffset() == timedelta(0)
        assert e.actor_type == "system"


def test_mail_sender_and_subject_are_only_in_the_encrypted_part(tenant, engine):
    traffic_log.record_mail_event(
        system_actor(tenant),
        sender="Yamada Taro <yamada@example.jp>",
        subject="火災 山田様宅",
        size_bytes=4096,
        parse_result="no_report_found",
        message_id="<x1@example.jp>",
    )
    (row,) = audit_events(engine, tenant, category=AuditCategory.MAIL)
    assert "yamada" not in row.details.lower() and "山田" not in row.details
    assert row.details_enc and row.outcome == "failure"
    details = json.loads(row.details)
    assert details == {
        "message_id": traffic_log.message_id_hash("<x1@example.jp>"),
        "parse_result": "no_report_found",
        "size_bytes": 4096,
    }

    summary = event_log.get_event(viewer(tenant), row.seq)
    assert summary.personal is None and summary.personal_hidden
    full = event_log.get_event(viewer(tenant, Level.ADMIN), row.seq)
    assert full.personal == {
        "sender": "Yamada Taro <yamada@example.jp>",
        "subject": "火災 山田様宅",
    }
    assert not full.personal_hidden


def test_mail_event_input_is_checked(tenant):
    for bad in ({"parse_result": "OK!"}, {"size_bytes": -1}, {"parse_result": ""}):
        values = {"sender": "a@b", "subject": "s", "size_bytes": 1, "parse_result": "ok"} | bad
        with pytest.raises(ValidationError):
            traffic_log.record_mail_event(system_actor(tenant), **values)


def test_external_calls_keep_no_token_no_body_no_user_id(tenant, engine):
    traffic_log.record_external_call(
        system_actor(tenant),
        service="line",
        endpoint=f"https://bot:{TOKEN}@api.line.me/v2/bot/profile/{LINE_USER}?access_token={TOKEN}#x",
        method="GET",
        status=404,
        latency_ms=12.345,
        retry_key="123e4567-e89b-12d3-a456-426614174000",
        attempt=2,
        error="HTTPStatusError",
    )
    (row,) = audit_events(engine, tenant, category=AuditCategory.EXTERNAL)
    stored = json.dumps([getattr(row, c) for c in type(row).model_fields], default=str)
    assert TOKEN not in stored and LINE_USER not in stored
    details = json.loads(row.details)
    assert details == {
        "service": "line",
        "endpoint": "https://api.line.me/v2/bot/profile/:id",
        "method": "GET",
        "status": 404,
        "latency_ms": 12.3,
        "retry_key": "123e4567-e89b-12d3-a456-426614174000",
        "attempt": 2,
        "error": "HTTPStatusError",
    }
    assert (row.outcome, row.target_type, row.target_id) == (
        "failure",
        "line",
        "https://api.line.me/v2/bot/profile/:id",
    )
    assert not row.details_enc


@pytest.mark.parametrize(
    ("url", "safe"),
    [
        ("https://api.line.me/oauth2/v2.1/token", "https://api.line.me/oauth2/v2.1/token"),
        ("https://api.line.me/v2/bot/message/push?x=1", "https://api.line.me/v2/bot/message/push"),
        (
            "https://api-data.line.me/v2/bot/message/123456789012/content",
            "https://api-data.line.me/v2/bot/message/:id/content",
        ),
        (
            f"https://api.line.me/v2/bot/group/C{'a' * 32}/summary",
            "https://api.line.me/v2/bot/group/:id/summary",
        ),
        ("http://127.0.0.1:8765/oauth2/v2.1/verify", "http://127.0.0.1:8765/oauth2/v2.1/verify"),
    ],
)
def test_safe_endpoint(url, safe):
    assert traffic_log.safe_endpoint(url) == safe


@pytest.mark.parametrize(
    "bad",
    [
        {"method": "RETR"},
        {"status": 99},
        {"latency_ms": -1},
        {"service": "LINE API"},
        {"error": "timed out for user yamada@example.jp"},
        {"retry_key": "has spaces in it"},
    ],
)
def test_external_call_input_is_checked(tenant, bad):
    values = {
        "service": "line",
        "endpoint": "https://api.line.me/x",
        "method": "GET",
        "status": 200,
        "latency_ms": 1.0,
    } | bad
    with pytest.raises(ValidationError):
        traffic_log.record_external_call(system_actor(tenant), **values)


def test_external_call_joins_the_callers_transaction(tenant, engine):
    seq = last_audit_seq(engine, tenant)
    with pytest.raises(RuntimeError), unit_of_work(tenant) as session:
        traffic_log.record_external_call(
            system_actor(tenant),
            service="line",
            endpoint="https://api.line.me/x",
            method="GET",
            status=None,
            latency_ms=3000,
            error="ConnectTimeout",
            session=session,
        )
        raise RuntimeError("the caller's work failed")
    assert last_audit_seq(engine, tenant) == seq


@pytest.mark.parametrize(("error", "outcome"), [("", "success"), ("TimeoutError", "failure")])
def test_an_imap_command_has_no_status_and_fails_only_with_an_error(tenant, engine, error, outcome):
    seq = last_audit_seq(engine, tenant)
    traffic_log.record_external_call(
        system_actor(tenant),
        service="imap",
        endpoint="imaps://mail.example.jp:993/INBOX",
        method="FETCH",
        status=None,
        latency_ms=12,
        error=error,
    )
    (event,) = audit_events(engine, tenant, after_seq=seq, category="external")
    assert event.outcome == outcome


def test_an_external_call_without_a_brigade_goes_to_the_platform_chain(engine):
    seq = last_audit_seq(engine, PLATFORM_TENANT_ID)
    traffic_log.record_external_call(
        Actor(kind="line", display_name=""),
        service="line",
        endpoint="https://api.line.me/oauth2/v2.1/token",
        method="POST",
        status=200,
        latency_ms=5,
    )
    added = audit_events(engine, PLATFORM_TENANT_ID, after_seq=seq, category="external")
    assert [(e.action, e.target_type) for e in added] == [("external.call", "line")]


# --- filters ----------------------------------------------------------------------------------


def test_filters(tenant):
    member = make_member(tenant)
    someone = replace(
        actor_with(tenant, {}), member_id=member.id, label=member.member_code, kind="member"
    )
    record(tenant, 2, action="filter.alpha", target_type="member", target_id="M-1")
    record(
        tenant,
        3,
        actor=someone,
        action="filter.beta",
        target_type="water_source",
        target_id="W-9",
        details={"memo": "防火水槽 100%_ok"},
    )
    record(tenant, 1, category=AuditCategory.AUTH, action="filter.gamma", outcome="denied")
    actor = viewer(tenant)

    def actions(**values) -> list[str]:
        return [e.action for e in event_log.query_events(actor, EventFilter(**values)).events]

    assert actions(actions=("filter.alpha", "filter.gamma")) == [
        "filter.gamma",
        *["filter.alpha"] * 2,
    ]
    assert actions(actor_id=str(member.id)) == ["filter.beta"] * 3
    assert actions(target_type="water_source") == ["filter.beta"] * 3
    assert actions(target_id="M-1") == ["filter.alpha"] * 2
    assert actions(categories=("auth",), text="filter.") == ["filter.gamma"]
    assert actions(text="防火水槽") == ["filter.beta"] * 3
    assert actions(text="100%_OK") == ["filter.beta"] * 3  # case-insensitive, % and _ literal
    assert actions(text="100%%") == []
    assert actions(text="_ok", actions=("filter.alpha",)) == []
    assert actions(text=member.member_code, actions=("filter.beta",)) == ["filter.beta"] * 3
    # the actor's name only for a viewer who may read the roster; others see the member code
    coded = event_log.query_events(actor, EventFilter(actor_id=str(member.id))).events
    assert {(e.actor_name, e.actor_display) for e in coded} == {("", member.member_code)}
    reader = viewer(tenant, roster=Level.VIEW)
    named = event_log.query_events(reader, EventFilter(actor_id=str(member.id))).events
    assert {e.actor_name for e in named} == {member.name}
    assert {e.actor_display for e in named} == {member.name}


def test_free_text_never_matches_the_encrypted_part(tenant):
    traffic_log.record_mail_event(
        system_actor(tenant),
        sender="hidden@example.jp",
        subject="秘密の件名",
        size_bytes=1,
        parse_result="ok",
    )
    actor = viewer(tenant, Level.ADMIN)
    assert event_log.query_events(actor, EventFilter(text="秘密の件名")).events == []
    assert event_log.query_events(actor, EventFilter(text="hidden@")).events == []


def test_known_actions_and_actor_options(tenant):
    member = make_member(tenant)
    record(tenant, action="zz.last")
    record(tenant, action="aa.first")
    actions = event_log.known_actions(viewer(tenant))
    assert actions == sorted(set(actions))
    assert {"aa.first", "zz.last", "member.create"} <= set(actions)
    options = event_log.actor_options(viewer(tenant))
    assert event_log.ActorOption(str(member.id), member.member_code) in options  # no roster
    options = event_log.actor_options(viewer(tenant, roster=Level.VIEW))
    assert event_log.ActorOption(str(member.id), f"{member.member_code}　{member.name}") in options


# --- keyset pages -----------------------------------------------------------------------------


@pytest.mark.parametrize(("count", "size"), [(100, 25), (101, 25), (24, 25), (25, 25), (1, 1)])
def test_pages_cover_every_event_once_at_the_boundaries(tenant, count, size):
    base = datetime(2026, 3, 1, 3, 0, tzinfo=UTC)
    for n in range(0, count, 7):  # groups of up to 7 share one timestamp: ties break on seq
        with clock(base + timedelta(seconds=n)):
            record(tenant, min(7, count - n))
    pages = all_pages(viewer(tenant), PAGE, size)
    seen = [s for page in pages for s in page]
    assert len(pages) == max(1, -(-count // size))
    assert all(len(p) == size for p in pages[:-1]) and 1 <= len(pages[-1]) <= size
    assert seen == sorted(seen, reverse=True) and len(set(seen)) == count


def test_pages_stay_correct_while_events_keep_arriving(tenant):
    """New events sort above the cursor and wait for a reload; an event whose clock lagged sorts
    where its time puts it. Either way no event is shown twice or skipped."""
    base = datetime(2026, 4, 1, 0, 0, tzinfo=UTC)
    for n in range(6):
        with clock(base + timedelta(minutes=n)):
            record(tenant, 20)
    actor = viewer(tenant)
    batches = iter(range(100))

    def arriving() -> None:
        n = next(batches)
        late = n % 2 == 1  # every other batch comes from a writer whose clock lags behind
        with clock(base if late else base + timedelta(minutes=60 + n)):
            record(tenant, 9, action="test.page", target_type="late" if late else "new")

    pages, cursor = [], None
    while True:
        page = event_log.query_events(actor, PAGE, cursor=cursor, page_size=25)
        pages.append(page.events)
        if page.next_cursor is None:
            break
        arriving()
        cursor = page.next_cursor
    seen = [e for events in pages for e in events]
    keys = [(e.occurred_at, e.seq) for e in seen]
    assert keys == sorted(keys, reverse=True) and len(set(keys)) == len(keys)
    assert set(range(1, 121)) <= {e.seq for e in seen}
    assert not any(e.target_type == "new" for e in seen)
    assert any(e.target_type == "late" for e in seen)
    assert all(len(events) == 25 for events in pages[:-1])


def test_the_view_records_never_disturb_the_pages_they_follow(tenant):
    """Each query records an event_log.view after reading: newer than its page, so never in a
    later page of the same walk."""
    record(tenant, 30)
    pages = all_pages(viewer(tenant), EventFilter(), 10)
    seen = [s for page in pages for s in page]
    assert seen == list(range(30, 0, -1))


def test_a_cursor_from_another_query_only_narrows(tenant):
    record(tenant, 5)
    cursor = Cursor(datetime(1999, 1, 1, tzinfo=UTC), 1)
    assert event_log.query_events(viewer(tenant), PAGE, cursor=cursor).events == []


# --- JST periods and rendering ----------------------------------------------------------------

NEW_YEAR = [
    datetime(2025, 12, 31, 14, 59, 59, 999999, tzinfo=UTC),  # 2025-12-31 23:59:59 JST
    datetime(2025, 12, 31, 15, 0, 0, tzinfo=UTC),  # 2026-01-01 00:00:00 JST
    datetime(2026, 1, 1, 14, 59, 59, tzinfo=UTC),  # 2026-01-01 23:59:59 JST
    datetime(2026, 1, 1, 15, 0, 0, tzinfo=UTC),  # 2026-01-02 00:00:00 JST
]


def test_jst_rendering_and_periods_around_midnight_and_the_new_year(tenant):
    for n, when in enumerate(NEW_YEAR):
        with clock(when):
            record(tenant, action=f"ny.{n}")
    actor = viewer(tenant)
    everything = event_log.query_events(actor, EventFilter(text="ny.")).events
    assert [(e.action, e.occurred_jst) for e in everything] == [
        ("ny.3", "2026-01-02 00:00:00"),
        ("ny.2", "2026-01-01 23:59:59"),
        ("ny.1", "2026-01-01 00:00:00"),
        ("ny.0", "2025-12-31 23:59:59"),
    ]
    assert everything[-1].occurred_utc == "2025-12-31T14:59:59.999999+00:00"

    def period(first: date, last: date) -> list[str]:
        start, end = event_log.jst_period(first, last)
        found = event_log.query_events(actor, EventFilter(start=start, end=end, text="ny."))
        return [e.action for e in found.events]

    assert period(date(2026, 1, 1), date(2026, 1, 1)) == ["ny.2", "ny.1"]
    assert period(date(2025, 12, 31), date(2025, 12, 31)) == ["ny.0"]
    assert period(date(2025, 12, 31), date(2026, 1, 2)) == ["ny.3", "ny.2", "ny.1", "ny.0"]
    assert list(event_log.jst_period(date(2026, 1, 1), date(2026, 1, 1))) == NEW_YEAR[1:4:2]


@pytest.mark.parametrize(
    ("name", "now", "first", "last"),
    [
        ("今日", NEW_YEAR[1], date(2026, 1, 1), date(2026, 1, 1)),
        ("今日", NEW_YEAR[0], date(2025, 12, 31), date(2025, 12, 31)),
        ("昨日", NEW_YEAR[1], date(2025, 12, 31), date(2025, 12, 31)),
        ("直近7日間", NEW_YEAR[1], date(2025, 12, 26), date(2026, 1, 1)),
        ("直近30日間", NEW_YEAR[1], date(2025, 12, 3), date(2026, 1, 1)),
        ("今月", NEW_YEAR[1], date(2026, 1, 1), date(2026, 1, 1)),
        ("先月", NEW_YEAR[1], date(2025, 12, 1), date(2025, 12, 31)),
        ("先月", datetime(2026, 3, 10, tzinfo=UTC), date(2026, 2, 1), date(2026, 2, 28)),
        ("今年", NEW_YEAR[1], date(2026, 1, 1), date(2026, 1, 1)),
        ("今年", NEW_YEAR[0], date(2025, 1, 1), date(2025, 12, 31)),
        ("すべて", NEW_YEAR[0], None, None),
    ],
)
def test_quick_ranges_are_jst_days(name, now, first, last):
    assert event_log.quick_range(name, now=now) == (first, last)


# --- export -----------------------------------------------------------------------------------


def test_export_escapes_formulas_and_leaves_personal_data_out(tenant, engine):
    record(
        tenant,
        action="export.x",
        target_type="member",
        target_id='=HYPERLINK("x")',
        details={"note": "@SUM(A1)", "n": -1},
    )
    traffic_log.record_mail_event(
        system_actor(tenant),
        sender="secret-sender@example.jp",
        subject="件名ひみつ",
        size_bytes=10,
        parse_result="ok",
    )
    seq = last_audit_seq(engine, tenant)
    export = event_log.export_events(viewer(tenant, Level.ADMIN), EventFilter(text="x"))
    assert not export.truncated
    assert b"secret-sender" not in export.data and "件名ひみつ".encode() not in export.data
    raw = export.data.decode("utf-8")
    assert raw.startswith("\ufeff日時(JST),日時(UTC),連番,")
    assert "'=HYPERLINK" in raw
    rows = csv_safe.decode(export.data)
    header, body = rows[0], rows[1:]
    mine = next(r for r in body if r[header.index("操作")] == "export.x")
    assert mine[header.index("対象ID")] == '=HYPERLINK("x")'
    assert json.loads(mine[header.index("詳細")]) == {"n": -1, "note": "@SUM(A1)"}
    assert mine[header.index("日時(UTC)")].endswith("+00:00")
    (logged,) = audit_events(engine, tenant, after_seq=seq, category=AuditCategory.OPERATION)
    assert logged.action == "event_log.export"
    assert json.loads(logged.details)["rows"] == export.rows == len(body)


def test_export_is_capped(tenant, monkeypatch):
    monkeypatch.setattr(event_log, "MAX_EXPORT", 7)
    monkeypatch.setattr(event_log, "EXPORT_BATCH", 3)
    record(tenant, 10)
    export = event_log.export_events(viewer(tenant), PAGE)
    assert (export.rows, export.truncated) == (7, True)
    seqs = [int(r[2]) for r in csv_safe.decode(export.data)[1:]]
    assert seqs == sorted(seqs, reverse=True) and len(set(seqs)) == 7


# --- viewing is logged -----------------------------------------------------------------------


def test_viewing_and_exporting_are_logged_without_the_typed_text(tenant, engine):
    record(tenant, 3)
    seq = last_audit_seq(engine, tenant)
    actor = viewer(tenant, Level.ADMIN)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    filters = EventFilter(start=start, categories=("operation",), text="山田さん")
    event_log.query_events(actor, filters)
    event_log.get_event(actor, 1)
    event_log.export_events(actor, filters)
    logged = audit_events(engine, tenant, after_seq=seq)
    assert [e.action for e in logged] == [
        "event_log.view",
        "event_log.view_detail",
        "event_log.export",
    ]
    assert all("山田" not in e.details for e in logged)
    assert all(e.request_id == actor.request.request_id for e in logged)
    view = json.loads(logged[0].details)
    assert view["filters"]["categories"] == ["operation"]
    assert view["filters"]["start"] == start.isoformat() and view["filters"]["text"] == 4
    assert event_log.get_event(actor, logged[0].seq).personal == {"text": "山田さん"}


def test_a_view_already_recorded_reads_without_recording(tenant, engine):
    """Turning pages of a view recorded once writes nothing more (issue #18)."""
    record(tenant, 5)
    actor = viewer(tenant)
    seq = last_audit_seq(engine, tenant)
    first = event_log.query_events(actor, PAGE, page_size=2)
    second = event_log.query_events(
        actor, PAGE, cursor=first.next_cursor, page_size=2, record_view=False
    )
    assert second.events and max(e.seq for e in second.events) < min(e.seq for e in first.events)
    assert [e.action for e in audit_events(engine, tenant, after_seq=seq)] == ["event_log.view"]


def test_a_new_view_is_the_first_read_of_a_filter_combination():
    mail_only = EventFilter(categories=("mail",))
    assert event_log.is_new_view([], PAGE)
    assert not event_log.is_new_view([PAGE], PAGE)
    assert event_log.is_new_view([PAGE], mail_only)
    assert not event_log.is_new_view([PAGE, mail_only], mail_only)  # coming back to it
    typed = EventFilter(text="火災")
    assert not event_log.is_new_view([typed], EventFilter(text=" 火災 "))
    assert event_log.is_new_view([typed], EventFilter(text="火災", categories=("mail",)))
    day = datetime(2026, 1, 1, tzinfo=UTC)
    assert event_log.is_new_view([EventFilter(start=day)], EventFilter(start=day + timedelta(1)))


def test_rows_carry_japanese_labels_and_a_details_table(tenant):
    record(tenant, action="member.update", outcome="failure", details={"member_code": "0012"})
    (row,) = event_log.query_events(viewer(tenant), EventFilter(actions=("member.update",))).events
    assert (row.action_label, row.outcome_label, row.category_label) == (
        "団員情報の変更",
        "失敗",
        "操作",
    )
    assert row.detail_rows == [("団員番号", "0012")]


# --- integrity ------------------------------------------------------------------------------


def test_integrity_ok_and_the_first_broken_record(tenant, owner_engine):
    record(tenant, 12)
    actor = viewer(tenant)
    report = event_log.verify_integrity(actor)
    assert report.ok and report.checked >= 12 and report.first_broken_seq is None
    with tamper(owner_engine, tenant, 5, "forged"):
        broken = event_log.verify_integrity(actor)
        assert (broken.ok, broken.first_broken_seq) == (False, 5)
        assert broken.broken_event is not None and broken.broken_event.action == "forged"
        assert broken.reason == "ハッシュが一致しません"
    assert event_log.verify_integrity(actor).ok


def test_integrity_of_a_period(tenant, owner_engine):
    base = datetime(2026, 5, 1, 0, 0, tzinfo=UTC)
    for day in range(3):
        with clock(base + timedelta(days=day)):
            record(tenant, 4, action=f"day.{day}")
    actor = viewer(tenant)
    first_seq = event_log.query_events(actor, EventFilter(actions=("day.0",))).events[-1].seq
    with tamper(owner_engine, tenant, first_seq + 1, "forged"):  # in day 0
        day2 = event_log.verify_integrity(
            actor, start=base + timedelta(days=2), end=base + timedelta(days=3)
        )
        assert day2.ok and day2.checked == 4
        day0 = event_log.verify_integrity(actor, start=base, end=base + timedelta(days=1))
        assert (day0.ok, day0.first_broken_seq) == (False, first_seq + 1)
    nothing = event_log.verify_integrity(actor, start=base - timedelta(days=9), end=base)
    assert nothing.ok and nothing.checked == 0


@contextmanager
def tamper(owner_engine: Engine, tenant_id: uuid.UUID, seq: int, action: str) -> Iterator[None]:
    """Change one event's action behind the application's back, and put it back afterwards."""
    param = tenant_id.hex if owner_engine.dialect.name == "sqlite" else tenant_id
    original = {}

    def change(to: str | None) -> None:
        with Session(owner_engine) as session:
            set_tenant(session, tenant_id)
            if owner_engine.dialect.name == "postgresql":
                session.execute(
                    text("ALTER TABLE audit_event DISABLE TRIGGER audit_event_append_only")
                )
            else:
                session.execute(text("DROP TRIGGER audit_event_no_update"))
            where = "WHERE tenant_id = :t AND seq = :s"
            original.setdefault(
                "action",
                session.execute(
                    text(f"SELECT action FROM audit_event {where}"), {"t": param, "s": seq}
                ).scalar_one(),
            )
            session.execute(
                text(f"UPDATE audit_event SET action = :a {where}"),
                {"a": to or original["action"], "t": param, "s": seq},
            )
            if owner_engine.dialect.name == "postgresql":
                session.execute(
                    text("ALTER TABLE audit_event ENABLE TRIGGER audit_event_append_only")
                )
            else:
                session.execute(
                    text(
                        "CREATE TRIGGER audit_event_no_update BEFORE UPDATE ON audit_event BEGIN "
                        "SELECT RAISE(ABORT, 'audit_event is append-only (UPDATE refused)'); END"
                    )
                )
            session.commit()

    change(action)
    try:
        yield
    finally:
        change(None)


# --- tenants, permissions, bad input ---------------------------------------------------------


def test_another_brigades_events_are_never_seen(tenant, engine):
    other = make_tenant()
    record(other, 3, action="foreign.secret", target_id="F-1")
    record(tenant, 2)
    actor = viewer(tenant, Level.ADMIN)
    assert event_log.query_events(actor, EventFilter(text="foreign")).events == []
    assert "foreign.secret" not in event_log.known_actions(actor)
    export = event_log.export_events(actor)
    assert b"foreign.secret" not in export.data
    with pytest.raises(NotFound):
        event_log.get_event(actor, last_audit_seq(engine, other) + 1000)
    assert event_log.verify_integrity(actor).ok


def test_no_brigade_means_no_events(engine):
    nobody = Actor(kind="member", display_name="", permissions={"event_logs": Level.ADMIN})
    with pytest.raises(PermissionDenied):
        event_log.query_events(nobody)


CALLS = {
    "query_events": lambda a: event_log.query_events(a),
    "get_event": lambda a: event_log.get_event(a, 1),
    "export_events": lambda a: event_log.export_events(a),
    "verify_integrity": lambda a: event_log.verify_integrity(a),
    "known_actions": lambda a: event_log.known_actions(a),
    "actor_options": lambda a: event_log.actor_options(a),
}


@pytest.mark.parametrize("name", sorted(CALLS))
def test_not_permitted(tenant, engine, name):
    record(tenant)
    others = {f: Level.ADMIN for f in Function if f != Function.EVENT_LOGS}
    actor = actor_with(tenant, others)
    seq = last_audit_seq(engine, tenant)
    with pytest.raises(PermissionDenied):
        CALLS[name](actor)
    (denial,) = audit_events(engine, tenant, after_seq=seq)
    assert (denial.category, denial.action, denial.outcome) == (
        "auth",
        "permission_denied",
        "denied",
    )
    assert json.loads(denial.details)["function"] == "event_logs"


@pytest.mark.parametrize("name", sorted(CALLS))
def test_view_level_is_enough(tenant, name):
    record(tenant)
    CALLS[name](viewer(tenant))


@pytest.mark.parametrize(
    "bad",
    [
        {"text": "x" * 101},
        {"text": "a\x00b"},
        {"categories": ("operations",)},
        {"start": datetime(2026, 1, 2, tzinfo=UTC), "end": datetime(2026, 1, 1, tzinfo=UTC)},
        {"start": datetime(2026, 1, 2)},
        {"actor_id": "x" * 81},
    ],
)
def test_bad_filters_are_refused(tenant, bad):
    with pytest.raises(ValidationError):
        event_log.query_events(viewer(tenant), EventFilter(**bad))
    with pytest.raises(ValidationError):
        event_log.export_events(viewer(tenant), EventFilter(**bad))


@pytest.mark.parametrize("size", [0, -1, 201])
def test_bad_page_size_is_refused(tenant, size):
    with pytest.raises(ValidationError):
        event_log.query_events(viewer(tenant), page_size=size)


def test_unknown_quick_range_is_refused():
    with pytest.raises(ValidationError):
        event_log.quick_range("来年")


def test_missing_event_is_not_found(tenant):
    with pytest.raises(NotFound):
        event_log.get_event(viewer(tenant), 999_999)
