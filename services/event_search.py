"""The event log's free text (white paper 12.4.4; #19: a rare word took 270-293 ms a page at
100k events): a case-insensitive substring of any of six non-personal columns, the keyword's
% and _ matched literally. `matches` is that rule; the index (migration z006) only narrows the
candidates, and every candidate is tested by `matches` again, so the index never changes a
result.

A page is read in steps (services.event_log.read_page). First the newest WINDOWS events the
other filters select are searched in index order, as before the index: a common word fills its
page there, and fewer events than that are all read. Only a page left short reads the
candidates from the index, all of them, and sorts those:

- PostgreSQL: a pg_trgm GIN index on the tenant and the columns joined (the tenant since z008,
  so a look-up reads its own brigade's candidates only). Row-level security lets an index serve
  only leakproof operators, which ILIKE is not, so the application role reaches it through
  audit_event_search(pattern), a SECURITY DEFINER function answering the seqs of the
  transaction's own tenant (app.tenant_id, as the policy reads it).
- SQLite: an FTS5 trigram table, its rowids mapped to (tenant_id, seq) by audit_event_search_row.

A trigram needs three characters: a keyword of one or two (水利, 出動) is looked up in a second
index (migration z008) of every single character and adjacent pair of each column, lowercased as
the database's ILIKE/LIKE fold them: audit_event_search_gram(gram) on PostgreSQL (a GIN index on
audit_event_grams, the same tenant-bound SECURITY DEFINER way), an FTS5 table of the pieces as
hex tokens on SQLite (`gram_token`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Integer,
    String,
    Uuid,
    any_,
    column,
    func,
    literal,
    literal_column,
    or_,
    text,
    tuple_,
)
from sqlalchemy import table as sql_table
from sqlalchemy.orm import aliased
from sqlmodel import Session, select

from models import AuditEvent

COLUMNS = ("action", "target_type", "target_id", "actor_label", "request_id", "details")
TRIGRAM = 3  # characters; a shorter keyword is one of the pieces z008 indexes
# events searched in index order before the index is asked: the newest thousand, and ten
# thousand where the first held at least a tenth of a page (a word of a few percent)
WINDOWS = (1_000, 10_000)
SPARSE = 10

PG_FUNCTION = "audit_event_search"
PG_INDEX = "ix_audit_event_search_trgm"
PG_GRAM_FUNCTION = "audit_event_search_gram"
PG_GRAM_INDEX = "ix_audit_event_search_grams"
FTS_TABLE = "audit_event_search"
FTS_GRAM_TABLE = "audit_event_search_gram"
ROW_TABLE = "audit_event_search_row"
_FTS = sql_table(FTS_TABLE, column("rowid", Integer))
_FTS_GRAMS = sql_table(FTS_GRAM_TABLE, column("rowid", Integer))
_ROWS = sql_table(
    ROW_TABLE, column("id", Integer), column("tenant_id", Uuid()), column("seq", Integer)
)


def pattern(text: str) -> str:
    """The LIKE pattern of a keyword: a substring, with \\ % _ taken literally."""
    return "%" + re.sub(r"([\\%_])", r"\\\1", text) + "%"


def matches(entity: Any, text: str) -> ColumnElement[bool]:
    """Whether an event contains the keyword (the rule the index only narrows)."""
    return or_(*(getattr(entity, name).ilike(pattern(text), escape="\\") for name in COLUMNS))


def newest_first(query: Any, limit: int, entity: Any = AuditEvent) -> Any:
    return query.order_by(entity.occurred_at.desc(), entity.seq.desc()).limit(limit)


def window_edge(structured: Any, window: int) -> Any:
    """The (occurred_at, seq) of the window-th newest event of `structured` (a filtered SELECT
    of AuditEvent without the keyword): the oldest a window reads. No row: fewer events, and
    the scan in index order reads them all."""
    e = AuditEvent
    edge = structured.with_only_columns(e.occurred_at, e.seq)
    return newest_first(edge, 1).offset(window - 1)


def indexed_page(filtered: Any, text: str, dialect: str, limit: int) -> Any:
    """The first `limit` events of `filtered` (every filter applied, the keyword's `matches`
    included), found through the index. The candidates are materialised before they are
    sorted: read in (occurred_at, seq) order instead, a rare word would scan every event.
    On PostgreSQL run it with sorting allowed (`sorting`)."""
    found = filtered.where(_candidates(text, dialect)).cte("found").prefix_with("MATERIALIZED")
    hit = aliased(AuditEvent, found)
    return newest_first(select(hit), limit, hit)


def _candidates(text: str, dialect: str) -> ColumnElement[bool]:
    e = AuditEvent
    short = len(text) < TRIGRAM
    if dialect == "postgresql":
        # an array built once (an InitPlan), looked up by the (tenant_id, seq) key
        look_up = (
            getattr(func, PG_GRAM_FUNCTION)(text)
            if short
            else getattr(func, PG_FUNCTION)(pattern(text))
        )
        return e.seq == any_(func.array(select(look_up).scalar_subquery()))
    if short:
        rowids = select(_FTS_GRAMS.c.rowid).where(
            literal_column(FTS_GRAM_TABLE).op("MATCH")(gram_token(text))
        )
    else:
        phrase = '"' + text.replace('"', '""') + '"'  # one FTS5 string: the keyword as typed
        rowids = select(_FTS.c.rowid).where(literal_column(FTS_TABLE).op("MATCH")(phrase))
    return tuple_(e.tenant_id, e.seq).in_(
        select(_ROWS.c.tenant_id, _ROWS.c.seq).where(_ROWS.c.id.in_(rowids))
    )


def gram_token(text: str) -> ColumnElement[str]:
    """SQLite: the FTS5 query of a keyword of one or two characters, as z008's trigger writes
    its pieces: u (one character) or b (two), then the hex of the UTF-8 of SQLite's lower()."""
    kind = "u" if len(text) == 1 else "b"
    return literal('"' + kind, String) + func.hex(func.lower(literal(text, String))) + '"'


@contextmanager
def sorting(db: Session | Connection, dialect: str) -> Iterator[None]:
    """Sorts allowed on PostgreSQL for a while, whatever event_log.prefer_index_order set: the
    candidates are sorted anyway (no other plan), but with enable_sort off that sort is costed
    as disabled, a cost so high that the query was JIT-compiled (0.6-1 s, measured)."""
    if dialect != "postgresql":
        yield
        return
    was = db.execute(text("SELECT current_setting('enable_sort')")).scalar_one()
    db.execute(text("SET LOCAL enable_sort = on"))
    try:
        yield
    finally:
        db.execute(text("SELECT set_config('enable_sort', :v, true)"), {"v": was})
