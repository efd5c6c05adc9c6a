"""出動統計 (#22): incidents per JST month and kind, the median time to the crew minimum worked
out by hand, answer rates per 分団, other brigades, permissions and bad input."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime

import pytest

from models.callout import CalloutKind, CalloutSettings
from models.enums import Answer, Function, Level
from services.db import unit_of_work
from services.dispatch import history, statistics
from services.dispatch.statistics import MonthKind, UnitAnswers, UnitCrew
from services.errors import PermissionDenied, ValidationError
from tests.factories import actor_with, make_member, make_tenant
from tests.history_factories import (
    add_answer,
    add_target,
    add_wave,
    at,
    counting,
    make_incident,
)

pytestmark = pytest.mark.usefixtures("engine")
MARCH = {"since": date(2026, 3, 1), "until": date(2026, 3, 31)}
A, L, U = Answer.AVAILABLE, Answer.LATE, Answer.UNAVAILABLE


def viewer(tenant_id: uuid.UUID):
    return actor_with(tenant_id, {Function.DASHBOARD: Level.VIEW, Function.DISPATCH: Level.VIEW})


def crew(tenant_id: uuid.UUID, unit: str, count: int) -> list[uuid.UUID]:
    return [make_member(tenant_id, affiliation=f"{unit} 第1部").id for _ in range(count)]


def answers(tenant, incident, unit, members, script) -> None:
    """Call `members` for `unit` and record `script`: (member index, answer, seconds)."""
    for member in members:
        add_target(tenant, incident, member, unit=unit)
    for index, answer, seconds in script:
        add_answer(tenant, incident, members[index], answer, at(seconds))


@pytest.fixture
def called(tenant):
    """Three incidents whose call-outs LINE accepted at T0 (crew minimum 3 by default):
    1: 第1分団 complete at 90 s; 第2分団 at 100 s (one 出動可 turned 不可 on the way).
    2: 第1分団 complete at 240 s; 第2分団, widened, only two coming: never complete.
    3: LINE accepted nothing: not measured. A leader in 団本部 answering does not make a crew."""
    first, second = crew(tenant, "第1分団", 4), crew(tenant, "第2分団", 5)
    leader = make_member(tenant, affiliation="団本部").id

    one = make_incident(tenant, units=("第1分団", "第2分団"), created_at=at(-5))
    add_wave(tenant, one, created_at=at(-4), sent=(at(0), at(2)))
    answers(tenant, one, "第1分団", first, [(0, A, 30), (1, L, 50), (2, U, 60), (3, A, 90)])
    answers(tenant, one, "第2分団", second, [(0, A, 20), (1, A, 40), (0, U, 45), (2, A, 70)])
    add_answer(tenant, one, second[3], A, at(100))
    add_target(tenant, one, leader, unit="団本部", leader=True)
    add_answer(tenant, one, leader, A, at(1))

    two = make_incident(tenant, units=("第1分団",), created_at=at(3000))
    add_wave(tenant, two, created_at=at(3000), sent=(at(3001),))
    add_wave(tenant, two, created_at=at(3100), units=("第2分団",), kind=CalloutKind.WIDEN)
    answers(tenant, two, "第1分団", first[:3], [(0, A, 3201), (1, A, 3211), (2, L, 3241)])
    answers(tenant, two, "第2分団", second[:2], [(0, A, 3200), (1, A, 3301)])

    three = make_incident(tenant, units=("第1分団",), created_at=at(6000))
    add_wave(tenant, three, created_at=at(6000), sent=(None,))
    answers(tenant, three, "第1分団", first, [(0, A, 6010), (1, A, 6020), (2, A, 6030)])
    return one, two, three


def test_median_time_to_crew_minimum(tenant, called):
    stats = statistics.dispatch_statistics(viewer(tenant), **MARCH)
    assert stats.crew_minimum == 3
    assert (stats.median_to_crew, stats.reached, stats.not_reached) == (100, 3, 1)
    assert stats.crews == [
        UnitCrew("第1分団", median_seconds=165, reached=2, not_reached=0),  # 90 s and 240 s
        UnitCrew("第2分団", median_seconds=100, reached=1, not_reached=1),
    ]


def test_crew_minimum_is_the_brigades(tenant, called):
    with unit_of_work(tenant) as db:
        db.add(CalloutSettings(tenant_id=tenant, crew_minimum=2))
        db.commit()
    stats = statistics.dispatch_statistics(viewer(tenant), **MARCH)
    # 第1分団 at 50 s and 210 s, 第2分団 at 40 s and at 300 s (incident 2, from 3001 s)
    assert [(c.unit, c.median_seconds, c.reached) for c in stats.crews] == [
        ("第1分団", 130, 2),
        ("第2分団", 170, 2),
    ]
    assert stats.not_reached == 0


def test_answer_rate_per_unit(tenant, called):
    stats = statistics.dispatch_statistics(viewer(tenant), **MARCH)
    assert stats.answers == [
        UnitAnswers("団本部", called=1, answered=1),
        UnitAnswers("第1分団", called=4 + 3 + 4, answered=4 + 3 + 3),
        UnitAnswers("第2分団", called=5 + 2, answered=4 + 2),
    ]
    assert stats.answers[2].rate == pytest.approx(6 / 7)
    assert UnitAnswers("x", 0, 0).rate is None


def test_incidents_per_jst_month_and_kind(tenant):
    def on(day: datetime, kind: str, **extra) -> None:
        make_incident(tenant, kind=kind, created_at=day, **extra)

    on(datetime(2026, 1, 31, 14, 59, tzinfo=UTC), "建物火災")  # 23:59 JST, January
    on(datetime(2026, 1, 31, 15, 0, tzinfo=UTC), "建物火災")  # 00:00 JST, February
    on(datetime(2026, 2, 10, tzinfo=UTC), "建物火災")
    on(datetime(2026, 2, 11, tzinfo=UTC), "")
    on(datetime(2026, 3, 1, tzinfo=UTC), "林野火災")
    on(datetime(2026, 3, 2, tzinfo=UTC), "林野火災", test=True)
    on(datetime(2026, 3, 3, tzinfo=UTC), "林野火災", number=0)
    on(datetime(2026, 4, 1, tzinfo=UTC), "林野火災")  # after the period

    stats = statistics.dispatch_statistics(
        viewer(tenant), since=date(2025, 12, 15), until=date(2026, 3, 31)
    )
    assert stats.months == ("2025-12", "2026-01", "2026-02", "2026-03")
    assert stats.by_month == [
        MonthKind("2026-01", "建物火災", 1),
        MonthKind("2026-02", "", 1),
        MonthKind("2026-02", "建物火災", 2),
        MonthKind("2026-03", "林野火災", 1),
    ]
    assert stats.incidents == 5
    assert (stats.median_to_crew, stats.reached, stats.crews, stats.answers) == (None, 0, [], [])


def test_default_period_is_the_last_twelve_months(tenant):
    assert statistics.default_period(date(2026, 3, 14)) == (date(2025, 4, 1), date(2026, 3, 14))
    assert statistics.default_period(date(2026, 12, 1)) == (date(2026, 1, 1), date(2026, 12, 1))
    stats = statistics.dispatch_statistics(viewer(tenant))
    assert len(stats.months) == 12 and stats.incidents == 0


def test_other_brigades_are_not_counted(called):
    other = make_tenant()
    stats = statistics.dispatch_statistics(viewer(other), **MARCH)
    assert (stats.incidents, stats.by_month, stats.crews, stats.answers) == (0, [], [], [])


@pytest.mark.parametrize("held", [Function.DASHBOARD, Function.DISPATCH])
def test_needs_both_dashboard_and_dispatch_view(tenant, held):
    with pytest.raises(PermissionDenied):
        statistics.dispatch_statistics(actor_with(tenant, {held: Level.VIEW}))


def test_a_period_ending_before_it_starts_is_refused(tenant):
    with pytest.raises(ValidationError) as raised:
        statistics.dispatch_statistics(
            viewer(tenant), since=date(2026, 3, 2), until=date(2026, 3, 1)
        )
    assert raised.value.errors == {"期間": history.BAD_PERIOD}


def test_queries_do_not_grow_with_the_incidents(engine, tenant):
    """A fixed number of statements however many incidents, called and answered, there are."""
    members = crew(tenant, "第1分団", 3)

    def incident(seconds: int) -> None:
        made = make_incident(tenant, created_at=at(seconds))
        add_wave(tenant, made, created_at=at(seconds), sent=(at(seconds + 1),))
        answers(tenant, made, "第1分団", members, [(0, A, seconds + 5), (1, L, seconds + 9)])

    def statements() -> int:
        with counting(engine) as seen:
            statistics.dispatch_statistics(viewer(tenant), **MARCH, fresh=True)
        return len(seen)

    incident(0)
    few = statements()
    for n in range(1, 6):
        incident(n * 600)
    assert statements() == few > 3


def test_the_dashboard_reads_a_recent_count_again(tenant):
    """Within CACHE_SECONDS the same brigade and period are not counted again (a busy year
    takes a second); `fresh` counts now. Another brigade never gets this one's figures."""
    made = make_incident(tenant, created_at=at(0))
    first = statistics.dispatch_statistics(viewer(tenant), **MARCH)
    make_incident(tenant, created_at=at(600))
    assert statistics.dispatch_statistics(viewer(tenant), **MARCH) == first
    assert statistics.dispatch_statistics(viewer(tenant), **MARCH, fresh=True).incidents == 2
    assert made and first.incidents == 1
    other = make_tenant()
    assert statistics.dispatch_statistics(viewer(other), **MARCH).incidents == 0
