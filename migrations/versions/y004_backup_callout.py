"""A call-out target restored from a backup belongs to no wave (#21): callout_target.callout_id
may be empty, since a restore brings back who was called and what they answered but not the
waves of LINE messages (services/backup/callouts.py)

Revision ID: y004
Revises: y003
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "y004"
down_revision: str | None = "y003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("callout_target") as batch:
        batch.alter_column("callout_id", existing_type=sa.Uuid(), nullable=True)


def downgrade() -> None:
    """Targets without a wave cannot stay: they are deleted, brigade by brigade, with
    PostgreSQL's row-level security opened to each in turn (FORCE binds the owner too)."""
    conn = op.get_bind()
    tenant = sa.table("tenant", sa.column("id", sa.Uuid()))
    target = sa.table(
        "callout_target", sa.column("tenant_id", sa.Uuid()), sa.column("callout_id", sa.Uuid())
    )
    for tenant_id in conn.execute(sa.select(tenant.c.id)).scalars().all():
        _act_for(conn, str(tenant_id))
        conn.execute(
            sa.delete(target).where(target.c.tenant_id == tenant_id, target.c.callout_id.is_(None))
        )
    _act_for(conn, "")
    with op.batch_alter_table("callout_target") as batch:
        batch.alter_column("callout_id", existing_type=sa.Uuid(), nullable=False)


def _act_for(conn: sa.Connection, tenant_id: str) -> None:
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT set_config('app.tenant_id', :tid, true)"), {"tid": tenant_id})
