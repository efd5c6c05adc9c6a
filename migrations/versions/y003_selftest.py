"""The call-out's scheduled self-test (#21): which brigades have one due or running

Revision ID: y003
Revises: y002
Create Date: 2026-12-07

No tables change. The worker asks, before any brigade is known, which brigades are due for
their daily self-test or have one running; on PostgreSQL one SECURITY DEFINER function answers
that with tenant ids only, never what the brigades hold (as dispatch_due_tenants of y001).
services.dispatch.selftest.due_tenants asks the same of SQLite in Python; both are tested.
"""

import os
from collections.abc import Sequence

from alembic import op

revision: str = "y003"
down_revision: str | None = "y002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DUE_FUNCTION = "dispatch_selftest_due"
SELFTEST_NUMBER = 0  # services.dispatch.incidents.SELFTEST_NUMBER, written out


def app_role() -> str:
    role = os.environ.get("HIKESHI_APP_DB_ROLE", "hikeshi_app")
    if not role.replace("_", "").isalnum():
        raise ValueError(f"invalid HIKESHI_APP_DB_ROLE {role!r}")
    return role


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    role = app_role()
    # the function runs as the owner, whom FORCE binds too: read-only policies of its own, on
    # incident only for the self-test's row
    op.execute(
        "CREATE POLICY dispatch_selftest ON callout_settings FOR SELECT TO CURRENT_USER "
        "USING (true)"
    )
    op.execute(
        "CREATE POLICY dispatch_selftest ON incident FOR SELECT TO CURRENT_USER "
        f"USING (test AND number = {SELFTEST_NUMBER})"
    )
    # The brigade's last slot is the latest JST time at its hour not after p_now: the day of
    # (now - hour) at that hour. A brigade without a settings row has the default hour; a NULL
    # hour in a row is off.
    op.execute(
        f"""
        CREATE FUNCTION {DUE_FUNCTION}(p_now timestamptz, p_default_hour integer)
        RETURNS SETOF uuid
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
        AS $$
          WITH brigade AS (
            SELECT t.id AS tenant_id, s.selftest_last_at AS last_at,
                   CASE WHEN s.tenant_id IS NULL THEN p_default_hour
                        ELSE s.selftest_hour END AS hour
            FROM public.tenant t LEFT JOIN public.callout_settings s ON s.tenant_id = t.id
            WHERE t.status = 'active'
          )
          SELECT tenant_id FROM brigade
          WHERE hour IS NOT NULL
            AND (last_at IS NULL OR last_at < (
                  date_trunc('day', (p_now AT TIME ZONE 'Asia/Tokyo') - make_interval(hours => hour))
                  + make_interval(hours => hour)) AT TIME ZONE 'Asia/Tokyo')
          UNION
          SELECT tenant_id FROM public.incident WHERE test AND number = {SELFTEST_NUMBER}
        $$
        """
    )
    op.execute(f"REVOKE ALL ON FUNCTION {DUE_FUNCTION}(timestamptz, integer) FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION {DUE_FUNCTION}(timestamptz, integer) TO {role}")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(f"DROP FUNCTION IF EXISTS {DUE_FUNCTION}(timestamptz, integer)")
    op.execute("DROP POLICY IF EXISTS dispatch_selftest ON incident")
    op.execute("DROP POLICY IF EXISTS dispatch_selftest ON callout_settings")
