"""Water registry: supply and override fields, inspections, per-brigade water-map settings

Revision ID: w001
Revises: 0002
Create Date: 2026-11-26

water_source gains the continuous-supply figures (毎分1m³以上・40分以上) and the reason of a manual
基準/参考 override. water_inspection keeps each 点検 (the inspector as a member id or an encrypted
name). brigade_settings holds the coverage radius and the brigade's area (tenant_id is its key).
PostgreSQL: both new tables are granted to the application role and get forced row-level
security with the tenant policy of 0002.
"""

import os
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import models.base

revision: str = "w001"
down_revision: str | None = "l001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NEW_TABLES = ("water_inspection", "brigade_settings")
POLICY = "tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid"


def app_role() -> str:
    role = os.environ.get("HIKESHI_APP_DB_ROLE", "hikeshi_app")
    if not role.replace("_", "").isalnum():
        raise ValueError(f"invalid HIKESHI_APP_DB_ROLE {role!r}")
    return role


def upgrade() -> None:
    with op.batch_alter_table("water_source") as batch_op:
        batch_op.add_column(sa.Column("supply_m3_per_min", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("supply_minutes", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column(
                "grade_override_reason",
                sqlmodel.sql.sqltypes.AutoString(length=200),
                nullable=False,
                server_default="",
            )
        )
    op.create_table(
        "water_inspection",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("water_source_id", sa.Uuid(), nullable=False),
        sa.Column("inspected_on", sa.Date(), nullable=False),
        sa.Column("inspector_member_id", sa.Uuid(), nullable=True),
        sa.Column("inspector_name_enc", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("result", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("notes", sqlmodel.sql.sqltypes.AutoString(length=1000), nullable=False),
        sa.Column("created_at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenant.id"]),
        sa.ForeignKeyConstraint(["water_source_id"], ["water_source.id"]),
        sa.ForeignKeyConstraint(["inspector_member_id"], ["member.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_water_inspection_tenant_id", "water_inspection", ["tenant_id"])
    op.create_index(
        "ix_water_inspection_source", "water_inspection", ["tenant_id", "water_source_id"]
    )
    op.create_table(
        "brigade_settings",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("coverage_radius_m", sa.Integer(), nullable=False),
        sa.Column("unit_coverage_radii", sa.JSON(), nullable=False),
        sa.Column("area_center_lat", sa.Float(), nullable=True),
        sa.Column("area_center_lon", sa.Float(), nullable=True),
        sa.Column("area_radius_km", sa.Float(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenant.id"]),
        sa.PrimaryKeyConstraint("tenant_id"),
    )
    if op.get_bind().dialect.name == "postgresql":
        _postgres_upgrade(app_role())


def _postgres_upgrade(role: str) -> None:
    for table in NEW_TABLES:
        op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO {role}")
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY tenant_isolation ON {table} USING ({POLICY}) WITH CHECK ({POLICY})"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in NEW_TABLES:
            op.execute(f"DROP POLICY IF EXISTS tenant_isolation ON {table}")
            op.execute(f"REVOKE ALL ON {table} FROM {app_role()}")
    op.drop_table("brigade_settings")
    op.drop_index("ix_water_inspection_source", table_name="water_inspection")
    op.drop_index("ix_water_inspection_tenant_id", table_name="water_inspection")
    op.drop_table("water_inspection")
    with op.batch_alter_table("water_source") as batch_op:
        batch_op.drop_column("grade_override_reason")
        batch_op.drop_column("supply_minutes")
        batch_op.drop_column("supply_m3_per_min")
