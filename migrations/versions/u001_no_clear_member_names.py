"""No clear copy of a member's name on their local account

Revision ID: u001
Revises: t001
Create Date: 2026-12-06

local_account.display_name held the first administrator's full name in clear, beside the
encrypted one on the member (#16). Only operators (who are no brigade's members) keep a display
name; the copies on brigade accounts are blanked. Nothing reads them.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "u001"
down_revision: str | None = "t001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("UPDATE local_account SET display_name = '' WHERE member_id IS NOT NULL")


def downgrade() -> None:
    pass  # the names are not kept anywhere in clear to put back
