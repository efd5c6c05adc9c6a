"""LINE Login: the OIDC transaction, a LINE login not yet bound to a member, registration codes
and the member ↔ LINE account link.

Platform tables (no tenant_id, looked up before a tenant is known): line_auth_request (by the
hash of a cookie value) and line_pending_login (by session id). line_registration is tenant data
under row-level security, found by its public user id through services/signin/owners.py (it
holds no personal data). member_line is tenant data: the LINE user id encrypted for the brigade,
found by a per-brigade blind index.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Column, UniqueConstraint
from sqlmodel import Field, SQLModel

from models.base import UTCDateTime, created_field, new_id, optional_time_field


class LineAuthRequest(SQLModel, table=True):
    """state, nonce and PKCE verifier of one authorization request; single use, short-lived."""

    __tablename__ = "line_auth_request"

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    key_hash: str = Field(max_length=64, unique=True)
    state: str = Field(max_length=64)
    nonce: str = Field(max_length=64)
    code_verifier: str = Field(max_length=128)
    registration_user_id: str = Field(default="", max_length=20)
    created_at: datetime = created_field()
    expires_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False, index=True))


class LinePendingLogin(SQLModel, table=True):
    """A session authenticated by LINE but not (yet) a member's: code entry or brigade choice.
    The LINE user id is encrypted with a platform key derived from the master key."""

    __tablename__ = "line_pending_login"

    session_id: uuid.UUID = Field(foreign_key="user_session.id", primary_key=True)
    stage: str = Field(max_length=20)  # "register" or "choose"
    sub_enc: str
    registration_user_id: str = Field(default="", max_length=20)
    failed_codes: int = 0
    created_at: datetime = created_field()
    # LINE's friendship answer at this login (never the access token), for the link it becomes
    friend: bool | None = None
    friend_at: datetime | None = optional_time_field()


class LineRegistration(SQLModel, table=True):
    """A member's user id and one-time registration code (stored as an HMAC, never in clear)."""

    __tablename__ = "line_registration"
    __table_args__ = (UniqueConstraint("tenant_id", "member_id"),)

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    user_id: str = Field(max_length=20, unique=True)
    tenant_id: uuid.UUID = Field(foreign_key="tenant.id")
    member_id: uuid.UUID = Field(foreign_key="member.id")
    code_hash: str = Field(max_length=64)
    issued_at: datetime = created_field()
    expires_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    used_at: datetime | None = optional_time_field()
    failed_attempts: int = 0
    locked_at: datetime | None = optional_time_field()


class MemberLine(SQLModel, table=True):
    """One LINE account per member and one member per LINE account, within a brigade."""

    __tablename__ = "member_line"
    __table_args__ = (
        UniqueConstraint("tenant_id", "member_id"),
        UniqueConstraint("tenant_id", "sub_bidx"),
    )

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    tenant_id: uuid.UUID = Field(foreign_key="tenant.id")
    member_id: uuid.UUID = Field(foreign_key="member.id")
    sub_enc: str
    sub_bidx: str = Field(max_length=64)
    linked_at: datetime = created_field()
    # models.callout.FriendStatus: whether the official account may message this member
    friend_status: str = Field(default="unknown", max_length=10)
    friend_status_at: datetime | None = optional_time_field()
