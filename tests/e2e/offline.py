"""A browser on a closed network: every request to an address other than this machine fails at
once and is recorded, as on a brigade PC in a municipal network cut off from the internet."""

from __future__ import annotations

import re
from collections.abc import Sequence
from urllib.parse import urlsplit

from playwright.sync_api import BrowserContext, Route

from services.geo import TileLayer

# A Chromium flag that fails every host name but the loopback's, in Chromium itself: nothing
# leaves the machine, and no request waits for a round trip through the test or bench process
# (as with block_internet's route, which is for checking what a page tried to fetch).
OFFLINE_RESOLVER = "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost"
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})
LOCAL_SCHEMES = frozenset({"file", "data", "blob", "about"})


def is_local(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in LOCAL_SCHEMES or parts.hostname in LOOPBACK


def block_internet(context: BrowserContext) -> list[str]:
    """Abort every non-loopback request of the context; the returned list fills with their URLs."""
    aborted: list[str] = []

    def handle(route: Route) -> None:
        if is_local(route.request.url):
            route.continue_()
        else:
            aborted.append(route.request.url)
            route.abort("internetdisconnected")

    context.route("**/*", handle)
    return aborted


def tile_pattern(layer: TileLayer) -> re.Pattern[str]:
    """The URLs a tile template can produce ({z}/{x}/{y} numbers, {s} a subdomain, {r} @2x)."""
    pattern = re.escape(layer.url)
    for name, value in (("z", r"\d+"), ("x", r"\d+"), ("y", r"-?\d+"), ("s", r"[a-z0-9-]+")):
        pattern = pattern.replace(re.escape(f"{{{name}}}"), value)
    return re.compile(pattern.replace(re.escape("{r}"), r"(@2x)?") + r"$")


def not_tiles(urls: Sequence[str], layers: Sequence[TileLayer]) -> list[str]:
    patterns = [tile_pattern(layer) for layer in layers]
    return [url for url in urls if not any(p.match(url) for p in patterns)]
