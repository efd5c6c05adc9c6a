"""Tenant isolation in depth: row-level security, an application role, an append-only audit log

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26

PostgreSQL: every tenant table gets ENABLE + FORCE ROW LEVEL SECURITY and one policy comparing
tenant_id with the transaction's app.tenant_id. The application role (HIKESHI_APP_DB_ROLE,
default hikeshi_app) owns nothing, is no superuser, has no BYPASSRLS, and may only INSERT and
SELECT audit rows. Both databases get triggers that refuse UPDATE and DELETE on audit_event.
"""

import os
from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TENANT_TABLES = (
    "tenant_key",
    "rank",
    "role",
    "permission",
    "member",
    "member_role",
    "water_source",
    "audit_event",
    "audit_chain_head",
)
PLATFORM_TABLES = ("tenant", "local_account", "user_session")
POLICY = "tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid"


def app_role() -> str:
    role = os.environ.get("HIKESHI_APP_DB_ROLE", "hikeshi_app")
    if not role.replace("_", "").isalnum():
        raise ValueError(f"invalid HIKESHI_APP_DB_ROLE {role!r}")
    return role


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _postgres_upgrade(app_role())
    else:
        _sqlite_upgrade()


def _postgres_upgrade(role: str) -> None:
    op.execute(
        f"""
        DO $$ BEGIN
          IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') THEN
            CREATE ROLE {role} LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
          END IF;
        END $$
        """
    )
    op.execute(f"GRANT USAGE ON SCHEMA public TO {role}")
    for table in TENANT_TABLES + PLATFORM_TABLES:
        if table == "audit_event":
            op.execute(f"GRANT SELECT, INSERT ON audit_event TO {role}")
        else:
            op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO {role}")
    op.execute(f"GRANT SELECT ON alembic_version TO {role}")
    for table in TENANT_TABLES:
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY tenant_isolation ON {table} USING ({POLICY}) WITH CHECK ({POLICY})"
        )
    op.execute(
        """
        CREATE FUNCTION audit_event_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          RAISE EXCEPTION 'audit_event is append-only (% refused)', TG_OP;
        END $$
        """
    )
    op.execute(
        "CREATE TRIGGER audit_event_append_only BEFORE UPDATE OR DELETE ON audit_event "
        "FOR EACH ROW EXECUTE FUNCTION audit_event_append_only()"
    )
    op.execute(
        "CREATE TRIGGER audit_event_no_truncate BEFORE TRUNCATE ON audit_event "
        "FOR EACH STATEMENT EXECUTE FUNCTION audit_event_append_only()"
    )


def _sqlite_upgrade() -> None:
    for operation in ("UPDATE", "DELETE"):
        op.execute(
            f"CREATE TRIGGER audit_event_no_{operation.lower()} BEFORE {operation} ON audit_event "
            f"BEGIN SELECT RAISE(ABORT, 'audit_event is append-only ({operation} refused)'); END"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_event_no_update")
        op.execute("DROP TRIGGER IF EXISTS audit_event_no_delete")
        return
    role = app_role()
    op.execute("DROP TRIGGER IF EXISTS audit_event_no_truncate ON audit_event")
    op.execute("DROP TRIGGER IF EXISTS audit_event_append_only ON audit_event")
    op.execute("DROP FUNCTION IF EXISTS audit_event_append_only()")
    for table in TENANT_TABLES:
        op.execute(f"DROP POLICY IF EXISTS tenant_isolation ON {table}")
        op.execute(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")
    for table in (*TENANT_TABLES, *PLATFORM_TABLES, "alembic_version"):
        op.execute(f"REVOKE ALL ON {table} FROM {role}")
    op.execute(f"REVOKE USAGE ON SCHEMA public FROM {role}")
