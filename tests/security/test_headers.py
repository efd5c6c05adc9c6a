"""The security headers middleware and the two Content-Security-Policies, on a small Starlette app
(tests/e2e/test_security_headers.py checks the real server's responses)."""

from __future__ import annotations

import re

import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import PlainTextResponse
from starlette.routing import Route, WebSocketRoute
from starlette.testclient import TestClient

from services.geo import DEFAULT_TILE_LAYERS, TileLayer, map_assets, tile_layers
from web.security_headers import (
    STREAMLIT_INDEX,
    HeaderPolicy,
    SecurityHeaders,
    component_policy,
    inline_script_hashes,
    origin_of,
    page_policy,
)

TILE_ORIGINS = {"https://cyberjapandata.gsi.go.jp", "https://tile.openstreetmap.org"}


def directives(policy: str) -> dict[str, list[str]]:
    return {
        name: sources
        for name, *sources in (part.split() for part in policy.split(";") if part.strip())
    }


def sources_of(policy: str) -> set[str]:
    return {s for sources in directives(policy).values() for s in sources}


def client(policy: HeaderPolicy | None = None, base_url: str = "http://testserver") -> TestClient:
    async def hello(_request):
        return PlainTextResponse("hello", headers={"X-Frame-Options": "ALLOWALL"})

    app = Starlette(
        routes=[Route("/{path:path}", hello)],
        middleware=[Middleware(SecurityHeaders, policy=policy)],
    )
    return TestClient(app, base_url=base_url)


@pytest.fixture
def policy(monkeypatch) -> HeaderPolicy:
    monkeypatch.delenv("HIKESHI_TILE_LAYERS", raising=False)
    monkeypatch.delenv("HIKESHI_MAP_ASSET_BASE", raising=False)
    return HeaderPolicy.from_settings()


def test_every_response_carries_the_headers(policy):
    response = client(policy).get("/roster")

    assert response.headers["content-security-policy"] == policy.page_csp
    assert response.headers["x-frame-options"] == "DENY"  # replaces the app's own value
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "strict-origin-when-cross-origin"
    assert "strict-transport-security" not in response.headers


def test_component_iframes_get_their_own_policy_and_may_be_framed_by_us_only(policy):
    response = client(policy).get("/component/streamlit_folium.st_folium/index.html")

    assert response.headers["content-security-policy"] == policy.component_csp
    assert directives(policy.component_csp)["frame-ancestors"] == ["'self'"]
    assert response.headers["x-frame-options"] == "SAMEORIGIN"


@pytest.mark.parametrize(
    ("base_url", "headers", "hsts"),
    [
        ("https://testserver", {}, True),
        ("http://testserver", {"X-Forwarded-Proto": "https"}, True),
        ("http://testserver", {"X-Forwarded-Proto": "HTTPS, http"}, True),
        ("http://testserver", {"X-Forwarded-Proto": "http"}, False),
        ("http://testserver", {}, False),
    ],
)
def test_hsts_only_over_tls(policy, base_url, headers, hsts):
    response = client(policy, base_url).get("/", headers=headers)

    assert ("strict-transport-security" in response.headers) is hsts
    if hsts:
        assert response.headers["strict-transport-security"] == "max-age=31536000"


def test_the_page_policy_allows_no_outside_origin_and_no_eval(policy):
    page = directives(policy.page_csp)

    assert all(s.startswith("'") or s == "data:" for s in sources_of(policy.page_csp)), page
    assert "'unsafe-eval'" not in page["script-src"]
    assert "'unsafe-inline'" not in page["script-src"]
    assert page["frame-ancestors"] == ["'none'"]
    assert page["object-src"] == ["'none'"]
    assert page["form-action"] == ["'self'"]


def test_the_page_policy_allows_exactly_streamlits_inline_script():
    html = STREAMLIT_INDEX.read_text(encoding="utf-8")
    inline = re.findall(r"<script>(.*?)</script>", html, re.DOTALL)
    hashes = inline_script_hashes(html)

    assert len(inline) == len(hashes) == 1, "Streamlit changed its index.html: review the CSP"
    assert inline_script_hashes("<script>alert(1)</script>")[0] not in hashes
    assert set(hashes) <= set(directives(page_policy(hashes))["script-src"])


def test_tile_origins_appear_only_in_the_components_img_src(policy):
    component = directives(policy.component_csp)

    assert set(component["img-src"]) >= TILE_ORIGINS
    for name, sources in component.items():
        if name != "img-src":
            assert not TILE_ORIGINS & set(sources), name
    assert not TILE_ORIGINS & sources_of(policy.page_csp)
    assert all(s.startswith("'") or s == "data:" for s in component["script-src"])


def test_an_internal_tile_server_replaces_the_default_origins(monkeypatch):
    monkeypatch.setenv(
        "HIKESHI_TILE_LAYERS",
        '[{"name": "庁内地図", "url": "http://tiles.city.local:8080/{z}/{x}/{y}.png",'
        ' "attribution": "市"}]',
    )
    policy = HeaderPolicy.from_settings()

    img = directives(policy.component_csp)["img-src"]
    assert "http://tiles.city.local:8080" in img
    assert not TILE_ORIGINS & set(img)


def test_an_asset_host_inside_the_network_is_allowed_for_the_map_only(monkeypatch):
    monkeypatch.setenv("HIKESHI_MAP_ASSET_BASE", "https://assets.city.local/npm")
    policy = HeaderPolicy.from_settings()

    component = directives(policy.component_csp)
    assert "https://assets.city.local" in component["script-src"]
    assert "https://assets.city.local" in component["style-src"]
    assert "https://assets.city.local" not in policy.page_csp


def test_our_own_asset_route_adds_no_origin():
    policy = component_policy(DEFAULT_TILE_LAYERS, map_assets("/vendor").urls)

    assert directives(policy)["script-src"] == ["'self'", "'unsafe-inline'", "'unsafe-eval'"]


@pytest.mark.parametrize(
    ("url", "origin"),
    [
        (
            "https://cyberjapandata.gsi.go.jp/xyz/std/{z}/{x}/{y}.png",
            "https://cyberjapandata.gsi.go.jp",
        ),
        ("https://{s}.tile.example.jp/{z}/{x}/{y}.png", "https://*.tile.example.jp"),
        ("http://10.0.0.5:8080/tiles/{z}/{x}/{y}.png", "http://10.0.0.5:8080"),
        ("/vendor/leaflet@1.9.4/dist/leaflet.js", None),
        ("file:///srv/vendor/leaflet.js", None),
    ],
)
def test_origin_of(url, origin):
    assert origin_of(url) == origin


def test_default_tiles_are_gsi_then_osm(monkeypatch):
    monkeypatch.delenv("HIKESHI_TILE_LAYERS", raising=False)
    layers = tile_layers()

    assert [origin_of(layer.url) for layer in layers] == [
        "https://cyberjapandata.gsi.go.jp",
        "https://cyberjapandata.gsi.go.jp",
        "https://tile.openstreetmap.org",
    ]
    assert all(isinstance(layer, TileLayer) and layer.attribution for layer in layers)


def test_websockets_pass_through_untouched(policy):
    async def echo(websocket):
        await websocket.accept()
        await websocket.send_text("ok")
        await websocket.close()

    app = Starlette(
        routes=[WebSocketRoute("/_stcore/stream", echo)],
        middleware=[Middleware(SecurityHeaders, policy=policy)],
    )
    with TestClient(app).websocket_connect("/_stcore/stream") as websocket:
        assert websocket.receive_text() == "ok"
