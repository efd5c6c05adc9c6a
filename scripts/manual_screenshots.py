"""Take the screenshots of the administrator's manual (docs/manual/images/) from the running app.

    .venv/bin/python scripts/manual_screenshots.py [--only roster,board] [--keep]

A fresh demo brigade (デモ市消防団, all people invented) is made in a temporary directory with
`cli.py bootstrap`; the mail intake receives the sample 出動指令 mail so that 災害出動 has an
incident; the server is started as `make run` starts it; Debian's Chromium signs in as the demo's
団長 and photographs each page in SHOTS at 1280×800. Only loopback is reached: every other request
(the map's background tiles) is aborted, so the pictures do not depend on the network. Nothing
outside the temporary directory and docs/manual/images/ is touched. Run it again after a page
changes, and commit the PNGs; tests/test_manual.py checks that SHOTS and the manual name the same
pictures.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.error import URLError
from urllib.parse import urlsplit
from urllib.request import urlopen

ROOT = Path(__file__).resolve().parent.parent
IMAGES = ROOT / "docs" / "manual" / "images"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
VIEWPORT = {"width": 1280, "height": 800}
LOGIN = "demo-admin"
PASSWORD = "manual-screenshots-" + os.urandom(6).hex()
STARTUP_SECONDS = 90
LOAD_MS = 60_000
SETTLE_MS = 1_500  # after the script run ends: dataframes and charts draw on canvases
MAP_SETTLE_MS = 4_000

# picture name → the page's url path; None is the login page, photographed signed out, and ""
# the first page of the menu, which Streamlit serves at "/" only
SHOTS: dict[str, str | None] = {
    "login": None,
    "home": "home",
    "dashboard": "",
    "roster": "roster",
    "permissions": "permissions",
    "accounts": "accounts",
    "water_map": "water-map",
    "csv_import": "csv-import",
    "export": "export",
    "restore": "restore",
    "mail_sources": "mail-sources",
    "incidents": "incidents",
    "board": "board",
    "reports": "reports",
    "report_settings": "report-settings",
    "event_log": "event-log",
}
SCRIPT_DONE = """() => {
  const app = document.querySelector("[data-testid=stApp]");
  return app !== null && app.dataset.testScriptState === "notRunning"
    && document.querySelector("h1") !== null;
}"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(env: dict[str, str], *args: str, stdin: str | None = None) -> None:
    """A cli.py command; its output (the demo's generated password among it) is not shown."""
    done = subprocess.run(
        [sys.executable, "cli.py", *args],
        cwd=ROOT,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        sys.exit(f"cli.py {args[0]} failed:\n{done.stderr}")


def _wait_for(condition, what: str, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.3)
    sys.exit(
        f"{what} did not happen in {STARTUP_SECONDS} s; log:\n" + log.read_text(errors="replace")
    )


def _healthy(url: str) -> bool:
    try:
        with urlopen(f"{url}/healthz", timeout=2) as answer:
            return answer.status == 200
    except (URLError, OSError):
        return False


@contextmanager
def _process(command: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen]:
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def demo_app(data_dir: Path) -> Iterator[str]:
    """The demo brigade, its mail intake with one sample mail received, and the server; yields
    the server's URL."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("HIKESHI_")} | {
        "HIKESHI_DATA_DIR": str(data_dir),
        "HIKESHI_PUBLIC_BASE_URL": url,
    }
    _run(env, "bootstrap")
    _run(env, "set-password", LOGIN, stdin=PASSWORD + "\n")
    intake_log, server_log = data_dir / "mail-intake.log", data_dir / "server.log"
    intake = [sys.executable, "cli.py", "mail-intake", "--port", str(_free_port())]
    server = [
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
    with (
        _process([*intake, "--send-sample"], env, intake_log),
        _process(server, env, server_log),
    ):
        _wait_for(
            lambda: "送信しました" in intake_log.read_text(errors="replace"),
            "the sample mail",
            intake_log,
        )
        _wait_for(lambda: _healthy(url), "the server's start", server_log)
        yield url


def loopback_only(route) -> None:
    if urlsplit(route.request.url).hostname in ("127.0.0.1", "localhost"):
        route.continue_()
    else:
        route.abort()


def photograph(url: str, names: list[str]) -> None:
    from playwright.sync_api import sync_playwright

    IMAGES.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_context(viewport=VIEWPORT, locale="ja-JP").new_page()
        page.route("**/*", loopback_only)
        page.goto(f"{url}/")
        page.locator("form.hikeshi-login").wait_for(timeout=LOAD_MS)
        if "login" in names:
            _shoot(page, "login")
        page.locator("input[name=login_name]").fill(LOGIN)
        page.locator("input[name=password]").fill(PASSWORD)
        page.locator("form.hikeshi-login button[type=submit]").click()
        page.locator("[data-testid=stSidebarNav]").wait_for(timeout=LOAD_MS)
        for name in names:
            if (path := SHOTS[name]) is not None:
                page.goto(f"{url}/{path}")
                _shoot(page, name)
        browser.close()


def _shoot(page, name: str) -> None:
    page.wait_for_function(SCRIPT_DONE, timeout=LOAD_MS)
    page.wait_for_timeout(MAP_SETTLE_MS if name == "water_map" else SETTLE_MS)
    page.wait_for_function(SCRIPT_DONE, timeout=LOAD_MS)  # a component's value reran the page
    if page.get_by_text("Page not found").count():
        sys.exit(f"{name}: Streamlit does not know the page {page.url}")
    page.screenshot(path=IMAGES / f"{name}.png")
    print(f"{name}.png")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="comma-separated picture names (default: all of SHOTS)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()
    names = args.only.split(",") if args.only else list(SHOTS)
    if unknown := set(names) - set(SHOTS):
        parser.error(f"unknown pictures: {', '.join(sorted(unknown))}")
    if not CHROMIUM.exists():
        sys.exit(f"{CHROMIUM} is missing (apt-get install chromium)")
    data_dir = Path(tempfile.mkdtemp(prefix="hikeshi-manual-"))
    try:
        with demo_app(data_dir) as url:
            photograph(url, names)
    finally:
        if args.keep:
            print(f"kept {data_dir}")
        else:
            shutil.rmtree(data_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
