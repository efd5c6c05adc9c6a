"""The event log's free text through the search indexes (services/event_search.py, migrations
z006 and z008): the same events as the plain scan (ILIKE on six columns) for every kind of
keyword, one and two characters included, on both databases; other brigades' events never found;
on PostgreSQL the trigram index serves a keyword of three characters or more, the index of
pieces one of one or two, under row-level security."""

from __future__ import annotations

import uuid
from dataclasses import replace

import pytest
from sqlalchemy import Engine, text
from sqlmodel import select

from core.actor import RequestContext
from models import AuditEvent
from models.enums import AuditCategory, Function, Level
from services import audit, event_log, event_search
from services.base import scoped
from services.db import unit_of_work
from services.event_log import EventFilter
from tests.factories import actor_with, make_tenant

# (action, target_type, target_id, details) of the corpus; actor_label and request_id vary too
CORPUS = [
    ("member.update", "member", "M-0001", {"memo": "水利点検 済み"}),
    ("member.create", "member", "m-0002", {"memo": "出動 H-0001"}),
    ("water_source.update", "water_source", "H-0001", {"memo": "防火水槽 100%_ok"}),
    ("water_source.update", "water_source", "h-0001x", {"memo": "50%引き a_b a\\b"}),
    ("mail.receive", "mail", "", {"subject": 'He said "quote" ＡＢＣ'}),
    ("login.success", "", "", {"memo": "ａｂｃ Straße 火災 Élan"}),
    ("event_log.view", "", "", {"filters": {"text": 3}}),
    ("external.call", "line", "", {"memo": "a%b a_c 100%%"}),
]
FOREIGN = ("member.update", "member", "M-0001", {"memo": "よその団だけ foreign-only"})
KEYWORDS = [
    "水利点検",  # Japanese, three characters or more: the index
    "防火水槽 100",
    "水利",  # one or two characters: z008's pieces
    "出動",
    "火",
    "槽",
    "水槽",
    "x",
    "X",
    "Ｂ",
    "ｂ",
    "ß",
    "ẞ",
    "h-",
    "M-",
    "0x",
    "0%",
    "%_",
    "\\b",
    '"',
    '"q',
    "é",
    "É",
    "{",
    "H-0001",  # ASCII codes, case-insensitive
    "h-000",
    "M-000",
    "MEMBER.UPD",
    "member",
    "100%_OK",  # LIKE metacharacters are literal
    "100%%",
    "%",
    "_",
    "a_b",
    "a_c",
    "a%b",
    "50%",
    "\\",
    "a\\b",
    '"quote"',  # an FTS5 phrase's quote
    'said \\"quote',
    'd "q',
    "ＡＢＣ",  # full-width: SQLite's LIKE folds ASCII only, PostgreSQL's folds these too
    "ａｂｃ",
    "STRASSE",
    "straße",
    "req-a",  # request_id
    "tester-",  # actor_label
    "absent-word-zzz",
    "foreign-only",  # another brigade's event
    '{"text": 3}',
]


def viewer(tenant_id: uuid.UUID, n: int):
    actor = actor_with(tenant_id, {Function.EVENT_LOGS: Level.VIEW})
    actor = actor.with_request(RequestContext(request_id=f"req-a{n}", client_addr="10.0.0.1"))
    return replace(actor, label=f"tester-{n}")


def record(tenant_id: uuid.UUID, corpus, rounds: int = 1) -> None:
    with unit_of_work(tenant_id) as session:
        for n in range(rounds):
            for action, target_type, target_id, details in corpus:
                audit.record(
                    session,
                    viewer(tenant_id, n),
                    category=AuditCategory.OPERATION,
                    action=action,
                    target_type=target_type,
                    target_id=target_id,
                    details=details,
                )
        session.commit()


@pytest.fixture
def brigades(engine) -> tuple[uuid.UUID, uuid.UUID]:
    mine, other = make_tenant(), make_tenant()
    record(mine, CORPUS, rounds=2)
    record(other, [*CORPUS, FOREIGN])
    return mine, other


def scanned(tenant_id: uuid.UUID, filters: EventFilter) -> list[int]:
    """Every match by the plain scan: ILIKE on the six columns, as before the index."""
    with unit_of_work(tenant_id) as session:
        query = scoped(select(AuditEvent), viewer(tenant_id, 0))
        return [e.seq for e in session.exec(event_log.page_query(query, filters, None, 1000))]


def searched(tenant_id: uuid.UUID, filters: EventFilter, page_size: int = 200) -> list[int]:
    """Every match through the service, page by page."""
    seqs, cursor = [], None
    while True:
        page = event_log.query_events(
            viewer(tenant_id, 0), filters, cursor=cursor, page_size=page_size, record_view=False
        )
        seqs += [e.seq for e in page.events]
        if page.next_cursor is None:
            return seqs
        cursor = page.next_cursor


def test_the_index_finds_what_the_scan_finds(brigades, monkeypatch):
    """Every keyword through the index (the newest-events window made one event, so a page is
    never filled before the index is asked), keywords of one and two characters included."""
    mine, other = brigades
    monkeypatch.setattr(event_search, "WINDOWS", (1,))
    for tenant_id, keywords in ((mine, KEYWORDS), (other, ["foreign-only", "member", "H-0001"])):
        for keyword in keywords:
            filters = EventFilter(text=keyword)
            assert searched(tenant_id, filters) == scanned(tenant_id, filters), keyword


def test_keywords_find_their_events(brigades):
    """The equality above is not vacuous: the corpus answers as a reader expects."""
    mine, other = brigades

    def actions(tenant_id, keyword) -> list[str]:
        with unit_of_work(tenant_id) as session:
            return [
                session.exec(
                    select(AuditEvent.action).where(
                        AuditEvent.tenant_id == tenant_id, AuditEvent.seq == seq
                    )
                ).one()
                for seq in searched(tenant_id, EventFilter(text=keyword))
            ]

    assert actions(mine, "水利点検") == ["member.update"] * 2
    assert actions(mine, "h-0001") == ["water_source.update"] * 2 + ["member.create"] * 1 + [
        "water_source.update"
    ] * 2 + ["member.create"]
    assert actions(mine, "100%_OK") == ["water_source.update"] * 2
    assert actions(mine, "a_b") == ["water_source.update"] * 2
    assert actions(mine, '"quote"') == []  # details are JSON: the quote is escaped there
    assert actions(mine, 'said \\"quote') == ["mail.receive"] * 2
    assert actions(mine, "foreign-only") == []
    assert actions(other, "foreign-only") == ["member.update"]
    assert actions(mine, "absent-word-zzz") == []


def test_other_filters_and_pages_across_the_recent_window(brigades, monkeypatch):
    """Pages of two cross the newest events searched in index order (WINDOWS, made 3 and 6
    here) into the index's candidates: every match once, in order, as the scan has them."""
    mine, _ = brigades
    monkeypatch.setattr(event_search, "WINDOWS", (3, 6))
    for filters in (
        EventFilter(text="update"),
        EventFilter(text="0001"),
        EventFilter(text="ber", actions=("member.create", "member.update")),
        EventFilter(text="tester-1", target_type="water_source"),
        EventFilter(text="水利点検", categories=("auth",)),
    ):
        assert searched(mine, filters, page_size=2) == scanned(mine, filters)


def test_the_export_searches_the_same_way(brigades):
    mine, _ = brigades
    export = event_log.export_events(viewer(mine, 0), EventFilter(text="H-0001"))
    assert export.rows == len(scanned(mine, EventFilter(text="H-0001"))) == 6


@pytest.fixture
def postgres(engine) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("pg_trgm and row-level security are PostgreSQL's")


def test_the_look_up_function_answers_for_the_transactions_brigade_only(postgres, engine):
    mine, other = make_tenant(), make_tenant()
    record(other, [FOREIGN])
    with engine.connect() as conn, conn.begin():
        search = text("SELECT count(*) FROM audit_event_search(:p)")
        gram = text("SELECT count(*) FROM audit_event_search_gram(:g)")
        assert conn.execute(search, {"p": "%"}).scalar_one() == 0  # no brigade set
        assert conn.execute(gram, {"g": "{"}).scalar_one() == 0
        for tenant_id, found in ((mine, 0), (other, 1)):
            conn.execute(
                text("SELECT set_config('app.tenant_id', :t, true)"), {"t": str(tenant_id)}
            )
            assert conn.execute(search, {"p": "%foreign-only%"}).scalar_one() == found
            assert conn.execute(gram, {"g": "よそ"}).scalar_one() == found
            assert conn.execute(gram, {"g": "F"}).scalar_one() == found


def bulk(owner: Engine, tenant_id: uuid.UUID, count: int) -> None:
    """count events written straight in, every 500th with the rare words (hashes unchained:
    the search does not read them)."""
    with owner.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO audit_event (id, tenant_id, seq, occurred_at, category, action,"
                " outcome, actor_type, actor_id, actor_label, target_type, target_id,"
                " request_id, client_addr, user_agent, details, details_enc, prev_hash, hash)"
                " SELECT gen_random_uuid(), :t, 1000 + n,"
                " '2026-01-01'::timestamptz + n * interval '1 minute', 'operation',"
                " 'member.update', 'success', 'member', '', 'M-' || (n % 50), 'member',"
                " gen_random_uuid()::text, '', '', '',"
                ' CASE WHEN n % 500 = 0 THEN \'{"memo": "水利点検 H-0001"}\''
                " ELSE '{\"memo\": \"更新 ' || n || '\"}' END, '', :h, :h"
                " FROM generate_series(0, :c - 1) AS n"
            ),
            {"t": tenant_id, "c": count, "h": "0" * 64},
        )
        # as autovacuum would: the index's pending entries merged, the statistics taken
        for index in (event_search.PG_INDEX, event_search.PG_GRAM_INDEX):
            conn.execute(text("SELECT gin_clean_pending_list(CAST(:i AS regclass))"), {"i": index})
        conn.execute(text("ANALYZE audit_event"))


@pytest.mark.parametrize(
    ("keywords", "index"),
    [
        (("水利点検", "h-0001"), event_search.PG_INDEX),
        (("水利", "検", "h-", "H"), event_search.PG_GRAM_INDEX),
    ],
)
def test_the_indexes_serve_a_rare_word(postgres, engine, owner_engine, keywords, index):
    """Japanese and an ASCII code, read as the application role under row-level security: the
    trigram index (z006), or for one or two characters the index of pieces (z008), is scanned
    (removing it, or reading without the look-up, fails this)."""
    tenant_id = make_tenant()
    bulk(owner_engine, tenant_id, 1000)
    query = scoped(select(AuditEvent), viewer(tenant_id, 0))
    for keyword in keywords:
        with engine.connect() as conn, conn.begin():
            conn.execute(
                text("SELECT set_config('app.tenant_id', :t, true)"), {"t": str(tenant_id)}
            )
            event_log.prefer_index_order(conn)
            found = event_log.read_page(conn, query, EventFilter(text=keyword), None, 51)
            scans = conn.execute(
                text("SELECT pg_stat_get_xact_numscans(CAST(:i AS regclass))"), {"i": index}
            ).scalar_one()
        assert [r.seq for r in found] == [1000 + n for n in range(500, -1, -500)], keyword
        assert scans >= 1, keyword


def test_the_index_holds_japanese_words_under_this_databases_locale(postgres, engine):
    """pg_trgm takes its word characters from the database's LC_CTYPE: under one that does not
    count kanji as letters, a Japanese keyword would get no trigrams and scan the index whole."""
    with engine.connect() as conn:
        assert conn.execute(text("SELECT show_trgm('水利点検')")).scalar_one() != []
