"""Ranks (階級), roles (役職) and the permission matrix."""

from __future__ import annotations

import uuid

from sqlalchemy import UniqueConstraint
from sqlmodel import Field, SQLModel

from models.base import new_id


class Rank(SQLModel, table=True):
    __table_args__ = (
        UniqueConstraint("tenant_id", "name"),
        UniqueConstraint("tenant_id", "position"),
    )

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    tenant_id: uuid.UUID = Field(foreign_key="tenant.id", index=True)
    name: str = Field(max_length=20)
    position: int


class RoleBase(SQLModel):
    name: str = Field(max_length=40)
    rank_id: uuid.UUID = Field(foreign_key="rank.id")


class Role(RoleBase, table=True):
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    tenant_id: uuid.UUID = Field(foreign_key="tenant.id", index=True)


class Permission(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("tenant_id", "subject_type", "subject_id", "function"),)

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    tenant_id: uuid.UUID = Field(foreign_key="tenant.id", index=True)
    subject_type: str = Field(max_length=10)
    subject_id: uuid.UUID
    function: str = Field(max_length=40)
    level: int = 0
    # "" for the whole brigade; "own_unit": above 閲覧 only for members of the holder's 所属
    scope: str = Field(default="", max_length=20)
