"""Roster (団員名簿) services: every call checks the permission, scopes to the tenant and audits.

Roster editing may be narrowed to the editor's own 所属 (permission scope "own_unit"): such an
editor sees the whole roster but changes only members whose 所属 is theirs or lies below it.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlmodel import select

from core.access import Need
from core.actor import Actor
from core.personal import personal_fields
from models import Member, MemberCreate, MemberPublic, MemberUpdate, Rank, Role
from models.enums import Function, Level, MemberStatus
from services import validation as v
from services.base import scoped, transaction
from services.errors import Conflict, ValidationError
from services.members.ceiling import check_ceiling
from services.members.model import (
    AFFILIATION_LIMIT,
    FREE_TEXT_LABELS,
    TABLE,
    AffiliationCount,
    EditScope,
    MemberFilter,
    RankOption,
    RoleOption,
    in_unit,
)
from services.members.records import (
    ACCOUNT_ACTIONS,
    changed_fields,
    linked_ids,
    load_member,
    load_members,
    load_org,
    member_errors,
    normalise_member,
    personal_columns,
    personal_of,
    personal_values,
    revoke_sessions,
    save_member,
    set_roles,
    set_status,
    summary_of,
    to_public,
    valid_affiliation,
    validated_values,
    write_personal,
)
from services.members.scope import (
    accounts_editing,
    check_rank_and_roles,
    current_scope,
    editing,
    permissions_grant,
    require_scope,
    subjects_of,
)
from services.members.view import (
    RosterMember,
    RosterView,
    affiliation_counts,
    by_reading,
    line_reach_of,
    matching,
    roster_view,
)
from services.permissions import Grant, check_grants_permission_editing, combined_grants, no_lockout


def list_ranks(actor: Actor) -> list[RankOption]:
    with transaction(
        actor, Need(Function.ROSTER, Level.VIEW), action="rank.list", read_only=True
    ) as tx:
        rows = tx.session.exec(scoped(select(Rank), actor).order_by(Rank.position)).all()
        return [RankOption(r.id, r.name, r.position) for r in rows]


def list_roles(actor: Actor) -> list[RoleOption]:
    with transaction(
        actor, Need(Function.ROSTER, Level.VIEW), action="role.list", read_only=True
    ) as tx:
        rows = tx.session.exec(scoped(select(Role), actor).order_by(Role.name)).all()
        return [RoleOption(r.id, r.name, r.rank_id) for r in rows]


def edit_scope(actor: Actor) -> EditScope:
    """What the roster page may offer to edit (the services check again on every call)."""
    with transaction(
        actor, Need(Function.ROSTER, Level.VIEW), action="member.scope", read_only=True
    ) as tx:
        return current_scope(tx)


def list_members(actor: Actor, filters: MemberFilter | None = None) -> list[MemberPublic]:
    """The tenant's members, decrypted, filtered and sorted by reading (kana)."""
    filters = filters or MemberFilter()
    with transaction(
        actor, Need(Function.ROSTER, Level.VIEW), action="member.list", read_only=True
    ) as tx:
        query = scoped(select(Member), actor)
        if filters.rank_ids:
            query = query.where(Member.rank_id.in_(filters.rank_ids))
        if filters.statuses:
            query = query.where(Member.status.in_(filters.statuses))
        if filters.affiliations:
            query = query.where(Member.affiliation.in_([v.clean(a) for a in filters.affiliations]))
        rows = tx.session.exec(query).all()
        linked = linked_ids(tx) if filters.line_linked is not None else frozenset()
        org = load_org(tx)
        members = [to_public(tx, m, org) for m in rows]
    return matching(by_reading(members), filters, linked)


def line_linked_ids(actor: Actor) -> frozenset[uuid.UUID]:
    """The members linked to a LINE account."""
    with transaction(
        actor, Need(Function.ROSTER, Level.VIEW), action="member.line_links", read_only=True
    ) as tx:
        return linked_ids(tx)


def line_reach(actor: Actor) -> dict[uuid.UUID, str]:
    """Each linked member's friendship with the official account, as the roster shows it
    (友だち / ブロック中 / 未追加またはブロック / 不明): whether a call-out reaches the member."""
    with transaction(
        actor, Need(Function.ROSTER, Level.VIEW), action="member.line_links", read_only=True
    ) as tx:
        return line_reach_of(tx)


def get_member(actor: Actor, member_id: uuid.UUID) -> MemberPublic:
    with transaction(
        actor, Need(Function.ROSTER, Level.VIEW), action="member.get", read_only=True
    ) as tx:
        return to_public(tx, load_member(tx, member_id))


def create_member(actor: Actor, *, data: MemberCreate) -> MemberPublic:
    with editing(actor, "member.create") as tx:
        values = validated_values(tx, data.model_dump())
        require_scope(tx, values["affiliation"])
        check_ceiling(tx, None, subjects=subjects_of(values))
        after_grants = combined_grants(tx.session, tx.tenant_id, subjects_of(values))
        check_grants_permission_editing(tx, Grant(), permissions_grant(after_grants))
        member = Member(
            tenant_id=tx.tenant_id,
            member_code=values["member_code"],
            rank_id=values["rank_id"],
            affiliation=values["affiliation"],
            joined_on=values["joined_on"],
            **{f.column: "" for f in personal_fields(TABLE, encrypted=True)},
        )
        write_personal(tx, member, values)
        tx.session.add(member)
        tx.session.flush()
        set_roles(tx, member, values["role_ids"])
        after = to_public(tx, member)
        tx.audit(
            "member.create",
            target_type=TABLE,
            target_id=member.id,
            details={"member_code": member.member_code, "after": summary_of(after)},
            personal={"after": personal_of(after)},
        )
        tx.commit()
        return after


def update_member(
    actor: Actor, member_id: uuid.UUID, *, data: MemberUpdate, expected_version: int
) -> MemberPublic:
    """Optimistic concurrency: a stale expected_version raises Conflict and changes nothing.
    The row is locked while it is compared, so two simultaneous saves cannot both pass."""
    with editing(actor, "member.update") as tx:
        member = load_member(tx, member_id, lock=True)
        before = to_public(tx, member)
        if member.version != expected_version:
            raise Conflict()
        merged = before.model_dump() | data.model_dump(exclude_unset=True)
        values = validated_values(tx, merged, member_id=member.id)
        require_scope(tx, before.affiliation, values["affiliation"])
        grants_change = set(subjects_of(values)) != {member.rank_id, *before.role_ids}
        check_ceiling(tx, member, subjects=subjects_of(values) if grants_change else None)
        with no_lockout(tx):
            check_rank_and_roles(tx, member, values)
            for name in ("member_code", "rank_id", "affiliation", "joined_on"):
                setattr(member, name, values[name])
            write_personal(tx, member, values)
            set_roles(tx, member, values["role_ids"])
            after = save_member(tx, member)
        tx.audit(
            "member.update",
            target_type=TABLE,
            target_id=member.id,
            details={
                "member_code": member.member_code,
                "changed": changed_fields(before, after),
                "before": summary_of(before),
                "after": summary_of(after),
            },
            personal={
                "before": personal_of(before),
                "after": personal_of(after),
            },
        )
        tx.commit()
        return after


def suspend_member(actor: Actor, member_id: uuid.UUID) -> MemberPublic:
    """Suspension blocks login and revokes every open session at once."""
    with accounts_editing(actor, "member.suspend") as tx:
        member = load_member(tx, member_id, lock=True)
        returned = set_status(tx, member, MemberStatus.SUSPENDED, "member.suspend")
        tx.commit()
        return returned


def reactivate_member(actor: Actor, member_id: uuid.UUID) -> MemberPublic:
    """Lifts a suspension. A retired member comes back only through readmit_member."""
    with accounts_editing(actor, "member.reactivate") as tx:
        member = load_member(tx, member_id, lock=True)
        if member.status == MemberStatus.RETIRED:
            raise ValidationError(
                {
                    "status": "退団した団員は利用再開できません。"
                    "団員名簿の「再入団」で在籍に戻してください。"
                }
            )
        returned = set_status(tx, member, MemberStatus.ACTIVE, "member.reactivate")
        tx.commit()
        return returned


def retire_member(actor: Actor, member_id: uuid.UUID) -> MemberPublic:
    """退団: the record stays for history; access ends."""
    with editing(actor, "member.retire") as tx, no_lockout(tx):
        member = load_member(tx, member_id, lock=True)
        require_scope(tx, member.affiliation)
        returned = set_status(tx, member, MemberStatus.RETIRED, "member.retire")
        tx.commit()
        return returned


def readmit_member(actor: Actor, member_id: uuid.UUID) -> MemberPublic:
    """再入団: a retired member is active again. A roster change like retiring, so it needs
    団員名簿 編集 (a suspension is lifted with アカウント管理 instead)."""
    with editing(actor, "member.readmit") as tx:
        member = load_member(tx, member_id, lock=True)
        require_scope(tx, member.affiliation)
        if member.status != MemberStatus.RETIRED:
            raise ValidationError({"status": "再入団できるのは退団した団員だけです。"})
        returned = set_status(tx, member, MemberStatus.ACTIVE, "member.readmit")
        tx.commit()
        return returned


def bulk_suspend(actor: Actor, member_ids: Sequence[uuid.UUID]) -> int:
    """Suspend every selected active member (others are left as they are), all or none; one
    audit event per member. Returns how many were suspended."""
    with accounts_editing(actor, "member.bulk_suspend") as tx:
        chosen = load_members(tx, member_ids)
        active = [m for m in chosen if m.status == MemberStatus.ACTIVE]
        org = load_org(tx)
        for member in active:
            set_status(tx, member, MemberStatus.SUSPENDED, "member.suspend", org)
        tx.commit()
        return len(active)


def bulk_set_affiliation(actor: Actor, member_ids: Sequence[uuid.UUID], *, affiliation: str) -> int:
    """Give every selected member the same 所属, all or none; one audit event per changed
    member. Returns how many changed."""
    with editing(actor, "member.bulk_affiliation") as tx:
        label = valid_affiliation(affiliation)
        chosen = load_members(tx, member_ids)
        require_scope(tx, label, *(m.affiliation for m in chosen))
        changed = [m for m in chosen if m.affiliation != label]
        org = load_org(tx)
        for member in changed:
            check_ceiling(tx, member)
            before, member.affiliation = member.affiliation, label
            save_member(tx, member, org)
            tx.audit(
                "member.update",
                target_type=TABLE,
                target_id=member.id,
                details={
                    "member_code": member.member_code,
                    "changed": ["affiliation"],
                    "before": {"affiliation": before},
                    "after": {"affiliation": label},
                    "bulk": True,
                },
            )
        tx.commit()
        return len(changed)


def list_affiliations(actor: Actor) -> list[AffiliationCount]:
    """The 所属 labels in use, with how many members carry each."""
    with transaction(
        actor, Need(Function.ROSTER, Level.VIEW), action="member.affiliations", read_only=True
    ) as tx:
        rows = tx.session.exec(scoped(select(Member.affiliation, Member.status), actor)).all()
    return affiliation_counts(rows)


def rename_affiliation(actor: Actor, *, old: str, new: str, include_sub_units: bool = False) -> int:
    """Rename a 所属 label on every member carrying it (and, if asked, on the labels below it:
    "第1分団 第2部" follows "第1分団"). One audit event; returns how many members changed."""
    with editing(actor, "member.affiliation_rename") as tx:
        old_label, new_label = v.clean(old), valid_affiliation(new, field="new")
        rows = tx.session.exec(scoped(select(Member), actor).with_for_update()).all()
        hits = [
            m
            for m in rows
            if m.affiliation == old_label
            or (include_sub_units and in_unit(m.affiliation, old_label))
        ]
        if not old_label or not hits:
            raise ValidationError({"old": f"所属「{old_label}」の団員はいません。"})
        renamed = {m.id: new_label + m.affiliation[len(old_label) :] for m in hits}
        if any(len(label) > AFFILIATION_LIMIT for label in renamed.values()):
            raise ValidationError(
                {"new": f"変更後の所属が{AFFILIATION_LIMIT}文字を超える団員がいます。"}
            )
        require_scope(tx, *(m.affiliation for m in hits), *renamed.values())
        changed = [m for m in hits if renamed[m.id] != m.affiliation]
        org = load_org(tx)
        for member in changed:
            member.affiliation = renamed[member.id]
            save_member(tx, member, org)
        if changed:
            tx.audit(
                "member.affiliation_rename",
                target_type="affiliation",
                details={
                    "before": old_label,
                    "after": new_label,
                    "include_sub_units": include_sub_units,
                    "member_codes": sorted(m.member_code for m in changed),
                },
            )
        tx.commit()
        return len(changed)


__all__ = [
    "ACCOUNT_ACTIONS",
    "AFFILIATION_LIMIT",
    "FREE_TEXT_LABELS",
    "TABLE",
    "AffiliationCount",
    "EditScope",
    "MemberFilter",
    "RankOption",
    "RoleOption",
    "RosterMember",
    "RosterView",
    "bulk_set_affiliation",
    "bulk_suspend",
    "create_member",
    "current_scope",
    "edit_scope",
    "get_member",
    "in_unit",
    "line_linked_ids",
    "line_reach",
    "list_affiliations",
    "list_members",
    "list_ranks",
    "list_roles",
    "load_org",
    "member_errors",
    "normalise_member",
    "personal_columns",
    "personal_values",
    "reactivate_member",
    "readmit_member",
    "rename_affiliation",
    "retire_member",
    "revoke_sessions",
    "roster_view",
    "suspend_member",
    "to_public",
    "update_member",
]
