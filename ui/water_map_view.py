"""The 水利マップ's map: a component of our own (water_map_frontend/) that keeps one Leaflet map
in the browser for as long as the page shows it (#19).

The sources reach the browser once per brigade and version, fetched by the map from
services.water_sources.map_data.DATA_ROUTE; each rerun sends only that version, the filters as
a bit set over the map's rows, the label and coverage switches and the selection (a few
kilobytes at 20,000 sources). Panning and zooming stay in the browser: nothing is reported, so
nothing reruns. A click is the component's value: {"kind": "source", "code", "n", "frame"} or
{"kind": "point", "lat", "lng", "n", "frame"}, n counting the frame's clicks and frame naming
the frame, so that the same spot clicked twice, or again in a new frame, is a new click."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import asdict
from pathlib import Path
from typing import Any

import streamlit.components.v1 as components

from services.catalog import WATER_SOURCE_KINDS
from services.geo import map_assets, tile_layers
from services.water_sources.map_data import DATA_ROUTE, WaterMap
from ui.water_map_folium import KIND_STYLES

FRONTEND = Path(__file__).parent / "water_map_frontend"
HEIGHT = 620

_component = components.declare_component("water_map", path=str(FRONTEND))


def water_map(
    data: WaterMap,
    *,
    tenant_id: uuid.UUID,
    mask: str | None,
    selected: str | None,
    point: tuple[float, float] | None,
    labels: bool,
    coverage: bool,
    center: tuple[float, float] | None,
    key: str,
) -> dict[str, Any] | None:
    """Draw (or update) the map; the last click, or None before the first."""
    assets = map_assets()
    styles = [KIND_STYLES.get(kind, KIND_STYLES["その他"]) for kind in WATER_SOURCE_KINDS]
    return _component(
        data_url=f"{DATA_ROUTE}?v={data.version}",
        version=data.version,
        mask=mask,
        selected=selected,
        point=list(point) if point else None,
        labels=labels,
        coverage=coverage,
        center=list(center) if center else None,
        letters=[letter for letter, _ in styles],
        colors=[colour for _, colour in styles],
        tiles=[asdict(layer) for layer in tile_layers()],
        assets={
            "css": [assets.leaflet_css, *assets.cluster_css],
            "js": [assets.leaflet_js, assets.cluster_js, "water_layer.js"],
        },
        # the view is kept per brigade in the tab's sessionStorage
        view_key="hikeshi-water-map-"
        + hashlib.blake2b(str(tenant_id).encode(), digest_size=6).hexdigest(),
        height=HEIGHT,
        key=key,
        default=None,
    )
