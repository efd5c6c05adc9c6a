"""A local stand-in for LINE Login v2.1, served over real HTTP on 127.0.0.1.

Endpoints as LINE documents them: GET /oauth2/v2.1/authorize (here a consent page with 許可する /
キャンセル), POST /oauth2/v2.1/token (authorization_code with PKCE; a code works once),
POST /oauth2/v2.1/verify (ID token verification), GET /v2/profile (Bearer access token),
GET /friendship/v1/status (Bearer access token with the profile scope) and
GET /oauth2/v2.1/certs (the ES256 keys, for native-app tokens). ID tokens are real JWTs, HS256
with the channel secret, as LINE issues them for web login.

Tests choose who is "logged in to LINE" (FakeLine.user) and whether that user has the official
account as a friend (FakeUser.friend, or 友だち追加 on the consent page when bot_prompt asks),
may make the next ID token a bad one (FakeLine.tamper) to see the application refuse it, and may
make the friendship status fail (FakeLine.friendship_status, friendship_delay).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import html
import os
import secrets
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar
from urllib.parse import urlencode, urlsplit

import httpx
import uvicorn
from joserfc import jwt
from joserfc.jwk import ECKey, OctKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

ISSUER = "https://access.line.me"
AUTHORIZE_PATH = "/oauth2/v2.1/authorize"
TOKEN_PATH = "/oauth2/v2.1/token"
VERIFY_PATH = "/oauth2/v2.1/verify"
PROFILE_PATH = "/v2/profile"
CERTS_PATH = "/oauth2/v2.1/certs"
FRIENDSHIP_PATH = "/friendship/v1/status"

# One TLS context for every client the fake browser opens: each new httpx.Client would load the
# CA bundle again (40 ms), and the fake serves plain HTTP anyway.
_TLS = ssl.create_default_context()


def new_sub() -> str:
    """A LINE user id: "U" and 32 hex digits."""
    return "U" + secrets.token_hex(16)


@dataclass
class FakeUser:
    sub: str = field(default_factory=new_sub)
    name: str = "LINE 太郎"
    friend: bool = False  # has the official account linked to the channel as a friend


@dataclass
class _Grant:
    user: FakeUser
    redirect_uri: str
    nonce: str
    code_challenge: str
    scope: str
    issued_at: float


class FakeLine:
    def __init__(self, channel_id: str = "1650000000", channel_secret: str | None = None) -> None:
        self.channel_id = channel_id
        self.channel_secret = channel_secret or secrets.token_hex(16)
        self.redirect_uris: set[str] = set()
        self.user = FakeUser()
        self.ec_key = ECKey.generate_key("P-256", parameters={"alg": "ES256", "use": "sig"})
        self.ec_key.ensure_kid()
        self.authorize_requests: list[dict[str, str]] = []
        self.token_requests: list[dict[str, str]] = []
        self.base_url = ""
        self._pending: dict[str, dict[str, str]] = {}
        self._codes: dict[str, _Grant] = {}
        self._access_tokens: dict[str, _Grant] = {}
        self._tamper: Callable[[dict[str, Any]], str] | None = None
        # the friendship status: the access tokens it was asked with, and a failure to inject
        # (an HTTP status to answer instead, or a delay before answering)
        self.friendship_requests: list[str] = []
        self.friendship_status: int | None = None
        self.friendship_delay = 0.0
        self.app = Starlette(
            routes=[
                Route(AUTHORIZE_PATH, self.authorize, methods=["GET"]),
                Route(AUTHORIZE_PATH + "/consent", self.consent, methods=["POST"]),
                Route(TOKEN_PATH, self.token, methods=["POST"]),
                Route(VERIFY_PATH, self.verify, methods=["POST"]),
                Route(PROFILE_PATH, self.profile, methods=["GET"]),
                Route(FRIENDSHIP_PATH, self.friendship, methods=["GET"]),
                Route(CERTS_PATH, self.certs, methods=["GET"]),
            ]
        )

    # --- what tests configure -------------------------------------------------------------

    def settings_env(self) -> dict[str, str]:
        """HIKESHI_* variables pointing the application at this server."""
        return {
            "HIKESHI_LINE_CHANNEL_ID": self.channel_id,
            "HIKESHI_LINE_CHANNEL_SECRET": self.channel_secret,
            "HIKESHI_LINE_AUTHORIZE_URL": self.base_url + AUTHORIZE_PATH,
            "HIKESHI_LINE_TOKEN_URL": self.base_url + TOKEN_PATH,
            "HIKESHI_LINE_JWKS_URL": self.base_url + CERTS_PATH,
            "HIKESHI_LINE_FRIENDSHIP_URL": self.base_url + FRIENDSHIP_PATH,
        }

    def tamper(self, make_token: Callable[[dict[str, Any]], str]) -> None:
        """The next token response carries make_token(genuine claims) as its ID token."""
        self._tamper = make_token

    def claims(self, user: FakeUser, nonce: str, **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        claims = {
            "iss": ISSUER,
            "sub": user.sub,
            "aud": self.channel_id,
            "exp": now + 3600,
            "iat": now,
            "nonce": nonce,
            "amr": ["linesso"],
            "name": user.name,
            "picture": "https://profile.line-scdn.net/fake",
        }
        claims.update(overrides)
        return claims

    def sign_hs256(self, claims: dict[str, Any], secret: str | None = None) -> str:
        key = OctKey.import_key((secret or self.channel_secret).encode())
        return jwt.encode({"alg": "HS256", "typ": "JWT"}, claims, key)

    def sign_es256(self, claims: dict[str, Any], key: ECKey | None = None) -> str:
        key = key or self.ec_key
        return jwt.encode({"alg": "ES256", "typ": "JWT", "kid": key.kid}, claims, key)

    @staticmethod
    def unsigned(claims: dict[str, Any]) -> str:
        """An "alg": "none" token, built by hand (no library will sign one)."""

        def part(data: dict[str, Any]) -> str:
            raw = jwt.convert_claims(dict(data))
            return base64.urlsafe_b64encode(raw).decode().rstrip("=")

        return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."

    # --- a browser's part, for tests without a browser ---------------------------------------

    def approve(self, authorize_url: str, *, allow: bool = True, add_friend: bool = False) -> str:
        """Open the consent page and press 許可する (or キャンセル), having ticked 友だち追加 if
        add_friend (offered only when the request had bot_prompt); returns the redirect URL."""
        with httpx.Client(timeout=10, verify=_TLS) as client:
            page = client.get(authorize_url)
            page.raise_for_status()
            request_id = page.headers["x-fake-line-request"]
            answer = client.post(
                self.base_url + AUTHORIZE_PATH + "/consent",
                data={
                    "request": request_id,
                    "action": "allow" if allow else "deny",
                    **({"add_friend": "on"} if add_friend else {}),
                },
            )
        assert answer.status_code == 302, answer.text
        return answer.headers["location"]

    # --- endpoints ---------------------------------------------------------------------------

    async def authorize(self, request: Request) -> Response:
        params = dict(request.query_params)
        self.authorize_requests.append(params)
        problem = self._authorize_problem(params)
        if problem:
            return HTMLResponse(f"<p>400 Bad Request: {html.escape(problem)}</p>", status_code=400)
        request_id = secrets.token_urlsafe(16)
        self._pending[request_id] = params
        offer = (
            '<label><input type="checkbox" name="add_friend">公式アカウントを友だち追加</label>'
            if params.get("bot_prompt") in ("normal", "aggressive") and not self.user.friend
            else ""
        )
        page = f"""<!DOCTYPE html><html lang="ja"><head><meta charset="utf-8">
<title>LINE Login (fake)</title></head><body>
<h1>LINE（テスト用）</h1>
<p>{html.escape(self.user.name)} としてログインし、アプリに次の情報の利用を許可しますか。</p>
<ul><li>プロフィール情報</li><li>ユーザーID</li></ul>
<form method="post" action="{AUTHORIZE_PATH}/consent">
<input type="hidden" name="request" value="{request_id}">{offer}
<button type="submit" name="action" value="allow">許可する</button>
<button type="submit" name="action" value="deny">キャンセル</button>
</form></body></html>"""
        return HTMLResponse(page, headers={"x-fake-line-request": request_id})

    def _authorize_problem(self, params: dict[str, str]) -> str:
        if params.get("response_type") != "code":
            return "response_type must be code"
        if params.get("client_id") != self.channel_id:
            return "unknown client_id"
        if params.get("redirect_uri") not in self.redirect_uris:
            return "redirect_uri does not match the callback URL registered for the channel"
        if "openid" not in params.get("scope", "").split():
            return "scope must include openid"
        if not params.get("state"):
            return "state is required"
        if params.get("code_challenge_method", "S256") != "S256" or not params.get(
            "code_challenge"
        ):
            return "PKCE S256 code_challenge is required"
        return ""

    async def consent(self, request: Request) -> Response:
        form = await request.form()
        params = self._pending.pop(str(form.get("request", "")), None)
        if params is None:
            return HTMLResponse("<p>expired</p>", status_code=400)
        answer: dict[str, str]
        if form.get("action") == "allow":
            if form.get("add_friend") == "on" and params.get("bot_prompt"):
                self.user.friend = True
            code = secrets.token_urlsafe(16)
            self._codes[code] = _Grant(
                user=self.user,
                redirect_uri=params["redirect_uri"],
                nonce=params.get("nonce", ""),
                code_challenge=params["code_challenge"],
                scope=params["scope"],
                issued_at=time.time(),
            )
            answer = {"code": code, "state": params["state"]}
        else:
            answer = {
                "error": "access_denied",
                "error_description": "The resource owner denied the request.",
                "state": params["state"],
            }
        return RedirectResponse(f"{params['redirect_uri']}?{urlencode(answer)}", status_code=302)

    async def token(self, request: Request) -> Response:
        form = {k: str(v) for k, v in (await request.form()).items()}
        self.token_requests.append(form)
        if form.get("grant_type") != "authorization_code":
            return _error("unsupported_grant_type")
        if form.get("client_id") != self.channel_id or not secrets.compare_digest(
            form.get("client_secret", ""), self.channel_secret
        ):
            return _error("invalid_client", status=401)
        code = form.get("code", "")
        grant = self._codes.pop(code, None)
        if grant is None:  # unknown, or already exchanged once
            return _error("invalid_grant", "authorization code is invalid or already used")
        if time.time() - grant.issued_at > 600:
            return _error("invalid_grant", "authorization code expired")
        if form.get("redirect_uri") != grant.redirect_uri:
            return _error("invalid_grant", "redirect_uri does not match")
        verifier = form.get("code_verifier", "")
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
        if challenge.decode().rstrip("=") != grant.code_challenge:
            return _error("invalid_grant", "code_verifier does not match")
        claims = self.claims(grant.user, grant.nonce)
        id_token = self._tamper(claims) if self._tamper else self.sign_hs256(claims)
        self._tamper = None
        access_token = secrets.token_urlsafe(32)
        self._access_tokens[access_token] = grant
        return JSONResponse(
            {
                "access_token": access_token,
                "expires_in": 2592000,
                "id_token": id_token,
                "refresh_token": secrets.token_urlsafe(16),
                "scope": grant.scope,
                "token_type": "Bearer",
            },
            headers={"cache-control": "no-store", "pragma": "no-cache"},
        )

    async def verify(self, request: Request) -> Response:
        form = await request.form()
        if form.get("client_id") != self.channel_id:
            return _error("invalid_request", "Invalid client_id.")
        try:
            token = jwt.decode(
                str(form.get("id_token", "")),
                OctKey.import_key(self.channel_secret.encode()),
                algorithms=["HS256"],
            )
        except Exception:
            return _error("invalid_request", "Invalid IdToken.")
        claims = token.claims
        if claims.get("exp", 0) <= time.time():
            return _error("invalid_request", "IdToken expired.")
        if form.get("nonce") and form.get("nonce") != claims.get("nonce"):
            return _error("invalid_request", "Invalid IdToken Nonce.")
        return JSONResponse(claims)

    def _bearer(self, request: Request) -> tuple[str, _Grant | None]:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        return token, self._access_tokens.get(token) if scheme == "Bearer" else None

    async def profile(self, request: Request) -> Response:
        _token, grant = self._bearer(request)
        if grant is None:
            return JSONResponse({"message": "invalid token"}, status_code=401)
        return JSONResponse(
            {
                "userId": grant.user.sub,
                "displayName": grant.user.name,
                "pictureUrl": "https://profile.line-scdn.net/fake",
                "statusMessage": "",
            }
        )

    async def friendship(self, request: Request) -> Response:
        token, grant = self._bearer(request)
        self.friendship_requests.append(token)
        if self.friendship_delay:
            await asyncio.sleep(self.friendship_delay)
        if self.friendship_status is not None:
            return JSONResponse({"message": "injected failure"}, status_code=self.friendship_status)
        if grant is None:
            return JSONResponse({"message": "invalid token"}, status_code=401)
        if "profile" not in grant.scope.split():
            return JSONResponse({"message": "The access token lacks the profile scope"}, 403)
        return JSONResponse({"friendFlag": grant.user.friend})

    async def certs(self, _request: Request) -> Response:
        return JSONResponse({"keys": [self.ec_key.as_dict(private=False)]})


def _error(error: str, description: str = "", status: int = 400) -> JSONResponse:
    body = {"error": error}
    if description:
        body["error_description"] = description
    return JSONResponse(body, status_code=status)


class Servable(Protocol):
    app: Starlette
    base_url: str


_Fake = TypeVar("_Fake", bound=Servable)


@contextmanager
def serve(fake: _Fake) -> Iterator[_Fake]:
    """Run a fake (FakeLine, FakeMessaging) on a free port of 127.0.0.1 in a background thread."""
    # IPPROTO_TCP spelled out: asyncio sets TCP_NODELAY only on sockets that name it, and without
    # it every answer on a kept-alive connection waits 40 ms for a delayed ACK (Nagle).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    host, port = sock.getsockname()
    server = uvicorn.Server(uvicorn.Config(fake.app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("fake LINE server did not start")
        time.sleep(0.02)
    fake.base_url = f"http://{host}:{port}"
    try:
        yield fake
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def callback_target(location: str) -> str:
    """Path and query of a redirect to the application's callback."""
    parts = urlsplit(location)
    return f"{parts.path}?{parts.query}"


# A LINE Login channel, for tests that need one configured but never call LINE (issuing a
# registration code is refused without one).
LOGIN_CHANNEL_ENV = {
    "HIKESHI_LINE_CHANNEL_ID": "1650000000",
    "HIKESHI_LINE_CHANNEL_SECRET": "s" * 32,
}


@contextmanager
def configured(env: dict[str, str]) -> Iterator[None]:
    """The application's settings with these HIKESHI_* variables, restored afterwards."""
    from config import get_settings

    saved = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    get_settings.cache_clear()
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        get_settings.cache_clear()
