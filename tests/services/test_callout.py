"""The call-out on LINE (#21): targets, the outbox against the fake Messaging API (chunks, retry
keys, 409, 429, quota), the webhook (signature, dedup, postbacks), answers and the tally,
escalation on a fake clock, follow-ups, permissions and other brigades."""

from __future__ import annotations

import json
import threading
import uuid
from datetime import timedelta

import pytest
from sqlmodel import select
from starlette.applications import Starlette
from starlette.testclient import TestClient

from formats.line_callout import Postback, decode_postback
from models import PLATFORM_TENANT_ID
from models.base import utcnow
from models.callout import CalloutTarget, LineOutbox, OutboxStatus
from models.enums import Answer, AuditCategory, Function, Level
from services import registrations
from services.db import unit_of_work
from services.dispatch import (
    callout,
    callout_settings,
    callout_test,
    incidents,
    intake,
    line_inbox,
    line_webhook,
    outbox,
    tally,
)
from services.errors import Conflict, NotFound, PermissionDenied, ValidationError
from tests.callout_factories import Brigade, bulk_members, make_brigade, messaging
from tests.dispatch_factories import SENDER, body, mail, make_source, where
from tests.factories import actor_with, admin, audit_events

pytestmark = pytest.mark.usefixtures("engine")


def dispatch(brigade: Brigade, **fields: str) -> uuid.UUID:
    source = make_source(brigade.tenant_id)
    outcome = intake.receive(
        where(source), mail(source.address, body(**fields)), envelope_from=SENDER
    )
    return outcome.incident_id


def send_all(brigade: Brigade, *, later: timedelta = timedelta(0)) -> int:
    """One pass of the timers and the sender for this brigade only (other tests' brigades may
    have rows waiting for a retry)."""
    now = utcnow() + later
    outbox.escalate(brigade.tenant_id, now=now)
    return outbox.send_tenant(brigade.tenant_id, outbox.QuotaGuard(), now=now)


def multicast_recipients(fake) -> list[str]:
    return [u for d in fake.deliveries if d.endpoint == "multicast" for u in d.to]


def press(fake, brigade: Brigade, member_id: uuid.UUID, incident_id: uuid.UUID, answer: Answer):
    data = Postback(brigade.tenant_id, incident_id, answer=answer).encode()
    event = fake.postback_event(brigade.sub_of(member_id), data)
    return post_webhook(fake, [event])


def post_webhook(fake, events: list[dict], *, body: bytes | None = None, headers=None):
    import server

    raw, signed = fake.webhook(events)
    with TestClient(Starlette(routes=server.routes)) as client:
        response = client.post(
            line_inbox.WEBHOOK_PATH, content=body or raw, headers=headers or signed
        )
    assert line_webhook.wait_idle()  # the events are handled after the answer
    return response


# ---------------------------------------------------------------------------
# Targets and sending


def test_a_dispatch_mail_calls_exactly_the_listed_units_and_the_leaders(engine):
    brigade = make_brigade({"第1分団": 3, "第2分団": 2, "第3分団": 2}, unlinked=1)
    with messaging() as fake:
        incident_id = dispatch(brigade, units="本町団1、第2分団")
        assert send_all(brigade) == 1

    expected = brigade.in_unit("第1分団") | brigade.in_unit("第2分団") | brigade.leaders
    reached = {m for m in expected if brigade.subs[m]}
    assert sorted(multicast_recipients(fake)) == sorted(brigade.subs[m] for m in reached)
    message = fake.deliveries[0].messages[0]
    assert message["type"] == "flex" and "建物火災" in message["altText"]
    assert "１丁目" not in json.dumps(message, ensure_ascii=False)  # 町名 level only
    data = [a["action"]["data"] for a in message["contents"]["footer"]["contents"][:3]]
    assert [decode_postback(d).answer for d in data] == list(Answer)
    board = tally.tally(admin(brigade.tenant_id), incident_id)
    assert {line.member_id for line in board.lines} == expected  # the unlinked one is listed
    assert sum(not line.notified for line in board.lines) == 1
    with unit_of_work(brigade.tenant_id) as db:
        (row,) = db.exec(select(LineOutbox).where(LineOutbox.tenant_id == brigade.tenant_id))
        assert row.status == OutboxStatus.SENT and row.request_id == fake.deliveries[0].request_id
    events = audit_events(engine, brigade.tenant_id, category=AuditCategory.EXTERNAL)
    calls = [
        json.loads(e.details)
        for e in events
        if json.loads(e.details).get("endpoint", "").endswith("/multicast")
    ]
    assert calls and calls[0]["request_id"] == row.request_id
    assert calls[0]["recipients"] == len(reached)
    assert not any(sub in json.dumps(calls) for sub in brigade.subs.values() if sub)


def test_1600_recipients_go_in_four_multicasts_with_a_retry_key_each():
    brigade = make_brigade({"第1分団": 0})
    bulk_members(brigade.tenant_id, 1600, "第1分団")
    with messaging() as fake:
        dispatch(brigade, units="本町団1")
        send_all(brigade)
    sizes = sorted(len(d.to) for d in fake.deliveries)
    assert sizes == [101, 500, 500, 500]  # 1,600 and the leader
    assert len({d.retry_key for d in fake.deliveries}) == 4
    assert len(set(multicast_recipients(fake))) == 1601


def test_a_5xx_is_retried_later_with_the_same_retry_key():
    brigade = make_brigade({"第1分団": 2})
    with messaging() as fake:
        fake.fail_next(500)
        dispatch(brigade, units="本町団1")
        assert send_all(brigade) == 0
        assert send_all(brigade) == 0  # not due yet: the backoff holds it
        assert send_all(brigade, later=timedelta(seconds=5)) == 1
    (first, second) = [s for s in fake.requests if s.endpoint == "multicast"]
    assert first.status == 500 and second.status == 200
    assert first.retry_key == second.retry_key
    assert len(fake.deliveries) == 1


def test_a_lost_answer_is_retried_and_409_counts_as_sent(monkeypatch):
    monkeypatch.setattr(outbox, "SEND_TIMEOUT", 0.3)
    brigade = make_brigade({"第1分団": 2})
    with messaging() as fake:
        fake.lose_response_next(1.0)
        dispatch(brigade, units="本町団1")
        assert send_all(brigade) == 0  # LINE took it, but the answer never came
        assert send_all(brigade, later=timedelta(seconds=5)) == 1
    assert [s.status for s in fake.requests if s.endpoint == "multicast"][-1] == 409
    assert len(fake.deliveries) == 1  # delivered once


def test_429_waits_at_least_retry_after_and_never_duplicates():
    brigade = make_brigade({"第1分団": 2})
    with messaging() as fake:
        fake.rate_limit_next(2, retry_after=20)
        dispatch(brigade, units="本町団1")
        send_all(brigade)
        assert send_all(brigade, later=timedelta(seconds=10)) == 0
        send_all(brigade, later=timedelta(seconds=25))
        assert send_all(brigade, later=timedelta(seconds=90)) == 1
    assert len(fake.deliveries) == 1


def test_the_quota_guard_sends_nothing_beyond_the_months_allowance():
    brigade = make_brigade({"第1分団": 4})
    with messaging(quota_limit=3) as fake:
        incident_id = dispatch(brigade, units="本町団1")
        assert send_all(brigade) == 0
    assert not fake.deliveries
    assert not [s for s in fake.requests if s.endpoint == "multicast"]
    _, entries = incidents.get_incident(admin(brigade.tenant_id), incident_id)
    assert any("送信上限" in e.summary for e in entries)


def test_two_senders_never_send_a_chunk_twice():
    brigade = make_brigade({"第1分団": 0})
    bulk_members(brigade.tenant_id, 1200, "第1分団")
    with messaging(latency=0.05) as fake:
        for _ in range(3):
            dispatch(brigade, units="本町団1", reference=uuid.uuid4().hex[:10])
        threads = [threading.Thread(target=send_all, args=(brigade,)) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        send_all(brigade)
    keys = [d.retry_key for d in fake.deliveries]
    assert len(keys) == 9 and len(set(keys)) == 9
    assert len([s for s in fake.requests if s.endpoint == "multicast"]) == 9


def test_without_line_nobody_is_messaged_and_proxy_answers_work():
    brigade = make_brigade({"第1分団": 2})
    incident_id = dispatch(brigade, units="本町団1")
    send_all(brigade)
    board = tally.tally(admin(brigade.tenant_id), incident_id)
    assert not board.messaging and not any(line.notified for line in board.lines)
    member = next(iter(brigade.in_unit("第1分団")))
    callout.answer_by_proxy(
        admin(brigade.tenant_id), incident_id, member, Answer.AVAILABLE, eta_minutes=10
    )
    board = tally.tally(admin(brigade.tenant_id), incident_id)
    line = next(line for line in board.lines if line.member_id == member)
    assert line.answer == Answer.AVAILABLE and line.via == "proxy" and line.eta_minutes == 10
    (unit,) = board.units
    assert unit.unit == "第1分団" and unit.coming == 1 and unit.short
    send_all(brigade, later=timedelta(minutes=4))  # the crew check: noted, nobody to message
    _, entries = incidents.get_incident(admin(brigade.tenant_id), incident_id)
    assert any("LINEで連絡できる幹部がいません" in e.summary for e in entries)


# ---------------------------------------------------------------------------
# The webhook


def test_a_button_press_is_recorded_confirmed_once_and_counted_once():
    brigade = make_brigade({"第1分団": 2})
    member = next(iter(brigade.in_unit("第1分団")))
    with messaging() as fake:
        incident_id = dispatch(brigade, units="本町団1")
        data = Postback(brigade.tenant_id, incident_id, answer=Answer.AVAILABLE).encode()
        event = fake.postback_event(brigade.sub_of(member), data)
        assert post_webhook(fake, [event]).status_code == 200
        redelivered = {**event, "deliveryContext": {"isRedelivery": True}}
        assert post_webhook(fake, [redelivered]).status_code == 200
        eta = Postback(brigade.tenant_id, incident_id, eta_minutes=10).encode()
        post_webhook(fake, [fake.postback_event(brigade.sub_of(member), eta)])
    replies = [d for d in fake.deliveries if d.endpoint == "reply"]
    assert len(replies) == 2
    assert "出動可" in replies[0].messages[0]["text"]
    assert len(replies[0].messages[0]["quickReply"]["items"]) == 4
    board = tally.tally(admin(brigade.tenant_id), incident_id)
    line = next(line for line in board.lines if line.member_id == member)
    assert line.answer == Answer.AVAILABLE and line.eta_minutes == 10 and line.via == "line"
    assert board.totals[Answer.AVAILABLE] == 1


def test_postbacks_from_non_targets_and_for_ended_incidents_are_refused():
    brigade = make_brigade({"第1分団": 1, "第2分団": 1})
    outsider = next(iter(brigade.in_unit("第2分団")))
    member = next(iter(brigade.in_unit("第1分団")))
    with messaging() as fake:
        incident_id = dispatch(brigade, units="本町団1")
        press(fake, brigade, outsider, incident_id, Answer.AVAILABLE)
        row = incidents.get_incident(admin(brigade.tenant_id), incident_id)[0]
        incidents.set_status(
            admin(brigade.tenant_id),
            incident_id,
            incidents.S.FALSE_ALARM,
            expected_version=row.version,
        )
        press(fake, brigade, member, incident_id, Answer.AVAILABLE)
    texts = [d.messages[0]["text"] for d in fake.deliveries if d.endpoint == "reply"]
    assert "連絡先に含まれていない" in texts[0] and "終了している" in texts[1]
    assert tally.tally(admin(brigade.tenant_id), incident_id).totals["none"] == 2


def test_a_webhook_with_a_bad_or_missing_signature_is_refused_and_logged(engine):
    brigade = make_brigade({"第1分団": 1})
    member = next(iter(brigade.in_unit("第1分団")))
    with messaging() as fake:
        incident_id = dispatch(brigade, units="本町団1")
        data = Postback(brigade.tenant_id, incident_id, answer=Answer.AVAILABLE).encode()
        raw, headers = fake.webhook([fake.postback_event(brigade.sub_of(member), data)])
        tampered = raw.replace(b"available", b"unavailable")
        assert post_webhook(fake, [], body=tampered, headers=headers).status_code == 400
        missing = {"content-type": "application/json"}
        assert post_webhook(fake, [], body=raw, headers=missing).status_code == 400
        assert post_webhook(fake, []).status_code == 200  # LINE's verification call
    assert tally.tally(admin(brigade.tenant_id), incident_id).totals["none"] == 2
    refused = [
        e
        for e in audit_events(engine, PLATFORM_TENANT_ID, category=AuditCategory.AUTH)
        if e.action == "line.webhook_refused"
    ]
    assert len(refused) >= 2


def friend_label(brigade: Brigade, member_id: uuid.UUID) -> str:
    accounts = registrations.list_accounts(admin(brigade.tenant_id))
    return next(a.friend_label for a in accounts if a.member_id == member_id)


def test_unfollow_blocks_messages_and_follow_restores_them():
    brigade = make_brigade({"第1分団": 2})
    member = next(iter(brigade.in_unit("第1分団")))
    with messaging() as fake:
        post_webhook(fake, [fake.unfollow_event(brigade.sub_of(member))])
        assert friend_label(brigade, member) == "ブロック中"  # shown on アカウント管理
        dispatch(brigade, units="本町団1")
        send_all(brigade)
        assert brigade.sub_of(member) not in multicast_recipients(fake)
        post_webhook(fake, [fake.follow_event(brigade.sub_of(member))])
        assert friend_label(brigade, member) == "友だち"
        dispatch(brigade, units="本町団1", reference="other-1")
        send_all(brigade)
        assert brigade.sub_of(member) in multicast_recipients(fake)


# ---------------------------------------------------------------------------
# Escalation, follow-ups


def test_the_silent_are_reminded_and_leaders_told_of_a_short_crew():
    brigade = make_brigade({"第1分団": 4})
    first, *silent = sorted(brigade.in_unit("第1分団"))
    with messaging() as fake:
        incident_id = dispatch(brigade, units="本町団1")
        send_all(brigade)
        press(fake, brigade, first, incident_id, Answer.AVAILABLE)
        fake.deliveries.clear()
        send_all(brigade, later=timedelta(minutes=2))
        assert not fake.deliveries  # not yet: 3 minutes by default
        send_all(brigade, later=timedelta(minutes=4))
        send_all(brigade, later=timedelta(minutes=4))
    by_kind = {}
    for d in fake.deliveries:
        by_kind.setdefault(d.messages[0]["type"], set()).update(d.to)
    reminded = by_kind["flex"]
    leaders = {brigade.sub_of(m) for m in brigade.leaders}
    assert reminded == {brigade.sub_of(m) for m in silent} | leaders - {brigade.sub_of(first)}
    assert by_kind["text"] == leaders  # the shortage: 1 of 3
    assert (
        "人員不足"
        in next(d for d in fake.deliveries if d.messages[0]["type"] == "text").messages[0]["text"]
    )


def test_no_reminder_after_a_false_alarm_and_the_follow_up_goes_to_those_coming():
    brigade = make_brigade({"第1分団": 3})
    coming, not_coming, _silent = sorted(brigade.in_unit("第1分団"))
    with messaging() as fake:
        incident_id = dispatch(brigade, units="本町団1")
        send_all(brigade)
        press(fake, brigade, coming, incident_id, Answer.LATE)
        press(fake, brigade, not_coming, incident_id, Answer.UNAVAILABLE)
        fake.deliveries.clear()
        source = make_source(brigade.tenant_id)
        followup = mail(source.address, body(units=""), subject="【誤報】建物火災")
        intake.receive(where(source), followup, envelope_from=SENDER)
        send_all(brigade, later=timedelta(minutes=10))
    (sent,) = [d for d in fake.deliveries if d.endpoint == "multicast"]
    assert sent.to == (brigade.sub_of(coming),)
    assert "誤報" in sent.messages[0]["text"]


def set_status_by_hand(brigade: Brigade, incident_id: uuid.UUID, status, actor=None):
    actor = actor or admin(brigade.tenant_id)
    row = incidents.get_incident(actor, incident_id)[0]
    return incidents.set_status(actor, incident_id, status, expected_version=row.version)


def test_a_cancel_by_hand_withdraws_unsent_calls_and_tells_those_coming(engine):
    """取消 by a leader before the sender ran: nobody gets the call; after answers, 鎮火 by hand
    goes to those coming, as a follow-up mail's would. Only 編集 may change the status."""
    brigade = make_brigade({"第1分団": 3})
    coming, not_coming, _silent = sorted(brigade.in_unit("第1分団"))
    viewer = actor_with(brigade.tenant_id, {Function.DISPATCH: Level.VIEW})
    other = make_brigade({"第1分団": 1})
    with messaging() as fake:
        cancelled = dispatch(brigade, units="本町団1")
        dispatch(other, units="本町団1")  # another brigade's waiting call is not withdrawn
        with pytest.raises(PermissionDenied):
            set_status_by_hand(brigade, cancelled, incidents.S.CANCELLED, actor=viewer)
        set_status_by_hand(brigade, cancelled, incidents.S.CANCELLED)
        with pytest.raises(ValidationError):  # no answer, not even by proxy, once it ended
            callout.answer_by_proxy(admin(brigade.tenant_id), cancelled, coming, Answer.AVAILABLE)
        send_all(brigade, later=timedelta(minutes=10))
        assert not fake.deliveries  # neither the call nor a reminder
        _view, entries = incidents.get_incident(admin(brigade.tenant_id), cancelled)
        assert any("取りやめました" in e.summary for e in entries)
        with unit_of_work(brigade.tenant_id) as db:
            chunks = db.exec(select(LineOutbox).where(LineOutbox.tenant_id == brigade.tenant_id))
            assert {c.status for c in chunks.all()} == {OutboxStatus.CANCELLED}
        with unit_of_work(other.tenant_id) as db:
            chunks = db.exec(select(LineOutbox).where(LineOutbox.tenant_id == other.tenant_id))
            assert {c.status for c in chunks.all()} == {OutboxStatus.PENDING}

        incident_id = dispatch(brigade, units="本町団1", reference="R-2")
        send_all(brigade)
        press(fake, brigade, coming, incident_id, Answer.AVAILABLE)
        press(fake, brigade, not_coming, incident_id, Answer.UNAVAILABLE)
        fake.deliveries.clear()
        set_status_by_hand(brigade, incident_id, incidents.S.EXTINGUISHED)
        send_all(brigade, later=timedelta(minutes=10))
    (sent,) = [d for d in fake.deliveries if d.endpoint == "multicast"]
    assert sent.to == (brigade.sub_of(coming),)
    assert "鎮火" in sent.messages[0]["text"]
    withdrawn = audit_events(engine, brigade.tenant_id, category=AuditCategory.OPERATION)
    assert any(e.action == "callout.withdrawn" for e in withdrawn)


# ---------------------------------------------------------------------------
# Permissions and other brigades


def test_call_out_and_proxy_answers_need_dispatch_edit():
    brigade = make_brigade({"第1分団": 1, "第2分団": 1})
    incident_id = dispatch(brigade, units="本町団1")
    viewer = actor_with(brigade.tenant_id, {Function.DISPATCH: Level.VIEW})
    member = next(iter(brigade.in_unit("第1分団")))
    with pytest.raises(PermissionDenied):
        callout.call_out(viewer, incident_id, ("第2分団",))
    with pytest.raises(PermissionDenied):
        callout.answer_by_proxy(viewer, incident_id, member, Answer.AVAILABLE)
    assert tally.tally(viewer, incident_id).lines[0].name == ""  # no names for 閲覧
    editor = actor_with(brigade.tenant_id, {Function.DISPATCH: Level.EDIT})
    outsider = next(iter(brigade.in_unit("第2分団")))
    with pytest.raises(ValidationError):  # not called for this incident
        callout.answer_by_proxy(editor, incident_id, outsider, Answer.AVAILABLE)
    with pytest.raises(ValidationError):  # widening names no 分団
        callout.call_out(editor, incident_id, ())
    with pytest.raises(ValidationError):  # a 分団 with no active member
        callout.call_out(editor, incident_id, ("第9分団",))
    with pytest.raises(ValidationError):  # an ETA beyond 4 hours
        callout.answer_by_proxy(editor, incident_id, member, Answer.LATE, eta_minutes=241)
    assert callout.call_out(editor, incident_id, ("第2分団",)) == 1  # newly called
    assert callout.call_out(editor, incident_id, ("第2分団",)) == 0  # called already
    callout.answer_by_proxy(editor, incident_id, outsider, Answer.AVAILABLE)
    with pytest.raises(NotFound):
        callout.answer_by_proxy(editor, incident_id, uuid.uuid4(), Answer.AVAILABLE)


def test_another_brigade_reaches_nothing_of_this_ones_call_out():
    brigade = make_brigade({"第1分団": 1})
    other = make_brigade({"第1分団": 1})
    incident_id = dispatch(brigade, units="本町団1")
    member = next(iter(brigade.in_unit("第1分団")))
    for call in (
        lambda: tally.tally(admin(other.tenant_id), incident_id),
        lambda: callout.call_out(admin(other.tenant_id), incident_id, ("第1分団",)),
        lambda: callout.answer_by_proxy(
            admin(other.tenant_id), incident_id, member, Answer.AVAILABLE
        ),
    ):
        with pytest.raises(NotFound):
            call()
    # a postback naming this brigade from a LINE user linked only in the other is refused
    with messaging() as fake:
        outsider = next(iter(other.in_unit("第1分団")))
        data = Postback(brigade.tenant_id, incident_id, answer=Answer.AVAILABLE).encode()
        post_webhook(fake, [fake.postback_event(other.sub_of(outsider), data)])
    assert tally.tally(admin(brigade.tenant_id), incident_id).totals["none"] == 2
    with unit_of_work(brigade.tenant_id) as db:
        targets = db.exec(
            select(CalloutTarget).where(CalloutTarget.tenant_id == brigade.tenant_id)
        ).all()
        assert {t.member_id for t in targets} <= set(brigade.subs)


# ---------------------------------------------------------------------------
# The brigade's rules


def rules_of(brigade: Brigade, **changes) -> callout_settings.CalloutRules:
    current = callout_settings.get_rules(admin(brigade.tenant_id))
    values = {
        "auto_callout": current.auto_callout,
        "reminder_minutes": current.reminder_minutes,
        "crew_minimum": current.crew_minimum,
        "leader_rank_position": current.leader_rank_position,
        "no_units_target": current.no_units_target,
    } | changes
    return callout_settings.update_rules(
        admin(brigade.tenant_id), expected_version=current.version, **values
    )


def test_rules_change_who_is_called_and_the_crew_minimum():
    brigade = make_brigade({"第1分団": 2, "第2分団": 2})
    rules = rules_of(brigade, crew_minimum=2, no_units_target="leaders")
    assert rules.crew_minimum == 2 and rules.version == 1
    incident_id = dispatch(brigade, units="")  # names no 分団: only the leaders
    board = tally.tally(admin(brigade.tenant_id), incident_id)
    assert {line.member_id for line in board.lines} == brigade.leaders
    rules_of(brigade, auto_callout=False)
    quiet = dispatch(brigade, units="本町団1", reference="quiet-1")
    assert not tally.tally(admin(brigade.tenant_id), quiet).lines
    assert callout.call_out(admin(brigade.tenant_id), quiet, ("第1分団",)) == 3
    (unit,) = tally.tally(admin(brigade.tenant_id), quiet).units
    assert unit.crew_minimum == 2


def test_rules_need_dispatch_admin_and_valid_values():
    brigade = make_brigade({"第1分団": 1})
    editor = actor_with(brigade.tenant_id, {Function.DISPATCH: Level.EDIT})
    with pytest.raises(PermissionDenied):
        callout_settings.update_rules(
            editor,
            auto_callout=True,
            reminder_minutes=3,
            crew_minimum=3,
            leader_rank_position=3,
            no_units_target="all",
            expected_version=0,
        )
    with pytest.raises(ValidationError) as refused:
        rules_of(brigade, reminder_minutes=0, crew_minimum=99, leader_rank_position=42)
    assert set(refused.value.errors) == {"再通知までの時間", "必要人数", "幹部とする階級"}
    with pytest.raises(PermissionDenied):
        callout_settings.quota(editor)
    with pytest.raises(PermissionDenied):
        callout_test.test_recipients(editor)
    stale = callout_settings.get_rules(admin(brigade.tenant_id)).version
    rules_of(brigade, crew_minimum=4)
    with pytest.raises(Conflict):  # another administrator saved meanwhile
        callout_settings.update_rules(
            admin(brigade.tenant_id),
            auto_callout=True,
            reminder_minutes=3,
            crew_minimum=5,
            leader_rank_position=3,
            no_units_target="all",
            expected_version=stale,
        )
    assert callout_settings.get_rules(admin(brigade.tenant_id)).crew_minimum == 4


def test_the_quota_is_read_from_line_and_logged(engine):
    brigade = make_brigade({"第1分団": 1})
    assert callout_settings.quota(admin(brigade.tenant_id)) is None  # no channel
    with messaging(quota_limit=500) as fake:
        fake.used = 120
        quota = callout_settings.quota(admin(brigade.tenant_id))
        fake.used = 130
        again = callout_settings.quota(admin(brigade.tenant_id))  # the page runs again
    assert (quota.limit, quota.used, quota.remaining) == (500, 120, 380)
    assert again == quota  # read less than a minute ago: LINE is not asked again
    endpoints = [
        json.loads(e.details)["endpoint"]
        for e in audit_events(engine, brigade.tenant_id, category=AuditCategory.EXTERNAL)
    ]
    assert len([e for e in endpoints if e.endswith("/v2/bot/message/quota")]) == 1
    with pytest.raises(PermissionDenied):
        callout_settings.quota(actor_with(brigade.tenant_id, {Function.DISPATCH: Level.EDIT}))


def test_a_test_call_out_reaches_only_the_chosen_and_its_buttons_work():
    brigade = make_brigade({"第1分団": 3})
    chosen, other, _ = sorted(brigade.in_unit("第1分団"))
    editor = actor_with(brigade.tenant_id, {Function.DISPATCH: Level.EDIT})
    with pytest.raises(PermissionDenied):
        callout_test.send_test(editor, (chosen,))
    with pytest.raises(ValidationError):
        callout_test.send_test(admin(brigade.tenant_id), ())
    elsewhere = make_brigade({"第1分団": 1})
    with pytest.raises(ValidationError):  # another brigade's member is no member here
        callout_test.send_test(admin(elsewhere.tenant_id), (chosen,))
    with messaging() as fake:
        incident_id = callout_test.send_test(admin(brigade.tenant_id), (chosen,))
        send_all(brigade)
        assert multicast_recipients(fake) == [brigade.sub_of(chosen)]
        assert "【テスト】" in fake.deliveries[0].messages[0]["altText"]
        press(fake, brigade, chosen, incident_id, Answer.AVAILABLE)
        press(fake, brigade, other, incident_id, Answer.AVAILABLE)  # not chosen: refused
    board = tally.tally(admin(brigade.tenant_id), incident_id)
    assert [(line.member_id, line.answer) for line in board.lines] == [(chosen, Answer.AVAILABLE)]
    assert {r.member_id for r in callout_test.test_recipients(admin(brigade.tenant_id))} >= {chosen}


def test_an_event_kept_but_not_handled_is_handled_by_the_sweep_once():
    brigade = make_brigade({"第1分団": 1})
    member = next(iter(brigade.in_unit("第1分団")))
    with messaging() as fake:
        incident_id = dispatch(brigade, units="本町団1")
        data = Postback(brigade.tenant_id, incident_id, answer=Answer.LATE).encode()
        event = fake.postback_event(brigade.sub_of(member), data)
        assert line_inbox.keep([event])  # the process stopped before handling it
        assert not line_inbox.keep([event])  # a redelivery finds its id taken
        assert line_webhook.handle_pending(older_than_seconds=0) >= 1
        assert (
            line_webhook.handle(line_inbox.keep([event]) or [(event["webhookEventId"], event)]) == 0
        )
    board = tally.tally(admin(brigade.tenant_id), incident_id)
    assert board.totals[Answer.LATE] == 1
    assert len([d for d in fake.deliveries if d.endpoint == "reply"]) == 1


def test_a_burst_is_handled_together_and_one_failing_answer_spoils_no_other(monkeypatch, engine):
    """LINE may put several events in one request, and the handlers take every event waiting:
    one brigade's presses share a transaction. A press that fails is left for the sweep; the
    others of its batch are recorded one at a time, each once."""
    brigade = make_brigade({"第1分団": 4})
    members = sorted(brigade.in_unit("第1分団"))
    failing = members[0]
    real_add = callout.add_answer

    def add_answer(tx, row, member, *args, **kwargs):
        if member.id == failing:
            raise RuntimeError("injected")
        return real_add(tx, row, member, *args, **kwargs)

    with messaging() as fake:
        incident_id = dispatch(brigade, units="本町団1")
        data = Postback(brigade.tenant_id, incident_id, answer=Answer.AVAILABLE).encode()
        events = [fake.postback_event(brigade.sub_of(m), data) for m in members]
        nowhere = Postback(uuid.uuid4(), incident_id, answer=Answer.AVAILABLE).encode()
        events += [events[1], fake.postback_event(brigade.sub_of(members[1]), nowhere)]
        monkeypatch.setattr(callout, "add_answer", add_answer)
        assert post_webhook(fake, events).status_code == 200
        monkeypatch.setattr(callout, "add_answer", real_add)
        board = tally.tally(admin(brigade.tenant_id), incident_id)
        assert board.totals[Answer.AVAILABLE] == 3 and board.totals["none"] >= 1
        assert len([d for d in fake.deliveries if d.endpoint == "reply"]) == 3
        assert line_webhook.handle_pending(older_than_seconds=0) >= 1  # the failed one, later
    board = tally.tally(admin(brigade.tenant_id), incident_id)
    assert board.totals[Answer.AVAILABLE] == 4
    logged = audit_events(engine, PLATFORM_TENANT_ID, category=AuditCategory.EXTERNAL)
    assert any(json.loads(e.details).get("result") == "unknown_brigade" for e in logged)
