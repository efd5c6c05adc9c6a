"""Each brigade's own limits for safe bulk changes (#17: "default 10 rows or 10 %")

Revision ID: z005
Revises: z004
Create Date: 2026-12-06

Two columns of brigade_settings with the former constants as their defaults; a brigade
without a settings row keeps the defaults (services/bulk_guard.py DEFAULT).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "z005"
down_revision: str | None = "z004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = ("bulk_confirm_rows", "bulk_confirm_percent")


def upgrade() -> None:
    with op.batch_alter_table("brigade_settings") as batch:
        for name in COLUMNS:
            batch.add_column(sa.Column(name, sa.Integer(), nullable=False, server_default="10"))


def downgrade() -> None:
    with op.batch_alter_table("brigade_settings") as batch:
        for name in reversed(COLUMNS):
            batch.drop_column(name)
