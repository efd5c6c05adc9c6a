"""The job worker's records and the monitoring read (#23: jobs without cron, /readyz, metrics)

Revision ID: z007
Revises: z006
Create Date: 2026-12-07

job_run (one row per scheduled job: last start, success, error; the lease of the run in
progress) and worker_heartbeat (one row per running `cli.py worker`) are platform tables: they
hold no brigade's data, so they carry no tenant_id and no row-level security. The application
role reads and writes them (the worker runs as that role; /readyz reads them); it may DELETE
only heartbeats (a stopped worker's row), never job records.

PostgreSQL: the metrics endpoint needs counts across every brigade (live sessions, the oldest
unhandled mail and outbox row, LINE calls of the last hour), which row-level security hides from
the application role. One SECURITY DEFINER function, owned by the tables' owner and executable
by the application role alone, returns those aggregates and nothing else: no row, no id, no
brigade. The owner is bound by FORCE too, so inbound_mail gets a SELECT-only policy for the
owner (user_session, line_outbox and audit_event have one from v002, y001 and z006).
"""

import os
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import models.base

revision: str = "z007"
down_revision: str | None = "z006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

METRICS_FUNCTION = "monitoring_counts"
ARGS = "timestamptz, timestamptz, timestamptz"


def app_role() -> str:
    role = os.environ.get("HIKESHI_APP_DB_ROLE", "hikeshi_app")
    if not role.replace("_", "").isalnum():
        raise ValueError(f"invalid HIKESHI_APP_DB_ROLE {role!r}")
    return role


def upgrade() -> None:
    time = models.base.UTCDateTime(timezone=True)
    op.create_table(
        "job_run",
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("last_start", time, nullable=True),
        sa.Column("last_success", time, nullable=True),
        sa.Column("last_error_at", time, nullable=True),
        sa.Column("last_error", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("runs", sa.Integer(), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("lease_owner", sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
        sa.Column("lease_until", time, nullable=True),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "worker_heartbeat",
        sa.Column("worker_id", sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
        sa.Column("host", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", time, nullable=False),
        sa.Column("seen_at", time, nullable=False),
        sa.PrimaryKeyConstraint("worker_id"),
    )
    if op.get_bind().dialect.name != "postgresql":
        return
    role = app_role()
    op.execute(f"GRANT SELECT, INSERT, UPDATE ON job_run TO {role}")
    op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON worker_heartbeat TO {role}")
    op.execute("CREATE POLICY monitoring ON inbound_mail FOR SELECT TO CURRENT_USER USING (true)")
    # LINE calls per brigade through its (tenant_id, category, occurred_at) index: a scan of
    # the whole event log at every scrape would grow with it
    op.execute(
        f"""
        CREATE FUNCTION {METRICS_FUNCTION}(
            p_now timestamptz, p_idle_after timestamptz, p_since timestamptz
        ) RETURNS TABLE (name text, label text, value double precision)
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
        AS $$
            SELECT 'active_sessions', '', count(*)::double precision FROM public.user_session
             WHERE revoked_at IS NULL AND expires_at > p_now AND last_seen_at > p_idle_after
            UNION ALL
            SELECT 'intake_lag_seconds', '',
                   coalesce(extract(epoch FROM p_now - min(received_at)), 0)::double precision
              FROM public.inbound_mail WHERE status = 'received'
            UNION ALL
            SELECT 'outbox_lag_seconds', '',
                   coalesce(extract(epoch FROM p_now - min(CASE WHEN status = 'pending'
                       THEN next_attempt_at ELSE claimed_until END)), 0)::double precision
              FROM public.line_outbox
             WHERE (status = 'pending' AND next_attempt_at <= p_now)
                OR (status = 'sending' AND claimed_until <= p_now)
            UNION ALL
            SELECT 'external_calls', e.target_type || ' ' || e.outcome,
                   count(*)::double precision
              FROM public.tenant t
              CROSS JOIN LATERAL (
                  SELECT a.target_type, a.outcome FROM public.audit_event a
                   WHERE a.tenant_id = t.id AND a.category = 'external'
                     AND a.occurred_at >= p_since
              ) e
             GROUP BY e.target_type, e.outcome
        $$
        """
    )
    op.execute(f"REVOKE ALL ON FUNCTION {METRICS_FUNCTION}({ARGS}) FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION {METRICS_FUNCTION}({ARGS}) TO {role}")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP FUNCTION IF EXISTS {METRICS_FUNCTION}({ARGS})")
        op.execute("DROP POLICY IF EXISTS monitoring ON inbound_mail")
        role = app_role()
        for table in ("worker_heartbeat", "job_run"):
            op.execute(f"REVOKE ALL ON {table} FROM {role}")
    op.drop_table("worker_heartbeat")
    op.drop_table("job_run")
