"""Local password accounts and server-side sessions. Tenant tables under row-level security,
though sign-in finds them before a tenant is known (by login name, by the hash of a session
token: services/signin/owners.py). An operator's account and sessions, and a LINE login bound to
no member yet, belong to PLATFORM_TENANT_ID."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Column
from sqlmodel import Field, SQLModel

from models.base import UTCDateTime, created_field, new_id, optional_time_field


class LocalAccount(SQLModel, table=True):
    __tablename__ = "local_account"

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    login_name: str = Field(max_length=80, unique=True)
    password_hash: str
    is_operator: bool = False
    tenant_id: uuid.UUID | None = Field(default=None, foreign_key="tenant.id", index=True)
    member_id: uuid.UUID | None = Field(default=None, foreign_key="member.id")
    display_name: str = Field(default="", max_length=100)
    failed_logins: int = 0
    locked_until: datetime | None = optional_time_field()
    disabled: bool = False
    created_at: datetime = created_field()


class Session(SQLModel, table=True):
    __tablename__ = "user_session"

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    token_hash: str = Field(max_length=64, unique=True)
    local_account_id: uuid.UUID | None = Field(default=None, foreign_key="local_account.id")
    tenant_id: uuid.UUID | None = Field(default=None, foreign_key="tenant.id", index=True)
    member_id: uuid.UUID | None = Field(default=None, foreign_key="member.id", index=True)
    created_at: datetime = created_field()
    last_seen_at: datetime = created_field()
    expires_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    revoked_at: datetime | None = optional_time_field()
    revoke_reason: str = Field(default="", max_length=40)
    client_addr: str = Field(default="", max_length=64)
    user_agent: str = Field(default="", max_length=300)


class LoginThrottle(SQLModel, table=True):
    """Failed sign-ins counted per login name (known or not) and per client address, shared by
    every server process through the database. The key is an HMAC of the name or address, so
    the table holds neither (#16)."""

    __tablename__ = "login_throttle"

    key: str = Field(primary_key=True, max_length=64)
    failures: int = 0
    window_started_at: datetime = created_field()
    locked_until: datetime | None = optional_time_field()
    reported_at: datetime | None = optional_time_field()  # when the lock was last audited
