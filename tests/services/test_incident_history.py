"""出動履歴 (#22): the ended incidents with their filters at the edges (JST days), one incident's
timeline in order with the delays and the answers at 1, 3 and 5 minutes computed from known
times, other brigades, permissions and bad input. Test incidents never appear."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta

import pytest

from models.callout import CalloutKind
from models.dispatch import IncidentStatus, MailStatus
from models.enums import Answer, Function, Level
from services.dispatch import history
from services.dispatch.history import AnswerCounts, AnswersAt, Delays
from services.errors import NotFound, PermissionDenied, ValidationError
from tests.factories import actor_with, make_member, make_tenant
from tests.history_factories import (
    T0,
    add_answer,
    add_mail,
    add_status_entry,
    add_target,
    add_wave,
    at,
    counting,
    make_incident,
)

pytestmark = pytest.mark.usefixtures("engine")
S = IncidentStatus


def viewer(tenant_id: uuid.UUID, level: Level = Level.VIEW):
    return actor_with(tenant_id, {Function.DISPATCH: level})


def numbers(tenant_id: uuid.UUID, **filters) -> list[int]:
    return [row.number for row in history.closed_incidents(viewer(tenant_id), **filters).rows]


def jst(day: int, hour: int, minute: int = 0, second: int = 0) -> datetime:
    """A March 2026 moment given in JST, as UTC."""
    return datetime(2026, 3, day, hour, minute, second, tzinfo=UTC) - timedelta(hours=9)


# ---------------------------------------------------------------------------
# The list


def test_lists_ended_incidents_newest_first_with_the_latest_answers(tenant):
    a, b, c = (make_member(tenant, affiliation="第1分団 第1部").id for _ in range(3))
    older = make_incident(tenant, number=1, status=S.FALSE_ALARM, created_at=at(-3600))
    closed = make_incident(
        tenant, number=2, status=S.CLOSED, kind="林野火災", place="山林付近", units=("第2分団",)
    )
    make_incident(tenant, number=3, status=S.EXTINGUISHED, created_at=at(-7200))
    make_incident(tenant, number=4, status=S.DISPATCHED)  # still open
    make_incident(tenant, number=5, test=True)  # a test call-out
    make_incident(tenant, number=0)  # the self-test's incident
    for member in (a, b, c):
        add_target(tenant, closed, member, unit="第2分団")
    add_answer(tenant, closed, a, Answer.AVAILABLE, at(10))
    add_answer(tenant, closed, a, Answer.UNAVAILABLE, at(20))  # the latest counts
    add_answer(tenant, closed, b, Answer.LATE, at(15))

    found = history.closed_incidents(viewer(tenant))

    assert [r.number for r in found.rows] == [2, 1, 3] and not found.more
    row = found.rows[0]
    assert (row.kind, row.place, row.units, row.status) == (
        "林野火災",
        "山林付近",
        ("第2分団",),
        S.CLOSED,
    )
    assert row.answers == AnswerCounts(available=0, late=1, unavailable=1, unanswered=1)
    assert row.ended_at == T0 + timedelta(hours=2)  # closed_at
    assert found.rows[1].id == older and found.rows[1].answers == AnswerCounts()


def test_ended_at_is_the_change_to_the_end_when_not_closed(tenant):
    incident = make_incident(tenant, status=S.CANCELLED)
    add_status_entry(tenant, incident, when=at(90), status=S.CANCELLED, summary="取消")
    assert history.closed_incidents(viewer(tenant)).rows[0].ended_at == at(90)


def test_period_is_inclusive_in_jst_days(tenant):
    make_incident(tenant, number=1, created_at=jst(9, 23, 59, 59))
    make_incident(tenant, number=2, created_at=jst(10, 0, 0, 0))
    make_incident(tenant, number=3, created_at=jst(11, 23, 59, 59))
    make_incident(tenant, number=4, created_at=jst(12, 0, 0, 0))
    day = {"since": date(2026, 3, 10), "until": date(2026, 3, 11)}
    assert numbers(tenant, **day) == [3, 2]
    assert numbers(tenant, since=date(2026, 3, 12)) == [4]
    assert numbers(tenant, until=date(2026, 3, 9)) == [1]
    assert numbers(tenant, since=date(2026, 3, 10), until=date(2026, 3, 10)) == [2]


def test_period_counts_the_dispatch_time_then_reception_then_entry(tenant):
    """A mail's 指令 time decides, not when the incident was entered days later."""
    make_incident(tenant, number=1, created_at=jst(20, 12), occurred_at=jst(10, 12))
    make_incident(tenant, number=2, created_at=jst(20, 12), received_at=jst(10, 13))
    make_incident(tenant, number=3, created_at=jst(20, 12))
    assert numbers(tenant, until=date(2026, 3, 10)) == [2, 1]
    rows = history.closed_incidents(viewer(tenant)).rows
    assert [r.dispatched_at for r in rows] == [jst(20, 12), jst(10, 13), jst(10, 12)]


def test_kind_and_unit_filters(tenant):
    make_incident(tenant, number=1, kind="建物火災", units=("第1分団",))
    make_incident(tenant, number=2, kind="林野火災", units=("第11分団",))
    widened = make_incident(tenant, number=3, kind="建物火災", units=())
    add_wave(tenant, widened, created_at=at(5), kind=CalloutKind.WIDEN, units=("第1分団",))
    make_incident(tenant, number=4, kind="建物火災", units=("第1%",))
    assert numbers(tenant, kind="建物火災") == [4, 3, 1]
    assert numbers(tenant, kind="林野火災") == [2]
    assert numbers(tenant, unit="第1分団") == [3, 1]  # not 第11分団
    assert numbers(tenant, unit="第1%") == [4]  # a LIKE wildcard is a plain character
    assert numbers(tenant, kind="林野火災", unit="第1分団") == []
    assert numbers(tenant, kind=" ", unit="") == [4, 3, 2, 1]  # blank: no filter
    assert history.filter_choices(viewer(tenant)) == (
        ["建物火災", "林野火災"],
        ["第1%", "第11分団", "第1分団"],
    )


def test_list_is_bounded_and_says_when_more_exist(tenant):
    for n in range(3):
        make_incident(tenant, number=n + 1, created_at=at(n))
    found = history.closed_incidents(viewer(tenant), limit=2)
    assert [r.number for r in found.rows] == [3, 2] and found.more
    assert not history.closed_incidents(viewer(tenant), limit=3).more


def test_a_period_ending_before_it_starts_is_refused(tenant):
    with pytest.raises(ValidationError) as raised:
        history.closed_incidents(viewer(tenant), since=date(2026, 3, 2), until=date(2026, 3, 1))
    assert raised.value.errors == {"期間": history.BAD_PERIOD}


def test_other_brigades_see_nothing(tenant):
    incident = make_incident(tenant)
    other = make_tenant()
    assert history.closed_incidents(viewer(other)).rows == []
    assert history.filter_choices(viewer(other)) == ([], [])
    with pytest.raises(NotFound):
        history.timeline(viewer(other), incident)


def test_needs_dispatch_view(tenant):
    incident = make_incident(tenant)
    nobody = actor_with(tenant, {Function.DASHBOARD: Level.VIEW})
    with pytest.raises(PermissionDenied):
        history.closed_incidents(nobody)
    with pytest.raises(PermissionDenied):
        history.filter_choices(nobody)
    with pytest.raises(PermissionDenied):
        history.timeline(nobody, incident)


# ---------------------------------------------------------------------------
# The timeline


@pytest.fixture
def told(tenant):
    """An incident from a mail, called out in two chunks, answered, followed up and closed:
    mail Date: -20 s, received -8 s, made -7 s, call-out queued -6 s, accepted 0 s and +3 s."""
    members = [make_member(tenant, affiliation="第1分団 第1部") for _ in range(5)]
    incident = make_incident(
        tenant,
        from_mail=True,
        mail_date=at(-20),
        received_at=at(-8),
        created_at=at(-7),
        closed_at=at(3600),
    )
    add_mail(tenant, incident, received_at=at(-8), mail_date=at(-20))
    add_wave(tenant, incident, created_at=at(-6), sent=(at(0), at(3), None), units=("第1分団",))
    for member in members:
        add_target(tenant, incident, member.id, unit="第1分団")
    a, b, c, d, e = (m.id for m in members)
    add_answer(tenant, incident, a, Answer.AVAILABLE, at(10), eta_minutes=5)
    add_answer(tenant, incident, b, Answer.LATE, at(60), via="proxy")  # exactly 1 minute
    add_answer(tenant, incident, c, Answer.UNAVAILABLE, at(61))
    add_answer(tenant, incident, a, Answer.UNAVAILABLE, at(180))  # exactly 3 minutes
    add_answer(tenant, incident, d, Answer.AVAILABLE, at(300))  # exactly 5 minutes
    add_answer(tenant, incident, e, Answer.AVAILABLE, at(301))
    add_mail(tenant, incident, received_at=at(600), mail_date=at(590), status=MailStatus.ACCEPTED)
    add_status_entry(tenant, incident, when=at(600), status=S.EXTINGUISHED, summary="→鎮火")
    add_wave(tenant, incident, created_at=at(600), sent=(at(602),), kind=CalloutKind.FOLLOWUP)
    add_status_entry(tenant, incident, when=at(3600), status=S.CLOSED, summary="→終了")
    return incident, members


def test_timeline_in_order_with_the_delays(tenant, told):
    incident, members = told
    line = history.timeline(viewer(tenant), incident)
    assert [(e.at, e.what) for e in line.events] == [
        (at(-8), "メール受信"),
        (at(-7), "登録"),
        (at(-6), "出動連絡"),
        (at(0), "LINE受付（最初）"),
        (at(3), "LINE受付（最後）"),
        (at(10), "回答"),
        (at(60), "回答"),
        (at(61), "回答"),
        (at(180), "回答"),
        (at(300), "回答"),
        (at(301), "回答"),
        (at(600), "メール受信"),
        (at(600), "状態変更"),
        (at(600), "続報"),
        (at(602), "LINE受付"),
        (at(3600), "状態変更"),  # the close, once
    ]
    assert line.delays == Delays(
        mail_to_received=12, received_to_incident=1, incident_to_first=7, first_to_last=3
    )
    details = [e.detail for e in line.events]
    assert details[0] == "受理　Date: 2026-03-10 09:59:40"
    assert details[2] == "0名（第1分団）　未送信 1通"
    assert details[5] == f"{members[0].member_code}: 出動可（到着見込み5分）"
    assert details[6] == f"{members[1].member_code}: 遅れて出動（代理入力）"


def test_answers_at_one_three_and_five_minutes_count_the_mark_itself(tenant, told):
    incident, _ = told
    assert history.timeline(viewer(tenant), incident).answers_at == [
        AnswersAt(60, answered=2, coming=2),  # a, b (b at exactly 60 s; c at 61 s is late)
        AnswersAt(180, answered=3, coming=1),  # a changed to 不可 at exactly 180 s
        AnswersAt(300, answered=4, coming=2),  # b, d (e at 301 s is not counted)
    ]


def test_names_only_for_edit(tenant, told):
    incident, members = told
    name = members[0].name
    assert all(name not in e.detail for e in history.timeline(viewer(tenant), incident).events)
    editor = history.timeline(viewer(tenant, Level.EDIT), incident)
    assert any(e.detail.startswith(f"{members[0].member_code} {name}:") for e in editor.events)


def test_timeline_of_an_incident_by_hand_knows_fewer_delays(tenant):
    incident = make_incident(tenant, created_at=at(0), closed_at=at(900))
    line = history.timeline(viewer(tenant), incident)
    assert [(e.at, e.what, e.detail) for e in line.events] == [
        (at(0), "登録", "手入力"),
        (at(900), "終了", "終了"),
    ]
    assert line.delays == Delays(None, None, None, None)
    assert line.answers_at == []


def test_a_call_out_line_never_accepted_measures_nothing_after_the_incident(tenant):
    incident = make_incident(tenant, created_at=at(0))
    add_wave(tenant, incident, created_at=at(1), sent=(None,))
    add_wave(tenant, incident, created_at=at(2), sent=(at(4),), kind=CalloutKind.WIDEN)
    line = history.timeline(viewer(tenant), incident)
    assert line.delays.incident_to_first is None and line.answers_at == []


def test_timeline_of_a_test_incident_or_none_is_not_found(tenant):
    for incident in (make_incident(tenant, test=True), make_incident(tenant, number=0)):
        with pytest.raises(NotFound):
            history.timeline(viewer(tenant), incident)
    with pytest.raises(NotFound):
        history.timeline(viewer(tenant), uuid.uuid4())


def test_queries_do_not_grow_with_the_incidents(engine, tenant):
    member = make_member(tenant, affiliation="第1分団 第1部").id

    def incident(seconds: int) -> None:
        made = make_incident(tenant, created_at=at(seconds))
        add_target(tenant, made, member, unit="第1分団")
        add_answer(tenant, made, member, Answer.AVAILABLE, at(seconds + 5))

    def statements() -> int:
        with counting(engine) as seen:
            history.closed_incidents(viewer(tenant))
        return len(seen)

    incident(0)
    few = statements()
    for n in range(1, 6):
        incident(n * 600)
    assert statements() == few > 3
