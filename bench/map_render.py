"""Water map: build time, payload size and browser draw time for 1k / 5k / 20k sources, against
the naive map with one folium.Marker per source, measured in the same run on the same data.

    .venv/bin/python bench/map_render.py [--sizes 1000 5000 20000] [--repeat 3] [--no-browser]

Build = folium.Map construction + rendering the HTML page (what bench, tests and, through
streamlit-folium, the page all do). Payload = that HTML in bytes (the script streamlit-folium sends
is the same JavaScript). Draw = in Chromium (/usr/bin/chromium, file://, tiles failing as
offline, Leaflet from static/vendor), from navigation start until the sources, clustered by
zoom, are on the map (the naive map: every marker).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import folium  # noqa: E402

from services import demo_data, water_rules  # noqa: E402
from services.geo import map_assets, tile_layers  # noqa: E402
from ui.water_map_folium import KIND_STYLES, build_map, map_points  # noqa: E402
from web.vendor import VENDOR_DIR  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
TODAY = date(2026, 11, 26)
FILE_ASSETS = map_assets(VENDOR_DIR.as_uri())  # the pages open from files, not from our server


class Source:
    def __init__(self, demo: demo_data.DemoWaterSource) -> None:
        self.__dict__.update(vars(demo))
        self.overdue = water_rules.is_overdue(demo.last_inspected_on, 365, TODAY)


def sources(n: int) -> list[Source]:
    return [Source(s) for s in demo_data.generate_water_sources(count=n, today=TODAY)]


def naive_map(points: list[dict]) -> folium.Map:
    """What one would write first: the same map, but a folium.Marker with a DivIcon and a
    tooltip for every source."""
    assets = FILE_ASSETS
    m = folium.Map(location=(36.402, 138.249), zoom_start=14, tiles=None, prefer_canvas=True)
    m.default_js = [("leaflet", assets.leaflet_js)]
    m.default_css = [("leaflet_css", assets.leaflet_css)]
    for layer in tile_layers(""):
        folium.TileLayer(layer.url, attr=layer.attribution, name=layer.name).add_to(m)
    for p in points:
        letter, colour = KIND_STYLES[p["kind"]]
        folium.Marker(
            (p["latitude"], p["longitude"]),
            tooltip=f"{p['code']}（{p['kind']}・{p['status']}）{p['memo']}",
            icon=folium.DivIcon(
                html=f'<span class="hk-naive" style="background:{colour}">{letter}</span>',
                icon_size=(24, 24),
                icon_anchor=(12, 12),
            ),
        ).add_to(m)
    folium.LayerControl().add_to(m)
    return m


def timed(build: Callable[[], folium.Map], repeat: int) -> tuple[float, str]:
    times, html = [], ""
    for _ in range(repeat):
        started = time.perf_counter()
        html = build().get_root().render()
        times.append(time.perf_counter() - started)
    return statistics.median(times), html


def streamlit_prepare_seconds(points: list[dict]) -> float:
    """What st_folium does with our map on every rerun before sending it (render, rename, hash)."""
    import streamlit_folium

    m = build_map(points)
    started = time.perf_counter()
    m.get_root().render()
    script = streamlit_folium._get_map_string(m)
    streamlit_folium.generate_js_hash(script, "water_map", False)
    return time.perf_counter() - started


def draw_seconds(browser, html: str, ready: str, repeat: int) -> float:
    from tests.e2e.offline import block_internet

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "map.html"
        path.write_text(html, encoding="utf-8")
        times = []
        for _ in range(repeat):
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            block_internet(context)
            page = context.new_page()
            page.goto(path.as_uri(), wait_until="commit")
            page.wait_for_function(ready, timeout=600_000, polling="raf")
            times.append(page.evaluate("performance.now()") / 1000)
            context.close()
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 5000, 20000])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-browser", action="store_true")
    args = parser.parse_args()

    browser = playwright = None
    if not args.no_browser:
        from playwright.sync_api import sync_playwright

        playwright = sync_playwright().start()
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)

    header = (
        f"{'sources':>8} | {'build s':>8} {'naive':>8} {'ratio':>6} | "
        f"{'payload':>9} {'naive':>9} {'ratio':>6} | {'draw s':>7} {'naive':>7} {'ratio':>6}"
    )
    print(header)
    print("-" * len(header))
    prepare: dict[int, float] = {}
    try:
        for n in args.sizes:
            points = map_points(sources(n), lambda unit: 120)
            ours_s, ours_html = timed(
                lambda p=points: build_map(p, assets=FILE_ASSETS), args.repeat
            )
            naive_s, naive_html = timed(lambda p=points: naive_map(p), max(1, args.repeat // 2))
            row = (
                f"{n:>8} | {ours_s:>8.3f} {naive_s:>8.3f} {naive_s / ours_s:>5.1f}x | "
                f"{len(ours_html.encode()) / 1e6:>7.2f}MB {len(naive_html.encode()) / 1e6:>7.2f}MB "
                f"{len(naive_html) / len(ours_html):>5.1f}x |"
            )
            if browser is not None:
                ours_draw = draw_seconds(
                    browser, ours_html, "window.hikeshiWaterReady === true", args.repeat
                )
                naive_draw = draw_seconds(
                    browser,
                    naive_html,
                    f"document.querySelectorAll('.hk-naive').length >= {len(points)}",
                    max(1, args.repeat // 2),
                )
                row += f" {ours_draw:>7.2f} {naive_draw:>7.2f} {naive_draw / ours_draw:>5.1f}x"
            print(row, flush=True)
            prepare[n] = streamlit_prepare_seconds(points)
    finally:
        if browser is not None:
            browser.close()
            playwright.stop()
    print(
        "\nst_folium's own preparation of our map on each rerun: "
        + ", ".join(f"{n}: {s:.3f} s" for n, s in prepare.items())
    )
    print(
        "ratio = naive / ours (higher is better for ours). Ours is clustered by zoom at any size: "
        "its draw time ends when the clusters and single markers of the first view are drawn."
    )


if __name__ == "__main__":
    main()
