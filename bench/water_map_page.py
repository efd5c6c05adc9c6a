"""The 水利マップ as a page (#19): the real page on a loopback port in Chromium at 400 (the demo
brigade), 5k and 20k sources, against the same sources drawn from a file in the same run.

    .venv/bin/python bench/water_map_page.py [--sizes 400 5000 20000] [--repeat 3]
        [--sessions 4] [--database-url postgresql://postgres@127.0.0.1:5432/postgres]
        [--keep-cache]

The app runs as `streamlit run server.py` on a scratch database; each size is one brigade (400:
the demo brigade; others: the demo generator's sources, written in bulk) whose 団長 signs in in
Chromium (/usr/bin/chromium, 1500×1100, the internet blocked so tiles fail as offline). The
internet is blocked by Playwright's request routing, which also turns the browser's HTTP cache
off and passes every request through the driver: each open downloads Streamlit's bundles anew.
--keep-cache blocks it in Chromium's host resolver instead, so later opens take Streamlit's
hashed (immutable) bundles from the cache, as a user's browser does. Printed per size:

  page s     navigation to /water-map until the sources are drawn (clusters and single
             markers of the first view), first open (cold: the server builds its data) and the
             median of --repeat later opens (new tabs)
  file s     baseline: the same sources as one folium HTML page from a file (what the map
             needs with no server at all), median of --repeat
  data KB    what the map's data request moved (gzip on the wire), first open; later opens
  ws KB      WebSocket bytes the server sent per open, and per filter change (点検期限切れのみ)
  rerun ms   server time of a rerun (AppTest in this process, same database): idle, and a
             filter change; median of 10
  MB/session server RSS growth per further open map (--sessions tabs kept open, after one
             warm-up), and what is left 10 s after they are closed

The frame is found by either component's title, so the same script measures the page before
#19 (streamlit-folium) for a before/after in one table.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from datetime import date
from pathlib import Path

from board import CHROMIUM, CHROMIUM_ARGS, app_server
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright
from playwright.sync_api import Error as PlaywrightError
from scratch import DATA, ROOT, Database
from sqlalchemy import insert
from streamlit.testing.v1 import AppTest

import ui.common
from core.actor import RequestContext
from models.base import utcnow
from models.water import WaterSource
from services import demo, demo_data, tenants, water_rules
from services.db import unit_of_work
from services.geo import map_assets
from services.signin import local
from tests.e2e.offline import OFFLINE_RESOLVER, block_internet
from tests.factories import PASSWORD, PLATFORM, give_login, make_member, rank_id
from ui.water_map_folium import build_map
from web.vendor import VENDOR_DIR

FRAMES = 'iframe[title="ui.water_map_view.water_map"], iframe[title="streamlit_folium.st_folium"]'
READY = "window.hikeshiWaterReady === true && !document.querySelector('.leaflet-zoom-anim')"
TIMEOUT_MS = 300_000
ROUTED = {"offline": True}  # False with --keep-cache: the resolver blocks the internet
TODAY = date.today()


def brigade(size: int) -> str:
    """A brigade with `size` sources; the login name of its 団長."""
    if size == 400:
        demo.seed_demo()
        local.set_password(PLATFORM, login_name=demo.ADMIN_LOGIN, password=PASSWORD)
        return demo.ADMIN_LOGIN
    tenant = tenants.create_tenant(PLATFORM, name=f"ベンチ消防団-{uuid.uuid4().hex[:6]}")
    now = utcnow()
    rows = [
        {**vars(s), "tenant_id": tenant, "id": uuid.uuid4(), "created_at": now, "updated_at": now}
        for s in demo_data.generate_water_sources(count=size, today=TODAY)
    ]
    with unit_of_work(tenant) as session:
        session.execute(insert(WaterSource), rows)
        session.commit()
    chief = make_member(tenant, rank_id=rank_id(tenant, "団長"))
    return give_login(tenant, chief.id)


def offline(context: BrowserContext) -> None:
    if ROUTED["offline"]:
        block_internet(context)


def sign_in(page: Page, url: str, login: str) -> None:
    page.goto(f"{url}/")
    page.locator("input[name=login_name]").fill(login)
    page.locator("input[name=password]").fill(PASSWORD)
    page.locator("form.hikeshi-login button[type=submit]").click()
    page.get_by_text("ホーム").first.wait_for(timeout=TIMEOUT_MS)


def drawn(page: Page) -> None:
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    while time.monotonic() < deadline:
        for handle in page.locator(FRAMES).element_handles():
            frame = handle.content_frame()
            try:
                if frame is not None and frame.evaluate(READY):
                    return
            except PlaywrightError:  # a frame replaced by a rerun meanwhile
                pass
        page.wait_for_timeout(20)
    raise RuntimeError("the map never drew")


class Traffic:
    """Bytes the page received over the WebSocket and from the map's data route."""

    def __init__(self, page: Page) -> None:
        self.ws = 0
        self.data = 0
        page.on("websocket", lambda ws: ws.on("framereceived", self._frame))
        page.on("requestfinished", self._request)

    def _frame(self, payload) -> None:
        self.ws += len(payload)

    def _request(self, request) -> None:
        if "/api/water-map" in request.url:
            sizes = request.sizes()
            self.data += sizes["responseBodySize"] + sizes["responseHeadersSize"]


def open_map(page: Page, url: str) -> float:
    started = time.perf_counter()
    page.goto(f"{url}/water-map", wait_until="commit")
    drawn(page)
    return time.perf_counter() - started


def quiet(page: Page) -> None:
    page.wait_for_function(
        """() => document.querySelector("[data-testid=stApp]")?.dataset.testScriptState
           === "notRunning" """,
        timeout=TIMEOUT_MS,
    )
    page.wait_for_timeout(800)


def page_figures(browser: Browser, url: str, login: str, repeat: int) -> dict:
    context = browser.new_context(viewport={"width": 1500, "height": 1100}, locale="ja-JP")
    offline(context)
    page = context.new_page()
    sign_in(page, url, login)
    traffic = Traffic(page)
    cold = open_map(page, url)
    quiet(page)
    first_ws, first_data = traffic.ws, traffic.data
    warm, later_data = [], []
    for _ in range(repeat):
        tab = context.new_page()
        tab_traffic = Traffic(tab)
        warm.append(open_map(tab, url))
        later_data.append(tab_traffic.data)
        tab.close()
    before = traffic.ws
    page.get_by_text("点検期限切れのみ", exact=True).click()
    page.wait_for_timeout(300)
    quiet(page)
    filter_ws = traffic.ws - before
    context.close()
    return {
        "cold": cold,
        "warm": statistics.median(warm),
        "data": first_data,
        "data_later": statistics.median(later_data),
        "ws": first_ws,
        "ws_filter": filter_ws,
    }


def file_seconds(browser: Browser, size: int, repeat: int) -> float:
    """The same sources as one folium page from a file, Leaflet from static/vendor."""
    points = [
        {
            **vars(s),
            "overdue": water_rules.is_overdue(s.last_inspected_on, 365, TODAY),
            "radius_m": 120,
        }
        for s in demo_data.generate_water_sources(count=size, today=TODAY)
    ]
    html = build_map(points, assets=map_assets(VENDOR_DIR.as_uri()))
    times = []
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "map.html"
        path.write_text(html.get_root().render(), encoding="utf-8")
        for _ in range(repeat):
            context = browser.new_context(viewport={"width": 1500, "height": 1100})
            offline(context)
            page = context.new_page()
            started = time.perf_counter()
            page.goto(path.as_uri(), wait_until="commit")
            page.wait_for_function(READY, timeout=TIMEOUT_MS, polling="raf")
            times.append(time.perf_counter() - started)
            context.close()
    return statistics.median(times)


def server_pid(url: str) -> int:
    port = url.rsplit(":", 1)[1]
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            command = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"server.py" in command and port.encode() in command:
            return int(proc.name)
    raise RuntimeError("no server process")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def memory_figures(browser: Browser, url: str, login: str, sessions: int) -> tuple[float, float]:
    """RSS growth per open map over `sessions` tabs after a warm-up one, and what is still held
    10 s after they closed (both per session)."""
    pid = server_pid(url)
    contexts = []

    def one() -> None:
        context = browser.new_context(viewport={"width": 1500, "height": 1100})
        offline(context)
        page = context.new_page()
        sign_in(page, url, login)
        open_map(page, url)
        quiet(page)
        contexts.append(context)

    one()
    start = rss_mb(pid)
    for _ in range(sessions):
        one()
    open_growth = (rss_mb(pid) - start) / sessions
    for context in contexts[1:]:
        context.close()
    time.sleep(10)
    left = (rss_mb(pid) - start) / sessions
    contexts[0].close()
    return open_growth, left


def rerun_ms(login: str) -> tuple[float, float]:
    """Server time of a rerun of the open map: idle, and a filter change."""
    token = local.login(login, PASSWORD, RequestContext()).token
    ui.common.session_token = lambda: token
    ui.common.request_context = lambda: RequestContext()
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300).run()
    at.switch_page("app_pages/water_map.py").run()
    assert not at.exception, at.exception
    idle, change = [], []
    for i in range(10):
        started = time.perf_counter()
        at.run()
        idle.append(time.perf_counter() - started)
        box = next(c for c in at.checkbox if c.label == "点検期限切れのみ")
        started = time.perf_counter()
        box.set_value(i % 2 == 0).run()
        change.append(time.perf_counter() - started)
    return statistics.median(idle) * 1000, statistics.median(change) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[400, 5000, 20000])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--sessions", type=int, default=4)
    parser.add_argument("--database-url")
    parser.add_argument("--keep-cache", action="store_true")
    args = parser.parse_args()
    ROUTED["offline"] = not args.keep_cache
    db = Database(args.database_url)
    results = {}
    try:
        logins = {size: brigade(size) for size in args.sizes}
        with app_server(db) as url, sync_playwright() as pw:
            chromium_args = CHROMIUM_ARGS + ([OFFLINE_RESOLVER] if args.keep_cache else [])
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=chromium_args)
            for size in args.sizes:
                figures = page_figures(browser, url, logins[size], args.repeat)
                figures["file"] = file_seconds(browser, size, args.repeat)
                figures["memory"] = memory_figures(browser, url, logins[size], args.sessions)
                figures["rerun"] = rerun_ms(logins[size])
                results[size] = figures
                print(f"  measured {size}", flush=True)
            browser.close()
    finally:
        db.close()
    blocked = "resolver, cache kept" if args.keep_cache else "routing, no cache"
    print(
        f"\n水利マップ as a page ({db.dialect}; internet blocked by {blocked}; server log in {DATA})"
    )
    header = (
        f"{'sources':>7} | {'page s cold':>11} {'warm':>5} {'file s':>6} {'ratio':>6} | "
        f"{'data KB':>7} {'later':>5} | {'ws KB open':>10} {'filter':>6} | "
        f"{'rerun ms idle':>13} {'filter':>6} | {'MB/session':>10} {'left':>5}"
    )
    print(header)
    print("-" * len(header))
    for size, f in results.items():
        print(
            f"{size:>7} | {f['cold']:>11.2f} {f['warm']:>5.2f} {f['file']:>6.2f} "
            f"{f['warm'] / f['file']:>5.1f}x | {f['data'] / 1e3:>7.0f} {f['data_later'] / 1e3:>5.1f} | "
            f"{f['ws'] / 1e3:>10.0f} {f['ws_filter'] / 1e3:>6.1f} | "
            f"{f['rerun'][0]:>13.0f} {f['rerun'][1]:>6.0f} | "
            f"{f['memory'][0]:>10.1f} {f['memory'][1]:>5.1f}"
        )
    print("ratio = page warm / file (the same sources drawn with no server at all).")


if __name__ == "__main__":
    main()
