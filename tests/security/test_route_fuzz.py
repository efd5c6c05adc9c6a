"""Arbitrary requests to our own HTTP routes, as st.App mounts them (server.routes behind
server.middleware), with LINE Login configured against the fake LINE server (#16).

Whatever the method, path, query, headers and body: never a 5xx and never a traceback, the
security headers on every answer, and a state-changing route refuses a post that does not come
from our own origin. Header values stay within what an HTTP server lets through (visible ASCII);
query strings and form fields carry any text, NUL and other control characters included, since
percent-encoding brings those through any server.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from urllib.parse import quote, urlencode, urlsplit

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.testclient import TestClient

import server
from config import get_settings
from core.actor import RequestContext
from services.dispatch import line_inbox
from services.signin import line, line_sessions, local, sessions
from tests.factories import PLATFORM, make_member, make_tenant
from tests.fakes.line_server import FakeLine, configured, serve
from web.hidden_paths import HIDDEN
from web.vendor import load_manifest, served_files

OURS = "http://testserver"
FOREIGN = ("https://evil.example", "http://testserver.evil.example", "null")
PASSWORD = "fuzz-password-correct"
VENDOR_FILE = sorted(served_files(load_manifest()))[0]
# every (method, path) server.routes answers, and the paths hidden in front of Streamlit
TARGETS = tuple(
    (method, route.path.replace("{path:path}", VENDOR_FILE))
    for route in server.routes
    for method in sorted(route.methods or ())
) + tuple(("GET", path) for path in sorted(HIDDEN))
# LINE's webhook is not posted by a browser: its caller proves itself by the signature over the
# body (tested in tests/services/test_callout.py), and without one nothing is accepted.
SIGNED = frozenset({line_inbox.WEBHOOK_PATH})
STATE_CHANGING = tuple(
    sorted({path for method, path in TARGETS if method == "POST" and path not in SIGNED})
)
SECURITY_HEADERS = (
    "content-security-policy",
    "x-frame-options",
    "x-content-type-options",
    "referrer-policy",
)
FIELDS = ("login_name", "password", "user_id", "code", "tenant_id", "uid", "state", "error")
ANY_METHOD = ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "PROPFIND")
FORM = "application/x-www-form-urlencoded"

header_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40)
# Any code point but surrogates. A small dictionary of values that break parsers and databases
# (NUL: PostgreSQL refuses it in text) makes them likely rather than lucky.
TRICKY = (
    "\x00",
    "name\x00",
    "\u3000",
    "\r\n",
    "%00",
    "'\"\\",
    "x" * 300,
    "00000000-0000-0000-0000-000000000000",
)
any_text = st.sampled_from(TRICKY) | st.text(
    st.sampled_from("\x00\x1f\x7f\r\n'\"\\%") | st.characters(exclude_categories=["Cs"]),
    max_size=60,
)
fields = st.fixed_dictionaries({}, optional=dict.fromkeys(FIELDS, any_text)) | st.dictionaries(
    any_text, any_text, max_size=3
)
origins = st.none() | st.sampled_from([OURS, *FOREIGN]) | header_text
content_types = (
    st.none()
    | st.sampled_from(
        [FORM, "multipart/form-data", "multipart/form-data; boundary=x", "application/json"]
    )
    | header_text
)


def _with_tail(path: str, tail: str | None) -> str:
    return path if tail is None else path.rstrip("/") + "/" + quote(tail, safe="")


def line_registration_session() -> str:
    """A LINE sign-in waiting for its registration code: a new one each time, since five wrong
    codes lock one."""
    token = line_sessions.complete_login(f"U{uuid.uuid4().hex}", "", RequestContext()).token
    assert token is not None
    return token


@st.composite
def cookies(draw: st.DrawFn, session_token: str) -> dict[str, str]:
    """The cookie header: none, or our session and LINE cookies with a member's live session, a
    LINE sign-in awaiting its code, or junk (quotes and backslashes included: a quoted cookie
    value may carry octal escapes)."""
    values = (
        st.just(session_token)
        | st.builds(line_registration_session)
        | header_text.filter(lambda v: ";" not in v)
    )
    jar = draw(
        st.dictionaries(
            st.sampled_from([sessions.COOKIE_NAME, line.AUTH_COOKIE]), values, max_size=2
        )
    )
    return {"cookie": "; ".join(f"{k}={v}" for k, v in jar.items())} if jar else {}


@st.composite
def well_formed(draw: st.DrawFn, session_token: str, method: str, path: str) -> dict:
    """A request as our own pages send it (route, method, origin, form encoding), with any
    values in it."""
    return {
        "method": method,
        "url": path,
        "params": draw(fields),
        "headers": {"origin": OURS, "content-type": FORM} | draw(cookies(session_token)),
        "content": urlencode(draw(fields)).encode(),
    }


@st.composite
def anything(draw: st.DrawFn, session_token: str) -> dict:
    headers: dict[str, str] = draw(cookies(session_token))
    for name, values in (
        ("origin", origins),
        ("referer", origins),
        ("content-type", content_types),
    ):
        if (value := draw(values)) is not None:
            headers[name] = value
    path = draw(st.sampled_from([path for _method, path in TARGETS] + ["/"]))
    return {
        "method": draw(st.sampled_from(ANY_METHOD)),
        "url": _with_tail(path, draw(st.none() | any_text)),
        "params": draw(fields),
        "headers": headers,
        "content": draw(fields.map(lambda f: urlencode(f).encode()) | st.binary(max_size=300)),
    }


def from_our_origin(headers: dict[str, str]) -> bool:
    """What the state-changing routes must require: an Origin (or, without one, a Referer) on
    this server or on the configured public address."""
    source = urlsplit(headers.get("origin") or headers.get("referer") or "")
    allowed = {urlsplit(OURS).netloc, urlsplit(get_settings().public_base_url).netloc}
    return bool(source.scheme) and source.netloc in allowed


@pytest.fixture(scope="module")
def client(engine) -> Iterator[TestClient]:
    with serve(FakeLine()) as fake, configured(fake.settings_env()):
        fake.redirect_uris = {line.callback_url()}
        app = Starlette(routes=server.routes, middleware=server.middleware)
        with TestClient(app, base_url=OURS) as test_client:
            yield test_client


@pytest.fixture(scope="module")
def login_name(engine) -> str:
    tenant = make_tenant()
    name = f"fuzz-{tenant.hex[:8]}"
    local.create_account(
        PLATFORM,
        login_name=name,
        password=PASSWORD,
        tenant_id=tenant,
        member_id=make_member(tenant).id,
    )
    return name


@pytest.fixture
def session_token(login_name: str) -> str:
    """A real member's session of this test's own, so that some requests carry a cookie that
    resolves (and a logout from our origin may end it)."""
    token = local.login(login_name, PASSWORD, RequestContext(client_addr="testclient")).token
    assert token is not None
    return token


def send(client: TestClient, request: dict) -> httpx.Response:
    response = client.request(**request, follow_redirects=False)
    # /readyz answers 503 by design while no worker beats (tests/web/test_monitoring.py)
    not_ready = urlsplit(request["url"]).path == "/readyz" and response.status_code == 503
    assert response.status_code < 500 or not_ready, response.text
    assert b"Traceback" not in response.content
    missing = [name for name in SECURITY_HEADERS if name not in response.headers]
    assert not missing, f"{request['method']} {request['url']} lacks {missing}"
    return response


@pytest.mark.parametrize(("method", "path"), [t for t in TARGETS if t[0] != "HEAD"])
def test_well_formed_requests_with_any_values_are_answered_safely(
    client, session_token, method, path
):
    @settings(max_examples=8, deadline=None)
    @given(request=well_formed(session_token, method, path))
    def check(request: dict) -> None:
        send(client, request)

    check()


def test_any_request_to_any_route_is_answered_safely(client, session_token):
    @settings(max_examples=60, deadline=None)
    @given(request=anything(session_token))
    def check(request: dict) -> None:
        response = send(client, request)
        if request["method"] == "POST" and request["url"] in SIGNED:
            assert response.status_code != 200  # no signature: refused (or no channel: 404)
        if request["method"] == "POST" and request["url"] in STATE_CHANGING:
            if not from_our_origin(request["headers"]):
                assert response.status_code == 403
                assert "set-cookie" not in response.headers

    check()


def test_a_post_from_elsewhere_never_changes_state(client, session_token):
    @settings(max_examples=20, deadline=None)
    @given(
        request=well_formed(session_token, "POST", STATE_CHANGING[0]),
        path=st.sampled_from(STATE_CHANGING),
        origin=st.sampled_from(FOREIGN),
    )
    def check(request: dict, path: str, origin: str) -> None:
        request |= {
            "method": "POST",
            "url": path,
            "headers": request["headers"] | {"origin": origin},
        }
        response = send(client, request)
        assert response.status_code == 403
        assert "set-cookie" not in response.headers

    check()
    assert sessions.resolve(session_token) is not None  # no foreign logout went through
