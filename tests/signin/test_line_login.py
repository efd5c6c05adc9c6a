"""LINE Login over HTTP: our real routes (server.routes) against the fake LINE server.

Each refused callback has its own test and checks three things: the browser is sent back to the
login page with a message key, no session cookie is set, and the platform's audit chain records
the reason (never the token).
"""

from __future__ import annotations

import base64
import hashlib
import json
import socket
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest
from joserfc.jwk import ECKey
from sqlmodel import Session as DbSession
from sqlmodel import select
from starlette.applications import Starlette
from starlette.testclient import TestClient

import server
from config import ConfigError, load_settings
from core.actor import Actor
from integrations import line_login
from models import PLATFORM_TENANT_ID, AuditEvent, LineAuthRequest, LinePendingLogin, MemberLine
from models import Session as UserSession
from models.base import utcnow
from models.enums import AuditCategory
from services import members, registrations
from services.db import unit_of_work
from services.errors import PermissionDenied
from services.signin import line, line_sessions, sessions
from tests.factories import (
    admin,
    audit_events,
    last_audit_seq,
    link_line,
    make_member,
    make_tenant,
)
from tests.fakes.line_server import FakeLine, FakeUser, callback_target, configured, serve
from ui.registry import LINE_PAGES, specs_for

AUTH = str(AuditCategory.AUTH)
ORIGIN = {"origin": "http://testserver"}


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeLine]:
    with serve(FakeLine()) as running:
        yield running


@pytest.fixture
def line_env(engine, fake: FakeLine) -> Iterator[FakeLine]:
    with configured(fake.settings_env()):
        fake.redirect_uris = {line.callback_url()}
        fake.user = FakeUser()
        yield fake


@pytest.fixture
def client(line_env) -> Iterator[TestClient]:
    with TestClient(Starlette(routes=server.routes)) as test_client:
        yield test_client


@dataclass
class Flow:
    """One browser going through LINE Login."""

    client: TestClient
    fake: FakeLine
    authorize_url: str = ""

    def start(self, uid: str = "") -> httpx.Response:
        response = self.client.get(
            "/auth/line/login", params={"uid": uid} if uid else None, follow_redirects=False
        )
        assert response.status_code == 303
        self.authorize_url = response.headers["location"]
        return response

    def consent(self, *, allow: bool = True) -> str:
        return callback_target(self.fake.approve(self.authorize_url, allow=allow))

    def callback(self, target: str) -> httpx.Response:
        return self.client.get(target, follow_redirects=False)

    def login(self, uid: str = "") -> httpx.Response:
        self.start(uid)
        return self.callback(self.consent())

    @property
    def session_token(self) -> str | None:
        return self.client.cookies.get(sessions.COOKIE_NAME)

    def actor(self) -> Actor | None:
        return sessions.resolve(self.session_token)


@pytest.fixture
def flow(client, line_env) -> Flow:
    return Flow(client, line_env)


class PlatformWatch:
    def __init__(self, engine) -> None:
        self.engine = engine
        self.start = last_audit_seq(engine, PLATFORM_TENANT_ID)

    def new(self) -> list[AuditEvent]:
        return audit_events(self.engine, PLATFORM_TENANT_ID, after_seq=self.start)


@pytest.fixture
def platform(engine) -> PlatformWatch:
    return PlatformWatch(engine)


def assert_refused(response: httpx.Response, flow: Flow, message: str) -> None:
    assert response.status_code == 303
    assert response.headers["location"] == f"/?line_error={message}"
    assert flow.session_token is None
    assert sessions.COOKIE_NAME not in response.headers.get("set-cookie", "")


def assert_failure_logged(platform: PlatformWatch, reason: str, *secrets_: str) -> None:
    events = [e for e in platform.new() if e.action == "login.failure"]
    assert len(events) == 1
    event = events[0]
    assert (event.category, event.outcome) == (AUTH, "failure")
    assert json.loads(event.details) == {"method": "line", "reason": reason}
    for secret in secrets_:
        assert secret not in event.details


# ---------------------------------------------------------------------------
# The authorization request


def test_authorization_request_carries_state_nonce_and_pkce(flow, engine):
    response = flow.start()

    params = httpx.URL(flow.authorize_url).params
    assert flow.authorize_url.startswith(flow.fake.base_url + "/oauth2/v2.1/authorize?")
    assert params["response_type"] == "code"
    assert params["client_id"] == flow.fake.channel_id
    assert params["redirect_uri"] == "http://localhost:8501/auth/line/callback"
    assert params["scope"] == "openid profile"
    assert params["code_challenge_method"] == "S256"
    assert len(params["state"]) >= 43 and len(params["nonce"]) >= 43
    assert "bot_prompt" not in params and "prompt" not in params

    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{line.AUTH_COOKIE}=")
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/auth/line/" in cookie
    assert "Max-Age=600" in cookie
    cookie_value = flow.client.cookies.get(line.AUTH_COOKIE)
    assert params["state"] not in cookie and params["nonce"] not in cookie
    with DbSession(engine) as db:
        row = db.exec(
            select(LineAuthRequest).where(
                LineAuthRequest.key_hash == hashlib.sha256(cookie_value.encode()).hexdigest()
            )
        ).one()
    assert (row.state, row.nonce) == (params["state"], params["nonce"])
    challenge = base64.urlsafe_b64encode(hashlib.sha256(row.code_verifier.encode()).digest())
    assert params["code_challenge"] == challenge.decode().rstrip("=")
    assert timedelta(minutes=9) < row.expires_at - utcnow() <= timedelta(minutes=10)


def test_bot_prompt_and_consent_options_reach_line(flow):
    with configured({"HIKESHI_LINE_BOT_PROMPT": "aggressive", "HIKESHI_LINE_PROMPT_CONSENT": "1"}):
        flow.start()

    params = httpx.URL(flow.authorize_url).params
    assert params["bot_prompt"] == "aggressive"
    assert params["prompt"] == "consent"


def test_unconfigured_line_login_is_refused(engine):
    with (
        configured({"HIKESHI_LINE_CHANNEL_ID": "", "HIKESHI_LINE_CHANNEL_SECRET": ""}),
        TestClient(Starlette(routes=server.routes)) as plain,
    ):
        response = plain.get("/auth/line/login", follow_redirects=False)
    assert response.headers["location"] == "/?line_error=unavailable"


# ---------------------------------------------------------------------------
# Successful logins


def test_linked_member_gets_a_member_session(flow, engine):
    tenant = make_tenant()
    member = make_member(tenant)
    link_line(tenant, member.id, flow.fake.user.sub)
    start = last_audit_seq(engine, tenant)

    response = flow.login()

    assert response.status_code == 303 and response.headers["location"] == "/"
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie
    actor = flow.actor()
    assert actor is not None
    assert (actor.kind, actor.tenant_id, actor.member_id) == ("member", tenant, member.id)
    assert actor.display_name == member.name
    token_request = flow.fake.token_requests[-1]
    assert token_request["client_secret"] == flow.fake.channel_secret  # client_secret_post
    assert token_request["code_verifier"]
    events = audit_events(engine, tenant, after_seq=start, category=AUTH)
    assert [(e.action, e.outcome) for e in events] == [("login.success", "success")]
    assert json.loads(events[0].details) == {"method": "line"}
    assert events[0].actor_id == str(member.id)
    assert flow.fake.user.sub not in events[0].details


def test_es256_token_from_the_jwks_is_accepted(flow):
    tenant = make_tenant()
    member = make_member(tenant)
    link_line(tenant, member.id, flow.fake.user.sub)
    flow.fake.tamper(flow.fake.sign_es256)

    response = flow.login()

    assert response.headers["location"] == "/"
    assert flow.actor().member_id == member.id


def test_unlinked_line_account_reaches_only_code_entry(flow, engine, platform):
    response = flow.login()

    assert response.headers["location"] == "/"
    actor = flow.actor()
    assert actor is not None
    assert actor.kind == "line_register" and actor.tenant_id is None and not actor.permissions
    assert specs_for(actor) == (LINE_PAGES["line_register"],)
    with pytest.raises(PermissionDenied):
        members.list_members(actor)
    with DbSession(engine) as db:
        pending = db.get(LinePendingLogin, actor.session_id)
    assert pending.stage == "register"
    assert flow.fake.user.sub not in pending.sub_enc
    assert line_sessions.open_sub(pending) == flow.fake.user.sub
    successes = [e for e in platform.new() if e.action == "login.success"]
    assert [json.loads(e.details) for e in successes] == [{"method": "line", "stage": "register"}]


def test_line_account_in_several_brigades_chooses_one(flow, engine):
    first, second = make_tenant("あ消防団" + uuid.uuid4().hex[:6]), make_tenant()
    member_a, member_b = make_member(first), make_member(second)
    link_line(first, member_a.id, flow.fake.user.sub)
    link_line(second, member_b.id, flow.fake.user.sub)

    flow.login()

    chooser = flow.actor()
    assert chooser.kind == "line_choose"
    assert specs_for(chooser) == (LINE_PAGES["line_choose"],)
    choices = line_sessions.brigade_choices(chooser)
    assert {c.tenant_id for c in choices} == {first, second}
    pending_token = flow.session_token

    response = flow.client.post(
        "/auth/line/brigade",
        data={"tenant_id": str(second)},
        headers=ORIGIN,
        follow_redirects=False,
    )

    assert response.headers["location"] == "/"
    actor = flow.actor()
    assert (actor.tenant_id, actor.member_id) == (second, member_b.id)
    assert sessions.resolve(pending_token) is None
    with DbSession(engine) as db:
        assert db.get(LinePendingLogin, chooser.session_id) is None


def test_brigade_choice_cannot_pick_a_brigade_it_is_not_linked_in(flow):
    first, second, other = make_tenant(), make_tenant(), make_tenant()
    link_line(first, make_member(first).id, flow.fake.user.sub)
    link_line(second, make_member(second).id, flow.fake.user.sub)
    flow.login()

    response = flow.client.post(
        "/auth/line/brigade", data={"tenant_id": str(other)}, headers=ORIGIN, follow_redirects=False
    )

    assert response.headers["location"] == "/?line_error=inactive"
    assert flow.actor().kind == "line_choose"


def test_brigade_choice_refuses_cross_site_posts(flow):
    first, second = make_tenant(), make_tenant()
    link_line(first, make_member(first).id, flow.fake.user.sub)
    link_line(second, make_member(second).id, flow.fake.user.sub)
    flow.login()

    response = flow.client.post(
        "/auth/line/brigade",
        data={"tenant_id": str(first)},
        headers={"origin": "https://evil.example"},
        follow_redirects=False,
    )

    assert response.status_code == 403
    assert flow.actor().kind == "line_choose"


def test_registration_sheet_url_leads_to_code_entry_and_links(flow, engine):
    tenant = make_tenant()
    member = make_member(tenant)
    issued = registrations.issue_registration(admin(tenant), member.id)
    uid = registrations.normalise(issued.user_id)

    flow.login(uid)

    assert flow.actor().kind == "line_register"
    assert registrations.pending_user_id(flow.actor()) == issued.user_id
    pending_token = flow.session_token
    response = flow.client.post(
        "/auth/line/register",
        data={"user_id": issued.user_id, "code": issued.code.lower()},
        headers=ORIGIN,
        follow_redirects=False,
    )

    assert response.headers["location"] == "/"
    actor = flow.actor()
    assert (actor.kind, actor.tenant_id, actor.member_id) == ("member", tenant, member.id)
    assert sessions.resolve(pending_token) is None
    for again in ("", uid):  # the bare login button, or the used sheet's URL once more
        flow.client.cookies.clear()
        assert flow.login(again).headers["location"] == "/"
        assert flow.actor().member_id == member.id


def test_wrong_code_over_http_shows_the_message(flow):
    flow.login()

    response = flow.client.post(
        "/auth/line/register",
        data={"user_id": "ABCD-EFGH", "code": "WRONG"},
        headers=ORIGIN,
        follow_redirects=False,
    )

    assert response.headers["location"] == "/?register_error=invalid"
    assert flow.actor().kind == "line_register"


def test_code_entry_lockout_ends_the_pending_login(flow):
    flow.login()
    token = flow.session_token

    for _ in range(5):
        response = flow.client.post(
            "/auth/line/register",
            data={"user_id": "ABCD-EFGH", "code": "WRONG"},
            headers=ORIGIN,
            follow_redirects=False,
        )

    assert response.headers["location"] == "/?line_error=register_locked"
    assert sessions.resolve(token) is None


def test_code_entry_refuses_member_sessions_and_cross_site_posts(flow):
    tenant = make_tenant()
    link_line(tenant, make_member(tenant).id, flow.fake.user.sub)
    flow.login()

    as_member = flow.client.post(
        "/auth/line/register", data={"user_id": "X", "code": "Y"}, headers=ORIGIN
    )
    assert as_member.status_code == 403

    flow.client.cookies.clear()
    flow.fake.user = FakeUser()
    flow.login()
    cross_site = flow.client.post(
        "/auth/line/register",
        data={"user_id": "X", "code": "Y"},
        headers={"origin": "https://evil.example"},
    )
    assert cross_site.status_code == 403


# ---------------------------------------------------------------------------
# Refused ID tokens: one test each


def _claims_with(**overrides: Any):
    return lambda fake: lambda claims: fake.sign_hs256({**claims, **overrides})


def refused_token(flow: Flow, platform: PlatformWatch, make_token, reason: str) -> None:
    tenant = make_tenant()
    link_line(tenant, make_member(tenant).id, flow.fake.user.sub)
    issued: list[str] = []

    def tampered(claims: dict[str, Any]) -> str:
        issued.append(make_token(claims))
        return issued[-1]

    flow.fake.tamper(tampered)
    response = flow.login()

    assert_refused(response, flow, "failed")
    assert_failure_logged(platform, f"id_token:{reason}", issued[0], flow.fake.user.sub)


def test_bad_signature_is_refused(flow, platform):
    refused_token(
        flow, platform, lambda c: flow.fake.sign_hs256(c, secret="x" * 32), "bad_signature"
    )


def test_wrong_audience_is_refused(flow, platform):
    refused_token(
        flow,
        platform,
        lambda c: flow.fake.sign_hs256({**c, "aud": "1999999999"}),
        "invalid_claim:aud",
    )


def test_audience_list_naming_others_too_is_refused(flow, platform):
    make = lambda c: flow.fake.sign_hs256({**c, "aud": [c["aud"], "1999999999"]})  # noqa: E731
    refused_token(flow, platform, make, "invalid_claim:aud")


def test_wrong_issuer_is_refused(flow, platform):
    make = lambda c: flow.fake.sign_hs256({**c, "iss": "https://evil.example"})  # noqa: E731
    refused_token(flow, platform, make, "invalid_claim:iss")


def test_expired_token_is_refused(flow, platform):
    now = int(time.time())
    make = lambda c: flow.fake.sign_hs256({**c, "iat": now - 7200, "exp": now - 3600})  # noqa: E731
    refused_token(flow, platform, make, "expired")


def test_token_issued_in_the_future_is_refused(flow, platform):
    now = int(time.time())
    make = lambda c: flow.fake.sign_hs256({**c, "iat": now + 3600, "exp": now + 7200})  # noqa: E731
    refused_token(flow, platform, make, "invalid_claim:iat")


def test_nonce_mismatch_is_refused(flow, platform):
    make = lambda c: flow.fake.sign_hs256({**c, "nonce": "another-login"})  # noqa: E731
    refused_token(flow, platform, make, "nonce_mismatch")


def test_missing_nonce_is_refused(flow, platform):
    make = lambda c: flow.fake.sign_hs256({k: v for k, v in c.items() if k != "nonce"})  # noqa: E731
    refused_token(flow, platform, make, "missing_claim:nonce")


def test_alg_none_is_refused(flow, platform):
    refused_token(flow, platform, FakeLine.unsigned, "alg_not_allowed")


def test_hs256_signed_with_the_public_jwk_is_refused(flow, platform):
    """Algorithm confusion: an HMAC keyed with LINE's public key material."""
    public = json.dumps(flow.fake.ec_key.as_dict(private=False))
    refused_token(flow, platform, lambda c: flow.fake.sign_hs256(c, secret=public), "bad_signature")


def test_es256_token_signed_by_an_unknown_key_is_refused(flow, platform):
    stranger = ECKey.generate_key("P-256", auto_kid=True)
    refused_token(flow, platform, lambda c: flow.fake.sign_es256(c, key=stranger), "unknown_key")


def test_es256_token_with_a_known_kid_but_another_key_is_refused(flow, platform):
    stranger = ECKey.generate_key("P-256", parameters={"kid": flow.fake.ec_key.kid})
    refused_token(flow, platform, lambda c: flow.fake.sign_es256(c, key=stranger), "bad_signature")


def test_malformed_token_is_refused(flow, platform):
    refused_token(flow, platform, lambda c: "not.a.jwt", "malformed")


def test_unreachable_jwks_refuses_es256(flow, platform):
    flow.start()  # the authorization request already knows the real endpoints
    flow.fake.tamper(flow.fake.sign_es256)
    target = flow.consent()
    line_login._jwks_cache.clear()
    with configured({"HIKESHI_LINE_JWKS_URL": f"http://127.0.0.1:{closed_port()}/certs"}):
        response = flow.callback(target)

    assert_refused(response, flow, "failed")
    assert_failure_logged(platform, "id_token:jwks_unavailable")


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------------
# Refused callbacks


def test_unreachable_token_endpoint_is_refused(flow, platform):
    flow.start()
    target = flow.consent()
    with configured({"HIKESHI_LINE_TOKEN_URL": f"http://127.0.0.1:{closed_port()}/token"}):
        response = flow.callback(target)

    assert_refused(response, flow, "failed")
    assert_failure_logged(platform, "token_endpoint_failed")


def test_state_mismatch_is_refused(flow, platform):
    flow.start()
    target = flow.consent()
    code = httpx.URL(target).params["code"]

    response = flow.callback(f"/auth/line/callback?code={code}&state=forged-state")

    assert_refused(response, flow, "expired")
    assert_failure_logged(platform, "state_mismatch", code)


def test_non_ascii_state_is_refused(flow, platform):
    flow.start()
    code = httpx.URL(flow.consent()).params["code"]

    response = flow.callback(f"/auth/line/callback?code={code}&state=状態")

    assert_refused(response, flow, "expired")
    assert_failure_logged(platform, "state_mismatch")


def test_callback_without_the_browser_cookie_is_refused(flow, platform):
    """Login CSRF: a callback URL planted in another browser has no transaction cookie."""
    flow.start()
    target = flow.consent()
    flow.client.cookies.clear()

    response = flow.callback(target)

    assert_refused(response, flow, "expired")
    assert_failure_logged(platform, "no_auth_request")


def test_replayed_callback_is_refused(flow, platform):
    tenant = make_tenant()
    link_line(tenant, make_member(tenant).id, flow.fake.user.sub)
    flow.start()
    target = flow.consent()
    cookie_value = flow.client.cookies.get(line.AUTH_COOKIE)
    assert flow.callback(target).headers["location"] == "/"
    flow.client.cookies.clear()
    flow.client.cookies.set(line.AUTH_COOKIE, cookie_value, path="/auth/line/")

    response = flow.callback(target)

    assert_refused(response, flow, "expired")
    assert_failure_logged(platform, "unknown_auth_request")


def test_replayed_authorization_code_is_refused(flow, platform):
    tenant = make_tenant()
    link_line(tenant, make_member(tenant).id, flow.fake.user.sub)
    first = flow.login()
    assert first.headers["location"] == "/"
    used_code = httpx.URL(first.request.url).params["code"]
    flow.client.cookies.clear()

    flow.start()
    state = httpx.URL(flow.authorize_url).params["state"]
    response = flow.callback(f"/auth/line/callback?code={used_code}&state={state}")

    assert_refused(response, flow, "failed")
    assert_failure_logged(platform, "token_error:invalid_grant", used_code)


def test_expired_authorization_request_is_refused(flow, platform, engine):
    flow.start()
    target = flow.consent()
    with DbSession(engine) as db:
        for row in db.exec(select(LineAuthRequest)).all():
            row.expires_at = utcnow() - timedelta(seconds=1)
            db.add(row)
        db.commit()

    response = flow.callback(target)

    assert_refused(response, flow, "expired")
    assert_failure_logged(platform, "auth_request_expired")


def test_cancelled_consent_is_refused(flow, platform):
    flow.start()

    response = flow.callback(flow.consent(allow=False))

    assert_refused(response, flow, "cancelled")
    assert_failure_logged(platform, "line_error:access_denied")


def test_error_codes_from_the_query_are_sanitised(flow, platform):
    flow.start()
    state = httpx.URL(flow.authorize_url).params["state"]

    response = flow.callback(f"/auth/line/callback?error=<script>x&state={state}")

    assert_refused(response, flow, "failed")
    assert_failure_logged(platform, "line_error:scriptx")


# ---------------------------------------------------------------------------
# Suspension, reactivation, retirement and unlinking, seen from LINE


@pytest.fixture
def linked(flow):
    tenant = make_tenant()
    member = make_member(tenant)
    link_line(tenant, member.id, flow.fake.user.sub)
    return tenant, member


def test_suspension_ends_the_open_session_and_blocks_login(flow, linked, engine):
    tenant, member = linked
    flow.login()
    token = flow.session_token
    assert sessions.resolve(token).member_id == member.id

    members.suspend_member(admin(tenant), member.id)

    assert sessions.resolve(token) is None
    start = last_audit_seq(engine, tenant)
    flow.client.cookies.clear()
    assert_refused(flow.login(), flow, "inactive")
    events = audit_events(engine, tenant, after_seq=start, category=AUTH)
    assert [(e.action, json.loads(e.details)) for e in events] == [
        ("login.failure", {"method": "line", "reason": "account_inactive"})
    ]


def test_suspended_session_stops_on_its_next_request(flow, linked):
    """Even a session the suspension did not revoke is refused by the status check."""
    tenant, member = linked
    flow.login()
    token = flow.session_token
    members.suspend_member(admin(tenant), member.id)
    with unit_of_work(tenant) as db:
        row = db.exec(
            select(UserSession).where(UserSession.token_hash == sessions.token_hash(token))
        ).one()
        row.revoked_at, row.revoke_reason = None, ""
        db.add(row)
        db.commit()

    assert sessions.resolve(token) is None


def test_reactivation_restores_line_login(flow, linked):
    tenant, member = linked
    members.suspend_member(admin(tenant), member.id)
    members.reactivate_member(admin(tenant), member.id)

    assert flow.login().headers["location"] == "/"
    assert flow.actor().member_id == member.id


def test_retirement_keeps_the_link_but_ends_access(flow, linked, engine):
    tenant, member = linked
    flow.login()
    token = flow.session_token

    members.retire_member(admin(tenant), member.id)

    assert sessions.resolve(token) is None
    flow.client.cookies.clear()
    assert_refused(flow.login(), flow, "inactive")
    with unit_of_work(tenant) as db:
        assert db.exec(select(MemberLine).where(MemberLine.member_id == member.id)).one()


def test_unlinking_ends_line_sessions_and_returns_to_code_entry(flow, linked):
    tenant, member = linked
    flow.login()
    token = flow.session_token

    registrations.unlink_line(admin(tenant), member.id)

    assert sessions.resolve(token) is None
    flow.client.cookies.clear()
    flow.login()
    assert flow.actor().kind == "line_register"


def test_logout_of_a_pending_login(flow):
    flow.login()
    token = flow.session_token

    response = flow.client.post("/auth/logout", headers=ORIGIN, follow_redirects=False)

    assert response.headers["location"] == "/?logged_out=1"
    assert sessions.resolve(token) is None


# ---------------------------------------------------------------------------
# Verification in isolation


def test_verify_id_token_accepts_a_genuine_token(line_env):
    claims = line_env.claims(line_env.user, "n-1")

    verified = line.client().verify_id_token(line_env.sign_hs256(claims), nonce="n-1")

    assert verified["sub"] == line_env.user.sub


def test_fake_verify_endpoint_agrees(line_env):
    """The fake's /verify follows LINE's API: our tokens and its view of them match."""
    token = line_env.sign_hs256(line_env.claims(line_env.user, "n-2"))

    answer = httpx.post(
        line_env.base_url + "/oauth2/v2.1/verify",
        data={"id_token": token, "client_id": line_env.channel_id, "nonce": "n-2"},
    )

    assert answer.status_code == 200 and answer.json()["sub"] == line_env.user.sub


def test_fake_profile_endpoint_answers_for_its_access_tokens(line_env):
    """The fake's token and profile endpoints, driven directly as LINE documents them."""
    verifier = "v" * 43
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=")
    redirect_uri = next(iter(line_env.redirect_uris))
    authorize = httpx.URL(line_env.base_url + "/oauth2/v2.1/authorize").copy_merge_params(
        {
            "response_type": "code",
            "client_id": line_env.channel_id,
            "redirect_uri": redirect_uri,
            "scope": "openid profile",
            "state": "s",
            "code_challenge": challenge.decode(),
            "code_challenge_method": "S256",
        }
    )
    code = httpx.URL(line_env.approve(str(authorize))).params["code"]
    tokens = httpx.post(
        line_env.base_url + "/oauth2/v2.1/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "client_id": line_env.channel_id,
            "client_secret": line_env.channel_secret,
            "code_verifier": verifier,
        },
    ).json()

    profile = httpx.get(
        line_env.base_url + "/v2/profile",
        headers={"authorization": f"Bearer {tokens['access_token']}"},
    )

    assert profile.json()["userId"] == line_env.user.sub
    assert httpx.get(line_env.base_url + "/v2/profile").status_code == 401


def test_ended_pending_logins_are_forgotten(flow, engine):
    flow.login()
    session_id = flow.actor().session_id
    flow.client.post("/auth/logout", headers=ORIGIN)

    flow.start()  # any new login sweeps what ended logins left behind

    with DbSession(engine) as db:
        assert db.get(LinePendingLogin, session_id) is None


def test_settings_refuse_an_unknown_bot_prompt(engine):
    with configured({"HIKESHI_LINE_BOT_PROMPT": "always"}), pytest.raises(ConfigError):
        load_settings()


# ---------------------------------------------------------------------------
# Calls to LINE in the external-service log


EXTERNAL = str(AuditCategory.EXTERNAL)


def external_calls(platform: PlatformWatch) -> list[dict[str, Any]]:
    return [
        json.loads(e.details)
        for e in platform.new()
        if e.category == EXTERNAL and e.action == "external.call"
    ]


def test_token_and_key_requests_are_logged_without_secrets(flow, platform):
    tenant = make_tenant()
    member = make_member(tenant)
    link_line(tenant, member.id, flow.fake.user.sub)
    line_login._jwks_cache.clear()
    flow.fake.tamper(flow.fake.sign_es256)

    assert flow.login().headers["location"] == "/"

    calls = external_calls(platform)
    token_url, jwks_url = line.get_settings().line_token_url, line.get_settings().line_jwks_url
    assert [(c["method"], c["endpoint"], c["status"]) for c in calls] == [
        ("POST", token_url, 200),
        ("GET", jwks_url, 200),
    ]
    assert all(c["service"] == "line" and c["latency_ms"] >= 0 for c in calls)
    logged = json.dumps(calls)
    code = flow.fake.token_requests[-1]["code"]
    for secret in (flow.fake.channel_secret, code, flow.fake.user.sub):
        assert secret not in logged


def test_unreachable_token_endpoint_is_logged_as_a_failed_call(flow, platform, monkeypatch):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{closed_port}/oauth2/v2.1/token"
    monkeypatch.setenv("HIKESHI_LINE_TOKEN_URL", url)
    line.get_settings.cache_clear()
    try:
        flow.start()
        response = flow.callback(flow.consent())
    finally:
        monkeypatch.undo()
        line.get_settings.cache_clear()

    assert_refused(response, flow, "failed")
    (call,) = external_calls(platform)
    assert (call["endpoint"], call["status"], call["error"]) == (url, None, "ConnectError")
    assert_failure_logged(platform, "token_endpoint_failed")


# ---------------------------------------------------------------------------
# Back to the page asked for (web/return_path.py)


def test_a_member_signing_in_from_a_link_returns_to_its_page(flow):
    tenant = make_tenant()
    member = make_member(tenant)
    link_line(tenant, member.id, flow.fake.user.sub)
    page = f"/turnout?incident={uuid.uuid4()}"

    start = flow.client.get("/auth/line/login", params={"next": page}, follow_redirects=False)
    flow.authorize_url = start.headers["location"]
    assert "HttpOnly" in start.headers.get_list("set-cookie")[-1]
    response = flow.callback(flow.consent())

    assert (response.status_code, response.headers["location"]) == (303, page)
    assert flow.actor() is not None
    assert "hikeshi_next" not in flow.client.cookies  # used once


@pytest.mark.parametrize("target", ["//evil.example/turnout", "https://evil.example/"])
def test_a_next_to_another_site_returns_home(flow, target):
    tenant = make_tenant()
    member = make_member(tenant)
    link_line(tenant, member.id, flow.fake.user.sub)
    start = flow.client.get("/auth/line/login", params={"next": target}, follow_redirects=False)
    assert "hikeshi_next" not in start.headers.get("set-cookie", "")
    flow.authorize_url = start.headers["location"]
    assert flow.callback(flow.consent()).headers["location"] == "/"


def test_an_unlinked_line_account_goes_to_code_entry_not_to_the_link(flow):
    start = flow.client.get(
        "/auth/line/login", params={"next": "/turnout?incident=x"}, follow_redirects=False
    )
    flow.authorize_url = start.headers["location"]
    assert flow.callback(flow.consent()).headers["location"] == "/"
