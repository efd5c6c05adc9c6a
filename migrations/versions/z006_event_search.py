"""An index for the event log's free-text search (#19: 270-293 ms per page at 100k events)

Revision ID: z006
Revises: z005
Create Date: 2026-12-07

The viewer matches its keyword case-insensitively as a substring of six non-personal columns
(services/event_search.py). The index below holds those columns joined into one text, so a
match in any column is a match in the joined text: the index narrows the candidates and the
service still applies the exact per-column test, so results do not change.

PostgreSQL: a pg_trgm GIN index on the joined text. CREATE EXTENSION runs as the migration
owner; pg_trgm is a trusted extension (PostgreSQL 13+), so an owner with CREATE on the database
may create it without being a superuser. Downgrade drops the index and the function but leaves
the extension: other objects, or the administrator, may use it. Under row-level security an
index serves only leakproof operators, and ILIKE is not one: the application role's query
would scan every event of its tenant. So one SECURITY DEFINER function, owned by the table's
owner and executable by the application role alone, answers the seqs of the transaction's
tenant (app.tenant_id, as the policy reads it) whose joined text matches a pattern; the
service reads those events under row-level security as before. It is plpgsql with EXECUTE so
each pattern is planned for itself (a rare word by the index, a common one by a scan), without
JIT (a look-up lasts milliseconds; compiling one costed high took 0.6-1 s here). A
non-superuser owner is bound by FORCE as well, so it gets a SELECT-only policy of its own, as
v002 gave the sign-in look-ups.

SQLite: an FTS5 table with the trigram tokenizer, contentless (the text is audit_event's own),
kept by triggers on audit_event: a row of audit_event_search_row gives each event (tenant, seq)
the FTS rowid, an INTEGER PRIMARY KEY so VACUUM never renumbers it (audit_event's own rowid is
implicit, and VACUUM may renumber those). audit_event is append-only (no UPDATE trigger
needed); a purge's DELETE removes the event's index entry with the same text it was indexed
with. A batch (copy-and-rename) alteration of audit_event would drop these triggers, as it
would drop e001's: alter it with plain operations, or recreate them.
"""

import os
from collections.abc import Sequence

from alembic import op

revision: str = "z006"
down_revision: str | None = "z005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = ("action", "target_type", "target_id", "actor_label", "request_id", "details")
PG_INDEX = "ix_audit_event_search_trgm"
FTS = "audit_event_search"
ROWS = "audit_event_search_row"
FUNCTION = "audit_event_search"
TENANT = "NULLIF(current_setting('app.tenant_id', true), '')::uuid"


def app_role() -> str:
    role = os.environ.get("HIKESHI_APP_DB_ROLE", "hikeshi_app")
    if not role.replace("_", "").isalnum():
        raise ValueError(f"invalid HIKESHI_APP_DB_ROLE {role!r}")
    return role


def body(prefix: str = "") -> str:
    """The joined text of an event (prefix "NEW." or "OLD." inside a trigger)."""
    return " || ' ' || ".join(f"{prefix}{c}" for c in COLUMNS)


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        op.execute(f"CREATE INDEX {PG_INDEX} ON audit_event USING gin (({body()}) gin_trgm_ops)")
        _postgres_function(app_role())
        return
    op.execute(
        f"CREATE TABLE {ROWS} (id INTEGER PRIMARY KEY, tenant_id CHAR(32) NOT NULL, "
        "seq INTEGER NOT NULL, UNIQUE (tenant_id, seq))"
    )
    op.execute(f"CREATE VIRTUAL TABLE {FTS} USING fts5(body, content='', tokenize='trigram')")
    op.execute(f"INSERT INTO {ROWS} (tenant_id, seq) SELECT tenant_id, seq FROM audit_event")
    op.execute(
        f"INSERT INTO {FTS} (rowid, body) SELECT r.id, {body('e.')} FROM {ROWS} r "
        "JOIN audit_event e ON e.tenant_id = r.tenant_id AND e.seq = r.seq"
    )
    op.execute(
        f"CREATE TRIGGER audit_event_search_insert AFTER INSERT ON audit_event BEGIN "
        f"INSERT INTO {ROWS} (tenant_id, seq) VALUES (NEW.tenant_id, NEW.seq); "
        f"INSERT INTO {FTS} (rowid, body) VALUES (last_insert_rowid(), {body('NEW.')}); END"
    )
    op.execute(
        f"CREATE TRIGGER audit_event_search_delete AFTER DELETE ON audit_event BEGIN "
        f"INSERT INTO {FTS} ({FTS}, rowid, body) SELECT 'delete', id, {body('OLD.')} "
        f"FROM {ROWS} WHERE tenant_id = OLD.tenant_id AND seq = OLD.seq; "
        f"DELETE FROM {ROWS} WHERE tenant_id = OLD.tenant_id AND seq = OLD.seq; END"
    )


def _postgres_function(role: str) -> None:
    query = (
        f"SELECT seq FROM public.audit_event WHERE tenant_id = {TENANT} AND ({body()}) ILIKE $1"
    ).replace("'", "''")
    op.execute(
        f"""
        CREATE FUNCTION {FUNCTION}(p_pattern text) RETURNS SETOF integer
        LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public, pg_temp SET jit = off
        ROWS 100
        AS $$ BEGIN RETURN QUERY EXECUTE '{query}' USING p_pattern; END $$
        """
    )
    op.execute(f"REVOKE ALL ON FUNCTION {FUNCTION}(text) FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION {FUNCTION}(text) TO {role}")
    op.execute("CREATE POLICY event_search ON audit_event FOR SELECT TO CURRENT_USER USING (true)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP POLICY IF EXISTS event_search ON audit_event")
        op.execute(f"DROP FUNCTION IF EXISTS {FUNCTION}(text)")
        op.execute(f"DROP INDEX IF EXISTS {PG_INDEX}")
        return
    op.execute("DROP TRIGGER IF EXISTS audit_event_search_delete")
    op.execute("DROP TRIGGER IF EXISTS audit_event_search_insert")
    op.execute(f"DROP TABLE IF EXISTS {FTS}")
    op.execute(f"DROP TABLE IF EXISTS {ROWS}")
