"""The security headers and cache headers on the running server's real responses: our routes,
Streamlit's page and static files, the map component's iframe and the vendored files."""

from __future__ import annotations

import re

import httpx
import pytest
from playwright.sync_api import Browser, expect

from tests.e2e.conftest import WATER_MAP_FRAME, Brigade, submit_login
from web.vendor import CACHE_CONTROL

pytestmark = pytest.mark.e2e

COMPONENT_INDEX = "/component/ui.water_map_view.water_map/index.html"
COMMON = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "strict-origin-when-cross-origin",
}


def streamlit_script(base_url: str) -> str:
    index = httpx.get(f"{base_url}/").text
    return re.search(r'src="\./(static/js/[^"]+\.js)"', index).group(1)


@pytest.mark.parametrize(
    "path",
    ["/healthz", "/", "/water-map", "/vendor/leaflet@1.9.4/dist/leaflet.css", "/vendor/nothing"],
)
def test_every_response_carries_the_page_policy(base_url: str, path: str):
    response = httpx.get(f"{base_url}{path}")

    csp = response.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp and "'unsafe-eval'" not in csp
    assert response.headers["x-frame-options"] == "DENY"
    assert COMMON.items() <= response.headers.items()
    assert "strict-transport-security" not in response.headers


def test_streamlits_own_static_files_carry_the_headers(base_url: str):
    response = httpx.get(f"{base_url}/{streamlit_script(base_url)}")

    assert response.status_code == 200
    assert "script-src 'self'" in response.headers["content-security-policy"]
    assert COMMON.items() <= response.headers.items()


@pytest.fixture
def map_component_declared(browser: Browser, base_url: str, brigade: Brigade) -> None:
    """Streamlit serves a component's files only once a script run has declared it (imported
    ui.water_map_view): open the water map once, as any brigade's first map view does."""
    context = browser.new_context()
    page = context.new_page()
    submit_login(page, base_url, brigade.admin_login)
    page.goto(f"{base_url}/water-map")
    expect(page.locator(WATER_MAP_FRAME)).to_be_attached()
    context.close()


@pytest.mark.usefixtures("map_component_declared")
def test_the_map_component_may_be_framed_by_our_pages_only(base_url: str):
    response = httpx.get(f"{base_url}{COMPONENT_INDEX}")

    assert response.status_code == 200
    csp = response.headers["content-security-policy"]
    assert "frame-ancestors 'self'" in csp
    assert "img-src 'self' data: https://cyberjapandata.gsi.go.jp" in csp
    assert response.headers["x-frame-options"] == "SAMEORIGIN"
    assert COMMON.items() <= response.headers.items()


def test_behind_the_tls_proxy_responses_carry_hsts(base_url: str):
    response = httpx.get(f"{base_url}/", headers={"X-Forwarded-Proto": "https"})

    assert response.headers["strict-transport-security"] == "max-age=31536000"


def test_vendored_files_are_cached_for_a_year(base_url: str):
    response = httpx.get(f"{base_url}/vendor/leaflet.markercluster@1.5.3/dist/MarkerCluster.css")

    assert response.status_code == 200
    assert response.headers["cache-control"] == CACHE_CONTROL
    assert response.headers["content-type"].startswith("text/css")
    assert httpx.get(f"{base_url}/vendor/manifest.json").status_code == 404


@pytest.mark.parametrize("path", ["/_stcore/metrics", "/_stcore/metrics/"])
def test_streamlits_metrics_are_not_public(base_url: str, path: str):
    """#16: /_stcore/metrics answered anyone with the server's session and cache figures."""
    response = httpx.get(f"{base_url}{path}")
    assert response.status_code == 404
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    assert httpx.get(f"{base_url}/_stcore/health").status_code == 200  # the rest still works


def test_tables_offer_no_csv_download(browser: Browser, base_url: str, brigade: Brigade):
    """#16: every st.dataframe offered 「Download as CSV」, which skipped the audit log, the
    formula neutralisation and the CSV出力 permission (the roster came out with phones and
    e-mails for anyone who may view it)."""
    context = browser.new_context()
    page = context.new_page()
    submit_login(page, base_url, brigade.admin_login)
    page.goto(f"{base_url}/roster")
    grid = page.locator('[data-testid="stDataFrame"]').first
    expect(grid).to_be_visible()
    grid.hover()
    expect(page.get_by_role("button", name="Search")).to_be_visible()  # the toolbar is there
    expect(page.get_by_role("button", name="Download as CSV")).to_have_count(0)
    context.close()
