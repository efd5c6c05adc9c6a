"""Which tenant a sign-in secret belongs to, asked before any tenant is known (#16).

local_account, user_session and line_registration are under row-level security like every
tenant table: a transaction that acts for no tenant sees none of their rows. Sign-in starts from
a secret whose brigade is not known yet (a session token's hash, a login name, the user id on a
registration sheet). On PostgreSQL three SECURITY DEFINER functions (migration v002) answer only
which tenant owns the row with that key; the caller then acts for that tenant and reads or writes
the row itself under row-level security. SQLite has no row-level security, and the same
question is a plain select of the tenant_id column.

Rows of no brigade (operators' accounts and sessions, LINE logins not yet bound to a member)
belong to PLATFORM_TENANT_ID.
"""

from __future__ import annotations

import uuid

from sqlalchemy import Column, select, text
from sqlmodel import Session as DbSession

from models import LineRegistration, LocalAccount, Session
from models.tenant import PLATFORM_TENANT_ID
from services.db import set_tenant


def _owner(db: DbSession, function: str, key: Column, value: str) -> uuid.UUID | None:
    if db.get_bind().dialect.name == "postgresql":
        query = text(f"SELECT {function}(:value)")
    else:
        query = select(key.table.c.tenant_id).where(key == value)
    return db.execute(query, {"value": value}).scalar_one_or_none()


def session_tenant(db: DbSession, token_hash: str) -> uuid.UUID | None:
    return _owner(db, "signin_session_tenant", Session.__table__.c.token_hash, token_hash)


def account_tenant(db: DbSession, login_name: str) -> uuid.UUID | None:
    return _owner(db, "signin_account_tenant", LocalAccount.__table__.c.login_name, login_name)


def registration_tenant(db: DbSession, user_id: str) -> uuid.UUID | None:
    return _owner(db, "signin_registration_tenant", LineRegistration.__table__.c.user_id, user_id)


def act_for(db: DbSession, tenant_id: uuid.UUID | None) -> None:
    """Act for another tenant in the same transaction. Changes made so far are written first,
    under the tenant they were made for (row-level security checks a row when it is written)."""
    db.flush()
    set_tenant(db, tenant_id)


def act_for_platform(db: DbSession) -> None:
    act_for(db, PLATFORM_TENANT_ID)


def brigade_of(tenant_id: uuid.UUID | None) -> uuid.UUID | None:
    """A row's tenant as an Actor carries it: None for the platform's rows."""
    return None if tenant_id == PLATFORM_TENANT_ID else tenant_id
