"""What a brigade costs one PostgreSQL instance (#23, docs/scale.md): a scratch database filled
by the demo seed for N brigades (the demo brigade's members, water sources, incidents, reports and
their audit events), then per table its rows, pg_total_relation_size (heap, TOAST and indexes)
and bytes per row, and the whole database per brigade.

    .venv/bin/python bench/storage.py [--brigades 3] [--events 50000]
        [--postgres postgresql://postgres@127.0.0.1:5432/postgres]

Small tables are dominated by their first 8 kB pages and index roots; the bytes per row of the
big ones (member, water_source, audit_event) are what the sizing in docs/scale.md uses. The
seed runs through the services as the application role, so rows are sealed and audited as in use.
A demo brigade has few events, so --events more (bench/log_query.py's one year of a brigade's
events: the same categories, actions and detail sizes) are added for four more brigades, and the
audit log's bytes per event are measured on those.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from log_query import fill
from scratch import Database
from sqlalchemy import text

from services import demo, demo_data

SIZES = text(
    "SELECT c.relname, pg_total_relation_size(c.oid), c.reltuples"
    " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
    " WHERE c.relkind = 'r' AND n.nspname = 'public' ORDER BY 2 DESC"
)


def seed(brigades: int) -> float:
    started = time.perf_counter()
    base, login = demo_data.DEMO_BRIGADE["name"], demo.ADMIN_LOGIN
    for n in range(brigades):  # the same brigade again under another name and login
        demo_data.DEMO_BRIGADE["name"] = base if n == 0 else f"{base}{n + 1}"
        demo.ADMIN_LOGIN = login if n == 0 else f"{login}{n + 1}"
        demo.seed_demo()
    demo_data.DEMO_BRIGADE["name"], demo.ADMIN_LOGIN = base, login
    return time.perf_counter() - started


def audit_log_size(db: Database) -> tuple[int, int]:
    """(bytes, rows) of audit_event after a VACUUM ANALYZE (settled sizes)."""
    with db.owner.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE"))
        size = conn.execute(text("SELECT pg_total_relation_size('audit_event')")).scalar()
        return size, conn.execute(text("SELECT count(*) FROM audit_event")).scalar()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--brigades", type=int, default=3)
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    db = Database(args.postgres)
    try:
        with db.owner.connect() as conn:
            empty = conn.execute(text("SELECT pg_database_size(current_database())")).scalar()
        took = seed(args.brigades)
        seeded = audit_log_size(db)
        with db.owner.connect() as conn:
            demo_size = conn.execute(text("SELECT pg_database_size(current_database())")).scalar()
        started = time.perf_counter()
        if args.events:
            fill(db.owner, 4, args.events)  # 4 more brigades (the fewest fill takes)
        filled = time.perf_counter() - started
        logged = audit_log_size(db)
        with db.owner.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            total = conn.execute(text("SELECT pg_database_size(current_database())")).scalar()
            rows = conn.execute(SIZES).all()
            exact = {
                name: conn.execute(text(f'SELECT count(*) FROM "{name}"')).scalar()
                for name, _, _ in rows
            }
        print(f"{args.brigades} demo brigades seeded in {took:.1f} s")
        print(
            f"after the seed: {demo_size / 1e6:.1f} MB, empty schema {empty / 1e6:.1f} MB, "
            f"{(demo_size - empty) / args.brigades / 1e6:.2f} MB per demo brigade; "
            f"with the events: {total / 1e6:.1f} MB"
        )
        if args.events:
            per_event = (logged[0] - seeded[0]) / (logged[1] - seeded[1])
            print(
                f"audit_event: {args.events} more events in {filled:.1f} s, "
                f"{per_event:.0f} bytes per event (heap, TOAST and indexes)"
            )
        print(f"{'table':32} {'rows':>9} {'bytes':>11} {'bytes/row':>10}")
        for name, size, _ in rows:
            count = exact[name]
            if count:
                print(f"{name:32} {count:9d} {size:11d} {size / count:10.0f}")
    finally:
        db.close()


if __name__ == "__main__":
    main()
