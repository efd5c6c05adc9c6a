"""Two application processes (`streamlit run server.py` on two loopback ports: the browser
tests' server and one more) against one PostgreSQL database, as behind a proxy that sends each
request to either (#23): what one process does, the other sees on its next request. HTTP only,
no browser. Also /readyz and /metrics on a real server.

PostgreSQL only: the deployment with several processes is a PostgreSQL one (SQLite is the
single-process embedded default)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import httpx
import pytest

from config import get_settings
from models.base import utcnow
from services.jobs import claims
from services.members import suspend_member
from services.signin import sessions
from services.water_sources.map_data import DATA_ROUTE
from tests.e2e.conftest import PASSWORD, account, serve_app
from tests.factories import admin, make_member, make_tenant, rank_id

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.both_databases,  # the browser tests' PostgreSQL pass; skipped on SQLite below
    pytest.mark.skipif(
        not os.environ.get("HIKESHI_TEST_DATABASE_URL"),
        reason="several processes share a PostgreSQL database (HIKESHI_TEST_DATABASE_URL)",
    ),
]
METRICS_TOKEN = "metrics-" + uuid.uuid4().hex


@pytest.fixture(scope="module")
def servers(base_url: str) -> Iterator[tuple[str, str]]:
    """The browser tests' server and a second process on the same database, with /metrics on."""
    with serve_app("hikeshi-app-b-", {"HIKESHI_METRICS_TOKEN": METRICS_TOKEN}) as (other, _):
        yield base_url, other


@pytest.fixture
def brigade_member() -> tuple[uuid.UUID, uuid.UUID, str]:
    """(brigade, member, login name): a 団長, who may read the water map."""
    tenant = make_tenant()
    member = make_member(tenant, rank_id=rank_id(tenant, "団長"))
    return tenant, member.id, account(tenant, member)


def log_in(base: str, login_name: str, password: str = PASSWORD) -> httpx.Response:
    return httpx.post(
        f"{base}/auth/login",
        data={"login_name": login_name, "password": password},
        headers={"origin": base},
    )


def water_map(base: str, token: str | None) -> int:
    """A request that needs a live session (the map's data): 200, or 403 without one."""
    cookies = {sessions.COOKIE_NAME: token} if token else {}
    headers = {"sec-fetch-site": "same-origin"}
    return httpx.get(f"{base}{DATA_ROUTE}", cookies=cookies, headers=headers).status_code


def test_a_session_made_on_one_process_works_on_the_other_until_logout_there(
    servers, brigade_member
):
    a, b = servers
    login = log_in(a, brigade_member[2])
    token = login.cookies.get(sessions.COOKIE_NAME)
    assert login.status_code == 303 and token

    assert water_map(b, token) == 200
    assert water_map(b, None) == 403
    logout = httpx.post(
        f"{b}/auth/logout", cookies={sessions.COOKIE_NAME: token}, headers={"origin": b}
    )
    assert logout.status_code == 303
    assert water_map(a, token) == 403


def test_a_suspension_takes_effect_on_the_next_request_to_either_process(servers, brigade_member):
    a, b = servers
    tenant, member_id, login_name = brigade_member
    token = log_in(a, login_name).cookies.get(sessions.COOKIE_NAME)
    assert water_map(b, token) == 200

    suspend_member(admin(tenant), member_id)  # as the 団員名簿 page does, in any process

    assert water_map(b, token) == 403
    assert water_map(a, token) == 403
    assert log_in(b, login_name).headers["location"] == "/?login_error=suspended"


def test_the_login_throttle_counts_failures_on_both_processes(servers, brigade_member):
    a, b = servers
    login_name = brigade_member[2]
    for attempt in range(get_settings().login_max_failures):  # spread over both processes
        base = (a, b)[attempt % 2]
        assert log_in(base, login_name, "wrong password").headers["location"] != "/"

    assert log_in(b, login_name).headers["location"] == "/?login_error=locked"
    assert log_in(a, login_name).headers["location"] == "/?login_error=locked"


def test_readyz_wants_a_live_worker_and_metrics_want_the_token(servers):
    b, a = servers  # a: the process with the metrics token
    worker_id = f"test-{uuid.uuid4().hex[:8]}"
    claims.beat(worker_id, utcnow())
    try:
        ready = httpx.get(f"{b}/readyz")
        assert ready.status_code == 200, ready.text
        assert "worker: ok" in ready.text and "migrations: ok" in ready.text
    finally:
        claims.stopped(worker_id)

    assert httpx.get(f"{a}/metrics").status_code == 401
    wrong = httpx.get(f"{a}/metrics", headers={"authorization": "Bearer nope"})
    assert wrong.status_code == 401
    metrics = httpx.get(f"{a}/metrics", headers={"authorization": f"Bearer {METRICS_TOKEN}"})
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain; version=0.0.4")
    lines = metrics.text.splitlines()
    assert 'hikeshi_http_request_duration_seconds_count{route="/healthz"}' in " ".join(lines)
    assert any(line.startswith("hikeshi_active_sessions ") for line in lines)
    assert any(line.startswith("hikeshi_outbox_lag_seconds ") for line in lines)
