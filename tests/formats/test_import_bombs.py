"""Uploads built to exhaust memory or time (#16) are refused with a message that says what is
wrong, before they are inflated or parsed, holding a few megabytes while they are."""

from __future__ import annotations

import bz2
import functools
import tracemalloc
import zipfile
from collections.abc import Callable

import pytest

from formats import backup, member_csv, tabular, workbook, zip_limits
from tests.formats import bombs
from tests.formats.bombs import MAIN, SHEET, STRINGS, Entry, deflated, sheet_xml, stored

# What reading one of these may take, above the bytes of the upload itself.
CEILING = 16 * 1024 * 1024


def refused(read: Callable[[], object]) -> tuple[str, int]:
    """The TableError message of read(), and the peak of memory allocated while it ran."""
    tracemalloc.start()
    try:
        with pytest.raises(tabular.TableError) as caught:
            read()
        return str(caught.value), tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def xlsx(data: bytes) -> Callable[[], object]:
    return lambda: tabular.read_table(data, "名簿.xlsx")


def test_a_shared_string_of_300_mb_is_refused_by_its_declared_size():
    data = bombs.shared_string_bomb()
    assert len(data) < 400_000
    message, peak = refused(xlsx(data))
    assert message == (
        "展開後のサイズが大きすぎます（「xl/sharedStrings.xml」が 300.0MB、64.0MBまで）。"
    )
    assert peak < CEILING


def test_a_shared_string_longer_than_an_excel_cell_is_refused_while_streaming():
    strings = stored(STRINGS, f'<sst xmlns="{MAIN}"><si><t>{"A" * 40_000}</t></si></sst>'.encode())
    message, _ = refused(xlsx(bombs.workbook(strings)))
    assert message == "32,767文字を超える文字列があります（Excel のセルの上限です）。"


def test_a_row_of_two_million_cells_is_refused_by_its_ratio():
    message, peak = refused(xlsx(bombs.wide_row_bomb()))
    assert message.startswith("圧縮率が異常に高いファイル（「xl/worksheets/sheet1.xml」）")
    assert peak < CEILING


def test_without_the_ratio_check_the_scan_stops_the_row_at_its_1001st_column(monkeypatch):
    monkeypatch.setattr(zip_limits, "MAX_RATIO", 10**9)
    message, peak = refused(xlsx(bombs.wide_row_bomb()))
    assert message == "1行目の列が多すぎます（1,000列まで）。不要な列を削除してください。"
    assert peak < CEILING


def test_more_cell_elements_in_a_row_than_excel_has_columns_is_refused():
    empty = sheet_xml('<row r="7">' + "<c/>" * (workbook.EXCEL_COLUMNS + 1) + "</row>")
    message, _ = refused(xlsx(bombs.workbook(stored(SHEET, empty))))
    assert message == "7行目のセルが多すぎます（Excel の上限 16,384列を超えています）。"


def test_empty_formatted_cells_at_the_end_of_a_row_are_neither_counted_nor_kept():
    row = '<row r="1"><c r="A1"><v>1</v></c>' + '<c s="1"/>' * 5_000 + "</row>"
    sheets = tabular.read_table(bombs.workbook(sheet=sheet_xml(row)), "x.xlsx")
    assert sheets[0].rows == [["1"]]


def test_a_part_that_inflates_a_thousand_times_is_refused_by_name():
    message, peak = refused(xlsx(bombs.ratio_bomb()))
    assert message == (
        "圧縮率が異常に高いファイル（「docProps/app.xml」）が含まれています（100倍まで）。"
        "ZIP爆弾の疑いがあるため読み込みません。"
    )
    assert peak < CEILING


def test_a_stream_longer_than_its_header_says_is_cut_at_the_header_and_refused():
    data = bombs.lying_header_bomb()
    message, peak = refused(xlsx(data))
    assert message == workbook.UNREADABLE
    assert peak < CEILING  # the stream would inflate to 100 MB


def test_a_declared_size_of_the_whole_grid_is_not_read_as_rows():
    assert tabular.read_table(bombs.dimension_bomb(), "x.xlsx")[0].rows == [["1"]]


def test_more_rows_than_the_limit_are_refused_before_openpyxl_reads_them():
    rows = "".join(f'<row r="{n}"><c><v>1</v></c></row>' for n in range(1, 12))
    with pytest.raises(tabular.TableError, match="行数が多すぎます。10行以下"):
        workbook.read_xlsx(bombs.workbook(sheet=sheet_xml(rows)), max_rows=10)


def test_more_cells_than_the_limit_are_refused(monkeypatch):
    monkeypatch.setattr(tabular, "MAX_CELLS", 100)
    rows = "".join(f'<row r="{n}">{"<c><v>1</v></c>" * 10}</row>' for n in range(1, 12))
    message, _ = refused(xlsx(bombs.workbook(sheet=sheet_xml(rows))))
    assert message == tabular.too_many_cells(100)
    with pytest.raises(tabular.TableError, match="セルが多すぎます（100個まで）"):
        tabular.read_csv(b"a,b,c,d,e,f,g,h,i,j\r\n" * 11)


@pytest.mark.parametrize(
    ("part", "message"),
    [
        (f'<!DOCTYPE x [<!ENTITY a "aaaa">]><worksheet xmlns="{MAIN}"/>', workbook.NOT_FROM_EXCEL),
        ("<a>" * 100 + "</a>" * 100, workbook.TOO_COMPLEX),  # nesting
        ("<a " + " ".join(f'x{i}=""' for i in range(200_000)) + "/>", workbook.TOO_COMPLEX),
    ],
)
def test_xml_that_no_office_program_writes_is_refused(part, message):
    data = bombs.workbook(stored("docProps/custom.xml", part.encode()))
    assert refused(xlsx(data))[0] == message


def test_a_part_openpyxl_reads_whole_may_not_be_a_large_tree(monkeypatch):
    monkeypatch.setattr(workbook, "MAX_TREE_NODES", 1_000)
    styles = stored("xl/styles.xml", ("<a>" + "<b/>" * 1_000 + "</a>").encode())
    assert refused(xlsx(bombs.workbook(styles)))[0] == workbook.TOO_COMPLEX
    same_in_a_sheet = stored(SHEET, sheet_xml("", head="<b/>" * 900))
    assert tabular.read_table(bombs.workbook(same_in_a_sheet), "x.xlsx")[0].rows == []


def test_a_streamed_part_is_held_to_what_openpyxl_keeps_of_the_part_it_reads_it_as(monkeypatch):
    monkeypatch.setattr(workbook, "MAX_TREE_NODES", 100)
    monkeypatch.setattr(tabular, "MAX_CELLS", 100)  # streamed, a part may keep 210 nodes
    rows = "".join(
        f'<row r="{n}">'
        + "".join(f'<c r="{column}{n}" s="0" t="n"><v>1</v></c>' for column in "ABCDEFGHIJ")
        + "</row>"
        for n in range(1, 11)
    )
    sheet = stored(SHEET, sheet_xml(rows))
    rows = workbook.read_xlsx(bombs.workbook(sheet), max_rows=10)[0].rows
    assert len(rows) == 10  # 500 nodes, but openpyxl clears each row once read
    padded = "<x/>" * 300
    for part in (
        stored(STRINGS, f'<sst xmlns="{MAIN}">{padded}</sst>'.encode()),
        stored(SHEET, sheet_xml("", head=padded)),
    ):
        read = functools.partial(workbook.read_xlsx, bombs.workbook(part), max_rows=10)
        assert refused(read)[0] == workbook.TOO_COMPLEX


def test_only_stored_and_deflated_entries_are_inflated():
    packed = bz2.compress(sheet_xml(""))
    entry = Entry(SHEET, packed, len(sheet_xml("")), zipfile.ZIP_BZIP2)
    message, _ = refused(xlsx(bombs.workbook(entry)))
    assert (
        message
        == "対応していない圧縮方式のファイル（「xl/worksheets/sheet1.xml」）が含まれています。"
    )


def test_too_many_entries_are_counted_before_zipfile_lists_them():
    extra = [deflated(f"x/{n}.xml", b"<a/>") for n in range(workbook.MAX_ENTRIES)]
    message, _ = refused(xlsx(bombs.workbook(*extra)))
    assert message == "ZIPに含まれるファイルが多すぎます（1,005個、1,000個まで）。"


# -- CSV -----------------------------------------------------------------------------------------


def test_a_million_columns_is_one_error_found_before_the_row_is_built():
    data = bombs.million_column_csv()
    message, peak = refused(lambda: tabular.read_csv(data))
    assert message == "1行目の列が多すぎます（1,000列まで）。不要な列を削除してください。"
    assert peak < CEILING
    assert member_csv.parse(data, "団員.csv").file_errors == [message]


def test_a_row_spread_over_lines_by_quotes_is_counted_whole():
    row = ",".join(['"a\r\nb"'] * 600)  # 600 fields on 601 lines, 599 commas in all
    tabular.read_csv(f"{row}\r\n{row}\r\n".encode())
    with pytest.raises(tabular.TableError, match="2行目の列が多すぎます"):
        tabular.read_csv(f"{row}\r\n{row},{row}\r\n".encode())


def test_unknown_columns_are_one_error_however_many():
    header = ["団員番号", "氏名", "階級", *(f"列{n}" for n in range(1, 998))]
    parsed = member_csv.parse((",".join(header) + "\r\nA1,消防　太郎,団員\r\n").encode(), "x.csv")
    assert parsed.file_errors == [
        "この形式にない列が 997 個あります（例: 「列1」、「列2」、「列3」 ほか 994 列）。"
    ]


def test_a_long_unknown_header_is_shortened_in_the_message():
    header = "団員番号,氏名,階級," + "長" * 5000
    parsed = member_csv.parse(f"{header}\r\nA1,消防　太郎,団員\r\n".encode(), "x.csv")
    assert parsed.file_errors == [f"列「{'長' * 30}…」はこの形式にない列です。"]


# -- backup ZIP ----------------------------------------------------------------------------------


def backup_problem(*entries: Entry) -> list[str]:
    with pytest.raises(backup.BackupError) as caught:
        backup.read_zip(bombs.archive(*entries))
    return caught.value.problems


def test_the_backup_reader_holds_the_same_limits():
    manifest = deflated(backup.MANIFEST, b"{}")
    assert backup_problem(
        manifest, bombs.repeated(backup.MEMBERS, b"", b"0" * bombs.MIB, 20, b"")
    ) == [
        "圧縮率が異常に高いファイル（「members.csv」）が含まれています（100倍まで）。"
        "ZIP爆弾の疑いがあるため読み込みません。"
    ]
    big = Entry(backup.MEMBERS, b"", backup.MAX_ENTRY_BYTES + 1, zipfile.ZIP_STORED)
    assert backup_problem(manifest, big)[0].startswith(
        "展開後のサイズが大きすぎます（「members.csv」"
    )
    packed = Entry(backup.MEMBERS, bz2.compress(b"x"), 1, zipfile.ZIP_BZIP2)
    assert backup_problem(manifest, packed) == [
        "対応していない圧縮方式のファイル（「members.csv」）が含まれています。"
    ]
