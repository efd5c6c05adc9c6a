"""Append-only audit events, chained per tenant (see services/audit.py)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from models.base import created_field, new_id


class AuditEvent(SQLModel, table=True):
    __tablename__ = "audit_event"
    __table_args__ = (
        UniqueConstraint("tenant_id", "seq"),
        Index("ix_audit_event_tenant_time", "tenant_id", "occurred_at", "seq"),
        # the event log viewer pages newest first within one filter value (migration e001)
        Index("ix_audit_event_tenant_category_time", "tenant_id", "category", "occurred_at", "seq"),
        Index("ix_audit_event_tenant_action_time", "tenant_id", "action", "occurred_at", "seq"),
        Index("ix_audit_event_tenant_actor_time", "tenant_id", "actor_id", "occurred_at", "seq"),
        Index("ix_audit_event_tenant_target_time", "tenant_id", "target_id", "occurred_at", "seq"),
    )

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    tenant_id: uuid.UUID = Field(foreign_key="tenant.id")
    seq: int
    occurred_at: datetime = created_field()
    category: str = Field(max_length=20)
    action: str = Field(max_length=60)
    outcome: str = Field(default="success", max_length=20)
    actor_type: str = Field(default="", max_length=20)
    actor_id: str = Field(default="", max_length=40)
    actor_label: str = Field(default="", max_length=100)
    target_type: str = Field(default="", max_length=40)
    target_id: str = Field(default="", max_length=80)
    request_id: str = Field(default="", max_length=40)
    client_addr: str = Field(default="", max_length=64)
    user_agent: str = Field(default="", max_length=300)
    details: str = "{}"
    details_enc: str = ""
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64)


class AuditChainHead(SQLModel, table=True):
    """One row per tenant; writers lock it so the chain never forks."""

    __tablename__ = "audit_chain_head"

    tenant_id: uuid.UUID = Field(foreign_key="tenant.id", primary_key=True)
    seq: int = 0
    hash: str = Field(default="0" * 64, max_length=64)


class AuditCheckpoint(SQLModel, table=True):
    """A signed (seq, hash) of a tenant's chain: a later rewrite or truncation cannot match it."""

    __tablename__ = "audit_checkpoint"
    __table_args__ = (UniqueConstraint("tenant_id", "seq"),)

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    tenant_id: uuid.UUID = Field(foreign_key="tenant.id")
    seq: int
    hash: str = Field(max_length=64)
    signed_at: datetime = created_field()
    key_id: str = Field(max_length=16)
    signature: str = Field(max_length=100)


class AuditPurgeGuard(SQLModel, table=True):
    """Which rows the retention purge may delete, written and removed inside the purge's own
    transaction; the delete trigger on audit_event refuses every row no guard covers (e001)."""

    __tablename__ = "audit_purge_guard"

    tenant_id: uuid.UUID = Field(foreign_key="tenant.id", primary_key=True)
    boundary_seq: int
    cutoff: datetime = created_field()
