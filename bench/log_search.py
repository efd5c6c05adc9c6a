"""Event log free-text search at 100,000 events per brigade (#19): the first page for rare,
absent, medium and common words through the search index (services.event_log.read_page) against
the plain scan it replaces (services.event_log.page_query: ILIKE on six columns, in index order)
and against a structured-filter page, all in the same run, on SQLite and PostgreSQL.

    .venv/bin/python bench/log_search.py [--events 100000] [--brigades 2] [--repeat 7]
        [--postgres postgresql://postgres@127.0.0.1:5432/postgres] [--no-sqlite] [--no-postgres]

--events is per brigade. The data are bench/log_query.py's (one year of events per brigade,
Core bulk inserts, the project's migrations, so SQLite's index is filled by its triggers), with
one event in 5,000 carrying a rare Japanese memo, and one in 100 and one in 300 a medium one
(MEDIUM); keywords of one and two characters are measured too (rare, absent, medium, common).
PostgreSQL runs as the application role under row-level security after VACUUM ANALYZE, as the
app reads. Times are wall-clock per page in this process (the service's statements, fetch
included), after one warm-up; ratios are p50 against the structured-filter page of the same run.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import Engine, create_engine, insert, select, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from bench.log_query import APP_ROLE, EVENTS, NOW, brigade_rows, migrate, p, timed  # noqa: E402
from core.actor import system_actor  # noqa: E402
from models import AuditEvent, Tenant  # noqa: E402
from services.base import scoped  # noqa: E402
from services.db import build_engine, normalise_url  # noqa: E402
from services.event_log import EventFilter, page_query, prefer_index_order, read_page  # noqa: E402

PAGE = 50
RARE_EVERY = 5000
RARE_MEMO = "漏水あり 要修理"
MEDIUM = ((100, 50, "断水のため給水"), (300, 101, "凍結"))  # (every, at, memo): 1 %, 0.33 %
BASELINE = "操作=member.update"
CASES = {  # name -> filter; the first is the same-run baseline
    BASELINE: EventFilter(actions=("member.update",)),
    "rare 漏水あり (1 in 5,000)": EventFilter(text="漏水あり"),
    "rare W-0123 (~1 in 35,000)": EventFilter(text="W-0123"),
    "absent 存在しない語": EventFilter(text="存在しない語"),
    "absent zqxj-9": EventFilter(text="zqxj-9"),
    "medium W-01 (0.3%)": EventFilter(text="W-01"),
    "medium member.suspend (1%)": EventFilter(text="member.suspend"),
    "medium login.failure (3%)": EventFilter(text="login.failure"),
    "common member (20%)": EventFilter(text="member"),
    "rare 2 chars 漏水 (1 in 5,000)": EventFilter(text="漏水"),
    "rare 1 char 漏 (1 in 5,000)": EventFilter(text="漏"),
    "absent 2 chars 水利": EventFilter(text="水利"),
    "absent 2 chars zq": EventFilter(text="zq"),
    "absent 1 char 炎": EventFilter(text="炎"),
    "medium 2 chars 断水 (1%)": EventFilter(text="断水"),
    "medium 1 char 凍 (0.33%)": EventFilter(text="凍"),
    "common 2 chars 班長 (20%)": EventFilter(text="班長"),
    "common 1 char 団 (20%)": EventFilter(text="団"),
    "common 2 chars W- (18%)": EventFilter(text="W-"),
}


def rows_with_rare_words(tenant_id: uuid.UUID, count: int, seed: int) -> Iterator[dict]:
    for n, row in enumerate(brigade_rows(tenant_id, count, random.Random(seed))):
        if n % RARE_EVERY == RARE_EVERY // 2:
            row["details"] = json.dumps({"memo": RARE_MEMO}, ensure_ascii=False)
        for every, at, memo in MEDIUM:
            if n % every == at:
                row["details"] = json.dumps({"memo": memo}, ensure_ascii=False)
        yield row


def fill(engine: Engine, brigades: int, per: int) -> uuid.UUID:
    """The brigades and their events; returns the brigade the queries read."""
    tenant_ids = [uuid.UUID(int=n + 1) for n in range(brigades)]
    with engine.begin() as conn:
        conn.execute(
            insert(Tenant.__table__),
            [
                {"id": t, "name": f"ベンチ消防団{n}", "created_at": NOW}
                for n, t in enumerate(tenant_ids)
            ],
        )
    for n, tenant_id in enumerate(tenant_ids):
        rows = rows_with_rare_words(tenant_id, per, n)
        with engine.begin() as conn:
            while batch := [row for _, row in zip(range(5000), rows, strict=False)]:
                conn.execute(insert(EVENTS), batch)
    return tenant_ids[0]


def measure(conn, tenant_id: uuid.UUID, repeat: int) -> list[dict]:
    base = scoped(select(AuditEvent), system_actor(tenant_id))
    results = []
    for name, f in CASES.items():
        scan = page_query(base, f, None, PAGE + 1)
        found = read_page(conn, base, f, None, PAGE + 1)
        results.append(
            {
                "case": name,
                "rows": min(len(found), PAGE),
                "index": timed(lambda f=f: read_page(conn, base, f, None, PAGE + 1), repeat),
                "scan": timed(
                    lambda f=f: conn.execute(page_query(base, f, None, PAGE + 1)).all(), repeat
                ),
            }
        )
        assert [r.seq for r in found] == [r.seq for r in conn.execute(scan).all()], name
    return results


def report(title: str, results: list[dict], load_s: float) -> None:
    print(f"\n== {title} (load {load_s:.0f} s) — first page, ms p50 / p95 ==")
    print(
        f"{'search':<30}{'rows':>5}{'index':>16}{'scan (before)':>16}"
        f"{'scan/index':>12}{'index/baseline':>16}"
    )
    baseline = p(results[0]["index"], 0.5)
    for r in results:
        index, scan = p(r["index"], 0.5), p(r["scan"], 0.5)
        print(
            f"{r['case']:<30}{r['rows']:>5}{_pp(r['index']):>16}{_pp(r['scan']):>16}"
            f"{scan / index:>11.1f}x{index / baseline:>15.1f}x"
        )
    searches = results[1:]
    worst = max(p(r["index"], 0.95) for r in searches)
    print(f"slowest indexed search, p95: {worst:.1f} ms (goal < 100 ms)")


def _pp(times: list[float]) -> str:
    return f"{p(times, 0.5):.1f} / {p(times, 0.95):.1f}"


def run_sqlite(args) -> None:
    with tempfile.TemporaryDirectory(prefix="hikeshi-bench-") as folder:
        url = f"sqlite:///{Path(folder) / 'bench.db'}"
        migrate(url)
        engine = build_engine(url)
        started = time.perf_counter()
        tenant_id = fill(engine, args.brigades, args.events)
        with engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE")
        load = time.perf_counter() - started
        with engine.connect() as conn:
            results = measure(conn, tenant_id, args.repeat)
        engine.dispose()
    report(f"SQLite, {args.events:,} events x {args.brigades} brigades", results, load)


def run_postgres(args) -> None:
    server = make_url(normalise_url(args.postgres))
    name = f"hikeshi_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(server.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    owner_url = server.set(database=name).render_as_string(hide_password=False)
    try:
        migrate(owner_url)
        owner = build_engine(owner_url)
        started = time.perf_counter()
        tenant_id = fill(owner, args.brigades, args.events)
        with owner.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE audit_event")
        load = time.perf_counter() - started
        owner.dispose()
        app_url = server.set(database=name, username=APP_ROLE, password=None)
        app = build_engine(
            app_url.render_as_string(hide_password=False), connect_args={"prepare_threshold": None}
        )
        with app.connect() as conn:
            conn.execute(
                text("SELECT set_config('app.tenant_id', :t, false)"), {"t": str(tenant_id)}
            )
            prefer_index_order(conn)  # as the service does in its transaction
            results = measure(conn, tenant_id, args.repeat)
            conn.rollback()
        app.dispose()
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    report(
        f"PostgreSQL as {APP_ROLE} under RLS, {args.events:,} events x {args.brigades} brigades",
        results,
        load,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000, help="per brigade")
    parser.add_argument("--brigades", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--no-sqlite", action="store_true")
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    print(
        f"{args.events:,} events per brigade x {args.brigades}; the first page ({PAGE}) of one "
        f"brigade, {args.repeat} timed runs after one warm-up"
    )
    if not args.no_sqlite:
        run_sqlite(args)
    if not args.no_postgres:
        run_postgres(args)


if __name__ == "__main__":
    main()
