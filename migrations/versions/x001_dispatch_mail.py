"""Dispatch mail: mail sources, received mail, incidents and their timeline (#20)

Revision ID: x001
Revises: v002
Create Date: 2026-12-06

Four tenant tables under the forced tenant policy. A mail arriving at the SMTP receiver names
its brigade only through the secret part of its address: one SECURITY DEFINER function answers
which tenant and source own an address hash, and nothing else, so routing needs no read of
another brigade's sources. Existing brigades get the default grants of the new 災害出動
function by rank name (団長・副団長 管理, 分団長・副分団長 編集, the rest 閲覧).
"""

import os
import uuid
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import models.base

revision: str = "x001"
down_revision: str | None = "v002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NEW_TABLES = ("mail_source", "incident", "inbound_mail", "incident_entry")
POLICY = "tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid"
ROUTE_FUNCTION = "dispatch_mail_route"
# Written out: a migration must not change with services/grants.py.
DEFAULT_LEVELS = {
    "団長": 3,
    "副団長": 3,
    "分団長": 2,
    "副分団長": 2,
    "部長": 1,
    "班長": 1,
    "団員": 1,
}


def app_role() -> str:
    role = os.environ.get("HIKESHI_APP_DB_ROLE", "hikeshi_app")
    if not role.replace("_", "").isalnum():
        raise ValueError(f"invalid HIKESHI_APP_DB_ROLE {role!r}")
    return role


def _text(length: int) -> sqlmodel.sql.sqltypes.AutoString:
    return sqlmodel.sql.sqltypes.AutoString(length=length)


def _time(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, models.base.UTCDateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "mail_source",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("name", _text(100), nullable=False),
        sa.Column("transport", _text(10), nullable=False),
        sa.Column("address_token_enc", sa.Text(), nullable=True),
        sa.Column("address_hash", _text(64), nullable=True),
        sa.Column("senders", sa.Text(), nullable=False),
        sa.Column("dkim_required", sa.Boolean(), nullable=False),
        sa.Column("charset_override", _text(40), nullable=False),
        sa.Column("profile", sa.Text(), nullable=False),
        sa.Column("followup_window_minutes", sa.Integer(), nullable=False),
        sa.Column("raw_retention_days", sa.Integer(), nullable=False),
        sa.Column("imap_host", _text(200), nullable=False),
        sa.Column("imap_port", sa.Integer(), nullable=False),
        sa.Column("imap_ssl", sa.Boolean(), nullable=False),
        sa.Column("imap_username", _text(200), nullable=False),
        sa.Column("imap_password_enc", sa.Text(), nullable=True),
        sa.Column("imap_folder", _text(100), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        _time("created_at"),
        _time("updated_at"),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenant.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tenant_id", "name"),
        sa.UniqueConstraint("tenant_id", "address_hash"),
    )
    op.create_index("ix_mail_source_tenant_id", "mail_source", ["tenant_id"])
    op.create_table(
        "incident",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("source_id", sa.Uuid(), nullable=True),
        sa.Column("status", _text(20), nullable=False),
        sa.Column("needs_review", sa.Boolean(), nullable=False),
        sa.Column("review_reasons", sa.Text(), nullable=False),
        sa.Column("kind", _text(200), nullable=False),
        sa.Column("reference", _text(200), nullable=False),
        sa.Column("units", sa.Text(), nullable=False),
        sa.Column("place_approximate", sa.Boolean(), nullable=False),
        sa.Column("place_enc", sa.Text(), nullable=False),
        sa.Column("landmark_enc", sa.Text(), nullable=False),
        sa.Column("map_url_enc", sa.Text(), nullable=False),
        sa.Column("subject_enc", sa.Text(), nullable=False),
        _time("occurred_at", True),
        _time("mail_date", True),
        _time("received_at", True),
        _time("created_at"),
        _time("updated_at"),
        _time("closed_at", True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenant.id"]),
        sa.ForeignKeyConstraint(["source_id"], ["mail_source.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tenant_id", "number"),
    )
    op.create_index("ix_incident_tenant_reference", "incident", ["tenant_id", "reference"])
    op.create_index("ix_incident_tenant_created", "incident", ["tenant_id", "created_at"])
    op.create_table(
        "inbound_mail",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("source_id", sa.Uuid(), nullable=False),
        sa.Column("transport", _text(10), nullable=False),
        _time("received_at"),
        _time("processed_at", True),
        sa.Column("status", _text(20), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("sha256", _text(64), nullable=False),
        sa.Column("message_key", _text(64), nullable=False),
        sa.Column("message_id", _text(300), nullable=False),
        _time("mail_date", True),
        sa.Column("dkim", _text(10), nullable=False),
        sa.Column("decode_status", _text(20), nullable=False),
        sa.Column("parse_status", _text(20), nullable=False),
        sa.Column("problems", sa.Text(), nullable=False),
        sa.Column("envelope_enc", sa.Text(), nullable=False),
        sa.Column("raw_enc", sa.Text(), nullable=True),
        _time("raw_expires_at"),
        sa.Column("incident_id", sa.Uuid(), nullable=True),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenant.id"]),
        sa.ForeignKeyConstraint(["source_id"], ["mail_source.id"]),
        sa.ForeignKeyConstraint(["incident_id"], ["incident.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_inbound_mail_tenant_message", "inbound_mail", ["tenant_id", "message_key"])
    op.create_index("ix_inbound_mail_tenant_received", "inbound_mail", ["tenant_id", "received_at"])
    op.create_index("ix_inbound_mail_pending", "inbound_mail", ["status", "received_at"])
    op.create_table(
        "incident_entry",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("incident_id", sa.Uuid(), nullable=False),
        _time("at"),
        sa.Column("kind", _text(20), nullable=False),
        sa.Column("summary", _text(500), nullable=False),
        sa.Column("status", _text(20), nullable=False),
        sa.Column("mail_id", sa.Uuid(), nullable=True),
        sa.Column("actor_label", _text(100), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenant.id"]),
        sa.ForeignKeyConstraint(["incident_id"], ["incident.id"]),
        sa.ForeignKeyConstraint(["mail_id"], ["inbound_mail.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_incident_entry_incident", "incident_entry", ["tenant_id", "incident_id", "at"]
    )
    _grant_dispatch_by_rank()
    if op.get_bind().dialect.name == "postgresql":
        _postgres_upgrade(app_role())


def _grant_dispatch_by_rank() -> None:
    bind = op.get_bind()
    rank = sa.table(
        "rank", sa.column("id", sa.Uuid()), sa.column("tenant_id", sa.Uuid()), sa.column("name")
    )
    permission = sa.table(
        "permission",
        sa.column("id", sa.Uuid()),
        sa.column("tenant_id", sa.Uuid()),
        sa.column("subject_type"),
        sa.column("subject_id", sa.Uuid()),
        sa.column("function"),
        sa.column("level", sa.Integer()),
        sa.column("scope"),
    )
    rows = [
        {
            "id": uuid.uuid4(),
            "tenant_id": tenant_id,
            "subject_type": "rank",
            "subject_id": rank_id,
            "function": "dispatch",
            "level": DEFAULT_LEVELS[name],
            "scope": "",
        }
        for rank_id, tenant_id, name in bind.execute(
            sa.select(rank.c.id, rank.c.tenant_id, rank.c.name)
        )
        if name in DEFAULT_LEVELS
    ]
    if rows:
        bind.execute(sa.insert(permission), rows)


def _postgres_upgrade(role: str) -> None:
    for table in NEW_TABLES:
        op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO {role}")
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY tenant_isolation ON {table} USING ({POLICY}) WITH CHECK ({POLICY})"
        )
    # the function runs as the owner, whom FORCE binds too: a read-only policy of its own
    op.execute(
        "CREATE POLICY dispatch_route ON mail_source FOR SELECT TO CURRENT_USER USING (true)"
    )
    op.execute(
        f"""
        CREATE FUNCTION {ROUTE_FUNCTION}(p_hash text) RETURNS TABLE (tenant_id uuid, source_id uuid)
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
        AS $$ SELECT tenant_id, id FROM public.mail_source
              WHERE address_hash = p_hash AND active AND transport = 'smtp' $$
        """
    )
    op.execute(f"REVOKE ALL ON FUNCTION {ROUTE_FUNCTION}(text) FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION {ROUTE_FUNCTION}(text) TO {role}")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP FUNCTION IF EXISTS {ROUTE_FUNCTION}(text)")
    op.execute("DELETE FROM permission WHERE function = 'dispatch'")
    for table in reversed(NEW_TABLES):
        op.drop_table(table)
