"""Helpers shared by pages: the signed-in actor of this run, Japanese error display, and the one
way a page calls a service that changes something (run_action)."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import streamlit as st

from core.actor import Actor, RequestContext
from core.timefmt import clock_jst, to_jst, today_jst
from services.errors import ServiceError, ValidationError
from services.signin import sessions

# Places, landmarks, names and memos come from mail and from members: shown as typed, never as
# Markdown (a place could otherwise carry a link or :red[…]).
MARKUP = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:])")


def plain(text: str) -> str:
    return MARKUP.sub(r"\\\1", text)


ACTOR_KEY = "_hikeshi_actor"


def session_token() -> str | None:
    return st.context.cookies.get(sessions.COOKIE_NAME)


def request_context() -> RequestContext:
    headers = st.context.headers
    return RequestContext(
        client_addr=st.context.ip_address or "",
        user_agent=headers.get("User-Agent", "") if headers else "",
    )


ENDED_KEY = "session_ended"


def resolve_actor() -> Actor | None:
    """Build the actor from the session cookie; called once per run by app.py."""
    token = session_token()
    actor = sessions.resolve(token, request_context())
    st.session_state[ACTOR_KEY] = actor
    if actor is None and token:
        # the login page says why a session that was open has ended (app_pages/login.py)
        st.session_state[ENDED_KEY] = sessions.ended(token)
    return actor


def session_end_text(actor: Actor) -> str:
    """The sidebar's line on when the session ends: the idle timeout (using the app moves it)
    or the absolute lifetime (nothing does); the date too when it is not today."""
    ends = actor.session_ends_at
    if ends is None:
        return ""
    when = clock_jst(ends) if to_jst(ends)[:10] == today_jst().isoformat() else to_jst(ends)
    if actor.session_ends_idle:
        return f"操作のないまま {when} を過ぎると自動的にログアウトします（入力中の内容は保存されません）。"
    return f"{when} にログインの有効期限が切れ、自動的にログアウトします。"


# How long before the session ends the sidebar warns, and the warning's look. The warning and,
# at the end, the word that the session has ended appear by CSS animation delays counted from
# this run: no script (the page's CSP allows none), no rerun. Every run draws them anew, so using
# the app restarts the count as it moves the idle end.
WARN_BEFORE_SECONDS = 5 * 60
EXPIRY_CSS = """<style>
.hk-expiry-soon, .hk-expiry-ended { max-height: 0; overflow: hidden; opacity: 0;
  border-radius: .4rem; font-size: .9rem; line-height: 1.5; }
.hk-expiry-soon { background: #fff4e5; color: #663c00; }
.hk-expiry-ended { background: #fdecea; color: #611a15; }
@keyframes hk-expiry-show { to { max-height: 20rem; opacity: 1; padding: .6rem .8rem; } }
@keyframes hk-expiry-hide { to { max-height: 0; opacity: 0; padding: 0; } }
</style>"""


def session_expiry_html(actor: Actor, now: datetime | None = None) -> str:
    """The sidebar's warning shortly before the session ends, and its word once it has: empty
    boxes that CSS reveals WARN_BEFORE_SECONDS before the end and at the end."""
    ends = actor.session_ends_at
    if ends is None:
        return ""
    # rounded up: the word that the session has ended must not come before its end
    left = max(0, math.ceil((ends - (now or datetime.now(UTC))).total_seconds()))
    soon = max(0, left - WARN_BEFORE_SECONDS)
    why = (
        "操作のないまま時間が過ぎたため"
        if actor.session_ends_idle
        else "ログインの有効期限が切れたため"
    )
    keep = "続けるには、ページを操作してください。" if actor.session_ends_idle else ""
    return (
        f'<div class="hk-expiry-soon" role="status" style="animation: hk-expiry-show 0s linear '
        f'{soon}s forwards, hk-expiry-hide 0s linear {left}s forwards">'
        f"まもなく（{clock_jst(ends)}）自動的にログアウトします。{keep}"
        "入力中の内容は保存されないため、先に保存してください。</div>"
        f'<div class="hk-expiry-ended" role="alert" style="animation: hk-expiry-show 0s linear '
        f'{left}s forwards">{why}、ログアウトしました。入力中の内容は保存されていません。'
        "ページを再読み込みして、もう一度ログインしてください。</div>" + EXPIRY_CSS
    )


def current_actor() -> Actor:
    actor = st.session_state.get(ACTOR_KEY)
    if actor is None:
        st.stop()
    return actor


def show_error(exc: ServiceError) -> None:
    if isinstance(exc, ValidationError):
        st.error(
            "入力内容を確認してください。\n\n" + "\n".join(f"- {m}" for m in exc.errors.values())
        )
    else:
        st.error(exc.message)


def run_action(
    action: Callable[[], Any],
    notice: str | Callable[[Any], str],
    *,
    notice_key: str,
    then: Callable[[Any], None] | None = None,
    forget: tuple[str, ...] = (),
) -> None:
    """Call a service from a page. Refused: show the Japanese error and stay. Done: keep the
    notice (or notice(result)) under notice_key for the next run, hand the result to `then`, and
    rerun. The session-state keys in `forget` are dropped either way."""
    try:
        result = action()
    except ServiceError as exc:
        show_error(exc)
        return
    finally:
        for key in forget:
            st.session_state.pop(key, None)
    st.session_state[notice_key] = notice(result) if callable(notice) else notice
    if then is not None:
        then(result)
    st.rerun()
