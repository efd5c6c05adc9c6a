"""団員名簿 on big brigades (#19): the real page (app.py → app_pages/roster.py) in AppTest, signed
in as the brigade's 団長 with a password login, rerun as a widget change reruns it, at 150, 1,000
and 5,000 members with every personal field really encrypted and a fifth of the members holding a
役職 and a LINE link. The 150-member page, measured in the same run, is the baseline.

    .venv/bin/python bench/roster.py [--sizes 150,1000,5000] [--reruns 12] [--bulk 500]
        [--no-freeze] [--postgres [URL]]    (PostgreSQL as the app's unprivileged role under RLS; default
                               postgresql://postgres@127.0.0.1:5432/postgres; SQLite without it)

Printed per size: p50 / p95 ms of a rerun (the first run, which imports and warms, is left out),
wall-clock and CPU time of this process (every thread: the page's script thread and AppTest's;
CPU time is the steadier figure on a shared machine), and each figure's ratio to the
150-member page's; then the time of one bulk 所属 change on up to --bulk members. After the
warm-up run the heap is frozen as server.settle_heap freezes it after the server's imports
(--no-freeze: not), which keeps the cyclic collector's full collections off the p95.
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics as stats
import time
import uuid
from datetime import date

from scratch import ROOT, Database
from sqlalchemy import insert
from sqlmodel import select

import ui.common
from core.actor import Actor, RequestContext, system_actor
from core.personal import personal_fields
from models import Member, MemberLine, MemberRole, Rank, Role
from models.base import new_id, utcnow
from models.enums import MemberStatus
from services import members, tenants
from services.base import transaction
from services.catalog import Function, Level, MemberCreate
from services.signin import local

PLATFORM = Actor(kind="system", display_name="bench", label="bench")
APP = str(ROOT / "app.py")
PAGE = "app_pages/roster.py"
PASSWORD = "bench horse battery staple"
UNITS = [f"第{n}分団" for n in range(1, 13)]
FAMILY = ["佐藤", "鈴木", "高橋", "田中", "伊藤", "渡辺", "山本", "中村", "小林", "加藤"]
GIVEN = ["太郎", "花子", "健一", "陽子", "大輔", "美咲", "翔太", "直樹", "由美", "誠"]


def fill(tenant_id: uuid.UUID, count: int) -> None:
    """count members with encrypted personal fields; every fifth holds a role and a LINE link."""
    rng, now = random.Random(19), utcnow()
    actor = system_actor(tenant_id, label="bench")
    with transaction(actor, (Function.ROSTER, Level.EDIT), action="bench.fill") as tx:
        ranks = tx.session.exec(select(Rank.id).where(Rank.tenant_id == tenant_id)).all()
        roles = tx.session.exec(select(Role.id).where(Role.tenant_id == tenant_id)).all()
        rows, links, lines = [], [], []
        for n in range(count):
            member_id = new_id()
            plain = {
                "name": f"{rng.choice(FAMILY)}　{rng.choice(GIVEN)}{n}",
                "kana": "ショウボウ　タロウ",
                "phone": f"090-{n % 10000:04d}-{(n * 7) % 10000:04d}",
                "email": f"member{n}@example.jp",
                "address": f"長野県上田市大手{n % 9 + 1}丁目{n}番地",
                "notes": "",
            }
            sealed = {
                f.column: tx.cipher.encrypt(plain[f.name], field=f.aad, row_id=member_id)
                for f in personal_fields(members.TABLE, encrypted=True)
            }
            rows.append(
                {
                    "id": member_id,
                    "tenant_id": tenant_id,
                    "member_code": f"M{n:05d}",
                    "rank_id": rng.choice(ranks),
                    "affiliation": f"{rng.choice(UNITS)} 第{rng.randint(1, 3)}部",
                    "status": rng.choices(list(MemberStatus), (90, 3, 7))[0],
                    "joined_on": date(2000 + n % 25, 4, 1),
                    "created_at": now,
                    "updated_at": now,
                    **sealed,
                }
            )
            if n % 5 == 0 and roles:
                links.append({"tenant_id": tenant_id, "member_id": member_id, "role_id": roles[0]})
                lines.append(
                    {
                        "id": new_id(),
                        "tenant_id": tenant_id,
                        "member_id": member_id,
                        "sub_enc": tx.cipher.encrypt(
                            f"U{n:032x}", field="member_line.sub", row_id=member_id
                        ),
                        "sub_bidx": uuid.uuid4().hex,
                        "linked_at": now,
                    }
                )
        tx.session.execute(insert(Member), rows)
        if links:
            tx.session.execute(insert(MemberRole), links)
        if lines:
            tx.session.execute(insert(MemberLine), lines)
        tx.commit()


def chief_token(tenant_id: uuid.UUID) -> str:
    """A 団長 with a local account, logged in: the page runs as a real session's actor."""
    admin = system_actor(tenant_id, label="bench")
    chief = next(r.id for r in members.list_ranks(admin) if r.name == "団長")
    member = members.create_member(
        admin,
        data=MemberCreate(
            member_code="CHIEF", name="団長　一郎", kana="ダンチョウ　イチロウ", rank_id=chief
        ),
    )
    login_name = f"bench-{uuid.uuid4().hex[:10]}"
    local.create_account(
        PLATFORM,
        login_name=login_name,
        password=PASSWORD,
        tenant_id=tenant_id,
        member_id=member.id,
        display_name=member.name,
    )
    token = local.login(login_name, PASSWORD, RequestContext()).token
    assert token is not None
    return token


def rerun_times(token: str, reruns: int, settle: bool) -> tuple[list[float], list[float]]:
    """Wall-clock and CPU (this process, every thread) ms of each rerun."""
    from streamlit.testing.v1 import AppTest

    ui.common.session_token = lambda: token
    ui.common.request_context = lambda: RequestContext(client_addr="127.0.0.1", user_agent="bench")
    at = AppTest.from_file(APP, default_timeout=120).run()
    at.switch_page(PAGE).run()
    if settle:
        gc.collect()
        gc.freeze()  # as server.settle_heap does once the server's imports are done
    if at.exception or [t.value for t in at.title] != ["団員名簿"]:
        raise SystemExit(f"the roster did not open: {at.exception}")
    wall, cpu = [], []
    for _ in range(reruns):
        start, used = time.perf_counter(), time.process_time()
        at.run()
        wall.append((time.perf_counter() - start) * 1000)
        cpu.append((time.process_time() - used) * 1000)
    if at.exception:
        raise SystemExit(f"the roster failed on a rerun: {at.exception}")
    return wall, cpu


def bulk_ms(tenant_id: uuid.UUID, count: int) -> float:
    """One 所属 change on `count` members (the page's bulk action), as the brigade's system
    actor, rolled back by changing them back afterwards."""
    actor = system_actor(tenant_id, label="bench")
    chosen = [m.id for m in members.list_members(actor)][:count]
    start = time.perf_counter()
    members.bulk_set_affiliation(actor, chosen, affiliation="ベンチ分団")
    took = (time.perf_counter() - start) * 1000
    members.bulk_set_affiliation(actor, chosen, affiliation="第1分団")
    return took


def p95(values: list[float]) -> float:
    return stats.quantiles(values, n=20, method="inclusive")[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="150,1000,5000")
    parser.add_argument("--reruns", type=int, default=12)
    parser.add_argument(
        "--no-freeze", action="store_true", help="leave the imports in the collector's sight"
    )
    parser.add_argument("--bulk", type=int, default=500, help="members per bulk change (0: none)")
    parser.add_argument(
        "--postgres", nargs="?", const="postgresql://postgres@127.0.0.1:5432/postgres"
    )
    args = parser.parse_args()
    db = Database(args.postgres)
    baseline: list[float] = []
    try:
        for size in (int(n) for n in args.sizes.split(",")):
            tenant_id = tenants.create_tenant(PLATFORM, name=f"ベンチ消防団{uuid.uuid4().hex[:6]}")
            fill(tenant_id, size - 1)
            wall, cpu = rerun_times(chief_token(tenant_id), args.reruns, not args.no_freeze)
            figures = [stats.median(wall), p95(wall), stats.median(cpu), p95(cpu)]
            baseline = baseline or figures
            ratios = " / ".join(f"×{f / b:.1f}" for f, b in zip(figures, baseline, strict=True))
            print(
                f"[{db.dialect}] {size:>6,} members: rerun wall p50 {figures[0]:6.0f} ms"
                f"  p95 {figures[1]:6.0f} ms   CPU p50 {figures[2]:6.0f} ms  p95 {figures[3]:6.0f} ms"
                f"   ({ratios} the {args.sizes.split(',')[0]}-member page)",
                flush=True,
            )
            if args.bulk:
                count = min(size, args.bulk)
                took = bulk_ms(tenant_id, count)
                print(
                    f"[{db.dialect}] {size:>6,} members: bulk 所属 change of {count:,}:"
                    f" {took:6.0f} ms ({took / count:.2f} ms per member)",
                    flush=True,
                )
    finally:
        db.close()


if __name__ == "__main__":
    main()
