"""Paths of Streamlit's server that nobody outside needs: answered 404 before Streamlit sees
them (#16). /_stcore/metrics tells anyone how many sessions are open and how much the caches
hold; an operator who wants those figures reads them on the host."""

from __future__ import annotations

from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send

HIDDEN = frozenset({"/_stcore/metrics"})


class HiddenPaths:
    def __init__(self, app: ASGIApp, hidden: frozenset[str] = HIDDEN) -> None:
        self.app, self.hidden = app, hidden

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].rstrip("/") in self.hidden:
            await PlainTextResponse("Not Found", status_code=404)(scope, receive, send)
            return
        await self.app(scope, receive, send)
