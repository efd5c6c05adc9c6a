"""ダッシュボード on big brigades (#19): services.dashboard.load with the counts done in SQL
(GROUP BY) against the former counting in Python (kept here as the baseline, run on the same
data in the same run), at the demo's size and at a big city's.

    .venv/bin/python bench/dashboard.py [--sizes 150:400,1000:5000,5000:50000] [--repeat 5]
        [--database-url postgresql://postgres@127.0.0.1:5432/postgres]

SQLite always runs; with --database-url PostgreSQL runs after it.

Printed per size: median ms of the whole dashboard read, and of the member and water counts
alone, new against the Python counting (×), and rows read by each.
"""

from __future__ import annotations

import argparse
import random
import statistics as stats
import time
import uuid
from collections import Counter
from datetime import date, timedelta

from scratch import Database
from sqlalchemy import insert
from sqlmodel import select

from core.actor import Actor, system_actor
from models import Member, Rank, WaterSource
from models.base import new_id, utcnow
from models.enums import MemberStatus
from services import dashboard, tenants, water_rules
from services.base import scoped, transaction
from services.catalog import Function, Level

PLATFORM = Actor(kind="system", display_name="bench", label="bench")
UNITS = [f"第{n}分団" for n in range(1, 13)]
KINDS = ("消火栓", "防火水槽", "プール", "河川・溝")


def fill(tenant_id: uuid.UUID, members: int, sources: int) -> None:
    rng, now, today = random.Random(19), utcnow(), date.today()
    actor = system_actor(tenant_id, label="bench")
    with transaction(actor, (Function.ROSTER, Level.EDIT), action="bench.fill") as tx:
        ranks = tx.session.exec(select(Rank.id).where(Rank.tenant_id == tenant_id)).all()
        blank = {f"{f}_enc": "" for f in ("name", "kana", "phone", "email", "address", "notes")}
        tx.session.execute(
            insert(Member),
            [
                {
                    "id": new_id(),
                    "tenant_id": tenant_id,
                    "member_code": f"M{n:05d}",
                    "rank_id": rng.choice(ranks),
                    "affiliation": f"{rng.choice(UNITS)} 第{rng.randint(1, 3)}部",
                    "status": rng.choices(list(MemberStatus), (90, 3, 7))[0],
                    "created_at": now,
                    "updated_at": now,
                    **blank,
                }
                for n in range(members)
            ],
        )
        tx.session.execute(
            insert(WaterSource),
            [
                {
                    "id": new_id(),
                    "tenant_id": tenant_id,
                    "code": f"W-{n:05d}",
                    "kind": rng.choice(KINDS),
                    "status": rng.choice(("使用可", "使用可", "使用可", "点検中", "使用不可")),
                    "last_inspected_on": today - timedelta(days=rng.randint(0, 900)),
                    "inspection_interval_days": rng.choice((365, 730)),
                    "created_at": now,
                    "updated_at": now,
                }
                for n in range(sources)
            ],
        )
        tx.commit()


def python_counts(actor: Actor) -> tuple[int, int]:
    """The former reads: every member's and every source's row, counted in Python."""
    with transaction(actor, (Function.DASHBOARD, Level.VIEW), action="bench.old") as tx:
        rows = tx.session.exec(
            scoped(select(Member.id, Member.rank_id, Member.affiliation, Member.status), actor)
        ).all()
        Counter(r.status for r in rows)
        Counter(dashboard.unit_of(r.affiliation) for r in rows)
        water = tx.session.exec(
            scoped(
                select(
                    WaterSource.kind,
                    WaterSource.status,
                    WaterSource.last_inspected_on,
                    WaterSource.inspection_interval_days,
                ),
                actor,
            )
        ).all()
        Counter(r.kind for r in water)
        today = date.today()
        sum(water_rules.is_overdue(r[2], r[3], today) for r in water)
        return len(rows), len(water)


def sql_counts(actor: Actor) -> None:
    with transaction(actor, (Function.DASHBOARD, Level.VIEW), action="bench.new") as tx:
        dashboard._members(tx)
        dashboard._water(tx, date.today())


def median_ms(call, repeat: int) -> float:
    call()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return stats.median(times) * 1000


def run(db: Database, members: int, sources: int, repeat: int) -> None:
    tenant_id = tenants.create_tenant(PLATFORM, name=f"ベンチ消防団{uuid.uuid4().hex[:6]}")
    fill(tenant_id, members, sources)
    actor = system_actor(tenant_id, label="bench")
    old = median_ms(lambda: python_counts(actor), repeat)
    new = median_ms(lambda: sql_counts(actor), repeat)
    whole = median_ms(lambda: dashboard.load(actor), repeat)
    print(
        f"[{db.dialect}] {members:>6,} members / {sources:>6,} sources:"
        f"  counts in Python {old:7.1f} ms  in SQL {new:7.1f} ms (×{new / old:.2f})"
        f"  whole dashboard.load {whole:7.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="150:400,1000:5000,5000:50000")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--database-url", help="also on this PostgreSQL server, after SQLite")
    args = parser.parse_args()
    for url in (None, args.database_url) if args.database_url else (None,):
        db = Database(url)
        try:
            for size in args.sizes.split(","):
                members, sources = (int(n) for n in size.split(":"))
                run(db, members, sources, args.repeat)
        finally:
            db.close()


if __name__ == "__main__":
    main()
