"""Water sources on a folium map, built from plain data with no Streamlit in sight: the incident
map, the benchmark and the browser tests that render a map from a file use it. (The 水利マップ
page draws with its own component, ui/water_map_view.py, from the same script.)

The base (tiles, scale, scripts and the drawing script) holds no data; the sources travel as
one compact JSON array in a layer (water_layer), which the drawing script
(water_map_frontend/water_layer.js) turns into Leaflet markers: letter icons per kind,
clustered by zoom, memo labels shown only where they fit, and coverage circles in their own
pane beneath the markers. No folium.Marker per source."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import folium
from branca.element import Element, MacroElement
from jinja2 import Template

from services.geo import MapAssets, TileLayer, map_assets
from ui.map_builder import base_map, html_safe_json

KIND_STYLES: dict[str, tuple[str, str]] = {  # kind: (letter, colour)
    "消火栓": ("栓", "#d32f2f"),
    "私設消火栓": ("私", "#ef6c00"),
    "防火水槽": ("槽", "#1565c0"),
    "プール": ("プ", "#00838f"),
    "河川・溝": ("川", "#2e7d32"),
    "濠・池": ("池", "#558b2f"),
    "海・湖": ("海", "#283593"),
    "井戸": ("井", "#6a1b9a"),
    "下水道": ("下", "#5d4037"),
    "その他": ("他", "#455a64"),
}
STATUSES = ("使用可", "使用不可", "点検中")
COVERAGE_PANE = "hikeshiCoverage"  # as water_layer.js names it
FRONTEND = Path(__file__).parent / "water_map_frontend"


def map_points(sources: Iterable[Any], radius_for: Callable[[str], int]) -> list[dict]:
    """The plain data the map needs from each placed source (any object with these attributes)."""
    return [
        {
            "code": s.code,
            "kind": s.kind,
            "status": s.status,
            "memo": s.memo,
            "latitude": s.latitude,
            "longitude": s.longitude,
            "overdue": s.overdue,
            "radius_m": radius_for(s.unit),
        }
        for s in sources
        if s.latitude is not None and s.longitude is not None
    ]


def water_base_map(
    *,
    center: tuple[float, float] | None = None,
    cluster: bool = True,
    tiles: Sequence[TileLayer] | None = None,
    assets: MapAssets | None = None,
) -> folium.Map:
    """The base map (centred on `center`, or all of Japan until a layer fits the view) with
    Leaflet (and Leaflet.markercluster), the drawing script and its styles, holding no data. Add
    water_layer() to it, then the layer control."""
    assets = assets or map_assets()
    m = base_map(center=center, tiles=tiles, assets=assets)
    if cluster:
        m.default_js = [*m.default_js, ("markercluster", assets.cluster_js)]
        m.default_css = [
            *m.default_css,
            *((f"markercluster_{i}", url) for i, url in enumerate(assets.cluster_css)),
        ]
    WaterLayerScript().add_to(m)
    m.get_root().header.add_child(Element(f"<style>{CSS}</style>"), name="hikeshi_water_css")
    return m


def water_layer(
    points: Sequence[Mapping[str, Any]],
    *,
    show_labels: bool = False,
    show_coverage: bool = False,
    cluster: bool = True,
    fit: bool = True,
) -> WaterSourceLayer:
    """The sources (dicts as map_points makes) for a map made by water_base_map; with `fit`, the
    first layer a map shows fits the view to its sources (later ones leave the view alone)."""
    options = {"labels": show_labels, "coverage": show_coverage, "cluster": cluster, "fit": fit}
    return WaterSourceLayer(payload(points), options)


def build_map(
    points: Sequence[Mapping[str, Any]],
    *,
    center: tuple[float, float] | None = None,
    show_labels: bool = False,
    show_coverage: bool = False,
    cluster: bool = True,
    tiles: Sequence[TileLayer] | None = None,
    assets: MapAssets | None = None,
    overlays: Sequence[folium.FeatureGroup] = (),
) -> folium.Map:
    """The whole map in one page: `points` fitted (or centred on `center`) and `overlays`, added
    before the layer control (which lists the layers that exist when it is made)."""
    m = water_base_map(center=center, cluster=cluster, tiles=tiles, assets=assets)
    water_layer(
        points,
        show_labels=show_labels,
        show_coverage=show_coverage,
        cluster=cluster,
        fit=center is None,
    ).add_to(m)
    for overlay in overlays:
        overlay.add_to(m)
    folium.LayerControl(collapsed=True).add_to(m)
    return m


def payload(points: Sequence[Mapping[str, Any]]) -> dict:
    kinds = list(KIND_STYLES)
    rows = [
        [
            round(p["latitude"], 6),
            round(p["longitude"], 6),
            kinds.index(p["kind"]) if p["kind"] in KIND_STYLES else kinds.index("その他"),
            STATUSES.index(p["status"]) if p["status"] in STATUSES else 1,
            1 if p.get("overdue") else 0,
            p["code"],
            p.get("memo") or "",
            p.get("radius_m") or 120,
        ]
        for p in points
    ]
    return {
        "kinds": kinds,
        "letters": [letter for letter, _ in KIND_STYLES.values()],
        "colors": [colour for _, colour in KIND_STYLES.values()],
        "statuses": list(STATUSES),
        "rows": rows,
    }


class WaterSourceLayer(folium.FeatureGroup):
    """The sources as data; window.hikeshiWaterLayer (WaterLayerScript) draws them. A
    FeatureGroup, so that the layer control lists it."""

    _template = Template(
        """
{% macro script(this, kwargs) %}
var {{ this.get_name() }} = window.hikeshiWaterLayer(
  {{ this._parent.get_name() }}, {{ this.data_json }}, {{ this.options_json }}
).addTo({{ this._parent.get_name() }});
{% endmacro %}
"""
    )

    def __init__(self, data: dict, options: dict) -> None:
        super().__init__(name="水利", overlay=True, control=True, show=True)
        self.data_json = html_safe_json(data)
        self.options_json = json.dumps(options)


class WaterLayerScript(MacroElement):
    """Defines window.hikeshiWaterLayer(map, data, options) in the map's page, once."""

    _template = Template(
        "{% macro script(this, kwargs) %}{% raw %}"
        + (FRONTEND / "water_layer.js").read_text(encoding="utf-8")
        + "{% endraw %}{% endmacro %}"
    )


CSS = (FRONTEND / "water_layer.css").read_text(encoding="utf-8")
