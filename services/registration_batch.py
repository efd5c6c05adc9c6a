"""一括発行 (#18): registration codes for a chosen set of members at once, in one transaction,
printed as one file (formats.registration_sheet.registration_sheets_html).

The rules are those of one code (services.registrations.issue_registration): アカウント管理 編集,
LINE Login configured, active members without a LINE link, the ceiling, and 管理 for a member
who signs in with a password or may edit permissions. A member the actor may not issue for is
left out and counted rather than refusing the batch: one 団長 in a 分団 does not hold back the
other thirty sheets. Each code is audited as a single issue is (the member's ホーム notice reads
those events), and the batch once more with its filter and counts.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from core.access import Need
from core.actor import Actor
from models import LineRegistration, LocalAccount, Member, MemberLine, MemberRole
from models.enums import AuditCategory, Function, Level, MemberStatus
from services.base import Tx, scoped, transaction
from services.errors import Conflict, ValidationError
from services.grants import Grant, combined_grants
from services.members.ceiling import ceiling_problem, is_permission_admin
from services.registrations import (
    IssuedRegistration,
    issue_code,
    require_line_login,
    state_of,
)

# One file stays printable and the transaction short; a larger brigade prints per 分団.
BATCH_LIMIT = 500
NO_UNIT = "（所属なし）"
TOO_MANY = f"一度に発行できるのは{BATCH_LIMIT}名までです。所属で絞り込んでください。"
NOBODY = "登録用紙を発行する団員がいません。所属や条件を見直してください。"
EDIT = Need(Function.MEMBER_ACCOUNTS, Level.EDIT)


@dataclass(frozen=True)
class BatchMember:
    member_id: uuid.UUID
    member_code: str
    name: str
    affiliation: str
    reissue: bool  # the member already has a user id (a code expired, used, locked or valid)


@dataclass(frozen=True)
class BatchPlan:
    """Who would get a sheet, and how many of the chosen 所属 would not, and why."""

    members: tuple[BatchMember, ...]
    linked: int  # already use LINE
    valid_kept: int  # hold a code still valid, and reissuing was not asked for
    not_permitted: int  # above the actor's grants, or needing 役職・権限 管理

    @property
    def count(self) -> int:
        return len(self.members)


@dataclass(frozen=True)
class _Candidate:
    member: Member
    registration: LineRegistration | None
    sensitive: bool


def batch_units(actor: Actor) -> list[str]:
    """The 所属 of the brigade's active members, as the filter offers them ("" for none)."""
    with transaction(actor, EDIT, action="registration.batch_units", read_only=True) as tx:
        query = scoped(select(Member.affiliation), actor).where(
            Member.status == MemberStatus.ACTIVE
        )
        return sorted(set(tx.session.exec(query).all()))


def plan_batch(actor: Actor, *, units: Sequence[str], include_valid: bool) -> BatchPlan:
    """What issue_batch would do now, changing nothing. `units` empty: every 所属."""
    with transaction(actor, EDIT, action="registration.batch_plan", read_only=True) as tx:
        require_line_login()
        plan, _ = _select(tx, units, include_valid)
        return plan


def issue_batch(
    actor: Actor,
    *,
    units: Sequence[str],
    include_valid: bool,
    expected: Collection[uuid.UUID],
) -> list[IssuedRegistration]:
    """Issue (or reissue) a code for every member plan_batch names, in 所属 and 団員番号 order.
    `expected` are the members the actor confirmed (plan_batch's): if the selection is not
    exactly those now — one linked LINE and another joined, say — nothing is issued and the
    actor looks again. The members' registrations are locked, so two batches at once (two
    tabs, two administrators) follow one another instead of clashing."""
    with transaction(actor, EDIT, action="registration.batch_issue") as tx:
        require_line_login()
        plan, chosen = _select(tx, units, include_valid, lock=True)
        if not chosen:
            raise ValidationError({"member": NOBODY})
        if len(chosen) > BATCH_LIMIT:
            raise ValidationError({"member": TOO_MANY})
        if {c.member.id for c in chosen} != set(expected):
            raise Conflict()
        try:
            issued = [
                issue_code(tx, c.member, c.registration, sensitive=c.sensitive) for c in chosen
            ]
            tx.session.flush()
        except IntegrityError as exc:  # a first code for one of them made meanwhile elsewhere
            raise Conflict() from exc
        tx.audit(
            "registration.batch_issue",
            category=AuditCategory.AUTH,
            details={
                "units": sorted(set(units)),
                "include_valid": include_valid,
                "issued": sum(not i.reissued for i in issued),
                "reissued": sum(i.reissued for i in issued),
                "linked": plan.linked,
                "valid_kept": plan.valid_kept,
                "not_permitted": plan.not_permitted,
            },
        )
        tx.commit()
        return issued


def _select(
    tx: Tx, units: Sequence[str], include_valid: bool, *, lock: bool = False
) -> tuple[BatchPlan, list[_Candidate]]:
    query = scoped(select(Member), tx.actor).where(Member.status == MemberStatus.ACTIVE)
    if units:
        query = query.where(Member.affiliation.in_(list(units)))
    members = tx.session.exec(query.order_by(Member.affiliation, Member.member_code)).all()
    linked = set(tx.session.exec(scoped(select(MemberLine.member_id), tx.actor)).all())
    query = scoped(select(LineRegistration), tx.actor)
    registrations = {
        r.member_id: r for r in tx.session.exec(query.with_for_update() if lock else query).all()
    }
    passwords = set(tx.session.exec(scoped(select(LocalAccount.member_id), tx.actor)).all())
    grants = _grants(tx, members)
    admin = is_permission_admin(tx.actor)
    chosen: list[_Candidate] = []
    counts = {"linked": 0, "valid_kept": 0, "not_permitted": 0}
    for member in members:
        registration = registrations.get(member.id)
        held = grants[member.id]
        sensitive = member.id in passwords or (
            held.get(str(Function.PERMISSIONS), Grant()).level >= Level.EDIT
        )
        if member.id in linked:
            counts["linked"] += 1
        elif state_of(registration) == "issued" and not include_valid:
            counts["valid_kept"] += 1
        elif (sensitive and not admin) or ceiling_problem(
            tx.actor, member_id=member.id, before=held
        ):
            counts["not_permitted"] += 1
        else:
            chosen.append(_Candidate(member, registration, sensitive))
    shown = tuple(
        BatchMember(
            member_id=c.member.id,
            member_code=c.member.member_code,
            name=tx.cipher.member_name(c.member),
            affiliation=c.member.affiliation,
            reissue=c.registration is not None,
        )
        for c in chosen
    )
    return BatchPlan(members=shown, **counts), chosen


def _grants(tx: Tx, members: Sequence[Member]) -> dict[uuid.UUID, dict[str, Grant]]:
    """Each member's grants (services.grants.member_grants), read once per rank-and-roles set
    rather than twice per member."""
    roles: dict[uuid.UUID, list[uuid.UUID]] = {}
    for member_id, role_id in tx.session.exec(
        scoped(select(MemberRole.member_id, MemberRole.role_id), tx.actor)
    ).all():
        roles.setdefault(member_id, []).append(role_id)
    seen: dict[frozenset[uuid.UUID], dict[str, Grant]] = {}
    result = {}
    for member in members:
        subjects = frozenset([member.rank_id, *roles.get(member.id, [])])
        if subjects not in seen:
            seen[subjects] = combined_grants(tx.session, tx.tenant_id, subjects)
        result[member.id] = seen[subjects]
    return result
