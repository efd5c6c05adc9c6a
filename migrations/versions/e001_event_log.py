"""Event log viewer indexes and the retention purge

Revision ID: e001
Revises: 0003
Create Date: 2026-11-28

Indexes (tenant_id, <filter column>, occurred_at, seq) let the viewer page newest first by keyset
within one category, action, actor or target.

Retention (white paper 18.1.3: at least one year): audit_event stays append-only. A DELETE is
refused unless a row of audit_purge_guard for the same tenant covers the row (seq at most the
guard's boundary, occurred_at before its cutoff), and on either database the row must also be
older than 365 days (8760 hours, whatever the time zone) by the database's own clock.
PostgreSQL: only the SECURITY DEFINER function audit_purge(tenant, boundary, cutoff), owned by
the schema owner, writes the guard; the trigger also requires current_user to be the table's
owner, so the application role (no DELETE privilege, read-only on the guard) can delete only by
calling the function. The function refuses another tenant than the transaction's, a cutoff
within 365 days, a boundary that is not a checkpoint matching its row, and any row up to the
boundary that is not older than the cutoff.
SQLite: the purge service writes and removes the guard row in its own transaction.
"""

import os
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import models.base

revision: str = "e001"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

POLICY = "tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid"
INDEXES = {
    "ix_audit_event_tenant_category_time": "category",
    "ix_audit_event_tenant_action_time": "action",
    "ix_audit_event_tenant_actor_time": "actor_id",
    "ix_audit_event_tenant_target_time": "target_id",
}
REFUSED = "audit_event is append-only (DELETE refused)"


def app_role() -> str:
    role = os.environ.get("HIKESHI_APP_DB_ROLE", "hikeshi_app")
    if not role.replace("_", "").isalnum():
        raise ValueError(f"invalid HIKESHI_APP_DB_ROLE {role!r}")
    return role


def upgrade() -> None:
    # plain (not batch) index operations: a batch table copy on SQLite would drop the triggers
    for name, column in INDEXES.items():
        op.create_index(name, "audit_event", ["tenant_id", column, "occurred_at", "seq"])
    op.create_table(
        "audit_purge_guard",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("boundary_seq", sa.Integer(), nullable=False),
        sa.Column("cutoff", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenant.id"]),
        sa.PrimaryKeyConstraint("tenant_id"),
    )
    if op.get_bind().dialect.name == "postgresql":
        _postgres_upgrade(app_role())
    else:
        _sqlite_delete_trigger(guarded=True)


def _postgres_upgrade(role: str) -> None:
    op.execute(f"GRANT SELECT ON audit_purge_guard TO {role}")  # reading it changes nothing
    op.execute("ALTER TABLE audit_purge_guard ENABLE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE audit_purge_guard FORCE ROW LEVEL SECURITY")
    op.execute(
        f"CREATE POLICY tenant_isolation ON audit_purge_guard USING ({POLICY}) WITH CHECK ({POLICY})"
    )
    op.execute(
        f"""
        CREATE FUNCTION audit_event_delete_guard() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          IF current_user = (SELECT pg_get_userbyid(relowner) FROM pg_class WHERE oid = TG_RELID)
             AND OLD.occurred_at < now() - interval '8760 hours'
             AND EXISTS (
               SELECT 1 FROM audit_purge_guard g
               WHERE g.tenant_id = OLD.tenant_id
                 AND OLD.seq <= g.boundary_seq
                 AND OLD.occurred_at < g.cutoff)
          THEN
            RETURN OLD;
          END IF;
          RAISE EXCEPTION '{REFUSED}';
        END $$
        """
    )
    op.execute("DROP TRIGGER audit_event_append_only ON audit_event")
    op.execute(
        "CREATE TRIGGER audit_event_append_only BEFORE UPDATE ON audit_event "
        "FOR EACH ROW EXECUTE FUNCTION audit_event_append_only()"
    )
    op.execute(
        "CREATE TRIGGER audit_event_delete_guard BEFORE DELETE ON audit_event "
        "FOR EACH ROW EXECUTE FUNCTION audit_event_delete_guard()"
    )
    op.execute(
        """
        CREATE FUNCTION audit_purge(p_tenant uuid, p_boundary integer, p_cutoff timestamptz)
        RETURNS integer LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp
        AS $$
        DECLARE
          deleted integer;
        BEGIN
          IF p_tenant IS DISTINCT FROM NULLIF(current_setting('app.tenant_id', true), '')::uuid
          THEN
            RAISE EXCEPTION 'audit purge: % is not the tenant of this transaction', p_tenant;
          END IF;
          IF p_cutoff IS NULL OR p_cutoff > now() - interval '8760 hours' THEN
            RAISE EXCEPTION 'audit purge: cutoff % is within 365 days', p_cutoff;
          END IF;
          IF NOT EXISTS (
            SELECT 1 FROM audit_checkpoint c
            JOIN audit_event e ON e.tenant_id = c.tenant_id AND e.seq = c.seq AND e.hash = c.hash
            WHERE c.tenant_id = p_tenant AND c.seq = p_boundary)
          THEN
            RAISE EXCEPTION 'audit purge: no checkpoint matches the event at seq %', p_boundary;
          END IF;
          IF EXISTS (
            SELECT 1 FROM audit_event
            WHERE tenant_id = p_tenant AND seq <= p_boundary AND occurred_at >= p_cutoff)
          THEN
            RAISE EXCEPTION 'audit purge: events up to seq % are not all before %',
              p_boundary, p_cutoff;
          END IF;
          INSERT INTO audit_purge_guard (tenant_id, boundary_seq, cutoff)
            VALUES (p_tenant, p_boundary, p_cutoff);
          DELETE FROM audit_event WHERE tenant_id = p_tenant AND seq <= p_boundary;
          GET DIAGNOSTICS deleted = ROW_COUNT;
          DELETE FROM audit_purge_guard WHERE tenant_id = p_tenant;
          RETURN deleted;
        END $$
        """
    )
    op.execute("REVOKE ALL ON FUNCTION audit_purge(uuid, integer, timestamptz) FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION audit_purge(uuid, integer, timestamptz) TO {role}")


def _sqlite_delete_trigger(*, guarded: bool) -> None:
    op.execute("DROP TRIGGER IF EXISTS audit_event_no_delete")
    condition = (
        "WHEN NOT EXISTS (SELECT 1 FROM audit_purge_guard g WHERE g.tenant_id = OLD.tenant_id "
        "AND OLD.seq <= g.boundary_seq AND OLD.occurred_at < g.cutoff "
        "AND OLD.occurred_at < datetime('now', '-365 days')) "
        if guarded
        else ""
    )
    op.execute(
        f"CREATE TRIGGER audit_event_no_delete BEFORE DELETE ON audit_event {condition}"
        f"BEGIN SELECT RAISE(ABORT, '{REFUSED}'); END"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS audit_purge(uuid, integer, timestamptz)")
        op.execute("DROP TRIGGER IF EXISTS audit_event_delete_guard ON audit_event")
        op.execute("DROP TRIGGER IF EXISTS audit_event_append_only ON audit_event")
        op.execute(
            "CREATE TRIGGER audit_event_append_only BEFORE UPDATE OR DELETE ON audit_event "
            "FOR EACH ROW EXECUTE FUNCTION audit_event_append_only()"
        )
        op.execute("DROP FUNCTION IF EXISTS audit_event_delete_guard()")
        op.execute("DROP POLICY IF EXISTS tenant_isolation ON audit_purge_guard")
        op.execute(f"REVOKE ALL ON audit_purge_guard FROM {app_role()}")
    else:
        _sqlite_delete_trigger(guarded=False)
    op.drop_table("audit_purge_guard")
    for name in INDEXES:
        op.drop_index(name, table_name="audit_event")
