"""Our own HTTP routes on the running server, without a browser."""

from __future__ import annotations

import httpx
import pytest

from tests.e2e.conftest import PASSWORD, Brigade

pytestmark = [pytest.mark.e2e, pytest.mark.both_databases]


def post_login(base_url: str, brigade: Brigade, **headers: str) -> httpx.Response:
    return httpx.post(
        f"{base_url}/auth/login",
        data={"login_name": brigade.admin_login, "password": PASSWORD},
        headers=headers,
    )


def test_healthz_answers_ok(base_url: str):
    response = httpx.get(f"{base_url}/healthz")

    assert (response.status_code, response.text) == (200, "ok")


def test_login_from_our_own_origin_sets_an_httponly_cookie(base_url: str, brigade: Brigade):
    response = post_login(base_url, brigade, origin=base_url)

    assert response.status_code == 303
    assert response.headers["location"] == "/"
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("hikeshi_session=")
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie


@pytest.mark.parametrize(
    "headers",
    [{"origin": "https://evil.example"}, {"referer": "https://evil.example/form"}, {}],
    ids=["foreign-origin", "foreign-referer", "no-origin"],
)
def test_cross_site_login_is_refused(base_url: str, brigade: Brigade, headers: dict[str, str]):
    response = post_login(base_url, brigade, **headers)

    assert response.status_code == 403
    assert "set-cookie" not in response.headers


def test_cross_site_logout_is_refused(base_url: str):
    response = httpx.post(f"{base_url}/auth/logout", headers={"origin": "https://evil.example"})

    assert response.status_code == 403
