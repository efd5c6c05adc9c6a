"""Signed audit checkpoints, protected like the audit log itself

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27

audit_checkpoint holds Ed25519-signed (seq, hash) pairs of each tenant's chain. PostgreSQL: forced
row-level security with the tenant policy of 0002, the application role may only SELECT and
INSERT, and the append-only trigger function of 0002 refuses UPDATE, DELETE and TRUNCATE even for
the owner. SQLite: triggers refuse UPDATE and DELETE.
"""

import os
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import models.base

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

POLICY = "tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid"


def app_role() -> str:
    role = os.environ.get("HIKESHI_APP_DB_ROLE", "hikeshi_app")
    if not role.replace("_", "").isalnum():
        raise ValueError(f"invalid HIKESHI_APP_DB_ROLE {role!r}")
    return role


def upgrade() -> None:
    op.create_table(
        "audit_checkpoint",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("signed_at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("key_id", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("signature", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenant.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tenant_id", "seq"),
    )
    if op.get_bind().dialect.name == "postgresql":
        _postgres_upgrade(app_role())
    else:
        _sqlite_upgrade()


def _postgres_upgrade(role: str) -> None:
    op.execute(f"GRANT SELECT, INSERT ON audit_checkpoint TO {role}")
    op.execute("ALTER TABLE audit_checkpoint ENABLE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE audit_checkpoint FORCE ROW LEVEL SECURITY")
    op.execute(
        f"CREATE POLICY tenant_isolation ON audit_checkpoint USING ({POLICY}) WITH CHECK ({POLICY})"
    )
    op.execute(
        "CREATE TRIGGER audit_checkpoint_append_only BEFORE UPDATE OR DELETE ON audit_checkpoint "
        "FOR EACH ROW EXECUTE FUNCTION audit_event_append_only()"
    )
    op.execute(
        "CREATE TRIGGER audit_checkpoint_no_truncate BEFORE TRUNCATE ON audit_checkpoint "
        "FOR EACH STATEMENT EXECUTE FUNCTION audit_event_append_only()"
    )


def _sqlite_upgrade() -> None:
    for operation in ("UPDATE", "DELETE"):
        op.execute(
            f"CREATE TRIGGER audit_checkpoint_no_{operation.lower()} BEFORE {operation} "
            "ON audit_checkpoint BEGIN SELECT RAISE(ABORT, "
            f"'audit_checkpoint is append-only ({operation} refused)'); END"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_checkpoint_no_truncate ON audit_checkpoint")
        op.execute("DROP TRIGGER IF EXISTS audit_checkpoint_append_only ON audit_checkpoint")
        op.execute("DROP POLICY IF EXISTS tenant_isolation ON audit_checkpoint")
        op.execute(f"REVOKE ALL ON audit_checkpoint FROM {app_role()}")
    else:
        op.execute("DROP TRIGGER IF EXISTS audit_checkpoint_no_update")
        op.execute("DROP TRIGGER IF EXISTS audit_checkpoint_no_delete")
    op.drop_table("audit_checkpoint")
