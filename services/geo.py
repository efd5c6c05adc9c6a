"""Geography for the water map: distances on the earth, nearest and covering sources, typed
coordinates, and where the map's tiles and scripts come from. Pure functions, no database."""

from __future__ import annotations

import json
import math
import os
import re
import statistics
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar
from urllib.parse import parse_qs, unquote, urlsplit

import numpy as np

EARTH_RADIUS_M = 6_371_008.8  # IUGG mean radius
# Japan's extent with a margin (南鳥島 153.99°E, 沖ノ鳥島 20.42°N, 択捉島 45.56°N, 与那国島 122.93°E).
JAPAN_LATITUDE = (20.0, 46.0)
JAPAN_LONGITUDE = (122.0, 154.5)

T = TypeVar("T")
Position = Callable[[T], tuple[float | None, float | None]]


def _lat_lon(item) -> tuple[float | None, float | None]:
    return item.latitude, item.longitude


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in metres on the mean-radius sphere."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


def distances_m(lat: float, lon: float, lats: np.ndarray, lons: np.ndarray) -> np.ndarray:
    """haversine_m from one point to many, vectorised."""
    p1, p2 = math.radians(lat), np.radians(lats)
    dp, dl = p2 - p1, np.radians(lons - lon)
    a = np.sin(dp / 2) ** 2 + math.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * np.arcsin(np.minimum(1.0, np.sqrt(a)))


@dataclass(frozen=True)
class Hit(Generic[T]):
    item: T
    distance_m: float


class PointIndex(Generic[T]):
    """Items with coordinates as arrays, built once and queried many times."""

    def __init__(self, items: Sequence[T], position: Position = _lat_lon) -> None:
        located = [(item, *position(item)) for item in items]
        located = [row for row in located if row[1] is not None and row[2] is not None]
        self.items: list[T] = [row[0] for row in located]
        self.lats = np.array([row[1] for row in located], dtype=float)
        self.lons = np.array([row[2] for row in located], dtype=float)

    def __len__(self) -> int:
        return len(self.items)

    def nearest(self, lat: float, lon: float, n: int = 5) -> list[Hit[T]]:
        """The n closest items, closest first (ties keep the items' order)."""
        if n <= 0 or not self.items:
            return []
        distances = distances_m(lat, lon, self.lats, self.lons)
        if n < len(distances):
            candidates = np.argpartition(distances, n - 1)[:n]
            order = candidates[np.lexsort((candidates, distances[candidates]))]
        else:
            order = np.lexsort((np.arange(len(distances)), distances))
        return [Hit(self.items[i], float(distances[i])) for i in order]

    def covering(
        self, lat: float, lon: float, radius_m: float | Callable[[T], float]
    ) -> list[Hit[T]]:
        """Items whose circle (a fixed radius, or one per item) contains the point, closest first."""
        if not self.items:
            return []
        distances = distances_m(lat, lon, self.lats, self.lons)
        radii = (
            np.array([radius_m(item) for item in self.items], dtype=float)
            if callable(radius_m)
            else np.full(len(self.items), float(radius_m))
        )
        inside = np.flatnonzero(distances <= radii)
        order = inside[np.lexsort((inside, distances[inside]))]
        return [Hit(self.items[i], float(distances[i])) for i in order]


def nearest(
    items: Sequence[T], lat: float, lon: float, n: int = 5, position: Position = _lat_lon
) -> list[Hit[T]]:
    return PointIndex(items, position).nearest(lat, lon, n)


def covering(
    items: Sequence[T],
    lat: float,
    lon: float,
    radius_m: float | Callable[[T], float],
    position: Position = _lat_lon,
) -> list[Hit[T]]:
    return PointIndex(items, position).covering(lat, lon, radius_m)


def centre(points: Sequence[tuple[float, float]]) -> tuple[float, float] | None:
    """The component-wise median: a centroid that one mistyped coordinate cannot drag away."""
    if not points:
        return None
    return statistics.median(p[0] for p in points), statistics.median(p[1] for p in points)


def in_japan(lat: float, lon: float) -> bool:
    return (
        JAPAN_LATITUDE[0] <= lat <= JAPAN_LATITUDE[1]
        and JAPAN_LONGITUDE[0] <= lon <= JAPAN_LONGITUDE[1]
    )


def swapped_in_japan(lat: float, lon: float) -> bool:
    """A point in Japan only once latitude and longitude change places (a legacy layout writes
    経度 first)."""
    return not in_japan(lat, lon) and in_japan(lon, lat)


_NUMBER = r"[-+]?\d+(?:\.\d+)?"
_LAT_LON = re.compile(rf"^\s*({_NUMBER})\s*[,、\s]\s*({_NUMBER})\s*$")


def parse_lat_lon(text: str) -> tuple[float, float]:
    """ "36.4020, 138.2490" (also full-width digits, 、 or a space) → (36.402, 138.249)."""
    match = _LAT_LON.match(unicodedata.normalize("NFKC", text or ""))
    if match is None:
        raise ValueError("座標は「緯度, 経度」の形で入力してください（例: 36.4020, 138.2490）。")
    lat, lon = float(match.group(1)), float(match.group(2))
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise ValueError("緯度は -90〜90、経度は -180〜180 の範囲です。")
    return lat, lon


_AT = re.compile(rf"@({_NUMBER}),({_NUMBER})")
_FRAGMENT = re.compile(rf"^/?\d+(?:\.\d+)?/({_NUMBER})/({_NUMBER})(?:/|$)")
_POINT_PARAMS = ("q", "query", "ll", "center", "destination", "daddr")


def coordinates_in_url(url: str) -> tuple[float, float] | None:
    """The point a map link shows, when it spells one in Japan: Google's `@lat,lon`, a query
    `q=` / `query=` / `ll=` (or `lat=` and `lon=`/`lng=`), or GSI's `#zoom/lat/lon`. None for a
    link that names a place by other means (a short link, an id, an address)."""
    parts = urlsplit((url or "").strip())
    if parts.scheme not in ("http", "https"):
        return None
    params = parse_qs(parts.query)
    texts = [f"{m.group(1)},{m.group(2)}" for m in _AT.finditer(unquote(parts.path))]
    texts += [params[name][0] for name in _POINT_PARAMS if name in params]
    lon = params.get("lon") or params.get("lng")
    if "lat" in params and lon:
        texts.append(f"{params['lat'][0]},{lon[0]}")
    if match := _FRAGMENT.match(parts.fragment):
        texts.append(f"{match.group(1)},{match.group(2)}")
    for text in texts:
        try:
            lat, lon_ = parse_lat_lon(text)
        except ValueError:
            continue
        if in_japan(lat, lon_):
            return lat, lon_
    return None


# -- tiles and scripts -------------------------------------------------------------------------


@dataclass(frozen=True)
class TileLayer:
    name: str
    url: str
    attribution: str
    max_zoom: int = 18


GSI_ATTRIBUTION = '<a href="https://maps.gsi.go.jp/development/ichiran.html">地理院タイル</a>'
DEFAULT_TILE_LAYERS = (
    TileLayer(
        "地理院地図（標準）",
        "https://cyberjapandata.gsi.go.jp/xyz/std/{z}/{x}/{y}.png",
        GSI_ATTRIBUTION,
    ),
    TileLayer(
        "地理院 航空写真",
        "https://cyberjapandata.gsi.go.jp/xyz/seamlessphoto/{z}/{x}/{y}.jpg",
        GSI_ATTRIBUTION,
    ),
    TileLayer(
        "OpenStreetMap",
        "https://tile.openstreetmap.org/{z}/{x}/{y}.png",
        '&copy; <a href="https://www.openstreetmap.org/copyright">OpenStreetMap</a> contributors',
        19,
    ),
)


def tile_layers(spec: str | None = None) -> tuple[TileLayer, ...]:
    """HIKESHI_TILE_LAYERS, a JSON list of {name, url, attribution[, max_zoom]}; the first is
    shown by default. Unset: GSI standard, GSI aerial photos, OpenStreetMap."""
    spec = os.environ.get("HIKESHI_TILE_LAYERS", "") if spec is None else spec
    if not spec.strip():
        return DEFAULT_TILE_LAYERS
    try:
        entries = json.loads(spec)
        layers = tuple(
            TileLayer(
                name=str(e["name"]),
                url=str(e["url"]),
                attribution=str(e["attribution"]),
                max_zoom=int(e.get("max_zoom", 18)),
            )
            for e in entries
        )
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise ValueError(
            "HIKESHI_TILE_LAYERS must be a JSON list of {name, url, attribution}"
        ) from exc
    if not layers or not all(layer.url.startswith(("https://", "http://")) for layer in layers):
        raise ValueError("HIKESHI_TILE_LAYERS needs at least one layer with an http(s) url")
    return layers


LEAFLET = "leaflet@1.9.4/dist"
MARKERCLUSTER = "leaflet.markercluster@1.5.3/dist"
VENDOR_ROUTE = "/vendor"  # where server.py serves static/vendor (npm layout, pinned versions)


@dataclass(frozen=True)
class MapAssets:
    leaflet_js: str
    leaflet_css: str
    cluster_js: str
    cluster_css: tuple[str, ...]

    @property
    def urls(self) -> tuple[str, ...]:
        return (self.leaflet_js, self.leaflet_css, self.cluster_js, *self.cluster_css)


def map_assets(base: str | None = None) -> MapAssets:
    """The only scripts and style sheets the map loads: Leaflet and Leaflet.markercluster, pinned.
    By default our own server's copy (static/vendor); HIKESHI_MAP_ASSET_BASE points at another
    copy laid out like the npm packages, e.g. on a host inside the municipal network."""
    base = base or os.environ.get("HIKESHI_MAP_ASSET_BASE") or VENDOR_ROUTE
    base = base.rstrip("/")
    return MapAssets(
        leaflet_js=f"{base}/{LEAFLET}/leaflet.js",
        leaflet_css=f"{base}/{LEAFLET}/leaflet.css",
        cluster_js=f"{base}/{MARKERCLUSTER}/leaflet.markercluster.js",
        cluster_css=(
            f"{base}/{MARKERCLUSTER}/MarkerCluster.css",
            f"{base}/{MARKERCLUSTER}/MarkerCluster.Default.css",
        ),
    )
