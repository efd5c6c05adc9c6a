"""Brigades (tenants): created by the platform operator, each with its ranks, keys and chain."""

from __future__ import annotations

import uuid
from datetime import date

from sqlmodel import select

from auth.actor import Actor
from models import Tenant
from models.enums import AuditCategory, TenantStatus
from models.tenant import PLATFORM_TENANT_ID
from services import audit
from services.crypto import create_tenant_keys
from services.db import set_tenant, unit_of_work
from services.errors import NotFound, PermissionDenied, ValidationError
from services.permissions import seed_ranks
from services.validation import clean


def _require_platform(actor: Actor) -> None:
    if actor.kind not in ("operator", "system"):
        raise PermissionDenied()


def create_tenant(
    actor: Actor, *, name: str, municipality: str = "", contract_start: date | None = None
) -> uuid.UUID:
    """Create a brigade with the 7 national ranks, the default matrix and its keys."""
    _require_platform(actor)
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
    return tenant.id


def list_tenants(actor: Actor) -> list[Tenant]:
    _require_platform(actor)
    with unit_of_work(PLATFORM_TENANT_ID) as session:
        rows = session.exec(select(Tenant).where(Tenant.status != TenantStatus.PLATFORM)).all()
        return sorted(rows, key=lambda t: t.name)


def get_tenant_by_name(actor: Actor, name: str) -> Tenant:
    _require_platform(actor)
    with unit_of_work(PLATFORM_TENANT_ID) as session:
        tenant = session.exec(select(Tenant).where(Tenant.name == name)).first()
    if tenant is None:
        raise NotFound()
    return tenant
