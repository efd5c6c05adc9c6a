"""Where a sign-in returns to: only a path of this site, never another origin (open redirect);
the password form carries it through POST /auth/login."""

from __future__ import annotations

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

import server
from tests.factories import PASSWORD, give_login, make_member, make_tenant
from web.return_path import HOME, MAX_LENGTH, safe_return_path

LINK = "/turnout?incident=0b7d4c1e-2f59-4f63-9a39-5f1c1d0e8a11"


@pytest.mark.parametrize("path", [LINK, "/roster", "/incidents?incident=1&x=%2F%2Fa"])
def test_a_path_of_this_site_is_kept(path):
    assert safe_return_path(path) == path


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "turnout",
        "https://evil.example/turnout",
        "//evil.example/turnout",
        "/\\evil.example/turnout",
        "/\\/evil.example",
        "/turnout\\..\\x",
        "/\t/evil.example",
        "/ /evil.example",
        "/turnout\r\nSet-Cookie: a=b",
        "javascript:alert(1)",
        "/出動",
        "/auth/line/login?next=/x",
        "/%61uth/line/login",  # the sign-in routes however spelt: no loop through them
        "/./auth/logout",
        "/x/../auth",
        "/" + "a" * MAX_LENGTH,
    ],
)
def test_anything_else_goes_home(value):
    assert safe_return_path(value) == HOME


def test_the_password_form_returns_to_the_page_asked_for(engine):
    tenant = make_tenant()
    login = give_login(tenant, make_member(tenant).id)
    origin = {"origin": "http://testserver"}
    with TestClient(Starlette(routes=server.routes)) as client:
        for sent, location in ((LINK, LINK), ("//evil.example/", HOME), ("", HOME)):
            form = {"login_name": login, "password": PASSWORD, "next": sent}
            response = client.post("/auth/login", data=form, headers=origin, follow_redirects=False)
            assert (response.status_code, response.headers["location"]) == (303, location)
