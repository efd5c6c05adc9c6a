"""The water-source list as CSV for download: UTF-8 with a BOM (Excel opens it as UTF-8), one row
per source, cells that a spreadsheet would run as a formula neutralised (exports/csv_safe.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from exports import csv_safe
from models.enums import OWNERSHIPS


def _yes(value: bool) -> str:
    return "○" if value else ""


COLUMNS: tuple[tuple[str, Callable[[Any], Any]], ...] = (
    ("水利番号", lambda s: s.code),
    ("種別", lambda s: s.kind),
    ("区分", lambda s: OWNERSHIPS.get(s.ownership, s.ownership)),
    ("判定", lambda s: f"{s.grade}水利"),
    ("判定の上書き", lambda s: _yes(s.grade_overridden)),
    ("状態", lambda s: s.status),
    ("担当分団", lambda s: s.unit),
    ("所在地", lambda s: s.address),
    ("緯度", lambda s: s.latitude),
    ("経度", lambda s: s.longitude),
    ("容量(m3)", lambda s: s.capacity_m3),
    ("毎分取水量(m3)", lambda s: s.supply_m3_per_min),
    ("取水継続(分)", lambda s: s.supply_minutes),
    ("口径(mm)", lambda s: s.main_diameter_mm),
    ("地上式/地下式", lambda s: s.hydrant_type),
    ("落差(m)", lambda s: s.drop_m),
    ("水深(m)", lambda s: s.depth_m),
    ("メモ", lambda s: s.memo),
    ("最終点検日", lambda s: s.last_inspected_on),
    ("次回点検期限", lambda s: s.next_inspection_due),
    ("点検期限切れ", lambda s: _yes(s.overdue)),
    ("区域外", lambda s: _yes(s.outside_area)),
)


def encode(sources: Iterable[Any]) -> bytes:
    return csv_safe.encode(
        [name for name, _ in COLUMNS], ([get(s) for _, get in COLUMNS] for s in sources)
    )
