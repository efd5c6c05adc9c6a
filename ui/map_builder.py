"""The generic map every page draws on: Leaflet from our own server (services.geo.map_assets),
the configured tile layers, a metric scale, and the view fitted to what is shown. It knows
nothing about water sources, so the water map and an incident map build on the same base."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

import folium
from branca.element import MacroElement
from jinja2 import Template

from services.geo import MapAssets, TileLayer, map_assets, tile_layers

JAPAN_VIEW = ((36.2, 138.25), 5)
CLOSE_ZOOM = 15
_HTML_SAFE = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "'": "\\u0027"}


class MetricScale(MacroElement):
    """A scale bar in metres only."""

    _template = Template(
        """
{% macro script(this, kwargs) %}
L.control.scale({imperial: false}).addTo({{ this._parent.get_name() }});
{% endmacro %}
"""
    )


def base_map(
    *,
    center: tuple[float, float] | None = None,
    tiles: Sequence[TileLayer] | None = None,
    assets: MapAssets | None = None,
) -> folium.Map:
    """An empty map: centred on `center` close up, or all of Japan; the first tile layer shown,
    the others offered in the layer control the caller adds."""
    assets = assets or map_assets()
    m = folium.Map(
        location=center or JAPAN_VIEW[0],
        zoom_start=CLOSE_ZOOM if center else JAPAN_VIEW[1],
        tiles=None,
        prefer_canvas=True,
    )
    m.default_js = [("leaflet", assets.leaflet_js)]
    m.default_css = [("leaflet_css", assets.leaflet_css)]
    for i, layer in enumerate(tiles or tile_layers()):
        folium.TileLayer(
            tiles=layer.url,
            attr=layer.attribution,
            name=layer.name,
            max_zoom=layer.max_zoom,
            overlay=False,
            show=i == 0,
        ).add_to(m)
    MetricScale().add_to(m)
    return m


def fit_to(m: folium.Map, positions: Iterable[tuple[float, float]]) -> None:
    """Fit the view to the positions (latitude, longitude), if there are any."""
    placed = list(positions)
    if placed:
        lats, lons = [p[0] for p in placed], [p[1] for p in placed]
        m.fit_bounds([[min(lats), min(lons)], [max(lats), max(lons)]], padding=(20, 20))


def html_safe_json(value: Any) -> str:
    """JSON that can sit inside a <script> element: no < > & ' characters left."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    for char, escaped in _HTML_SAFE.items():
        text = text.replace(char, escaped)
    return text
