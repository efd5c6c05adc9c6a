"""既読 (#22): when a called member first and last opened the incident's page

Revision ID: z002
Revises: z001
Create Date: 2026-12-06

One tenant table under the forced tenant policy; the app role inserts, reads and updates it
(last_read_at), and deletes it with the brigade's data (services/tenant_lifecycle.py).
"""

import os
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import models.base

revision: str = "z002"
down_revision: str | None = "z001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "incident_read"
POLICY = "tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid"


def app_role() -> str:
    role = os.environ.get("HIKESHI_APP_DB_ROLE", "hikeshi_app")
    if not role.replace("_", "").isalnum():
        raise ValueError(f"invalid HIKESHI_APP_DB_ROLE {role!r}")
    return role


def upgrade() -> None:
    op.create_table(
        TABLE,
        *(
            sa.Column(name, sa.Uuid(), nullable=False)
            for name in ("id", "tenant_id", "incident_id", "member_id")
        ),
        sa.Column("first_read_at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_read_at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenant.id"]),
        sa.ForeignKeyConstraint(["incident_id"], ["incident.id"]),
        sa.ForeignKeyConstraint(["member_id"], ["member.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tenant_id", "incident_id", "member_id"),
    )
    if op.get_bind().dialect.name == "postgresql":
        role = app_role()
        # DELETE: a brigade's data is deleted with it after cancellation
        op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {TABLE} TO {role}")
        op.execute(f"ALTER TABLE {TABLE} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {TABLE} FORCE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY tenant_isolation ON {TABLE} USING ({POLICY}) WITH CHECK ({POLICY})"
        )


def downgrade() -> None:
    op.drop_table(TABLE)
