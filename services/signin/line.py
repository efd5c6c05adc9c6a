"""LINE Login v2.1 (OpenID Connect): the authorization-code flow with state, nonce and PKCE,
and ID token verification in our own code.

Web-login ID tokens are signed HS256 with the channel secret (no kid); ES256 tokens are checked
against the keys at the configured JWKS URL. No other algorithm is accepted, "none" included.
What a verified LINE user id then leads to is auth/line_sessions.py.
"""

from __future__ import annotations

import hmac
import re
import secrets
import time
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import httpx
from authlib.integrations.httpx_client import OAuth2Client, OAuthError
from joserfc import jwt
from joserfc.errors import (
    BadSignatureError,
    ClaimError,
    ExpiredTokenError,
    InvalidKeyIdError,
    JoseError,
)
from joserfc.jwk import ECKey, KeySet, OctKey
from joserfc.jws import extract_compact
from sqlalchemy import delete, or_
from sqlmodel import Session as DbSession
from sqlmodel import select

from config import get_settings
from core.actor import Actor, ActorKind, RequestContext, system_actor
from models import LineAuthRequest, LinePendingLogin, Session
from models.base import utcnow
from models.enums import AuditCategory
from services import audit
from services.db import unit_of_work
from services.external_http import LoggedTransport
from services.signin.line_sessions import LineLoginResult, complete_login
from services.signin.sessions import token_hash

ISSUER = "https://access.line.me"
ALGORITHMS = ("HS256", "ES256")
SCOPE = "openid profile"
AUTH_COOKIE = "hikeshi_line_auth"
CALLBACK_PATH = "/auth/line/callback"
REQUEST_LIFETIME = timedelta(minutes=10)
CLOCK_LEEWAY_SECONDS = 60
JWKS_MAX_AGE_SECONDS = 3600
JWKS_REFRESH_SECONDS = 60
HTTP_TIMEOUT_SECONDS = 10
# Calls to LINE happen before any brigade is known: they are logged in the platform's chain.
LINE_ACTOR = system_actor(None, label="line-login")

MESSAGES = {
    "failed": "LINEでのログインに失敗しました。もう一度お試しください。",
    "expired": "ログインの手続きの有効期限が切れました。もう一度「LINEでログイン」からやり直してください。",
    "cancelled": "LINEでのログインが取り消されました。",
    "inactive": "このアカウントは利用停止中または退団済みのため、ログインできません。団の管理者にお問い合わせください。",
    "unavailable": "LINEでのログインは現在利用できません。",
    "register_locked": "登録コードの入力に続けて失敗したため、手続きを中止しました。団の管理者にお問い合わせください。",
}


class LoginFailed(Exception):
    """A LINE login that must not succeed: reason goes to the audit log, message_key to the user."""

    def __init__(self, reason: str, message_key: str = "failed") -> None:
        super().__init__(reason)
        self.reason = reason
        self.message_key = message_key


def is_configured() -> bool:
    return get_settings().line_configured


def callback_url() -> str:
    return get_settings().public_base_url.rstrip("/") + CALLBACK_PATH


def _client() -> OAuth2Client:
    settings = get_settings()
    return OAuth2Client(
        client_id=settings.line_channel_id,
        client_secret=settings.line_channel_secret,
        token_endpoint_auth_method="client_secret_post",
        scope=SCOPE,
        redirect_uri=callback_url(),
        code_challenge_method="S256",
        timeout=HTTP_TIMEOUT_SECONDS,
        transport=LoggedTransport("line", LINE_ACTOR),
    )


# ---------------------------------------------------------------------------
# The authorization request and its server-side state


def begin_login(registration_user_id: str = "") -> tuple[str, str]:
    """The LINE authorization URL and the value of the cookie that finds its state again.

    registration_user_id (already normalised) comes from a registration sheet's URL: while that
    registration is unused, the login leads to code entry even if the LINE account is linked
    elsewhere.
    """
    settings = get_settings()
    key = secrets.token_urlsafe(32)
    row = LineAuthRequest(
        key_hash=token_hash(key),
        state=secrets.token_urlsafe(32),
        nonce=secrets.token_urlsafe(32),
        code_verifier=secrets.token_urlsafe(64),
        registration_user_id=registration_user_id,
        expires_at=utcnow() + REQUEST_LIFETIME,
    )
    options: dict[str, str] = {"nonce": row.nonce}
    if settings.line_bot_prompt:
        options["bot_prompt"] = settings.line_bot_prompt
    if settings.line_prompt_consent:
        options["prompt"] = "consent"
    with _client() as client:
        url, _ = client.create_authorization_url(
            settings.line_authorize_url, state=row.state, code_verifier=row.code_verifier, **options
        )
    with unit_of_work(None) as db:
        _purge_stale(db)
        db.add(row)
    return url, key


def _purge_stale(db: DbSession) -> None:
    """Expired authorization requests, and the encrypted LINE ids of ended pending logins."""
    now = utcnow()
    db.exec(delete(LineAuthRequest).where(LineAuthRequest.expires_at <= now))
    ended = (
        select(LinePendingLogin.session_id)
        .join(Session, Session.id == LinePendingLogin.session_id)
        .where(or_(Session.revoked_at.is_not(None), Session.expires_at <= now))
    )
    db.exec(delete(LinePendingLogin).where(LinePendingLogin.session_id.in_(ended)))


def _consume_request(cookie_value: str | None) -> LineAuthRequest:
    """The request this browser started, deleted as it is read: a second use finds nothing."""
    if not cookie_value:
        raise LoginFailed("no_auth_request", "expired")
    with unit_of_work(None) as db:
        row = db.exec(
            select(LineAuthRequest)
            .where(LineAuthRequest.key_hash == token_hash(cookie_value))
            .with_for_update()
        ).first()
        if row is None:
            raise LoginFailed("unknown_auth_request", "expired")
        db.delete(row)
    if row.expires_at <= utcnow():
        raise LoginFailed("auth_request_expired", "expired")
    return row


# ---------------------------------------------------------------------------
# The callback


def finish_login(
    cookie_value: str | None, params: Mapping[str, str], request: RequestContext
) -> LineLoginResult:
    """Check the callback, exchange the code, verify the ID token, then open a session."""
    try:
        if not is_configured():
            raise LoginFailed("not_configured", "unavailable")
        auth_request = _consume_request(cookie_value)
        if error := params.get("error"):
            key = "cancelled" if error == "access_denied" else "failed"
            raise LoginFailed(f"line_error:{_safe_code(error)}", key)
        if not hmac.compare_digest(params.get("state", "").encode(), auth_request.state.encode()):
            raise LoginFailed("state_mismatch", "expired")
        if not params.get("code"):
            raise LoginFailed("missing_code")
        id_token = _exchange_code(params["code"], auth_request.code_verifier)
        claims = verify_id_token(id_token, nonce=auth_request.nonce)
    except LoginFailed as failure:
        _record_failure(failure.reason, request)
        return LineLoginResult(error=failure.message_key)
    return complete_login(claims["sub"], auth_request.registration_user_id, request)


def _record_failure(reason: str, request: RequestContext) -> None:
    """A LINE login that failed before any brigade was known: the platform's chain."""
    with unit_of_work(None) as db:
        audit.record(
            db,
            Actor(kind=ActorKind.LINE, display_name="", label="line", request=request),
            category=AuditCategory.AUTH,
            action="login.failure",
            outcome="failure",
            details={"method": "line", "reason": reason},
        )


def _safe_code(text: str) -> str:
    """An error code from the query string, reduced to what an OAuth error code may contain."""
    return re.sub(r"[^a-z0-9_]", "", text.lower())[:40] or "unknown"


def _exchange_code(code: str, code_verifier: str) -> str:
    settings = get_settings()
    try:
        with _client() as client:
            token = client.fetch_token(
                settings.line_token_url,
                grant_type="authorization_code",
                code=code,
                code_verifier=code_verifier,
            )
    except OAuthError as exc:
        raise LoginFailed(f"token_error:{_safe_code(str(exc.error))}") from exc
    except (httpx.HTTPError, ValueError) as exc:
        raise LoginFailed("token_endpoint_failed") from exc
    id_token = token.get("id_token")
    if not isinstance(id_token, str) or not id_token:
        raise LoginFailed("no_id_token")
    return id_token


# ---------------------------------------------------------------------------
# ID token verification


class InvalidIdToken(LoginFailed):
    def __init__(self, reason: str) -> None:
        super().__init__(f"id_token:{reason}")


def verify_id_token(id_token: str, *, nonce: str) -> dict[str, Any]:
    """The verified claims of a LINE ID token, or InvalidIdToken with the reason."""
    settings = get_settings()
    try:
        header = extract_compact(id_token.encode()).headers()
    except (JoseError, ValueError, UnicodeError) as exc:
        raise InvalidIdToken("malformed") from exc
    alg = header.get("alg")
    if alg not in ALGORITHMS:
        raise InvalidIdToken("alg_not_allowed")
    key: OctKey | KeySet = (
        OctKey.import_key(settings.line_channel_secret.encode())
        if alg == "HS256"
        else _jwks(header.get("kid"))
    )
    try:
        token = jwt.decode(id_token, key, algorithms=[alg])
    except InvalidKeyIdError as exc:
        raise InvalidIdToken("unknown_key") from exc
    except BadSignatureError as exc:
        raise InvalidIdToken("bad_signature") from exc
    except (JoseError, ValueError) as exc:
        raise InvalidIdToken("malformed") from exc
    _check_claims(token.claims, nonce=nonce, audience=settings.line_channel_id)
    return token.claims


def _check_claims(claims: dict[str, Any], *, nonce: str, audience: str) -> None:
    registry = jwt.JWTClaimsRegistry(
        leeway=CLOCK_LEEWAY_SECONDS,
        iss={"essential": True, "value": ISSUER},
        sub={"essential": True},
        aud={"essential": True, "value": audience},
        exp={"essential": True},
        iat={"essential": True},
        nonce={"essential": True},
    )
    try:
        registry.validate(claims)
    except ExpiredTokenError as exc:
        raise InvalidIdToken("expired") from exc
    except ClaimError as exc:
        raise InvalidIdToken(f"{exc.error}:{exc.claim}"[:60]) from exc
    if claims["aud"] != audience:  # one audience only: a list naming us among others is not ours
        raise InvalidIdToken("invalid_claim:aud")
    if not isinstance(claims["nonce"], str) or not hmac.compare_digest(
        claims["nonce"].encode(), nonce.encode()
    ):
        raise InvalidIdToken("nonce_mismatch")


_jwks_cache: dict[str, tuple[float, KeySet]] = {}


def _jwks(kid: str | None) -> KeySet:
    """LINE's ES256 keys, cached; refetched (at most once a minute) when a kid is unknown."""
    url = get_settings().line_jwks_url
    fetched_at, keys = _jwks_cache.get(url, (0.0, KeySet([])))
    age = time.monotonic() - fetched_at
    known = any(k.kid == kid for k in keys)
    if age > JWKS_MAX_AGE_SECONDS or (not known and age > JWKS_REFRESH_SECONDS):
        try:
            transport = LoggedTransport("line", LINE_ACTOR)
            with httpx.Client(transport=transport, timeout=HTTP_TIMEOUT_SECONDS) as client:
                response = client.get(url)
            response.raise_for_status()
            keys = KeySet(
                [ECKey.import_key(k) for k in response.json()["keys"] if k.get("kty") == "EC"]
            )
        except (httpx.HTTPError, ValueError, KeyError, TypeError, JoseError) as exc:
            raise InvalidIdToken("jwks_unavailable") from exc
        _jwks_cache[url] = (time.monotonic(), keys)
    return keys
