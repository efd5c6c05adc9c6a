"""The audit log: append-only, one SHA-256 hash chain per tenant, written in the caller's
transaction. Personal data in details goes into details_enc, encrypted for the tenant."""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

from sqlmodel import Session, select

from core.actor import Actor
from core.personal import personal_field
from models import AuditChainHead, AuditEvent
from models.base import utcnow
from models.enums import AuditCategory
from models.tenant import PLATFORM_TENANT_ID
from services.crypto import AUDIT, TenantCipher
from services.db import TRANSACTION_SCOPED, set_tenant

PERSONAL_PART = personal_field("audit_event", "details")
LOCKED_HEADS = "audit_locked_heads"  # session.info: chain heads locked by this transaction
TRANSACTION_SCOPED.append(LOCKED_HEADS)

GENESIS_HASH = "0" * 64
HASHED_FIELDS = (
    "id",
    "tenant_id",
    "seq",
    "occurred_at",
    "category",
    "action",
    "outcome",
    "actor_type",
    "actor_id",
    "actor_label",
    "target_type",
    "target_id",
    "request_id",
    "client_addr",
    "user_agent",
    "details",
    "details_enc",
    "prev_hash",
)


def canonical(event: AuditEvent) -> bytes:
    values = {name: getattr(event, name) for name in HASHED_FIELDS}
    values["occurred_at"] = event.occurred_at.isoformat(timespec="microseconds")
    return json.dumps(values, default=str, sort_keys=True, ensure_ascii=False).encode()


def event_hash(event: AuditEvent) -> str:
    return hashlib.sha256(canonical(event)).hexdigest()


def chain_id(actor: Actor) -> uuid.UUID:
    return actor.tenant_id or PLATFORM_TENANT_ID


def record(
    session: Session,
    actor: Actor,
    *,
    category: AuditCategory,
    action: str,
    target_type: str = "",
    target_id: str | uuid.UUID = "",
    details: dict[str, Any] | None = None,
    personal: dict[str, Any] | None = None,
    outcome: str = "success",
    tenant_id: uuid.UUID | None = None,
) -> AuditEvent:
    """Append one event to the tenant's chain inside the caller's transaction."""
    tenant = tenant_id or chain_id(actor)
    set_tenant(session, tenant)
    head = _locked_head(session, tenant)
    event = AuditEvent(
        tenant_id=tenant,
        seq=head.seq + 1,
        occurred_at=utcnow(),
        category=str(category),
        action=action,
        outcome=outcome,
        actor_type=actor.kind,
        actor_id=str(actor.member_id or actor.account_id or ""),
        actor_label=actor.label[:100],
        target_type=target_type,
        target_id=str(target_id)[:80],
        request_id=actor.request.request_id[:40],
        client_addr=actor.request.client_addr[:64],
        user_agent=actor.request.user_agent[:300],
        details=json.dumps(details or {}, default=str, sort_keys=True, ensure_ascii=False),
        prev_hash=head.hash,
        hash="",
    )
    if personal and tenant != PLATFORM_TENANT_ID:
        cipher = TenantCipher(session, tenant, purpose=AUDIT)
        payload = json.dumps(personal, default=str, sort_keys=True, ensure_ascii=False)
        event.details_enc = cipher.encrypt(payload, field=PERSONAL_PART.aad, row_id=event.id)
    event.hash = event_hash(event)
    head.seq, head.hash = event.seq, event.hash
    session.add(event)
    session.add(head)
    return event  # written at the next flush (autoflush before any query, or the commit)


def _locked_head(session: Session, tenant: uuid.UUID) -> AuditChainHead:
    """The chain head, locked until the transaction ends: read (FOR UPDATE) once per
    transaction; later events of the same transaction use the row already locked and loaded."""
    heads = session.info.setdefault(LOCKED_HEADS, {})
    head = heads.get(tenant)
    if head is None:
        head = session.exec(
            select(AuditChainHead).where(AuditChainHead.tenant_id == tenant).with_for_update()
        ).one()
        heads[tenant] = head
    return head


def record_platform(
    session: Session,
    actor: Actor,
    action: str,
    *,
    target_type: str,
    target_id: str | uuid.UUID,
    details: dict[str, Any],
) -> AuditEvent:
    """An operation of the platform (brigade lifecycle, notices, keys): the platform's chain."""
    return record(
        session,
        actor,
        category=AuditCategory.OPERATION,
        action=action,
        target_type=target_type,
        target_id=target_id,
        details=details,
        tenant_id=PLATFORM_TENANT_ID,
    )


def create_chain(session: Session, tenant_id: uuid.UUID) -> None:
    session.add(AuditChainHead(tenant_id=tenant_id, seq=0, hash=GENESIS_HASH))
