"""services/geo.py: haversine distances, nearest-N and coverage against hand-computed cases, typed
coordinates, and the tile and script configuration."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import numpy as np
import pytest

from services import geo

R = geo.EARTH_RADIUS_M
ONE_DEGREE = 2 * math.pi * R / 360  # 111 195.08 m along a meridian or the equator


@dataclass(frozen=True)
class P:
    name: str
    latitude: float | None
    longitude: float | None


@pytest.mark.parametrize(
    ("a", "b", "metres"),
    [
        ((36.0, 138.0), (36.0, 138.0), 0.0),
        ((0.0, 0.0), (1.0, 0.0), ONE_DEGREE),
        ((0.0, 0.0), (0.0, 1.0), ONE_DEGREE),
        ((35.0, 139.0), (36.0, 139.0), ONE_DEGREE),
        ((0.0, 0.0), (0.0, 180.0), math.pi * R),
        ((90.0, 0.0), (-90.0, 0.0), math.pi * R),
        # Along the 60th parallel one degree of longitude is a chord of the small circle:
        # 2R·asin(cos 60° · sin 0.5°).
        ((60.0, 10.0), (60.0, 11.0), 2 * R * math.asin(0.5 * math.sin(math.radians(0.5)))),
    ],
)
def test_haversine_against_closed_forms(a, b, metres):
    assert geo.haversine_m(*a, *b) == pytest.approx(metres, abs=1e-6)
    assert geo.haversine_m(*b, *a) == pytest.approx(metres, abs=1e-6)


def test_tokyo_to_osaka_is_about_403_km():
    tokyo, osaka = (35.681236, 139.767125), (34.702485, 135.495951)
    assert geo.haversine_m(*tokyo, *osaka) == pytest.approx(403_400, rel=2e-3)


def test_vectorised_distances_match_the_scalar_formula():
    rng = random.Random(7)
    points = [(rng.uniform(24, 45), rng.uniform(123, 153)) for _ in range(200)]
    lats, lons = np.array([p[0] for p in points]), np.array([p[1] for p in points])
    vector = geo.distances_m(36.4, 138.2, lats, lons)
    scalar = [geo.haversine_m(36.4, 138.2, *p) for p in points]
    assert vector == pytest.approx(scalar, rel=1e-12)


NORTH = [P(f"n{k}", 36.0 + k / 1000, 138.0) for k in (3, 1, 2)]


def test_nearest_sorted_with_distances():
    hits = geo.nearest(NORTH, 36.0, 138.0, n=2)
    assert [h.item.name for h in hits] == ["n1", "n2"]
    assert [h.distance_m for h in hits] == pytest.approx([ONE_DEGREE / 1000, 2 * ONE_DEGREE / 1000])


def test_nearest_edge_cases():
    assert geo.nearest(NORTH, 36.0, 138.0, n=0) == []
    assert geo.nearest([], 36.0, 138.0) == []
    assert [h.item.name for h in geo.nearest(NORTH, 36.0, 138.0, n=10)] == ["n1", "n2", "n3"]
    unplaced = [P("nowhere", None, None), P("half", 36.0, None), *NORTH]
    assert [h.item.name for h in geo.nearest(unplaced, 36.0, 138.0, n=5)] == ["n1", "n2", "n3"]


def test_ties_keep_the_given_order():
    twins = [P("east", 36.0, 138.001), P("west", 36.0, 137.999), P("far", 36.0, 138.01)]
    assert [h.item.name for h in geo.nearest(twins, 36.0, 138.0, n=2)] == ["east", "west"]
    assert [h.item.name for h in geo.nearest(twins[::-1], 36.0, 138.0, n=2)] == ["west", "east"]


def test_covering_with_a_fixed_radius_includes_the_boundary():
    radius = 2 * ONE_DEGREE / 1000
    hits = geo.covering(NORTH, 36.0, 138.0, radius + 1e-6)
    assert [h.item.name for h in hits] == ["n1", "n2"]
    assert geo.covering(NORTH, 36.0, 138.0, 100) == []


def test_covering_with_a_radius_per_item():
    radii = {"n1": 100, "n2": 250, "n3": 300}  # 111.2 m, 222.4 m, 333.6 m away
    hits = geo.covering(NORTH, 36.0, 138.0, lambda p: radii[p.name])
    assert [h.item.name for h in hits] == ["n2"]


def test_nearest_among_20000_points_is_one_vectorised_pass(monkeypatch):
    """Fast by construction, not by a stopwatch (timings live in bench/): each query computes all
    distances in one numpy call and never loops over the points in Python."""
    rng = random.Random(1)
    points = [P(str(i), rng.uniform(36.3, 36.5), rng.uniform(138.1, 138.4)) for i in range(20_000)]
    index = geo.PointIndex(points)
    calls = {"vectorised": 0, "scalar": 0}
    vectorised, scalar = geo.distances_m, geo.haversine_m

    def count(name, real):
        def counted(*args, **kwargs):
            calls[name] += 1
            return real(*args, **kwargs)

        return counted

    monkeypatch.setattr(geo, "distances_m", count("vectorised", vectorised))
    monkeypatch.setattr(geo, "haversine_m", count("scalar", scalar))
    for _ in range(10):
        hits = index.nearest(36.4, 138.25, n=5)
        index.covering(36.4, 138.25, 120)
    assert calls == {"vectorised": 20, "scalar": 0}
    brute = sorted(points, key=lambda p: scalar(36.4, 138.25, p.latitude, p.longitude))
    assert [h.item for h in hits] == brute[:5]


def test_centre_is_the_median():
    assert geo.centre([]) is None
    assert geo.centre([(36.0, 138.0), (36.2, 138.2), (36.1, 138.1), (-10.0, 10.0)]) == (
        pytest.approx(36.05),
        pytest.approx(138.05),
    )


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("36.4020, 138.2490", (36.402, 138.249)),
        ("36.4020,138.2490", (36.402, 138.249)),
        ("３６．４０２０，１３８．２４９０", (36.402, 138.249)),
        ("36.402、138.249", (36.402, 138.249)),
        ("  36.402 138.249 ", (36.402, 138.249)),
        ("-33.9, 151.2", (-33.9, 151.2)),
        ("36, 138", (36.0, 138.0)),
    ],
)
def test_parse_lat_lon(typed, expected):
    assert geo.parse_lat_lon(typed) == pytest.approx(expected)


@pytest.mark.parametrize("typed", ["", "36.4", "北緯36度", "36.4, 138.2, 5", "91, 138", "36, 181"])
def test_parse_lat_lon_rejects(typed):
    with pytest.raises(ValueError, match="緯度"):
        geo.parse_lat_lon(typed)


@pytest.mark.parametrize(
    ("lat", "lon", "inside"),
    [
        (36.4, 138.2, True),
        (45.5, 148.9, True),
        (24.45, 122.93, True),
        (138.2, 36.4, False),
        (3.64, 138.2, False),
        (37.5, 127.0, True),
        (0.0, 0.0, False),
    ],
)
def test_in_japan_is_a_coarse_box(lat, lon, inside):
    assert geo.in_japan(lat, lon) is inside


def test_default_tile_layers_start_with_gsi():
    layers = geo.tile_layers("")
    assert [layer.name for layer in layers] == [
        "地理院地図（標準）",
        "地理院 航空写真",
        "OpenStreetMap",
    ]
    assert layers[0].url == "https://cyberjapandata.gsi.go.jp/xyz/std/{z}/{x}/{y}.png"
    assert "地理院タイル" in layers[0].attribution
    assert "seamlessphoto" in layers[1].url


def test_tile_layers_from_the_environment(monkeypatch):
    spec = '[{"name": "庁内", "url": "https://tiles.example.jp/{z}/{x}/{y}.png", "attribution": "庁内", "max_zoom": 20}]'
    monkeypatch.setenv("HIKESHI_TILE_LAYERS", spec)
    assert geo.tile_layers() == (
        geo.TileLayer("庁内", "https://tiles.example.jp/{z}/{x}/{y}.png", "庁内", 20),
    )


@pytest.mark.parametrize(
    "spec",
    [
        "not json",
        "{}",
        "[]",
        '[{"name": "x"}]',
        '[{"name": "x", "url": "javascript:alert(1)", "attribution": ""}]',
    ],
)
def test_bad_tile_configuration_is_refused(spec):
    with pytest.raises(ValueError, match="HIKESHI_TILE_LAYERS"):
        geo.tile_layers(spec)


def test_map_assets_are_pinned_and_relocatable(monkeypatch):
    monkeypatch.delenv("HIKESHI_MAP_ASSET_BASE", raising=False)
    assets = geo.map_assets()
    assert assets.leaflet_js == "/vendor/leaflet@1.9.4/dist/leaflet.js"
    monkeypatch.setenv("HIKESHI_MAP_ASSET_BASE", "https://gis.city.local/npm/")
    assets = geo.map_assets()
    assert (
        assets.cluster_js
        == "https://gis.city.local/npm/leaflet.markercluster@1.5.3/dist/leaflet.markercluster.js"
    )
    assert (
        assets.cluster_css[0]
        == "https://gis.city.local/npm/leaflet.markercluster@1.5.3/dist/MarkerCluster.css"
    )
