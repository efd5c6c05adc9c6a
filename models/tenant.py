from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlalchemy import UniqueConstraint
from sqlmodel import Field, SQLModel

from models.base import created_field, new_id
from models.enums import TenantStatus

PLATFORM_TENANT_ID = uuid.UUID("00000000-0000-0000-0000-000000000000")


class Tenant(SQLModel, table=True):
    """A brigade (消防団). The reserved PLATFORM_TENANT_ID row owns the operator's audit chain."""

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    name: str = Field(max_length=100)
    municipality: str = Field(default="", max_length=100)
    status: str = Field(default=TenantStatus.ACTIVE, max_length=20)
    contract_start: date | None = None
    contract_end: date | None = None
    created_at: datetime = created_field()


class TenantKey(SQLModel, table=True):
    """A tenant's data or blind-index key, wrapped (AES-256-GCM) by a master key."""

    __tablename__ = "tenant_key"
    __table_args__ = (UniqueConstraint("tenant_id", "key_id"),)

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    tenant_id: uuid.UUID = Field(foreign_key="tenant.id", index=True)
    key_id: str = Field(max_length=40)
    purpose: str = Field(max_length=10)
    wrapped: str
    active: bool = True
    created_at: datetime = created_field()
