"""HTTP to outside services (LINE), each call recorded in the external-service event log:
endpoint (scheme, host, path), method, status, latency and the error class — never headers,
query strings or bodies, so no code, token or secret can reach the log."""

from __future__ import annotations

import time

import httpx

from core.actor import Actor
from services.event_log import record_external_call


class LoggedTransport(httpx.BaseTransport):
    """Wraps a transport: every request, answered or failed, becomes one external.call event."""

    def __init__(
        self, service: str, actor: Actor, inner: httpx.BaseTransport | None = None
    ) -> None:
        self.service, self.actor = service, actor
        self.inner = inner or httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        started = time.perf_counter()
        try:
            response = self.inner.handle_request(request)
        except httpx.HTTPError as exc:
            self._record(request, None, started, type(exc).__name__)
            raise
        self._record(request, response.status_code, started, "")
        return response

    def close(self) -> None:
        self.inner.close()

    def _record(self, request: httpx.Request, status: int | None, started: float, error: str):
        record_external_call(
            self.actor,
            service=self.service,
            endpoint=str(request.url),
            method=request.method,
            status=status,
            latency_ms=(time.perf_counter() - started) * 1000,
            error=error,
        )
