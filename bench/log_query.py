"""Event log pages on 1,000,000 events across 10 brigades: the service's keyset pages against
OFFSET pagination, first and 50th page, for typical filters, on SQLite and PostgreSQL.

    .venv/bin/python bench/log_query.py [--events 1000000] [--brigades 10] [--repeat 7]
        [--postgres postgresql://postgres@127.0.0.1:5432/postgres] [--no-sqlite] [--no-postgres]

Each database is a scratch one (a temporary SQLite file; a fresh PostgreSQL database, dropped at
the end), migrated with the project's migrations and filled with SQLAlchemy Core bulk inserts:
one year of events per brigade, hashes random (the chain is not what is measured here). The SQL
is the service's own (services.event_log.page_query on scoped(select(AuditEvent), actor)); on
PostgreSQL it runs as the application role under row-level security, as the app does. Times are
wall-clock in this process per page (execute and fetch 51 rows), after one warm-up run; for
PostgreSQL the server-side times of the first and the 50th keyset page are also given, from
EXPLAIN ANALYZE, and statements are not prepared (each run is planned for its own values).
The キーワード rows time page_query alone, the scan in index order; the service looks a keyword of
three characters or more up through the search index when the newest events do not fill the
page (services.event_log.read_page), which bench/log_search.py times.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from alembic import command  # noqa: E402
from alembic.config import Config  # noqa: E402
from sqlalchemy import Engine, create_engine, insert, select, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from core.actor import system_actor  # noqa: E402
from models import AuditEvent, Tenant  # noqa: E402
from services.base import scoped  # noqa: E402
from services.db import build_engine, normalise_url  # noqa: E402
from services.event_log import (  # noqa: E402
    Cursor,
    EventFilter,
    jst_period,
    jst_today,
    page_query,
    prefer_index_order,
)

PAGE = 50
NOW = datetime(2026, 11, 26, 3, 0, tzinfo=UTC)
EVENTS = AuditEvent.__table__
APP_ROLE = os.environ.get("HIKESHI_APP_DB_ROLE", "hikeshi_app")
MEMBERS_PER_BRIGADE = 20
KINDS: list[tuple[str, str, float]] = [  # category, action, weight
    ("operation", "member.update", 0.16),
    ("operation", "member.create", 0.04),
    ("operation", "water_source.update", 0.08),
    ("operation", "water_inspection.create", 0.10),
    ("operation", "event_log.view", 0.12),
    ("operation", "member.suspend", 0.01),
    ("operation", "local_account.create", 0.04),
    ("auth", "login.success", 0.15),
    ("auth", "login.failure", 0.03),
    ("auth", "logout", 0.08),
    ("auth", "permission_denied", 0.04),
    ("external", "external.call", 0.10),
    ("mail", "mail.receive", 0.05),
]


def filters(member_id: str) -> dict[str, EventFilter]:
    last30 = jst_period(jst_today(NOW) - timedelta(days=29), jst_today(NOW))
    return {
        "すべて": EventFilter(),
        "種別=認証・認可": EventFilter(categories=("auth",)),
        "種別=メール受信": EventFilter(categories=("mail",)),
        "実行者=1人": EventFilter(actor_id=member_id),
        "操作=member.update": EventFilter(actions=("member.update",)),
        "直近30日間": EventFilter(start=last30[0], end=last30[1]),
        "直近30日間+操作": EventFilter(start=last30[0], end=last30[1], categories=("operation",)),
        "キーワード=water": EventFilter(text="water"),
        "キーワード=failure": EventFilter(text="failure"),
    }


# --- data -----------------------------------------------------------------------------------


def brigade_rows(tenant_id: uuid.UUID, count: int, rng: random.Random) -> Iterator[dict]:
    members = [uuid.UUID(int=rng.getrandbits(128)) for _ in range(MEMBERS_PER_BRIGADE)]
    kinds, weights = [k[:2] for k in KINDS], [k[2] for k in KINDS]
    step = timedelta(days=365) / count
    start = NOW - timedelta(days=365)
    for i in range(count):
        category, action = rng.choices(kinds, weights)[0]
        n = rng.randrange(MEMBERS_PER_BRIGADE)
        actor, label = (
            (str(members[n]), f"T{n:04d}") if category in ("operation", "auth") else ("", "")
        )
        target_type, target_id, details = _target(action, rng, members)
        yield {
            "id": uuid.UUID(int=rng.getrandbits(128)),
            "tenant_id": tenant_id,
            "seq": i + 1,
            "occurred_at": start + step * i,
            "category": category,
            "action": action,
            "outcome": "failure" if action == "login.failure" else "success",
            "actor_type": "member" if actor else "system",
            "actor_id": actor,
            "actor_label": label,
            "target_type": target_type,
            "target_id": target_id,
            "request_id": f"{rng.getrandbits(64):016x}",
            "client_addr": f"192.0.2.{rng.randrange(1, 255)}",
            "user_agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/131.0 Safari/537.36",
            "details": json.dumps(details, ensure_ascii=False, sort_keys=True),
            "details_enc": "v1:a1b2c3d4:" + "x" * 120 if action.startswith("member.") else "",
            "prev_hash": f"{rng.getrandbits(256):064x}",
            "hash": f"{rng.getrandbits(256):064x}",
        }


def _target(action: str, rng: random.Random, members: list[uuid.UUID]) -> tuple[str, str, dict]:
    if action.startswith("member."):
        changed = rng.sample(["phone", "address", "rank_id", "affiliation", "notes"], 2)
        return (
            "member",
            str(rng.choice(members)),
            {
                "member_code": f"T{rng.randrange(9999):04d}",
                "changed": changed,
                "before": {"rank": "団員", "affiliation": "第1分団"},
                "after": {"rank": "班長", "affiliation": "第2分団"},
            },
        )
    if action.startswith("water_"):
        return (
            "water_source",
            f"W-{rng.randrange(3000):04d}",
            {"code": "W-0001", "status": "使用可"},
        )
    if action == "external.call":
        return (
            "line",
            "https://api.line.me/v2/bot/message/push",
            {
                "service": "line",
                "endpoint": "https://api.line.me/v2/bot/message/push",
                "method": "POST",
                "status": rng.choice([200, 200, 200, 429, 500]),
                "latency_ms": round(rng.uniform(40, 900), 1),
                "retry_key": str(uuid.UUID(int=rng.getrandbits(128))),
            },
        )
    if action == "mail.receive":
        return "mail", f"{rng.getrandbits(128):032x}", {"size_bytes": rng.randrange(500, 90000)}
    if action.startswith(("login", "logout")):
        return "local_account", "", {"method": "password"}
    return "", "", {"filters": {"categories": ["operation"], "text": 0}}


def fill(engine: Engine, brigades: int, events: int) -> tuple[uuid.UUID, str]:
    """Brigades and their events; returns the brigade the queries read and one member of it."""
    rng = random.Random(20261126)
    tenant_ids = [uuid.UUID(int=rng.getrandbits(128)) for _ in range(brigades)]
    with engine.begin() as conn:
        conn.execute(
            insert(Tenant.__table__),
            [
                {"id": t, "name": f"ベンチ消防団{n}", "created_at": NOW}
                for n, t in enumerate(tenant_ids)
            ],
        )
    per = events // brigades
    chosen_member = ""
    for n, tenant_id in enumerate(tenant_ids):
        rows = brigade_rows(tenant_id, per, random.Random(n))
        with engine.begin() as conn:
            while batch := [row for _, row in zip(range(5000), rows, strict=False)]:
                conn.execute(insert(EVENTS), batch)
                if n == 3 and not chosen_member:
                    chosen_member = next(r["actor_id"] for r in batch if r["actor_id"])
    return tenant_ids[3], chosen_member


# --- measuring --------------------------------------------------------------------------------


def timed(run: Callable[[], object], repeat: int) -> list[float]:
    run()  # warm the cache: every figure is a warm one
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        times.append((time.perf_counter() - started) * 1000)
    return times


def p(times: list[float], q: float) -> float:
    ordered = sorted(times)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def measure(conn, tenant_id: uuid.UUID, member_id: str, repeat: int, explain: bool) -> list[dict]:
    base = scoped(select(AuditEvent), system_actor(tenant_id))
    results = []
    for name, f in filters(member_id).items():
        cursor = None
        for _ in range(PAGE - 1):
            rows = conn.execute(page_query(base, f, cursor, PAGE)).all()
            if len(rows) < PAGE:
                cursor = None
                break
            cursor = Cursor(rows[-1].occurred_at, rows[-1].seq)
        first = page_query(base, f, None, PAGE + 1)
        keyset = page_query(base, f, cursor, PAGE + 1) if cursor else None
        offset = page_query(base, f, None, PAGE + 1).offset((PAGE - 1) * PAGE)
        result = {
            "filter": name,
            "first": timed(lambda q=first: conn.execute(q).all(), repeat),
            "keyset50": timed(lambda q=keyset: conn.execute(q).all(), repeat)
            if keyset is not None
            else None,
            "offset50": timed(lambda q=offset: conn.execute(q).all(), repeat),
        }
        if explain and keyset is not None:
            result["server50"] = server_time(conn, keyset)
            result["server_first"] = server_time(conn, first)
        results.append(result)
    return results


def server_time(conn, query) -> float:
    compiled = query.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
    plan = conn.exec_driver_sql(
        f"EXPLAIN (ANALYZE, FORMAT JSON) {compiled}", compiled.params
    ).scalar_one()
    return plan[0]["Execution Time"]


def report(title: str, results: list[dict], load_s: float) -> None:
    print(f"\n== {title} (load {load_s:.0f} s) — ms per page, p50 / p95 ==")
    head = (
        f"{'filter':<22}{'1st page':>16}{'50th keyset':>16}{'50th OFFSET':>16}{'OFFSET/keyset':>15}"
    )
    server = any("server50" in r for r in results)
    print(head + (f"{'server 1st/50th':>18}" if server else ""))
    for r in results:
        k = r["keyset50"]
        ratio = f"{p(r['offset50'], 0.5) / p(k, 0.5):.1f}x" if k else "n/a"
        line = (
            f"{r['filter']:<22}{_pp(r['first']):>16}{_pp(k):>16}{_pp(r['offset50']):>16}{ratio:>15}"
        )
        if "server50" in r:
            line += f"{r['server_first']:>10.1f}/{r['server50']:.1f}"
        print(line)
    worst = max(max(r["first"]) for r in results)
    worst = max([worst, *(max(r["keyset50"]) for r in results if r["keyset50"])])
    print(f"slowest keyset page in any run: {worst:.1f} ms")


def _pp(times: list[float] | None) -> str:
    return f"{p(times, 0.5):.1f} / {p(times, 0.95):.1f}" if times else "n/a"


def migrate(url: str, head: str = "heads") -> None:
    cfg = Config(str(ROOT / "alembic.ini"))
    cfg.set_main_option("sqlalchemy.url", url)
    cfg.attributes["configure_logger"] = False
    command.upgrade(cfg, head)


def run_sqlite(args) -> None:
    with tempfile.TemporaryDirectory(prefix="hikeshi-bench-") as folder:
        url = f"sqlite:///{Path(folder) / 'bench.db'}"
        migrate(url)
        engine = build_engine(url)
        started = time.perf_counter()
        tenant_id, member_id = fill(engine, args.brigades, args.events)
        with engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE")
        load = time.perf_counter() - started
        with engine.connect() as conn:
            results = measure(conn, tenant_id, member_id, args.repeat, explain=False)
        engine.dispose()
    report(f"SQLite, {args.events:,} events / {args.brigades} brigades", results, load)


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
        tenant_id, member_id = fill(owner, args.brigades, args.events)
        with owner.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE audit_event")
        load = time.perf_counter() - started
        owner.dispose()
        app_url = server.set(database=name, username=APP_ROLE, password=None)
        # no automatic server-side prepare: every run gets the plan a fresh connection gets
        app = build_engine(
            app_url.render_as_string(hide_password=False), connect_args={"prepare_threshold": None}
        )
        with app.connect() as conn:
            conn.execute(
                text("SELECT set_config('app.tenant_id', :t, false)"), {"t": str(tenant_id)}
            )
            prefer_index_order(conn)  # as the service does in its transaction
            results = measure(conn, tenant_id, member_id, args.repeat, explain=True)
            conn.rollback()
        app.dispose()
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    report(
        f"PostgreSQL as {APP_ROLE} under RLS, {args.events:,} events / {args.brigades} brigades",
        results,
        load,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--brigades", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--no-sqlite", action="store_true")
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    print(
        f"{args.events:,} events across {args.brigades} brigades (one year each); queries read one "
        f"brigade ({args.events // args.brigades:,} events), {PAGE} per page, {args.repeat} timed "
        "runs after one warm-up"
    )
    if not args.no_sqlite:
        run_sqlite(args)
    if not args.no_postgres:
        run_postgres(args)


if __name__ == "__main__":
    main()
