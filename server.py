"""ASGI entry point: Streamlit (app.py) plus our own HTTP routes.

Run with `streamlit run server.py` (Streamlit detects the st.App) or `uvicorn server:app`.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import streamlit as st
from sqlalchemy import text
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from auth import local, sessions
from auth.actor import RequestContext
from config import get_settings
from services.db import current_engine

LOGIN_FIELD_LIMIT = 200


def request_context(request: Request) -> RequestContext:
    return RequestContext(
        client_addr=request.client.host if request.client else "",
        user_agent=request.headers.get("user-agent", ""),
    )


def same_origin(request: Request) -> bool:
    """Our own pages post forms here; a cross-site post (login CSRF) has another origin."""
    source = request.headers.get("origin") or request.headers.get("referer") or ""
    parts = urlsplit(source)
    if not parts.scheme or not parts.netloc:
        return False
    allowed = {request.url.netloc, urlsplit(get_settings().public_base_url).netloc}
    return parts.netloc in allowed


def _redirect(location: str) -> RedirectResponse:
    return RedirectResponse(location, status_code=303)


async def healthz(_request: Request) -> Response:
    with current_engine().connect() as conn:
        conn.execute(text("SELECT 1"))
    return PlainTextResponse("ok")


async def login(request: Request) -> Response:
    if not same_origin(request):
        return PlainTextResponse("不正なリクエストです。", status_code=403)
    form = await request.form()
    login_name = str(form.get("login_name", ""))[:LOGIN_FIELD_LIMIT]
    password = str(form.get("password", ""))[:LOGIN_FIELD_LIMIT]
    result = local.login(login_name, password, request_context(request))
    if result.token is None:
        return _redirect(f"/?login_error={result.error}")
    response = _redirect("/")
    set_session_cookie(response, result.token)
    return response


def set_session_cookie(response: Response, token: str) -> None:
    settings = get_settings()
    response.set_cookie(
        sessions.COOKIE_NAME,
        token,
        max_age=settings.session_absolute_hours * 3600,
        path="/",
        httponly=True,
        samesite="lax",
        secure=settings.secure_cookies,
    )


async def logout(request: Request) -> Response:
    if not same_origin(request):
        return PlainTextResponse("不正なリクエストです。", status_code=403)
    sessions.revoke(request.cookies.get(sessions.COOKIE_NAME), request_context(request))
    response = _redirect("/?logged_out=1")
    response.delete_cookie(sessions.COOKIE_NAME, path="/")
    return response


routes = [
    Route("/healthz", healthz, methods=["GET"]),
    Route("/auth/login", login, methods=["POST"]),
    Route("/auth/logout", logout, methods=["POST"]),
]

app = st.App("app.py", routes=routes)
