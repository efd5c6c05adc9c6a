"""Recovery of a brigade that locked itself out (#15): the platform (the command line or the
operator) may lift a member's suspension, readmit a retired member and give a member
役職・権限 管理. Each is a platform action, audited in the platform's chain and in the
brigade's own, and nothing else of the brigade is touched."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from sqlmodel import select

from core.access import PLATFORM
from core.actor import Actor, ActorKind
from models import Member, MemberRole, Permission, Rank, Role, Tenant
from models.enums import AuditCategory, Function, Level, MemberStatus, SubjectType, TenantStatus
from models.tenant import PLATFORM_TENANT_ID
from services import audit
from services.base import require
from services.db import set_tenant, unit_of_work
from services.errors import NotFound, ValidationError
from services.grants import set_levels

RECOVERY_ROLE = "権限管理（復旧）"


@dataclass
class RecoveryResult:
    brigade: str
    member_code: str
    done: list[str] = field(default_factory=list)  # what changed, in Japanese


def recover_member(
    actor: Actor,
    *,
    tenant_id: uuid.UUID,
    member_code: str,
    give_admin: bool = False,
) -> RecoveryResult:
    """Make one member of a brigade able to sign in and, if asked, administer permissions:
    a suspension is lifted, a retirement undone, and with `give_admin` the role
    「権限管理（復旧）」 (役職・権限 管理 only) is created if needed and given. Refuses a brigade
    that is not active and a member code it does not have."""
    require(actor, PLATFORM, action="member.recover")
    code = member_code.strip()
    with unit_of_work(tenant_id) as session:
        tenant = session.get(Tenant, tenant_id)
        if tenant is None or tenant.status != TenantStatus.ACTIVE:
            raise NotFound("利用中の消防団が見つかりません。")
        member = session.exec(
            select(Member).where(Member.tenant_id == tenant_id, Member.member_code == code)
        ).first()
        if member is None:
            raise ValidationError({"member_code": f"団員番号「{code}」の団員はいません。"})
        result = RecoveryResult(tenant.name, member.member_code)
        before = member.status
        if member.status != MemberStatus.ACTIVE:
            member.status = MemberStatus.ACTIVE
            member.version += 1
            session.add(member)
            label = "利用停止を解除" if before == MemberStatus.SUSPENDED else "再入団"
            result.done.append(label)
        if give_admin and _give_admin(session, tenant_id, member):
            result.done.append(f"役職「{RECOVERY_ROLE}」（役職・権限 管理）を付与")
        if not result.done:
            raise ValidationError(
                {"member_code": "この団員は既に在籍中で、変更することがありません。"}
            )
        details = {
            "brigade": tenant.name,
            "member_code": member.member_code,
            "before": {"status": str(before)},
            "after": {"status": str(member.status)},
            "admin_role_given": give_admin,
        }
        for chain in (tenant_id, PLATFORM_TENANT_ID):
            audit.record(
                session,
                actor,
                category=AuditCategory.AUTH,
                action="member.recover",
                target_type="member",
                target_id=member.id,
                details=details,
                tenant_id=chain,
            )
        set_tenant(session, tenant_id)
        session.commit()
    return result


def _give_admin(session, tenant_id: uuid.UUID, member: Member) -> bool:
    """The recovery role (created with 役職・権限 管理 only, under the lowest rank) for the
    member; False if the member already holds it."""
    role = session.exec(
        select(Role).where(Role.tenant_id == tenant_id, Role.name == RECOVERY_ROLE)
    ).first()
    if role is None:
        lowest = session.exec(
            select(Rank).where(Rank.tenant_id == tenant_id).order_by(Rank.position.desc())
        ).first()
        role = Role(tenant_id=tenant_id, name=RECOVERY_ROLE, rank_id=lowest.id)
        session.add(role)
        session.flush()
        set_levels(
            session, tenant_id, SubjectType.ROLE, role.id, {Function.PERMISSIONS: Level.ADMIN}
        )
    else:  # the brigade may have narrowed it since: the role is for recovery, so restore it
        cell = session.exec(
            select(Permission).where(
                Permission.tenant_id == tenant_id,
                Permission.subject_id == role.id,
                Permission.function == str(Function.PERMISSIONS),
            )
        ).first()
        if cell is None:
            set_levels(
                session, tenant_id, SubjectType.ROLE, role.id, {Function.PERMISSIONS: Level.ADMIN}
            )
        elif cell.level < Level.ADMIN:
            cell.level = int(Level.ADMIN)
            session.add(cell)
    held = session.exec(
        select(MemberRole).where(
            MemberRole.tenant_id == tenant_id,
            MemberRole.member_id == member.id,
            MemberRole.role_id == role.id,
        )
    ).first()
    if held is not None:
        return False
    session.add(MemberRole(tenant_id=tenant_id, member_id=member.id, role_id=role.id))
    return True


def main_recover(brigade: str, member_code: str, *, give_admin: bool) -> int:
    """`cli.py recover <brigade> <member code> [--give-admin]`: 0 done, 1 refused."""
    from services.errors import ServiceError

    cli = Actor(kind=ActorKind.SYSTEM, display_name="command line", label="cli:recover")

    with unit_of_work(PLATFORM_TENANT_ID) as session:
        try:
            condition = Tenant.id == uuid.UUID(brigade)
        except ValueError:
            condition = Tenant.name == brigade.strip()
        tenant = session.exec(select(Tenant).where(condition)).first()
    if tenant is None:
        print(f"NG  消防団が見つかりません / no such brigade: {brigade}")
        return 1
    try:
        result = recover_member(
            cli, tenant_id=tenant.id, member_code=member_code, give_admin=give_admin
        )
    except ValidationError as exc:
        print(f"NG  {' '.join(exc.errors.values())}")
        return 1
    except ServiceError as exc:
        print(f"NG  {exc.message}")
        return 1
    print(f"OK  {result.brigade} {result.member_code}: {'、'.join(result.done)}")
    return 0
