"""The water map as folium objects built from plain data, with no Streamlit in sight (the page,
the benchmark and the tests share it).

The map is split in two so that the page can keep one map in the browser: the base (tiles,
scale, scripts and the JavaScript that draws sources) stays the same across reruns, and the
sources travel as data in a small layer that streamlit-folium swaps in place
(`feature_group_to_add`). A change of data then redraws the markers instead of reloading the
whole map, which is what made saving slow and fired a second rerun.

All sources travel as one compact JSON array; a few lines of JavaScript turn them into Leaflet
markers (letter icons per kind, clustered by zoom), memo labels shown only where they fit, and
coverage circles in their own pane beneath the markers. No folium.Marker per source."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
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
POSITION_TOLERANCE = 1e-6
COVERAGE_PANE = "hikeshiCoverage"


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


def water_base_map(
    *,
    center: tuple[float, float] | None = None,
    cluster: bool = True,
    tiles: Sequence[TileLayer] | None = None,
    assets: MapAssets | None = None,
) -> folium.Map:
    """The part of the water map that stays in the browser: the base map (centred on `center`,
    or all of Japan until a layer fits the view) with Leaflet (and Leaflet.markercluster), the
    drawing script and its styles. It holds no data, so new data never reloads it. Add
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
    FeatureGroup (keeping its _name, which names the script's variable) so that streamlit-folium
    can swap it without reloading the map."""

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
        """
{% macro script(this, kwargs) %}
window.hikeshiWaterLayer = function (map, data, options) {
  var GREY = "#9e9e9e";
  var icons = {};
  window.hikeshiWaterReady = false;
  if (!map.getPane("COVERAGE_PANE")) {
    // above the tiles (200), beneath other overlays (400) and the markers (600)
    var pane = map.createPane("COVERAGE_PANE");
    pane.style.zIndex = 350;
    pane.style.pointerEvents = "none";
  }
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
  var layer = L.featureGroup();
  var coverage = L.featureGroup().addTo(layer);
  if (options.coverage) {
    data.rows.forEach(function (r) {
      if (r[3] !== 0) { return; }
      L.circle([r[0], r[1]], {radius: r[7], weight: 1, color: "#1565c0", opacity: 0.5,
        fillColor: "#42a5f5", fillOpacity: 0.18, interactive: false, pane: "COVERAGE_PANE"}
      ).addTo(coverage);
    });
  }
  function ready() {
    window.hikeshiWaterReady = true;
    fitLabels();
  }
  var group = options.cluster
    ? L.markerClusterGroup({chunkedLoading: true, maxClusterRadius: 45,
        disableClusteringAtZoom: 17, showCoverageOnHover: false, spiderfyOnMaxZoom: false,
        chunkProgress: function (done, total) { if (done === total) { ready(); } }})
    : L.featureGroup();
  var markers = data.rows.map(function (r) {
    var marker = new SourceMarker([r[0], r[1]], {
      icon: icon(r[2], r[3], r[4]), code: r[5], kindName: data.kinds[r[2]], riseOnHover: true
    });
    var label = esc(r[5]) + "（" + esc(data.kinds[r[2]]) + "・" + esc(data.statuses[r[3]]) + "）"
      + (r[4] ? " 点検期限切れ" : "") + (r[6] ? "<br>" + esc(r[6]) : "");
    if (options.labels && r[6]) {
      marker.bindTooltip(esc(r[6]), {permanent: true, direction: "right", offset: [12, 12], className: "hk-ws-label"});
    } else {
      marker.bindTooltip(label, {direction: "top"});
    }
    return marker;
  });
  // A memo label is shown only where it overlaps no other shown label and no marker or cluster
  // icon but its own; the others wait for a closer zoom.
  function overlap(a, b) {
    return a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom;
  }
  function fitLabels() {
    if (!options.labels || !layer._map) { return; }
    var icons = Array.prototype.map.call(
      map.getPane("markerPane").children, function (el) { return [el, el.getBoundingClientRect()]; });
    var shown = [];
    markers.forEach(function (marker) {
      var tip = marker.getTooltip();
      var el = marker._map && tip && tip.options.permanent ? tip.getElement() : null;
      if (!el) { return; }
      el.classList.remove("hk-ws-label-hidden");
      var box = el.getBoundingClientRect();
      var clash = shown.some(function (other) { return overlap(other, box); })
        || icons.some(function (i) { return i[0] !== marker._icon && overlap(i[1], box); });
      if (clash) { el.classList.add("hk-ws-label-hidden"); } else { shown.push(box); }
    });
  }
  var pending = null;
  function later() {
    clearTimeout(pending);
    pending = setTimeout(fitLabels, 60);
  }
  // Markercluster adds and removes icons after a move or zoom, some after an animation, and
  // labels move when they are first laid out or a font arrives: the labels are placed again
  // once the icons and labels have stopped changing.
  var changes = new MutationObserver(later);
  layer.on("add", function () {
    if (options.fit && !map.hikeshiFitted && data.rows.length) {
      map.hikeshiFitted = true;
      map.fitBounds(data.rows.map(function (r) { return [r[0], r[1]]; }),
        {padding: [20, 20], animate: false});
    }
    changes.observe(map.getPane("markerPane"), {childList: true});
    changes.observe(
      map.getPane("tooltipPane"), {childList: true, subtree: true, attributeFilter: ["style"]});
    map.on("zoomend moveend", later);
    if (document.fonts) { document.fonts.ready.then(later); }
    if (!options.cluster) { ready(); }
  });
  layer.on("remove", function () {
    changes.disconnect();
    map.off("zoomend moveend", later);
  });
  if (options.cluster) {
    group.addLayers(markers);
  } else {
    markers.forEach(function (marker) { group.addLayer(marker); });
  }
  group.addTo(layer);
  layer.hikeshiMarkers = group;
  return layer;
};
{% endmacro %}
""".replace("COVERAGE_PANE", COVERAGE_PANE)
    )


CSS = """
.hk-ws span { display: block; box-sizing: border-box; width: 24px; height: 24px;
  border-radius: 50%; border: 2px solid #fff; color: #fff; text-align: center;
  font: bold 12px/20px sans-serif; box-shadow: 0 0 3px rgba(0,0,0,.7); }
.hk-ws-s1 span { opacity: .8; text-decoration: line-through; }
.hk-ws-s2 span { border: 2px dashed #212121; }
.hk-ws-overdue span { border-color: #ff1744; }
.hk-ws-label { font-size: 11px; padding: 1px 4px; }
.hk-ws-label-hidden { visibility: hidden; }
"""
