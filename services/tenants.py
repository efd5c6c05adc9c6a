"""Brigades (tenants): created by the platform operator, each with its ranks, keys and chain."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import date, datetime

from sqlmodel import select

from core.access import PLATFORM
from core.actor import Actor, system_actor
from models import MemberCreate, Tenant
from models.enums import AuditCategory, TenantStatus
from models.tenant import PLATFORM_TENANT_ID
from services import audit, members
from services.base import require
from services.crypto import create_tenant_keys
from services.db import set_tenant, unit_of_work
from services.errors import NotFound, ValidationError
from services.permissions import seed_ranks
from services.signin.local import create_account, login_name_available, login_name_problems
from services.tenant_lifecycle import deletion_due
from services.validation import clean


def create_tenant(
    actor: Actor, *, name: str, municipality: str = "", contract_start: date | None = None
) -> uuid.UUID:
    """Create a brigade with the 7 national ranks, the default matrix and its keys."""
    require(actor, PLATFORM, action="tenant.create")
    name, municipality = clean(name), clean(municipality)
    if not name:
        raise ValidationError({"name": "消防団名を入力してください。"})
    tenant = Tenant(name=name, municipality=municipality, contract_start=contract_start)
    with unit_of_work(PLATFORM_TENANT_ID) as session:
        session.add(tenant)
        session.flush()
        set_tenant(session, tenant.id)
        create_tenant_keys(session, tenant.id)
        audit.create_chain(session, tenant.id)
        session.flush()
        seed_ranks(session, tenant.id)
        session.flush()
        set_tenant(session, PLATFORM_TENANT_ID)
        audit.record(
            session,
            actor,
            category=AuditCategory.OPERATION,
            action="tenant.create",
            target_type="tenant",
            target_id=tenant.id,
            details={"name": name, "municipality": municipality},
            tenant_id=PLATFORM_TENANT_ID,
        )
        session.commit()
    return tenant.id


def list_tenants(actor: Actor) -> list[Tenant]:
    require(actor, PLATFORM, action="tenant.list")
    with unit_of_work(PLATFORM_TENANT_ID, read_only=True) as session:
        rows = session.exec(select(Tenant).where(Tenant.status != TenantStatus.PLATFORM)).all()
        return sorted(rows, key=lambda t: t.name)


def get_tenant_by_name(actor: Actor, name: str) -> Tenant:
    require(actor, PLATFORM, action="tenant.find")
    with unit_of_work(PLATFORM_TENANT_ID, read_only=True) as session:
        tenant = session.exec(select(Tenant).where(Tenant.name == name)).first()
    if tenant is None:
        raise NotFound()
    return tenant


@dataclass(frozen=True)
class TenantSummary:
    id: uuid.UUID
    name: str
    municipality: str
    status: str
    created_at: datetime
    cancelled_on: date | None = None
    deletion_due: date | None = None


def list_brigades(actor: Actor) -> list[TenantSummary]:
    """The operator's view: brigade names, status and contract dates, nothing inside a
    brigade."""
    return [
        TenantSummary(
            t.id,
            t.name,
            t.municipality,
            t.status,
            t.created_at,
            t.contract_end if t.status != TenantStatus.ACTIVE else None,
            deletion_due(t.contract_end)
            if t.status == TenantStatus.CANCELLED and t.contract_end
            else None,
        )
        for t in list_tenants(actor)
    ]


def create_brigade(
    actor: Actor,
    *,
    name: str,
    municipality: str,
    admin_code: str,
    admin_name: str,
    admin_login: str,
    admin_password: str,
) -> uuid.UUID:
    """A new brigade with its first administrator (rank 団長) and their local login."""
    require(actor, PLATFORM, action="brigade.create")
    errors = login_name_problems(admin_login, admin_password)
    if "login_name" not in errors and not login_name_available(admin_login):
        errors["admin_login"] = "このログイン名は既に使われています。"
    if not clean(name):
        errors["name"] = "消防団名を入力してください。"
    if not clean(admin_code):
        errors["admin_code"] = "管理者の団員番号を入力してください。"
    if not clean(admin_name):
        errors["admin_name"] = "管理者の氏名を入力してください。"
    if errors:
        raise ValidationError(errors)
    # One transaction: the services below join it, so a failure in any step (the member, the
    # login) leaves no brigade behind without an administrator.
    with unit_of_work(PLATFORM_TENANT_ID) as session:
        tenant_id = create_tenant(actor, name=name, municipality=municipality)
        inside = replace(system_actor(tenant_id, label=actor.label), kind=actor.kind)
        ranks = {r.name: r.id for r in members.list_ranks(inside)}
        member = members.create_member(
            inside,
            data=MemberCreate(member_code=admin_code, name=admin_name, rank_id=ranks["団長"]),
        )
        create_account(
            actor,
            login_name=admin_login,
            password=admin_password,
            tenant_id=tenant_id,
            member_id=member.id,
        )
        session.commit()
    return tenant_id
