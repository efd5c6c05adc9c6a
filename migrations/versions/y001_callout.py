"""The call-out on LINE (#21): call-out settings, waves, targets, answers, the outbox, the
webhook inbox, LINE friendship per linked member, and test incidents

Revision ID: y001
Revises: x001
Create Date: 2026-12-06

Five tenant tables under the forced tenant policy. line_webhook_event is a platform table (an
event arrives before any brigade is known; its content is sealed with a platform key). Senders
and timers find the brigades with work due through one SECURITY DEFINER function that answers
only which tenants have outbox rows or call-out timers due, never what they hold.
"""

import os
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import models.base

revision: str = "y001"
down_revision: str | None = "x001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TENANT_TABLES = ("callout_settings", "callout", "callout_target", "callout_answer", "line_outbox")
DUE_FUNCTION = "dispatch_due_tenants"
POLICY = "tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid"


def app_role() -> str:
    role = os.environ.get("HIKESHI_APP_DB_ROLE", "hikeshi_app")
    if not role.replace("_", "").isalnum():
        raise ValueError(f"invalid HIKESHI_APP_DB_ROLE {role!r}")
    return role


def _text(length: int) -> sqlmodel.sql.sqltypes.AutoString:
    return sqlmodel.sql.sqltypes.AutoString(length=length)


def _time(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, models.base.UTCDateTime(timezone=True), nullable=nullable)


def _ids(*names: str) -> list[sa.Column]:
    return [sa.Column(name, sa.Uuid(), nullable=False) for name in names]


def upgrade() -> None:
    with op.batch_alter_table("incident") as batch:
        batch.add_column(sa.Column("test", sa.Boolean(), nullable=False, server_default=sa.false()))
    with op.batch_alter_table("member_line") as batch:
        batch.add_column(
            sa.Column("friend_status", _text(10), nullable=False, server_default="unknown")
        )
        batch.add_column(_time("friend_status_at", True))
    op.create_table(
        "callout_settings",
        *_ids("tenant_id"),
        sa.Column("auto_callout", sa.Boolean(), nullable=False),
        sa.Column("reminder_minutes", sa.Integer(), nullable=False),
        sa.Column("crew_minimum", sa.Integer(), nullable=False),
        sa.Column("leader_rank_position", sa.Integer(), nullable=False),
        sa.Column("no_units_target", _text(10), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        _time("updated_at"),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenant.id"]),
        sa.PrimaryKeyConstraint("tenant_id"),
    )
    op.create_table(
        "callout",
        *_ids("id", "tenant_id", "incident_id"),
        sa.Column("kind", _text(20), nullable=False),
        sa.Column("units", sa.Text(), nullable=False),
        sa.Column("recipients", sa.Integer(), nullable=False),
        sa.Column("messages_enc", sa.Text(), nullable=False),
        _time("escalate_at", True),
        sa.Column("actor_label", _text(100), nullable=False),
        _time("created_at"),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenant.id"]),
        sa.ForeignKeyConstraint(["incident_id"], ["incident.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_callout_incident", "callout", ["tenant_id", "incident_id", "created_at"])
    op.create_index("ix_callout_escalate", "callout", ["escalate_at"])
    op.create_table(
        "callout_target",
        *_ids("id", "tenant_id", "incident_id", "member_id", "callout_id"),
        sa.Column("unit", _text(100), nullable=False),
        sa.Column("leader", sa.Boolean(), nullable=False),
        sa.Column("notified", sa.Boolean(), nullable=False),
        _time("reminded_at", True),
        _time("created_at"),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenant.id"]),
        sa.ForeignKeyConstraint(["incident_id"], ["incident.id"]),
        sa.ForeignKeyConstraint(["member_id"], ["member.id"]),
        sa.ForeignKeyConstraint(["callout_id"], ["callout.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tenant_id", "incident_id", "member_id"),
    )
    op.create_table(
        "callout_answer",
        *_ids("id", "tenant_id", "incident_id", "member_id"),
        sa.Column("answer", _text(20), nullable=False),
        sa.Column("eta_minutes", sa.Integer(), nullable=True),
        sa.Column("via", _text(10), nullable=False),
        sa.Column("actor_label", _text(100), nullable=False),
        _time("at"),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenant.id"]),
        sa.ForeignKeyConstraint(["incident_id"], ["incident.id"]),
        sa.ForeignKeyConstraint(["member_id"], ["member.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_callout_answer_incident", "callout_answer", ["tenant_id", "incident_id", "at"]
    )
    op.create_table(
        "line_outbox",
        *_ids("id", "tenant_id", "callout_id"),
        sa.Column("chunk", sa.Integer(), nullable=False),
        sa.Column("member_ids", sa.Text(), nullable=False),
        sa.Column("retry_key", _text(36), nullable=False),
        sa.Column("status", _text(10), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        _time("next_attempt_at"),
        _time("claimed_until", True),
        sa.Column("request_id", _text(64), nullable=False),
        sa.Column("last_status", sa.Integer(), nullable=True),
        sa.Column("error", _text(60), nullable=False),
        _time("created_at"),
        _time("sent_at", True),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenant.id"]),
        sa.ForeignKeyConstraint(["callout_id"], ["callout.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tenant_id", "callout_id", "chunk"),
    )
    op.create_index("ix_line_outbox_due", "line_outbox", ["status", "next_attempt_at"])
    op.create_table(
        "line_webhook_event",
        sa.Column("event_id", _text(64), nullable=False),
        _time("received_at"),
        sa.Column("status", _text(10), nullable=False),
        sa.Column("event_enc", sa.Text(), nullable=True),
        _time("handled_at", True),
        sa.PrimaryKeyConstraint("event_id"),
    )
    op.create_index(
        "ix_line_webhook_event_pending", "line_webhook_event", ["status", "received_at"]
    )
    if op.get_bind().dialect.name == "postgresql":
        _postgres_upgrade(app_role())


def _postgres_upgrade(role: str) -> None:
    for table in TENANT_TABLES:
        op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO {role}")
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY tenant_isolation ON {table} USING ({POLICY}) WITH CHECK ({POLICY})"
        )
    op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON line_webhook_event TO {role}")
    # the function runs as the owner, whom FORCE binds too: read-only policies of its own
    for table in ("line_outbox", "callout"):
        op.execute(f"CREATE POLICY dispatch_due ON {table} FOR SELECT TO CURRENT_USER USING (true)")
    op.execute(
        f"""
        CREATE FUNCTION {DUE_FUNCTION}(p_now timestamptz) RETURNS SETOF uuid
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
        AS $$ SELECT tenant_id FROM public.line_outbox
              WHERE (status = 'pending' AND next_attempt_at <= p_now)
                 OR (status = 'sending' AND claimed_until <= p_now)
              UNION
              SELECT tenant_id FROM public.callout WHERE escalate_at <= p_now $$
        """
    )
    op.execute(f"REVOKE ALL ON FUNCTION {DUE_FUNCTION}(timestamptz) FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION {DUE_FUNCTION}(timestamptz) TO {role}")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP FUNCTION IF EXISTS {DUE_FUNCTION}(timestamptz)")
    op.drop_table("line_webhook_event")
    for table in reversed(TENANT_TABLES):
        op.drop_table(table)
    with op.batch_alter_table("member_line") as batch:
        batch.drop_column("friend_status_at")
        batch.drop_column("friend_status")
    with op.batch_alter_table("incident") as batch:
        batch.drop_column("test")
