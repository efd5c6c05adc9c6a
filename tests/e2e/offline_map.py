"""Let a browser draw the water map with no internet: the pinned Leaflet files come from
tests/e2e/assets, and tile requests fail at once, as on a brigade PC cut off from the tile
servers."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import BrowserContext, Route

ASSETS = Path(__file__).resolve().parent / "assets" / "npm"
CDN = "https://cdn.jsdelivr.net/npm/"
TILE_HOSTS = ("https://cyberjapandata.gsi.go.jp/**", "https://tile.openstreetmap.org/**")


def _serve_asset(route: Route) -> None:
    path = (ASSETS / route.request.url.removeprefix(CDN).split("?")[0]).resolve()
    if ASSETS in path.parents and path.is_file():
        route.fulfill(path=str(path))
    else:
        route.abort()


def serve_map_offline(context: BrowserContext) -> None:
    context.route(f"{CDN}**", _serve_asset)
    for pattern in TILE_HOSTS:
        context.route(pattern, lambda route: route.abort())
