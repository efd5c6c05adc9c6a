"""The app's routes, with the LINE webhook among them, and a bare route that only reads the body
and answers 200: served by uvicorn in a process of its own for bench/callout.py, as the app
serves the webhook in production (the load generator and the tally reader stay in the bench's
process and take no share of this one's interpreter).

    HIKESHI_DATABASE_URL=… .venv/bin/python -m uvicorn bench.webhook_server:app --port N
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

import server


async def bare(request: Request) -> PlainTextResponse:
    await request.body()
    return PlainTextResponse("ok")


app = Starlette(routes=[*server.routes, Route("/bare", bare, methods=["POST"])])
