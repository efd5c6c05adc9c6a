"""Row-level security on the sign-in tables, with narrow look-ups for sign-in

Revision ID: v002
Revises: v001
Create Date: 2026-12-07

local_account, user_session and line_registration carry a tenant_id but had no row-level
security (#16): with no tenant set, the application role read every password hash and session
and could reset another brigade's lockout. They get ENABLE + FORCE and the tenant policy of 0002.

Rows of no brigade (operators' accounts and sessions, LINE logins not yet bound to a member)
belong to the platform tenant (nil UUID) from now on, so they too are seen only by a transaction
acting for the platform.

Sign-in starts from a secret whose brigade is not known yet. Three SECURITY DEFINER functions,
owned by the migration owner and executable only by the application role, answer just that:
which tenant owns the session of a token hash, the account of a login name, the registration of
a sheet's user id. The caller then sets app.tenant_id and reads the row under row-level
security. A non-superuser owner is bound by FORCE as well, so it gets a SELECT-only policy of
its own for these functions to see the rows.
"""

import os
import uuid
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "v002"
down_revision: str | None = "v001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("local_account", "user_session", "line_registration")
# models.tenant.PLATFORM_TENANT_ID, written out: a migration must not change with the models.
PLATFORM_TENANT_ID = uuid.UUID(int=0)
PLATFORM_ROWS = ("local_account", "user_session")  # line_registration.tenant_id is NOT NULL
POLICY = "tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid"
# function -> (table, key column): each returns the tenant_id of the one row with that key.
LOOKUPS = {
    "signin_session_tenant": ("user_session", "token_hash"),
    "signin_account_tenant": ("local_account", "login_name"),
    "signin_registration_tenant": ("line_registration", "user_id"),
}


def app_role() -> str:
    role = os.environ.get("HIKESHI_APP_DB_ROLE", "hikeshi_app")
    if not role.replace("_", "").isalnum():
        raise ValueError(f"invalid HIKESHI_APP_DB_ROLE {role!r}")
    return role


def _set_tenant(table: str, old: uuid.UUID | None, new: uuid.UUID | None) -> None:
    """Bound parameters, so the UUID is stored as each dialect stores it (hex text on SQLite)."""
    column = sa.column("tenant_id", sa.Uuid())
    rows = sa.table(table, column)
    where = column.is_(None) if old is None else column == old
    op.get_bind().execute(sa.update(rows).where(where).values(tenant_id=new))


def upgrade() -> None:
    for table in PLATFORM_ROWS:
        _set_tenant(table, None, PLATFORM_TENANT_ID)
    if op.get_bind().dialect.name == "postgresql":
        _postgres_upgrade(app_role())


def _postgres_upgrade(role: str) -> None:
    for table in TABLES:
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY tenant_isolation ON {table} USING ({POLICY}) WITH CHECK ({POLICY})"
        )
        op.execute(
            f"CREATE POLICY signin_lookup ON {table} FOR SELECT TO CURRENT_USER USING (true)"
        )
    for function, (table, key) in LOOKUPS.items():
        op.execute(
            f"""
            CREATE FUNCTION {function}(p_key text) RETURNS uuid
            LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
            AS $$ SELECT tenant_id FROM public.{table} WHERE {key} = p_key $$
            """
        )
        op.execute(f"REVOKE ALL ON FUNCTION {function}(text) FROM PUBLIC")
        op.execute(f"GRANT EXECUTE ON FUNCTION {function}(text) TO {role}")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for function in LOOKUPS:
            op.execute(f"DROP FUNCTION IF EXISTS {function}(text)")
        for table in TABLES:
            op.execute(f"DROP POLICY IF EXISTS signin_lookup ON {table}")
            op.execute(f"DROP POLICY IF EXISTS tenant_isolation ON {table}")
            op.execute(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY")
            op.execute(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")
    for table in PLATFORM_ROWS:
        _set_tenant(table, PLATFORM_TENANT_ID, None)
