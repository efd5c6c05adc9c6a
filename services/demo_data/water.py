"""The demo water sources: kinds, places and inspection dates around the demo town."""

from __future__ import annotations

import datetime
import math
import random
from collections.abc import Sequence
from typing import Final

from models.enums import (
    HYDRANT_KINDS,
)
from services.demo_data.common import (
    CENTER,
    CENTRAL_RADIUS_KM,
    DEFAULT_SEED,
    DEMO_UNITS,
    EARTH_RADIUS_KM,
    INSPECTION_INTERVAL_DAYS,
    MAX_RADIUS_KM,
    DemoWaterSource,
    allocate,
    weighted,
)

# ---------------------------------------------------------------------------
# Water sources
# ---------------------------------------------------------------------------

# Share of each kind in percent (海・湖 is absent inland; 下水道 is rare).
KIND_WEIGHTS: tuple[tuple[str, float], ...] = (
    ("消火栓", 59.5),
    ("私設消火栓", 8.0),
    ("防火水槽", 18.0),
    ("プール", 2.0),
    ("河川・溝", 4.0),
    ("濠・池", 3.0),
    ("海・湖", 0.0),
    ("井戸", 3.0),
    ("下水道", 0.5),
    ("その他", 2.0),
)

_CODE_PREFIXES: dict[str, str] = {
    "消火栓": "H",
    "私設消火栓": "PH",
    "防火水槽": "T",
    "プール": "P",
    "河川・溝": "R",
    "濠・池": "PD",
    "海・湖": "SE",
    "井戸": "W",
    "下水道": "SW",
    "その他": "X",
}

# Each unit owns an area: 第1分団 the town centre disc, the others a sector of the ring
# around it, given as (min radius km, max radius km, start bearing deg, width deg).
_UNIT_AREAS: dict[str, tuple[float, float, float, float]] = {
    "第1分団": (0.0, CENTRAL_RADIUS_KM, 0.0, 360.0),
    "第2分団": (CENTRAL_RADIUS_KM, MAX_RADIUS_KM, 324.0, 72.0),
    "第3分団": (CENTRAL_RADIUS_KM, MAX_RADIUS_KM, 36.0, 72.0),
    "第4分団": (CENTRAL_RADIUS_KM, MAX_RADIUS_KM, 108.0, 72.0),
    "第5分団": (CENTRAL_RADIUS_KM, MAX_RADIUS_KM, 180.0, 72.0),
    "第6分団": (CENTRAL_RADIUS_KM, MAX_RADIUS_KM, 252.0, 72.0),
}

# Neighbourhoods (町名) per unit; the number is the count of 丁目, or None for 番地-only areas.
_UNIT_TOWNS: dict[str, tuple[tuple[str, int | None], ...]] = {
    "第1分団": (("中央", 4), ("本町", 3), ("駅前", 2)),
    "第2分団": (("北町", 3), ("桜ケ丘", 2), ("上北原", None)),
    "第3分団": (("東町", 3), ("旭ケ丘", 3), ("川東", None)),
    "第4分団": (("南町", 3), ("緑が丘", 2), ("下河原", None)),
    "第5分団": (("西町", 3), ("若葉台", 3), ("大久保", None)),
    "第6分団": (("山手", 2), ("宮ノ前", None), ("梨ノ木", None)),
}

# Unit shares: hydrants concentrate in the centre, open water in the outskirts.
_URBAN_UNIT_WEIGHTS: tuple[float, ...] = (0.3, 0.15, 0.14, 0.14, 0.14, 0.13)
_RURAL_UNIT_WEIGHTS: tuple[float, ...] = (0.06, 0.19, 0.19, 0.19, 0.19, 0.18)
_URBAN_KINDS: tuple[str, ...] = ("消火栓", "私設消火栓", "プール", "下水道", "その他")

_CLUSTER_SIGMA_KM: Final = 0.35

_OWNERSHIP_WEIGHTS: dict[str, tuple[tuple[str, float], ...]] = {
    "消火栓": (("public", 1.0),),
    "私設消火栓": (("private", 1.0),),
    "防火水槽": (("public", 0.85), ("private", 0.1), ("designated", 0.05)),
    "プール": (("public", 0.8), ("private", 0.2)),
    "河川・溝": (("public", 0.7), ("designated", 0.3)),
    "濠・池": (("public", 0.6), ("designated", 0.4)),
    "海・湖": (("public", 1.0),),
    "井戸": (("designated", 0.7), ("private", 0.3)),
    "下水道": (("public", 1.0),),
    "その他": (("private", 0.5), ("designated", 0.5)),
}

_KIND_MEMOS: dict[str, tuple[str, ...]] = {
    "消火栓": (
        "積雪時埋没注意",
        "駐車車両注意",
        "道路中央",
        "標識柱なし",
        "商店街・夜間人通り多い",
    ),
    "私設消火栓": ("私有地・要連絡", "工場敷地内（夜間は守衛所へ連絡）", "病院敷地内"),
    "防火水槽": ("蓋重量物・2名で開放", "公園内", "学校敷地内", "公民館駐車場内"),
    "プール": ("学校プール・冬季は減水あり", "要連絡（教育委員会）"),
    "河川・溝": ("夏季渇水注意", "増水時使用不可", "用水路・農繁期のみ"),
    "濠・池": ("ため池・進入路狭い", "冬季結氷注意"),
    "海・湖": ("進入路狭い",),
    "井戸": ("私有地・要連絡", "手押しポンプ併設"),
    "下水道": ("下水道管理者へ要連絡",),
    "その他": ("受水槽（私有）・要連絡", "消雪用井戸"),
}
_UNUSABLE_MEMOS: tuple[str, ...] = ("断水工事中", "蓋破損・修理待ち", "水量不足")
_UNDER_INSPECTION_MEMOS: tuple[str, ...] = ("水道局点検中", "定期点検中")

# (drop range m, depth range m) for kinds that are drafted by the pump.
_DRAFT_RANGES: dict[str, tuple[tuple[float, float], tuple[float, float]]] = {
    "防火水槽": ((1.0, 3.0), (2.0, 3.5)),
    "プール": ((0.3, 1.0), (1.0, 1.5)),
    "河川・溝": ((1.0, 4.0), (0.3, 1.5)),
    "濠・池": ((0.5, 2.5), (0.8, 3.0)),
    "海・湖": ((1.0, 3.0), (1.0, 5.0)),
    "井戸": ((2.0, 6.0), (5.0, 20.0)),
    "下水道": ((2.0, 5.0), (0.3, 1.0)),
}

_CISTERN_CAPACITIES: tuple[tuple[float, float], ...] = (
    (20.0, 0.1),
    (30.0, 0.05),
    (40.0, 0.58),
    (60.0, 0.12),
    (80.0, 0.05),
    (100.0, 0.1),
)


def _to_lat_lon(east_km: float, north_km: float) -> tuple[float, float]:
    lat0, lon0 = CENTER
    km_per_degree = EARTH_RADIUS_KM * math.pi / 180.0
    latitude = lat0 + north_km / km_per_degree
    longitude = lon0 + east_km / (km_per_degree * math.cos(math.radians(lat0)))
    return round(latitude, 6), round(longitude, 6)


def _in_area(unit: str, east_km: float, north_km: float) -> bool:
    r_min, r_max, start, width = _UNIT_AREAS[unit]
    radius = math.hypot(east_km, north_km)
    if not r_min <= radius <= r_max:
        return False
    bearing = math.degrees(math.atan2(east_km, north_km)) % 360.0
    return (bearing - start) % 360.0 <= width


def _random_in_area(rng: random.Random, unit: str) -> tuple[float, float]:
    r_min, r_max, start, width = _UNIT_AREAS[unit]
    radius = math.sqrt(rng.uniform(r_min**2, r_max**2))
    bearing = math.radians(start + rng.uniform(0.0, width))
    return radius * math.sin(bearing), radius * math.cos(bearing)


def _cluster_centres(rng: random.Random) -> dict[str, list[tuple[float, float]]]:
    """One neighbourhood centre per town, inside the owning unit's area."""
    centres: dict[str, list[tuple[float, float]]] = {}
    for unit in DEMO_UNITS:
        r_min, r_max, start, width = _UNIT_AREAS[unit]
        towns = _UNIT_TOWNS[unit]
        unit_centres = []
        for i in range(len(towns)):
            radius = rng.uniform(r_min + 0.25 * (r_max - r_min), r_max - 0.3)
            slice_width = width / len(towns)
            bearing = math.radians(start + slice_width * (i + rng.uniform(0.25, 0.75)))
            unit_centres.append((radius * math.sin(bearing), radius * math.cos(bearing)))
        centres[unit] = unit_centres
    return centres


def _address(rng: random.Random, town: tuple[str, int | None]) -> str:
    name, chome_count = town
    if chome_count:
        return (
            f"デモ市{name}{rng.randint(1, chome_count)}丁目"
            f"{rng.randint(1, 25)}-{rng.randint(1, 30)}"
        )
    if rng.random() < 0.4:
        return f"デモ市{name}{rng.randint(1, 2999)}-{rng.randint(1, 9)}"
    return f"デモ市{name}{rng.randint(1, 2999)}"


def _place(
    rng: random.Random, unit: str, centres: Sequence[tuple[float, float]]
) -> tuple[float, float, int]:
    """Pick a point in ``unit``'s area, usually near one of its neighbourhood centres."""
    if rng.random() < 0.85:
        town_index = rng.randrange(len(centres))
        cx, cy = centres[town_index]
        for _ in range(50):
            east = cx + rng.gauss(0.0, _CLUSTER_SIGMA_KM)
            north = cy + rng.gauss(0.0, _CLUSTER_SIGMA_KM)
            if _in_area(unit, east, north):
                return east, north, town_index
    east, north = _random_in_area(rng, unit)
    nearest = min(
        range(len(centres)),
        key=lambda i: math.hypot(centres[i][0] - east, centres[i][1] - north),
    )
    return east, north, nearest


def _last_inspected(rng: random.Random, today: datetime.date) -> datetime.date | None:
    roll = rng.random()
    if roll < 0.05:
        return None  # never inspected
    if roll < 0.2:  # overdue
        return today - datetime.timedelta(days=rng.randint(INSPECTION_INTERVAL_DAYS + 1, 1500))
    return today - datetime.timedelta(days=rng.randint(0, INSPECTION_INTERVAL_DAYS - 1))


def generate_water_sources(
    *, seed: int = DEFAULT_SEED, count: int = 400, today: datetime.date
) -> list[DemoWaterSource]:
    """Return ``count`` fictional water sources (消防水利) around the demo town centre.

    Kinds follow fixed shares (mostly 消火栓 and 防火水槽), each unit owns a sector of the
    town and its sources cluster around its neighbourhoods, all within about 4 km of
    ``DEMO_BRIGADE["center"]``. Codes are numbered per kind ("H-0001", "T-0001", ...).
    """
    if count < 0:
        raise ValueError("count must not be negative")
    rng = random.Random(seed)
    centres = _cluster_centres(rng)

    sources: list[DemoWaterSource] = []
    for kind, kind_count in allocate(count, KIND_WEIGHTS):
        unit_weights = _URBAN_UNIT_WEIGHTS if kind in _URBAN_KINDS else _RURAL_UNIT_WEIGHTS
        drafts = []
        for _ in range(kind_count):
            unit = rng.choices(DEMO_UNITS, weights=unit_weights, k=1)[0]
            east, north, town_index = _place(rng, unit, centres[unit])
            drafts.append((unit, east, north, town_index))
        # Number codes unit by unit so neighbouring codes sit close together.
        drafts.sort(key=lambda d: (DEMO_UNITS.index(d[0]), d[3], -d[2], d[1]))

        prefix = _CODE_PREFIXES[kind]
        for number, (unit, east, north, town_index) in enumerate(drafts, start=1):
            sources.append(
                _water_source(
                    rng,
                    code=f"{prefix}-{number:04d}",
                    kind=kind,
                    unit=unit,
                    position=_to_lat_lon(east, north),
                    town=_UNIT_TOWNS[unit][town_index],
                    today=today,
                )
            )
    return sources


def _water_source(
    rng: random.Random,
    *,
    code: str,
    kind: str,
    unit: str,
    position: tuple[float, float],
    town: tuple[str, int | None],
    today: datetime.date,
) -> DemoWaterSource:
    ownership = weighted(rng, _OWNERSHIP_WEIGHTS[kind])

    main_diameter_mm: int | None = None
    hydrant_type: str | None = None
    if kind == "消火栓":
        main_diameter_mm = weighted(rng, ((75, 0.1), (100, 0.45), (150, 0.35), (200, 0.1)))
        hydrant_type = weighted(rng, (("地上式", 0.35), ("地下式", 0.65)))
    elif kind == "私設消火栓":
        main_diameter_mm = weighted(rng, ((75, 0.6), (100, 0.4)))
        hydrant_type = weighted(rng, (("地上式", 0.5), ("地下式", 0.5)))

    capacity_m3: float | None = None
    if kind == "防火水槽":
        capacity_m3 = weighted(rng, _CISTERN_CAPACITIES)
    elif kind == "プール":
        capacity_m3 = float(rng.randrange(200, 501, 25))
    elif kind == "濠・池" and rng.random() < 0.6:
        capacity_m3 = float(rng.randrange(300, 2001, 50))
    elif kind == "その他" and rng.random() < 0.5:
        capacity_m3 = float(rng.choice((20, 30, 40, 60)))

    drop_m: float | None = None
    depth_m: float | None = None
    if kind in _DRAFT_RANGES:
        (drop_low, drop_high), (depth_low, depth_high) = _DRAFT_RANGES[kind]
        drop_m = round(rng.uniform(drop_low, drop_high), 1)
        depth_m = round(rng.uniform(depth_low, depth_high), 1)

    status = weighted(rng, (("使用可", 0.88), ("使用不可", 0.08), ("点検中", 0.04)))
    if status == "使用不可":
        memo = rng.choice(_UNUSABLE_MEMOS)
    elif status == "点検中":
        memo = rng.choice(_UNDER_INSPECTION_MEMOS)
    elif hydrant_type == "地上式" and rng.random() < 0.4:
        memo = "冬季凍結注意"
    elif ownership != "public" and rng.random() < 0.5:
        memo = "私有地・要連絡"
    elif drop_m is not None and drop_m > 3.0 and rng.random() < 0.5:
        memo = "落差大・吸管2本必要"
    elif rng.random() < (0.2 if kind in HYDRANT_KINDS else 0.35):
        memo = rng.choice(_KIND_MEMOS[kind])
    else:
        memo = ""

    latitude, longitude = position
    return DemoWaterSource(
        code=code,
        kind=kind,
        ownership=ownership,
        latitude=latitude,
        longitude=longitude,
        address=_address(rng, town),
        unit=unit,
        capacity_m3=capacity_m3,
        main_diameter_mm=main_diameter_mm,
        hydrant_type=hydrant_type,
        drop_m=drop_m,
        depth_m=depth_m,
        status=status,
        memo=memo,
        last_inspected_on=_last_inspected(rng, today),
    )
