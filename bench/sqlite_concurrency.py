"""SQLite reads while another brigade works (#19): a one-row read's p50/p95 alone, then while
another process imports water sources for another brigade back to back (each import one long
write transaction), with the ratio. Measured both ways in the same run:

- now: the read in a read-only unit of work (a deferred BEGIN: WAL readers take no lock and
  read the last commit), as the services' reads and the session look-up of every page run do;
- before: the same read in a write unit (BEGIN IMMEDIATE, as every transaction began until
  #19), which queues behind the writer's lock.

    .venv/bin/python bench/sqlite_concurrency.py [--reads 100] [--rows 1000] [--imports 5]

The reads while writing go on until --imports imports have ended meanwhile (and at least
--reads of each kind).

The database is a temporary SQLite file (WAL, busy_timeout 10 s, as the app configures it).
"""

from __future__ import annotations

import argparse
import datetime
import multiprocessing
import statistics
import time
import uuid
from collections.abc import Callable
from types import SimpleNamespace

from scratch import Database
from sqlalchemy.exc import OperationalError
from sqlmodel import select

from core.access import Need
from core.actor import Actor, system_actor
from formats import water_csv
from models import Member
from models.enums import Function, Level
from services import demo_data, members, tenants, water_import
from services.base import scoped, transaction
from services.db import build_engine, set_engine
from services.imports import MissingRows

PLATFORM = Actor(kind="system", display_name="bench", label="bench")
TODAY = datetime.date(2026, 11, 26)


def brigade(label: str) -> Actor:
    tenant = tenants.create_tenant(PLATFORM, name=f"並行{label}{uuid.uuid4().hex[:6]}")
    return system_actor(tenant, label="bench")


def one_row(actor: Actor, member_id: uuid.UUID, *, read_only: bool) -> str:
    """A member's 団員番号 by id: one indexed row, through the gate, in one unit of work."""
    need = Need(Function.ROSTER, Level.VIEW)
    with transaction(actor, need, action="bench.read", read_only=read_only) as tx:
        query = scoped(select(Member.member_code), tx.actor).where(Member.id == member_id)
        return tx.session.exec(query).one()


def timings(
    reads: dict[str, Callable[[], object]],
    count: int,
    until: Callable[[], bool] = lambda: True,
) -> dict[str, list[float]]:
    """Milliseconds per read, the kinds interleaved so that each meets the same conditions, at
    least `count` of each and on until `until()` holds; a read that gave up ("database is
    locked" after busy_timeout) counts with the time it took."""
    out: dict[str, list[float]] = {name: [] for name in reads}
    done = 0
    while done < count or not until():
        done += 1
        for name, read in reads.items():
            started = time.perf_counter()
            try:
                read()
            except OperationalError:
                FAILED[name] = FAILED.get(name, 0) + 1
            out[name].append((time.perf_counter() - started) * 1000)
    return out


FAILED: dict[str, int] = {}


def p50_p95(ms: list[float]) -> tuple[float, float]:
    ordered = sorted(ms)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]


# -- the other brigade's work, in another process ------------------------------------------------


def water_file(rows: int, run: int) -> bytes:
    """The same sources each run, every memo new: every row is a change to write."""
    blank = dict.fromkeys(column.key for column in water_csv.COLUMNS)
    sources = demo_data.generate_water_sources(count=rows, today=TODAY)
    return water_csv.encode(
        SimpleNamespace(**(blank | vars(s) | {"memo": f"取込{run}"})) for s in sources
    )


def write_stream(
    url: str, tenant_id: uuid.UUID, rows: int, gap: float, busy, stop, imports
) -> None:
    """Two files previewed once, then applied in turn: each apply validates its rows again
    inside its write transaction (the registry changed since) and updates every row."""
    set_engine(build_engine(url))
    actor = system_actor(tenant_id, label="bench-writer")
    files = [
        water_import.preview_water_import(actor, data=water_file(rows, run), filename="w.csv")
        for run in range(2)
    ]
    run = 0
    while not stop.is_set():
        water_import.apply_water_import(actor, files[run % 2], missing=MissingRows.KEEP)
        run += 1
        imports.value = run
        busy.set()
        time.sleep(gap)


# -- the run -------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reads", type=int, default=100, help="reads per figure")
    parser.add_argument("--rows", type=int, default=1000, help="sources per import")
    parser.add_argument("--gap", type=float, default=0.05, help="seconds between imports")
    parser.add_argument(
        "--imports", type=int, default=5, help="imports that end while the reads go on"
    )
    args = parser.parse_args()
    db = Database(None)
    try:
        reader, worker = brigade("読取"), brigade("取込")
        member = members.create_member(
            reader,
            data=members.MemberCreate(
                member_code="R0001",
                name="並行　太郎",
                kana="ヘイコウ　タロウ",
                rank_id=members.list_ranks(reader)[0].id,
                affiliation="第1分団",
            ),
        )
        reads = {
            "now (read-only unit)": lambda: one_row(reader, member.id, read_only=True),
            "before (BEGIN IMMEDIATE)": lambda: one_row(reader, member.id, read_only=False),
        }
        timings(reads, 20)  # warm the connections and caches
        alone = timings(reads, args.reads)

        spawn = multiprocessing.get_context("spawn")
        busy, stop, imports = spawn.Event(), spawn.Event(), spawn.Value("i", 0)
        writer = spawn.Process(
            target=write_stream,
            args=(db.app_url, worker.tenant_id, args.rows, args.gap, busy, stop, imports),
        )
        writer.start()
        try:
            if not busy.wait(timeout=120):
                raise SystemExit("the writing process did not start")
            started, first = time.perf_counter(), imports.value
            # read on until --imports imports have ended meanwhile: a hundred reads take some
            # 40 ms, less than one import, and would otherwise fall between two of them
            busy_reads = timings(
                reads, args.reads, until=lambda: imports.value - first >= args.imports
            )
            window = time.perf_counter() - started
            done = imports.value - first
        finally:
            stop.set()
            writer.join(timeout=120)
        print(
            f"SQLite (temporary file, WAL). Other process: imports of {args.rows:,} water "
            f"sources for another brigade, {args.gap * 1000:.0f} ms apart ({done} imports in the "
            f"{window:.1f} s of reading, one write transaction each)."
        )
        print(
            f"{'one-row read':<28}{'alone p50/p95/max ms':>24}{'while writing p50/p95/max':>30}"
            "  ratio"
        )
        for name in reads:
            quiet, loaded = p50_p95(alone[name]), p50_p95(busy_reads[name])
            worst_quiet, worst_loaded = max(alone[name]), max(busy_reads[name])
            print(
                f"{name:<28}{quiet[0]:>8.2f} /{quiet[1]:>6.2f} /{worst_quiet:>7.2f}"
                f"{loaded[0]:>12.2f} /{loaded[1]:>6.2f} /{worst_loaded:>7.2f}"
                f"  p50 {loaded[0] / quiet[0]:4.1f}x  p95 {loaded[1] / quiet[1]:4.1f}x"
                f"  max {worst_loaded / worst_quiet:5.1f}x"
                + (f"  ({FAILED[name]} gave up: database is locked)" if name in FAILED else "")
            )
        print(
            "A read queued behind a write waits once, and the reads after it are quick again: "
            "when the writes are short, the p95 of many quick reads hides the wait; max shows it."
        )
    finally:
        db.close()


if __name__ == "__main__":
    main()
