"""The call-out's scheduled self-test (自己診断, #21): mail → incident → outbox against the fake
Messaging API without reaching a member, its failures (LINE refusing, nothing sent in time, a
profile that cannot read its mail) and the alert, once a day at the brigade's JST hour, other
brigades and permissions."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import select

from core.timefmt import JST
from models.base import utcnow
from models.callout import Callout, LineOutbox
from models.dispatch import Incident
from models.enums import AuditCategory, Function, Level
from services.db import unit_of_work
from services.dispatch import incidents, intake, outbox, selftest, sources
from services.dispatch.selftest import Outcome, Step
from services.dispatch.sources import SourceInput
from services.errors import Conflict, PermissionDenied, ValidationError
from tests.callout_factories import make_brigade, messaging
from tests.dispatch_factories import PROFILE, SENDER, body, mail, make_source, where
from tests.factories import (
    actor_with,
    admin,
    audit_events,
    link_line,
    make_member,
    make_tenant,
    rank_id,
)
from tests.fakes.line_messaging import new_user_id

pytestmark = pytest.mark.usefixtures("engine")
EDITOR = {Function.DISPATCH: Level.EDIT}


def bracket_source(tenant_id: uuid.UUID, **overrides):
    """A source read by the example profile 「bracket」, whose sample mail the self-test reads."""
    overrides.setdefault("profile", sources.example_profiles()["bracket"])
    return make_source(tenant_id, **overrides)


def chief(tenant_id: uuid.UUID) -> str:
    """A 団長 (災害出動 管理) linked to LINE; returns the LINE user id."""
    member = make_member(tenant_id, rank_id=rank_id(tenant_id, "団長"))
    sub = new_user_id()
    link_line(tenant_id, member.id, sub)
    return sub


def send(tenant_id: uuid.UUID, now: datetime) -> int:
    return outbox.send_tenant(tenant_id, outbox.QuotaGuard(), now=now)


def leftovers(tenant_id: uuid.UUID) -> tuple[int, int, int]:
    """The brigade's self-test incidents, waves and outbox rows still in the database."""
    with unit_of_work(tenant_id) as db:
        mine = (Incident.tenant_id == tenant_id, Incident.number == incidents.SELFTEST_NUMBER)
        return (
            len(db.exec(select(Incident).where(*mine)).all()),
            len(db.exec(select(Callout).where(Callout.tenant_id == tenant_id)).all()),
            len(db.exec(select(LineOutbox).where(LineOutbox.tenant_id == tenant_id)).all()),
        )


def outcomes(result: selftest.Result) -> dict[Step, Outcome]:
    return {s.step: s.outcome for s in result.steps}


def selftest_events(engine, tenant_id: uuid.UUID) -> list:
    return [e for e in audit_events(engine, tenant_id) if e.action == "callout.selftest"]


# ---------------------------------------------------------------------------


def test_the_whole_path_is_validated_on_line_and_reaches_no_member(engine):
    brigade = make_brigade({"第1分団": 2})
    chief(brigade.tenant_id)
    bracket_source(brigade.tenant_id)
    start = utcnow()
    with messaging() as fake:
        assert selftest.run_tenant(brigade.tenant_id, now=start) is None  # waits for LINE
        assert incidents.list_incidents(admin(brigade.tenant_id)) == []  # never on the board
        assert selftest.status(admin(brigade.tenant_id), now=start).running_since == start
        assert send(brigade.tenant_id, start) == 1
        result = selftest.run_tenant(brigade.tenant_id, now=start + timedelta(seconds=30))

    validations = [r for r in fake.requests if r.endpoint == "validate"]
    assert [(r.status, r.recipients) for r in validations] == [(200, 0)]
    assert fake.deliveries == []  # nobody got anything
    assert result is not None and result.passed and result.error == ""
    assert outcomes(result) == {s: Outcome.PASSED for s in Step}
    assert leftovers(brigade.tenant_id) == (0, 0, 0)
    status = selftest.status(admin(brigade.tenant_id), now=start + timedelta(minutes=1))
    assert (status.last_at, status.last_error, status.running_since) == (start, "", None)
    assert status.warnings == ()
    (event,) = selftest_events(engine, brigade.tenant_id)
    assert (event.outcome, event.actor_label) == ("success", "machine:callout-selftest")
    assert json.loads(event.details)["steps"] == {s.value: "passed" for s in Step}
    calls = [
        json.loads(e.details)
        for e in audit_events(engine, brigade.tenant_id, category=AuditCategory.EXTERNAL)
    ]
    assert any(c["endpoint"].endswith("/v2/bot/message/validate/multicast") for c in calls)


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        (lambda fake: fake.fail_next(401), "チャネルアクセストークンを受け付けませんでした（401）"),
        (lambda fake: setattr(fake, "quota_limit", 0), "今月の送信上限に達しています"),
    ],
    ids=["token_refused", "quota_used_up"],
)
def test_line_refusing_fails_the_line_step_and_warns_in_the_app(engine, fault, reason):
    brigade = make_brigade({"第1分団": 1})
    chief(brigade.tenant_id)
    start = utcnow()
    with messaging() as fake:
        fault(fake)
        selftest.run_tenant(brigade.tenant_id, now=start)
        send(brigade.tenant_id, start)
        result = selftest.run_tenant(brigade.tenant_id, now=start + timedelta(seconds=5))

    assert result is not None and not result.passed
    assert outcomes(result)[Step.LINE] == Outcome.FAILED
    assert result.error.startswith("LINEでの送信確認: ") and reason in result.error
    assert fake.deliveries == []  # a refused channel gets no alert push either
    assert leftovers(brigade.tenant_id) == (0, 0, 0)
    (warning,) = selftest.status(admin(brigade.tenant_id)).warnings
    jst = start.astimezone(JST).strftime("%Y-%m-%d %H:%M")
    assert f"（{jst}）" in warning and "LINEでの送信確認" in warning and reason in warning
    (event,) = selftest_events(engine, brigade.tenant_id)
    assert event.outcome == "failure"
    assert json.loads(event.details)["failed_steps"] == ["LINEでの送信確認"]


def test_a_5xx_until_the_deadline_fails_and_the_dispatch_admins_are_told_on_line():
    brigade = make_brigade({"第1分団": 2})  # its 分団長 holds 災害出動 編集 only
    admin_sub = chief(brigade.tenant_id)
    start = utcnow()
    with messaging() as fake:
        fake.fail_next(500)
        selftest.run_tenant(brigade.tenant_id, now=start)
        send(brigade.tenant_id, start)  # 500: retried later, with backoff
        assert selftest.run_tenant(brigade.tenant_id, now=start + timedelta(minutes=1)) is None
        result = selftest.run_tenant(brigade.tenant_id, now=start + timedelta(minutes=3))
        assert result is not None and outcomes(result)[Step.LINE] == Outcome.FAILED
        assert "2分以内に送信できませんでした（LINEの応答: 500）" in result.error
        assert incidents.list_incidents(admin(brigade.tenant_id)) == []  # kept for the alert
        assert send(brigade.tenant_id, start + timedelta(minutes=3)) == 1
        selftest.run_tenant(brigade.tenant_id, now=start + timedelta(minutes=3, seconds=5))

    validations = [r for r in fake.requests if r.endpoint == "validate"]
    assert [r.status for r in validations] == [500]  # the cancelled chunk was not retried
    (alert,) = fake.deliveries
    assert (alert.endpoint, alert.to) == ("multicast", (admin_sub,))
    text = alert.messages[0]["text"]
    assert text.startswith("【自己診断】") and "LINEでの送信確認" in text
    assert "/mail-sources" in text
    assert leftovers(brigade.tenant_id) == (0, 0, 0)


def test_a_chunk_no_sender_finishes_in_time_fails_but_one_in_flight_is_waited_for():
    brigade = make_brigade({"第1分団": 1})
    start = utcnow()
    with messaging():
        selftest.run_tenant(brigade.tenant_id, now=start)
        assert selftest.run_tenant(brigade.tenant_id, now=start + timedelta(seconds=110)) is None
        (work,) = outbox.claim(brigade.tenant_id, start + timedelta(seconds=110))  # never finished
        in_flight = start + timedelta(seconds=130)
        assert selftest.run_tenant(brigade.tenant_id, now=in_flight) is None
        result = selftest.run_tenant(brigade.tenant_id, now=start + timedelta(seconds=171))

    assert work.kind == "selftest" and work.user_ids == ()
    assert result is not None and not result.passed
    assert "2分以内に送信できませんでした（LINEの応答: なし）" in result.error


def test_without_a_sender_at_all_the_reason_says_so():
    brigade = make_brigade({"第1分団": 1})
    start = utcnow()
    with messaging():
        selftest.run_tenant(brigade.tenant_id, now=start)
        result = selftest.run_tenant(brigade.tenant_id, now=start + timedelta(minutes=2))
    assert "（送信処理が動いていません）" in result.error


def test_without_line_the_mail_and_incident_run_and_line_is_skipped(engine):
    tenant = make_brigade({"第1分団": 1}).tenant_id
    bracket_source(tenant)
    result = selftest.run_now(admin(tenant))
    assert result is not None and result.passed
    assert outcomes(result) == {
        Step.MAIL: Outcome.PASSED,
        Step.INCIDENT: Outcome.PASSED,
        Step.LINE: Outcome.SKIPPED,
    }
    assert leftovers(tenant) == (0, 0, 0)
    actions = [e.action for e in audit_events(engine, tenant)]
    assert actions[-2:] == ["callout.selftest_start", "callout.selftest"]


def test_an_example_profile_that_cannot_read_its_sample_fails_the_mail_step():
    tenant = make_brigade({"第1分団": 1}).tenant_id
    broken = sources.example_profiles()["bracket"]
    broken["patterns"]["place"] = r"^場所は(?P<value>.+)"
    bracket_source(tenant, name="A消防本部", profile=broken)
    result = selftest.run_now(admin(tenant))
    assert outcomes(result)[Step.MAIL] == Outcome.FAILED
    assert (
        result.error == "受信メールの解析: 「A消防本部」: 見本メールから発生場所を読み取れません。"
    )
    assert leftovers(tenant) == (0, 0, 0)


def test_a_profile_of_the_brigades_own_is_checked_on_the_last_mail_it_read():
    tenant = make_brigade({"第1分団": 1}).tenant_id
    source = make_source(tenant, name="B消防本部")  # PROFILE: no example's sample fits it
    assert outcomes(selftest.run_now(admin(tenant)))[Step.MAIL] == Outcome.SKIPPED
    intake.receive(where(source), mail(source.address, body()), envelope_from=SENDER)
    assert outcomes(selftest.run_now(admin(tenant)))[Step.MAIL] == Outcome.PASSED

    changed = {**PROFILE, "patterns": {**PROFILE["patterns"], "kind": r"^種別(?P<value>.+)"}}
    edit = SourceInput(name=source.name, senders=source.senders, profile=changed)
    sources.update_source(admin(tenant), source.id, edit, expected_version=source.version)
    result = selftest.run_now(admin(tenant))
    assert result.error == (
        "受信メールの解析: 「B消防本部」: 前回読めたメールから災害種別を読み取れません。"
    )


def test_no_mail_source_skips_the_mail_step_but_stopped_ones_fail_it():
    tenant = make_brigade({"第1分団": 1}).tenant_id
    result = selftest.run_now(admin(tenant))
    assert result.passed and outcomes(result)[Step.MAIL] == Outcome.SKIPPED
    assert "受信設定がありません" in result.steps[0].reason

    bracket_source(tenant, active=False)
    result = selftest.run_now(admin(tenant))
    assert result.error == (
        "受信メールの解析: 受信設定がすべて停止中のため、出動メールを受け付けません。"
    )


def test_due_once_a_day_from_the_brigades_hour_in_japan():
    def jst(day: int, hour: int, minute: int = 0) -> datetime:
        return datetime(2026, 12, day, hour, minute, tzinfo=JST).astimezone(UTC)

    assert selftest.is_due(jst(7, 6), 6, None)
    assert not selftest.is_due(jst(7, 5, 59), 6, jst(6, 6, 1))
    assert selftest.is_due(jst(7, 6), 6, jst(6, 6, 1))
    assert not selftest.is_due(jst(7, 23), 6, jst(7, 6, 1))  # once a day
    assert selftest.is_due(jst(7, 7), 6, jst(7, 5))  # a run by hand before the hour
    assert not selftest.is_due(jst(8, 5), 6, jst(7, 7))  # ... one after it stands for the day
    assert selftest.is_due(jst(8, 0, 30), 0, jst(7, 0, 1))  # midnight JST is 15:00 UTC
    assert not selftest.is_due(jst(7, 6), None, None)  # off

    tenant = make_brigade({"第1分団": 1}).tenant_id
    assert tenant in selftest.due_tenants(jst(7, 6))  # no settings yet: the default hour, 6
    selftest.run_tenant(tenant, now=jst(7, 6, 10))  # without LINE: done at once
    assert tenant not in selftest.due_tenants(jst(7, 23))
    assert selftest.run_tenant(tenant, now=jst(7, 23)) is None
    assert tenant not in selftest.due_tenants(jst(8, 5, 59))
    assert tenant in selftest.due_tenants(jst(8, 6))
    status = selftest.set_hour(admin(tenant), 22, expected_version=0)
    assert tenant in selftest.due_tenants(jst(7, 22)) and status.hour == 22
    selftest.set_hour(admin(tenant), None, expected_version=status.version)
    assert tenant not in selftest.due_tenants(jst(9, 6))


def test_a_running_self_test_makes_its_brigade_due_for_the_check():
    tenant = make_brigade({"第1分団": 1}).tenant_id
    start = utcnow()
    selftest.set_hour(admin(tenant), 3, expected_version=0)
    with messaging():
        selftest.run_now(admin(tenant), now=start)
        assert tenant in selftest.due_tenants(start + timedelta(seconds=10))
        with pytest.raises(ValidationError):
            selftest.run_now(admin(tenant), now=start)  # one at a time
        selftest.run_tenant(tenant, now=start + timedelta(minutes=3))
    assert leftovers(tenant) == (0, 0, 0)


def test_another_brigade_is_untouched_and_never_sees_the_self_test(engine):
    mine, other = make_brigade({"第1分団": 1}), make_brigade({"第1分団": 1})
    chief(other.tenant_id)
    bracket_source(other.tenant_id)
    intake.receive(*delivery(other.tenant_id))
    board = incidents.list_incidents(admin(other.tenant_id))
    before = (leftovers(other.tenant_id), len(audit_events(engine, other.tenant_id)))
    start = utcnow()
    with messaging():
        selftest.run_tenant(mine.tenant_id, now=start)
        assert incidents.list_incidents(admin(other.tenant_id)) == board
        assert selftest.status(admin(other.tenant_id)).running_since is None
        send(mine.tenant_id, start)
        assert selftest.run_tenant(mine.tenant_id, now=start + timedelta(seconds=5)).passed
    assert (leftovers(other.tenant_id), len(audit_events(engine, other.tenant_id))) == before
    assert selftest.status(admin(other.tenant_id)).last_at is None


def delivery(tenant_id: uuid.UUID):
    source = make_source(tenant_id)
    return where(source), mail(source.address, body())


def test_only_dispatch_admin_reads_sets_or_starts_it(engine):
    tenant = make_brigade({"第1分団": 1}).tenant_id
    editor = actor_with(tenant, EDITOR)
    for call in (
        lambda: selftest.status(editor),
        lambda: selftest.set_hour(editor, 5, expected_version=0),
        lambda: selftest.run_now(editor),
    ):
        with pytest.raises(PermissionDenied):
            call()
    assert leftovers(tenant) == (0, 0, 0)
    chief_actor = actor_with(tenant, {Function.DISPATCH: Level.ADMIN})
    for bad in (24, -1, True, "6"):
        with pytest.raises(ValidationError):
            selftest.set_hour(chief_actor, bad, expected_version=0)
    status = selftest.set_hour(chief_actor, 5, expected_version=0)
    assert status.hour == 5
    with pytest.raises(Conflict):
        selftest.set_hour(chief_actor, 7, expected_version=0)
    event = audit_events(engine, tenant)[-1]
    assert (event.action, json.loads(event.details)) == (
        "callout.selftest_hour",
        {"before": 6, "after": 5},
    )


def test_the_workers_pass_runs_the_brigades_due_once_a_day(own_database):
    due, off = make_tenant(), make_tenant()
    selftest.set_hour(admin(off), None, expected_version=0)
    assert selftest.run_due() >= 1  # this database's other brigades count too
    assert selftest.status(admin(due)).last_at is not None
    assert selftest.status(admin(off)).last_at is None
    assert selftest.run_due() == 0
