"""Water-source import and export: preview (new / changed / unchanged / invalid), apply in one
transaction, rows missing from the file, other tenants, permissions, bad input, limits,
atomicity and the audit record."""

from __future__ import annotations

import csv
import io
import json
import random
import uuid
from dataclasses import replace
from datetime import date

import pytest
from sqlalchemy import func, select

from formats.csv_safe import FORMULA_STARTS
from models.enums import AuditCategory, Function, Level
from models.water import WaterInspection, WaterInspectionCreate
from services import water_import, water_import_rows, water_sources
from services.db import unit_of_work
from services.errors import PermissionDenied, ValidationError
from services.imports import FieldChange, MissingRows, RowStatus, sha256
from tests.factories import actor_with, admin, brigade_name, make_tenant
from tests.fixtures.water_files import csv_file, hydrant, layout_file, stored
from tests.water_factories import make_source

AUTH = str(AuditCategory.AUTH)
OPERATION = str(AuditCategory.OPERATION)


@pytest.fixture
def foreign(engine) -> uuid.UUID:
    return make_tenant()


def preview(tenant_id: uuid.UUID, data: bytes, filename: str = "water.csv", **kwargs):
    return water_import.preview_water_import(
        admin(tenant_id), data=data, filename=filename, **kwargs
    )


def apply(tenant_id: uuid.UUID, found, missing: MissingRows = MissingRows.KEEP, **kwargs):
    return water_import.apply_water_import(admin(tenant_id), found, missing=missing, **kwargs)


def statuses(found) -> dict[str, RowStatus]:
    return {row.code: row.status for row in found.rows}


def inspections(tenant_id: uuid.UUID) -> int:
    with unit_of_work(tenant_id) as db:
        query = select(func.count()).where(WaterInspection.tenant_id == tenant_id)
        return db.execute(query).scalar_one()


# -- happy path --------------------------------------------------------------------------------


def test_template_imports_as_its_example_sources(tenant, watch):
    data = water_import.water_template(admin(tenant))
    found = preview(tenant, data, "template.csv")
    assert found.ready and found.counts[RowStatus.NEW] == 2
    assert (found.encoding, found.header_row) == ("UTF-8（BOM付き）", 1)
    audit = watch(tenant)
    result = apply(tenant, found)
    assert (result.created, result.updated, result.unchanged, result.retired) == (2, 0, 0, 0)
    hydrant_row = stored(tenant)["H-001"]
    assert hydrant_row["kind"] == "消火栓" and hydrant_row["main_diameter_mm"] == 150
    assert hydrant_row["hydrant_type"] == "地下式"
    assert hydrant_row["last_inspected_on"] == date(2024, 4, 1)
    assert stored(tenant)["S-001"]["capacity_m3"] == 40.0
    [event] = audit.new()
    assert (event.category, event.action) == (OPERATION, "water_source.import")
    details = json.loads(event.details)
    assert details["sha256"] == sha256(data) == found.sha256
    assert details["filename"] == "template.csv"
    assert (details["rows"], details["new"], details["created"]) == (2, 2, 2)
    assert details["missing_rows"] == "keep"


def test_new_changed_and_unchanged_rows_with_their_field_changes(tenant):
    make_source(tenant, code="A-1", memo="旧メモ", unit="第1分団")
    make_source(tenant, code="B-1")
    exported = water_import.export_water_csv(admin(tenant))
    rows = list(csv.reader(io.StringIO(exported.decode("utf-8-sig"))))
    header, body = rows[0], rows[1:]
    memo, unit = header.index("メモ"), header.index("担当分団")
    for row in body:
        if row[0] == "A-1":
            row[memo], row[unit] = "新メモ", "第2分団"
    body.append(["C-1", "防火水そう", "公設", "36.1", "138.1"] + [""] * (len(header) - 5))
    found = preview(tenant, csv_file(header, body))
    assert statuses(found) == {
        "A-1": RowStatus.CHANGED,
        "B-1": RowStatus.UNCHANGED,
        "C-1": RowStatus.NEW,
    }
    [changed] = [row for row in found.rows if row.code == "A-1"]
    assert set(changed.changes) == {
        FieldChange("メモ", "旧メモ", "新メモ"),
        FieldChange("担当分団", "第1分団", "第2分団"),
    }
    result = apply(tenant, found)
    assert (result.created, result.updated, result.unchanged) == (1, 1, 1)
    after = stored(tenant)
    assert (after["A-1"]["memo"], after["A-1"]["unit"]) == ("新メモ", "第2分団")
    assert after["C-1"]["kind"] == "防火水槽"
    [source] = water_sources.list_water_sources(
        admin(tenant), water_sources.WaterSourceFilter(text="A-1")
    )
    assert source.version == 2


def test_columns_the_file_lacks_keep_their_values(tenant):
    make_source(tenant, code="K-1", unit="第5分団", memo="旧", capacity_m3=60.0)
    before = stored(tenant)["K-1"]
    found = preview(tenant, layout_file([{"code": "K-1", "kind": "防火水槽", "memo": "新"}]))
    [row] = found.rows
    assert row.changes == (FieldChange("メモ", "旧", "新"),)
    apply(tenant, found)
    assert stored(tenant)["K-1"] == before | {"memo": "新"}


def test_a_blank_cell_clears_its_field(tenant):
    make_source(tenant, code="C-2", memo="消す")
    found = preview(tenant, layout_file([{"code": "C-2", "kind": "防火水槽", "memo": ""}]))
    apply(tenant, found)
    assert stored(tenant)["C-2"]["memo"] == ""


def test_english_headers_are_accepted(tenant):
    data = csv_file(["code", "kind", "lat", "lon", "memo"], [["E-1", "井戸", "36", "138", "x"]])
    found = preview(tenant, data)
    assert found.ready
    apply(tenant, found)
    assert stored(tenant)["E-1"]["kind"] == "井戸"


def test_the_map_export_is_importable_and_its_computed_columns_are_ignored(tenant):
    make_source(tenant, code="M-1", memo="=1+2")
    listed = water_sources.export_water_sources_csv(admin(tenant))
    header = listed.decode("utf-8-sig").splitlines()[0].split(",")
    assert header[:4] == ["水利番号", "種別", "区分", "判定"]
    assert header[-3:] == ["次回点検期限", "点検期限切れ", "区域外"]
    found = preview(tenant, listed)
    assert found.ready and statuses(found) == {"M-1": RowStatus.UNCHANGED}


def test_imported_sources_are_held_as_the_registry_holds_them(tenant, foreign):
    """Column by column as the database holds them (on SQLite the import binds its rows and
    hands them to the driver itself, #19): sources exported from one brigade and imported into
    another are stored as the registry's own form stored them."""
    make_source(tenant, code="S-1", ownership="private", grade_override="参考", memo="北側")
    make_source(
        tenant,
        code="H-1",
        kind="消火栓",
        capacity_m3=None,
        drop_m=None,
        depth_m=None,
        main_diameter_mm=150,
        hydrant_type="地下式",
        last_inspected_on=date(2024, 4, 1),
        grade_override_reason="理由",
    )
    make_source(tenant, code="P-1", latitude=None, longitude=None, supply_minutes=20)
    result = apply(foreign, preview(foreign, water_import.export_water_csv(admin(tenant))))
    assert result.created == 3
    assert _as_held(foreign) == _as_held(tenant)


def _as_held(tenant_id: uuid.UUID) -> dict[str, dict[str, object]]:
    """Each source's columns as the driver returns them, without SQLAlchemy's conversions:
    the value and its type; for the ids and times, which differ, only the type and length."""
    with unit_of_work(tenant_id, read_only=True) as db:
        result = db.connection().exec_driver_sql("SELECT * FROM water_source")
        rows = [dict(zip(result.keys(), row, strict=True)) for row in result]
    varying = ("id", "tenant_id", "created_at", "updated_at")
    return {
        row["code"]: {
            name: (type(value), len(str(value)) if name in varying else value)
            for name, value in row.items()
        }
        for row in rows
        if uuid.UUID(str(row["tenant_id"])) == tenant_id
    }


def test_progress_reports_every_chunk(tenant, monkeypatch):
    monkeypatch.setattr(water_import_rows, "CHUNK", 2)
    make_source(tenant, code="P-0")
    data = layout_file([hydrant(f"P-{n}") for n in range(1, 6)])
    calls: list[tuple[int, int]] = []
    found = preview(tenant, data)
    name = brigade_name(tenant)
    apply(tenant, found, MissingRows.RETIRE, progress=lambda *a: calls.append(a), confirm_name=name)
    assert calls == [(2, 6), (4, 6), (5, 6), (6, 6)]


# -- rows missing from the file ----------------------------------------------------------------


def _with_an_inspected_source(tenant_id: uuid.UUID) -> None:
    make_source(tenant_id, code="STAY-1")
    gone = make_source(tenant_id, code="GONE-1")
    water_sources.record_inspection(
        admin(tenant_id),
        gone.id,
        data=WaterInspectionCreate(inspected_on=date(2024, 5, 1), result="異常なし"),
    )


def test_missing_rows_are_listed_and_kept_when_so_chosen(tenant):
    _with_an_inspected_source(tenant)
    found = preview(tenant, layout_file([hydrant("STAY-1")]))
    assert found.missing == ["GONE-1"]
    result = apply(tenant, found, MissingRows.KEEP)
    assert result.retired == 0
    assert set(stored(tenant)) == {"STAY-1", "GONE-1"}
    assert inspections(tenant) == 1


def test_retiring_missing_rows_deletes_them_with_their_inspections(tenant, watch):
    _with_an_inspected_source(tenant)
    found = preview(tenant, layout_file([hydrant("STAY-1")]))
    audit = watch(tenant)
    result = apply(tenant, found, MissingRows.RETIRE, confirm_name=brigade_name(tenant))
    assert (result.updated, result.retired) == (1, 1)
    assert set(stored(tenant)) == {"STAY-1"}
    assert inspections(tenant) == 0
    backed_up, event = audit.new()  # the pre-change backup first (#17)
    assert backed_up.action == "backup.pre_change"
    assert json.loads(event.details)["retired"] == 1
    assert json.loads(event.details)["missing_rows"] == "retire"


# -- other tenant ------------------------------------------------------------------------------


def test_another_tenants_sources_are_neither_matched_nor_retired(tenant, foreign, watch):
    make_source(foreign, code="SAME-1", memo="よその団")
    make_source(foreign, code="THEIRS-1")
    before = stored(foreign)
    foreign_audit = watch(foreign)
    found = preview(tenant, layout_file([hydrant("SAME-1")]))
    assert statuses(found) == {"SAME-1": RowStatus.NEW} and found.missing == []
    apply(tenant, found, MissingRows.RETIRE)
    assert set(stored(tenant)) == {"SAME-1"}
    assert stored(foreign) == before
    assert foreign_audit.new() == []


def test_export_contains_only_the_tenants_sources(tenant, foreign):
    make_source(tenant, code="OURS-1")
    make_source(foreign, code="THEIRS-2")
    exported = water_import.export_water_csv(admin(tenant)).decode("utf-8-sig")
    assert "OURS-1" in exported and "THEIRS-2" not in exported


# -- permissions -------------------------------------------------------------------------------

GOOD_FILE = layout_file([hydrant("PERM-1")])


def _call_preview(actor):
    return water_import.preview_water_import(actor, data=GOOD_FILE, filename="w.csv")


def _call_apply(actor):
    found = preview(actor.tenant_id, GOOD_FILE)
    return water_import.apply_water_import(actor, found, missing=MissingRows.RETIRE)


CALLS = {
    "inspect": lambda a: water_import.inspect_water_file(a, data=GOOD_FILE, filename="w.csv"),
    "preview": _call_preview,
    "apply": _call_apply,
    "export": lambda a: water_import.export_water_csv(a),
}
NEEDS = {
    "inspect": water_import.IMPORTING,
    "preview": water_import.IMPORTING,
    "apply": water_import.IMPORTING,
    "export": water_import.EXPORTING,
}
CASES = [(name, need.function, need.level) for name, needs in NEEDS.items() for need in needs]


def _all_but(function: Function, level: Level) -> dict[Function, Level]:
    return {f: Level.ADMIN for f in Function} | {function: Level(level - 1)}


@pytest.mark.parametrize(("name", "function", "level"), CASES)
def test_not_permitted(tenant, watch, name, function, level):
    make_source(tenant, code="KEEP-1")
    before = stored(tenant)
    audit = watch(tenant)
    with pytest.raises(PermissionDenied):
        CALLS[name](actor_with(tenant, _all_but(function, level)))
    [event] = audit.new()
    assert (event.category, event.action, event.outcome) == (AUTH, "permission_denied", "denied")
    assert json.loads(event.details)["function"] == str(function)
    assert stored(tenant) == before


@pytest.mark.parametrize("name", sorted(NEEDS))
def test_the_required_levels_are_enough(tenant, watch, name):
    audit = watch(tenant)
    CALLS[name](actor_with(tenant, {n.function: n.level for n in NEEDS[name]}))
    assert audit.new(AUTH) == []


def test_actor_without_tenant_is_denied(engine):
    actor = actor_with(None, {f: Level.ADMIN for f in Function})  # type: ignore[arg-type]
    with pytest.raises(PermissionDenied):
        _call_preview(actor)


def test_a_preview_applied_by_someone_not_permitted_writes_nothing(tenant):
    found = preview(tenant, GOOD_FILE)
    viewer = actor_with(
        tenant, {Function.CSV_IMPORT: Level.EDIT, Function.WATER_SOURCES: Level.VIEW}
    )
    with pytest.raises(PermissionDenied):
        water_import.apply_water_import(viewer, found, missing=MissingRows.KEEP)
    assert stored(tenant) == {}


# -- bad input ---------------------------------------------------------------------------------


def test_row_errors_name_the_row_and_the_files_column(tenant):
    data = csv_file(
        ["タイトル：消防水利一覧"],
        [
            [],
            ["code", "種別", "lat", "lon", "最終点検日"],
            ["OK-1", "消火栓", "36", "138", ""],
            ["", "消火栓", "36", "138", ""],
            ["BAD-2", "スプリンクラー", "36", "138", ""],
            ["BAD-3", "消火栓", "北緯36度", "138", ""],
            ["BAD-4", "消火栓", "36", "", ""],
            ["BAD-5", "消火栓", "36", "138", "2024年13月1日"],
        ],
    )
    found = preview(tenant, data)
    assert found.header_row == 3 and not found.ready
    assert found.counts[RowStatus.NEW] == 1 and found.counts[RowStatus.INVALID] == 5
    by_row = {error.row: error for error in found.errors}
    assert (by_row[5].column, by_row[5].message) == ("code", "水利番号を入力してください。")
    assert by_row[6].column == "種別" and "使える表記" in by_row[6].message
    assert "公設消火栓" in by_row[6].message or "消火栓" in by_row[6].message
    assert by_row[7].column == "lat" and "数値" in by_row[7].message
    assert by_row[8].column == "lat" and "両方" in by_row[8].message
    assert by_row[9].column == "最終点検日"
    assert all(str(error).startswith(f"{error.row}行目") for error in found.errors)
    with pytest.raises(ValidationError):
        apply(tenant, found)
    assert stored(tenant) == {}


def test_duplicate_codes_in_the_file_are_errors(tenant):
    found = preview(tenant, layout_file([hydrant("D-1"), hydrant("D-2"), hydrant("Ｄ－１")]))
    [error] = found.errors
    assert (error.row, error.column) == (4, "水利番号")
    assert "重複" in error.message and "2行目" in error.message


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (["水利番号", "種別", "色"], "列「色」はこの形式にない列です。"),
        (["水利番号", "種別", "メモ", "備考"], "列「メモ」が複数あります。"),
    ],
)
def test_unknown_or_repeated_headers_are_file_errors(tenant, header, message):
    found = preview(tenant, csv_file(header, [["X-1", "井戸", "a", "b"][: len(header)]]))
    assert message in found.file_errors and found.rows == [] and not found.ready


def test_a_missing_required_header_is_named(tenant):
    found = preview(tenant, csv_file(["水利番号", "緯度", "経度"], [["X-1", "36", "138"]]))
    assert "必須の列「種別」がありません。" in found.file_errors
    assert any("対応付け" in message for message in found.file_errors)


def test_an_unknown_layout_needs_a_mapping(tenant):
    found = preview(tenant, csv_file(["番号", "種類", "住所"], [["1", "消火栓", "本町"]]))
    assert found.file_errors == [water_import.NO_LAYOUT]


def test_an_over_long_cell_is_an_error_not_truncated(tenant):
    found = preview(tenant, layout_file([hydrant("L-1", memo="あ" * 501)]))
    [error] = found.errors
    assert error.column == "メモ" and "500文字" in error.message


def test_row_limit(tenant, monkeypatch):
    monkeypatch.setattr(water_import, "MAX_ROWS", 3)
    found = preview(tenant, layout_file([hydrant(f"R-{n}") for n in range(4)]))
    assert found.file_errors and "3行以下" in found.file_errors[0]
    assert preview(tenant, layout_file([hydrant(f"R-{n}") for n in range(3)])).ready


def test_file_size_limit(tenant, monkeypatch):
    monkeypatch.setattr(water_import, "MAX_FILE_BYTES", 100)
    found = preview(tenant, layout_file([hydrant(f"S-{n}") for n in range(10)]))
    assert found.file_errors and "大きすぎます" in found.file_errors[0]


@pytest.mark.parametrize(
    "data",
    [
        layout_file([hydrant("NUL-1", memo="a")]).replace(b"a\r\n", b"a\x00\r\n"),
        layout_file([hydrant("BAD-1", memo="あ")], encoding="utf-8") + b"\xff\xfe\x80",
        b"",
    ],
    ids=["nul", "invalid-bytes", "empty"],
)
def test_unreadable_files_write_nothing(tenant, watch, data):
    found = preview(tenant, data)
    assert found.file_errors and found.rows == [] and not found.ready
    audit = watch(tenant)
    with pytest.raises(ValidationError):
        apply(tenant, found)
    assert stored(tenant) == {}
    assert audit.new(OPERATION) == []


# -- atomicity ---------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(4))
def test_one_bad_row_anywhere_writes_nothing(tenant, seed):
    make_source(tenant, code="OLD-1", memo="元のまま")
    before = stored(tenant)
    rows = [hydrant(f"N-{n}") for n in range(40)] + [hydrant("OLD-1", memo="変更")]
    random.Random(seed).shuffle(rows)
    position = random.Random(seed).randrange(len(rows))
    rows.insert(position, hydrant("BAD-1", latitude="999"))
    found = preview(tenant, layout_file(rows))
    assert [error.row for error in found.errors] == [position + 2]
    with pytest.raises(ValidationError):
        apply(tenant, found, MissingRows.RETIRE)
    assert stored(tenant) == before


def test_a_row_that_became_invalid_since_the_preview_writes_nothing(tenant, watch):
    """Applying plans the rows again: a tampered or stale preview cannot slip a bad row in."""
    found = preview(tenant, layout_file([hydrant(f"T-{n}") for n in range(10)]))
    assert found.ready
    bad = replace(found.rows[7], raw={**found.rows[7].raw, "kind": "防火水槽"})  # 口径なし but type
    bad = replace(bad, raw={**bad.raw, "hydrant_type": "地上式"})
    found.rows[7] = bad
    audit = watch(tenant)
    with pytest.raises(ValidationError) as raised:
        apply(tenant, found)
    assert "9:地上式/地下式" in raised.value.errors
    assert stored(tenant) == {}
    assert audit.new() == []


def test_a_failure_mid_apply_leaves_the_registry_as_it_was(tenant, watch, monkeypatch):
    make_source(tenant, code="F-1", memo="元")
    make_source(tenant, code="F-2")
    before = stored(tenant)
    rows = [hydrant(f"NEW-{n}") for n in range(7)] + [
        {"code": "F-1", "kind": "防火水槽", "memo": "変更"}
    ]
    found = preview(tenant, layout_file(rows))
    monkeypatch.setattr(water_import_rows, "CHUNK", 3)

    def fail(tx, rows):
        raise RuntimeError("disk full")

    monkeypatch.setattr(water_import_rows, "_update_rows", fail)
    audit = watch(tenant)
    with pytest.raises(RuntimeError):
        apply(tenant, found, MissingRows.RETIRE, confirm_name=brigade_name(tenant))
    assert stored(tenant) == before
    assert audit.new() == []


def test_a_failing_progress_callback_rolls_back(tenant):
    found = preview(tenant, layout_file([hydrant(f"G-{n}") for n in range(5)]))

    def interrupted(done: int, total: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        apply(tenant, found, progress=interrupted)
    assert stored(tenant) == {}


# -- export ------------------------------------------------------------------------------------


def test_export_neutralises_formula_cells_in_both_encodings(tenant, watch):
    for n, trigger in enumerate("=+-@"):
        make_source(
            tenant,
            code=f"X-{n}",
            memo=f"{trigger}HYPERLINK(1)",
            address=f"{trigger}本町",
            unit=f"{trigger}第1分団",
            grade_override="参考",
            grade_override_reason=f"{trigger}理由",
        )
    audit = watch(tenant)
    for encoding in ("utf-8", "cp932"):
        data = water_import.export_water_csv(admin(tenant), encoding=encoding)
        text = data.decode("utf-8-sig" if encoding == "utf-8" else "cp932")
        cells = [cell for row in csv.reader(io.StringIO(text)) for cell in row]
        assert not [cell for cell in cells if cell.startswith(FORMULA_STARTS)]
        assert "'=HYPERLINK(1)" in cells and "'@第1分団" in cells
    assert data.startswith(b"\x90\x85")  # 水 in CP932, no BOM
    events = audit.new()
    assert [json.loads(e.details)["encoding"] for e in events] == ["utf-8", "cp932"]
    assert {json.loads(e.details)["count"] for e in events} == {4}


def test_cp932_export_reports_what_it_cannot_hold(tenant, watch):
    make_source(tenant, code="EMOJI-1", memo="🚒出動")
    audit = watch(tenant)
    with pytest.raises(ValidationError) as raised:
        water_import.export_water_csv(admin(tenant), encoding="cp932")
    message = raised.value.errors["encoding"]
    assert "水利番号 EMOJI-1の「メモ」の「🚒」" in message
    assert audit.new() == []
    assert "🚒" in water_import.export_water_csv(admin(tenant)).decode("utf-8-sig")


def test_export_refuses_other_encodings(tenant):
    with pytest.raises(ValidationError):
        water_import.export_water_csv(admin(tenant), encoding="latin-1")
