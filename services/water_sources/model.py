"""The water-source registry's shared parts: constants, filters and results, and the helpers
that load, save and present a source with its grade."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from types import SimpleNamespace
from typing import Any

from core.timefmt import today_jst
from models.base import utcnow
from models.water import (
    WaterSource,
    WaterSourceBase,
    WaterSourcePublic,
    WaterSourceUpdate,
)
from services import water_rules
from services.base import Tx
from services.brigade_settings import WaterMapSettings, settings_in
from services.errors import NotFound

TABLE = "water_source"
HYDRANT_TYPES = ("地上式", "地下式")
USABLE = "使用可"
EARLIEST_DATE = date(1950, 1, 1)
BASE_FIELDS = tuple(WaterSourceBase.model_fields)
EDITABLE_FIELDS = tuple(WaterSourceUpdate.model_fields)
# Reading columns rather than entities makes listing 20 000 sources several times faster.
PUBLIC_COLUMNS = tuple(
    getattr(WaterSource, name) for name in (*BASE_FIELDS, "id", "version", "updated_at")
)
# (field, label, lowest, highest, whether the lowest itself is allowed)
NUMBER_RANGES: tuple[tuple[str, str, float, float, bool], ...] = (
    ("capacity_m3", "容量（m³）", 0, 1_000_000, False),
    ("supply_m3_per_min", "毎分の取水量（m³）", 0, 1_000, False),
    ("supply_minutes", "取水の継続時間（分）", 0, 100_000, False),
    ("main_diameter_mm", "配水管の口径（mm）", 25, 3_000, True),
    ("drop_m", "落差（m）", 0, 100, True),
    ("depth_m", "水深（m）", 0, 100, False),
    ("inspection_interval_days", "点検周期（日）", 1, 3_650, True),
)
NOT_FOR_HYDRANTS = {"capacity_m3": "容量", "drop_m": "落差", "depth_m": "水深"}


@dataclass(frozen=True)
class WaterSourceFilter:
    kinds: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()
    units: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()  # メモ values, matched exactly
    grades: tuple[str, ...] = ()
    text: str = ""  # part of the code, address or メモ
    overdue_only: bool = False


@dataclass(frozen=True)
class NearbySource:
    source: WaterSourcePublic
    distance_m: float
    radius_m: int

    @property
    def covers(self) -> bool:
        return self.distance_m <= self.radius_m


@dataclass(frozen=True)
class InspectorOption:
    member_id: uuid.UUID
    label: str


@dataclass(frozen=True)
class Registry:
    """The tenant's sources (filtered) with the settings they were computed under."""

    sources: list[WaterSourcePublic]
    settings: WaterMapSettings


# -- helpers -----------------------------------------------------------------------------------


def load_source(tx: Tx, source_id: uuid.UUID) -> WaterSource:
    source = tx.get(WaterSource, source_id)
    if source is None:
        raise NotFound("水利が見つかりません。")
    return source


def save_source(tx: Tx, source: WaterSource) -> WaterSourcePublic:
    source.version += 1
    source.updated_at = utcnow()
    tx.session.add(source)
    tx.session.flush()
    return _public(source, settings_in(tx), today_jst())


def _public(row: Any, settings: WaterMapSettings, today: date) -> WaterSourcePublic:
    """From a WaterSource or a row of PUBLIC_COLUMNS."""
    fields = {name: getattr(row, name) for name in BASE_FIELDS}
    grade = _grade(*(fields[name] for name in GRADE_INPUTS))
    return WaterSourcePublic.model_construct(
        PUBLIC_FIELDS_SET,
        **fields,
        id=row.id,
        version=row.version,
        updated_at=row.updated_at,
        grade=grade.grade,
        computed_grade=grade.computed,
        grade_reasons=list(grade.reasons),
        grade_overridden=grade.overridden,
        next_inspection_due=water_rules.next_inspection_due(
            row.last_inspected_on, row.inspection_interval_days
        ),
        overdue=water_rules.is_overdue(row.last_inspected_on, row.inspection_interval_days, today),
        outside_area=settings.outside_area(row.latitude, row.longitude),
    )


PUBLIC_FIELDS_SET = frozenset(WaterSourcePublic.model_fields)
GRADE_INPUTS = (
    "kind",
    "capacity_m3",
    "supply_m3_per_min",
    "supply_minutes",
    "main_diameter_mm",
    "drop_m",
    "depth_m",
    "grade_override",
    "grade_override_reason",
)


@lru_cache(maxsize=4096)
def _grade(*values: Any) -> water_rules.Grade:
    """Sources share few distinct figures, so their grades are computed once per combination."""
    figures = dict(zip(GRADE_INPUTS, values, strict=True))
    override, reason = figures.pop("grade_override"), figures.pop("grade_override_reason")
    return water_rules.grade_of(SimpleNamespace(**figures), override, reason)


def _summary(source: WaterSource | WaterSourcePublic) -> dict:
    return {name: getattr(source, name) for name in BASE_FIELDS}
