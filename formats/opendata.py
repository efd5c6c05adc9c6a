"""Water sources as municipalities publish them, and any other layout through a column mapping.

The standard open-data layout (自治体標準オープンデータセット「消防水利施設一覧」) is recognised by
its headers; its rows are translated into our layout's keys: the ID becomes the 水利番号, the
address parts are joined, 口径 becomes the main's diameter and 備考 the メモ. A source without
coordinates stays without them (it is reported, never placed by guesswork).

Any other CSV or XLSX sheet is read through a ColumnMapping the administrator makes (and may
save): which sheet, which row holds the header, which of their columns is which of ours, and
how their kinds are spelled. No database access."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from formats import water_csv
from formats.tabular import (
    HEADER_SCAN_ROWS,
    MAX_CELL_CHARS,
    Column,
    HeaderMatch,
    Sheet,
    header_key,
    named,
    plain,
    records,
    unquoted_keys,
)
from formats.water_csv import ParsedRows
from models.enums import WATER_SOURCE_KINDS

LAYOUT = "opendata"
MAPPED = "mapping"
COLUMNS: tuple[Column, ...] = (
    Column("municipality_code", "全国地方公共団体コード", max_length=20),
    Column("id", "ID", required=True, max_length=60),
    Column("municipality", "地方公共団体名", max_length=100),
    Column("kind", "種別", required=True, max_length=40),
    Column("address", "所在地_連結表記", ("所在地",), max_length=200),
    Column("prefecture", "所在地_都道府県", max_length=20),
    Column("city", "所在地_市区町村", max_length=50),
    Column("town", "所在地_町字", max_length=100),
    Column("block", "所在地_番地以下", max_length=100),
    Column("building", "建物名等(方書)", ("建物名等", "方書"), max_length=100),
    Column("latitude", "緯度", max_length=40),
    Column("longitude", "経度", max_length=40),
    Column("diameter", "口径", ("口径(mm)",), max_length=40),
    Column("remarks", "備考", max_length=500),
)
ADDRESS_PARTS = ("prefecture", "city", "town", "block")
# Open-data key → our key, for the cells copied as they are.
COPIED = {
    "kind": "kind",
    "latitude": "latitude",
    "longitude": "longitude",
    "diameter": "main_diameter_mm",
    "remarks": "memo",
}
UNUSED = ("municipality_code", "municipality")
BUILDING_SEPARATOR = "　"
NOTE_NAMES = 20  # columns named in a note; a file may have a thousand


def parse(sheet: Sheet, match: HeaderMatch) -> ParsedRows:
    """Rows of an open-data sheet in our keys. Columns the standard does not have are listed in
    the notes and not read."""
    header = sheet.rows[match.row_index]
    found = {key: header[index].strip() for index, key in match.columns.items()}
    parsed = ParsedRows(LAYOUT, sheet.name, match.row_index + 1, _our_headers(found))
    parsed.file_errors = [
        f"列「{name}」が複数あります。" for name in dict.fromkeys(match.duplicated)
    ]
    parsed.file_errors += [f"必須の列「{name}」がありません。" for name in match.missing]
    parsed.notes.append(
        "自治体標準オープンデータセット（消防水利施設一覧）の形式として読み込みます。"
    )
    if match.unknown:
        parsed.notes.append(
            "標準の形式にない列は読み込みません: " + named(match.unknown, NOTE_NAMES)
        )
    for number, values, errors in records(sheet, match, COLUMNS):
        for error in errors:
            parsed.add_error(error)
        parsed.records.append((number, translate(values)))
    parsed.unquoted = _ours(unquoted_keys(sheet, match), OURS)
    return parsed


# Open-data key → the key of ours its text goes to (the 所在地 parts are joined into one).
OURS = {"id": "code", **COPIED, **dict.fromkeys(("address", *ADDRESS_PARTS, "building"), "address")}


def _ours(
    unquoted: Mapping[int, frozenset[str]], keys: Mapping[str, str]
) -> dict[int, frozenset[str]]:
    """tabular.unquoted_keys in our keys: the cells that lost their escaping ' on reading, so
    that the preview shows it (#17) for this layout and for a mapping too."""
    return {
        row: frozenset(keys[key] for key in found if key in keys) for row, found in unquoted.items()
    }


def translate(values: Mapping[str, str]) -> dict[str, str]:
    """Our keys → text. The ID becomes the 水利番号 (full-width letters and digits made
    half-width); one that cannot be a 水利番号 is reported by the row's validation."""
    ours = {"code": plain(values.get("id", ""))}
    ours |= {our: values[key] for key, our in COPIED.items() if key in values}
    if any(key in values for key in ("address", *ADDRESS_PARTS, "building")):
        ours["address"] = address(values)
    return ours


def address(values: Mapping[str, str]) -> str:
    """所在地_連結表記 when given, else the parts joined; then 建物名等(方書) unless already in it."""
    joined = values.get("address", "").strip()
    if not joined:
        joined = "".join(values.get(part, "").strip() for part in ADDRESS_PARTS)
    building = values.get("building", "").strip()
    if building and building not in joined:
        joined = BUILDING_SEPARATOR.join(filter(None, (joined, building)))
    return joined


def _our_headers(found: Mapping[str, str]) -> dict[str, str]:
    headers = {our: found[key] for key, our in COPIED.items() if key in found}
    headers["code"] = found.get("id", "ID")
    present = [found[k] for k in ("address", *ADDRESS_PARTS, "building") if k in found]
    if present:
        headers["address"] = present[0]
    return headers


# -- column mapping ------------------------------------------------------------------------------

MAPPING_TARGETS: dict[str, str] = dict(water_csv.HEADERS)
JOINED_TARGETS = {"address": "", "memo": "　"}  # several columns may fill these, joined


@dataclass(frozen=True)
class ColumnMapping:
    """How to read a sheet of another layout: the sheet (name, or index from 0), the header row
    (as the spreadsheet numbers it; None: the row naming most of the mapped columns), their
    header text → our key (MAPPING_TARGETS), and their kind spellings → our kind."""

    columns: dict[str, str]
    sheet: str | int = 0
    header_row: int | None = None
    kinds: dict[str, str] = field(default_factory=dict)

    def problems(self) -> list[str]:
        """What makes the mapping unusable, in Japanese; empty when it can be applied."""
        found: list[str] = []
        targets = list(self.columns.values())
        for key in sorted(set(targets) - set(MAPPING_TARGETS)):
            found.append(f"「{key}」は割り当て先にありません。")
        for key in ("code", "kind"):
            if key not in targets:
                found.append(f"「{MAPPING_TARGETS[key]}」にする列を選んでください。")
        for key in sorted({t for t in targets if targets.count(t) > 1} - set(JOINED_TARGETS)):
            if key in MAPPING_TARGETS:
                found.append(f"「{MAPPING_TARGETS[key]}」に複数の列が割り当てられています。")
        for text, kind in self.kinds.items():
            if kind not in WATER_SOURCE_KINDS:
                found.append(
                    f"種別の読み替え「{text}」→「{kind}」: 種別を選択肢から選んでください。"
                )
        if self.header_row is not None and not 1 <= self.header_row <= HEADER_SCAN_ROWS:
            found.append(f"見出しの行は1〜{HEADER_SCAN_ROWS}行目で指定してください。")
        return found

    def __hash__(self) -> int:
        return hash(json.dumps(self.to_json(), sort_keys=True, ensure_ascii=False))

    def to_json(self) -> dict[str, Any]:
        return {
            "columns": dict(self.columns),
            "sheet": self.sheet,
            "header_row": self.header_row,
            "kinds": dict(self.kinds),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ColumnMapping:
        sheet = data.get("sheet", 0)
        header_row = data.get("header_row")
        return cls(
            columns={str(k): str(t) for k, t in dict(data.get("columns") or {}).items()},
            sheet=sheet if isinstance(sheet, int) else str(sheet),
            header_row=int(header_row) if header_row is not None else None,
            kinds={str(k): str(t) for k, t in dict(data.get("kinds") or {}).items()},
        )


def apply_mapping(sheets: Sequence[Sheet], mapping: ColumnMapping) -> ParsedRows:
    """The chosen sheet's rows in our keys, through the mapping."""
    sheet = _sheet(sheets, mapping.sheet)
    if sheet is None:
        return _failed(f"シート「{mapping.sheet}」がありません。", mapping)
    if problems := mapping.problems():
        return _failed(" ".join(problems), mapping, sheet.name)
    row_index = _header_index(sheet, mapping)
    header = sheet.rows[row_index] if row_index < len(sheet.rows) else []
    wanted = {header_key(name): name for name in mapping.columns}
    positions = {i: wanted[header_key(c)] for i, c in enumerate(header) if header_key(c) in wanted}
    written = {name: header[index].strip() for index, name in positions.items()}
    parsed = ParsedRows(MAPPED, sheet.name, row_index + 1, _mapped_headers(mapping, written))
    parsed.file_errors = [
        f"{row_index + 1}行目に列「{name}」が見つかりません（対応付けを見直してください）。"
        for name in mapping.columns
        if name not in written
    ]
    if parsed.file_errors:
        return parsed
    unmapped = [c.strip() for i, c in enumerate(header) if c.strip() and i not in positions]
    if unmapped:
        parsed.notes.append("対応付けのない列は読み込みません: " + named(unmapped, NOTE_NAMES))
    columns = [Column(name, written[name], max_length=MAX_CELL_CHARS) for name in written]
    match = HeaderMatch(row_index, positions)
    for number, values, errors in records(sheet, match, columns):
        for error in errors:
            parsed.add_error(error)
        parsed.records.append((number, _mapped_values(values, mapping)))
    parsed.unquoted = _ours(unquoted_keys(sheet, match), mapping.columns)
    return parsed


def _sheet(sheets: Sequence[Sheet], wanted: str | int) -> Sheet | None:
    if isinstance(wanted, int):
        return sheets[wanted] if 0 <= wanted < len(sheets) else None
    return next((s for s in sheets if s.name == wanted), None)


def _header_index(sheet: Sheet, mapping: ColumnMapping) -> int:
    if mapping.header_row is not None:
        return mapping.header_row - 1
    wanted = {header_key(name) for name in mapping.columns}
    scores = [
        len(wanted & {header_key(cell) for cell in row if cell.strip()})
        for row in sheet.rows[:HEADER_SCAN_ROWS]
    ]
    return scores.index(max(scores)) if scores else 0


def _mapped_headers(mapping: ColumnMapping, written: Mapping[str, str]) -> dict[str, str]:
    """Our key → the first of the file's headers mapped to it, as the file writes it."""
    headers: dict[str, str] = {}
    for name, text in written.items():
        headers.setdefault(mapping.columns[name], text)
    return headers


def _mapped_values(values: Mapping[str, str], mapping: ColumnMapping) -> dict[str, str]:
    ours: dict[str, str] = {}
    for name, text in values.items():
        key = mapping.columns[name]
        if key in ours:
            ours[key] = JOINED_TARGETS[key].join(filter(None, (ours[key], text.strip())))
        else:
            ours[key] = text
    kinds = {plain(text): kind for text, kind in mapping.kinds.items()}
    if "kind" in ours:
        ours["kind"] = kinds.get(plain(ours["kind"]), ours["kind"])
    return ours


def _failed(message: str, mapping: ColumnMapping, sheet: str = "") -> ParsedRows:
    return ParsedRows(MAPPED, sheet, mapping.header_row or 0, {}, file_errors=[message])
