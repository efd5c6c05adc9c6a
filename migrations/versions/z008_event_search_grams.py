"""An index of the one- and two-character pieces of the event log's searched text (#19: a keyword
of one or two characters, 水利 or 出動, scanned every event when rare: 0.3-0.7 s at 100k)

Revision ID: z008
Revises: z007
Create Date: 2026-12-07

z006's trigrams need a keyword of three characters. This index holds, for each event, every
single character and every pair of adjacent characters of each of the six searched columns,
lowercased by the database's own lower() (the function ILIKE applies on PostgreSQL; on SQLite
LIKE and lower() both fold ASCII only): a keyword of one or two characters is in a column only
if its lowercase is among that column's pieces. The index narrows candidates as z006's does; the
service applies the exact per-column test to each (services/event_search.py). No personal data:
the columns are z006's, details_enc is not read.

PostgreSQL: a GIN index on the tenant and the array of pieces (audit_event_grams, IMMUTABLE;
GIN keeps each piece once per event), reached by the application role through
audit_event_search_gram(gram), a SECURITY DEFINER function answering the seqs of the
transaction's tenant, as z006's audit_event_search does (same owner policy, plpgsql EXECUTE so
each piece is planned for itself, no JIT). The tenant is in the index (btree_gin, a trusted
extension like pg_trgm, which downgrade leaves as z006 leaves pg_trgm) so that a look-up reads
its own brigade's candidates only: without it, a word every brigade of the database uses had
each brigade's events fetched and then dropped by the tenant test. z006's trigram index is made
again the same way (same name and expression; downgrade makes it as z006 did).

SQLite: an FTS5 table, contentless, detail=none (only which events hold a piece, no positions),
its rowid the event's audit_event_search_row id (z006). A piece is written as a token the ascii
tokenizer keeps whole: 'u' or 'b' then the hex of its UTF-8 bytes. The pieces are listed in the
trigger by json_each over an array as long as the column (SQLite allows no WITH in a trigger).
z006's two triggers are replaced by ones that keep both tables (one trigger each, so the rowid
map row exists before either index is written); downgrade restores z006's.
"""

import os
from collections.abc import Sequence

from alembic import op

revision: str = "z008"
down_revision: str | None = "z007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = ("action", "target_type", "target_id", "actor_label", "request_id", "details")
PG_INDEX = "ix_audit_event_search_grams"
TRIGRAM_INDEX = "ix_audit_event_search_trgm"
GRAMS = "audit_event_grams"
FUNCTION = "audit_event_search_gram"
TRIGRAMS = "audit_event_search"
FTS = "audit_event_search_gram"
ROWS = "audit_event_search_row"
TENANT = "NULLIF(current_setting('app.tenant_id', true), '')::uuid"


def app_role() -> str:
    role = os.environ.get("HIKESHI_APP_DB_ROLE", "hikeshi_app")
    if not role.replace("_", "").isalnum():
        raise ValueError(f"invalid HIKESHI_APP_DB_ROLE {role!r}")
    return role


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _postgres_upgrade(app_role())
        return
    op.execute(
        f"CREATE VIRTUAL TABLE {FTS} USING fts5(pieces, content='', detail=none, "
        "columnsize=0, tokenize='ascii')"
    )
    op.execute(
        f"INSERT INTO {FTS} (rowid, pieces) SELECT r.id, {pieces('e.')} FROM {ROWS} r "
        "JOIN audit_event e ON e.tenant_id = r.tenant_id AND e.seq = r.seq"
    )
    _triggers(with_pieces=True)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP FUNCTION IF EXISTS {FUNCTION}(text)")
        op.execute(f"DROP INDEX IF EXISTS {PG_INDEX}")
        op.execute(f"DROP FUNCTION IF EXISTS {GRAMS}(VARIADIC text[])")
        _trigram_index(with_tenant=False)
        return
    _triggers(with_pieces=False)
    op.execute(f"DROP TABLE IF EXISTS {FTS}")


# --- PostgreSQL ------------------------------------------------------------------------------


def columns() -> str:
    return ", ".join(COLUMNS)


def _postgres_upgrade(role: str) -> None:
    # each character, and each pair of adjacent ones (the two arrays zipped by unnest)
    op.execute(
        f"""
        CREATE FUNCTION {GRAMS}(VARIADIC p_columns text[]) RETURNS text[]
        LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp
        AS $$
          SELECT coalesce(array_agg(g), '{{}}')
          FROM unnest(p_columns) AS c(v), string_to_array(lower(c.v), NULL) AS s(ch),
          LATERAL (
            SELECT unnest(s.ch)
            UNION ALL
            SELECT a || b FROM unnest(s.ch[1 : cardinality(s.ch) - 1], s.ch[2 : cardinality(s.ch)]) AS z(a, b)
          ) AS x(g)
        $$
        """
    )
    # the tenant in each index (btree_gin: GIN over a uuid), so a look-up reads only its own
    # brigade's candidates, not every brigade's of the database before the tenant filter
    op.execute("CREATE EXTENSION IF NOT EXISTS btree_gin")
    op.execute(
        f"CREATE INDEX {PG_INDEX} ON audit_event USING gin (tenant_id, {GRAMS}({columns()}))"
    )
    _trigram_index(with_tenant=True)
    query = (
        f"SELECT seq FROM public.audit_event WHERE tenant_id = {TENANT} "
        f"AND public.{GRAMS}({columns()}) @> ARRAY[lower($1)]"
    ).replace("'", "''")
    op.execute(
        f"""
        CREATE FUNCTION {FUNCTION}(p_gram text) RETURNS SETOF integer
        LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public, pg_temp SET jit = off
        ROWS 100
        AS $$ BEGIN RETURN QUERY EXECUTE '{query}' USING p_gram; END $$
        """
    )
    op.execute(f"REVOKE ALL ON FUNCTION {FUNCTION}(text) FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION {FUNCTION}(text) TO {role}")


def _trigram_index(*, with_tenant: bool) -> None:
    """z006's trigram index made again, with the tenant in front or (downgrade) as z006 made it;
    its name and expression stay, so audit_event_search(pattern) is served as before."""
    tenant = "tenant_id, " if with_tenant else ""
    op.execute(f"DROP INDEX IF EXISTS {TRIGRAM_INDEX}")
    op.execute(
        f"CREATE INDEX {TRIGRAM_INDEX} ON audit_event USING gin ({tenant}({body('')}) gin_trgm_ops)"
    )


# --- SQLite ----------------------------------------------------------------------------------


def body(prefix: str) -> str:
    """z006's joined text of an event (prefix "NEW." or "OLD." inside a trigger)."""
    return " || ' ' || ".join(f"{prefix}{c}" for c in COLUMNS)


def pieces(prefix: str) -> str:
    """The tokens of an event's pieces: per column, for each character, 'u' and its hex and 'b'
    and the hex of it and the next (the last character's 'b' token is itself alone: harmless,
    a keyword of two characters never asks for it)."""
    lowered = " UNION ALL ".join(f"SELECT lower({prefix}{c}) AS v" for c in COLUMNS)
    positions = (
        "json_each('[' || substr(replace(hex(zeroblob(length(c.v))), '00', ',0'), 2) || ']')"
    )
    return (
        "(SELECT group_concat('u' || hex(substr(c.v, j.key + 1, 1)) || ' b' "
        "|| hex(substr(c.v, j.key + 1, 2)), ' ') "
        f"FROM ({lowered}) AS c, {positions} AS j)"
    )


def _triggers(*, with_pieces: bool) -> None:
    op.execute("DROP TRIGGER IF EXISTS audit_event_search_insert")
    op.execute("DROP TRIGGER IF EXISTS audit_event_search_delete")
    row = f"(SELECT id FROM {ROWS} WHERE tenant_id = NEW.tenant_id AND seq = NEW.seq)"
    old_row = f"SELECT id FROM {ROWS} WHERE tenant_id = OLD.tenant_id AND seq = OLD.seq"
    insert_pieces = (
        f"INSERT INTO {FTS} (rowid, pieces) VALUES ({row}, {pieces('NEW.')}); "
        if with_pieces
        else ""
    )
    delete_pieces = (
        f"INSERT INTO {FTS} ({FTS}, rowid, pieces) SELECT 'delete', id, {pieces('OLD.')} "
        f"FROM ({old_row}); "
        if with_pieces
        else ""
    )
    op.execute(
        f"CREATE TRIGGER audit_event_search_insert AFTER INSERT ON audit_event BEGIN "
        f"INSERT INTO {ROWS} (tenant_id, seq) VALUES (NEW.tenant_id, NEW.seq); "
        f"INSERT INTO {TRIGRAMS} (rowid, body) VALUES (last_insert_rowid(), {body('NEW.')}); "
        f"{insert_pieces}END"
    )
    op.execute(
        f"CREATE TRIGGER audit_event_search_delete AFTER DELETE ON audit_event BEGIN "
        f"INSERT INTO {TRIGRAMS} ({TRIGRAMS}, rowid, body) SELECT 'delete', id, {body('OLD.')} "
        f"FROM ({old_row}); "
        f"{delete_pieces}"
        f"DELETE FROM {ROWS} WHERE tenant_id = OLD.tenant_id AND seq = OLD.seq; END"
    )
