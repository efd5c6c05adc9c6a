"""The water map as a folium.Map built from plain data, with no Streamlit in sight (the page, the
benchmark and the tests share it).

All sources travel as one compact JSON array; a few lines of JavaScript turn them into Leaflet
markers in the browser (letter icons per kind, clustered when there are many) and, when the
coverage overlay is switched on, into canvas circles. No folium.Marker per source."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import folium
from branca.element import Element
from folium.elements import JSCSSMixin
from folium.map import Layer
from jinja2 import Template

from services.geo import MapAssets, TileLayer, map_assets
from ui.map_builder import base_map, fit_to, html_safe_json

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
CLUSTER_ABOVE = 1000
POSITION_TOLERANCE = 1e-6


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


def source_at(
    sources: Iterable[Any], lat: float, lon: float, tooltip: str | None = None
) -> Any | None:
    """The source a marker click reported: by position (the map rounds to 1e-6°), then, if
    several share it, by the code the tooltip starts with or the label it shows."""
    here = [
        s
        for s in sources
        if s.latitude is not None
        and s.longitude is not None
        and abs(s.latitude - lat) <= POSITION_TOLERANCE
        and abs(s.longitude - lon) <= POSITION_TOLERANCE
    ]
    if len(here) > 1 and tooltip:
        text = tooltip.strip()
        named = [s for s in here if text.startswith(f"{s.code}（") or (s.memo and text == s.memo)]
        here = named or here
    return min(
        here, key=lambda s: (abs(s.latitude - lat) + abs(s.longitude - lon), s.code), default=None
    )


def build_map(
    points: Sequence[Mapping[str, Any]],
    *,
    center: tuple[float, float] | None = None,
    show_labels: bool = False,
    show_coverage: bool = False,
    cluster: bool | None = None,
    tiles: Sequence[TileLayer] | None = None,
    assets: MapAssets | None = None,
    overlays: Sequence[folium.FeatureGroup] = (),
) -> folium.Map:
    """The base map with `points` (dicts as map_points makes), fitted to them, or centred on
    `center`, and `overlays` (a layer added after the layer control, which lists the layers
    before it exists, breaks the map's script)."""
    assets = assets or map_assets()
    m = base_map(center=center, tiles=tiles, assets=assets)
    clustered = len(points) > CLUSTER_ABOVE if cluster is None else cluster
    markers = WaterSourceLayer(points, show_labels=show_labels, cluster=clustered, assets=assets)
    markers.add_to(m)
    CoverageLayer(markers, show=show_coverage).add_to(m)
    for overlay in overlays:
        overlay.add_to(m)
    folium.LayerControl(collapsed=True).add_to(m)
    m.get_root().header.add_child(Element(f"<style>{CSS}</style>"), name="hikeshi_water_css")
    if center is None:
        fit_to(m, ((p["latitude"], p["longitude"]) for p in points))
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


class WaterSourceLayer(JSCSSMixin, Layer):
    """The sources as Leaflet markers made in the browser from one JSON array."""

    _template = Template(
        """
{% macro script(this, kwargs) %}
var {{ this.get_name() }} = (function () {
  var data = {{ this.data_json }};
  var options = {{ this.options_json }};
  var GREY = "#9e9e9e";
  var icons = {};
  function esc(text) {
    return String(text).replace(/[&<>"']/g, function (c) {
      return {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c];
    });
  }
  function icon(kind, status, overdue) {
    var key = kind * 6 + status * 2 + overdue;
    if (!icons[key]) {
      var classes = "hk-ws hk-ws-s" + status + (overdue ? " hk-ws-overdue" : "");
      var colour = status === 1 ? GREY : data.colors[kind];
      icons[key] = L.divIcon({
        className: classes,
        html: '<span style="background:' + colour + '">' + data.letters[kind] + "</span>",
        iconSize: [24, 24], iconAnchor: [12, 12], tooltipAnchor: [0, -12]
      });
    }
    return icons[key];
  }
  var SourceMarker = L.Marker.extend({
    onAdd: function (map) {
      L.Marker.prototype.onAdd.call(this, map);
      var element = this.getElement();
      element.setAttribute("data-code", this.options.code);
      element.setAttribute("aria-label", this.options.code + " " + this.options.kindName);
    }
  });
  var group = options.cluster
    ? L.markerClusterGroup({chunkedLoading: true, maxClusterRadius: 45,
        disableClusteringAtZoom: 17, showCoverageOnHover: false,
        chunkProgress: function (done, total) { if (done === total) group.fire("hikeshiready"); }})
    : L.featureGroup();
  var markers = data.rows.map(function (r) {
    var marker = new SourceMarker([r[0], r[1]], {
      icon: icon(r[2], r[3], r[4]), code: r[5], kindName: data.kinds[r[2]], riseOnHover: true
    });
    var label = esc(r[5]) + "（" + esc(data.kinds[r[2]]) + "・" + esc(data.statuses[r[3]]) + "）"
      + (r[4] ? " 点検期限切れ" : "") + (r[6] ? "<br>" + esc(r[6]) : "");
    if (options.labels && r[6]) {
      marker.bindTooltip(esc(r[6]), {permanent: true, direction: "right", className: "hk-ws-label"});
    } else {
      marker.bindTooltip(label, {direction: "top"});
    }
    return marker;
  });
  group.hikeshiRows = data.rows;
  group.on("hikeshiready", function () { window.hikeshiWaterReady = true; });
  if (options.cluster) {
    group.addLayers(markers);
  } else {
    markers.forEach(function (marker) { group.addLayer(marker); });
    group.on("add", function () { group.fire("hikeshiready"); });
  }
  return group;
})();
{% endmacro %}
"""
    )

    def __init__(
        self,
        points: Sequence[Mapping[str, Any]],
        *,
        show_labels: bool,
        cluster: bool,
        assets: MapAssets,
    ) -> None:
        super().__init__(name="水利", overlay=True, control=True, show=True)
        self._name = "WaterSources"
        self.data_json = html_safe_json(payload(points))
        self.options_json = json.dumps({"labels": show_labels, "cluster": cluster})
        self.default_js = [("markercluster", assets.cluster_js)] if cluster else []
        self.default_css = (
            [(f"markercluster_{i}", url) for i, url in enumerate(assets.cluster_css)]
            if cluster
            else []
        )


class CoverageLayer(Layer):
    """Circles of each usable source's coverage radius, drawn on canvas the first time the
    overlay is shown; the gaps between them are what is not covered."""

    _template = Template(
        """
{% macro script(this, kwargs) %}
var {{ this.get_name() }} = (function (rows) {
  var group = L.featureGroup();
  var drawn = false;
  group.on("add", function () {
    if (drawn) { return; }
    drawn = true;
    rows.forEach(function (r) {
      if (r[3] !== 0) { return; }
      L.circle([r[0], r[1]], {radius: r[7], weight: 1, color: "#1565c0", opacity: 0.5,
        fillColor: "#42a5f5", fillOpacity: 0.18, interactive: false}).addTo(group);
    });
  });
  return group;
})({{ this.markers.get_name() }}.hikeshiRows);
{% endmacro %}
"""
    )

    def __init__(self, markers: WaterSourceLayer, *, show: bool) -> None:
        super().__init__(name="包含範囲（基準距離の円）", overlay=True, control=True, show=show)
        self._name = "WaterCoverage"
        self.markers = markers


CSS = """
.hk-ws span { display: block; box-sizing: border-box; width: 24px; height: 24px;
  border-radius: 50%; border: 2px solid #fff; color: #fff; text-align: center;
  font: bold 12px/20px sans-serif; box-shadow: 0 0 3px rgba(0,0,0,.7); }
.hk-ws-s1 span { opacity: .8; text-decoration: line-through; }
.hk-ws-s2 span { border: 2px dashed #212121; }
.hk-ws-overdue span { border-color: #ff1744; }
.hk-ws-label { font-size: 11px; padding: 1px 4px; }
"""
