"""Addresses that are no page of the app, answered 404 with a Japanese page (#18).

Streamlit serves its frontend at any address, and for one that names no page the frontend shows
an English dialog ("Page not found … Running the app's main page") over the default page. A page
the actor may not see is handled in the app (ui/registry.py registers every page's address); an
address that was never a page (a typo, an old bookmark of something removed) is answered here,
before Streamlit: a GET or HEAD whose first path segment is no page's address, no route of ours
and none of Streamlit's own, and not a file name (favicon.png, manifest.json)."""

from __future__ import annotations

from collections.abc import Iterable
from html import escape

from starlette.responses import HTMLResponse
from starlette.types import ASGIApp, Receive, Scope, Send

# Streamlit's own first segments: its API and WebSocket, frontend bundles, media, components,
# the app's static folder.
STREAMLIT_SEGMENTS = frozenset({"_stcore", "static", "media", "component", "app"})

PAGE = """<!doctype html>
<html lang="ja"><head><meta charset="utf-8">
<title>ページが見つかりません - 火消し Hikeshi</title>
<style>body{{font-family:sans-serif;max-width:40rem;margin:4rem auto;padding:0 1rem;
color:#222;line-height:1.7}}a{{color:#c62828}}</style></head>
<body><h1>ページが見つかりません</h1>
<p>アドレス「{path}」のページはありません。アドレスに誤りがないか確かめてください。</p>
<p><a href="/">火消し Hikeshi のトップページへ</a></p></body></html>
"""


def first_segment(path: str) -> str:
    return path.strip("/").split("/", 1)[0]


class UnknownPages:
    def __init__(self, app: ASGIApp, *, pages: Iterable[str], routes: Iterable[str]) -> None:
        self.app = app
        self.known = (
            frozenset(pages) | frozenset(first_segment(r) for r in routes) | STREAMLIT_SEGMENTS
        )

    def unknown(self, path: str) -> bool:
        segment = first_segment(path)
        return bool(segment) and "." not in segment and segment not in self.known

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] in ("GET", "HEAD")
            and self.unknown(scope["path"])
        ):
            page = PAGE.format(path=escape(scope["path"][:200]))
            await HTMLResponse(page, status_code=404)(scope, receive, send)
            return
        await self.app(scope, receive, send)
