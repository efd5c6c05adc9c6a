"""What an imported water-source file is checked for beyond each row's own rules: codes that are
the same once normalised, latitude and longitude given the wrong way round in the whole file, and
points far from the brigade's area (white paper 12.3.1). Nothing here writes; the preview shows
what it finds, and a swap is only made when the administrator asks for it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

from formats import water_csv
from formats.tabular import CellError, CellValueError
from services import geo
from services.base import Tx
from services.brigade_settings import settings_in
from services.imports import ImportPreview, RowStatus

Records = Sequence[tuple[int, dict[str, str]]]
SWAP_OPTION = "swap_coordinates"


class PlannedRow(Protocol):
    """A water row's plan (services.water_import_rows.WaterRowPlan) as far as positions go."""

    row: int
    status: RowStatus
    values: Mapping[str, Any]


def duplicate_code_message(given: str, first_row: int, first_given: str) -> str:
    if given.strip() == first_given.strip():
        return f"水利番号「{given.strip()}」がファイル内で重複しています（{first_row}行目と同じ）。"
    return (
        f"水利番号「{given.strip()}」は{first_row}行目の「{first_given.strip()}」と同じ番号で、"
        "ファイル内で重複しています（全角・半角と前後の空白をそろえて比べます）。"
    )


def oriented(records: Records, *, swap: bool) -> list[tuple[int, dict[str, str]]]:
    """The records as given, or with the texts of 緯度 and 経度 exchanged in every row that has
    both columns: the rows themselves then carry the swap, so applying re-plans the same values."""
    if not swap:
        return list(records)
    return [(number, _swapped(raw)) for number, raw in records]


def check_positions(
    tx: Tx,
    preview: ImportPreview,
    records: Records,
    *,
    headers: dict[str, str],
    swap: bool,
    stored: Iterable[Any] | None = None,
) -> None:
    """The preview's file-level swap offer (or the note that the swap was made), and a warning for
    each importable row placed farther from the brigade's area centre than the area's radius.
    stored: the brigade's sources (their latitude and longitude), when the caller has read them."""
    if swap:
        preview.options[SWAP_OPTION] = True
        preview.notes.append(f"緯度と経度を入れ替えて読み込んでいます（{_with_both(records)}行）。")
    else:
        preview.swappable_rows = swappable_rows(records)
    preview.warnings += far_warnings(tx, preview.rows, headers=headers, stored=stored)


def swappable_rows(records: Records) -> int:
    """How many rows are in Japan only when swapped, if they outnumber the rows already in Japan
    (a few stray rows get the per-row hint instead: swapping the file would break the others);
    else 0. Swapped Japanese points are never in Japan as given, so being valid only when
    swapped also covers "inside the brigade's area only when swapped"."""
    swapped = placed = 0
    for _, raw in records:
        point = _point(raw)
        if point is not None:
            swapped += geo.swapped_in_japan(*point)
            placed += geo.in_japan(*point)
    return swapped if swapped > placed else 0


def far_warnings(
    tx: Tx,
    plans: Sequence[PlannedRow],
    *,
    headers: dict[str, str],
    stored: Iterable[Any] | None = None,
) -> list[CellError]:
    """Rows that will be imported at a point outside the brigade's area: the saved centre, or the
    median of the stored sources (stored, else read here), and the area radius of the water-map
    settings (the map marks the same points 区域外). No centre, no warning."""
    positions = None
    if stored is not None:
        positions = [
            (row.latitude, row.longitude)
            for row in stored
            if row.latitude is not None and row.longitude is not None
        ]
    settings = settings_in(tx, positions)
    if settings.area_center is None:
        return []
    column = headers.get("latitude", water_csv.HEADERS["latitude"])
    warnings = []
    for plan in plans:
        lat, lon = plan.values.get("latitude"), plan.values.get("longitude")
        if plan.status == RowStatus.INVALID or not settings.outside_area(lat, lon):
            continue
        km = geo.haversine_m(lat, lon, *settings.area_center) / 1000
        warnings.append(
            CellError(
                plan.row,
                column,
                f"区域の中心から約{km:,.1f}km離れています（区域の半径 {settings.area_radius_km:g}km）。"
                "位置が正しいか確かめてください。",
            )
        )
    return warnings


def _swapped(raw: dict[str, str]) -> dict[str, str]:
    if "latitude" not in raw or "longitude" not in raw:
        return dict(raw)
    return {**raw, "latitude": raw["longitude"], "longitude": raw["latitude"]}


def _with_both(records: Records) -> int:
    return sum(_point(raw) is not None for _, raw in records)


def _point(raw: dict[str, str]) -> tuple[float, float] | None:
    """The row's position as water_csv.typed reads it; None unless both cells read as numbers."""
    if "latitude" not in raw or "longitude" not in raw:
        return None
    try:
        lat = water_csv.READERS["latitude"](raw["latitude"])
        lon = water_csv.READERS["longitude"](raw["longitude"])
    except CellValueError:
        return None
    return None if lat is None or lon is None else (lat, lon)
