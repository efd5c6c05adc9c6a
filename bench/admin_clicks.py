"""An administrator's clicks on the demo brigade, timed in Chromium against an idle rerun of the
same page in the same session (#18).

    .venv/bin/python bench/admin_clicks.py [--repeat 5] [--only login,switch,roster,matrix,restore]

A fresh demo brigade (デモ市消防団, `cli.py bootstrap` in a temporary directory, SQLite, the
production argon2 cost) is served as `make run` serves it (`streamlit run server.py` on a free
loopback port); Debian's Chromium (Playwright, /usr/bin/chromium) signs in as its 団長 and, --repeat
times each:

- login:   the password form posted to /auth/login → the first page (ダッシュボード) drawn;
- switch:  ダッシュボード → 団員名簿 in the menu;
- roster:  a member's 備考 changed, 保存 on the 団員名簿 page;
- matrix:  one cell of the rank × role grid changed, 権限を保存 on 役職・権限;
- restore: the demo's own backup uploaded and previewed, its name typed, 復元を実行.

Timed from the click (a capturing pointerdown listener in the page) to the end of the last script
run it caused (its script_finished message on the WebSocket, or stApp's data-test-script-state
going running → notRunning if later, after nothing has changed for QUIET_MS): an action that
reruns the page twice costs both runs. The login is a new
document, so it is timed with the bench's clock from the click to the first page's last run.
Chromium resolves no host name but the loopback's, so nothing leaves the machine; a request that
tried is listed after the figures.

Baseline: an idle rerun of the page the interaction ends on (the "r" key: the same script,
nothing changed), measured the same way between the repetitions. Printed: p50 / p95 seconds of
each, the ratio interaction : idle, and the runs the frontend saw end per interaction.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from playwright.sync_api import BrowserContext, Page, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeout

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scripts.manual_screenshots import LOGIN, PASSWORD, demo_app  # noqa: E402
from tests.e2e.offline import OFFLINE_RESOLVER, is_local  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
# Nothing leaves the machine: OFFLINE_RESOLVER. (A Playwright route per request did the same,
# but each request then waited for a round trip through this process: about 0.5 s added to the
# login, whose new document fetches some 50 files, and next to nothing to the other clicks.)
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    OFFLINE_RESOLVER,
]
BRIGADE = "デモ市消防団"
QUIET_MS = 400
WAIT_MS = 60_000
MEMBER = "M0065"  # a 団員 of the demo roster, not the signed-in 団長
INTERACTIONS = ("login", "switch", "roster", "matrix", "restore")

# Installed in every document before its own scripts: the script runs that ended, and the moment
# of the last click or key press. A run's end is its script_finished message (ForwardMsg field 6)
# arriving on the WebSocket, or the run state's DOM change to notRunning if that comes later: a
# fast run's messages can be drawn in one React batch, and the DOM then never shows "running".
WATCH = """(() => {
  const hk = window.__hk = {ended: 0, lastEnd: 0, changed: performance.now(), click: 0};
  function varint(bytes, at) {
    let value = 0, shift = 0, byte;
    do { byte = bytes[at++]; value += (byte & 0x7f) * 2 ** shift; shift += 7; } while (byte & 0x80);
    return [value, at];
  }
  function scriptFinished(buffer) {  // a top-level field 6 of the ForwardMsg
    const bytes = new Uint8Array(buffer);
    let at = 0, tag, length;
    while (at < bytes.length) {
      [tag, at] = varint(bytes, at);
      if (tag >>> 3 === 6) return true;
      const wire = tag & 7;
      if (wire === 0) [, at] = varint(bytes, at);
      else if (wire === 2) { [length, at] = varint(bytes, at); at += length; }
      else if (wire === 1) at += 8;
      else if (wire === 5) at += 4;
      else return false;
    }
    return false;
  }
  const Native = window.WebSocket;
  window.WebSocket = class extends Native {
    constructor(...args) {
      super(...args);
      this.addEventListener("message", (event) => {
        if (event.data instanceof ArrayBuffer && scriptFinished(event.data)) {
          hk.ended += 1; hk.lastEnd = hk.changed = performance.now();
        }
      });
    }
  };
  new MutationObserver((records) => {
    for (const r of records) {
      if (r.target.dataset.testid !== "stApp") continue;
      hk.changed = performance.now();
      if (r.oldValue === "running") hk.lastEnd = performance.now();
    }
  }).observe(document, {subtree: true, attributes: true, attributeOldValue: true,
                        attributeFilter: ["data-test-script-state"]});
  for (const type of ["pointerdown", "keydown"]) {
    addEventListener(type, () => { hk.click = performance.now(); }, true);
  }
})()"""
DRAWN = """() => {
  const app = document.querySelector("[data-testid=stApp]");
  return app !== null && app.dataset.testScriptState === "notRunning"
    && document.querySelector("[data-testid=stSidebarNav]") !== null
    && document.querySelector("h1") !== null;
}"""
SETTLED = """(quietMs) => {
  const app = document.querySelector("[data-testid=stApp]");
  return window.__hk && window.__hk.ended > 0 && app !== null
    && app.dataset.testScriptState === "notRunning"
    && document.querySelector("h1") !== null
    && performance.now() - window.__hk.changed > quietMs;
}"""


@dataclass
class Figures:
    seconds: list[float] = field(default_factory=list)
    idle: list[float] = field(default_factory=list)
    runs: list[int] = field(default_factory=list)


@contextmanager
def demo_server() -> Iterator[str]:
    """The demo brigade in a temporary directory and the server on it, as the manual's
    screenshots start them (scripts/manual_screenshots.py); yields its URL."""
    data_dir = Path(tempfile.mkdtemp(prefix="hikeshi-clicks-"))
    try:
        with demo_app(data_dir) as url:
            yield url
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


# Requests to anything but this machine (none are expected): listed after the figures.
OUTSIDE: list[str] = []


def new_context(browser) -> BrowserContext:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="ja-JP")
    context.add_init_script(WATCH)
    context.on("request", lambda request: is_local(request.url) or OUTSIDE.append(request.url))
    return context


def settle(page: Page) -> None:
    page.wait_for_function(SETTLED, arg=QUIET_MS, timeout=WAIT_MS)


def timed(page: Page, act: Callable[[], None]) -> tuple[float, int]:
    """Seconds from the click (or key) `act` makes to the end of the last run it caused, and
    the runs that ended."""
    page.evaluate("() => { window.__hk.ended = 0; window.__hk.click = 0; }")
    act()
    settle(page)
    click, end, runs = page.evaluate(
        "() => [window.__hk.click, window.__hk.lastEnd, window.__hk.ended]"
    )
    return (end - click) / 1000, runs


def idle_rerun(page: Page) -> float:
    """The "r" key's rerun; pressed again when a press is lost (focus still moving, the page's
    key handler not yet listening). The page's heading is clicked first: in a document just
    opened by the login's redirect, Streamlit's key handler hears no key before a click."""
    for _ in range(5):
        page.locator("h1").first.click()
        page.evaluate("() => document.activeElement && document.activeElement.blur()")
        page.evaluate("() => { window.__hk.ended = 0; window.__hk.click = 0; }")
        page.keyboard.press("r")
        try:
            page.wait_for_function("() => window.__hk.ended > 0", timeout=3_000)
        except PlaywrightTimeout:
            continue
        settle(page)
        click, end = page.evaluate("() => [window.__hk.click, window.__hk.lastEnd]")
        return (end - click) / 1000
    raise AssertionError("the r key never reran the page")


def sign_in(page: Page, url: str) -> float:
    """Seconds from the login form's submit click to the first page drawn: the new document may
    appear with its first run already over, so the end is when the menu is there and the
    script not running, or the last change of the run state after that."""
    page.goto(f"{url}/")
    page.locator("input[name=login_name]").fill(LOGIN)
    page.locator("input[name=password]").fill(PASSWORD)
    started = time.perf_counter()
    page.locator("form.hikeshi-login button[type=submit]").click()
    page.wait_for_function(DRAWN, timeout=WAIT_MS, polling="raf")
    drawn = time.perf_counter()
    page.wait_for_function(
        f"(q) => ({DRAWN})() && performance.now() - window.__hk.changed > q",
        arg=QUIET_MS,
        timeout=WAIT_MS,
    )
    since_change = page.evaluate("() => performance.now() - window.__hk.changed") / 1000
    return max(drawn, time.perf_counter() - since_change) - started


def open_page(page: Page, label: str) -> None:
    if page.locator("h1").first.inner_text() == label:
        return
    timed(page, page.get_by_test_id("stSidebarNav").get_by_text(label, exact=True).click)
    page.get_by_role("heading", name=label, level=1).wait_for(timeout=WAIT_MS)


def measure_login(browser, url: str, repeat: int, figures: Figures) -> None:
    for _ in range(repeat):
        context = new_context(browser)
        page = context.new_page()
        figures.seconds.append(sign_in(page, url))
        figures.runs.append(page.evaluate("() => window.__hk.ended"))
        figures.idle.append(idle_rerun(page))
        context.close()


def measure_switch(page: Page, repeat: int, figures: Figures) -> None:
    for _ in range(repeat):
        open_page(page, "ダッシュボード")
        nav = page.get_by_test_id("stSidebarNav").get_by_text("団員名簿", exact=True)
        seconds, runs = timed(page, nav.click)
        page.get_by_role("heading", name="団員名簿", level=1).wait_for(timeout=WAIT_MS)
        figures.seconds.append(seconds)
        figures.runs.append(runs)
        figures.idle.append(idle_rerun(page))


def measure_roster(page: Page, repeat: int, figures: Figures) -> None:
    open_page(page, "団員名簿")
    for n in range(repeat):
        page.get_by_role("combobox", name="詳細を表示する団員").click()
        page.keyboard.type(MEMBER)
        timed(page, lambda: page.keyboard.press("Enter"))
        page.get_by_role("textbox", name="備考").fill(f"ベンチ {n} {time.time()}")
        save = page.get_by_test_id("stFormSubmitButton").get_by_role("button", name="保存")
        seconds, runs = timed(page, save.click)
        page.get_by_text("さんの情報を保存しました").wait_for(timeout=WAIT_MS)
        figures.seconds.append(seconds)
        figures.runs.append(runs)
        figures.idle.append(idle_rerun(page))


def choose_in_grid(page: Page, value: str) -> None:
    """Double-click the cell, type the value into its dropdown and pick it, until the page
    counts the change (the grid is a canvas: the cell is found by its place, and a click on a
    grid still drawing can be lost)."""
    for _ in range(3):
        grid = page.get_by_test_id("stDataFrame").first
        grid.scroll_into_view_if_needed()
        page.wait_for_timeout(300)
        box = grid.bounding_box()
        page.mouse.dblclick(box["x"] + 360, box["y"] + 35 + 8 * 35 + 17)
        page.keyboard.type(value)
        option = page.get_by_role("option", name=value, exact=True)
        page.evaluate("() => { window.__hk.ended = 0; }")
        try:
            option.click(timeout=3_000)
            page.get_by_text("未保存の変更: 1 件").wait_for(timeout=5_000)
        except PlaywrightTimeout:
            page.keyboard.press("Escape")
            continue
        settle(page)
        return
    raise AssertionError(f"the grid never took {value}")


def measure_matrix(page: Page, repeat: int, figures: Figures) -> None:
    """Toggles ダッシュボード of 役職: 会計 (the ninth row of the first tab) between なし and 閲覧."""
    open_page(page, "役職・権限")
    for n in range(repeat):
        choose_in_grid(page, ("閲覧", "なし")[n % 2])
        save = page.get_by_role("button", name="権限を保存")
        seconds, runs = timed(page, save.click)
        page.get_by_text("1 件の権限を保存しました").wait_for(timeout=WAIT_MS)
        figures.seconds.append(seconds)
        figures.runs.append(runs)
        figures.idle.append(idle_rerun(page))


def backup_file(page: Page) -> bytes:
    open_page(page, "CSV出力・バックアップ")
    timed(page, page.get_by_role("button", name="バックアップを作成").click)
    with page.expect_download(timeout=WAIT_MS) as download:
        page.get_by_role("button", name="をダウンロード").last.click()
    return Path(download.value.path()).read_bytes()


def measure_restore(page: Page, repeat: int, figures: Figures) -> None:
    data = backup_file(page)
    open_page(page, "復元")
    for _ in range(repeat):
        upload = page.get_by_test_id("stFileUploaderDropzoneInput")
        files = [{"name": "backup.zip", "mimeType": "application/zip", "buffer": data}]
        timed(page, partial(upload.set_input_files, files=files))
        page.get_by_role("heading", name="バックアップの内容").wait_for(timeout=WAIT_MS)
        name = page.get_by_role("textbox", name="確認のため")
        name.fill(BRIGADE)
        timed(page, partial(name.press, "Enter"))
        apply = page.get_by_role("button", name="復元を実行")
        page.wait_for_function(
            "() => [...document.querySelectorAll('button')].some("
            "b => b.innerText.includes('復元を実行') && !b.disabled)",
            timeout=WAIT_MS,
        )
        idle = idle_rerun(page)  # the previewed page, as it stands before the click
        seconds, runs = timed(page, apply.click)
        page.get_by_text("のバックアップから復元しました").first.wait_for(timeout=WAIT_MS)
        figures.seconds.append(seconds)
        figures.runs.append(runs)
        figures.idle.append(idle)


def quantile(values: list[float], q: int) -> float:
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def report(results: dict[str, Figures], cold_login: float) -> None:
    print(f"\nfirst login after the server started (imports, caches cold): {cold_login:.2f} s")
    header = (
        f"{'interaction':<9} {'n':>2} | {'p50 s':>6} {'p95 s':>6} | {'idle p50':>8} "
        f"{'idle p95':>8} | {'ratio p50':>9} {'ratio p95':>9} | runs"
    )
    print(header)
    print("-" * len(header))
    for name, f in results.items():
        p50, p95 = quantile(f.seconds, 50), quantile(f.seconds, 95)
        i50, i95 = quantile(f.idle, 50), quantile(f.idle, 95)
        print(
            f"{name:<9} {len(f.seconds):>2} | {p50:>6.2f} {p95:>6.2f} | {i50:>8.2f} {i95:>8.2f} "
            f"| {p50 / i50:>8.1f}x {p95 / i95:>8.1f}x | {','.join(map(str, f.runs))}"
        )
    print(
        "ratio = interaction / idle rerun of the page it ends on; runs = script runs that "
        "ended per click (script_finished messages; a run cut short by st.rerun counts)."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--only", default=",".join(INTERACTIONS))
    args = parser.parse_args()
    chosen = [name for name in INTERACTIONS if name in args.only.split(",")]
    results = {name: Figures() for name in chosen}
    started = time.monotonic()
    with demo_server() as url, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = new_context(browser)
        page = context.new_page()
        cold_login = sign_in(page, url)
        for name in chosen:
            if name == "login":
                measure_login(browser, url, args.repeat, results[name])
            else:
                measure = {
                    "switch": measure_switch,
                    "roster": measure_roster,
                    "matrix": measure_matrix,
                    "restore": measure_restore,
                }[name]
                try:
                    measure(page, args.repeat, results[name])
                except Exception:
                    shot = Path(tempfile.gettempdir()) / f"admin_clicks_{name}.png"
                    page.screenshot(path=shot, full_page=True)
                    print(f"  {name} failed; the page: {shot}", flush=True)
                    raise
            print(f"  {name} done ({time.monotonic() - started:.0f} s)", flush=True)
        browser.close()
    report(results, cold_login)
    if OUTSIDE:
        print(f"requests to outside this machine (failed): {len(OUTSIDE)}, e.g. {OUTSIDE[0]}")


if __name__ == "__main__":
    main()
