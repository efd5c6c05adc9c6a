"""Security headers on every HTTP response of the ASGI app: our routes, Streamlit's page, its
static files and component iframes, and the vendored files.

Two Content-Security-Policies, found with the browser test (tests/e2e/test_offline.py reports every
violation). Streamlit's page gets the strict one: scripts only from our origin plus the hash of
the one inline script in Streamlit's index.html, and no framing at all. The
custom-component iframes (/component/..., where our 水利マップ component and streamlit-folium's
incident map draw) need inline scripts and eval, because streamlit-folium runs the map's script
that way; they get that, may be framed by our own pages only, and are the only documents allowed
to load map tiles."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import streamlit
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.geo import TileLayer, map_assets, tile_layers

COMPONENT_PREFIX = "/component/"
STREAMLIT_INDEX = Path(streamlit.__file__).parent / "static" / "index.html"
HSTS = "max-age=31536000"
_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)


def inline_script_hashes(html: str) -> list[str]:
    """CSP source expressions for each inline <script> of a page."""
    return [
        "'sha256-" + base64.b64encode(hashlib.sha256(body.encode()).digest()).decode() + "'"
        for body in _INLINE_SCRIPT.findall(html)
    ]


def origin_of(url: str) -> str | None:
    """The CSP host source of an absolute http(s) URL or URL template ("{s}" subdomains become a
    wildcard); None for a path on our own origin."""
    parts = urlsplit(url.replace("{s}", "*"))
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}"


def _unique(values: Iterable[str | None]) -> list[str]:
    return list(dict.fromkeys(v for v in values if v))


def _policy(directives: dict[str, Sequence[str]]) -> str:
    return "; ".join(f"{name} {' '.join(sources)}" for name, sources in directives.items())


def page_policy(script_hashes: Sequence[str]) -> str:
    return _policy(
        {
            "default-src": ["'self'"],
            # long.js (in Streamlit's protobuf bundle) compiles an inlined WebAssembly module of
            # under 300 bytes for 64-bit arithmetic; this allows WebAssembly only, not eval().
            "script-src": ["'self'", "'wasm-unsafe-eval'", *script_hashes],
            # Streamlit styles itself with emotion (<style> elements made at run time); the page
            # does not render without it, and st.html's <style> blocks need it too.
            "style-src": ["'self'", "'unsafe-inline'"],
            "img-src": ["'self'", "data:"],
            "font-src": ["'self'", "data:"],  # a font Streamlit's CSS embeds as a data: URI
            "connect-src": ["'self'"],
            "frame-src": ["'self'"],
            "object-src": ["'none'"],
            "base-uri": ["'self'"],
            "form-action": ["'self'"],
            "frame-ancestors": ["'none'"],
        }
    )


def component_policy(tiles: Sequence[TileLayer], asset_urls: Sequence[str]) -> str:
    assets = _unique(origin_of(url) for url in asset_urls)
    return _policy(
        {
            "default-src": ["'self'"],
            "script-src": ["'self'", "'unsafe-inline'", "'unsafe-eval'", *assets],
            "style-src": ["'self'", "'unsafe-inline'", *assets],
            "img-src": [
                "'self'",
                "data:",
                *assets,
                *_unique(origin_of(layer.url) for layer in tiles),
            ],
            "font-src": ["'self'"],
            "connect-src": ["'self'"],
            "object-src": ["'none'"],
            "base-uri": ["'self'"],
            "form-action": ["'self'"],
            "frame-ancestors": ["'self'"],
        }
    )


@dataclass(frozen=True)
class HeaderPolicy:
    page_csp: str
    component_csp: str

    @classmethod
    def from_settings(cls) -> HeaderPolicy:
        assets = map_assets()
        return cls(
            page_csp=page_policy(inline_script_hashes(STREAMLIT_INDEX.read_text(encoding="utf-8"))),
            component_csp=component_policy(tile_layers(), assets.urls),
        )

    def headers_for(self, path: str, tls: bool) -> dict[str, str]:
        component = path.startswith(COMPONENT_PREFIX)
        headers = {
            "Content-Security-Policy": self.component_csp if component else self.page_csp,
            "X-Frame-Options": "SAMEORIGIN" if component else "DENY",
            "X-Content-Type-Options": "nosniff",
            # Tile servers see our origin, never a page path (OpenStreetMap's tile policy asks
            # for a Referer).
            "Referrer-Policy": "strict-origin-when-cross-origin",
        }
        if tls:
            headers["Strict-Transport-Security"] = HSTS
        return headers


def over_tls(scope: Scope) -> bool:
    """Direct TLS, or TLS ended by the reverse proxy, which says so in X-Forwarded-Proto (a
    client faking it over plain HTTP gains nothing: browsers ignore HSTS received over HTTP)."""
    forwarded = Headers(scope=scope).get("x-forwarded-proto", "")
    return scope.get("scheme") == "https" or forwarded.split(",")[0].strip().lower() == "https"


class SecurityHeaders:
    """Pure ASGI middleware (no response buffering; WebSockets pass through untouched)."""

    def __init__(self, app: ASGIApp, policy: HeaderPolicy | None = None) -> None:
        self.app = app
        self.policy = policy or HeaderPolicy.from_settings()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = self.policy.headers_for(scope["path"], over_tls(scope))

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in extra.items():
                    headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)
