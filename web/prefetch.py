"""Prefetch hints for the code of Streamlit's elements (#18: the first page after signing in).

Streamlit's frontend loads the code of most elements only when a page first draws one: tables
(DataFrame, with Arrow), charts (Vega-Lite and Vega), metrics and page links come to about
2.5 MB in some 60 files. The login page draws none of them, so the first page after signing in
waited for all of them, served one after another by the app's event loop while it also ran the
new session: 0.3-0.5 s of the login measured in Chromium (bench/admin_clicks.py).

Every page document (Streamlit's index.html, served for any page path) therefore carries a
`Link: <...>; rel=prefetch` header naming those files. The browser fetches them at idle priority
after the page has started, while the administrator types, and keeps them in its cache: the files
are content-hashed and served as immutable. A browser that has them sends nothing more.

The list is read from Streamlit's own bundle when the server starts, not written by hand: the
frontend's entry script declares, for each element it loads lazily, the files that element needs
(Vite's `__vite__mapDeps` table beside each `import()`), and the chart's Vega loader declares
its own the same way. Files the entry script already preloads (index.html's modulepreload
links) are left out. A Streamlit release that renames its files changes nothing here; one that
changes how it bundles yields an empty list and pages without the hint, which a test notices.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import streamlit
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

STATIC = Path(streamlit.__file__).parent / "static"
# The elements our pages draw whose code Streamlit loads lazily, by the name of their chunk.
ELEMENTS = ("DataFrame", "ArrowVegaLiteChart", "Metric", "PageLink")
# Chunks that load further code themselves when they run (the charts' Vega).
LOADERS = ("loadVegaEmbed",)
# Not for component frames (their own documents) nor for our own HTTP routes.
SKIPPED_PREFIXES = ("/component/", "/_stcore/", "/static/", "/auth/", "/api/", "/line/")

_DEPS_TABLE = re.compile(r"__vite__mapDeps=.*?m\.f=\[([^\]]*)\]", re.S)
_IMPORT = re.compile(r"import\(`\./([^`]+)`\)[^;]*?__vite__mapDeps\(\[([\d,]*)\]\)")
_MODULEPRELOAD = re.compile(r'rel="modulepreload"[^>]*href="\./static/js/([^"]+)"')
_ENTRY = re.compile(r'<script type="module"[^>]*src="\./static/js/([^"]+)"')


def _chunk_name(file: str) -> str:
    """'DataFrame.-f9-1zS0.js' -> 'DataFrame' (the hash follows the last name part)."""
    return file.split(".", 1)[0]


def lazy_imports(source: str) -> dict[str, list[str]]:
    """Each file a script imports lazily, with every file Vite preloads for it (itself
    included), as names relative to the script's directory."""
    table = _DEPS_TABLE.search(source)
    if table is None:
        return {}
    files = [name.strip().strip('"').removeprefix("./") for name in table.group(1).split(",")]
    found: dict[str, list[str]] = {}
    for match in _IMPORT.finditer(source):
        indices = [int(i) for i in match.group(2).split(",") if i]
        found[match.group(1)] = [match.group(1), *(files[i] for i in indices if i < len(files))]
    return found


@cache
def prefetched_files(static: Path = STATIC) -> tuple[str, ...]:
    """The files, relative to /static/, that the element chunks and their loaders need and
    the login page has not loaded already; empty when the bundle is not laid out as expected."""
    index = (static / "index.html").read_text(encoding="utf-8")
    entry = _ENTRY.search(index)
    if entry is None:
        return ()
    js = static / "static" / "js"
    loaded = {entry.group(1), *_MODULEPRELOAD.findall(index)}
    wanted: dict[str, None] = {}
    for file, deps in lazy_imports((js / entry.group(1)).read_text(encoding="utf-8")).items():
        if _chunk_name(file) in ELEMENTS:
            wanted.update(dict.fromkeys(deps))
    for file in [f for f in wanted if _chunk_name(f) in LOADERS]:
        for deps in lazy_imports((js / file).read_text(encoding="utf-8")).values():
            wanted.update(dict.fromkeys(deps))
    root = static / "static"
    return tuple(
        (js / f).resolve().relative_to(root.resolve()).as_posix()
        for f in wanted
        if f not in loaded and (js / f).is_file()
    )


@cache
def link_header(base_path: str = "") -> str:
    return ", ".join(f"<{base_path}/static/{name}>; rel=prefetch" for name in prefetched_files())


class PrefetchHints:
    """Pure ASGI middleware: a Link header on page documents (HTML answers to GET on a page
    path); everything else passes untouched."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if (
            scope["type"] != "http"
            or scope.get("method") != "GET"
            or path.startswith(SKIPPED_PREFIXES)
            or not link_header()
        ):
            await self.app(scope, receive, send)
            return

        async def send_with_hint(message: Message) -> None:
            if message["type"] == "http.response.start" and message.get("status") == 200:
                headers = MutableHeaders(scope=message)
                if headers.get("content-type", "").startswith("text/html"):
                    headers.append("Link", link_header())
            await send(message)

        await self.app(scope, receive, send_with_hint)
