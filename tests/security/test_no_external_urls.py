"""No page makes the browser fetch anything from outside: each page rendered by AppTest (every
element, including the map component's script, header and script/style links) and the map HTML
itself contain no http(s) URL but loopback ones, the configured tile templates and the links in
the tiles' attribution (an <a href> the user may follow, never loaded by the page). A Vega-Lite
chart's "$schema" is an identifier the chart library never fetches (the browser test sees no such
request) and is not counted."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from pathlib import Path

import folium
import pytest
import streamlit
import streamlit_folium
from streamlit.testing.v1 import AppTest

import ui.common
from core.actor import RequestContext
from services.geo import TileLayer, map_assets, tile_layers
from services.signin import local
from tests.app_pages.conftest import APP, REQUEST, page_text, sign_in
from tests.factories import PLATFORM, make_tenant
from tests.water_factories import make_source, north_of_origin
from ui.registry import MEMBER_PAGES, OPERATOR_PAGES
from ui.water_map_folium import build_map, map_points

URL = re.compile(r"https?://[^\s\"'<>\\)]+")
LOOPBACK = re.compile(r"https?://(127\.0\.0\.1|localhost|\[::1\])([:/]|$)")
VEGA_SCHEMA_ID = re.compile(
    r'\$schema\\*"\s*:\s*\\*"https://vega\.github\.io/schema/[\w./-]+\.json'
)
HREF = re.compile(r"href=[\"']([^\"']+)[\"']")
# Resource-loading attributes and CSS in an HTML text, whatever the URL.
LOADED = re.compile(r"(?:\bsrc=|<link\b[^>]*\bhref=|url\(|@import)\s*[\"']?(https?://[^\"')\s>]+)")


def allowed_urls(layers: Iterable[TileLayer]) -> set[str]:
    allowed: set[str] = set()
    for layer in layers:
        allowed.add(layer.url)
        allowed.update(HREF.findall(layer.attribution))
    return allowed


def outside_urls(text: str, layers: Iterable[TileLayer] | None = None) -> set[str]:
    allowed = allowed_urls(tile_layers() if layers is None else layers)
    text = VEGA_SCHEMA_ID.sub("", text)
    return {url for url in URL.findall(text) if url not in allowed and not LOOPBACK.match(url)}


def folium_defaults_text() -> str:
    return " ".join(url for _, url in folium.Map.default_js + folium.Map.default_css)


@pytest.mark.parametrize(
    "text",
    [
        '<script src="https://cdn.jsdelivr.net/npm/leaflet@1.9.3/dist/leaflet.js"></script>',
        '<link rel="stylesheet" href="https://netdna.bootstrapcdn.com/x.css"/>',
        'L.tileLayer(\\"https://evil.example/{z}/{x}/{y}.png\\")',
        "background: url(https://fonts.example/font.woff2)",
    ],
)
def test_the_scanner_finds_outside_urls(text):
    assert outside_urls(text)


def test_the_scanner_would_catch_folium_left_to_its_defaults():
    assert len(outside_urls(folium_defaults_text())) >= 6


def test_the_scanner_allows_tiles_attribution_links_and_loopback():
    text = (
        'L.tileLayer("https://cyberjapandata.gsi.go.jp/xyz/std/{z}/{x}/{y}.png", '
        '{"attribution": "<a href=\\"https://maps.gsi.go.jp/development/ichiran.html\\">"})'
        ' fetch("http://127.0.0.1:8501/_stcore/health")'
    )
    assert outside_urls(text) == set()


def test_a_vega_lite_schema_id_is_not_a_resource_but_vega_data_is():
    schema = '{\\"$schema\\": \\"https://vega.github.io/schema/vega-lite/v6.4.1.json\\"}'
    data = '{\\"data\\": {\\"url\\": \\"https://vega.github.io/vega-datasets/cars.json\\"}}'
    assert outside_urls(schema) == set()
    assert outside_urls(data) == {"https://vega.github.io/vega-datasets/cars.json"}


def points(n: int) -> list[dict]:
    sources = [
        type(
            "S",
            (),
            {
                "code": f"H-{i}",
                "kind": "消火栓",
                "status": "使用可",
                "memo": "",
                "latitude": 36.0 + i / 10_000,
                "longitude": 138.0,
                "overdue": False,
                "unit": "",
            },
        )()
        for i in range(n)
    ]
    return map_points(sources, lambda unit: 120)


@pytest.mark.parametrize("cluster", [False, True], ids=["markers", "clustered"])
def test_the_map_html_and_its_component_payload_load_nothing_from_outside(cluster, monkeypatch):
    monkeypatch.delenv("HIKESHI_MAP_ASSET_BASE", raising=False)
    m = build_map(points(1001), show_labels=True, show_coverage=True, cluster=cluster)
    html = m.get_root().render()
    script = streamlit_folium._get_map_string(m)
    header = streamlit_folium._get_header(m)

    for text in (html, script, header):
        assert outside_urls(text) == set()
        assert LOADED.findall(text) == []
    assert set(re.findall(r'<script src="([^"]+)"', html)) <= set(map_assets().urls)
    assert "{z}/{x}/{y}" in html  # the tiles are still there, as the only outside resource


def test_an_internal_tile_server_is_the_only_outside_url(monkeypatch):
    layers = (
        '[{"name": "庁内", "url": "https://gis.city.local/t/{z}/{x}/{y}.png", "attribution": "市"}]'
    )
    monkeypatch.setenv("HIKESHI_TILE_LAYERS", layers)
    html = build_map(points(3)).get_root().render()

    assert outside_urls(html, []) == {"https://gis.city.local/t/{z}/{x}/{y}.png"}


def test_streamlits_and_the_map_components_own_pages_load_nothing_from_outside():
    streamlit_index = Path(streamlit.__file__).parent / "static" / "index.html"
    folium_index = Path(streamlit_folium.__file__).parent / "frontend" / "build" / "index.html"
    water_map = list((Path(ui.__file__).parent / "water_map_frontend").iterdir())

    for index in (streamlit_index, folium_index, *water_map):
        assert LOADED.findall(index.read_text(encoding="utf-8")) == [], index
    for source in water_map:  # ours: not even a URL to load at run time
        assert outside_urls(source.read_text(encoding="utf-8")) == set(), source


# -- every page, as AppTest renders it ------------------------------------------------------------


def rendered(token: str | None, page: str | None, monkeypatch) -> str:
    monkeypatch.setattr(ui.common, "session_token", lambda: token)
    monkeypatch.setattr(ui.common, "request_context", lambda: REQUEST)
    at = AppTest.from_file(APP, default_timeout=60).run()
    if page is not None:
        at.switch_page(page).run()
    assert not at.exception, at.exception
    return page_text(at)


@pytest.fixture(scope="module")
def brigade_chief(engine) -> str:
    tenant = make_tenant()
    make_source(tenant, code="T-1", memo="公園内", **north_of_origin(1.0))
    make_source(tenant, code="T-2", status="点検中", **north_of_origin(2.0))
    return sign_in(tenant, "団長").token


@pytest.fixture(scope="module")
def operator(engine) -> str:
    login_name = f"op-{uuid.uuid4().hex[:10]}"
    local.create_account(
        PLATFORM, login_name=login_name, password="correct horse battery staple", is_operator=True
    )
    token = local.login(login_name, "correct horse battery staple", RequestContext()).token
    assert token is not None
    return token


def test_the_login_page_loads_nothing_from_outside(engine, monkeypatch):
    text = rendered(None, None, monkeypatch)

    assert "hikeshi-login" in text
    assert outside_urls(text) == set()


@pytest.mark.parametrize("spec", MEMBER_PAGES, ids=lambda spec: spec.url_path)
def test_each_brigade_page_loads_nothing_from_outside(spec, brigade_chief, monkeypatch):
    text = rendered(brigade_chief, spec.path, monkeypatch)

    assert outside_urls(text) == set()
    assert LOADED.findall(text) == []


def test_the_water_map_payload_is_checked_too(brigade_chief, monkeypatch):
    text = rendered(brigade_chief, "app_pages/water_map.py", monkeypatch)

    assert "ui.water_map_view.water_map" in text
    assert "/vendor/leaflet@1.9.4/dist/leaflet.js" in text
    assert "cyberjapandata.gsi.go.jp" in text


@pytest.mark.parametrize("spec", OPERATOR_PAGES, ids=lambda spec: spec.url_path)
def test_each_operator_page_loads_nothing_from_outside(spec, operator, monkeypatch):
    text = rendered(operator, spec.path, monkeypatch)

    assert outside_urls(text) == set()
