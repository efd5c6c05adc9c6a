"""GET /vendor/<package>@<version>/<file>: only the files static/vendor/manifest.json lists, with
cache headers for immutable, versioned URLs."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, Response
from starlette.routing import Route

from services.geo import VENDOR_ROUTE
from web.vendor import CACHE_CONTROL, load_manifest, served_files


def vendor_route() -> Route:
    files = served_files(load_manifest())

    async def serve(request: Request) -> Response:
        path = files.get(request.path_params["path"])
        if path is None:
            return PlainTextResponse("Not Found", status_code=404)
        return FileResponse(path, headers={"Cache-Control": CACHE_CONTROL})

    return Route(f"{VENDOR_ROUTE}/{{path:path}}", serve, methods=["GET", "HEAD"])
