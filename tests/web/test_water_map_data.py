"""GET /api/water-map (web/water_map_data.py): the viewer's own brigade's sources, only for a
live session that may see them and only to our own pages; gzip-compressed, and a 304 without a
body when the browser already holds the version."""

from __future__ import annotations

import gzip
import json

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

import server
from services.signin import sessions
from services.water_sources import map_data
from tests.factories import (
    admin,
    make_member,
    make_tenant,
    open_member_session,
    plain_members_hold_nothing,
)
from tests.water_factories import make_source, north_of_origin
from web.water_map_data import water_map_data_route

SAME_ORIGIN = {"sec-fetch-site": "same-origin"}


@pytest.fixture
def client(engine) -> TestClient:
    app = Starlette(routes=[water_map_data_route(server.same_origin, server.request_context)])
    return TestClient(app)


@pytest.fixture
def brigade(engine):
    tenant = make_tenant()
    make_source(tenant, code="T-1", memo="公園内", **north_of_origin(1.0))
    other = make_tenant()
    make_source(other, code="X-999", memo="よその水利", **north_of_origin(2.0))
    return tenant, open_member_session(tenant, make_member(tenant).id)


def get(client: TestClient, token: str | None, **headers: str):
    cookies = {sessions.COOKIE_NAME: token} if token else {}
    client.cookies.clear()
    return client.get(map_data.DATA_ROUTE, headers=headers, cookies=cookies)


def test_the_members_own_brigade_once_per_version(client, brigade):
    tenant, token = brigade
    response = get(client, token, **SAME_ORIGIN)

    assert response.status_code == 200
    assert response.headers["content-encoding"] == "gzip"
    assert response.headers["cache-control"] == "private, no-cache"
    rows = json.loads(response.content)["rows"]  # the client has decoded the gzip
    assert [r[5] for r in rows] == ["T-1"] and "よその水利" not in response.text
    etag = response.headers["etag"]
    assert etag == f'"{map_data.water_map(admin(tenant)).version}"'

    again = get(client, token, **SAME_ORIGIN, **{"if-none-match": etag})
    assert again.status_code == 304 and again.content == b""

    plain = get(client, token, **SAME_ORIGIN, **{"accept-encoding": "identity"})
    assert "content-encoding" not in plain.headers
    assert plain.content == gzip.decompress(map_data.water_map(admin(tenant)).gzipped)


@pytest.mark.parametrize(
    "headers",
    [
        {"sec-fetch-site": "cross-site"},
        {"sec-fetch-site": "same-site"},
        {"origin": "https://evil.example"},
        {},  # neither Sec-Fetch-Site nor an Origin or Referer
    ],
)
def test_only_our_own_pages_may_fetch_it(client, brigade, headers):
    _, token = brigade
    response = get(client, token, **headers)
    assert response.status_code == 403 and "T-1" not in response.text


def test_an_older_browser_is_recognised_by_its_referer(client, brigade):
    _, token = brigade
    response = get(client, token, referer="http://testserver/water-map")
    assert response.status_code == 200


def test_no_session_or_no_right_no_data(client, brigade):
    tenant, token = brigade
    assert get(client, None, **SAME_ORIGIN).status_code == 403
    assert get(client, "not-a-session", **SAME_ORIGIN).status_code == 403
    plain_members_hold_nothing(tenant)  # the 団員 rank loses 消防水利 閲覧
    response = get(client, token, **SAME_ORIGIN)
    assert response.status_code == 403 and "T-1" not in response.text
