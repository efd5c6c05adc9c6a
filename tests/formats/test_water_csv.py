"""The water-source CSV layout: headers and aliases, kind spellings, cell reading, exact floats,
the template, the export's formula neutralisation and the list export's read-only columns."""

from __future__ import annotations

import csv
import io
import math
from datetime import date
from types import SimpleNamespace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from formats import water_csv
from formats.csv_safe import FORMULA_STARTS, Unencodable
from formats.tabular import CellValueError, find_header, plain, read_csv, to_float
from models.water import WaterSourceBase


def source(**values: object) -> SimpleNamespace:
    base = WaterSourceBase(code="W-1", kind="防火水槽").model_dump()
    return SimpleNamespace(**(base | values))


def listed(**values: object) -> SimpleNamespace:
    derived = {
        "grade": "参考",
        "next_inspection_due": date(2025, 4, 1),
        "overdue": True,
        "outside_area": False,
    }
    return SimpleNamespace(**(vars(source(**values)) | derived))


def cells(data: bytes, encoding: str = "utf-8-sig") -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode(encoding), newline="")))


def test_every_registry_field_has_a_column():
    assert {c.key for c in water_csv.COLUMNS} == set(WaterSourceBase.model_fields)
    assert [c.key for c in water_csv.COLUMNS if c.required] == ["code", "kind"]


@pytest.mark.parametrize(
    ("header", "key"),
    [
        ("ＬＡＴ", "latitude"),
        ("容量（ｍ³）", "capacity_m3"),
        ("口径 (mm)", "main_diameter_mm"),
        ("地上式・地下式", "hydrant_type"),
        ("inspection_interval_days", "inspection_interval_days"),
        ("備考", "memo"),
    ],
)
def test_aliases_and_full_width_headers(header, key):
    sheet = read_csv(f"水利番号,種別,{header}\r\n".encode())
    match = find_header(sheet, water_csv.READ_COLUMNS)
    assert match is not None and match.columns[2] == key and not match.unknown


@pytest.mark.parametrize(
    ("text", "kind", "ownership", "hydrant_type"),
    [
        ("消火栓", "消火栓", None, None),
        ("公設消火栓", "消火栓", "public", None),
        ("私設消火栓", "私設消火栓", "private", None),
        ("地上式消火栓", "消火栓", None, "地上式"),
        ("公設 地下式 消火栓", "消火栓", "public", "地下式"),
        ("消火栓（地下式）", "消火栓", None, "地下式"),
        ("防火水そう", "防火水槽", None, None),
        ("耐震性貯水槽", "防火水槽", None, None),
        ("耐震性防火水槽", "防火水槽", None, None),
        ("地下式防火水槽", "防火水槽", None, None),
        ("私設防火水槽", "防火水槽", "private", None),
        ("プール", "プール", None, None),
        ("河川", "河川・溝", None, None),
        ("河川・溝等", "河川・溝", None, None),
        ("ため池", "濠・池", None, None),
        ("湖", "海・湖", None, None),
        ("井戸", "井戸", None, None),
        ("下水道", "下水道", None, None),
        ("ﾌﾟｰﾙ", "プール", None, None),
    ],
)
def test_kind_spellings(text, kind, ownership, hydrant_type):
    assert water_csv.read_kind(text) == water_csv.KindReading(kind, ownership, hydrant_type)


@pytest.mark.parametrize("text", ["スプリンクラー", "消火器", "地上式", "公設"])
def test_unknown_kinds_are_reported_with_the_accepted_spellings(text):
    assert water_csv.read_kind(text) is None
    _, errors = water_csv.typed({"kind": text})
    assert "防火水そう" in errors["kind"] and "公設" in errors["kind"]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"main_diameter_mm": "φ75"}, {"main_diameter_mm": 75}),
        ({"main_diameter_mm": "Φ１５０ｍｍ"}, {"main_diameter_mm": 150}),
        ({"main_diameter_mm": "75mm"}, {"main_diameter_mm": 75}),
        ({"main_diameter_mm": ""}, {"main_diameter_mm": None}),
        ({"ownership": "私設"}, {"ownership": "private"}),
        ({"ownership": "指定水利"}, {"ownership": "designated"}),
        ({"ownership": ""}, {"ownership": "public"}),
        ({"kind": "私設消火栓", "ownership": ""}, {"kind": "私設消火栓", "ownership": "private"}),
        ({"kind": "消火栓", "ownership": "指定"}, {"kind": "消火栓", "ownership": "designated"}),
        ({"status": ""}, {"status": "使用可"}),
        ({"grade_override": "基準水利"}, {"grade_override": "基準"}),
        ({"grade_override": ""}, {"grade_override": None}),
        ({"last_inspected_on": "令和6年4月1日"}, {"last_inspected_on": date(2024, 4, 1)}),
        ({"capacity_m3": "1,200.5"}, {"capacity_m3": 1200.5}),
        ({"memo": " =keep as written "}, {"memo": " =keep as written "}),
        ({"_grade": "基準水利", "unknown": "x"}, {}),
    ],
)
def test_cells_are_read_into_typed_values(raw, expected):
    assert water_csv.typed(raw) == (expected, {})


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ({"main_diameter_mm": "太い"}, "main_diameter_mm"),
        ({"main_diameter_mm": "75.5"}, "main_diameter_mm"),
        ({"ownership": "市"}, "ownership"),
        ({"grade_override": "最優先"}, "grade_override"),
        ({"latitude": "北緯35度"}, "latitude"),
        ({"supply_minutes": "1.5"}, "supply_minutes"),
        ({"last_inspected_on": "昨日"}, "last_inspected_on"),
    ],
)
def test_unreadable_cells_are_errors_in_japanese(raw, key):
    values, errors = water_csv.typed(raw)
    assert key not in values and errors[key].endswith("。")


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_floats_are_written_exactly(value):
    assert to_float(water_csv.cell(value)) == value


def _read_as_before(text: str) -> object:
    """A figure read by NFKC, trimming and dropping commas (what to_float's shortcut for plain
    ASCII cells must agree with), or the message it refuses the cell with."""
    try:
        cleaned = plain(text).replace(",", "")
        if not cleaned:
            return None
        value = float(cleaned)
    except ValueError:
        return f"数値として読めません（「{cleaned[:20]}」）。"
    return value if math.isfinite(value) else "数値として読めません。"


@given(st.text(st.sampled_from("0123456789.,+-_eEinfaINF \t\x1c\x1f１，"), max_size=8))
def test_a_figure_reads_the_same_by_the_shortcut_for_plain_ascii(text):
    try:
        read: object = to_float(text)
    except CellValueError as exc:
        read = str(exc)
    assert read == _read_as_before(text)


def test_template_has_the_header_and_example_rows():
    rows = cells(water_csv.template())
    assert rows[0] == [c.header for c in water_csv.COLUMNS]
    assert rows[1][:2] == ["H-001", "消火栓"] and rows[2][:2] == ["S-001", "防火水槽"]
    assert water_csv.template().startswith("\ufeff".encode())


def test_encode_writes_every_field_as_import_reads_it():
    item = source(
        code="A-1",
        ownership="designated",
        latitude=35.123456789012,
        capacity_m3=40.0,
        last_inspected_on=date(2024, 4, 1),
        memo='複数行\r\n"引用", カンマ',
    )
    [header, row] = cells(water_csv.encode([item]))
    values = dict(zip(header, row, strict=True))
    assert values["区分"] == "指定水利" and values["緯度"] == "35.123456789012"
    assert values["容量(m3)"] == "40.0" and values["最終点検日"] == "2024-04-01"
    assert values["メモ"] == '複数行\r\n"引用", カンマ' and values["経度"] == ""


@pytest.mark.parametrize("encoding", ["utf-8", "cp932"])
@pytest.mark.parametrize("trigger", FORMULA_STARTS)
def test_every_trigger_character_is_neutralised(encoding, trigger):
    item = source(memo=f"{trigger}cmd", address=f"{trigger}1", unit=trigger, code=f"{trigger}X")
    data = water_csv.encode([item], encoding=encoding)
    written = [
        c for row in cells(data, "utf-8-sig" if encoding == "utf-8" else "cp932") for c in row
    ]
    assert not [c for c in written if c.startswith(FORMULA_STARTS)]
    assert f"'{trigger}cmd" in written
    memo = [c.key for c in water_csv.COLUMNS].index("memo")
    assert read_csv(data).rows[1][memo] == f"{trigger}cmd"  # the exact inverse on import


def test_cp932_reports_cells_it_cannot_hold():
    with pytest.raises(Unencodable) as raised:
        water_csv.encode([source(memo="🚒"), source(address="髙橋①")], encoding="cp932")
    assert raised.value.problems == [("水利番号 W-1", "メモ", "🚒")]


def test_the_list_export_carries_read_only_columns_that_import_ignores():
    data = water_csv.encode_list([listed(code="L-1", ownership="private")])
    [header, row] = cells(data)
    assert header[:4] == ["水利番号", "種別", "区分", "判定"]
    assert header[-3:] == ["次回点検期限", "点検期限切れ", "区域外"]
    assert row[3] == "参考水利" and row[-3:] == ["2025-04-01", "○", ""]
    sheet = read_csv(data)
    match = find_header(sheet, water_csv.READ_COLUMNS)
    assert match is not None and match.problems == []
    parsed = water_csv.parse(sheet, match)
    [(number, raw)] = parsed.records
    assert number == 2 and set(raw) == set(water_csv.HEADERS)
    assert raw["ownership"] == "私設" and parsed.headers["code"] == "水利番号"


def test_parse_reports_unknown_headers_and_over_long_cells():
    data = "水利番号,種別,色,メモ\r\nA-1,井戸,赤," + "あ" * 501 + "\r\n"
    sheet = read_csv(data.encode())
    parsed = water_csv.parse(sheet, find_header(sheet, water_csv.READ_COLUMNS))
    assert parsed.file_errors == ["列「色」はこの形式にない列です。"]
    [error] = parsed.errors[2]
    assert (error.row, error.column) == (2, "メモ")
