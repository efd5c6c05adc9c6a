"""水利マップ interactions in Chromium on the demo brigade (#18): how long adding, editing,
inspecting and selecting a water source take, against an idle rerun of the same page.

    .venv/bin/python bench/water_map_clicks.py [--repeat 5]
        [--database-url postgresql://postgres@127.0.0.1:5432/postgres]

The app runs as `streamlit run server.py` on a scratch database seeded with the demo brigade
(what `cli.py bootstrap` seeds: 400 water sources); its administrator is signed in in Chromium
(Playwright, /usr/bin/chromium, 1500×1100, no host name but the loopback's resolving, so tiles
fail as offline) on /water-map. Each round, in one session:

  idle     a rerun that changes nothing (表示's 地図 clicked again): the baseline
  add      登録 in the form at an empty spot on the map, until its notice shows
  edit     保存 in that source's edit form, until its notice shows
  inspect  点検を記録 for that source, until its notice shows
  select   a click on a source marker, until its panel's heading shows

Each is timed in the page's clock from the click (its target scrolled into view beforehand,
off the clock) until its result shows and the server's last message of its last script run has
arrived (a second rerun, as run_action's st.rerun or a reloaded map reporting its view makes,
counts in), the server then quiet for QUIET_MS. Printed: p50 / p95 per interaction and their
ratio to idle's.
"""

from __future__ import annotations

import argparse
import time
import uuid

from board import CHROMIUM, CHROMIUM_ARGS, app_server, p
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import Frame, Locator, Page, sync_playwright
from scratch import Database

from services import demo
from services.signin import local
from tests.e2e.conftest import WATER_MAP_FRAME
from tests.e2e.offline import OFFLINE_RESOLVER
from tests.factories import PASSWORD, PLATFORM

QUIET_MS = 800
TIMEOUT_MS = 120_000
# Every message the server sends on Streamlit's WebSocket, counted and timed in the page's clock
# (a run ends with its script_finished message). Streamlit's own running/notRunning marker
# misses runs shorter than a frame, which a fast page's runs are.
WS_TAP = """(() => {
  const Native = window.WebSocket;
  window.__hkMessages = 0;
  window.__hkLastMessage = performance.now();
  window.WebSocket = class extends Native {
    constructor(...args) {
      super(...args);
      this.addEventListener("message", () => {
        window.__hkMessages += 1;
        window.__hkLastMessage = performance.now();
      });
    }
  };
})();"""
# The time the server's last message arrived, once more than `seen` have and none for `quiet` ms.
LAST_RUN_ENDED = """([seen, quiet]) => window.__hkMessages > seen
  && performance.now() - window.__hkLastMessage > quiet ? window.__hkLastMessage : false"""
QUIET = """(quiet) => performance.now() - window.__hkLastMessage > quiet"""
# The time `text` first shows on the page.
SHOWN = """(text) => document.body.innerText.includes(text) ? performance.now() : false"""
# The first source marker (or, with none, null) whose centre no other marker covers.
TOPMOST_MARKER = """() => {
  for (const el of document.querySelectorAll(".hk-ws")) {
    const r = el.getBoundingClientRect();
    const x = r.left + r.width / 2, y = r.top + r.height / 2;
    if (x < 60 || y < 60 || x > innerWidth - 60 || y > innerHeight - 40) continue;
    const top = document.elementFromPoint(x, y);
    if (top && top.closest(".hk-ws") === el) return el.getAttribute("data-code");
  }
  return null;
}"""
# A spot at least 40 px from every marker and cluster, away from the controls.
EMPTY_SPOT = """() => {
  const centres = [...document.querySelectorAll(".hk-ws, .marker-cluster")].map((el) => {
    const r = el.getBoundingClientRect();
    return [r.left + r.width / 2, r.top + r.height / 2];
  });
  for (let y = 120; y < innerHeight - 60; y += 15) {
    for (let x = 80; x < innerWidth - 80; x += 15) {
      if (centres.every(([cx, cy]) => Math.hypot(cx - x, cy - y) > 40)) return {x, y};
    }
  }
  return null;
}"""


def the_map(page: Page) -> Frame:
    """The map's frame once there is exactly one and its sources are drawn."""
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    while time.monotonic() < deadline:
        frames = [h.content_frame() for h in page.locator(WATER_MAP_FRAME).element_handles()]
        if len(frames) == 1 and frames[0] is not None:
            try:
                if frames[0].evaluate("window.hikeshiWaterReady === true"):
                    return frames[0]
            except PlaywrightError:  # the frame was replaced by a rerun meanwhile
                pass
        page.wait_for_timeout(100)
    raise RuntimeError("the map never settled")


def settle(page: Page) -> None:
    """Wait until the server has sent nothing for QUIET_MS (untimed steps between)."""
    page.wait_for_function(QUIET, arg=QUIET_MS, timeout=TIMEOUT_MS)


def timed(page: Page, target: Locator, shown: str | None) -> float:
    """Seconds from a click on `target` until `shown` shows and the app's last script run has
    ended. The target is scrolled into view first, off the clock: Playwright's scrolling to a
    button below the fold is no part of the app's answer (a quarter of a second for 保存 at the
    foot of the edit form)."""
    target.scroll_into_view_if_needed(timeout=TIMEOUT_MS)
    seen = page.evaluate("window.__hkMessages")
    started = page.evaluate("performance.now()")
    target.click()
    visible = started
    if shown is not None:
        visible = page.wait_for_function(SHOWN, arg=shown, polling="raf", timeout=TIMEOUT_MS)
        visible = visible.json_value()
    ended = page.wait_for_function(
        LAST_RUN_ENDED, arg=[seen, QUIET_MS], timeout=TIMEOUT_MS
    ).json_value()
    the_map(page)
    return (max(visible, ended) - started) / 1000


def sign_in(page: Page, url: str) -> None:
    page.goto(f"{url}/")
    page.locator("input[name=login_name]").fill(demo.ADMIN_LOGIN)
    page.locator("input[name=password]").fill(PASSWORD)
    page.locator("form.hikeshi-login button[type=submit]").click()
    page.get_by_text("ホーム").first.wait_for(timeout=TIMEOUT_MS)
    page.goto(f"{url}/water-map")
    page.get_by_role("heading", name="水利マップ").wait_for(timeout=TIMEOUT_MS)
    the_map(page)
    settle(page)


def clear_selection(page: Page) -> None:
    for key in ("wm_clear", "wm_clear_point"):
        button = page.locator(f".st-key-{key} button")
        if button.count():
            button.click()
            settle(page)
            the_map(page)


def one_round(page: Page, times: dict[str, list[float]]) -> None:
    # 表示's 地図 clicked again: a rerun that draws the same page (地図 either way).
    # Streamlit's "r" shortcut was lost whenever the map's frame held the focus.
    again = page.get_by_test_id("stButtonGroup").get_by_text("地図", exact=True)
    times["idle"].append(timed(page, again, None))

    clear_selection(page)
    spot = the_map(page).evaluate(EMPTY_SPOT)
    page.frame_locator(WATER_MAP_FRAME).locator(".leaflet-container").click(position=spot)
    page.get_by_role("heading", name="選択した地点").wait_for(timeout=TIMEOUT_MS)
    settle(page)
    code = f"B-{uuid.uuid4().hex[:6]}"
    page.get_by_label("水利番号 *").fill(code)
    add = page.get_by_role("button", name="登録", exact=True)
    times["add"].append(timed(page, add, f"{code} を登録しました。"))

    page.get_by_text("編集", exact=True).click()
    page.get_by_label("メモ（ラベル）").last.fill(f"ベンチ {code}")
    save = page.get_by_role("button", name="保存", exact=True)
    times["edit"].append(timed(page, save, f"{code} を保存しました。"))

    page.get_by_label("点検者（団員以外の氏名）").fill("ベンチ 太郎")
    record = page.get_by_role("button", name="点検を記録", exact=True)
    times["inspect"].append(timed(page, record, f"{code} の点検を記録しました。"))

    clear_selection(page)
    frame = the_map(page)
    target = frame.evaluate(TOPMOST_MARKER)
    marker = page.frame_locator(WATER_MAP_FRAME).locator(f'[data-code="{target}"]')
    times["select"].append(timed(page, marker, f"{target}　"))


def measure(db: Database, repeat: int) -> dict[str, list[float]]:
    demo.seed_demo()
    local.set_password(PLATFORM, login_name=demo.ADMIN_LOGIN, password=PASSWORD)
    times: dict[str, list[float]] = {k: [] for k in ("idle", "add", "edit", "inspect", "select")}
    with app_server(db) as url, sync_playwright() as pw:
        # offline in Chromium's resolver: a Playwright route would hold every request (tiles
        # included) for a round trip through this process
        browser = pw.chromium.launch(
            executable_path=CHROMIUM, args=[*CHROMIUM_ARGS, OFFLINE_RESOLVER]
        )
        context = browser.new_context(viewport={"width": 1500, "height": 1100}, locale="ja-JP")
        context.add_init_script(WS_TAP)
        page = context.new_page()
        sign_in(page, url)
        one_round(page, {k: [] for k in times})  # warm: first imports and caches
        for _ in range(repeat):
            one_round(page, times)
        browser.close()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--database-url")
    args = parser.parse_args()
    db = Database(args.database_url)
    try:
        times = measure(db, args.repeat)
    finally:
        db.close()
    idle50, idle95 = p(times["idle"], 50), p(times["idle"], 95)
    print(f"\n水利マップ on the demo brigade ({db.dialect}), {args.repeat} rounds in Chromium")
    for name, values in times.items():
        p50, p95 = p(values, 50), p(values, 95)
        print(
            f"  {name:<8} p50 {p50:6.2f} s  p95 {p95:6.2f} s"
            f"   ratio to idle p50 {p50 / idle50:5.1f}x  p95 {p95 / idle95:5.1f}x"
        )


if __name__ == "__main__":
    main()
