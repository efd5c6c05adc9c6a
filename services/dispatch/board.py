"""出動中の事案 (#22): the board a leader keeps open on a tablet at the station. Every open
incident of the brigade with its tally, the answers with their ETA and who has not answered,
read in one read-only transaction by a fixed number of queries however many are open (the
board refreshes every few seconds on every tablet that shows it)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import false
from sqlmodel import select

from core.actor import Actor
from models.dispatch import Incident, IncidentStatus
from services.base import scoped, transaction
from services.dispatch import callout, incidents, tally
from services.dispatch.tally import Tally, TargetLine


@dataclass(frozen=True)
class BoardIncident:
    id: uuid.UUID
    number: int
    kind: str
    place: str
    status: IncidentStatus
    ordered_at: datetime  # 指令時刻: as the mail gives it, else when it came or was entered
    tally: Tally

    @property
    def answered(self) -> list[TargetLine]:
        """The answers, earliest first."""
        lines = [line for line in self.tally.lines if line.answered_at is not None]
        return sorted(lines, key=lambda line: line.answered_at)

    @property
    def silent(self) -> list[TargetLine]:
        """Those called who have not answered yet."""
        return [line for line in self.tally.lines if line.answer is None]


def arrival(line: TargetLine) -> datetime | None:
    """When a member who gave an ETA expects to be at the station."""
    if line.answered_at is None or line.eta_minutes is None:
        return None
    return line.answered_at + timedelta(minutes=line.eta_minutes)


def board(actor: Actor) -> list[BoardIncident]:
    """The brigade's open incidents, latest 指令 first; test call-outs and the self-test are
    not incidents anyone turns out for. Names of members for 編集 only (as on the tally)."""
    with transaction(actor, callout.VIEW, action="board.read", read_only=True) as tx:
        rows = tx.session.exec(
            scoped(select(Incident), tx.actor).where(
                Incident.status != IncidentStatus.CLOSED,
                Incident.number != incidents.SELFTEST_NUMBER,
                Incident.test == false(),
            )
        ).all()
        found = [
            BoardIncident(
                id=row.id,
                number=row.number,
                kind=row.kind,
                place=incidents.unseal(tx, row, "place"),
                status=IncidentStatus(row.status),
                ordered_at=row.occurred_at or row.received_at or row.created_at,
                tally=board_tally,
            )
            for row, board_tally in zip(rows, tally.tallies(tx, list(rows)), strict=True)
        ]
        return sorted(found, key=lambda item: item.ordered_at, reverse=True)
