"""A LINE login not yet bound to a member keeps LINE's friendship answer (#21), so the link its
registration code makes starts with a known status instead of 「不明」 until the next sign-in

Revision ID: y005
Revises: y004
Create Date: 2026-12-08

line_pending_login is a platform table without row-level security (l001); the application
role's table-wide grants there cover the new columns. Only the answer and when it was asked
are kept, never the access token it was asked with.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import models.base

revision: str = "y005"
down_revision: str | None = "y004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("line_pending_login") as batch:
        batch.add_column(sa.Column("friend", sa.Boolean(), nullable=True))
        batch.add_column(
            sa.Column("friend_at", models.base.UTCDateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("line_pending_login") as batch:
        batch.drop_column("friend_at")
        batch.drop_column("friend")
