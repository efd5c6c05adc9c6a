"""The member's incident page (出動情報, #22): what a called member sees on the phone after the
call-out's LINE link, and the 既読 it leaves for the leaders.

LINE reports no reads of a bot's messages, so opening the page is the receipt: the first open
inserts the member's row (audited), later opens move last_read_at only. The insert is an
INSERT … ON CONFLICT DO NOTHING, so two opens at once (two tabs, a preloading in-app browser)
cannot both count as the first."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy import update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import select

from core.actor import Actor
from models.base import new_id, utcnow
from models.callout import CalloutAnswer
from models.dispatch import Incident, IncidentStatus
from models.enums import Answer
from models.incident_read import IncidentRead
from services import geo, water_sources
from services.base import Tx, scoped, transaction
from services.dispatch import incident_map
from services.dispatch.incident_map import IncidentPosition, NearestWater
from services.dispatch.incidents import VIEW, _get, unseal
from services.errors import PermissionDenied

# A phone shows a short list: the nearest few within a few streets' reach.
NEAREST_K = 5
NEAREST_RADIUS_M = 500


@dataclass(frozen=True)
class MemberIncident:
    """What the phone page shows (the place in full: the member is on the way)."""

    id: uuid.UUID
    number: int
    kind: str
    status: IncidentStatus
    place: str
    place_approximate: bool
    landmark: str
    occurred_at: datetime | None  # 覚知, as the 本部 wrote it
    received_at: datetime  # when Hikeshi received the mail (or the incident was entered)
    answer: Answer | None  # the member's own latest answer
    eta_minutes: int | None
    water: NearestWater


def mark_read(actor: Actor, incident_id: uuid.UUID) -> bool:
    """Record that the signed-in member opened the incident; True the first time."""
    with transaction(actor, VIEW, action="incident.read") as tx:
        member_id = _member_of(tx)
        row = _get(tx, incident_id)
        now = utcnow()
        values = {
            "id": new_id(),
            "tenant_id": tx.tenant_id,
            "incident_id": row.id,
            "member_id": member_id,
            "first_read_at": now,
            "last_read_at": now,
        }
        dialect = tx.session.get_bind().dialect.name
        insert = pg_insert if dialect == "postgresql" else sqlite_insert
        statement = (
            insert(IncidentRead)
            .values(values)
            .on_conflict_do_nothing(index_elements=["tenant_id", "incident_id", "member_id"])
            .returning(IncidentRead.id)
        )
        first = tx.session.execute(statement).first() is not None
        if first:
            tx.audit(
                "incident.read",
                target_type="incident",
                target_id=row.id,
                details={"number": row.number},
            )
        else:
            tx.session.execute(
                update(IncidentRead)
                .where(
                    IncidentRead.tenant_id == tx.tenant_id,
                    IncidentRead.incident_id == row.id,
                    IncidentRead.member_id == member_id,
                )
                .values(last_read_at=now)
            )
        tx.commit()
        return first


def read_times(
    tx: Tx, incident_ids: Iterable[uuid.UUID]
) -> dict[tuple[uuid.UUID, uuid.UUID], datetime]:
    """When each member first opened each of these incidents, in one query (for the tally)."""
    ids = list(incident_ids)
    if not ids:
        return {}
    rows = tx.session.exec(
        scoped(select(IncidentRead), tx.actor).where(IncidentRead.incident_id.in_(ids))
    ).all()
    return {(r.incident_id, r.member_id): r.first_read_at for r in rows}


def member_view(actor: Actor, incident_id: uuid.UUID) -> MemberIncident:
    """The incident as the phone page shows it to the signed-in member, in one read."""
    with transaction(actor, VIEW, action="incident.member_view", read_only=True) as tx:
        row = _get(tx, incident_id)
        answer = _own_answer(tx, row.id)
        position = _position(tx, row)
        water = incident_map.nearest_in(
            water_sources.registry_in(tx), position, NEAREST_K, NEAREST_RADIUS_M
        )
        return MemberIncident(
            id=row.id,
            number=row.number,
            kind=row.kind,
            status=IncidentStatus(row.status),
            place=unseal(tx, row, "place"),
            place_approximate=row.place_approximate,
            landmark=unseal(tx, row, "landmark"),
            occurred_at=row.occurred_at,
            received_at=row.received_at or row.created_at,
            answer=Answer(answer.answer) if answer else None,
            eta_minutes=answer.eta_minutes if answer else None,
            water=water,
        )


def _position(tx: Tx, row: Incident) -> IncidentPosition:
    """The stored point, else the mail's map link read now: members open the link before any
    leader's page has filled the point in (incident_map.locate, which may ask the geocoder,
    runs for 編集 only), and this read must not write."""
    position = incident_map.position_of(tx, row)
    if position.known:
        return position
    point = geo.coordinates_in_url(unseal(tx, row, "map_url"))
    if point is None:
        return position
    return replace(position, latitude=point[0], longitude=point[1], source="map_url")


def _member_of(tx: Tx) -> uuid.UUID:
    """Only a member's own open is a read (an operator or a machine has none to leave)."""
    if tx.actor.member_id is None:
        raise PermissionDenied()
    return tx.actor.member_id


def _own_answer(tx: Tx, incident_id: uuid.UUID) -> CalloutAnswer | None:
    if tx.actor.member_id is None:
        return None
    return tx.session.exec(
        scoped(select(CalloutAnswer), tx.actor)
        .where(
            CalloutAnswer.incident_id == incident_id,
            CalloutAnswer.member_id == tx.actor.member_id,
        )
        .order_by(CalloutAnswer.at.desc(), CalloutAnswer.id.desc())
        .limit(1)
    ).first()
