"""Hikeshi on a closed network: Chromium may reach nothing but this machine. The login page, the
roster and the water map (every marker, the coverage circles, the list) still work, every script
and style sheet comes from our own server, the only outside requests are map tiles, and no page
logs a JavaScript error or a Content-Security-Policy violation."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    Response,
    expect,
)

from models.enums import MemberStatus
from services import demo, members, tenants, water_sources
from services.demo_data import DEMO_BRIGADE
from services.geo import map_assets, tile_layers
from services.signin import local
from tests.e2e.conftest import PASSWORD, WATER_MAP_FRAME, submit_login, wait_in_map
from tests.e2e.offline import block_internet, is_local, not_tiles
from tests.factories import PLATFORM, admin
from ui.water_map_folium import build_map, map_points

pytestmark = pytest.mark.e2e

TIMEOUT = 60_000
REPORT_CSP_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (e) => {
  console.error("CSP violation: " + e.violatedDirective + " " + e.blockedURI);
});
"""
# On a page below the root (/roster), Streamlit's frontend first looks for its server one level
# down (/roster/_stcore/health) before trying the root: two expected 404s per such page load.
STREAMLIT_BASE_PATH_PROBE = re.compile(r"/[\w-]+/_stcore/(health|host-config)$")
CIRCLES = "Object.values(window.map._layers).filter((l) => l instanceof L.Circle).length"
# Markers drawn (single ones plus the counts on cluster icons), or null while Leaflet or
# Leaflet.markercluster animates: during a zoom the old cluster icons fade out beside the new ones,
# so a count read then sees both. The map is settled when this has given the same number in
# SETTLED_READS reads in a row.
DRAWN_WHEN_IDLE = """() => {
  if (window.hikeshiWaterReady !== true
      || document.querySelector(".leaflet-cluster-anim, .leaflet-zoom-anim")) { return null; }
  let drawn = document.querySelectorAll(".hk-ws").length;
  for (const icon of document.querySelectorAll(".marker-cluster")) {
    drawn += parseInt(icon.innerText, 10);
  }
  return drawn;
}"""
SETTLED_READS = 3


@dataclass
class Observed:
    aborted: list[str]
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)
    error_responses: list[str] = field(default_factory=list)
    websockets: list[str] = field(default_factory=list)

    def watch(self, page: Page) -> None:
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.page_errors.append(str(error)))
        page.on("requestfailed", lambda request: self.failed_requests.append(request.url))
        page.on("response", self._response)
        page.on("websocket", lambda ws: self.websockets.append(ws.url))

    def _console(self, message: ConsoleMessage) -> None:
        # A failed load is checked through the network events, which name the URL.
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            self.console_errors.append(message.text)

    def _response(self, response: Response) -> None:
        if response.status >= 400:
            self.error_responses.append(f"{response.status} {response.url}")


@dataclass(frozen=True)
class DemoBrigade:
    tenant_id: uuid.UUID
    login_name: str


@pytest.fixture(scope="module")
def demo_brigade(engine) -> DemoBrigade:
    """The demo brigade (seeded unless another test has), its administrator's password known."""
    demo.seed_demo()
    local.set_password(PLATFORM, login_name=demo.ADMIN_LOGIN, password=PASSWORD)
    tenant = tenants.get_tenant_by_name(PLATFORM, DEMO_BRIGADE["name"]).id
    return DemoBrigade(tenant, demo.ADMIN_LOGIN)


@pytest.fixture
def offline(browser: Browser) -> Iterator[tuple[BrowserContext, Observed]]:
    context = browser.new_context(viewport={"width": 1500, "height": 1100}, locale="ja-JP")
    observed = Observed(block_internet(context))
    context.add_init_script(REPORT_CSP_VIOLATIONS)
    yield context, observed
    context.close()


def sidebar(page: Page):
    return page.get_by_test_id("stSidebar")


def settled_marker_count(page: Page) -> int:
    """The markers drawn once the map has stopped animating (DRAWN_WHEN_IDLE)."""
    deadline = time.monotonic() + TIMEOUT / 1000
    reads: list[int | None] = []
    while time.monotonic() < deadline:
        reads = [*reads[-(SETTLED_READS - 1) :], page.evaluate(DRAWN_WHEN_IDLE)]
        if len(reads) == SETTLED_READS and reads[0] is not None and len(set(reads)) == 1:
            return reads[0]
        page.wait_for_timeout(150)
    raise AssertionError(f"the map never settled; last reads {reads}")


def assert_nothing_but_tiles_went_wrong(observed: Observed) -> None:
    layers = tile_layers()
    assert not_tiles(observed.aborted, layers) == []
    assert not_tiles(observed.failed_requests, layers) == []
    assert [r for r in observed.error_responses if not STREAMLIT_BASE_PATH_PROBE.search(r)] == []
    assert all(is_local(url) for url in observed.websockets)
    assert observed.page_errors == []
    assert observed.console_errors == []


def test_login_roster_and_water_map_work_with_no_internet(offline, base_url, demo_brigade):
    context, observed = offline
    admin_actor = admin(demo_brigade.tenant_id)
    on_roster = members.list_members(
        admin_actor,
        members.MemberFilter(statuses=(MemberStatus.ACTIVE.value, MemberStatus.SUSPENDED.value)),
    )
    sources = water_sources.list_water_sources(admin_actor)
    placed = [s for s in sources if s.latitude is not None]
    usable = [s for s in placed if s.status == "使用可"]
    page = context.new_page()
    observed.watch(page)

    submit_login(page, base_url, demo_brigade.login_name)
    expect(sidebar(page)).to_contain_text(DEMO_BRIGADE["name"], timeout=TIMEOUT)

    sidebar(page).get_by_role("link", name="団員名簿").click()
    expect(page).to_have_url(re.compile(r"/roster$"))
    expect(page.get_by_text(f"{len(on_roster)} 名", exact=True)).to_be_visible(timeout=TIMEOUT)
    expect(page.get_by_test_id("stDataFrame").locator("table[role=grid]")).to_contain_text(
        on_roster[0].member_code
    )

    sidebar(page).get_by_role("link", name="水利マップ").click()
    expect(page.get_by_role("heading", name="水利マップ")).to_be_visible(timeout=TIMEOUT)
    frame = page.frame_locator(WATER_MAP_FRAME)
    wait_in_map(page, f"({DRAWN_WHEN_IDLE})() === {len(placed)}")
    expect(frame.locator(".leaflet-control-attribution")).to_contain_text("地理院タイル")
    page.get_by_text(re.compile(r"^包含範囲を表示")).click()
    wait_in_map(page, f"{CIRCLES} === {len(usable)}")
    expect(page.locator(WATER_MAP_FRAME)).to_have_count(1, timeout=TIMEOUT)
    wait_in_map(page, f"({DRAWN_WHEN_IDLE})() === {len(placed)}")

    page.get_by_test_id("stButtonGroup").get_by_text("一覧", exact=True).click()
    expect(page.get_by_text(f"{len(sources)} 件", exact=True)).to_be_visible(timeout=TIMEOUT)
    expect(page.get_by_test_id("stDataFrame").first).to_be_visible()

    assert observed.aborted, "the map asked for its background tiles, which failed offline"
    assert usable and len(placed) > len(usable)
    assert observed.websockets, "Streamlit talked to our server over its WebSocket"
    assert_nothing_but_tiles_went_wrong(observed)


def test_the_login_page_alone_needs_nothing_from_outside(offline, base_url):
    context, observed = offline
    page = context.new_page()
    observed.watch(page)

    page.goto(f"{base_url}/")

    expect(page.locator("form.hikeshi-login input[name=login_name]")).to_be_visible(timeout=TIMEOUT)
    expect(page.get_by_role("heading", name="ログイン")).to_be_visible()
    assert observed.aborted == []
    assert_nothing_but_tiles_went_wrong(observed)


def test_a_clustered_map_draws_from_the_served_vendor_files(offline, base_url, tmp_path: Path):
    """The clustered map loads Leaflet.markercluster too: here from our /vendor route (the map
    HTML alone, opened from a file, as the benchmark does)."""
    context, observed = offline
    sources = [
        type(
            "S",
            (),
            {
                "code": f"C-{i}",
                "kind": "防火水槽",
                "status": "使用可",
                "memo": "",
                "latitude": 36.40 + (i % 40) / 2000,
                "longitude": 138.24 + (i // 40) / 2000,
                "overdue": False,
                "unit": "",
            },
        )()
        for i in range(1200)
    ]
    html = (
        build_map(
            map_points(sources, lambda unit: 120),
            cluster=True,
            assets=map_assets(f"{base_url}/vendor"),
        )
        .get_root()
        .render()
    )
    path = tmp_path / "clustered.html"
    path.write_text(html, encoding="utf-8")
    page = context.new_page()
    observed.watch(page)

    page.goto(path.as_uri())
    page.wait_for_function("window.hikeshiWaterReady === true", timeout=TIMEOUT)

    clusters = page.locator(".marker-cluster")
    expect(clusters.first).to_be_visible()
    assert settled_marker_count(page) == len(sources)
    cluster_style = clusters.first.evaluate("(el) => getComputedStyle(el).borderRadius")
    assert cluster_style != "0px", "MarkerCluster.css from /vendor styles the clusters"
    assert_nothing_but_tiles_went_wrong(observed)
