"""Call-out test helpers: a brigade whose members are linked to LINE user ids, and the fake
Messaging API configured as the installation's channel."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from models import Member, MemberLine
from services.crypto import TenantCipher
from services.db import unit_of_work
from services.signin import line_sessions
from tests.factories import link_line, make_member, make_tenant, rank_id
from tests.fakes.line_messaging import FakeMessaging, new_user_id
from tests.fakes.line_server import configured, serve


@dataclass
class Brigade:
    tenant_id: uuid.UUID
    # member id → LINE user id ("" when not linked), and member id → 所属 / leader
    subs: dict[uuid.UUID, str] = field(default_factory=dict)
    units: dict[uuid.UUID, str] = field(default_factory=dict)
    leaders: set[uuid.UUID] = field(default_factory=set)

    def in_unit(self, unit: str) -> set[uuid.UUID]:
        return {m for m, u in self.units.items() if u.startswith(unit)}

    def sub_of(self, member_id: uuid.UUID) -> str:
        return self.subs[member_id]


def make_brigade(
    crews: dict[str, int], *, unlinked: int = 0, leader_unit: str = "団本部"
) -> Brigade:
    """Members in each 分団 (all linked to LINE), `unlinked` more in the first one without a
    link, and one 分団長 in leader_unit."""
    brigade = Brigade(make_tenant())
    tenant = brigade.tenant_id

    def add(unit: str, *, linked: bool = True, rank: str = "団員") -> None:
        member = make_member(tenant, affiliation=unit, rank_id=rank_id(tenant, rank))
        sub = new_user_id() if linked else ""
        if linked:
            link_line(tenant, member.id, sub)
        brigade.subs[member.id], brigade.units[member.id] = sub, unit
        if rank != "団員":
            brigade.leaders.add(member.id)

    for unit, count in crews.items():
        for _ in range(count):
            add(f"{unit} 第1部")
    for _ in range(unlinked):
        add(f"{next(iter(crews))} 第2部", linked=False)
    add(leader_unit, rank="分団長")
    return brigade


@contextmanager
def messaging(**settings: object) -> Iterator[FakeMessaging]:
    """The fake Messaging API, served and configured as this installation's channel."""
    fake = FakeMessaging()
    for name, value in settings.items():
        setattr(fake, name, value)
    with serve(fake), configured(fake.settings_env()):
        yield fake


def bulk_members(tenant_id: uuid.UUID, count: int, unit: str) -> None:
    """Many linked members at once, written directly (the roster service is tested elsewhere)."""
    rank = rank_id(tenant_id)
    with unit_of_work(tenant_id) as db:
        cipher = TenantCipher(db, tenant_id)
        for n in range(count):
            member = Member(
                tenant_id=tenant_id,
                member_code=f"B{n:05d}",
                rank_id=rank,
                affiliation=unit,
                **{f"{f}_enc": "" for f in ("name", "kana", "phone", "email", "address", "notes")},
            )
            for f in ("name", "kana", "phone", "email", "address", "notes"):
                setattr(
                    member,
                    f"{f}_enc",
                    cipher.encrypt("団員", field=f"member.{f}", row_id=member.id),
                )
            db.add(member)
            db.flush()
            sub = new_user_id()
            link = MemberLine(
                tenant_id=tenant_id,
                member_id=member.id,
                sub_enc="",
                sub_bidx=cipher.blind_index(sub, field=line_sessions.SUB_FIELD),
            )
            link.sub_enc = cipher.encrypt(sub, field=line_sessions.SUB_FIELD, row_id=link.id)
            db.add(link)
        db.commit()
