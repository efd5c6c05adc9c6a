"""Call-out rules (#21): targeting by incident kind and time of day, neighbouring 分団 for
widening, and the scheduled self-test's hour and last result

Revision ID: y002
Revises: y001
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import models.base

revision: str = "y002"
down_revision: str | None = "y001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("callout_settings") as batch:
        batch.add_column(sa.Column("rules", sa.Text(), nullable=False, server_default="[]"))
        batch.add_column(sa.Column("neighbours", sa.Text(), nullable=False, server_default="{}"))
        batch.add_column(
            sa.Column("selftest_hour", sa.Integer(), nullable=True, server_default="6")
        )
        batch.add_column(
            sa.Column("selftest_last_at", models.base.UTCDateTime(timezone=True), nullable=True)
        )
        batch.add_column(
            sa.Column("selftest_last_error", sa.Text(), nullable=False, server_default="")
        )


def downgrade() -> None:
    with op.batch_alter_table("callout_settings") as batch:
        for name in ("selftest_last_error", "selftest_last_at", "selftest_hour"):
            batch.drop_column(name)
        batch.drop_column("neighbours")
        batch.drop_column("rules")
