"""/readyz (ready for traffic: database, migrations at head, a live worker) beside /healthz
(alive), and /metrics in Prometheus's text format behind the operator's token.

Request latency is this process's own (each app process is scraped on its own); the other
figures are read from the database and are the same on every process (services/monitoring).
"""

from __future__ import annotations

import bisect
import hmac
import time
from collections import defaultdict
from datetime import datetime

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from config import get_settings
from services import monitoring

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
TEXT_FORMAT = "text/plain; version=0.0.4; charset=utf-8"
OTHER = "other"


class Latency:
    """A histogram of HTTP request durations per route (our routes by path; everything of
    Streamlit's under "other", so no client can grow the label set)."""

    def __init__(self) -> None:
        self.counts: dict[str, list[int]] = defaultdict(lambda: [0] * (len(BUCKETS) + 1))
        self.sums: dict[str, float] = defaultdict(float)

    def observe(self, route: str, seconds: float) -> None:
        self.counts[route][bisect.bisect_left(BUCKETS, seconds)] += 1
        self.sums[route] += seconds

    def lines(self) -> list[str]:
        name = "hikeshi_http_request_duration_seconds"
        out = [f"# HELP {name} HTTP request latency of this process", f"# TYPE {name} histogram"]
        for route in sorted(self.counts):
            counts, total = self.counts[route], 0
            for bound, count in zip((*BUCKETS, float("inf")), counts, strict=True):
                total += count
                out.append(f'{name}_bucket{{route="{route}",le="{_le(bound)}"}} {total}')
            out.append(f'{name}_sum{{route="{route}"}} {self.sums[route]:.6f}')
            out.append(f'{name}_count{{route="{route}"}} {total}')
        return out


def _le(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(bound)


LATENCY = Latency()


class RequestTimer:
    """Times each HTTP request (WebSocket traffic is Streamlit's reruns, not requests) until
    its response has been sent."""

    def __init__(self, app: ASGIApp, routes: frozenset[str]) -> None:
        self.app, self.routes = app, routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        route = scope["path"] if scope["path"] in self.routes else OTHER
        try:
            await self.app(scope, receive, send)
        finally:
            LATENCY.observe(route, time.perf_counter() - started)


async def readyz(_request: Request) -> Response:
    checks = await run_in_threadpool(monitoring.readiness)
    body = "".join(f"{c.name}: {'ok' if c.ok else 'NG'} ({c.detail})\n" for c in checks)
    return PlainTextResponse(body, status_code=200 if all(c.ok for c in checks) else 503)


def authorised(request: Request) -> bool:
    token = get_settings().metrics_token
    given = request.headers.get("authorization", "")
    scheme, _, value = given.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(value.encode(), token.encode())


async def metrics(request: Request) -> Response:
    if not get_settings().metrics_token:
        return PlainTextResponse("Not Found", status_code=404)
    if not authorised(request):
        return PlainTextResponse(
            "unauthorised", status_code=401, headers={"WWW-Authenticate": "Bearer"}
        )
    figures = await run_in_threadpool(monitoring.figures)
    lines = [*LATENCY.lines(), *figure_lines(figures)]
    return Response("\n".join(lines) + "\n", media_type=TEXT_FORMAT)


def _gauge(name: str, help_text: str, samples: list[tuple[str, float]]) -> list[str]:
    out = [f"# HELP {name} {help_text}", f"# TYPE {name} gauge"]
    out += [f"{name}{labels} {float(value)!r}" for labels, value in samples]
    return out


def _stamp(value: datetime | None) -> float:
    return value.timestamp() if value is not None else 0.0


def figure_lines(f: monitoring.Figures) -> list[str]:
    jobs = [(f'{{job="{job.name}"}}', job) for job in f.jobs]
    calls = [
        (f'{{service="{service}",outcome="{outcome}"}}', float(count))
        for (service, outcome), count in sorted(f.external_calls.items())
    ]
    beat = [] if f.heartbeat_age_seconds is None else [("", f.heartbeat_age_seconds)]
    return [
        *_gauge(
            "hikeshi_active_sessions", "signed-in sessions not idle", [("", f.active_sessions)]
        ),
        *_gauge(
            "hikeshi_intake_lag_seconds",
            "age of the oldest received mail not yet handled (0: none waiting)",
            [("", f.intake_lag_seconds)],
        ),
        *_gauge(
            "hikeshi_outbox_lag_seconds",
            "how long the oldest due LINE outbox message has waited (0: none due)",
            [("", f.outbox_lag_seconds)],
        ),
        *_gauge(
            "hikeshi_external_calls_last_hour",
            "calls to outside services in the last hour by outcome (external-service log)",
            calls,
        ),
        *_gauge(
            "hikeshi_job_last_success_timestamp_seconds",
            "when each worker job last succeeded (0: never)",
            [(labels, _stamp(job.last_success)) for labels, job in jobs],
        ),
        *_gauge(
            "hikeshi_job_last_error_timestamp_seconds",
            "when each worker job last failed (0: never)",
            [(labels, _stamp(job.last_error_at)) for labels, job in jobs],
        ),
        *_gauge(
            "hikeshi_job_failures", "failed runs of each job", [(lb, j.failures) for lb, j in jobs]
        ),
        *_gauge("hikeshi_worker_heartbeat_age_seconds", "age of the newest worker heartbeat", beat),
    ]
