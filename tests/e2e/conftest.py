"""The real server (`streamlit run server.py`) on a free port, and Debian's Chromium."""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, Playwright, expect, sync_playwright
from playwright.sync_api import Error as PlaywrightError
from sqlalchemy import Engine

from models import MemberPublic
from services.signin import local
from tests.e2e.offline import OFFLINE_RESOLVER
from tests.factories import PLATFORM, make_member, make_tenant, rank_id

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
# OFFLINE_RESOLVER: every browser test stays on this machine (tests/e2e/offline.py routes only
# where a test checks what a page tried to fetch)
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    OFFLINE_RESOLVER,
]
STARTUP_SECONDS = 60
LOG_TAIL_LINES = 80
SERVER_LOG = pytest.StashKey[Path]()
PASSWORD = "correct horse battery staple"

expect.set_options(timeout=30_000)  # the first run of a page imports pandas and the services


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_until_healthy(server: subprocess.Popen, base_url: str, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if server.poll() is not None:
            break
        try:
            if httpx.get(f"{base_url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    pytest.fail(
        f"server at {base_url} did not become healthy (exit code {server.poll()}); log:\n"
        + log.read_text(errors="replace")
    )


@contextmanager
def serve_app(prefix: str, env: dict[str, str] | None = None) -> Iterator[tuple[str, Path]]:
    """`streamlit run server.py` on a free port with these extra settings, sharing the test
    database (the engine fixture has migrated it and put its URLs and the test keys into
    os.environ); yields its URL and log file."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    data_dir = Path(tempfile.mkdtemp(prefix=prefix))
    log = data_dir / "server.log"
    full_env = (
        os.environ
        | (env or {})
        | {"HIKESHI_DATA_DIR": str(data_dir), "HIKESHI_PUBLIC_BASE_URL": url}
    )
    command = [
        str(ROOT / ".venv" / "bin" / "streamlit"),
        "run",
        "server.py",
        "--server.port",
        str(port),
        "--server.address",
        "127.0.0.1",
        "--server.headless",
        "true",
    ]
    with log.open("wb") as out:
        server = subprocess.Popen(
            command, cwd=ROOT, env=full_env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        _wait_until_healthy(server, url, log)
        yield url, log
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


@pytest.fixture(scope="session")
def base_url(engine: Engine, request: pytest.FixtureRequest) -> Iterator[str]:
    """The app served as in production."""
    with serve_app("hikeshi-e2e-") as (url, log):
        request.config.stash[SERVER_LOG] = log
        yield url


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """A failed browser test shows the server's log: Streamlit shows the browser only a
    redacted error."""
    report = yield
    log = item.config.stash.get(SERVER_LOG, None)
    if report.failed and "base_url" in item.fixturenames and log is not None and log.exists():
        tail = log.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:]
        report.sections.append(("server log (last lines)", "\n".join(tail)))
    return report


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    if not CHROMIUM.exists():
        reason = f"{CHROMIUM} is missing (apt-get install chromium)"
        if os.environ.get("HIKESHI_REQUIRE_BROWSER") == "1":
            pytest.fail(f"HIKESHI_REQUIRE_BROWSER=1 but {reason}")
        pytest.skip(reason)
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="session")
def browser(playwright: Playwright) -> Iterator[Browser]:
    browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
    yield browser
    browser.close()


@dataclass(frozen=True)
class Brigade:
    name: str
    admin_login: str
    member_login: str
    members: tuple[MemberPublic, ...]  # the administrator first, then the rank-and-file


def account(tenant_id: uuid.UUID, member: MemberPublic) -> str:
    """A local account for the member, with PASSWORD; its login name."""
    login_name = f"e2e-{uuid.uuid4().hex[:10]}"
    local.create_account(
        PLATFORM,
        login_name=login_name,
        password=PASSWORD,
        tenant_id=tenant_id,
        member_id=member.id,
        display_name=member.name,
    )
    return login_name


@pytest.fixture(scope="session")
def brigade(engine: Engine) -> Brigade:
    """A brigade seeded through the services: a 団長 and a 団員 with local accounts, plus two
    more members."""
    name = f"ブラウザ消防団{uuid.uuid4().hex[:6]}"
    tenant = make_tenant(name)
    chief = make_member(tenant, rank_id=rank_id(tenant, "団長"))
    member = make_member(tenant)
    others = [make_member(tenant, member_code=f"E2E-{uuid.uuid4().hex[:6]}") for _ in range(2)]
    return Brigade(
        name=name,
        admin_login=account(tenant, chief),
        member_login=account(tenant, member),
        members=(chief, member, *others),
    )


MAP_FRAME = 'iframe[title="streamlit_folium.st_folium"]'  # the incident map (folium)
WATER_MAP_FRAME = 'iframe[title="ui.water_map_view.water_map"]'  # the 水利マップ's own component
MAP_WAIT_SECONDS = 60
FRAME_GONE = ("detached", "destroyed", "closed")


def _in_map_frames(page: Page, expression: str, *, single: bool) -> list[object]:
    """What `expression` gives in each 水利マップ frame now on the page. Should a rerun replace
    the frame, for a moment the old and the new one are both there (single: then none counts)."""
    handles = page.locator(WATER_MAP_FRAME).element_handles()
    if single and len(handles) != 1:
        return []
    values = []
    for handle in handles:
        frame = handle.content_frame()
        try:
            if frame is not None:
                values.append(frame.evaluate(expression))
        except PlaywrightError as error:
            if not any(word in str(error) for word in FRAME_GONE):
                raise
    return values


def wait_in_map(page: Page, condition: str) -> None:
    """Wait until `condition` holds in the map's iframe (either one while a rerun swaps it)."""
    guarded = f"() => {{ try {{ return {condition}; }} catch (e) {{ return false; }} }}"
    deadline = time.monotonic() + MAP_WAIT_SECONDS
    while time.monotonic() < deadline:
        if any(_in_map_frames(page, guarded, single=False)):
            return
        page.wait_for_timeout(250)
    raise AssertionError(f"the map never satisfied {condition}")


def map_value(page: Page, expression: str) -> object:
    """`expression` evaluated in the map's iframe once the page shows exactly one."""
    deadline = time.monotonic() + MAP_WAIT_SECONDS
    while time.monotonic() < deadline:
        if values := _in_map_frames(page, expression, single=True):
            return values[0]
        page.wait_for_timeout(250)
    raise AssertionError(f"no single map frame to evaluate {expression}")


WATCH_RERUNS = """() => {
  const app = document.querySelector("[data-testid=stApp]");
  window.__hkRunsEnded = 0;
  window.__hkStateChanged = performance.now();
  new MutationObserver((records) => {
    window.__hkStateChanged = performance.now();
    // Count from the records, not the attribute now: a quick run can start and end within one
    // batch of records.
    window.__hkRunsEnded += records.filter((r) => r.oldValue === "running").length;
  }).observe(app, {attributes: true, attributeOldValue: true,
                   attributeFilter: ["data-test-script-state"]});
}"""
RERUNS_SETTLED = """(quietMs) => window.__hkRunsEnded > 0
  && document.querySelector("[data-testid=stApp]").dataset.testScriptState === "notRunning"
  && performance.now() - window.__hkStateChanged > quietMs"""


def watch_reruns(page: Page) -> None:
    """Start counting the script runs Streamlit's frontend shows (stApp's data-test-script-state),
    for wait_for_reruns_to_settle."""
    page.evaluate(WATCH_RERUNS)


def wait_for_reruns_to_settle(page: Page, quiet_ms: int = 1000) -> None:
    """Wait until at least one run ended since watch_reruns, and nothing has changed for quiet_ms: a
    component's value (the map's view, reported after a debounce) has reached the server and
    its rerun has ended, however long the machine took."""
    page.wait_for_function(RERUNS_SETTLED, arg=quiet_ms, timeout=60_000)


def submit_login(page: Page, base_url: str, login_name: str, password: str = PASSWORD) -> None:
    page.goto(f"{base_url}/")
    page.locator("input[name=login_name]").fill(login_name)
    page.locator("input[name=password]").fill(password)
    page.locator("form.hikeshi-login button[type=submit]").click()
