"""The water-source CSV layout: one column per registry field (Japanese headers, English aliases
accepted), the template with example rows, the export, and the reading of cells into typed
values. The map page's list export is the same layout with read-only columns computed from the
figures (判定, 次回点検期限, …) that an import accepts and ignores. No database access."""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from formats import csv_safe
from formats.tabular import (
    CellError,
    CellValueError,
    Column,
    HeaderMatch,
    Sheet,
    plain,
    records,
    to_date,
    to_float,
    to_int,
    unquoted_keys,
)
from models.enums import HYDRANT_KINDS, OWNERSHIPS, WATER_SOURCE_KINDS

LAYOUT = "hikeshi"
COLUMNS: tuple[Column, ...] = (
    # The cell may be longer than the code: 30 characters count after NFKC and trimming (the
    # service's rule), so padding or half-width kana with sound marks are not refused here.
    Column("code", "水利番号", ("code", "水利コード"), True, 60, "H-001"),
    Column("kind", "種別", ("kind", "水利種別"), True, 20, "消火栓"),
    Column("ownership", "区分", ("ownership", "公設私設"), False, 20, "公設"),
    Column("latitude", "緯度", ("latitude", "lat"), False, 40, "35.681236"),
    Column("longitude", "経度", ("longitude", "lon", "lng"), False, 40, "139.767125"),
    Column("address", "所在地", ("address", "住所"), False, 200, "東京都千代田区丸の内1-9-1"),
    Column("unit", "担当分団", ("unit", "分団"), False, 100, "第1分団"),
    Column("capacity_m3", "容量(m3)", ("capacity_m3", "容量", "容量(m³)"), False, 40),
    Column(
        "supply_m3_per_min", "毎分取水量(m3)", ("supply_m3_per_min", "毎分取水量(m³)"), False, 40
    ),
    Column("supply_minutes", "取水継続(分)", ("supply_minutes", "取水継続時間(分)"), False, 40),
    Column("main_diameter_mm", "口径(mm)", ("main_diameter_mm", "口径"), False, 40, "150"),
    Column("hydrant_type", "地上式/地下式", ("hydrant_type", "地上式地下式"), False, 10, "地下式"),
    Column("drop_m", "落差(m)", ("drop_m", "落差"), False, 40),
    Column("depth_m", "水深(m)", ("depth_m", "水深"), False, 40),
    Column("grade_override", "判定の上書き", ("grade_override",), False, 10),
    Column("grade_override_reason", "上書きの理由", ("grade_override_reason",), False, 200),
    Column("status", "状態", ("status",), False, 10, "使用可"),
    Column("memo", "メモ", ("memo", "備考"), False, 500, "駅前ロータリー北側"),
    Column("last_inspected_on", "最終点検日", ("last_inspected_on",), False, 40, "2024-04-01"),
    Column(
        "inspection_interval_days", "点検周期(日)", ("inspection_interval_days",), False, 40, "365"
    ),
)
# Read-only columns of the list export: recognised on import and ignored.
DERIVED: tuple[Column, ...] = (
    Column("_grade", "判定", ("grade",), False, 40),
    Column("_next_inspection_due", "次回点検期限", ("next_inspection_due",), False, 40),
    Column("_overdue", "点検期限切れ", ("overdue",), False, 40),
    Column("_outside_area", "区域外", ("outside_area",), False, 40),
)
READ_COLUMNS = COLUMNS + DERIVED
HEADERS = {column.key: column.header for column in COLUMNS}
SECOND_EXAMPLE = {
    "code": "S-001",
    "kind": "防火水槽",
    "ownership": "公設",
    "latitude": "35.6795",
    "longitude": "139.7690",
    "address": "東京都千代田区丸の内1-1-1",
    "unit": "第1分団",
    "capacity_m3": "40",
    "drop_m": "2.5",
    "depth_m": "2",
    "status": "使用可",
    "memo": "耐震性",
    "inspection_interval_days": "365",
}
FLOAT_KEYS = ("latitude", "longitude", "capacity_m3", "supply_m3_per_min", "drop_m", "depth_m")
INT_KEYS = ("supply_minutes", "inspection_interval_days")
TEXT_KEYS = ("code", "address", "unit", "grade_override_reason", "memo")
OWNERSHIP_KEYS = {
    **{label: key for key, label in OWNERSHIPS.items()},
    **{key: key for key in OWNERSHIPS},
    "指定": "designated",
}
GRADE_OVERRIDES = {"基準": "基準", "参考": "参考", "基準水利": "基準", "参考水利": "参考"}
HYDRANT_TYPES = ("地上式", "地下式")
DEFAULT_STATUS = "使用可"
DEFAULT_OWNERSHIP = "public"


# -- kinds as municipalities spell them ----------------------------------------------------------

_KIND_BASES: dict[str, str] = {
    "消火栓": "消火栓",
    "防火水槽": "防火水槽",
    "防火水そう": "防火水槽",
    "防火貯水槽": "防火水槽",
    "貯水槽": "防火水槽",
    "耐震性貯水槽": "防火水槽",
    "耐震性防火水槽": "防火水槽",
    "耐震性防火水そう": "防火水槽",
    "耐震性防火貯水槽": "防火水槽",
    "プール": "プール",
    "河川": "河川・溝",
    "溝": "河川・溝",
    "河川・溝": "河川・溝",
    "用水路": "河川・溝",
    "水路": "河川・溝",
    "濠": "濠・池",
    "池": "濠・池",
    "濠・池": "濠・池",
    "ため池": "濠・池",
    "海": "海・湖",
    "湖": "海・湖",
    "海・湖": "海・湖",
    "井戸": "井戸",
    "下水道": "下水道",
    "その他": "その他",
    **{kind: kind for kind in WATER_SOURCE_KINDS},
}
_KIND_NOISE = re.compile(r"[\s・()]+")
_OWNER_PREFIXES = {"公設": "public", "私設": "private", "指定": "designated"}
KIND_SPELLINGS_HELP = (
    "、".join(dict.fromkeys(_KIND_BASES))
    + "（前に「公設」「私設」、消火栓には「地上式」「地下式」を付けた表記も可）"
)


@dataclass(frozen=True)
class KindReading:
    """A kind as written, read: our kind, and what the spelling says about ownership or type."""

    kind: str
    ownership: str | None = None
    hydrant_type: str | None = None


def _kind_key(text: str) -> str:
    return _KIND_NOISE.sub("", unicodedata.normalize("NFKC", text)).removesuffix("等")


_KIND_LOOKUP = {_kind_key(spelling): kind for spelling, kind in _KIND_BASES.items()}


@functools.lru_cache(maxsize=1024)  # a file spells its kinds a few ways, thousands of times
def read_kind(text: str) -> KindReading | None:
    """公設消火栓, 私設消火栓, 地下式消火栓, 防火水そう, 耐震性貯水槽, 河川等 … → our kind; None when the
    spelling is not known."""
    key = _kind_key(text)
    hydrant_type = next((t for t in HYDRANT_TYPES if t in key), None)
    if hydrant_type:
        key = key.replace(hydrant_type, "")
    ownership = next((o for p, o in _OWNER_PREFIXES.items() if key.startswith(p)), None)
    if ownership and key[2:] in _KIND_LOOKUP:
        key = key[2:]
    kind = _KIND_LOOKUP.get(key)
    if kind is None:
        return None
    if kind not in HYDRANT_KINDS:
        hydrant_type = None  # 地下式防火水槽: an underground cistern, not a hydrant type
    if kind == "消火栓" and ownership == "private":
        kind = "私設消火栓"
    if kind == "私設消火栓":
        ownership = "private"
    return KindReading(kind, ownership, hydrant_type)


# -- reading cells -------------------------------------------------------------------------------

_DIAMETER = re.compile(r"^[φΦ∅øØ]?\s*(\d+(?:\.\d+)?)\s*(?:mm|ミリ|ミリメートル)?$", re.IGNORECASE)


def to_diameter(text: str) -> int | None:
    """75, φ75, Φ75mm, ７５ｍｍ → 75."""
    cleaned = plain(text)
    if not cleaned:
        return None
    found = _DIAMETER.match(cleaned)
    if found is None:
        raise CellValueError("口径は数値（mm）で入力してください（例: 150、φ75、75mm）。")
    return to_int(found.group(1))


def typed(raw: Mapping[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """Typed values of the keys present in raw, and {key: Japanese message} for cells that cannot
    be read. A blank cell clears its field; 区分 and 状態 fall back to their defaults (or to what
    the 種別 spelling says, as 私設消火栓 does)."""
    values: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for key, text in raw.items():
        reader = READERS.get(key)
        if reader is None:
            continue
        try:
            values[key] = reader(text)
        except CellValueError as exc:
            errors[key] = str(exc)
    if "kind" in raw:
        _apply_kind_hints(raw, values, errors)
    if "ownership" in values and values["ownership"] is None:
        values["ownership"] = DEFAULT_OWNERSHIP
    return values, errors


def _text(text: str) -> str:
    return text


def _hydrant_type(text: str) -> str | None:
    return plain(text) or None


def _status(text: str) -> str:
    return plain(text) or DEFAULT_STATUS


def _ownership(text: str) -> str | None:
    cleaned = plain(text)
    if not cleaned:
        return None
    if cleaned.casefold() in OWNERSHIP_KEYS:
        return OWNERSHIP_KEYS[cleaned.casefold()]
    raise CellValueError("区分は 公設・私設・指定水利 のいずれかで入力してください。")


def _grade_override(text: str) -> str | None:
    cleaned = plain(text)
    if not cleaned:
        return None
    if cleaned in GRADE_OVERRIDES:
        return GRADE_OVERRIDES[cleaned]
    raise CellValueError("判定の上書きは「基準」か「参考」、または空欄です。")


def _apply_kind_hints(raw: Mapping[str, str], values: dict[str, Any], errors: dict) -> None:
    """A spelling such as 私設消火栓 or 地下式消火栓 fills 区分 or 地上式/地下式 where the file leaves
    them blank or has no such column."""
    text = plain(raw["kind"])
    values["kind"] = text
    if not text:
        return
    reading = read_kind(text)
    if reading is None:
        errors["kind"] = f"種別「{text[:20]}」は読み取れません。使える表記: {KIND_SPELLINGS_HELP}。"
        return
    values["kind"] = reading.kind
    if values.get("ownership") is None and reading.ownership:
        values["ownership"] = reading.ownership
    if values.get("hydrant_type") is None and reading.hydrant_type:
        values["hydrant_type"] = reading.hydrant_type


# Cells of a few distinct values per file (dates, diameters) are read once each: the readers
# are pure and their values immutable; a cell that cannot be read raises every time.
READERS: dict[str, Callable[[str], Any]] = {
    **dict.fromkeys(FLOAT_KEYS, to_float),
    **dict.fromkeys(INT_KEYS, to_int),
    **dict.fromkeys(TEXT_KEYS, _text),
    "main_diameter_mm": functools.lru_cache(maxsize=1024)(to_diameter),
    "last_inspected_on": functools.lru_cache(maxsize=4096)(to_date),
    "ownership": _ownership,
    "grade_override": _grade_override,
    "hydrant_type": _hydrant_type,
    "status": _status,
}


# -- what a read sheet becomes -------------------------------------------------------------------


@dataclass
class ParsedRows:
    """Rows of an upload in our layout's keys (text, as written), whatever layout they came in,
    with the errors found while reading and translating them."""

    layout: str
    sheet: str
    header_row: int  # as the spreadsheet numbers it
    headers: dict[str, str]  # our key → the header text in the file, for error messages
    records: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    errors: dict[int, list[CellError]] = field(default_factory=dict)
    file_errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    unquoted: dict[int, frozenset[str]] = field(default_factory=dict)  # tabular.unquoted_keys

    def add_error(self, error: CellError) -> None:
        self.errors.setdefault(error.row, []).append(error)


def parse(sheet: Sheet, match: HeaderMatch) -> ParsedRows:
    """Rows of a sheet in our layout; unknown or repeated headers are file errors (a mistyped
    header must not drop a column silently); the read-only columns are ignored."""
    header = sheet.rows[match.row_index]
    parsed = ParsedRows(
        LAYOUT,
        sheet.name,
        match.row_index + 1,
        {key: header[index].strip() for index, key in match.columns.items()},
    )
    parsed.file_errors = match.problems
    parsed.unquoted = unquoted_keys(sheet, match)
    derived = any(key.startswith("_") for key in match.columns.values())
    for number, values, errors in records(sheet, match, READ_COLUMNS):
        if derived:
            values = {k: v for k, v in values.items() if not k.startswith("_")}
        parsed.records.append((number, values))
        for error in errors:
            parsed.add_error(error)
    return parsed


# -- writing -------------------------------------------------------------------------------------


def cell(value: Any) -> str:
    """Exact text of a stored value: floats in their shortest round-tripping form."""
    if value is None:
        return ""
    if type(value) is str:  # most cells: first, without the other tests
        return value
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def row_of(source: Any) -> list[str]:
    values = {column.key: getattr(source, column.key) for column in COLUMNS}
    values["ownership"] = OWNERSHIPS.get(values["ownership"], values["ownership"])
    return [cell(values[column.key]) for column in COLUMNS]


def encode(sources: Iterable[Any], *, encoding: str = "utf-8") -> bytes:
    """Every registry field of each source, in the layout import reads. UTF-8 with a BOM, or
    CP932 (csv_safe.Unencodable names the cells it cannot hold)."""
    return csv_safe.encode(
        [column.header for column in COLUMNS],
        (row_of(source) for source in sources),
        encoding=encoding,
    )


def encode_list(sources: Iterable[Any]) -> bytes:
    """The map page's list: the import layout with 判定 after 区分 and the other read-only columns
    at the end (an import ignores them)."""
    header = [column.header for column in COLUMNS]
    derived = [column.header for column in DERIVED]
    return csv_safe.encode(
        [*header[:3], derived[0], *header[3:], *derived[1:]],
        (_list_row(source) for source in sources),
    )


def _list_row(source: Any) -> list[str]:
    row, extra = row_of(source), _derived(source)
    return [*row[:3], extra[0], *row[3:], *extra[1:]]


def _derived(source: Any) -> list[str]:
    return [
        f"{source.grade}水利",
        cell(source.next_inspection_due),
        "○" if source.overdue else "",
        "○" if source.outside_area else "",
    ]


# Where a brigade's area centre is known, the examples stand beside it (some 50 m apart) instead
# of in Tokyo, without an address: a template imported as it is lands on the brigade's own map.
EXAMPLE_OFFSETS = ((0.0003, 0.0003), (-0.0003, -0.0003))


def template(centre: tuple[float, float] | None = None) -> bytes:
    """The header and two example rows (a hydrant and a cistern), UTF-8 with a BOM; placed at
    `centre` (the brigade's area centre) when given."""
    first = {column.key: column.example for column in COLUMNS}
    rows = [first, {column.key: SECOND_EXAMPLE.get(column.key, "") for column in COLUMNS}]
    if centre is not None:
        for row, (dlat, dlon) in zip(rows, EXAMPLE_OFFSETS, strict=True):
            row |= {
                "latitude": f"{centre[0] + dlat:.6f}",
                "longitude": f"{centre[1] + dlon:.6f}",
                "address": "",
            }
    return csv_safe.encode(
        [column.header for column in COLUMNS], [[row[c.key] for c in COLUMNS] for row in rows]
    )


def headers_for(keys: Sequence[str]) -> dict[str, str]:
    return {key: HEADERS[key] for key in keys if key in HEADERS}
