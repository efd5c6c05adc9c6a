"""出動履歴 and 出動統計 on a busy year: --incidents ended incidents spread over the last twelve
months, each calling --called members of 4 分団 whose answers arrive in the first minutes.

    .venv/bin/python bench/history.py [--incidents 500] [--called 40] [--repeat 5]
        [--database-url postgresql://postgres@127.0.0.1:5432/postgres]

Printed: the median time of the dashboard's statistics, of the history list (all 500) and of
one timeline, each against the dashboard's existing read (services.dashboard.load) measured in
the same run, and the number of SQL statements each runs (fixed, whatever the incidents).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics as stats
import time
import uuid
from datetime import timedelta

from scratch import Database
from sqlalchemy import event
from sqlmodel import select

from core.actor import Actor, system_actor
from models import Member
from models.base import utcnow
from models.callout import Callout, CalloutAnswer, CalloutKind, CalloutTarget, LineOutbox
from models.dispatch import Incident, IncidentStatus
from models.enums import Answer
from services import dashboard, tenants
from services.crypto import TenantCipher
from services.db import unit_of_work
from services.dispatch import history
from services.dispatch import statistics as dispatch_statistics
from tests.callout_factories import bulk_members

PLATFORM = Actor(kind="system", display_name="bench", label="bench")
UNITS = ("第1分団", "第2分団", "第3分団", "第4分団")


def fill(tenant_id: uuid.UUID, incidents: int, called: int) -> uuid.UUID:
    """The incidents, their waves, chunks, targets and answers; returns one incident's id."""
    bulk_members(tenant_id, called, UNITS[0])
    rng, now = random.Random(22), utcnow()
    with unit_of_work(tenant_id) as db:
        ids = db.exec(select(Member.id).where(Member.tenant_id == tenant_id)).all()
        members = [(member_id, UNITS[k % len(UNITS)]) for k, member_id in enumerate(ids)]
        cipher = TenantCipher(db, tenant_id)
        for n in range(incidents):
            created = now - timedelta(days=1 + n * 360 / incidents)
            row = Incident(
                tenant_id=tenant_id,
                number=n + 1,
                status=IncidentStatus.CLOSED,
                kind=rng.choice(("建物火災", "林野火災", "車両火災", "救助")),
                units=json.dumps(list(UNITS), ensure_ascii=False),
                created_at=created,
                closed_at=created + timedelta(hours=2),
                **{f"{f}_enc": "" for f in ("place", "landmark", "map_url", "subject")},
            )
            for f in ("place", "landmark", "map_url", "subject"):
                setattr(
                    row, f"{f}_enc", cipher.encrypt("本町", field=f"incident.{f}", row_id=row.id)
                )
            wave = Callout(
                tenant_id=tenant_id,
                incident_id=row.id,
                kind=CalloutKind.CALLOUT,
                recipients=called,
                messages_enc="",
                created_at=created,
            )
            db.add(row)
            db.flush()  # the incident before its wave (no ORM relationship orders them)
            db.add(wave)
            db.flush()
            db.add(
                LineOutbox(
                    tenant_id=tenant_id,
                    callout_id=wave.id,
                    member_ids="[]",
                    retry_key=str(uuid.uuid4()),
                    status="sent",
                    next_attempt_at=created,
                    sent_at=created + timedelta(seconds=2),
                )
            )
            for member_id, affiliation in members:
                db.add(
                    CalloutTarget(
                        tenant_id=tenant_id,
                        incident_id=row.id,
                        member_id=member_id,
                        unit=affiliation,
                    )
                )
                if rng.random() < 0.8:
                    db.add(
                        CalloutAnswer(
                            tenant_id=tenant_id,
                            incident_id=row.id,
                            member_id=member_id,
                            answer=rng.choice(list(Answer)),
                            at=created + timedelta(seconds=rng.randint(5, 600)),
                        )
                    )
        db.commit()
        return row.id


def timed(call, repeat: int, engine) -> tuple[float, int]:
    """Median seconds over `repeat` runs after one warm-up, and the statements of one run."""
    seen: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda *a: seen.append(a[2]))
    call()
    count = len(seen)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return stats.median(times), count


def run(db: Database, args: argparse.Namespace) -> None:
    tenant_id = tenants.create_tenant(PLATFORM, name=f"ベンチ消防団{uuid.uuid4().hex[:6]}")
    started = time.perf_counter()
    one = fill(tenant_id, args.incidents, args.called)
    print(f"[{db.dialect}] filled in {time.perf_counter() - started:.1f} s")
    actor = system_actor(tenant_id, label="bench")
    base, base_n = timed(lambda: dashboard.load(actor), args.repeat, db.app)
    print(f"  baseline dashboard.load            {base * 1000:8.1f} ms  ({base_n} statements)")
    for name, call in (
        ("dispatch_statistics (12 months)", lambda: dispatch_statistics.dispatch_statistics(actor)),
        ("closed_incidents (all)", lambda: history.closed_incidents(actor)),
        ("timeline (one incident)", lambda: history.timeline(actor, one)),
    ):
        seconds, count = timed(call, args.repeat, db.app)
        print(
            f"  {name:<34}{seconds * 1000:8.1f} ms  ×{seconds / base:5.1f} baseline"
            f"  ({count} statements)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--incidents", type=int, default=500)
    parser.add_argument("--called", type=int, default=40)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    print(
        f"{args.incidents} ended incidents over twelve months, {args.called} members called "
        f"each (≈80% answer), {args.repeat} timed runs after one warm-up"
    )
    db = Database(args.database_url)
    try:
        run(db, args)
    finally:
        db.close()


if __name__ == "__main__":
    main()
