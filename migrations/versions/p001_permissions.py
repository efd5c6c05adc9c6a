"""Permission scope: a grant may be narrowed to the holder's own 所属

Revision ID: p001
Revises: 0002
Create Date: 2026-11-27

permission.scope is "" (the whole brigade) or "own_unit" (above 閲覧 only for members whose 所属
is the holder's own or lies below it). Existing grants keep the whole brigade. The table already
has row-level security and grants from 0002.
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "p001"
down_revision: str | None = "w001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("permission") as batch_op:
        batch_op.add_column(
            sa.Column(
                "scope",
                sqlmodel.sql.sqltypes.AutoString(length=20),
                nullable=False,
                server_default="",
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("permission") as batch_op:
        batch_op.drop_column("scope")
