"""GET /api/water-map: the signed-in viewer's brigade's water sources as the map draws them
(services.water_sources.map_data), gzip-compressed, with an ETag per brigade and version.

The map in the browser fetches it once per version (#19): the page's reruns carry only the
version, the filters' bit set and the selection. The answer is private and revalidated on every
fetch (no-cache): each fetch passes the session and the access gate again, and an unchanged
version costs a 304 without a body."""

from __future__ import annotations

from collections.abc import Callable

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from core.actor import RequestContext
from services.errors import ServiceError
from services.signin import sessions
from services.water_sources import map_data

FORBIDDEN = "不正なリクエストです。"


def water_map_data_route(
    same_origin: Callable[[Request], bool], context: Callable[[Request], RequestContext]
) -> Route:
    """The route; `same_origin` and `context` are server.py's (Origin/Referer check, client)."""

    def from_our_pages(request: Request) -> bool:
        # A fetch says where it comes from in Sec-Fetch-Site (every current browser); without it,
        # the Origin or Referer must be ours.
        site = request.headers.get("sec-fetch-site")
        return site == "same-origin" if site is not None else same_origin(request)

    async def serve(request: Request) -> Response:
        if not from_our_pages(request):
            return PlainTextResponse(FORBIDDEN, status_code=403)
        token = request.cookies.get(sessions.COOKIE_NAME)
        actor = await run_in_threadpool(sessions.resolve, token, context(request))
        if actor is None:
            return PlainTextResponse(FORBIDDEN, status_code=403)
        try:
            data = await run_in_threadpool(map_data.water_map, actor)
        except ServiceError:
            return PlainTextResponse(FORBIDDEN, status_code=403)
        return answer(request, data)

    return Route(map_data.DATA_ROUTE, serve, methods=["GET"])


def answer(request: Request, data: map_data.WaterMap) -> Response:
    etag = f'"{data.version}"'
    headers = {
        "ETag": etag,
        "Cache-Control": "private, no-cache",
        "Vary": "Accept-Encoding, Cookie",
    }
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    if "gzip" in request.headers.get("accept-encoding", ""):
        headers["Content-Encoding"] = "gzip"
        return Response(data.gzipped, media_type="application/json", headers=headers)
    return Response(data.body, media_type="application/json", headers=headers)
