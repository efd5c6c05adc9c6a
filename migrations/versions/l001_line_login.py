"""LINE Login: OIDC transactions, pending LINE logins, registration codes, member ↔ LINE links

Revision ID: l001
Revises: 0002
Create Date: 2026-11-27

line_auth_request, line_pending_login and line_registration are platform tables (looked up
before a brigade is known: by a cookie hash, a session id, a public user id); they get grants but
no row-level security. member_line is tenant data: forced row-level security with the tenant
policy of 0002.
"""

import os
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import models.base

revision: str = "l001"
down_revision: str | None = "e001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TENANT_TABLES = ("member_line",)
PLATFORM_TABLES = ("line_auth_request", "line_pending_login", "line_registration")
POLICY = "tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid"


def app_role() -> str:
    role = os.environ.get("HIKESHI_APP_DB_ROLE", "hikeshi_app")
    if not role.replace("_", "").isalnum():
        raise ValueError(f"invalid HIKESHI_APP_DB_ROLE {role!r}")
    return role


def _string(length: int | None = None) -> sqlmodel.sql.sqltypes.AutoString:
    return sqlmodel.sql.sqltypes.AutoString(length=length)


def _time() -> models.base.UTCDateTime:
    return models.base.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "line_auth_request",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("key_hash", _string(64), nullable=False),
        sa.Column("state", _string(64), nullable=False),
        sa.Column("nonce", _string(64), nullable=False),
        sa.Column("code_verifier", _string(128), nullable=False),
        sa.Column("registration_user_id", _string(20), nullable=False),
        sa.Column("created_at", _time(), nullable=False),
        sa.Column("expires_at", _time(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key_hash"),
    )
    op.create_index(
        op.f("ix_line_auth_request_expires_at"), "line_auth_request", ["expires_at"], unique=False
    )
    op.create_table(
        "line_pending_login",
        sa.Column("session_id", sa.Uuid(), nullable=False),
        sa.Column("stage", _string(20), nullable=False),
        sa.Column("sub_enc", _string(), nullable=False),
        sa.Column("registration_user_id", _string(20), nullable=False),
        sa.Column("failed_codes", sa.Integer(), nullable=False),
        sa.Column("created_at", _time(), nullable=False),
        sa.ForeignKeyConstraint(["session_id"], ["user_session.id"]),
        sa.PrimaryKeyConstraint("session_id"),
    )
    op.create_table(
        "line_registration",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", _string(20), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("member_id", sa.Uuid(), nullable=False),
        sa.Column("code_hash", _string(64), nullable=False),
        sa.Column("issued_at", _time(), nullable=False),
        sa.Column("expires_at", _time(), nullable=False),
        sa.Column("used_at", _time(), nullable=True),
        sa.Column("failed_attempts", sa.Integer(), nullable=False),
        sa.Column("locked_at", _time(), nullable=True),
        sa.ForeignKeyConstraint(["member_id"], ["member.id"]),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenant.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tenant_id", "member_id"),
        sa.UniqueConstraint("user_id"),
    )
    op.create_table(
        "member_line",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("member_id", sa.Uuid(), nullable=False),
        sa.Column("sub_enc", _string(), nullable=False),
        sa.Column("sub_bidx", _string(64), nullable=False),
        sa.Column("linked_at", _time(), nullable=False),
        sa.ForeignKeyConstraint(["member_id"], ["member.id"]),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenant.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tenant_id", "member_id"),
        sa.UniqueConstraint("tenant_id", "sub_bidx"),
    )
    if op.get_bind().dialect.name == "postgresql":
        _postgres_upgrade(app_role())


def _postgres_upgrade(role: str) -> None:
    for table in TENANT_TABLES + PLATFORM_TABLES:
        op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO {role}")
    for table in TENANT_TABLES:
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY tenant_isolation ON {table} USING ({POLICY}) WITH CHECK ({POLICY})"
        )


def downgrade() -> None:
    for table in ("member_line", "line_registration", "line_pending_login"):
        op.drop_table(table)
    op.drop_index(op.f("ix_line_auth_request_expires_at"), table_name="line_auth_request")
    op.drop_table("line_auth_request")
