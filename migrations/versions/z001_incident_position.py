"""The incident map (#22): an incident's position (sealed), where it came from, and the state of
the geocoder's lookup

Revision ID: z001
Revises: y005
Create Date: 2026-12-10

The position is sealed with the brigade's data key like the place (core/personal.py registers
incident.position); existing incidents start with none ("") and no lookup.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import models.base

revision: str = "z001"
down_revision: str | None = "y005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("incident") as batch:
        batch.add_column(sa.Column("position_enc", sa.Text(), nullable=False, server_default=""))
        batch.add_column(
            sa.Column("position_source", sa.String(length=20), nullable=False, server_default="")
        )
        batch.add_column(
            sa.Column("position_lookup", sa.String(length=20), nullable=False, server_default="")
        )
        batch.add_column(
            sa.Column("position_checked_at", models.base.UTCDateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("incident") as batch:
        batch.drop_column("position_checked_at")
        batch.drop_column("position_lookup")
        batch.drop_column("position_source")
        batch.drop_column("position_enc")
