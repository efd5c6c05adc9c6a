"""HTTP to outside services, each call handed to a recorder for the external-service event log:
endpoint (scheme, host, path), method, status, latency and the error class — never headers,
query strings or bodies, so no code, token or secret can reach the log."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx


@dataclass(frozen=True)
class ExternalCall:
    service: str
    endpoint: str
    method: str
    status: int | None
    latency_ms: float
    error: str  # the exception class of a failed call, "" when answered


Recorder = Callable[[ExternalCall], None]


class LoggedTransport(httpx.BaseTransport):
    """Wraps a transport: every request, answered or failed, is handed to `record` once."""

    def __init__(
        self, service: str, record: Recorder, inner: httpx.BaseTransport | None = None
    ) -> None:
        self.service, self.record = service, record
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
        self.record(
            ExternalCall(
                service=self.service,
                endpoint=str(request.url),
                method=request.method,
                status=status,
                latency_ms=(time.perf_counter() - started) * 1000,
                error=error,
            )
        )
