"""出動報告 test helpers: a brigade with members of chosen ranks in chosen 分団, their actors as
a sign-in builds them (rank, roles and the permission matrix from the database), and an
incident that members answered and a leader closed."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from core.actor import Actor
from models import Member, Tenant
from models.dispatch import IncidentStatus
from models.enums import Answer
from services.db import unit_of_work
from services.dispatch import callout, incidents
from services.signin.sessions import member_actor
from tests.factories import RequestContext, admin, make_member, make_tenant, rank_id


@dataclass
class People:
    tenant_id: uuid.UUID
    ids: dict[str, uuid.UUID] = field(default_factory=dict)

    def actor(self, key: str) -> Actor:
        return actor_of(self.tenant_id, self.ids[key])


def actor_of(tenant_id: uuid.UUID, member_id: uuid.UUID) -> Actor:
    with unit_of_work(tenant_id) as db:
        tenant, member = db.get(Tenant, tenant_id), db.get(Member, member_id)
        return member_actor(db, tenant, member, None, None, RequestContext())


def make_people(spec: dict[str, tuple[str, str]]) -> People:
    """{key: (rank, 所属)} → members of a new brigade."""
    people = People(make_tenant())
    for key, (rank, affiliation) in spec.items():
        member = make_member(
            people.tenant_id,
            affiliation=affiliation,
            rank_id=rank_id(people.tenant_id, rank),
        )
        people.ids[key] = member.id
    return people


def closed_incident(
    people: People,
    answers: dict[str, Answer],
    *,
    units: tuple[str, ...] = ("第1分団",),
    via: IncidentStatus = IncidentStatus.EXTINGUISHED,
) -> uuid.UUID:
    """An incident entered by hand for `units`, answered by proxy, then `via` (鎮火, 誤報,
    取消) and 終了."""
    boss = admin(people.tenant_id)
    incident = incidents.create_incident(
        boss, incidents.IncidentInput(kind="建物火災", place="デモ市本町1丁目", units=units)
    )
    callout.call_out(boss, incident.id, units)
    for key, answer in answers.items():
        callout.answer_by_proxy(boss, incident.id, people.ids[key], answer)
    view, _ = incidents.get_incident(boss, incident.id)
    for status in (via, IncidentStatus.CLOSED):
        view = incidents.set_status(boss, incident.id, status, expected_version=view.version)
    return incident.id
