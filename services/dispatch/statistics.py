"""出動統計 on the dashboard (#22): incidents per month and kind, how long the called 分団 took
to reach the crew minimum, and how many of those called answered, per 分団.

A fixed number of queries for the whole period, whatever the number of incidents. Test
incidents and the self-test's incident are never counted (services.dispatch.history)."""

from __future__ import annotations

import json
import statistics
import threading
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime

from sqlalchemy import and_, func
from sqlmodel import select

from core.access import Need
from core.actor import Actor
from core.timefmt import JST, today_jst
from models.base import utcnow
from models.callout import Callout, CalloutAnswer, CalloutTarget
from models.dispatch import Incident
from models.enums import Answer, Function, Level
from services.base import Tx, scoped, transaction
from services.dispatch import history
from services.dispatch.callout import settings_in

NEEDS = (Need(Function.DASHBOARD, Level.VIEW), Need(Function.DISPATCH, Level.VIEW))
MONTHS = 12  # the default period: this month and the eleven before it


@dataclass(frozen=True)
class MonthKind:
    month: str  # "2026-04" (JST)
    kind: str  # as the mail gave it; "" when unknown
    count: int


@dataclass(frozen=True)
class UnitCrew:
    """Per 分団 called: the median of the times from the call-out's first acceptance by LINE
    until its 出動可 and 遅れて出動 answers reached the crew minimum, over the incidents where
    they did; and in how many they did not."""

    unit: str
    median_seconds: float | None
    reached: int
    not_reached: int


@dataclass(frozen=True)
class UnitAnswers:
    unit: str
    called: int  # members called, summed over the incidents
    answered: int  # … of whom answered

    @property
    def rate(self) -> float | None:
        return self.answered / self.called if self.called else None


@dataclass(frozen=True)
class DispatchStatistics:
    since: date
    until: date
    months: tuple[str, ...]  # every month of the period, empty ones too
    by_month: list[MonthKind]
    incidents: int
    crew_minimum: int
    median_to_crew: float | None  # over every 分団 and incident that reached it
    reached: int
    not_reached: int
    crews: list[UnitCrew]
    answers: list[UnitAnswers]
    counted_at: datetime = field(default_factory=utcnow)


def default_period(today: date) -> tuple[date, date]:
    """This month and the eleven before it, up to today."""
    first = today.year * 12 + today.month - MONTHS  # months since year 0, zero-based
    return date(first // 12, first % 12 + 1, 1), today


# A busy year's statistics read every answer of the year (about a second): the dashboard shows
# what was counted up to CACHE_SECONDS ago. Counts only, no personal data; keyed by brigade and
# period, and read only after the gate has passed for this actor.
CACHE_SECONDS = 300
CACHE_ENTRIES = 256
_cache: dict[tuple[uuid.UUID, date, date], tuple[float, DispatchStatistics]] = {}
_cache_lock = threading.Lock()


def dispatch_statistics(
    actor: Actor, *, since: date | None = None, until: date | None = None, fresh: bool = False
) -> DispatchStatistics:
    """For the JST dates `since`..`until` (inclusive; the last 12 months by default); counted at
    most CACHE_SECONDS ago unless `fresh`."""
    with transaction(actor, *NEEDS, action="dispatch.statistics", read_only=True) as tx:
        default_since, default_until = default_period(today_jst())
        since, until = since or default_since, until or default_until
        key = (tx.tenant_id, since, until)
        with _cache_lock:
            at, known = _cache.get(key, (0.0, None))
        if known is not None and not fresh and time.monotonic() - at < CACHE_SECONDS:
            return known
        counted = _count(tx, since, until)
        with _cache_lock:
            if len(_cache) >= CACHE_ENTRIES:
                _cache.pop(min(_cache, key=lambda k: _cache[k][0]))
            _cache[key] = (time.monotonic(), counted)
        return counted


def _count(tx: Tx, since: date, until: date) -> DispatchStatistics:
    actor = tx.actor
    start, end = history.jst_period(since, until)
    period = history.counted(scoped(select(Incident.id), actor), start, end)
    rows = tx.session.exec(
        history.counted(
            scoped(select(Incident.id, Incident.kind, Incident.units), actor), start, end
        ).add_columns(history.dispatched_at())
    ).all()
    minimum = settings_in(tx).crew_minimum
    times = _crew_times(
        crews=_crews(tx, period, _called_units(tx, period, {r.id: r.units for r in rows})),
        accepted={i: first for i, (first, _) in history.accepted_by_incident(tx, period).items()},
        answers=_crew_answers(tx, period),
        minimum=minimum,
    )
    reached = [s for per_unit in times.values() for s in per_unit if s is not None]
    return DispatchStatistics(
        since=since,
        until=until,
        months=_months(since, until),
        by_month=_by_month(rows),
        incidents=len(rows),
        crew_minimum=minimum,
        median_to_crew=statistics.median(reached) if reached else None,
        reached=len(reached),
        not_reached=sum(s is None for per_unit in times.values() for s in per_unit),
        crews=[
            UnitCrew(
                unit,
                statistics.median(done) if (done := [s for s in found if s is not None]) else None,
                len(done),
                len(found) - len(done),
            )
            for unit, found in sorted(times.items())
        ],
        answers=_answer_rates(tx, period),
    )


def _months(since: date, until: date) -> tuple[str, ...]:
    first, last = since.year * 12 + since.month - 1, until.year * 12 + until.month - 1
    return tuple(f"{m // 12:04d}-{m % 12 + 1:02d}" for m in range(first, last + 1))


def _by_month(rows) -> list[MonthKind]:
    counts = Counter((at.astimezone(JST).strftime("%Y-%m"), kind) for _, kind, _, at in rows)
    return [MonthKind(month, kind, n) for (month, kind), n in sorted(counts.items())]


def _called_units(tx: Tx, period, units: dict[uuid.UUID, str]) -> dict[uuid.UUID, set[str]]:
    """The 分団 each incident named, and those its waves called (応援要請)."""
    called = {incident_id: set(json.loads(text)) for incident_id, text in units.items()}
    for incident_id, text in tx.session.exec(
        scoped(select(Callout.incident_id, Callout.units), tx.actor).where(
            Callout.incident_id.in_(period)
        )
    ).all():
        called[incident_id].update(json.loads(text))
    return called


def _is_crew(unit: str, leader: bool, called: set[str]) -> bool:
    """As the tally counts: a leader called as such outside the called 分団 is not one of a
    crew."""
    return not (leader and called and unit not in called)


def _crews(tx: Tx, period, called: dict[uuid.UUID, set[str]]) -> dict[uuid.UUID, set[str]]:
    """The 分団 with a crew called in each incident."""
    crews: dict[uuid.UUID, set[str]] = defaultdict(set)
    for incident_id, unit, leader in tx.session.exec(
        scoped(
            select(CalloutTarget.incident_id, CalloutTarget.unit, CalloutTarget.leader), tx.actor
        )
        .where(CalloutTarget.incident_id.in_(period))
        .distinct()
    ).all():
        if _is_crew(unit, leader, called.get(incident_id, set())):
            crews[incident_id].add(unit)
    return crews


def _crew_answers(tx: Tx, period) -> dict[uuid.UUID, list[tuple[uuid.UUID, str, str, datetime]]]:
    """Every answer of a crew member, per incident in order: member, 分団, answer, when. Joined
    with the targets in the database: the answers of leaders outside a crew drop out below."""
    rows = tx.session.exec(
        scoped(
            select(
                CalloutAnswer.incident_id,
                CalloutAnswer.member_id,
                CalloutTarget.unit,
                CalloutAnswer.answer,
                CalloutAnswer.at,
            ),
            tx.actor,
        )
        .join(
            CalloutTarget,
            and_(
                CalloutTarget.incident_id == CalloutAnswer.incident_id,
                CalloutTarget.member_id == CalloutAnswer.member_id,
            ),
        )
        .where(CalloutAnswer.incident_id.in_(period))
        .order_by(CalloutAnswer.at, CalloutAnswer.id)
    ).all()
    per_incident: dict[uuid.UUID, list] = defaultdict(list)
    for incident_id, member_id, unit, answer, at in rows:
        per_incident[incident_id].append((member_id, unit, answer, at))
    return per_incident


def _crew_times(
    *,
    crews: dict[uuid.UUID, set[str]],
    accepted: dict[uuid.UUID, datetime],
    answers: dict[uuid.UUID, list[tuple[uuid.UUID, str, str, datetime]]],
    minimum: int,
) -> dict[str, list[float | None]]:
    """Per 分団, one entry per incident whose call-out LINE accepted: the seconds until its
    crew was complete (0 when it already was), None when it never was."""
    times: dict[str, list[float | None]] = defaultdict(list)
    for incident_id, first in accepted.items():
        units = crews.get(incident_id, set())
        coming: Counter = Counter()
        latest: dict[uuid.UUID, bool] = {}
        done: dict[str, float] = {}
        for member_id, unit, answer, at in answers.get(incident_id, []):
            if unit not in units:
                continue
            was, now = latest.get(member_id, False), Answer(answer).coming
            latest[member_id] = now
            coming[unit] += now - was
            if coming[unit] >= minimum and unit not in done:
                done[unit] = max((at - first).total_seconds(), 0.0)
        for unit in units:
            times[unit].append(done.get(unit))
    return times


def _answer_rates(tx: Tx, period) -> list[UnitAnswers]:
    """Members called and members who answered, per 分団 they were called for."""
    per_unit = scoped(select(CalloutTarget.unit, func.count(CalloutTarget.id)), tx.actor).where(
        CalloutTarget.incident_id.in_(period)
    )
    answered = scoped(select(CalloutAnswer.id), tx.actor).where(
        CalloutAnswer.incident_id == CalloutTarget.incident_id,
        CalloutAnswer.member_id == CalloutTarget.member_id,
    )
    called = dict(tx.session.exec(per_unit.group_by(CalloutTarget.unit)).all())
    replied = dict(
        tx.session.exec(per_unit.where(answered.exists()).group_by(CalloutTarget.unit)).all()
    )
    return [UnitAnswers(unit, called[unit], replied.get(unit, 0)) for unit in sorted(called)]
