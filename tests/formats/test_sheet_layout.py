"""Finding the data in a workbook someone else made: the data sheet (never a legend), the header
below title rows, and the header cells our layout names (full-width and spaced spellings too)."""

from __future__ import annotations

import pytest

from formats.sheet_layout import data_sheet, header_guess, is_legend, suggested_targets
from formats.tabular import Sheet

TITLE_ROWS = [["デモ市 防火水槽一覧"], ["令和6年4月1日現在", "", "", "警防課"]]
MUNICIPAL_HEADER = ["水利番号", "種　別", "緯度", "経度", "所在", "容量（ｍ３）", "設置年度"]


def test_recognised_columns_include_full_width_and_spaced_names_and_leave_the_rest():
    assert suggested_targets(MUNICIPAL_HEADER) == {
        0: "code",
        1: "kind",
        2: "latitude",
        3: "longitude",
        5: "capacity_m3",
    }


def test_aliases_are_recognised_and_a_repeated_column_keeps_its_first_place():
    assert suggested_targets(["ＣＯＤＥ", "水利種別", "lat", "備考", "メモ"]) == {
        0: "code",
        1: "kind",
        2: "latitude",
        3: "memo",
    }


def test_the_header_is_found_below_title_rows_even_when_a_title_row_is_wider():
    wide_title = ["作成", "総務課", "確認", "警防係", "版", "3", "更新", "毎年"]
    sheet = Sheet("防火水槽", [*TITLE_ROWS, wide_title, MUNICIPAL_HEADER, ["S-1"]], "xlsx")
    assert header_guess(sheet) == 3


def test_without_any_of_our_columns_the_widest_top_row_is_the_header():
    sheet = Sheet("台帳", [["台帳"], ["番号", "種類", "所在"], ["1", "井戸", "本町"]], "xlsx")
    assert header_guess(sheet) == 1


@pytest.mark.parametrize("name", ["凡例", "説明", "記入例", "入力の説明", "Legend"])
def test_legend_sheets_are_known_by_name(name):
    assert is_legend(name)


def test_the_data_sheet_has_the_most_rows_under_a_header_and_is_never_a_legend():
    legend = ("凡例", ["記号", "意味"], 40)  # a long legend still is not the data
    cover = ("表紙", ["デモ市 消防水利台帳"], 60)  # one cell per row: no header
    hydrants = ("消火栓", MUNICIPAL_HEADER, 3)
    cisterns = ("防火水槽", MUNICIPAL_HEADER, 5)
    assert data_sheet([legend, cover, hydrants, cisterns]) == 3
    assert data_sheet([legend, cisterns, hydrants]) == 1
    assert data_sheet([legend, cover]) == 1  # no data anywhere: at least not the legend
    assert data_sheet([("Sheet1", ["a", "b"], 0), ("Sheet2", ["a", "b"], 0)]) == 0
