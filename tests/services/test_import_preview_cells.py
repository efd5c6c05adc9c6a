"""What an import preview shows of each cell (#17): a new row's fields as they will be stored,
every normalisation as (column, original, stored) for new, changed and unchanged rows, and
free text (備考, メモ) kept as given, whitespace included. Hand-made files (no escaping)."""

from __future__ import annotations

import uuid

from formats.member_csv import HEADERS as MEMBER_HEADERS
from formats.opendata import ColumnMapping
from services import member_import as mi
from services import members, water_import
from services.imports import MissingRows, Normalised, RowStatus
from tests.factories import admin
from tests.fixtures.water_files import (
    OPEN_DATA_HEADER,
    csv_file,
    hydrant,
    layout_file,
    stored,
    xlsx_file,
)

NOTES = "\t先頭にタブ\r\n改行も \n"


def member_file(rows: list[dict[str, str]]) -> bytes:
    keys = list(dict.fromkeys(key for row in rows for key in row))
    return csv_file([MEMBER_HEADERS[k] for k in keys], [[r.get(k, "") for k in keys] for r in rows])


def member_preview(tenant_id: uuid.UUID, data: bytes):
    return mi.preview_member_import(admin(tenant_id), data=data, filename="団員.csv")


def member_import(tenant_id: uuid.UUID, data: bytes) -> None:
    found = member_preview(tenant_id, data)
    assert found.ready, [str(e) for e in found.errors]
    mi.apply_member_import(admin(tenant_id), found, missing=MissingRows.KEEP)


def normalised_of(found, code: str) -> set[tuple[str, str, str]]:
    (plan,) = [r for r in found.rows if r.code == code]
    return {(n.column, n.original, n.stored) for n in plan.normalised}


MESSY = {
    "member_code": "Ｎ-１",
    "name": "ﾔﾏﾀﾞ　太郎",
    "kana": "やまだ  たろう",
    "rank": "団員",
    "affiliation": "第①分団",
    "phone": "09012345678",
    "joined_on": "2020/4/1",
    "notes": NOTES,
}
MEMBER_NORMALISED = {
    ("団員番号", "Ｎ-１", "N-1"),
    ("氏名", "ﾔﾏﾀﾞ　太郎", "ヤマダ　太郎"),
    ("ふりがな", "やまだ  たろう", "ヤマダ　タロウ"),
    ("所属", "第①分団", "第1分団"),
    ("電話番号", "09012345678", "090-1234-5678"),
    ("入団日", "2020/4/1", "2020-04-01"),
}


def test_a_new_member_row_shows_every_field_as_stored(tenant):
    found = member_preview(tenant, member_file([MESSY]))

    (plan,) = found.rows
    assert plan.status == RowStatus.NEW
    fields = dict(plan.fields)
    assert list(fields) == list(MEMBER_HEADERS.values())
    assert fields["所属"] == "第1分団" and fields["状態"] == "在籍"
    assert fields["ふりがな"] == "ヤマダ　タロウ" and fields["備考"] == NOTES


def test_each_member_normalisation_is_listed_with_original_and_stored_text(tenant):
    found = member_preview(tenant, member_file([MESSY]))

    assert normalised_of(found, "N-1") == MEMBER_NORMALISED


def test_an_unchanged_member_row_still_lists_its_normalisations(tenant):
    member_import(tenant, member_file([MESSY]))

    again = member_preview(tenant, member_file([MESSY]))

    assert again.rows[0].status == RowStatus.UNCHANGED
    assert normalised_of(again, "N-1") == MEMBER_NORMALISED


def test_member_notes_keep_leading_and_trailing_whitespace(tenant):
    member_import(tenant, member_file([MESSY]))

    (member,) = [m for m in members.list_members(admin(tenant)) if m.member_code == "N-1"]
    assert member.notes == NOTES


def test_a_new_water_row_shows_every_field_and_its_normalisations(tenant):
    row = hydrant("Ｈ-１", unit=" 第①分団 ", main_diameter_mm="１５０", memo=NOTES)
    found = water_import.preview_water_import(
        admin(tenant), data=layout_file([row]), filename="water.csv"
    )

    (plan,) = found.rows
    assert plan.status == RowStatus.NEW
    fields = dict(plan.fields)
    assert (fields["水利番号"], fields["種別"], fields["担当分団"]) == ("H-1", "消火栓", "第1分団")
    assert (fields["緯度"], fields["経度"], fields["メモ"]) == ("36.0", "138.0", NOTES)
    assert set(plan.normalised) == {
        Normalised("水利番号", "Ｈ-１", "H-1"),
        Normalised("担当分団", " 第①分団 ", "第1分団"),
        Normalised("口径(mm)", "１５０", "150"),
    }


def test_a_changed_water_row_lists_its_diff_and_normalisations_and_keeps_the_memo(tenant):
    first = water_import.preview_water_import(
        admin(tenant), data=layout_file([hydrant("H-1")]), filename="water.csv"
    )
    water_import.apply_water_import(admin(tenant), first, missing=MissingRows.KEEP)
    found = water_import.preview_water_import(
        admin(tenant),
        data=layout_file([hydrant("H-1", unit="第②分団", memo=NOTES)]),
        filename="water.csv",
    )

    (plan,) = found.rows
    assert plan.status == RowStatus.CHANGED and not plan.fields
    assert {(c.column, c.before, c.after) for c in plan.changes} == {
        ("担当分団", "", "第2分団"),
        ("メモ", "", NOTES),
    }
    assert plan.normalised == (Normalised("担当分団", "第②分団", "第2分団"),)
    water_import.apply_water_import(admin(tenant), found, missing=MissingRows.KEEP)
    assert stored(tenant)["H-1"]["memo"] == NOTES


def test_the_quote_stripped_from_a_hand_made_formula_cell_is_shown(tenant):
    found = member_preview(
        tenant,
        member_file(
            [
                {**MESSY, "notes": "'=SUM(A1)"},
                {"member_code": "N-2", "name": "火消　二", "rank": "団員", "notes": "'x"},
            ]
        ),
    )

    assert ("備考", "'=SUM(A1)", "=SUM(A1)") in normalised_of(found, "N-1")
    assert normalised_of(found, "N-2") == set()  # a quote before plain text is data
    assert dict(found.rows[1].fields)["備考"] == "'x"


def test_the_quote_is_shown_on_a_water_cell_that_is_also_normalised(tenant):
    row = hydrant("H-1", unit="'-第①分団", memo="'@memo")
    found = water_import.preview_water_import(
        admin(tenant), data=layout_file([row]), filename="water.csv"
    )

    assert set(found.rows[0].normalised) == {
        Normalised("担当分団", "'-第①分団", "-第1分団"),
        Normalised("メモ", "'@memo", "@memo"),
    }


def test_a_quote_in_a_read_only_column_is_ignored_like_the_column(tenant):
    data = csv_file(["水利番号", "種別", "判定"], [["H-1", "消火栓", "'-"]])
    found = water_import.preview_water_import(admin(tenant), data=data, filename="water.csv")

    assert found.ready and found.rows[0].normalised == ()


def test_the_quote_is_shown_for_the_open_data_layout(tenant):
    row = dict.fromkeys(OPEN_DATA_HEADER, "")
    row |= {"ID": "OD-1", "種別": "消火栓", "緯度": "36.0", "経度": "138.0", "備考": "'=1+1"}
    data = csv_file(OPEN_DATA_HEADER, [list(row.values())])
    found = water_import.preview_water_import(admin(tenant), data=data, filename="open.csv")

    assert found.ready, [str(e) for e in found.errors]
    assert ("備考", "'=1+1", "=1+1") in normalised_of(found, "OD-1")


def test_the_quote_is_shown_for_a_mapped_workbook_cell(tenant):
    """A workbook's text cell 「'@第1分団」 loses its quote like a CSV's does: shown."""
    data = xlsx_file(
        {"台帳": [["番号", "種類", "担当", "摘要"], ["K-1", "消火栓", "'@第1分団", "'x"]]}
    )
    mapping = ColumnMapping(
        columns={"番号": "code", "種類": "kind", "担当": "unit", "摘要": "memo"}, sheet="台帳"
    )
    found = water_import.preview_water_import(
        admin(tenant), data=data, filename="台帳.xlsx", mapping=mapping
    )

    assert found.ready, [str(e) for e in found.errors]
    assert normalised_of(found, "K-1") == {("担当", "'@第1分団", "@第1分団")}
