"""What the 団員名簿 page shows, read in one transaction (#19): the ranks and roles to choose
from, the actor's editing scope, the 所属 labels in use, every member decrypted, and each LINE
link's reach. Filters are applied to the read rows, so a filter change is the same single read."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, NamedTuple, TypeVar

from sqlmodel import select

from core.access import Need
from core.actor import Actor
from models import Member, MemberLine, MemberPublic, Rank, Role
from models.callout import FriendStatus
from models.enums import Function, Level, MemberStatus
from services import validation as v
from services.base import Tx, scoped, transaction
from services.members.model import (
    AffiliationCount,
    EditScope,
    MemberFilter,
    RankOption,
    RoleOption,
)
from services.members.records import MEMBER_FIELDS, MEMBER_NAMES, Org, load_org
from services.members.scope import current_scope

# What the roster reads of a member, in this order: columns, not entities (5,000 ORM objects
# cost more than everything else the read does).
SHOWN = (
    *(getattr(Member, name) for name in ("id", "member_code", "rank_id", "affiliation", "status")),
    *(getattr(Member, name) for name in ("joined_on", "version")),
    *(getattr(Member, f.column) for f in MEMBER_FIELDS.fields),
)


class RosterMember(NamedTuple):
    """A member as the roster shows it: MemberPublic's fields in a plain tuple, since validating
    5,000 schema objects on every page run cost more than decrypting them did."""

    id: uuid.UUID
    member_code: str
    rank_id: uuid.UUID
    rank_name: str
    rank_position: int
    role_ids: tuple[uuid.UUID, ...]
    role_names: tuple[str, ...]
    affiliation: str
    status: str
    joined_on: date | None
    version: int
    # the encrypted fields, last and in the registry's order (shown() fills them by position)
    name: str
    kana: str
    phone: str
    email: str
    address: str
    notes: str


if RosterMember._fields[-len(MEMBER_NAMES) :] != MEMBER_NAMES:
    raise RuntimeError("RosterMember must end with the member's encrypted fields, in order")


M = TypeVar("M", MemberPublic, RosterMember)


@dataclass(frozen=True)
class RosterView:
    ranks: list[RankOption]  # in rank order (団長 first)
    roles: list[RoleOption]  # by name
    scope: EditScope
    affiliations: list[AffiliationCount]
    members: list[RosterMember]  # every member, sorted by reading (kana)
    reach: dict[uuid.UUID, str]  # linked members: whether the official account reaches them

    def matching(self, filters: MemberFilter) -> list[RosterMember]:
        """The members the filters select, in the same order."""
        linked = frozenset(self.reach)
        return matching(self.members, filters, linked)


def roster_view(actor: Actor) -> RosterView:
    with transaction(
        actor, Need(Function.ROSTER, Level.VIEW), action="member.list", read_only=True
    ) as tx:
        org = load_org(tx)
        ranks, roles, _ = org
        rows = tx.session.exec(scoped(select(*SHOWN), actor)).all()
        return RosterView(
            ranks=[RankOption(r.id, r.name, r.position) for r in by_position(ranks.values())],
            roles=[RoleOption(r.id, r.name, r.rank_id) for r in by_name(roles.values())],
            scope=current_scope(tx),
            affiliations=affiliation_counts((row[3], row[4]) for row in rows),
            members=by_reading(shown(tx, rows, org)),
            reach=line_reach_of(tx),
        )


def shown(tx: Tx, rows: Sequence[Any], org: Org) -> list[RosterMember]:
    """RosterMembers of rows selected as SHOWN, unpacked by position (attribute look-ups by
    name on 5,000 rows were a tenth of the page run)."""
    ranks, roles, links = org
    role_name = {role_id: role.name for role_id, role in roles.items()}
    open_cached, cached = tx.cipher.open_cached, MEMBER_FIELDS
    listed = []
    for member_id, code, rank_id, affiliation, status, joined_on, version, *stored in rows:
        rank = ranks[rank_id]
        held = links.get(member_id)  # tuples, and () for most: fewer objects for the collector
        role_ids = tuple(sorted(held, key=role_name.__getitem__)) if held else ()
        listed.append(
            RosterMember(
                member_id,
                code,
                rank.id,  # the organisation's object: one UUID fewer per member to collect
                rank.name,
                rank.position,
                role_ids,
                tuple(role_name[r] for r in role_ids),
                affiliation,
                status,
                joined_on,
                version,
                *open_cached(member_id, tuple(stored), cached),
            )
        )
    return listed


def by_position(ranks) -> list[Rank]:
    return sorted(ranks, key=lambda r: r.position)


def by_name(roles) -> list[Role]:
    return sorted(roles, key=lambda r: r.name)


def by_reading(members: Sequence[M]) -> list[M]:
    return sorted(members, key=lambda m: (m.kana or "\uffff", m.member_code))


def affiliation_counts(rows) -> list[AffiliationCount]:
    """The 所属 labels in use, with how many members carry each, from (label, status) pairs."""
    total: Counter[str] = Counter()
    active: Counter[str] = Counter()
    for label, status in rows:
        if label:
            total[label] += 1
            active[label] += status == MemberStatus.ACTIVE
    return [AffiliationCount(label, total[label], active[label]) for label in sorted(total)]


def line_reach_of(tx: Tx) -> dict[uuid.UUID, str]:
    rows = tx.session.exec(scoped(select(MemberLine.member_id, MemberLine.friend_status), tx.actor))
    return {member_id: FriendStatus(status).label for member_id, status in rows.all()}


def matching(members: Sequence[M], filters: MemberFilter, linked: frozenset[uuid.UUID]) -> list[M]:
    """The members every given filter admits (an empty filter admits all), order kept."""
    rank_ids, statuses = set(filters.rank_ids), set(filters.statuses)
    labels = {v.clean(a) for a in filters.affiliations}
    roles, part = set(filters.role_ids), v.clean(filters.affiliation)
    needle = v.search_key(filters.text)

    def admits(m: M) -> bool:
        return (
            (not rank_ids or m.rank_id in rank_ids)
            and (not statuses or m.status in statuses)
            and (not labels or m.affiliation in labels)
            and (filters.line_linked is None or (m.id in linked) == filters.line_linked)
            and (not roles or bool(roles & set(m.role_ids)))
            and (not part or part in m.affiliation)
            and (
                not needle
                or needle in v.search_key(m.name)
                or needle in v.search_key(m.kana)
                or needle in m.member_code.lower()
            )
        )

    return [m for m in members if admits(m)]
