"""ASGI entry point: Streamlit (app.py) plus our own HTTP routes, the vendored browser files
(/vendor) and the security headers on every response.

Run with `streamlit run server.py` (Streamlit detects the st.App) or `uvicorn server:app`.
"""

from __future__ import annotations

import ast
import asyncio
import gc
import importlib
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import urlsplit

import streamlit as st
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from config import get_settings
from core.actor import Actor, ActorKind, RequestContext
from services import registrations
from services.db import current_engine
from services.dispatch import line_inbox, line_webhook
from services.signin import line, line_sessions, local, sessions
from ui.registry import page_addresses
from web.hidden_paths import HiddenPaths
from web.monitoring import RequestTimer, metrics, readyz
from web.password_checks import run_password_check
from web.return_path import HOME, NEXT_COOKIE, NEXT_PARAM, safe_return_path
from web.security_headers import SecurityHeaders
from web.unknown_pages import UnknownPages
from web.vendor_route import vendor_route
from web.water_map_data import water_map_data_route

LOGIN_FIELD_LIMIT = 200
WEBHOOK_MAX_BYTES = 1024 * 1024  # LINE's webhook bodies are a few kilobytes


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


def form_text(form: FormData, name: str) -> str:
    """A text field of a posted form, cut to LOGIN_FIELD_LIMIT; a file part counts as empty.
    NUL, which no keyboard types and PostgreSQL refuses in text, becomes U+FFFD: such a value
    then matches nothing, on either database, instead of failing the request (found by
    tests/security/test_route_fuzz.py)."""
    value = form.get(name)
    return value[:LOGIN_FIELD_LIMIT].replace("\x00", "\ufffd") if isinstance(value, str) else ""


def _redirect(location: str) -> RedirectResponse:
    return RedirectResponse(location, status_code=303)


def _database_answers() -> None:
    # A plain read on the driver's connection, outside SQLAlchemy's transaction: on SQLite every
    # transaction begins IMMEDIATE (services/db.py), and the health check would otherwise queue
    # for the write lock behind every writer and report a busy server as dead.
    connection = current_engine().raw_connection()
    try:
        connection.cursor().execute("SELECT 1")
    finally:
        connection.close()


async def healthz(_request: Request) -> Response:
    await run_in_threadpool(_database_answers)  # never block the event loop every user shares
    return PlainTextResponse("ok")


async def login(request: Request) -> Response:
    if not same_origin(request):
        return PlainTextResponse("不正なリクエストです。", status_code=403)
    form = await request.form()
    login_name, password = form_text(form, "login_name"), form_text(form, "password")
    # argon2 and the database run on a password-check thread: the event loop (every user's
    # WebSocket) and the shared thread pool stay free while passwords are checked (#16)
    result = await run_password_check(local.login, login_name, password, request_context(request))
    if result.token is None:
        return _redirect(f"/?login_error={result.error}")
    response = _redirect(safe_return_path(form_text(form, NEXT_PARAM)))
    set_session_cookie(response, result.token)
    return response


def set_session_cookie(response: Response, token: str) -> None:
    settings = get_settings()
    response.set_cookie(
        sessions.COOKIE_NAME,
        token,
        # a session cookie unless the operator asks otherwise; the server ends the session
        # after its idle and absolute limits either way
        max_age=settings.session_absolute_hours * 3600 if settings.persistent_sessions else None,
        path="/",
        httponly=True,
        samesite="lax",
        secure=settings.secure_cookies,
    )


async def logout(request: Request) -> Response:
    if not same_origin(request):
        return PlainTextResponse("不正なリクエストです。", status_code=403)
    await run_in_threadpool(
        sessions.revoke, request.cookies.get(sessions.COOKIE_NAME), request_context(request)
    )
    response = _redirect("/?logged_out=1")
    response.delete_cookie(sessions.COOKIE_NAME, path="/")
    return response


def line_login(request: Request) -> Response:
    """Start LINE Login; ?uid= comes from a registration sheet and leads to code entry, ?next=
    is the page to return to (web/return_path.py), kept beside the request until the callback."""
    if not line.is_configured():
        return _redirect("/?line_error=unavailable")
    user_id = registrations.normalise(request.query_params.get("uid", ""))
    url, cookie_value = line.begin_login(user_id if registrations.valid_user_id(user_id) else "")
    response = _redirect(url)
    cookies = {line.AUTH_COOKIE: cookie_value}
    if (target := safe_return_path(request.query_params.get(NEXT_PARAM))) != HOME:
        cookies[NEXT_COOKIE] = target
    for name, value in cookies.items():
        response.set_cookie(
            name,
            value,
            max_age=int(line.REQUEST_LIFETIME.total_seconds()),
            path="/auth/line/",
            httponly=True,
            samesite="lax",
            secure=get_settings().secure_cookies,
        )
    return response


def line_callback(request: Request) -> Response:
    result = line.finish_login(
        request.cookies.get(line.AUTH_COOKIE),
        dict(request.query_params),
        request_context(request),
    )
    # a login bound to no member yet has only its one page: it returns to "/"
    target = HOME if result.pending_session else request.cookies.get(NEXT_COOKIE)
    response = _signed_in(result.token, f"/?line_error={result.error}", safe_return_path(target))
    response.delete_cookie(line.AUTH_COOKIE, path="/auth/line/")
    response.delete_cookie(NEXT_COOKIE, path="/auth/line/")
    return response


async def line_register(request: Request) -> Response:
    """The code-entry form of a LINE login bound to no member yet."""
    actor = await run_in_threadpool(_line_actor, request, ActorKind.LINE_REGISTER)
    if actor is None:
        return PlainTextResponse("不正なリクエストです。", status_code=403)
    form = await request.form()
    result = await run_in_threadpool(
        registrations.redeem,
        actor,
        user_id=form_text(form, "user_id"),
        code=form_text(form, "code"),
    )
    if result.error == "session_locked":
        response = _redirect("/?line_error=register_locked")
        response.delete_cookie(sessions.COOKIE_NAME, path="/")
        return response
    return _signed_in(result.token, f"/?register_error={result.error}")


async def line_brigade(request: Request) -> Response:
    """A LINE account linked in several brigades picks one."""
    actor = await run_in_threadpool(_line_actor, request, ActorKind.LINE_CHOOSE)
    if actor is None:
        return PlainTextResponse("不正なリクエストです。", status_code=403)
    form = await request.form()
    try:
        tenant_id = uuid.UUID(form_text(form, "tenant_id"))
    except ValueError:
        return _redirect("/")
    result = await run_in_threadpool(line_sessions.choose_brigade, actor, tenant_id)
    return _signed_in(result.token, f"/?line_error={result.error}")


def _line_actor(request: Request, kind: ActorKind) -> Actor | None:
    if not same_origin(request):
        return None
    actor = sessions.resolve(request.cookies.get(sessions.COOKIE_NAME), request_context(request))
    return actor if actor is not None and actor.kind == kind else None


async def line_webhook_route(request: Request) -> Response:
    """LINE's webhook: signature first (over the raw body), events kept once by their id, 200
    at once; the events are handled after the answer on threads of their own."""
    if not get_settings().line_messaging_configured:
        return PlainTextResponse("Not Found", status_code=404)
    body = bytearray()
    async for part in request.stream():
        body += part
        if len(body) > WEBHOOK_MAX_BYTES:
            return PlainTextResponse("too large", status_code=413)
    kept = await run_in_threadpool(
        line_inbox.receive,
        bytes(body),
        request.headers.get("x-line-signature"),
        request_context(request),
    )
    if kept is None:
        return PlainTextResponse("invalid signature", status_code=400)
    line_webhook.submit(kept)  # handled on threads of its own after the answer
    return PlainTextResponse("ok")


def _signed_in(token: str | None, failure: str, target: str = HOME) -> Response:
    if token is None:
        return _redirect(failure)
    response = _redirect(target)
    set_session_cookie(response, token)
    return response


routes = [
    Route("/healthz", healthz, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
    Route("/auth/login", login, methods=["POST"]),
    Route("/auth/logout", logout, methods=["POST"]),
    Route("/auth/line/login", line_login, methods=["GET"]),
    Route(line.CALLBACK_PATH, line_callback, methods=["GET"]),
    Route("/auth/line/register", line_register, methods=["POST"]),
    Route("/auth/line/brigade", line_brigade, methods=["POST"]),
    Route(line_inbox.WEBHOOK_PATH, line_webhook_route, methods=["POST"]),
    vendor_route(),
    water_map_data_route(same_origin, request_context),
]

# the outer one first: a hidden path's or an unknown page's 404 carries the security headers too
route_paths = frozenset(r.path for r in routes if isinstance(r, Route))
middleware = [
    Middleware(RequestTimer, routes=route_paths),
    Middleware(SecurityHeaders),
    Middleware(HiddenPaths),
    Middleware(UnknownPages, pages=page_addresses(), routes=route_paths),
]


# Not imported ahead: the drawing modules (ui.*; this file imports only ui.registry, which draws
# nothing), since one of them declares a custom component
# (streamlit_folium) and a component declared before the runtime serves is not registered
# with it — its files then answer 404 and the map stays blank.
NOT_AHEAD = ("ui", "streamlit_folium")


def page_module_names() -> list[str]:
    """What app.py and the pages import (and altair, which st.bar_chart imports on first use),
    but NOT_AHEAD."""
    root = Path(__file__).parent
    names = {"altair"}
    for script in [root / "app.py", *sorted((root / "app_pages").glob("*.py"))]:
        for node in ast.walk(ast.parse(script.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module)
            elif isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
    return sorted(n for n in names - {"__future__"} if n.split(".")[0] not in NOT_AHEAD)


def import_page_modules() -> None:
    """Import page_module_names before the first visitor: otherwise the first run after a start
    imports pandas, altair and the services, ~3 s added to the first login (#18,
    bench/admin_clicks.py)."""
    for name in page_module_names():
        importlib.import_module(name)


def settle_heap() -> None:
    """Move what the imports left (modules, classes, constants: hundreds of thousands of objects
    that live as long as the process) out of the cyclic collector's sight. Its full
    collections, every few page runs of a big roster, then scan only what the runs made: at
    5,000 members they had cost up to 300 ms of CPU each and set the 団員名簿's p95 (#19,
    bench/roster.py)."""
    gc.collect()
    gc.freeze()


@asynccontextmanager
async def lifespan(_app: st.App) -> AsyncIterator[None]:
    await asyncio.to_thread(import_page_modules)
    settle_heap()
    yield


app = st.App("app.py", routes=routes, middleware=middleware, lifespan=lifespan)
