"""The demo brigade's constants, the records the generators return, and small helpers."""

from __future__ import annotations

import datetime
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from models.enums import (
    RANK_NAMES,
)

DEFAULT_SEED: Final = 20261126

RANKS = RANK_NAMES  # highest first
HYDRANT_DIAMETERS_MM: tuple[int, ...] = (75, 100, 150, 200)
HYDRANT_TYPES: tuple[str, ...] = ("地上式", "地下式")
MEMBER_STATUSES: tuple[str, ...] = ("active", "suspended", "retired")

CENTER: Final = (36.4020, 138.2490)

DEMO_BRIGADE: dict[str, Any] = {
    "name": "デモ市消防団",
    "municipality": "デモ市（架空）",
    "center": CENTER,
}

HEADQUARTERS: Final = "団本部"
DEMO_UNITS: tuple[str, ...] = ("第1分団", "第2分団", "第3分団", "第4分団", "第5分団", "第6分団")
# Number of 部 (sections) in each unit; sections are labelled "第N分団 第M部".
DEMO_UNIT_SECTIONS: dict[str, int] = {
    "第1分団": 3,
    "第2分団": 3,
    "第3分団": 2,
    "第4分団": 2,
    "第5分団": 3,
    "第6分団": 2,
}

# Role name -> the rank whose permissions the role grants.
DEMO_ROLES: dict[str, str] = {
    "方面隊長": "副団長",
    "会計": "副分団長",
    "庶務": "班長",
    "機関員": "団員",
    "機能別団員": "団員",
}

DEMO_EMAIL_DOMAINS: tuple[str, ...] = ("example.jp", "example.com", "example.org")

# Inspection interval used to decide whether a water source is overdue.
INSPECTION_INTERVAL_DAYS: Final = 365

EARLIEST_JOIN: Final = datetime.date(1990, 1, 1)
JOIN_MARGIN_DAYS: Final = 30
EARTH_RADIUS_KM: Final = 6371.0088
MAX_RADIUS_KM: Final = 4.0
CENTRAL_RADIUS_KM: Final = 1.3


# ---------------------------------------------------------------------------
# Public records
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class DemoMember:
    member_code: str
    name: str
    kana: str
    rank: str
    roles: tuple[str, ...]
    affiliation: str
    phone: str
    email: str
    joined_on: datetime.date
    status: str
    notes: str


@dataclass(frozen=True)
class DemoWaterSource:
    code: str
    kind: str
    ownership: str
    latitude: float
    longitude: float
    address: str
    unit: str
    capacity_m3: float | None
    main_diameter_mm: int | None
    hydrant_type: str | None
    drop_m: float | None
    depth_m: float | None
    status: str
    memo: str
    last_inspected_on: datetime.date | None


# ---------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------


def allocate(total: int, weights: Sequence[tuple[str, float]]) -> list[tuple[str, int]]:
    """Split ``total`` into integer counts proportional to ``weights`` (largest remainder)."""
    weight_sum = sum(w for _, w in weights)
    exact = [(key, total * w / weight_sum) for key, w in weights]
    counts = {key: math.floor(value) for key, value in exact}
    remaining = total - sum(counts.values())
    by_remainder = sorted(
        range(len(exact)), key=lambda i: (-(exact[i][1] - math.floor(exact[i][1])), i)
    )
    for i in by_remainder[:remaining]:
        counts[exact[i][0]] += 1
    return [(key, counts[key]) for key, _ in weights]


def weighted(rng: random.Random, options: Sequence[tuple[Any, float]]) -> Any:
    values = [value for value, _ in options]
    weights = [weight for _, weight in options]
    return rng.choices(values, weights=weights, k=1)[0]


def date_between(rng: random.Random, start: datetime.date, end: datetime.date) -> datetime.date:
    if end < start:
        start, end = end, start
    return start + datetime.timedelta(days=rng.randint(0, (end - start).days))
