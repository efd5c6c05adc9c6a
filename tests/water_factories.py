"""Factory helpers for water-source tests (services, pages and the browser)."""

from __future__ import annotations

import itertools
import uuid

from models.water import WaterSourceCreate, WaterSourcePublic
from services import water_sources
from tests.factories import admin

_counter = itertools.count(1)

# A point in the middle of Japan and the length of 0.001° of latitude there, on the mean sphere.
ORIGIN = (36.0, 138.0)
METRES_PER_MILLIDEGREE_LAT = 111.19508


def source_data(**overrides: object) -> WaterSourceCreate:
    n = next(_counter)
    values: dict[str, object] = {
        "code": f"T-{n:05d}",
        "kind": "防火水槽",
        "ownership": "public",
        "latitude": ORIGIN[0],
        "longitude": ORIGIN[1],
        "address": f"テスト市本町{n}",
        "unit": "第1分団",
        "capacity_m3": 40.0,
        "drop_m": 2.0,
        "depth_m": 2.5,
    }
    values.update(overrides)
    return WaterSourceCreate(**values)


def make_source(tenant_id: uuid.UUID, **overrides: object) -> WaterSourcePublic:
    return water_sources.create_water_source(admin(tenant_id), data=source_data(**overrides))


def north_of_origin(millidegrees: float) -> dict[str, float]:
    """Coordinates `millidegrees` thousandths of a degree north of ORIGIN."""
    return {"latitude": ORIGIN[0] + millidegrees / 1000, "longitude": ORIGIN[1]}
