"""Roles (役職): defined by each brigade, each mapped to a rank. Managing them needs 役職・権限 編集."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import delete
from sqlmodel import select

from core.access import Need, allows
from core.actor import Actor
from models import Member, MemberRole, Permission, Rank, Role
from models.base import utcnow
from models.enums import RANK_NAMES, Function, Level
from services import validation as v
from services.base import Tx, scoped, transaction
from services.errors import NotFound, ValidationError
from services.permissions import (
    Grant,
    add_role,
    check_ceiling,
    check_grants_permission_editing,
    combined_grants,
    guarded,
    no_lockout,
)

NAME_LIMIT = 40


@dataclass(frozen=True)
class RoleInfo:
    id: uuid.UUID
    name: str
    rank_id: uuid.UUID
    rank_name: str
    rank_position: int
    members: int  # members of any status holding the role


def list_roles(actor: Actor) -> list[RoleInfo]:
    """The brigade's roles by rank (highest first) and name, with how many members hold each."""
    with transaction(
        actor, Need(Function.PERMISSIONS, Level.VIEW), action="role.list", read_only=True
    ) as tx:
        ranks = {r.id: r for r in tx.session.exec(scoped(select(Rank), actor)).all()}
        counts: dict[uuid.UUID, int] = {}
        for link in tx.session.exec(scoped(select(MemberRole), actor)).all():
            counts[link.role_id] = counts.get(link.role_id, 0) + 1
        roles = [
            RoleInfo(
                r.id,
                r.name,
                r.rank_id,
                ranks[r.rank_id].name,
                ranks[r.rank_id].position,
                counts.get(r.id, 0),
            )
            for r in tx.session.exec(scoped(select(Role), actor)).all()
        ]
    return sorted(roles, key=lambda r: (r.rank_position, r.name))


def create_role(actor: Actor, *, name: str, rank_id: uuid.UUID) -> uuid.UUID:
    """A new role; the well-known names (庶務, 会計, 機関員) start with their default levels,
    capped at the creator's own unless they hold 役職・権限 管理."""
    with transaction(actor, Need(Function.PERMISSIONS, Level.EDIT), action="role.create") as tx:
        name = _valid_name(tx, name)
        rank = _rank(tx, rank_id)
        ceiling = (
            None if allows(actor, Need(Function.PERMISSIONS, Level.ADMIN)) else actor.permissions
        )
        role = add_role(tx.session, tx.tenant_id, name, rank, ceiling=ceiling)
        tx.session.flush()
        tx.audit(
            "role.create",
            target_type="role",
            target_id=role.id,
            details={"name": name, "rank": rank.name},
        )
        tx.commit()
        return role.id


def rename_role(actor: Actor, role_id: uuid.UUID, *, name: str) -> None:
    with transaction(actor, Need(Function.PERMISSIONS, Level.EDIT), action="role.rename") as tx:
        role = _role(tx, role_id)
        new = _valid_name(tx, name, role_id=role.id)
        before, role.name = role.name, new
        tx.session.add(role)
        tx.audit(
            "role.rename",
            target_type="role",
            target_id=role.id,
            details={"before": {"name": before}, "after": {"name": new}},
        )
        tx.commit()


def remap_role(actor: Actor, role_id: uuid.UUID, *, rank_id: uuid.UUID) -> None:
    """Map the role onto another rank (its place in lists; its levels stay its own)."""
    with transaction(actor, Need(Function.PERMISSIONS, Level.EDIT), action="role.remap") as tx:
        role = _role(tx, role_id)
        rank = _rank(tx, rank_id)
        before = tx.get(Rank, role.rank_id)
        role.rank_id = rank.id
        tx.session.add(role)
        tx.audit(
            "role.remap",
            target_type="role",
            target_id=role.id,
            details={
                "name": role.name,
                "before": {"rank": before.name if before else ""},
                "after": {"rank": rank.name},
            },
        )
        tx.commit()


def delete_role(actor: Actor, role_id: uuid.UUID, *, reassign_to: uuid.UUID | None = None) -> int:
    """Delete a role and its permissions. Members holding it get `reassign_to` instead; without
    it, a role still held is refused. Returns how many members were reassigned."""
    with guarded(actor, Function.PERMISSIONS, Level.EDIT, "role.delete") as tx:
        role = _role(tx, role_id)
        links = tx.session.exec(
            scoped(select(MemberRole), actor).where(MemberRole.role_id == role.id)
        ).all()
        successor = _successor(tx, role, reassign_to, held_by=len(links))
        grants = combined_grants(tx.session, tx.tenant_id, [role.id])
        for function, grant in grants.items():
            check_ceiling(tx, Function(function), grant, Grant())
        if successor is not None:
            after = combined_grants(tx.session, tx.tenant_id, [successor.id])
            check_grants_permission_editing(
                tx,
                grants.get(Function.PERMISSIONS, Grant()),
                after.get(Function.PERMISSIONS, Grant()),
            )
        with no_lockout(tx):
            moved = _reassign(tx, links, successor)
            tx.session.exec(
                delete(Permission).where(
                    Permission.tenant_id == tx.tenant_id, Permission.subject_id == role.id
                )
            )
            tx.session.delete(role)
            tx.session.flush()
        rank = tx.get(Rank, role.rank_id)
        tx.audit(
            "role.delete",
            target_type="role",
            target_id=role.id,
            details={
                "name": role.name,
                "rank": rank.name if rank else "",
                "permissions": {f: g.level.name.lower() for f, g in grants.items()},
                "members": len(links),
                "reassigned_to": successor.name if successor else "",
            },
        )
        tx.commit()
        return moved


def _successor(tx: Tx, role: Role, reassign_to: uuid.UUID | None, *, held_by: int) -> Role | None:
    if reassign_to is None:
        if held_by:
            raise ValidationError(
                {
                    "reassign_to": f"役職「{role.name}」は{held_by}名の団員に割り当てられているため"
                    "削除できません。引き継ぐ役職を選ぶか、先に団員から外してください。"
                }
            )
        return None
    successor = tx.get(Role, reassign_to)
    if successor is None or successor.id == role.id:
        raise ValidationError({"reassign_to": "引き継ぐ役職として別の既存の役職を選んでください。"})
    return successor


def _reassign(tx: Tx, links: list[MemberRole], successor: Role | None) -> int:
    """Move each holder to the successor role; each member's version moves on."""
    if successor is None:
        return 0
    holders = set(
        tx.session.exec(
            scoped(select(MemberRole.member_id), tx.actor).where(MemberRole.role_id == successor.id)
        ).all()
    )
    for link in links:
        tx.session.delete(link)
        if link.member_id not in holders:
            tx.session.add(
                MemberRole(tenant_id=tx.tenant_id, member_id=link.member_id, role_id=successor.id)
            )
        member = tx.get(Member, link.member_id)
        member.version += 1
        member.updated_at = utcnow()
        tx.session.add(member)
    tx.session.flush()
    return len(links)


def _valid_name(tx: Tx, name: str, *, role_id: uuid.UUID | None = None) -> str:
    name = v.clean_text(name)
    if v.has_control_chars(name):
        raise ValidationError({"name": v.control_chars_message("役職名")})
    if not name or len(name) > NAME_LIMIT:
        raise ValidationError({"name": f"役職名を{NAME_LIMIT}文字以内で入力してください。"})
    if name in RANK_NAMES:
        raise ValidationError({"name": f"「{name}」は階級名のため、役職名には使えません。"})
    query = scoped(select(Role.id), tx.actor).where(Role.name == name)
    if any(found != role_id for found in tx.session.exec(query).all()):
        raise ValidationError({"name": f"役職「{name}」は既にあります。"})
    return name


def _role(tx: Tx, role_id: uuid.UUID) -> Role:
    role = tx.get(Role, role_id)
    if role is None:
        raise NotFound("役職が見つかりません。")
    return role


def _rank(tx: Tx, rank_id: uuid.UUID | None) -> Rank:
    rank = tx.get(Rank, rank_id) if rank_id is not None else None
    if rank is None:
        raise ValidationError({"rank_id": "階級を選択してください。"})
    return rank
