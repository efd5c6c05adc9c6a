"""Login throttling per login name and per client address, shared by every server process

Revision ID: t001
Revises: n001
Create Date: 2026-12-06

login_throttle is a platform table (no tenant_id): it is consulted before anyone is known. Its
key is an HMAC of a login name or a client address, so it holds neither.
"""

import os
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import models.base

revision: str = "t001"
down_revision: str | None = "n001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def app_role() -> str:
    role = os.environ.get("HIKESHI_APP_DB_ROLE", "hikeshi_app")
    if not role.replace("_", "").isalnum():
        raise ValueError(f"invalid HIKESHI_APP_DB_ROLE {role!r}")
    return role


def upgrade() -> None:
    op.create_table(
        "login_throttle",
        sa.Column("key", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("window_started_at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("locked_until", models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("reported_at", models.base.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("key"),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON login_throttle TO {app_role()}")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"REVOKE ALL ON login_throttle FROM {app_role()}")
    op.drop_table("login_throttle")
