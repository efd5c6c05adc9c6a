"""出動報告 (#22): asked for when an incident ends, entered and submitted by the member (or a
leader for them), approved through the brigade's chain with return-for-correction; rights from
the permission matrix; other brigades see nothing."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import select

from models.base import utcnow
from models.dispatch import IncidentStatus
from models.enums import Answer
from models.report import ReportStatus, StepAction
from services.errors import Conflict, NotFound, PermissionDenied, ValidationError
from services.reports import approvals, reports
from services.reports.approvals import ChainStep, StepScope
from services.reports.reports import ReportInput
from tests.factories import admin, audit_events
from tests.report_factories import closed_incident, make_people

pytestmark = pytest.mark.usefixtures("engine")


def actions(engine, tenant_id) -> list[str]:
    return [e.action for e in audit_events(engine, tenant_id)]


CREW = {
    "a": ("団員", "第1分団 第1部"),
    "b": ("団員", "第1分団 第2部"),
    "c": ("団員", "第1分団 第1部"),
    "leader1": ("分団長", "第1分団"),
    "leader2": ("分団長", "第2分団"),
    "chief": ("団長", "団本部"),
    "deputy": ("副団長", "団本部"),
}


def timed(hours: float = 3, *, category: str = "火災", ago: float = 5) -> ReportInput:
    start = utcnow() - timedelta(hours=ago)
    return ReportInput(category, "放水活動", start, start + timedelta(hours=hours))


@pytest.fixture
def crew():
    return make_people(CREW)


def pending(actor, **kwargs) -> list:
    return [v.id for v in reports.pending_approval(actor, **kwargs)]


def own_report(people, key: str):
    (view,) = reports.my_reports(people.actor(key))
    return view


def test_closing_asks_those_who_came_once(crew, engine):
    incident = closed_incident(
        crew, {"a": Answer.AVAILABLE, "b": Answer.LATE, "c": Answer.UNAVAILABLE}
    )
    asked = {v.member_id for v in reports.list_reports(admin(crew.tenant_id))}
    assert asked == {crew.ids["a"], crew.ids["b"]}
    view = own_report(crew, "a")
    assert view.status == ReportStatus.REQUESTED and view.incident_id == incident
    assert view.category == "火災" and view.started_at is not None and view.ended_at is not None
    assert reports.my_reports(crew.actor("c")) == []
    assert "reports.requested" in actions(engine, crew.tenant_id)


def test_a_false_alarm_is_prefilled(crew):
    closed_incident(crew, {"a": Answer.AVAILABLE}, via=IncidentStatus.FALSE_ALARM)
    assert own_report(crew, "a").false_alarm


def test_submit_needs_times_and_a_known_category(crew):
    closed_incident(crew, {"a": Answer.AVAILABLE})
    view, member = own_report(crew, "a"), crew.actor("a")
    with pytest.raises(ValidationError) as missing:
        reports.save_report(
            member,
            view.id,
            ReportInput("火災", "", None, None),
            submit=True,
            expected_version=view.version,
        )
    assert "時刻" in missing.value.errors
    start = utcnow() - timedelta(hours=2)
    with pytest.raises(ValidationError) as bad:
        reports.save_report(
            member,
            view.id,
            ReportInput("宴会", "x" * 501, start, start - timedelta(minutes=1)),
            submit=True,
            expected_version=view.version,
        )
    assert set(bad.value.errors) == {"区分", "活動内容", "終了"}
    with pytest.raises(ValidationError) as future:
        reports.save_report(
            member,
            view.id,
            ReportInput("火災", "", start, utcnow() + timedelta(hours=1)),
            expected_version=view.version,
        )
    assert "終了" in future.value.errors
    assert own_report(crew, "a").version == view.version  # nothing half-written


def test_default_chain_unit_leader_then_chief(crew, engine):
    closed_incident(crew, {"a": Answer.AVAILABLE})
    view = own_report(crew, "a")
    submitted = reports.save_report(
        crew.actor("a"), view.id, timed(), submit=True, expected_version=view.version
    )
    assert submitted.status == ReportStatus.SUBMITTED
    assert submitted.waiting_for == "分団長の承認待ち"
    # the chief waits for the 分団長 (or takes it as 管理, not listed as theirs); the other
    # 分団's 分団長 may not take it
    assert pending(crew.actor("chief")) == []
    assert pending(crew.actor("leader2")) == []
    with pytest.raises(PermissionDenied, match="第1分団の分団長"):
        approvals.approve(crew.actor("leader2"), view.id, expected_version=submitted.version)
    assert pending(crew.actor("leader1")) == [view.id]
    assert not approvals.approve(crew.actor("leader1"), view.id, expected_version=submitted.version)
    after = reports.get_report(crew.actor("a"), view.id)
    assert after.waiting_for == "団長の承認待ち"
    assert pending(crew.actor("leader1")) == []
    assert pending(crew.actor("deputy")) == []  # 副団長 is below 団長
    assert approvals.approve(crew.actor("chief"), view.id, expected_version=after.version)
    done = reports.get_report(crew.actor("a"), view.id)
    assert done.status == ReportStatus.APPROVED
    assert [s.action for s in done.steps] == [
        StepAction.SUBMIT,
        StepAction.APPROVE,
        StepAction.APPROVE,
    ]
    assert actions(engine, crew.tenant_id).count("reports.approved") == 2


def test_return_for_correction_and_resubmit(crew):
    closed_incident(crew, {"a": Answer.AVAILABLE})
    view = own_report(crew, "a")
    view = reports.save_report(
        crew.actor("a"), view.id, timed(), submit=True, expected_version=view.version
    )
    with pytest.raises(ValidationError):
        approvals.return_report(
            crew.actor("leader1"), view.id, expected_version=view.version, reason=" "
        )
    approvals.return_report(
        crew.actor("leader1"), view.id, expected_version=view.version, reason="終了時刻が違います"
    )
    back = own_report(crew, "a")
    assert back.status == ReportStatus.RETURNED and back.returned_reason == "終了時刻が違います"
    again = reports.save_report(
        crew.actor("a"), back.id, timed(2), submit=True, expected_version=back.version
    )
    assert again.status == ReportStatus.SUBMITTED and again.step == 0
    assert again.returned_reason == ""
    assert [s.action for s in again.steps][-2:] == [StepAction.RETURN, StepAction.SUBMIT]


def test_nobody_approves_their_own_report():
    people = make_people({"leader": ("分団長", "第1分団"), "chief": ("団長", "団本部")})
    leader = people.actor("leader")
    view = reports.save_report(leader, None, timed(category="訓練"), submit=True)
    with pytest.raises(PermissionDenied, match="自分の報告"):
        approvals.approve(leader, view.id, expected_version=view.version)


def test_admin_may_take_a_unit_step_for_any_unit(crew):
    closed_incident(crew, {"a": Answer.AVAILABLE})
    view = own_report(crew, "a")
    view = reports.save_report(
        crew.actor("a"), view.id, timed(), submit=True, expected_version=view.version
    )
    # the chief holds 出動報告 管理: the 分団 step does not wait for an absent 分団長
    approvals.save_chain(
        crew.actor("chief"),
        [ChainStep("分団長", StepScope.UNIT), ChainStep("団長")],
        expected_version=0,
    )
    chief = crew.actor("chief")
    assert pending(chief) == []
    assert pending(chief, overrides=True) == [view.id]
    approvals.approve(chief, view.id, expected_version=view.version)
    # ... but not the next step too: one person, one step
    after = reports.get_report(chief, view.id)
    assert pending(chief) == []
    with pytest.raises(PermissionDenied, match="2つの段階"):
        approvals.approve(chief, view.id, expected_version=after.version)


def test_member_rights(crew):
    closed_incident(crew, {"a": Answer.AVAILABLE, "b": Answer.AVAILABLE})
    theirs = own_report(crew, "b")
    member = crew.actor("a")
    with pytest.raises(NotFound):  # another member's report is not there for a 団員
        reports.get_report(member, theirs.id)
    with pytest.raises(PermissionDenied):
        reports.save_report(member, theirs.id, timed(), expected_version=theirs.version)
    with pytest.raises(PermissionDenied):
        reports.save_report(member, None, timed(category="訓練"), member_id=crew.ids["b"])
    with pytest.raises(PermissionDenied):
        reports.list_reports(member)
    with pytest.raises(PermissionDenied):
        pending(member)
    # a 分団長 (出動報告 編集) enters for a member
    entered = reports.save_report(
        crew.actor("leader1"), None, timed(category="訓練"), member_id=crew.ids["b"]
    )
    assert entered.member_id == crew.ids["b"] and entered.status == ReportStatus.REQUESTED


def test_decline_and_stale_versions(crew):
    closed_incident(crew, {"a": Answer.AVAILABLE})
    view = own_report(crew, "a")
    with pytest.raises(Conflict):
        reports.decline_report(crew.actor("a"), view.id, expected_version=view.version + 1)
    reports.decline_report(crew.actor("a"), view.id, expected_version=view.version)
    declined = own_report(crew, "a")
    assert declined.status == ReportStatus.DECLINED
    with pytest.raises(ValidationError):
        reports.save_report(crew.actor("a"), view.id, timed(), expected_version=declined.version)


def test_other_brigade_sees_and_changes_nothing(crew):
    closed_incident(crew, {"a": Answer.AVAILABLE})
    view = own_report(crew, "a")
    other = make_people({"chief": ("団長", "団本部")})
    intruder = other.actor("chief")
    assert reports.list_reports(intruder) == []
    assert pending(intruder) == []
    with pytest.raises(NotFound):
        reports.get_report(intruder, view.id)
    with pytest.raises(NotFound):
        approvals.return_report(intruder, view.id, expected_version=view.version, reason="x")
    with pytest.raises(NotFound):
        reports.save_report(intruder, view.id, timed(), expected_version=view.version)


def test_chain_validation_and_conflict(crew):
    chief = crew.actor("chief")
    with pytest.raises(ValidationError) as bad:
        approvals.save_chain(
            chief, [ChainStep("団長"), ChainStep("班長"), ChainStep("隊長")], expected_version=0
        )
    assert set(bad.value.errors) == {"2段目", "3段目"}
    with pytest.raises(ValidationError):
        approvals.save_chain(chief, [], expected_version=0)
    chain = approvals.save_chain(
        chief,
        [ChainStep("班長", StepScope.UNIT), ChainStep("分団長", StepScope.UNIT), ChainStep("団長")],
        expected_version=0,
    )
    assert chain.version == 1 and len(chain.steps) == 3
    with pytest.raises(Conflict):
        approvals.save_chain(chief, [ChainStep("団長")], expected_version=0)
    with pytest.raises(PermissionDenied):
        approvals.save_chain(crew.actor("leader1"), [ChainStep("団長")], expected_version=1)


def test_the_request_goes_on_line_to_those_it_reaches(crew):
    from models.callout import Callout, CalloutKind
    from services.db import unit_of_work
    from tests.callout_factories import messaging
    from tests.factories import link_line
    from tests.fakes.line_messaging import new_user_id

    link_line(crew.tenant_id, crew.ids["a"], new_user_id())
    with messaging():
        closed_incident(crew, {"a": Answer.AVAILABLE, "b": Answer.AVAILABLE})
    with unit_of_work(crew.tenant_id) as db:
        waves = db.exec(
            select(Callout).where(
                Callout.tenant_id == crew.tenant_id, Callout.kind == CalloutKind.REPORT_REQUEST
            )
        ).all()
    assert [w.recipients for w in waves] == [1]  # b has no LINE: the page lists the request
    assert {v.member_id for v in reports.list_reports(admin(crew.tenant_id))} == {
        crew.ids["a"],
        crew.ids["b"],
    }


def test_a_recorded_water_inspection_becomes_a_report(crew):
    from core.timefmt import today_jst
    from models.water import WaterInspectionCreate
    from services import water_sources
    from services.reports import inspections
    from tests.water_factories import make_source

    source = make_source(crew.tenant_id)
    done = water_sources.record_inspection(
        admin(crew.tenant_id),
        source.id,
        data=WaterInspectionCreate(
            inspected_on=today_jst(), result="異常なし", inspector_member_id=crew.ids["a"]
        ),
    )
    water_sources.record_inspection(  # by someone from outside: not a member's report
        admin(crew.tenant_id),
        source.id,
        data=WaterInspectionCreate(
            inspected_on=today_jst(), result="異常なし", inspector_name="外部"
        ),
    )
    member = crew.actor("a")
    (choice,) = inspections.unreported_inspections(member)
    assert choice.id == done.id and choice.source_code == source.code
    assert inspections.unreported_inspections(crew.actor("b")) == []
    with pytest.raises(PermissionDenied):  # b may not make a's report
        inspections.report_from_inspection(crew.actor("b"), done.id)
    view = inspections.report_from_inspection(member, done.id)
    assert view.category == "警防調査" and source.code in view.activity
    assert view.status == ReportStatus.REQUESTED and view.started_at is None
    assert inspections.unreported_inspections(member) == []
    with pytest.raises(ValidationError):
        inspections.report_from_inspection(member, done.id)
    with pytest.raises(NotFound):
        inspections.report_from_inspection(make_people({"x": ("団長", "本部")}).actor("x"), done.id)


def test_reporters_are_the_brigades_active_members_for_editors_only(crew):
    from services import members

    members.retire_member(admin(crew.tenant_id), crew.ids["c"])
    listed = {r.id for r in reports.reporters(crew.actor("leader1"))}
    assert crew.ids["a"] in listed and crew.ids["c"] not in listed
    with pytest.raises(PermissionDenied):
        reports.reporters(crew.actor("a"))
    other = make_people({"chief": ("団長", "団本部")})
    assert {r.id for r in reports.reporters(other.actor("chief"))} == {other.ids["chief"]}


def test_the_form_offers_what_the_table_can_price(crew):
    from core.rewards import HIOKI, MISAWA
    from services.reports import rewards

    assert "訓練" in reports.categories(crew.actor("a"))  # no table yet: the usual ones
    rewards.save_reward_table(admin(crew.tenant_id), HIOKI, expected_version=0)
    offered = reports.categories(crew.actor("a"))
    assert "火災" in offered and "訓練" not in offered  # 日置市 pays no 訓練, has no catch-all
    with pytest.raises(ValidationError, match="区分"):
        reports.save_report(crew.actor("a"), None, timed(category="訓練"))
    rewards.save_reward_table(admin(crew.tenant_id), MISAWA, expected_version=1)
    assert "会議" in reports.categories(crew.actor("a"))  # 三沢市 prices it under その他
    other = make_people({"x": ("団員", "第1分団")})
    assert "訓練" in reports.categories(other.actor("x"))  # another brigade's table is not ours


def test_only_a_request_after_an_incident_can_be_declined(crew):
    own = reports.save_report(crew.actor("a"), None, timed(category="訓練"))
    with pytest.raises(ValidationError, match="報告なし"):
        reports.decline_report(crew.actor("a"), own.id, expected_version=own.version)
    closed_incident(crew, {"b": Answer.AVAILABLE})
    theirs = own_report(crew, "b")
    with pytest.raises(PermissionDenied):
        reports.decline_report(crew.actor("a"), theirs.id, expected_version=theirs.version)
    assert own_report(crew, "b").status == ReportStatus.REQUESTED
