"""The monthly export (formats.report_export, #22): the 出動報告書 and 出動明細書 as CSV read back
with the same members and amounts, and the workbook's sheets, totals and print settings."""

from __future__ import annotations

import io
from collections import defaultdict
from datetime import datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from openpyxl import load_workbook

from core.rewards import HIOKI, MISAWA, Activity, RewardTable, compute_rewards
from core.timefmt import JST
from formats import csv_safe
from formats.report_export import (
    DETAIL_SHEET,
    GRAND_TOTAL,
    LINE,
    MEMBER_TOTAL,
    REPORT_SHEET,
    ExportActivity,
    ExportMonth,
    ExportPayLine,
    detail_csv,
    month_xlsx,
    read_detail_csv,
    report_csv,
)

Member = tuple[str, str, str]  # code, name, 所属
TARO: Member = ("A001", "消防　太郎", "第1分団")
HANAKO: Member = ("A002", '=HYPERLINK("x")', "第2分団")


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2025, 4, day, hour, minute, tzinfo=JST)


def month_of(
    table: RewardTable, entries: list[tuple[Member, str, datetime, int]], **flags: bool
) -> ExportMonth:
    """The export of `entries` (member, category, start, minutes) with the engine's amounts."""
    activities = [
        Activity(f"r{n}", member, category, start, start + timedelta(minutes=minutes), **flags)
        for n, (member, category, start, minutes) in enumerate(entries)
    ]
    result = compute_rewards(table, activities)
    return ExportMonth(
        brigade="火消市消防団",
        year=2025,
        month=4,
        table_name=table.name,
        activities=tuple(_exported(a, result.for_activity(a.key)) for a in activities),
    )


def _exported(activity: Activity, lines) -> ExportActivity:
    code, name, unit = activity.member
    return ExportActivity(
        report_id=str(activity.key),
        member_code=code,
        member_name=name,
        affiliation=unit,
        category=activity.category,
        incident_number=7 if activity.category == "火災" else None,
        incident_kind="建物火災" if activity.category == "火災" else "",
        activity="放水、@残火処理",
        start=activity.start,
        end=activity.end,
        minutes=activity.minutes,
        turned_back=activity.turned_back,
        false_alarm=activity.false_alarm,
        approved_at=activity.end + timedelta(days=1),
        lines=tuple(ExportPayLine(p.day, p.amount, p.explanation, p.adjustments) for p in lines),
    )


APRIL = month_of(
    MISAWA,
    [
        (TARO, "火災", at(1, 22), 4 * 60),  # across midnight: 5,000
        (HANAKO, "訓練", at(6, 9), 3 * 60 + 59),  # 2,500
        (TARO, "警戒", at(10, 9), 60),  # 警戒 per day: 2,500 for both
        (TARO, "警戒", at(10, 18), 60),
    ],
)


def totals(rows) -> dict[str, int]:
    return {r.member_code: r.amount for r in rows if r.kind == MEMBER_TOTAL}


def test_the_report_csv_has_one_row_per_activity_with_its_amount():
    header, *rows = csv_safe.decode(report_csv(APRIL))
    assert report_csv(APRIL).startswith(csv_safe.BOM.encode())
    column = {name: n for n, name in enumerate(header)}
    assert [r[column["報酬額"]] for r in rows] == ["5000", "2500", "2500", "0"]
    first = rows[0]
    assert (first[column["開始"]], first[column["終了"]]) == (
        "2025-04-01 22:00",
        "2025-04-02 02:00",
    )
    assert (first[column["事案番号"]], first[column["活動時間"]]) == ("7", "4時間")
    assert first[column["計算"]] == "火災（災害） 4時間以上7時間45分未満 5,000円"
    assert rows[1][column["氏名"]] == HANAKO[1]
    assert "同日の警戒は1日分として計算済み: 0円" in rows[3][column["計算"]]


def test_the_detail_csv_reads_back_with_each_member_and_amount():
    rows = read_detail_csv(detail_csv(APRIL))
    assert [r.kind for r in rows] == [
        LINE,
        LINE,
        LINE,
        MEMBER_TOTAL,
        LINE,
        MEMBER_TOTAL,
        GRAND_TOTAL,
    ]
    assert totals(rows) == {"A001": 7_500, "A002": 2_500}
    assert rows[-1].amount == 10_000
    assert [(r.day, r.amount) for r in rows if r.member_code == "A001" and r.kind == LINE] == [
        ("2025-04-01", 5_000),
        ("2025-04-10", 2_500),
        ("2025-04-10", 0),
    ]
    assert rows[4].member_name == HANAKO[1]  # the formula is text again, not '=…


def test_the_detail_csv_escapes_formulas_for_spreadsheets():
    text = detail_csv(APRIL).decode("utf-8")
    assert "'=HYPERLINK" in text and ",=HYPERLINK" not in text


def test_the_report_csv_is_no_detail_csv():
    with pytest.raises(ValueError, match="出動明細書のCSVではありません"):
        read_detail_csv(report_csv(APRIL))


members = st.tuples(
    st.text("A0123", min_size=1, max_size=4),
    st.text("=+-@,\"' 太郎\n", min_size=1, max_size=8),
    st.text("第1分団,=-", max_size=6),
)
entries = st.lists(
    st.tuples(
        members,
        st.sampled_from(["災害", "火災", "広報"]),
        st.integers(0, 29 * 24 * 60).map(lambda m: at(1, 0) + timedelta(minutes=m)),
        st.integers(0, 20 * 60),
    ),
    max_size=6,
)


@settings(max_examples=25, deadline=None)
@given(entries, st.booleans())
def test_any_month_reads_back_with_the_same_members_and_amounts(entries, false_alarm):
    month = month_of(HIOKI, entries, false_alarm=false_alarm)
    rows = read_detail_csv(detail_csv(month))
    expected: dict[Member, int] = defaultdict(int)
    for a in month.activities:
        expected[(a.member_code, a.member_name, a.affiliation)] += a.amount
    lines: dict[Member, int] = defaultdict(int)
    for r in rows:
        if r.kind == LINE:
            lines[(r.member_code, r.member_name, r.affiliation)] += r.amount
    member_totals = {
        (r.member_code, r.member_name, r.affiliation): r.amount
        for r in rows
        if r.kind == MEMBER_TOTAL
    }
    assert member_totals == lines == expected
    assert rows[-1].amount == month.total


def test_the_workbook_is_laid_out_for_printing():
    book = load_workbook(io.BytesIO(month_xlsx(APRIL)))
    assert book.sheetnames == [REPORT_SHEET, DETAIL_SHEET]
    for sheet in book.worksheets:
        assert sheet["A1"].value == f"火消市消防団 {sheet.title}（2025年4月分）"
        assert sheet["A2"].value == "出動報酬の表: 三沢市"
        assert sheet.page_setup.orientation == "landscape"
        assert sheet.page_setup.paperSize == 9  # A4
        assert (sheet.page_setup.fitToWidth, sheet.page_setup.fitToHeight) == (1, 0)
        assert sheet.sheet_properties.pageSetUpPr.fitToPage
        assert sheet.print_title_rows == "$4:$4"
        assert sheet["A5"].border.top.style == "thin"

    reports = book[REPORT_SHEET]
    header = [c.value for c in reports[4]]
    amount = header.index("報酬額")
    *activities, total = list(reports.iter_rows(min_row=5, values_only=True))
    assert [r[amount] for r in activities] == [5_000, 2_500, 2_500, 0]
    assert (total[0], total[amount]) == (GRAND_TOTAL, 10_000)
    assert activities[0][0] == datetime(2025, 4, 1, 22, 0)  # JST wall clock
    assert reports.cell(5, amount + 1).number_format == '#,##0"円"'
    names = [r[header.index("氏名")] for r in activities]
    assert "'" + HANAKO[1] in names  # text, not a formula
    assert all(c.data_type != "f" for row in reports.iter_rows() for c in row)

    details = book[DETAIL_SHEET]
    rows = list(details.iter_rows(min_row=5, values_only=True))
    subtotals = [(r[1], r[8]) for r in rows if r[0] == MEMBER_TOTAL]
    assert subtotals == [("A001", 7_500), ("A002", 2_500)]
    assert (rows[-1][0], rows[-1][8]) == (GRAND_TOTAL, 10_000)
    assert details.cell(5 + 3, 1).font.bold  # A001's subtotal row
