"""LINE Login for Hikeshi: the authorization request kept server-side (state, nonce and PKCE
verifier, used once), the callback's checks, and what a verified LINE user id leads to
(services/signin/line_sessions.py). The protocol itself is integrations/line_login.py.
"""

from __future__ import annotations

import hmac
import logging
import secrets
from collections.abc import Mapping
from datetime import timedelta

from sqlalchemy import delete, or_
from sqlmodel import Session as DbSession
from sqlmodel import select

from config import get_settings
from core.actor import Actor, ActorKind, RequestContext, system_actor
from integrations.line_login import (
    LineChannel,
    LineLoginClient,
    LineLoginError,
    safe_code,
)
from models import LineAuthRequest, LinePendingLogin, Session
from models.base import utcnow
from models.enums import AuditCategory
from services import audit
from services.db import unit_of_work
from services.signin import owners
from services.signin.line_friendship import refresh_friendship
from services.signin.line_sessions import LineLoginResult, complete_login
from services.signin.sessions import token_hash
from services.traffic_log import external_call_recorder

AUTH_COOKIE = "hikeshi_line_auth"
CALLBACK_PATH = "/auth/line/callback"
REQUEST_LIFETIME = timedelta(minutes=10)
# Calls to LINE happen before any brigade is known: they are logged in the platform's chain.
LINE_ACTOR = system_actor(None, label="line-login")

log = logging.getLogger(__name__)

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


def client() -> LineLoginClient:
    """The configured channel; its calls go to the platform's external-service log."""
    settings = get_settings()
    channel = LineChannel(
        channel_id=settings.line_channel_id,
        channel_secret=settings.line_channel_secret,
        redirect_uri=callback_url(),
        authorize_url=settings.line_authorize_url,
        token_url=settings.line_token_url,
        jwks_url=settings.line_jwks_url,
        friendship_url=settings.line_friendship_url,
    )
    return LineLoginClient(channel, external_call_recorder(LINE_ACTOR))


def bot_prompt() -> str:
    """How LINE offers the official account at login ("" for not at all). With a Messaging API
    channel the default is "aggressive", a screen of its own after the consent screen (harder
    to pass over than the option "normal" adds to the consent screen): a member who has not
    added the account gets no call-out."""
    settings = get_settings()
    chosen = settings.line_bot_prompt or (
        "aggressive" if settings.line_messaging_configured else "none"
    )
    return "" if chosen == "none" else chosen


# ---------------------------------------------------------------------------
# The authorization request and its server-side state


def begin_login(registration_user_id: str = "") -> tuple[str, str]:
    """The LINE authorization URL and the value of the cookie that finds its state again.

    registration_user_id (already normalised) comes from a registration sheet's URL: while that
    registration is unused, the login leads to code entry even if the LINE account is linked
    elsewhere.
    """
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
    if prompt := bot_prompt():
        options["bot_prompt"] = prompt
    if get_settings().line_prompt_consent:
        options["prompt"] = "consent"
    url = client().authorization_url(state=row.state, code_verifier=row.code_verifier, **options)
    with unit_of_work(None) as db:
        _purge_stale(db)
        db.add(row)
        db.commit()
    return url, key


def _purge_stale(db: DbSession) -> None:
    """Expired authorization requests, and the encrypted LINE ids of ended pending logins
    (their sessions are the platform's rows)."""
    now = utcnow()
    owners.act_for_platform(db)
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
        db.commit()
    if row.expires_at <= utcnow():
        raise LoginFailed("auth_request_expired", "expired")
    return row


# ---------------------------------------------------------------------------
# The callback


def finish_login(
    cookie_value: str | None, params: Mapping[str, str], request: RequestContext
) -> LineLoginResult:
    """Check the callback, exchange the code, verify the ID token, then open a session and
    record whether the official account reaches this LINE account."""
    try:
        if not is_configured():
            raise LoginFailed("not_configured", "unavailable")
        auth_request = _consume_request(cookie_value)
        if error := params.get("error"):
            key = "cancelled" if error == "access_denied" else "failed"
            raise LoginFailed(f"line_error:{safe_code(error)}", key)
        if not hmac.compare_digest(params.get("state", "").encode(), auth_request.state.encode()):
            raise LoginFailed("state_mismatch", "expired")
        if not params.get("code"):
            raise LoginFailed("missing_code")
        line = client()
        tokens = line.exchange_code(params["code"], auth_request.code_verifier)
        claims = line.verify_id_token(tokens.id_token, nonce=auth_request.nonce)
    except LineLoginError as failure:
        _record_failure(failure.reason, request)
        return LineLoginResult(error="failed")
    except LoginFailed as failure:
        _record_failure(failure.reason, request)
        return LineLoginResult(error=failure.message_key)
    result = complete_login(claims["sub"], auth_request.registration_user_id, request)
    try:
        refresh_friendship(
            line, claims["sub"], tokens.access_token, request, result.pending_session
        )
    except Exception:  # the member is signed in already; the status is learned next time
        log.exception("friendship status not recorded")
    return result


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
        db.commit()
