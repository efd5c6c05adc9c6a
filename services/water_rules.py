"""消防水利の基準 (消防庁告示第7号) as pure functions: 基準水利 or 参考水利 with the reasons in
Japanese, and what inspections mean for a source's status and the next due date."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Protocol

from models.enums import HYDRANT_KINDS

STANDARD = "基準"
REFERENCE = "参考"
GRADES = (STANDARD, REFERENCE)

MIN_CAPACITY_M3 = 40.0
MIN_SUPPLY_M3_PER_MIN = 1.0
MIN_SUPPLY_MINUTES = 40
MIN_MAIN_MM = 150
MIN_LIMITED_MAIN_MM = 75
MAX_DROP_M = 4.5
MIN_DEPTH_M = 0.5
UNLIMITED_KINDS = frozenset({"海・湖"})

# 点検結果 → the status it leaves the source in.
INSPECTION_RESULTS: dict[str, str] = {
    "異常なし": "使用可",
    "軽微な不具合（使用可）": "使用可",
    "整備中": "点検中",
    "使用不可": "使用不可",
}


class Figures(Protocol):
    kind: str
    capacity_m3: float | None
    supply_m3_per_min: float | None
    supply_minutes: int | None
    main_diameter_mm: int | None
    drop_m: float | None
    depth_m: float | None


@dataclass(frozen=True)
class Grade:
    grade: str
    computed: str
    reasons: tuple[str, ...]
    overridden: bool = False


def assess(item: Figures) -> Grade:
    """基準 when every figure the standard asks for is known and meets it; else 参考."""
    if item.kind in HYDRANT_KINDS:
        checks = [_main(item.main_diameter_mm)]
    else:
        checks = [_volume(item), _drop(item.drop_m), _depth(item.depth_m)]
    grade = STANDARD if all(ok for ok, _ in checks) else REFERENCE
    return Grade(grade, grade, tuple(reason for _, reason in checks))


def grade_of(item: Figures, override: str | None, override_reason: str = "") -> Grade:
    """The computed grade, unless a manual override (基準/参考) wins; the reasons say so."""
    computed = assess(item)
    if override not in GRADES:
        return computed
    note = f"手動で「{override}水利」に設定" + (f"（{override_reason}）" if override_reason else "")
    return Grade(override, computed.grade, (note, *computed.reasons), overridden=True)


def _main(diameter: int | None) -> tuple[bool, str]:
    if diameter is None:
        return False, "配水管の口径が不明です。"
    if diameter >= MIN_MAIN_MM:
        return True, f"配水管の口径 {diameter}mm（{MIN_MAIN_MM}mm以上）"
    if diameter >= MIN_LIMITED_MAIN_MM:
        return False, (
            f"配水管の口径 {diameter}mm は {MIN_MAIN_MM}mm 未満です（管網の一辺が180m以下などの"
            "条件を満たせば75mm以上で基準水利。該当する場合は判定を上書きしてください）。"
        )
    return False, f"配水管の口径 {diameter}mm は {MIN_LIMITED_MAIN_MM}mm 未満です。"


def _volume(item: Figures) -> tuple[bool, str]:
    if item.kind in UNLIMITED_KINDS:
        return True, f"{item.kind}は水量が十分とみなします。"
    capacity, rate, minutes = item.capacity_m3, item.supply_m3_per_min, item.supply_minutes
    if capacity is not None and capacity >= MIN_CAPACITY_M3:
        return True, f"容量 {capacity:g}m³（{MIN_CAPACITY_M3:g}m³以上）"
    if rate is not None and minutes is not None:
        if rate >= MIN_SUPPLY_M3_PER_MIN and minutes >= MIN_SUPPLY_MINUTES:
            return True, f"毎分 {rate:g}m³ を {minutes}分間 取水可能"
    if capacity is None and (rate is None or minutes is None):
        return False, "容量（または毎分の取水量と継続時間）が不明です。"
    shown = [f"容量 {capacity:g}m³" if capacity is not None else ""]
    if rate is not None and minutes is not None:
        shown.append(f"毎分 {rate:g}m³ × {minutes}分")
    return False, (
        f"{'・'.join(s for s in shown if s)} は基準（{MIN_CAPACITY_M3:g}m³以上、または毎分"
        f"{MIN_SUPPLY_M3_PER_MIN:g}m³以上を{MIN_SUPPLY_MINUTES}分以上）に足りません。"
    )


def _drop(drop: float | None) -> tuple[bool, str]:
    if drop is None:
        return False, "落差（地盤面から水面まで）が不明です。"
    if drop <= MAX_DROP_M:
        return True, f"落差 {drop:g}m（{MAX_DROP_M:g}m以下）"
    return False, f"落差 {drop:g}m は {MAX_DROP_M:g}m を超えています。"


def _depth(depth: float | None) -> tuple[bool, str]:
    if depth is None:
        return False, "取水部分の水深が不明です。"
    if depth >= MIN_DEPTH_M:
        return True, f"水深 {depth:g}m（{MIN_DEPTH_M:g}m以上）"
    return False, f"水深 {depth:g}m は {MIN_DEPTH_M:g}m 未満です。"


def next_inspection_due(last: date | None, interval_days: int) -> date | None:
    return None if last is None else last + timedelta(days=interval_days)


def is_overdue(last: date | None, interval_days: int, today: date) -> bool:
    """Never inspected counts as overdue; otherwise overdue the day after the due date."""
    due = next_inspection_due(last, interval_days)
    return due is None or today > due
