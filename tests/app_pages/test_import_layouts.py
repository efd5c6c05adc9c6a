"""CSV一括登録 with workbooks as municipalities keep them: a legend sheet first and the data on
another, title rows above the header, full-width header names and columns of their own. A
partial match goes to the mapping step with what we recognise chosen; the sheet and the header
row can be changed and the columns are detected again."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from tests.app_pages.conftest import page_text, sign_in
from tests.app_pages.test_csv_import import metrics, open_import, registry, upload, widget
from tests.factories import make_tenant
from tests.fixtures.water_files import xlsx_file

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
LEGEND = [["凡例"], ["○ 使用可"], ["× 使用不可"], ["△ 要修理"], ["※ 容量の単位は m3"]]
TITLES = [["デモ市 防火水槽一覧"], ["令和6年4月1日現在"]]
HEADER = ["水利番号", "種　別", "緯度", "経度", "所在", "容量（ｍ３）", "設置年度"]
CISTERNS = [
    ["S-1", "防火水槽", 36.4, 138.25, "本町1", 40, "H10"],
    ["S-2", "防火水槽", 36.41, 138.26, "本町2", 60, "H12"],
]
PRESELECTED = {
    "水利番号": "code",
    "種　別": "kind",
    "緯度": "latitude",
    "経度": "longitude",
    "所在": "",
    "容量（ｍ３）": "capacity_m3",
    "設置年度": "",
}
HEADER_ROW = "見出しの行（何行目か）"


def municipal_workbook() -> bytes:
    return xlsx_file({"凡例": LEGEND, "防火水槽": [*TITLES, HEADER, *CISTERNS]})


def column_values(at: AppTest) -> dict[str, str]:
    return {s.label[1:-3]: s.value for s in at.selectbox if s.label.endswith("」の列")}


def open_water(open_app) -> tuple[AppTest, object]:
    tenant = make_tenant()
    at = open_import(open_app, sign_in(tenant).token, "消防水利")
    return at, tenant


def test_a_partial_match_goes_to_the_mapping_on_the_data_sheet_with_known_columns_chosen(open_app):
    at, tenant = open_water(open_app)
    upload(at, "防火水槽.xlsx", municipal_workbook(), XLSX)

    sheet = widget(at.selectbox, "シート")
    assert sheet.options == ["凡例", "防火水槽"] and sheet.value == 1
    assert "形式: その他" in page_text(at)  # not refused as our layout with two unknown columns
    assert not at.error
    assert widget(at.number_input, HEADER_ROW).value == 3  # below the two title rows
    assert "見出し行: 3行目" in page_text(at)
    assert column_values(at) == PRESELECTED

    widget(at.selectbox, "「所在」の列").set_value("address")
    widget(at.button, "この対応付けで読み込む").click().run()
    assert not at.exception, at.exception
    assert metrics(at) == {"新規": "2件", "変更": "0件", "変更なし": "0件", "エラー": "0件"}
    assert any("「設置年度」" in i.value for i in at.info)  # the column left out is named

    at.button(key="imp_apply").click().run()
    assert not at.exception, at.exception
    assert (registry(tenant)["S-2"].capacity_m3, registry(tenant)["S-2"].address) == (60, "本町2")


def test_a_changed_header_row_detects_that_rows_columns(open_app):
    at, _ = open_water(open_app)
    upload(at, "防火水槽.xlsx", municipal_workbook(), XLSX)

    widget(at.number_input, HEADER_ROW).set_value(1).run()
    assert column_values(at) == {"デモ市 防火水槽一覧": ""}
    assert "見出し行: 1行目" in page_text(at)

    widget(at.number_input, HEADER_ROW).set_value(3).run()
    assert column_values(at) == PRESELECTED


def test_choosing_the_legend_sheet_detects_its_columns_afresh(open_app):
    at, _ = open_water(open_app)
    upload(at, "防火水槽.xlsx", municipal_workbook(), XLSX)

    widget(at.selectbox, "シート").set_value(0).run()
    assert not at.exception, at.exception
    assert widget(at.number_input, HEADER_ROW).value == 1
    assert column_values(at) == {"凡例": ""}


def test_every_workbook_offers_its_sheets_even_in_our_layout(open_app):
    ours = ["水利番号", "種別", "緯度", "経度"]
    data = xlsx_file(
        {
            "凡例": LEGEND,
            "消火栓": [ours, ["H-1", "消火栓", 36.4, 138.25]],
            "防火水槽": [*TITLES, ours, *(row[:4] for row in CISTERNS)],
        }
    )
    at, _ = open_water(open_app)
    upload(at, "水利.xlsx", data, XLSX)

    assert widget(at.selectbox, "シート").value == 2  # the most rows under a header
    assert "形式: Hikeshi の形式" in page_text(at)
    assert metrics(at)["新規"] == "2件"
    assert "シート「防火水槽」・見出し 3行目" in page_text(at)

    widget(at.selectbox, "シート").set_value(1).run()
    assert not at.exception, at.exception
    assert metrics(at)["新規"] == "1件"
    assert "シート「消火栓」・見出し 1行目" in page_text(at)


def test_a_sheet_in_our_layout_can_have_its_header_row_chosen_by_hand(open_app):
    """The detected header row is a guess: for a sheet in our layout, the toggle opens the
    mapping step on it with our columns chosen, and another header row can be read."""
    ours = ["水利番号", "種別", "緯度", "経度"]
    # Two header-looking rows: the first names a set of codes nobody wants imported.
    rows = [ours, ["X-1", "消火栓", 36.4, 138.25], ours, *(row[:4] for row in CISTERNS)]
    at, tenant = open_water(open_app)
    upload(at, "水利.xlsx", xlsx_file({"水利": rows}), XLSX)
    assert "形式: Hikeshi の形式" in page_text(at) and HEADER_ROW not in page_text(at)

    widget(at.toggle, "見出しの行と列の対応を自分で指定する").set_value(True).run()
    assert not at.exception, at.exception
    assert widget(at.number_input, HEADER_ROW).value == 1
    assert column_values(at) == {
        "水利番号": "code",
        "種別": "kind",
        "緯度": "latitude",
        "経度": "longitude",
    }
    assert not at.get("metric")  # no preview until the mapping is submitted

    widget(at.number_input, HEADER_ROW).set_value(3).run()
    widget(at.button, "この対応付けで読み込む").click().run()
    assert not at.exception, at.exception
    assert metrics(at)["新規"] == "2件"
    assert "シート「水利」・見出し 3行目" in page_text(at)
    at.button(key="imp_apply").click().run()
    assert set(registry(tenant)) == {"S-1", "S-2"}
