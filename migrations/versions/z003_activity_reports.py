"""出動報告 and 出動報酬 (#22): activity reports, their approval steps, the brigade's report
settings, and the two new functions of the permission matrix

Revision ID: z003
Revises: z002
Create Date: 2026-12-06

Three tenant tables under the forced tenant policy. Existing brigades' ranks get the default
levels of 出動報告 and 出動報告の承認 (services/grants.py), as new brigades do; roles keep what
they had (an administrator grants 会計 its 出動報告 管理 on the matrix page).
"""

import os
import uuid
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import models.base

revision: str = "z003"
down_revision: str | None = "z002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TENANT_TABLES = ("report_settings", "activity_report", "report_step")
POLICY = "tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid"
# The defaults of services/grants.py at this revision (frozen here: migrations do not import
# code that later changes). 1 = 閲覧, 2 = 編集, 3 = 管理.
DEFAULT_LEVELS = {
    "reports": {
        "団長": 3,
        "副団長": 3,
        "分団長": 2,
        "副分団長": 2,
        "部長": 1,
        "班長": 1,
        "団員": 1,
    },
    "approvals": {"団長": 2, "副団長": 2, "分団長": 2, "副分団長": 2, "部長": 2, "班長": 2},
}


def app_role() -> str:
    role = os.environ.get("HIKESHI_APP_DB_ROLE", "hikeshi_app")
    if not role.replace("_", "").isalnum():
        raise ValueError(f"invalid HIKESHI_APP_DB_ROLE {role!r}")
    return role


def _text(length: int) -> sqlmodel.sql.sqltypes.AutoString:
    return sqlmodel.sql.sqltypes.AutoString(length=length)


def _time(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, models.base.UTCDateTime(timezone=True), nullable=nullable)


def _sealed(name: str) -> sa.Column:
    return sa.Column(name, sa.Text(), nullable=False, server_default="")


def upgrade() -> None:
    op.create_table(
        "report_settings",
        sa.Column("tenant_id", sa.Uuid(), sa.ForeignKey("tenant.id"), primary_key=True),
        sa.Column("chain", sa.Text(), nullable=False, server_default="[]"),
        _sealed("reward_table"),
        sa.Column("version", sa.Integer(), nullable=False),
        _time("updated_at"),
    )
    op.create_table(
        "activity_report",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("tenant_id", sa.Uuid(), sa.ForeignKey("tenant.id"), nullable=False),
        sa.Column("member_id", sa.Uuid(), sa.ForeignKey("member.id"), nullable=False),
        sa.Column("incident_id", sa.Uuid(), sa.ForeignKey("incident.id"), nullable=True),
        sa.Column("inspection_id", sa.Uuid(), sa.ForeignKey("water_inspection.id"), nullable=True),
        sa.Column("category", _text(20), nullable=False),
        _sealed("activity_enc"),
        _time("started_at", True),
        _time("ended_at", True),
        sa.Column("turned_back", sa.Boolean(), nullable=False),
        sa.Column("false_alarm", sa.Boolean(), nullable=False),
        sa.Column("status", _text(20), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        _sealed("returned_enc"),
        sa.Column("entered_by", _text(100), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        _time("created_at"),
        _time("updated_at"),
        _time("submitted_at", True),
        _time("approved_at", True),
    )
    op.create_index(
        "uq_activity_report_incident_member",
        "activity_report",
        ["tenant_id", "incident_id", "member_id"],
        unique=True,
        sqlite_where=sa.text("incident_id IS NOT NULL"),
        postgresql_where=sa.text("incident_id IS NOT NULL"),
    )
    op.create_index(
        "uq_activity_report_inspection",
        "activity_report",
        ["tenant_id", "inspection_id"],
        unique=True,
        sqlite_where=sa.text("inspection_id IS NOT NULL"),
        postgresql_where=sa.text("inspection_id IS NOT NULL"),
    )
    op.create_index(
        "ix_activity_report_tenant_start", "activity_report", ["tenant_id", "started_at"]
    )
    op.create_index("ix_activity_report_tenant_status", "activity_report", ["tenant_id", "status"])
    op.create_table(
        "report_step",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("tenant_id", sa.Uuid(), sa.ForeignKey("tenant.id"), nullable=False),
        sa.Column("report_id", sa.Uuid(), sa.ForeignKey("activity_report.id"), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("action", _text(20), nullable=False),
        sa.Column("member_id", sa.Uuid(), sa.ForeignKey("member.id"), nullable=True),
        sa.Column("actor_label", _text(100), nullable=False),
        _sealed("comment_enc"),
        _time("at"),
    )
    op.create_index("ix_report_step_report", "report_step", ["tenant_id", "report_id", "at"])
    _grant_by_rank()
    if op.get_bind().dialect.name == "postgresql":
        _postgres_upgrade(app_role())


def _grant_by_rank() -> None:
    bind = op.get_bind()
    rank = sa.table(
        "rank", sa.column("id", sa.Uuid()), sa.column("tenant_id", sa.Uuid()), sa.column("name")
    )
    permission = sa.table(
        "permission",
        sa.column("id", sa.Uuid()),
        sa.column("tenant_id", sa.Uuid()),
        sa.column("subject_type"),
        sa.column("subject_id", sa.Uuid()),
        sa.column("function"),
        sa.column("level", sa.Integer()),
        sa.column("scope"),
    )
    ranks = list(bind.execute(sa.select(rank.c.id, rank.c.tenant_id, rank.c.name)))
    rows = [
        {
            "id": uuid.uuid4(),
            "tenant_id": tenant_id,
            "subject_type": "rank",
            "subject_id": rank_id,
            "function": function,
            "level": levels[name],
            "scope": "",
        }
        for function, levels in DEFAULT_LEVELS.items()
        for rank_id, tenant_id, name in ranks
        if name in levels
    ]
    if rows:
        bind.execute(sa.insert(permission), rows)


def _postgres_upgrade(role: str) -> None:
    for table in TENANT_TABLES:
        op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO {role}")
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY tenant_isolation ON {table} USING ({POLICY}) WITH CHECK ({POLICY})"
        )


def downgrade() -> None:
    op.execute("DELETE FROM permission WHERE function IN ('reports', 'approvals')")
    op.drop_table("report_step")
    op.drop_table("activity_report")
    op.drop_table("report_settings")
