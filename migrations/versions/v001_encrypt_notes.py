"""Member 備考 and water inspection notes stored encrypted

Revision ID: v001
Revises: u001
Create Date: 2026-12-07

member.notes held health, family and work details (休団（療養）, 看護師) in clear, and
water_inspection.notes what inspectors wrote (#16). Each becomes notes_enc, sealed like every other
personal field: AES-256-GCM under the brigade's active data key, bound to tenant, column and row
(services/crypto.py). Existing notes are encrypted here, so the master keys
(HIKESHI_MASTER_KEYS) must be configured whenever a brigade has members or inspection notes. As
elsewhere, every member stores a sealed value even for empty notes, and an inspection stores ""
for no notes. A brigade whose keys were destroyed (crypto-shredded) keeps no notes: its other
fields are unreadable already.

SQLite cannot add a NOT NULL column without a default, and rebuilding the member table to drop
one is refused inside the migration's transaction (other tables' foreign keys point at it), so
there the new columns keep a default of ''; the application always writes them.
"""

import uuid
from collections.abc import Iterator, Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op
from sqlalchemy.engine import Connection

revision: str = "v001"
down_revision: str | None = "u001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (table, clear column's length, whether an empty note is sealed too)
TABLES = (("member", 2000, True), ("water_inspection", 1000, False))


def _table(name: str, column: str) -> sa.TableClause:
    return sa.table(
        name,
        sa.column("id", sa.Uuid()),
        sa.column("tenant_id", sa.Uuid()),
        sa.column(column, sa.String()),
    )


def _tenants(conn: Connection) -> Iterator[uuid.UUID]:
    """Each brigade in turn, with PostgreSQL's row-level security opened to it alone (a schema
    owner that is no superuser is bound by FORCE too); closed again for the migrations after."""
    tenant = sa.table("tenant", sa.column("id", sa.Uuid()))
    for tenant_id in conn.execute(sa.select(tenant.c.id)).scalars().all():
        _act_for(conn, str(tenant_id))
        yield tenant_id
    _act_for(conn, "")


def _act_for(conn: Connection, tenant_id: str) -> None:
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT set_config('app.tenant_id', :tid, true)"), {"tid": tenant_id})


def _add(table: str, name: str, column_type: sa.types.TypeEngine) -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.add_column(table, sa.Column(name, column_type, nullable=False, server_default=""))
    else:
        op.add_column(table, sa.Column(name, column_type, nullable=True))


def _require(table: str, name: str) -> None:
    if op.get_bind().dialect.name != "sqlite":
        op.alter_column(table, name, nullable=False)


def _convert(source: str, target: str, *, seal: bool) -> None:
    """Every brigade's values of `source` written to `target`, sealed or opened on the way."""
    # The project's one AEAD and key handling, imported only when a migration runs this.
    from sqlmodel import Session

    from services.crypto import TenantCipher

    conn = op.get_bind()
    keys = sa.table("tenant_key", sa.column("tenant_id", sa.Uuid()))
    with Session(bind=conn, join_transaction_mode="rollback_only") as session:
        for tenant_id in _tenants(conn):
            shredded = not conn.execute(
                sa.select(sa.func.count()).select_from(keys).where(keys.c.tenant_id == tenant_id)
            ).scalar_one()
            cipher = TenantCipher(session, tenant_id)
            for table, _, seal_empty in TABLES:
                read, write = _table(table, source), _table(table, target)
                field = f"{table}.notes"
                rows = conn.execute(
                    sa.select(read.c.id, read.c[source]).where(read.c.tenant_id == tenant_id)
                ).all()
                updates = []
                for row_id, value in rows:
                    stored = ""
                    if seal and (value or seal_empty) and not shredded:
                        stored = cipher.encrypt(value, field=field, row_id=row_id)
                    elif not seal and value and not shredded:
                        stored = cipher.decrypt(value, field=field, row_id=row_id)
                    updates.append({"row_id": row_id, "value": stored})
                if updates:
                    conn.execute(
                        sa.update(write)
                        .where(write.c.id == sa.bindparam("row_id"))
                        .values({target: sa.bindparam("value")}),
                        updates,
                    )


def upgrade() -> None:
    for table, _, _ in TABLES:
        _add(table, "notes_enc", sqlmodel.sql.sqltypes.AutoString())
    _convert("notes", "notes_enc", seal=True)
    for table, _, _ in TABLES:
        _require(table, "notes_enc")
        op.drop_column(table, "notes")


def downgrade() -> None:
    for table, length, _ in TABLES:
        _add(table, "notes", sqlmodel.sql.sqltypes.AutoString(length=length))
    _convert("notes_enc", "notes", seal=False)
    for table, _, _ in TABLES:
        _require(table, "notes")
        op.drop_column(table, "notes_enc")
