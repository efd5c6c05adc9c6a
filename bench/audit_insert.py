"""What the event search's indexes cost an audit insert (#19): one event per transaction, as a
service call writes it, into a log already holding --events events, at three migration heads of
the same run: z005 (no search index, the baseline), z007 (z006's trigram index) and z008 (also
the index of one- and two-character pieces), on SQLite and PostgreSQL.

    .venv/bin/python bench/audit_insert.py [--events 20000] [--inserts 300] [--repeat 3]
        [--postgres postgresql://postgres@127.0.0.1:5432/postgres] [--no-sqlite] [--no-postgres]

The rows are bench/log_query.py's (Core inserts, the hash chain not computed: what is measured is
the table, its indexes and triggers). The three databases take turns: each repeat times
--inserts transactions in each, after a few unmeasured ones; figures are ms per insert, the
median and the minimum over the repeats, and the ratio of the median to z005's. On PostgreSQL the GIN indexes take new entries into their pending
list (fastupdate); the insert that finds the list full merges it, which the mean includes.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from itertools import islice
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import Engine, create_engine, insert, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from bench.log_query import EVENTS, NOW, brigade_rows, migrate  # noqa: E402
from models import Tenant  # noqa: E402
from services.db import build_engine, normalise_url  # noqa: E402

HEADS = ("z005", "z007", "z008")
WARM = 20


def fill(engine: Engine, events: int, total: int) -> Iterator[dict]:
    """The tenant and its first `events` events; returns the rows left to insert."""
    tenant_id = uuid.UUID(int=1)
    with engine.begin() as conn:
        conn.execute(
            insert(Tenant.__table__), {"id": tenant_id, "name": "ベンチ", "created_at": NOW}
        )
    rows = brigade_rows(tenant_id, events + total, random.Random(7))
    before = islice(rows, events)
    with engine.begin() as conn:
        while batch := list(islice(before, 5000)):
            conn.execute(insert(EVENTS), batch)
    return rows


def timed_inserts(engine: Engine, rows: Iterator[dict], inserts: int) -> float:
    started = time.perf_counter()
    for row in islice(rows, inserts):
        with engine.begin() as conn:
            conn.execute(insert(EVENTS), row)
    return (time.perf_counter() - started) * 1000 / inserts


def measure(engines: dict[str, Engine], args) -> dict[str, list[float]]:
    """The heads take turns, repeat after repeat, so a noisy moment (another process, a WAL
    checkpoint) falls on each of them alike."""
    total = WARM + args.inserts * args.repeat
    rows = {head: fill(engine, args.events, total) for head, engine in engines.items()}
    for head, engine in engines.items():
        timed_inserts(engine, rows[head], WARM)
    results: dict[str, list[float]] = {head: [] for head in engines}
    for _ in range(args.repeat):
        for head, engine in engines.items():
            results[head].append(timed_inserts(engine, rows[head], args.inserts))
    return results


def report(title: str, results: dict[str, list[float]]) -> None:
    print(f"\n== {title} — ms per audit insert (one per transaction), median / min ==")
    baseline = statistics.median(results[HEADS[0]])
    for head, times in results.items():
        median = statistics.median(times)
        print(f"{head:<8}{median:>8.2f} /{min(times):>6.2f}{median / baseline:>8.1f}x")


def run_sqlite(args) -> None:
    with tempfile.TemporaryDirectory(prefix="hikeshi-bench-") as folder:
        engines = {}
        for head in HEADS:
            url = f"sqlite:///{Path(folder) / head}.db"
            migrate(url, head)
            engines[head] = build_engine(url)
        results = measure(engines, args)
        for engine in engines.values():
            engine.dispose()
    report(f"SQLite, {args.events:,} events before", results)


def run_postgres(args) -> None:
    server = make_url(normalise_url(args.postgres))
    admin = create_engine(server.set(database="postgres"), isolation_level="AUTOCOMMIT")
    names = {head: f"hikeshi_bench_{uuid.uuid4().hex[:8]}" for head in HEADS}
    engines = {}
    try:
        for head, name in names.items():
            with admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
            url = server.set(database=name).render_as_string(hide_password=False)
            migrate(url, head)
            engines[head] = build_engine(url)
        results = measure(engines, args)
    finally:
        for engine in engines.values():
            engine.dispose()
        with admin.connect() as conn:
            for name in names.values():
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    report(f"PostgreSQL, {args.events:,} events before", results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--inserts", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--no-sqlite", action="store_true")
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    if not args.no_sqlite:
        run_sqlite(args)
    if not args.no_postgres:
        run_postgres(args)


if __name__ == "__main__":
    main()
