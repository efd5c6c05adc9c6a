"""The tally a leader watches (#21, #22): the answers to a call-out per 分団 against the crew
minimum and per member. Read for one incident on 災害出動 and for every open incident on the
出動中の事案 board (services.dispatch.board) by the same batch reads, a fixed number of queries
whatever the number of incidents."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Row
from sqlmodel import select

from core.actor import Actor
from models import Member
from models.callout import Callout, CalloutAnswer, CalloutKind, CalloutTarget
from models.dispatch import Incident
from models.enums import Answer, Function, Level
from services.base import Tx, scoped, transaction
from services.dispatch import callout, reads
from services.errors import NotFound

UNANSWERED = "未回答"


@dataclass(frozen=True)
class TargetLine:
    member_id: uuid.UUID
    member_code: str
    name: str
    unit: str
    leader: bool
    notified: bool
    answer: Answer | None
    eta_minutes: int | None
    answered_at: datetime | None
    via: str
    reminded: bool
    read_at: datetime | None  # 既読: when the member first opened the incident's page

    @property
    def answer_label(self) -> str:
        return self.answer.label if self.answer else UNANSWERED


@dataclass(frozen=True)
class UnitTally:
    unit: str
    counts: dict[str, int]  # Answer values and "none"
    crew_minimum: int

    @property
    def coming(self) -> int:
        return self.counts.get(Answer.AVAILABLE, 0) + self.counts.get(Answer.LATE, 0)

    @property
    def short(self) -> bool:
        return self.coming < self.crew_minimum


@dataclass(frozen=True)
class Tally:
    incident_id: uuid.UUID
    messaging: bool
    units: list[UnitTally]
    lines: list[TargetLine]
    waves: list[tuple[str, datetime, int]]  # kind label, at, recipients

    @property
    def totals(self) -> Counter:
        return Counter(line.answer.value if line.answer else "none" for line in self.lines)


def tally(actor: Actor, incident_id: uuid.UUID) -> Tally:
    """The answers per 分団 against the crew minimum and per member (names for 編集 only)."""
    with transaction(actor, callout.VIEW, action="callout.tally", read_only=True) as tx:
        row = tx.get(Incident, incident_id)
        if row is None:
            raise NotFound()
        (result,) = tallies(tx, [row])
        return result


def tallies(tx: Tx, rows: list[Incident]) -> list[Tally]:
    """The tally of each incident of `rows`, in their order, by five queries for all."""
    ids = [row.id for row in rows]
    targets = _grouped(tx, TARGET_COLUMNS, ids)
    answers = _grouped(tx, ANSWER_COLUMNS, ids, CalloutAnswer.at, CalloutAnswer.id)
    waves = _grouped(tx, WAVE_COLUMNS, ids, Callout.created_at)
    read_at = reads.read_times(tx, ids)
    member_ids = list({t.member_id for group in targets.values() for t in group})
    members = {
        m.id: m
        for m in tx.session.exec(
            scoped(select(Member), tx.actor).where(Member.id.in_(member_ids))
        ).all()
    }
    names = (
        {m.id: tx.cipher.member_name(m) for m in members.values()}  # once, not per incident
        if tx.actor.level(Function.DISPATCH) >= Level.EDIT
        else {}
    )
    minimum = callout.settings_in(tx).crew_minimum
    return [
        _built(
            row,
            targets.get(row.id, []),
            {a.member_id: a for a in answers.get(row.id, [])},  # later answers win
            waves.get(row.id, []),
            members,
            read_at,
            names=names,
            minimum=minimum,
        )
        for row in rows
    ]


# Columns, not whole rows: a board of many incidents reads thousands of targets and answers
# every few seconds, and building ORM objects for them was most of its time (bench/board.py).
TARGET_COLUMNS = (
    CalloutTarget.incident_id,
    CalloutTarget.member_id,
    CalloutTarget.unit,
    CalloutTarget.leader,
    CalloutTarget.notified,
    CalloutTarget.reminded_at,
)
ANSWER_COLUMNS = (
    CalloutAnswer.incident_id,
    CalloutAnswer.member_id,
    CalloutAnswer.answer,
    CalloutAnswer.eta_minutes,
    CalloutAnswer.via,
    CalloutAnswer.at,
)
WAVE_COLUMNS = (
    Callout.incident_id,
    Callout.kind,
    Callout.units,
    Callout.created_at,
    Callout.recipients,
)


def _grouped(
    tx: Tx, columns: tuple, incident_ids: list[uuid.UUID], *order
) -> dict[uuid.UUID, list]:
    rows = tx.session.exec(
        scoped(select(*columns), tx.actor).where(columns[0].in_(incident_ids)).order_by(*order)
    ).all()
    grouped: dict[uuid.UUID, list] = {}
    for row in rows:
        grouped.setdefault(row.incident_id, []).append(row)
    return grouped


def _built(
    row: Incident,
    targets: list[Row],
    answers: dict[uuid.UUID, Row],
    waves: list[Row],
    members: dict[uuid.UUID, Member],
    read_at: dict[tuple[uuid.UUID, uuid.UUID], datetime],
    *,
    names: dict[uuid.UUID, str],
    minimum: int,
) -> Tally:
    lines = [
        _line(t, members[t.member_id], answers.get(t.member_id), names, read_at) for t in targets
    ]
    lines.sort(key=lambda line: (line.unit, line.answer is not None, line.member_code))
    called = set(json.loads(row.units)).union(*(json.loads(w.units) for w in waves))
    per_unit: dict[str, Counter] = {}
    for line in lines:
        if line.leader and called and line.unit not in called:
            continue  # a leader called as such is not one of the crews counted
        key = line.answer.value if line.answer else "none"
        per_unit.setdefault(line.unit, Counter())[key] += 1
    return Tally(
        incident_id=row.id,
        messaging=callout.messaging_enabled(),
        units=[UnitTally(u, dict(c), minimum) for u, c in sorted(per_unit.items())],
        lines=lines,
        waves=[(CalloutKind(w.kind).label, w.created_at, w.recipients) for w in waves],
    )


def _line(
    target: Row,
    member: Member,
    answer: Row | None,
    names: dict[uuid.UUID, str],
    read_at: dict[tuple[uuid.UUID, uuid.UUID], datetime],
) -> TargetLine:
    return TargetLine(
        member_id=member.id,
        member_code=member.member_code,
        name=names.get(member.id, ""),
        unit=target.unit,
        leader=target.leader,
        notified=target.notified,
        answer=Answer(answer.answer) if answer else None,
        eta_minutes=answer.eta_minutes if answer else None,
        answered_at=answer.at if answer else None,
        via=answer.via if answer else "",
        reminded=target.reminded_at is not None,
        read_at=read_at.get((target.incident_id, member.id)),
    )
