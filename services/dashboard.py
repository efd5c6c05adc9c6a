"""ダッシュボード: the brigade's figures in one read, as plain data the page charts as they are.

Member figures need ダッシュボード 閲覧 (they are counts, nothing personal); the water-source
figures are added for whoever may view water sources, the recent events for whoever may view the
event logs, and the call-out self-test's warnings (自己診断) for 災害出動 管理.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from datetime import date

from sqlalchemy import func
from sqlmodel import select

from core import access
from core.access import Need, allows
from core.actor import Actor
from core.timefmt import to_jst
from models import AuditEvent, Member, MemberLine, Rank, WaterSource
from models.base import utcnow
from models.enums import (
    WATER_SOURCE_KINDS,
    WATER_SOURCE_STATUSES,
    Function,
    Level,
    MemberStatus,
)
from services import event_labels, water_rules
from services.base import Tx, scoped, transaction
from services.dispatch import selftest
from services.event_targets import target_text
from services.water_sources import today_jst

UNSET = "（未設定）"
RECENT_EVENTS = 10


@dataclass(frozen=True)
class Count:
    label: str
    count: int


@dataclass(frozen=True)
class MemberStats:
    by_unit: list[Count]  # members on the roster (not retired) per 分団
    by_rank: list[Count]  # the same members per rank, highest first
    active: int
    suspended: int
    retired: int
    not_linked: int  # active members without a LINE link


@dataclass(frozen=True)
class WaterStats:
    total: int
    by_kind: list[Count]
    by_status: list[Count]
    overdue: int  # inspection overdue (never inspected counts)


@dataclass(frozen=True)
class RecentEvent:
    occurred_at: str  # JST
    category: str  # its Japanese label
    action: str  # the code; action_label is the Japanese
    outcome: str
    target_type: str
    action_label: str
    outcome_label: str
    target: str  # the kind of target in words (「団員」): the dashboard names no one


@dataclass(frozen=True)
class Dashboard:
    members: MemberStats
    water: WaterStats | None  # None: the actor may not view water sources
    events: list[RecentEvent] | None  # None: the actor may not view the event logs
    selftest_warnings: tuple[str, ...] = ()  # only for 災害出動 管理


def unit_of(affiliation: str) -> str:
    """The 分団 a 所属 counts under (core.access.unit_of), 「（未設定）」 for none."""
    return access.unit_of(affiliation) or UNSET


def load(actor: Actor, *, today: date | None = None) -> Dashboard:
    with transaction(
        actor, Need(Function.DASHBOARD, Level.VIEW), action="dashboard.view", read_only=True
    ) as tx:
        return Dashboard(
            members=_members(tx),
            water=_water(tx, today or today_jst())
            if allows(actor, Need(Function.WATER_SOURCES, Level.VIEW))
            else None,
            events=_events(tx) if allows(actor, Need(Function.EVENT_LOGS, Level.VIEW)) else None,
            selftest_warnings=selftest.status_in(tx, utcnow()).warnings
            if allows(actor, Need(Function.DISPATCH, Level.ADMIN))
            else (),
        )


def _members(tx: Tx) -> MemberStats:
    """Counted in SQL (#19): one row per (rank, 所属, status) in use, and the active members
    without a LINE link — not one row per member."""
    groups = tx.session.exec(
        scoped(select(Member.rank_id, Member.affiliation, Member.status), tx.actor)
        .add_columns(func.count())
        .group_by(Member.rank_id, Member.affiliation, Member.status)
    ).all()
    ranks = tx.session.exec(scoped(select(Rank), tx.actor).order_by(Rank.position)).all()
    linked = select(MemberLine.member_id).where(MemberLine.tenant_id == tx.tenant_id)
    unlinked = scoped(select(Member.id), tx.actor).where(
        Member.status == MemberStatus.ACTIVE, Member.id.not_in(linked)
    )
    not_linked = tx.session.exec(select(func.count()).select_from(unlinked.subquery())).one()
    status: Counter[str] = Counter()
    by_rank: Counter = Counter()
    by_unit: Counter[str] = Counter()
    for rank_id, affiliation, state, count in groups:
        status[state] += count
        if state != MemberStatus.RETIRED:
            by_rank[rank_id] += count
            by_unit[unit_of(affiliation)] += count
    return MemberStats(
        by_unit=[Count(u, by_unit[u]) for u in sorted(by_unit, key=_unit_order)],
        by_rank=[Count(r.name, by_rank[r.id]) for r in ranks],
        active=status[MemberStatus.ACTIVE],
        suspended=status[MemberStatus.SUSPENDED],
        retired=status[MemberStatus.RETIRED],
        not_linked=not_linked,
    )


def _unit_order(unit: str) -> tuple[int, int, str]:
    """第2分団 before 第10分団; units without a number after them; 未設定 last."""
    number = re.search(r"\d+", unit)
    return (unit == UNSET, int(number.group()) if number else 1 << 30, unit)


def _water(tx: Tx, today: date) -> WaterStats:
    """Counted in SQL (#19): per kind, per status, and per (last inspection, interval) — the
    few dates in use — whether overdue by the one rule of water_rules.is_overdue."""
    w = WaterSource

    def grouped(*columns):
        query = scoped(select(*columns), tx.actor).add_columns(func.count()).group_by(*columns)
        return tx.session.execute(query).all()  # rows: exec would return the first column

    kinds = Counter({kind: count for kind, count in grouped(w.kind)})
    statuses = Counter({state: count for state, count in grouped(w.status)})
    overdue = sum(
        count * water_rules.is_overdue(last, interval, today)
        for last, interval, count in grouped(w.last_inspected_on, w.inspection_interval_days)
    )
    return WaterStats(
        total=sum(kinds.values()),
        by_kind=_ordered(kinds, WATER_SOURCE_KINDS),
        by_status=_ordered(statuses, WATER_SOURCE_STATUSES),
        overdue=overdue,
    )


def _ordered(counts: Counter, known: tuple[str, ...]) -> list[Count]:
    """The known values in their order (those in use), then any others."""
    labels = [k for k in known if counts[k]] + sorted(set(counts) - set(known))
    return [Count(label, counts[label]) for label in labels]


def _events(tx: Tx) -> list[RecentEvent]:
    query = scoped(
        select(
            AuditEvent.occurred_at,
            AuditEvent.category,
            AuditEvent.action,
            AuditEvent.outcome,
            AuditEvent.target_type,
            AuditEvent.target_id,
        ),
        tx.actor,
    ).order_by(AuditEvent.seq.desc())
    return [
        RecentEvent(
            occurred_at=to_jst(e.occurred_at, seconds=True),
            category=event_labels.category_label(e.category),
            action=e.action,
            outcome=e.outcome,
            target_type=e.target_type,
            action_label=event_labels.action_label(e.action),
            outcome_label=event_labels.outcome_label(e.outcome),
            target=target_text(e.target_type, e.target_id),
        )
        for e in tx.session.exec(query.limit(RECENT_EVENTS)).all()
    ]
