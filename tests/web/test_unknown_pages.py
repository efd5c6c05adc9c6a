"""#18: an address that is no page gets a Japanese 404 of ours, not Streamlit's frontend (whose
English "Page not found" dialog then opened over the default page)."""

from __future__ import annotations

import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

import server
from ui.registry import LINE_PAGES, LOGIN_PAGE, MEMBER_PAGES, OPERATOR_PAGES, page_addresses

STREAMLIT = "streamlit's frontend"


def streamlit(_request):
    return PlainTextResponse(STREAMLIT)


@pytest.fixture(scope="module")
def client():
    """Our routes and middleware as server.py stacks them, with a stand-in for Streamlit that
    answers every other address, as Streamlit's frontend does."""
    app = Starlette(
        routes=[*server.routes, Route("/{path:path}", streamlit, methods=["GET", "HEAD"])],
        middleware=server.middleware,
    )
    with TestClient(app) as client:
        yield client


@pytest.mark.parametrize("path", ["/rostr", "/foo", "/foo/bar", "/%E5%9B%A3%E5%93%A1", "/roster2"])
def test_an_address_that_is_no_page_gets_a_japanese_404(client, path):
    response = client.get(path)
    assert response.status_code == 404
    assert "ページが見つかりません" in response.text
    assert STREAMLIT not in response.text
    assert response.headers["content-type"].startswith("text/html")
    assert "content-security-policy" in response.headers  # outside SecurityHeaders
    assert client.head(path).status_code == 404


def test_the_address_is_shown_escaped(client):
    response = client.get("/<script>alert(1)</script>")
    assert response.status_code == 404
    assert "<script>alert" not in response.text
    assert "&lt;script&gt;" in response.text


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/login",
        "/roster",
        "/roster/",
        "/turnout",
        "/brigades",
        "/favicon.png",
        "/manifest.json",
        "/index.html",
        "/static/js/index.abc.js",
        "/_stcore/health",
        "/_stcore/host-config",
        "/media/abc.png",
        "/component/streamlit_folium.st_folium/index.html",
        "/app/static/logo.png",
    ],
)
def test_pages_files_and_streamlit_s_own_paths_pass(client, path):
    response = client.get(path, follow_redirects=False)
    assert response.status_code != 404 or STREAMLIT in response.text


def test_every_page_of_every_kind_of_actor_is_known(client):
    specs = (*MEMBER_PAGES, *OPERATOR_PAGES, *LINE_PAGES.values(), LOGIN_PAGE)
    assert page_addresses() == {spec.url_path for spec in specs}
    for spec in specs:
        assert client.get(f"/{spec.url_path}").text == STREAMLIT, spec.url_path


def test_our_routes_and_other_methods_pass(client):
    assert "ページが見つかりません" not in client.get("/auth/login").text
    missing = client.get("/vendor/none.js")  # the vendor route's own 404
    assert missing.status_code == 404 and "ページが見つかりません" not in missing.text
    posted = client.post("/foo")  # only a page's address is looked up, with GET or HEAD
    assert "ページが見つかりません" not in posted.text
