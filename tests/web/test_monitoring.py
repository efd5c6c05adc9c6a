"""/readyz and /metrics as routes (the real server runs them in tests/e2e/
test_two_processes.py), and the latency histogram's text."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Route
from starlette.testclient import TestClient

from models.base import utcnow
from models.jobs import JobRun
from services import monitoring
from services.jobs import claims
from tests.fakes.line_server import configured
from web.monitoring import Latency, RequestTimer, figure_lines, metrics, readyz

pytestmark = pytest.mark.usefixtures("engine")
TOKEN = "t-" + uuid.uuid4().hex


@pytest.fixture
def client():
    app = Starlette(
        routes=[Route("/readyz", readyz), Route("/metrics", metrics)],
        middleware=[Middleware(RequestTimer, routes=frozenset({"/readyz", "/metrics"}))],
    )
    with configured({"HIKESHI_METRICS_TOKEN": TOKEN}), TestClient(app) as test_client:
        yield test_client


def test_metrics_need_the_token(client):
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"authorization": f"Basic {TOKEN}"}).status_code == 401
    assert client.get("/metrics", headers={"authorization": "Bearer x"}).status_code == 401
    answer = client.get("/metrics", headers={"authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 200
    assert 'hikeshi_http_request_duration_seconds_count{route="/metrics"}' in answer.text


def test_metrics_are_off_without_a_token(client):
    with configured({"HIKESHI_METRICS_TOKEN": ""}):
        assert client.get("/metrics", headers={"authorization": "Bearer "}).status_code == 404


def test_readyz_answers_503_without_a_live_worker(client, monkeypatch):
    monkeypatch.setattr(claims, "last_heartbeat", lambda: None)
    answer = client.get("/readyz")
    assert answer.status_code == 503
    assert "worker: NG (no worker heartbeat)" in answer.text
    assert "database: ok" in answer.text


def test_readyz_answers_200_with_a_live_worker(client):
    worker_id = f"test-{uuid.uuid4().hex[:8]}"
    claims.beat(worker_id, utcnow())
    try:
        answer = client.get("/readyz")
    finally:
        claims.stopped(worker_id)
    assert answer.status_code == 200, answer.text


def test_the_histogram_is_cumulative_with_an_infinite_bucket():
    latency = Latency()
    for seconds in (0.001, 0.2, 0.2, 30.0):
        latency.observe("/healthz", seconds)
    lines = latency.lines()
    name = "hikeshi_http_request_duration_seconds"
    assert f'{name}_bucket{{route="/healthz",le="0.005"}} 1' in lines
    assert f'{name}_bucket{{route="/healthz",le="0.25"}} 3' in lines
    assert f'{name}_bucket{{route="/healthz",le="10.0"}} 3' in lines
    assert f'{name}_bucket{{route="/healthz",le="+Inf"}} 4' in lines
    assert f'{name}_count{{route="/healthz"}} 4' in lines


def test_timestamps_keep_every_digit():
    figures = monitoring.Figures(
        active_sessions=1234567,
        intake_lag_seconds=0.0,
        outbox_lag_seconds=2.5,
        external_calls={("line-messaging", "success"): 3},
        jobs=[
            JobRun(name="purge-cancelled", last_success=datetime.fromtimestamp(1765080000.25, UTC))
        ],
        heartbeat_age_seconds=None,
    )
    lines = figure_lines(figures)
    assert "hikeshi_active_sessions 1234567.0" in lines
    assert (
        'hikeshi_job_last_success_timestamp_seconds{job="purge-cancelled"} 1765080000.25' in lines
    )
    assert (
        'hikeshi_external_calls_last_hour{service="line-messaging",outcome="success"} 3.0' in lines
    )
    assert 'hikeshi_job_last_error_timestamp_seconds{job="purge-cancelled"} 0.0' in lines
