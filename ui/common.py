"""Helpers shared by pages: the signed-in actor of this run and Japanese error display."""

from __future__ import annotations

import streamlit as st

from core.actor import Actor, RequestContext
from services.errors import ServiceError, ValidationError
from services.signin import sessions

ACTOR_KEY = "_hikeshi_actor"


def session_token() -> str | None:
    return st.context.cookies.get(sessions.COOKIE_NAME)


def request_context() -> RequestContext:
    headers = st.context.headers
    return RequestContext(
        client_addr=st.context.ip_address or "",
        user_agent=headers.get("User-Agent", "") if headers else "",
    )


def resolve_actor() -> Actor | None:
    """Build the actor from the session cookie; called once per run by app.py."""
    actor = sessions.resolve(session_token(), request_context())
    st.session_state[ACTOR_KEY] = actor
    return actor


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
