"""Members (団員). Personal fields are stored encrypted; see services/crypto.py."""

from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlalchemy import Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from models.base import created_field, new_id
from models.enums import MemberStatus


class MemberBase(SQLModel):
    member_code: str = Field(max_length=20)
    rank_id: uuid.UUID = Field(foreign_key="rank.id")
    affiliation: str = Field(default="", max_length=100)
    status: str = Field(default=MemberStatus.ACTIVE, max_length=20)
    joined_on: date | None = None


class Member(MemberBase, table=True):
    __table_args__ = (
        UniqueConstraint("tenant_id", "member_code"),
        Index("ix_member_tenant_phone_bidx", "tenant_id", "phone_bidx"),
    )

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    tenant_id: uuid.UUID = Field(foreign_key="tenant.id", index=True)
    name_enc: str
    kana_enc: str
    phone_enc: str
    email_enc: str
    address_enc: str
    notes_enc: str
    phone_bidx: str | None = Field(default=None, max_length=64)
    version: int = 1
    created_at: datetime = created_field()
    updated_at: datetime = created_field()


class MemberRole(SQLModel, table=True):
    __tablename__ = "member_role"

    tenant_id: uuid.UUID = Field(foreign_key="tenant.id", primary_key=True)
    member_id: uuid.UUID = Field(foreign_key="member.id", primary_key=True)
    role_id: uuid.UUID = Field(foreign_key="role.id", primary_key=True)


class MemberCreate(SQLModel):
    member_code: str
    name: str
    kana: str = ""
    rank_id: uuid.UUID
    role_ids: list[uuid.UUID] = []
    affiliation: str = ""
    phone: str = ""
    email: str = ""
    address: str = ""
    joined_on: date | None = None
    notes: str = ""


class MemberUpdate(SQLModel):
    member_code: str | None = None
    name: str | None = None
    kana: str | None = None
    rank_id: uuid.UUID | None = None
    role_ids: list[uuid.UUID] | None = None
    affiliation: str | None = None
    phone: str | None = None
    email: str | None = None
    address: str | None = None
    joined_on: date | None = None
    notes: str | None = None


class MemberPublic(SQLModel):
    id: uuid.UUID
    member_code: str
    name: str
    kana: str
    rank_id: uuid.UUID
    rank_name: str
    rank_position: int
    role_ids: list[uuid.UUID]
    role_names: list[str]
    affiliation: str
    phone: str
    email: str
    address: str
    status: str
    joined_on: date | None
    notes: str
    version: int
    updated_at: datetime
