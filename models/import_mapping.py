"""Saved column mappings of the import page: how a brigade's own spreadsheet layout maps onto
ours, kept under a name so the next import of the same kind of file needs no mapping step."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, UniqueConstraint
from sqlmodel import Field, SQLModel

from models.base import created_field, new_id


class ImportMapping(SQLModel, table=True):
    __tablename__ = "import_mapping"
    __table_args__ = (UniqueConstraint("tenant_id", "entity", "name"),)

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    tenant_id: uuid.UUID = Field(foreign_key="tenant.id", index=True)
    entity: str = Field(max_length=30)  # "water_sources"
    name: str = Field(max_length=60)
    mapping: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_by: str = Field(default="", max_length=100)  # the actor's audit label
    created_at: datetime = created_field()
    updated_at: datetime = created_field()
