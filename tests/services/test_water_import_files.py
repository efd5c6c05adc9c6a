"""Water-source files as brigades have them: municipal open data (CP932, title rows, full-width
headers, other kind spellings, missing coordinates), workbooks of several sheets with title rows
read through a saved column mapping, and the saved mappings themselves."""

from __future__ import annotations

import json
import uuid
from dataclasses import replace

import pytest

from formats.opendata import ColumnMapping
from models.enums import AuditCategory, Function, Level
from services import import_mappings, water_import
from services.errors import NotFound, PermissionDenied, ValidationError
from services.imports import MissingRows, RowStatus
from tests.factories import actor_with, admin, make_tenant
from tests.fixtures.water_files import OPEN_DATA_HEADER, csv_file, stored, xlsx_file
from tests.water_factories import make_source

OPERATION = str(AuditCategory.OPERATION)
AUTH = str(AuditCategory.AUTH)
FULL_WIDTH = {"ID": "ＩＤ", "緯度": "緯　度", "所在地_連結表記": "所在地＿連結表記"}


@pytest.fixture
def foreign(engine) -> uuid.UUID:
    return make_tenant()


def open_data(rows: list[list[str]], *, encoding: str = "cp932") -> bytes:
    header = [FULL_WIDTH.get(name, name) for name in OPEN_DATA_HEADER]
    title = [["消防水利施設一覧（令和6年4月1日現在）"], ["出典：テスト市"]]
    return csv_file(title[0], [*title[1:], [], header, *rows], encoding=encoding)


def od_row(id_: str, kind: str, lat: str = "36.1", lon: str = "138.1", **cells: str) -> list[str]:
    values = {"ID": id_, "種別": kind, "緯度": lat, "経度": lon} | cells
    base = {"全国地方公共団体コード": "999999", "地方公共団体名": "テスト市"}
    return [values.get(name, base.get(name, "")) for name in OPEN_DATA_HEADER]


def preview(tenant_id, data, filename="opendata.csv", mapping=None):
    return water_import.preview_water_import(
        admin(tenant_id), data=data, filename=filename, mapping=mapping
    )


# -- open data ---------------------------------------------------------------------------------


def test_open_data_is_recognised_and_translated(tenant):
    data = open_data(
        [
            od_row("0001", "公設消火栓", 口径="φ150", 所在地_連結表記="テスト県テスト市本町1-1"),
            od_row("0002", "私設消火栓", 口径="75mm", 備考="工場内"),
            od_row(
                "0003",
                "防火水そう",
                所在地_都道府県="テスト県",
                所在地_市区町村="テスト市",
                所在地_町字="栄町",
                所在地_番地以下="2-3",
                **{"建物名等(方書)": "市民会館"},
            ),
            od_row("0004", "耐震性貯水槽", lat="", lon=""),
            od_row("０００５", "地下式消火栓", 口径="１００"),
            od_row("0006", "プール"),
        ]
    )
    assert water_import.inspect_water_file(admin(tenant), data=data, filename="o.csv").layout == (
        "opendata"
    )
    found = preview(tenant, data)
    assert found.ready, found.errors
    assert found.encoding == "Shift_JIS（CP932）" and found.header_row == 4
    assert any("オープンデータ" in note for note in found.notes)
    assert any(note.startswith("位置なし 1件（8行目）") for note in found.notes)
    water_import.apply_water_import(admin(tenant), found, missing=MissingRows.KEEP)
    after = stored(tenant)
    assert {code: after[code]["kind"] for code in after} == {
        "0001": "消火栓",
        "0002": "私設消火栓",
        "0003": "防火水槽",
        "0004": "防火水槽",
        "0005": "消火栓",
        "0006": "プール",
    }
    assert (after["0001"]["ownership"], after["0001"]["main_diameter_mm"]) == ("public", 150)
    assert after["0001"]["address"] == "テスト県テスト市本町1-1"
    assert (after["0002"]["ownership"], after["0002"]["memo"]) == ("private", "工場内")
    assert after["0003"]["address"] == "テスト県テスト市栄町2-3　市民会館"
    assert (after["0004"]["latitude"], after["0004"]["longitude"]) == (None, None)
    assert (after["0005"]["hydrant_type"], after["0005"]["main_diameter_mm"]) == ("地下式", 100)


def test_open_data_rows_that_cannot_be_placed_are_reported(tenant):
    data = open_data(
        [
            od_row("OK-1", "消火栓"),
            od_row("消" * 31, "消火栓"),
            od_row("OK-3", "スプリンクラー"),
            od_row("OK-4", "防火水槽", 口径="150"),
            od_row("OK-5", "消火栓", lat="36.1", lon=""),
        ]
    )
    found = preview(tenant, data)
    by_row = {error.row: error for error in found.errors}
    assert set(by_row) == {6, 7, 8, 9}
    assert by_row[6].column == "ＩＤ" and "水利番号" in by_row[6].message
    assert by_row[7].column == "種別" and "防火水そう" in by_row[7].message
    assert by_row[8].column == "口径" and "消火栓のみ" in by_row[8].message
    assert by_row[9].column == "緯　度"
    with pytest.raises(ValidationError):
        water_import.apply_water_import(admin(tenant), found, missing=MissingRows.KEEP)
    assert stored(tenant) == {}


def test_open_data_columns_beyond_the_standard_are_listed_not_read(tenant):
    header = [*OPEN_DATA_HEADER, "設置年度"]
    data = csv_file(header, [[*od_row("Y-1", "井戸"), "2001"]])
    found = preview(tenant, data)
    assert found.ready
    assert any("「設置年度」" in note for note in found.notes)


# -- workbooks through a mapping ---------------------------------------------------------------

LEDGER = [
    ["令和6年度 消防水利台帳"],
    ["", "", "作成: 第1分団"],
    [],
    ["番号", "水利の種類", "町名", "番地", "北緯", "東経", "容量（ｍ３）", "備考"],
    ["K-001", "防火水そう", "本町", "1-2", 36.01, 138.01, 40, "公園"],
    ["K-002", "消火栓(公)", "本町", "3-4", 36.02, 138.02, None, ""],
    ["K-003", "貯水槽", "栄町", "5", None, None, 60, "位置未確認"],
]
LEDGER_MAPPING = ColumnMapping(
    columns={
        "番号": "code",
        "水利の種類": "kind",
        "町名": "address",
        "番地": "address",
        "北緯": "latitude",
        "東経": "longitude",
        "容量(m3)": "capacity_m3",
        "備考": "memo",
    },
    sheet="水利台帳",
    kinds={"消火栓(公)": "消火栓"},
)


def ledger_workbook() -> bytes:
    return xlsx_file({"表紙": [["消防水利台帳"], ["テスト市消防団"]], "水利台帳": LEDGER})


def test_inspect_describes_the_sheets_for_the_mapping_step(tenant):
    found = water_import.inspect_water_file(
        admin(tenant), data=ledger_workbook(), filename="台帳.xlsx"
    )
    assert (found.layout, found.encoding, found.file_errors) == (None, "Excel（.xlsx）", [])
    cover, ledger = found.sheets
    assert (cover.index, cover.name, ledger.index, ledger.name) == (0, "表紙", 1, "水利台帳")
    assert ledger.header_row == 4 and ledger.header[:2] == ["番号", "水利の種類"]
    assert ledger.data_rows == 3 and ledger.sample[0][:2] == ["K-001", "防火水そう"]
    assert found.targets["code"] == "水利番号"


def test_an_unknown_workbook_needs_a_mapping_and_imports_with_a_saved_one(tenant, watch):
    data = ledger_workbook()
    assert preview(tenant, data, "台帳.xlsx").file_errors == [water_import.NO_LAYOUT]
    saved = import_mappings.save_mapping(admin(tenant), name="市の台帳", mapping=LEDGER_MAPPING)
    [listed] = import_mappings.list_mappings(admin(tenant))
    assert listed == saved and listed.mapping == LEDGER_MAPPING
    found = preview(tenant, data, "台帳.xlsx", listed.mapping)
    assert found.ready, (found.file_errors, found.errors)
    assert (found.sheet, found.header_row, found.counts[RowStatus.NEW]) == ("水利台帳", 4, 3)
    assert any(note.startswith("位置なし 1件（7行目）") for note in found.notes)
    audit = watch(tenant)
    water_import.apply_water_import(admin(tenant), found, missing=MissingRows.KEEP)
    after = stored(tenant)
    assert (after["K-001"]["kind"], after["K-001"]["address"]) == ("防火水槽", "本町1-2")
    assert (after["K-001"]["latitude"], after["K-001"]["capacity_m3"]) == (36.01, 40.0)
    assert after["K-002"]["kind"] == "消火栓" and after["K-002"]["capacity_m3"] is None
    assert after["K-003"]["latitude"] is None and after["K-003"]["memo"] == "位置未確認"
    [event] = audit.new()
    assert json.loads(event.details)["sheet"] == "水利台帳"


def test_a_mapping_with_a_header_row_and_sheet_index(tenant):
    mapping = ColumnMapping(columns={"番号": "code", "水利の種類": "kind"}, sheet=1, header_row=4)
    found = preview(tenant, ledger_workbook(), "台帳.xlsx", mapping)
    [error] = found.errors
    assert (error.row, error.column) == (6, "水利の種類")  # 消火栓(公) without its reading
    found = preview(
        tenant, ledger_workbook(), "台帳.xlsx", replace(mapping, kinds={"消火栓（公）": "消火栓"})
    )
    assert found.ready
    assert any("「北緯」" in note for note in found.notes)  # unmapped columns are listed


@pytest.mark.parametrize(
    ("mapping", "message"),
    [
        (ColumnMapping({"番号": "code", "水利の種類": "kind"}, sheet="無い"), "シート「無い」"),
        (ColumnMapping({"番号": "code"}, sheet=1), "「種別」にする列"),
        (ColumnMapping({"番号": "code", "種類": "kind"}, sheet=1, header_row=4), "列「種類」"),
        (ColumnMapping({"番号": "code", "水利の種類": "colour"}, sheet=1), "「colour」"),
    ],
)
def test_a_mapping_that_does_not_fit_is_a_file_error(tenant, mapping, message):
    found = preview(tenant, ledger_workbook(), "台帳.xlsx", mapping)
    assert found.rows == [] and any(message in error for error in found.file_errors)


# -- saved mappings ----------------------------------------------------------------------------


def test_save_replace_list_and_delete_a_mapping(tenant, watch):
    audit = watch(tenant)
    first = import_mappings.save_mapping(admin(tenant), name=" 市の台帳 ", mapping=LEDGER_MAPPING)
    assert first.name == "市の台帳"
    other = ColumnMapping({"No": "code", "種別": "kind"})
    second = import_mappings.save_mapping(admin(tenant), name="市の台帳", mapping=other)
    assert second.id == first.id and second.mapping == other
    import_mappings.save_mapping(admin(tenant), name="県の様式", mapping=LEDGER_MAPPING)
    assert [m.name for m in import_mappings.list_mappings(admin(tenant))] == [
        "市の台帳",
        "県の様式",
    ]
    import_mappings.delete_mapping(admin(tenant), first.id)
    assert [m.name for m in import_mappings.list_mappings(admin(tenant))] == ["県の様式"]
    events = audit.new()
    assert [e.action for e in events] == [
        "import_mapping.save",
        "import_mapping.save",
        "import_mapping.save",
        "import_mapping.delete",
    ]
    assert [json.loads(e.details)["created"] for e in events[:3]] == [True, False, True]


@pytest.mark.parametrize(
    ("name", "mapping", "field"),
    [
        ("", LEDGER_MAPPING, "name"),
        ("あ" * 61, LEDGER_MAPPING, "name"),
        ("x\x07", LEDGER_MAPPING, "name"),
        ("ok", ColumnMapping({"番号": "code"}), "mapping"),
        ("ok", ColumnMapping({"a": "code", "b": "kind"}, kinds={"x": "噴水"}), "mapping"),
        ("ok", ColumnMapping({"a": "code", "b": "kind", "c": "code"}), "mapping"),
    ],
)
def test_save_mapping_rejects_bad_input(tenant, name, mapping, field):
    with pytest.raises(ValidationError) as raised:
        import_mappings.save_mapping(admin(tenant), name=name, mapping=mapping)
    assert field in raised.value.errors
    assert import_mappings.list_mappings(admin(tenant)) == []


def test_mappings_are_per_tenant(tenant, foreign, watch):
    theirs = import_mappings.save_mapping(admin(foreign), name="同じ名前", mapping=LEDGER_MAPPING)
    ours = import_mappings.save_mapping(admin(tenant), name="同じ名前", mapping=LEDGER_MAPPING)
    assert ours.id != theirs.id
    assert [m.id for m in import_mappings.list_mappings(admin(tenant))] == [ours.id]
    foreign_audit = watch(foreign)
    with pytest.raises(NotFound):
        import_mappings.delete_mapping(admin(tenant), theirs.id)
    assert [m.id for m in import_mappings.list_mappings(admin(foreign))] == [theirs.id]
    assert foreign_audit.new() == []


@pytest.mark.parametrize("call", ["list", "save", "delete"])
def test_mappings_need_csv_import_edit(tenant, watch, call):
    saved = import_mappings.save_mapping(admin(tenant), name="台帳", mapping=LEDGER_MAPPING)
    viewer = actor_with(
        tenant, {f: Level.ADMIN for f in Function} | {Function.CSV_IMPORT: Level.VIEW}
    )
    calls = {
        "list": lambda: import_mappings.list_mappings(viewer),
        "save": lambda: import_mappings.save_mapping(viewer, name="別", mapping=LEDGER_MAPPING),
        "delete": lambda: import_mappings.delete_mapping(viewer, saved.id),
    }
    audit = watch(tenant)
    with pytest.raises(PermissionDenied):
        calls[call]()
    [event] = audit.new()
    assert (event.category, json.loads(event.details)["function"]) == (AUTH, "csv_import")
    assert import_mappings.list_mappings(admin(tenant)) == [saved]
    editor = actor_with(tenant, {Function.CSV_IMPORT: Level.EDIT})
    assert import_mappings.list_mappings(editor) == [saved]


def test_an_existing_source_is_updated_from_open_data_without_losing_its_other_fields(tenant):
    make_source(
        tenant,
        code="0100",
        unit="第3分団",
        kind="消火栓",
        capacity_m3=None,
        drop_m=None,
        depth_m=None,
        main_diameter_mm=100,
        last_inspected_on=None,
    )
    data = open_data(
        [od_row("0100", "公設消火栓", 口径="150", 所在地_連結表記="テスト市本町")],
        encoding="utf-8-sig",
    )
    found = preview(tenant, data)
    [row] = found.rows
    assert row.status == RowStatus.CHANGED
    assert [(c.column, c.after) for c in row.changes] == [
        ("緯　度", "36.1"),
        ("経度", "138.1"),
        ("所在地＿連結表記", "テスト市本町"),
        ("口径", "150"),
    ]
    water_import.apply_water_import(admin(tenant), found, missing=MissingRows.KEEP)
    assert stored(tenant)["0100"]["unit"] == "第3分団"
