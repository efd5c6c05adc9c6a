"""Platform notices: maintenance, updates and incidents announced to every brigade

Revision ID: n001
Revises: m001
Create Date: 2026-11-26

maintenance_notice is a platform table (no tenant_id, so no row-level security): every signed-in
user reads it, the operator writes it. The application role may read, add and withdraw (update)
notices, never delete them.
"""

import os
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import models.base

revision: str = "n001"
down_revision: str | None = "m001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def app_role() -> str:
    role = os.environ.get("HIKESHI_APP_DB_ROLE", "hikeshi_app")
    if not role.replace("_", "").isalnum():
        raise ValueError(f"invalid HIKESHI_APP_DB_ROLE {role!r}")
    return role


def upgrade() -> None:
    op.create_table(
        "maintenance_notice",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("title", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("body", sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=False),
        sa.Column("starts_at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("ends_at", models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("published_at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("published_by", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("withdrawn_at", models.base.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"GRANT SELECT, INSERT, UPDATE ON maintenance_notice TO {app_role()}")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"REVOKE ALL ON maintenance_notice FROM {app_role()}")
    op.drop_table("maintenance_notice")
