"""The 出動中の事案 board (#22): how soon an answer shows on a board open in Chromium, and what
its read costs.

    .venv/bin/python bench/board.py [--answers 10] [--targets 200]
        [--database-url postgresql://postgres@127.0.0.1:5432/postgres]

1. Refresh delay: the app runs as `streamlit run server.py` on a scratch database; a leader's
   board is open in Chromium (Playwright, /usr/bin/chromium). --answers answers are committed
   through the service one at a time, each at a random moment of the board's refresh cycle;
   timed from the answer committed to its count shown on the board. Baseline: the fragment's
   refresh interval (ui.board_view.REFRESH_SECONDS), which bounds the wait for the next
   refresh; printed as p50/p95/max and their ratio to it.
2. The read: services.dispatch.board.board with 1 and with 10 open incidents of --targets
   called members each (half answered), median of repeated reads, the ratio 10 : 1, and the
   statements each read sends (the same for both: no query per incident).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from playwright.sync_api import Page, sync_playwright
from scratch import DATA, ROOT, Database
from sqlalchemy import event

from core.actor import Actor
from integrations.mail import free_loopback_port
from models.base import utcnow
from models.callout import CalloutAnswer
from models.enums import Answer, Function, Level
from services import tenants
from services.db import current_engine, unit_of_work
from services.dispatch import board, callout, incidents
from services.dispatch.incidents import IncidentInput
from tests.callout_factories import bulk_members
from tests.factories import PASSWORD, admin, give_login, make_member, rank_id
from ui.board_view import REFRESH_SECONDS

PLATFORM = Actor(kind="system", display_name="bench", label="bench")
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking"]
# true once the board's 出動可 figure of the first 分団 reads `count` 名
SHOWN = """count => [...document.querySelectorAll('[data-testid="stMetric"]')].some(m =>
  m.querySelector('[data-testid="stMetricLabel"]')?.innerText.trim() === "出動可"
  && m.querySelector('[data-testid="stMetricValue"]')?.innerText.trim() === `${count}名`)"""


def p(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def brigade(members: int) -> tuple[uuid.UUID, uuid.UUID]:
    """A brigade with `members` in 第1分団 and a 分団長 (with a login); the incident calling
    them."""
    tenant = tenants.create_tenant(PLATFORM, name=f"ベンチ消防団-{uuid.uuid4().hex[:6]}")
    bulk_members(tenant, members, "第1分団")
    return tenant, open_incident(tenant, "建物火災")


def open_incident(tenant: uuid.UUID, kind: str) -> uuid.UUID:
    made = incidents.create_incident(
        admin(tenant), IncidentInput(kind=kind, place="本町1丁目", units=("第1分団",))
    )
    callout.call_out(admin(tenant), made.id, ("第1分団",))
    return made.id


@contextmanager
def app_server(db: Database) -> Iterator[str]:
    port = free_loopback_port()
    env = {**os.environ, "HIKESHI_DATABASE_URL": db.app_url}
    env |= {"HIKESHI_MIGRATION_DATABASE_URL": db.owner_url}
    env |= {"HIKESHI_PUBLIC_BASE_URL": f"http://127.0.0.1:{port}"}
    command = [str(ROOT / ".venv/bin/streamlit"), "run", "server.py", "--server.headless=true"]
    command += ["--server.port", str(port), "--server.address", "127.0.0.1"]
    log = (Path(DATA) / "server.log").open("wb")
    server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise RuntimeError(f"the app did not start; see {log.name}")
            time.sleep(0.2)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=20)
        log.close()


def open_board(page: Page, url: str, login: str) -> None:
    page.goto(f"{url}/")
    page.locator("input[name=login_name]").fill(login)
    page.locator("input[name=password]").fill(PASSWORD)
    page.locator("form.hikeshi-login button[type=submit]").click()
    page.get_by_text("ホーム").first.wait_for(timeout=60_000)
    page.goto(f"{url}/board")
    page.wait_for_function(SHOWN, arg=0, timeout=60_000)


def refresh_delays(db: Database, count: int) -> list[float]:
    tenant, incident_id = brigade(count)
    leader = make_member(tenant, affiliation="団本部", rank_id=rank_id(tenant, "分団長"))
    login = give_login(tenant, leader.id)
    members = [line.member_id for line in board.board(admin(tenant))[0].tally.lines]
    crew = [m for m in members if m != leader.id][:count]
    delays = []
    with app_server(db) as url, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1024, "height": 768})
        open_board(page, url, login)
        for n, member in enumerate(crew, start=1):
            time.sleep(random.uniform(0, REFRESH_SECONDS))  # any moment of the refresh cycle
            callout.answer_by_proxy(admin(tenant), incident_id, member, Answer.AVAILABLE)
            committed = time.perf_counter()
            page.wait_for_function(SHOWN, arg=n, polling=20, timeout=60_000)
            delays.append(time.perf_counter() - committed)
        browser.close()
    return delays


def reads(tenant: uuid.UUID, repeat: int) -> tuple[float, int]:
    """The median time of board() for a leader who sees names, and its statements."""
    leader = Actor(
        kind="system",
        display_name="bench",
        tenant_id=tenant,
        permissions={str(Function.DISPATCH): Level.EDIT},
    )
    board.board(leader)  # keys and caches warm
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        board.board(leader)
        times.append(time.perf_counter() - started)
    sent = []

    def counted(*_args) -> None:
        sent.append(1)

    event.listen(current_engine(), "before_cursor_execute", counted)
    try:
        board.board(leader)
    finally:
        event.remove(current_engine(), "before_cursor_execute", counted)
    return statistics.median(times), len(sent)


def answered_half(tenant: uuid.UUID, incident_id: uuid.UUID, members: list[uuid.UUID]) -> None:
    """Answers written directly (the answer service is timed elsewhere): every other member."""
    with unit_of_work(tenant) as db:
        for n, member in enumerate(members[::2]):
            db.add(
                CalloutAnswer(
                    tenant_id=tenant,
                    incident_id=incident_id,
                    member_id=member,
                    answer=list(Answer)[n % 3],
                    eta_minutes=5 + n % 10,
                    via="proxy",
                    at=utcnow(),
                )
            )
        db.commit()


def read_cost(targets: int, repeat: int) -> dict[int, tuple[float, int]]:
    found = {}
    for count in (1, 10):
        tenant = tenants.create_tenant(PLATFORM, name=f"ベンチ消防団-{uuid.uuid4().hex[:6]}")
        bulk_members(tenant, targets, "第1分団")
        for n in range(count):
            incident_id = open_incident(tenant, f"建物火災{n}")
            lines = board.board(admin(tenant))[0].tally.lines
            answered_half(tenant, incident_id, [line.member_id for line in lines])
        found[count] = reads(tenant, repeat)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--answers", type=int, default=10)
    parser.add_argument("--targets", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--database-url")
    args = parser.parse_args()
    db = Database(args.database_url)
    try:
        delays = refresh_delays(db, args.answers)
        cost = read_cost(args.targets, args.repeat)
    finally:
        db.close()
    interval = REFRESH_SECONDS
    print(f"\n出動中の事案 board on {db.dialect}, refreshing every {interval} s (the baseline)")
    print(
        f"  answer committed → shown in Chromium ({len(delays)} answers): "
        f"p50 {p(delays, 50):.2f} s, p95 {p(delays, 95):.2f} s, max {max(delays):.2f} s; "
        f"ratio to the interval p50 {p(delays, 50) / interval:.2f}, "
        f"p95 {p(delays, 95) / interval:.2f}, max {max(delays) / interval:.2f}"
    )
    (one, one_sent), (ten, ten_sent) = cost[1], cost[10]
    print(
        f"  board() read, {args.targets} called each: 1 incident {one * 1000:.1f} ms "
        f"({one_sent} statements), 10 incidents {ten * 1000:.1f} ms ({ten_sent} statements); "
        f"ratio 10 : 1 = {ten / one:.1f}x"
    )


if __name__ == "__main__":
    main()
