"""Prefetch hints for the code of Streamlit's elements (web/prefetch.py), read from the
installed Streamlit bundle, and the middleware that puts them on page documents only."""

from __future__ import annotations

import re

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from web import prefetch


def test_the_element_chunks_and_everything_they_load_are_named():
    files = prefetch.prefetched_files()
    names = {prefetch._chunk_name(f.rsplit("/", 1)[-1]) for f in files}
    # the elements our first pages draw, and Vega, which the chart's loader fetches when it runs
    assert {"DataFrame", "ArrowVegaLiteChart", "Metric", "PageLink", "embed"} <= names
    assert (
        "css/" + next(f.rsplit("/", 1)[-1] for f in files if f.startswith("css/DataFrame."))
        in files
    )
    assert len(files) == len(set(files))
    root = prefetch.STATIC / "static"
    assert all((root / f).is_file() for f in files)


def test_what_the_login_page_loads_already_is_left_out():
    index = (prefetch.STATIC / "index.html").read_text(encoding="utf-8")
    loaded = set(re.findall(r'href="\./static/(js/[^"]+)"', index))
    loaded |= set(re.findall(r'src="\./static/(js/[^"]+)"', index))
    assert loaded, "index.html preloads nothing: the bundle changed shape"
    assert not loaded & set(prefetch.prefetched_files())


def test_lazy_imports_reads_vites_dependency_table():
    source = (
        'const __vite__mapDeps=(i,m=__vite__mapDeps,d=(m.f||(m.f=["./a.1.js","./b.2.js",'
        '"../css/a.3.css"])))=>i.map(i=>d[i]);'
        "x=()=>H(()=>import(`./A.9.js`).then(e=>e.n),__vite__mapDeps([0,2]),import.meta.url);"
        "y=()=>H(()=>import(`./B.8.js`),__vite__mapDeps([1]),import.meta.url);"
    )
    assert prefetch.lazy_imports(source) == {
        "A.9.js": ["A.9.js", "a.1.js", "../css/a.3.css"],
        "B.8.js": ["B.8.js", "b.2.js"],
    }
    assert prefetch.lazy_imports("import{a}from'./x.js'") == {}


def _client() -> TestClient:
    def page(request):
        return HTMLResponse("<html></html>")

    def script(request):
        return Response("1", media_type="text/javascript")

    routes = [
        Route("/", page, methods=["GET", "POST"]),
        Route("/roster", page),
        Route("/static/js/x.js", script),
        Route("/component/ui.map/index.html", page),
        Route("/auth/login", page, methods=["GET", "POST"]),
        Route("/healthz", lambda request: PlainTextResponse("ok")),
        Route("/gone", lambda request: HTMLResponse("<p>404</p>", status_code=404)),
    ]
    return TestClient(Starlette(routes=routes, middleware=[Middleware(prefetch.PrefetchHints)]))


def test_page_documents_carry_the_hint_and_nothing_else_does():
    client = _client()
    header = prefetch.link_header()
    assert header.count("rel=prefetch") == len(prefetch.prefetched_files())
    for path in ("/", "/roster"):
        assert client.get(path).headers.get("link") == header
    assert "link" not in client.post("/").headers
    for path in ("/static/js/x.js", "/component/ui.map/index.html", "/auth/login", "/healthz"):
        assert "link" not in client.get(path).headers, path
    assert "link" not in client.get("/gone").headers
