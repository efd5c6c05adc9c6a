"""The monthly export of approved 出動報告 (#22): the 出動報告書 (one row per activity) and the
出動明細書 (one row per member and pay day, each member's total, the grand total), as CSV and as
one XLSX workbook laid out for printing (A4 landscape, one page wide, the header row on every
page), the way municipalities collect them (稲美町: both, monthly, from the 団長).

Pure: the service computes the amounts (core.rewards) and hands them over as the dataclasses
below. Text cells go through csv_safe.neutralise in both formats: a name starting with = is
text, never a formula, in a CSV and in a workbook alike (openpyxl writes a string starting
with = as a formula)."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime
from itertools import groupby
from typing import Any

from openpyxl import Workbook
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.styles import Alignment, Border, Font, PatternFill, Side
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet

from core.rewards import duration_label
from core.timefmt import JST, to_jst
from formats import csv_safe

REPORT_SHEET, DETAIL_SHEET = "出動報告書", "出動明細書"
LINE, MEMBER_TOTAL, GRAND_TOTAL = "明細", "合計", "総計"
YES = "○"
YEN_FORMAT = '#,##0"円"'
TIME_FORMAT = "yyyy/mm/dd hh:mm"
DAY_FORMAT = "yyyy/mm/dd"
AMOUNT = "報酬額"
HEADER_ROW = 4  # title, table name, blank, header


@dataclass(frozen=True)
class ExportPayLine:
    """One pay day of an activity as core.rewards.PayLine gives it."""

    day: date  # JST
    amount: int
    explanation: str
    adjustments: tuple[str, ...] = ()

    @property
    def reason(self) -> str:
        return " → ".join((self.explanation, *self.adjustments))


@dataclass(frozen=True)
class ExportActivity:
    """One approved report with its computed pay lines."""

    report_id: str
    member_code: str
    member_name: str
    affiliation: str  # 所属
    category: str
    incident_number: int | None  # None: an activity without an incident (訓練, 警戒 …)
    incident_kind: str
    activity: str  # 活動内容
    start: datetime  # aware; shown in JST
    end: datetime
    minutes: int
    turned_back: bool
    false_alarm: bool
    approved_at: datetime | None
    lines: tuple[ExportPayLine, ...]

    @property
    def amount(self) -> int:
        return sum(line.amount for line in self.lines)

    @property
    def reason(self) -> str:
        return " / ".join(line.reason for line in self.lines)


@dataclass(frozen=True)
class ExportMonth:
    brigade: str
    year: int
    month: int
    table_name: str  # the reward table the amounts were computed with
    activities: tuple[ExportActivity, ...]

    @property
    def label(self) -> str:
        return f"{self.year}年{self.month}月分"

    @property
    def total(self) -> int:
        return sum(a.amount for a in self.activities)


@dataclass(frozen=True)
class DetailRow:
    """A row of the 出動明細書 CSV as read back: a pay line, a member's total or the total."""

    kind: str  # LINE, MEMBER_TOTAL or GRAND_TOTAL
    member_code: str
    member_name: str
    affiliation: str
    day: str
    category: str
    report_id: str
    amount: int
    reason: str


Column = tuple[str, float, Callable[[Any], Any]]  # header, XLSX width, value

REPORT_COLUMNS: tuple[Column, ...] = (
    ("開始", 16, lambda a: a.start),
    ("終了", 16, lambda a: a.end),
    ("活動時間", 11, lambda a: duration_label(a.minutes)),
    ("区分", 8, lambda a: a.category),
    ("事案番号", 8, lambda a: a.incident_number),
    ("事案種別", 12, lambda a: a.incident_kind),
    ("団員番号", 10, lambda a: a.member_code),
    ("氏名", 14, lambda a: a.member_name),
    ("所属", 14, lambda a: a.affiliation),
    ("活動内容", 30, lambda a: a.activity),
    ("現場到着前の引揚げ", 8, lambda a: YES if a.turned_back else ""),
    ("誤報", 6, lambda a: YES if a.false_alarm else ""),
    ("承認日時", 16, lambda a: a.approved_at),
    (AMOUNT, 11, lambda a: a.amount),
    ("計算", 40, lambda a: a.reason),
    ("報告ID", 12, lambda a: a.report_id),
)
DETAIL_HEADER = (
    "行",
    "団員番号",
    "氏名",
    "所属",
    "支給日",
    "区分",
    "開始",
    "活動時間",
    AMOUNT,
    "計算",
    "報告ID",
)
DETAIL_WIDTHS = (6, 10, 14, 14, 11, 8, 16, 11, 11, 50, 12)


def report_csv(month: ExportMonth) -> bytes:
    """出動報告書: one row per activity, in start order."""
    return csv_safe.encode(
        [name for name, _, _ in REPORT_COLUMNS],
        ([_csv_value(get(a)) for _, _, get in REPORT_COLUMNS] for a in _by_start(month)),
    )


def detail_csv(month: ExportMonth) -> bytes:
    """出動明細書: each member's pay lines, then the member's total; the grand total last."""
    return csv_safe.encode(DETAIL_HEADER, ([_csv_value(v) for v in row] for row in _details(month)))


def read_detail_csv(data: bytes) -> list[DetailRow]:
    """The rows of a file detail_csv wrote; ValueError when it is not one."""
    header, *rows = csv_safe.decode(data)
    if tuple(header) != DETAIL_HEADER:
        raise ValueError("出動明細書のCSVではありません（見出しが違います）。")
    found = []
    for number, row in enumerate(rows, start=2):
        if len(row) != len(DETAIL_HEADER) or not row[8].lstrip("-").isdecimal():
            raise ValueError(f"出動明細書のCSVの{number}行目が読めません。")
        kind, code, name, unit, day, category, _, _, amount, reason, report = row
        found.append(DetailRow(kind, code, name, unit, day, category, report, int(amount), reason))
    return found


def month_xlsx(month: ExportMonth) -> bytes:
    """Both sheets in one workbook, laid out for printing."""
    book = Workbook()
    reports = book.active
    reports.title = REPORT_SHEET
    _write_reports(reports, month)
    _write_details(book.create_sheet(DETAIL_SHEET), month)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


# --- rows -----------------------------------------------------------------------------------


def _by_start(month: ExportMonth) -> list[ExportActivity]:
    return sorted(month.activities, key=lambda a: (a.start, a.member_code, a.report_id))


def _by_member(month: ExportMonth) -> list[list[ExportActivity]]:
    def member(a: ExportActivity) -> tuple[str, str, str]:
        return (a.affiliation, a.member_code, a.member_name)

    ordered = sorted(month.activities, key=lambda a: (*member(a), a.start, a.report_id))
    return [list(group) for _, group in groupby(ordered, key=member)]


def _details(month: ExportMonth) -> Iterable[tuple[Any, ...]]:
    """The 出動明細書's rows: (kind, code, name, 所属, day, category, start, length, amount,
    reason, report id)."""
    for activities in _by_member(month):
        first = activities[0]
        who = (first.member_code, first.member_name, first.affiliation)
        for a in activities:
            length = duration_label(a.minutes)
            for line in a.lines:
                yield (
                    LINE,
                    *who,
                    line.day,
                    a.category,
                    a.start,
                    length,
                    line.amount,
                    line.reason,
                    a.report_id,
                )
        total = sum(a.amount for a in activities)
        yield (MEMBER_TOTAL, *who, None, None, None, None, total, None, None)
    yield (GRAND_TOTAL, None, None, None, None, None, None, None, month.total, None, None)


def _csv_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return to_jst(value)
    if isinstance(value, date):
        return value.isoformat()
    return value


# --- the workbook ---------------------------------------------------------------------------

_THIN = Side(style="thin", color="808080")
_BORDER = Border(left=_THIN, right=_THIN, top=_THIN, bottom=_THIN)
_HEAD_FILL = PatternFill("solid", fgColor="E8E8E8")
_TOTAL_FILL = PatternFill("solid", fgColor="F5F5F5")
_BOLD = Font(bold=True)


def _write_reports(sheet: Worksheet, month: ExportMonth) -> None:
    _heading(sheet, REPORT_SHEET, month, [(name, width) for name, width, _ in REPORT_COLUMNS])
    amount = [name for name, _, _ in REPORT_COLUMNS].index(AMOUNT)
    for a in _by_start(month):
        _row(sheet, [get(a) for _, _, get in REPORT_COLUMNS], amount)
    total: list[Any] = [None] * len(REPORT_COLUMNS)
    total[0], total[amount] = GRAND_TOTAL, month.total
    _row(sheet, total, amount, emphasis=True)
    _print_layout(sheet)


def _write_details(sheet: Worksheet, month: ExportMonth) -> None:
    _heading(sheet, DETAIL_SHEET, month, list(zip(DETAIL_HEADER, DETAIL_WIDTHS, strict=True)))
    amount = DETAIL_HEADER.index(AMOUNT)
    for row in _details(month):
        _row(sheet, list(row), amount, emphasis=row[0] != LINE)
    _print_layout(sheet)


def _heading(
    sheet: Worksheet, title: str, month: ExportMonth, columns: list[tuple[str, float]]
) -> None:
    sheet.append([_text(f"{month.brigade} {title}（{month.label}）")])
    sheet.append([_text(f"出動報酬の表: {month.table_name}")])
    sheet.append([])
    sheet["A1"].font = Font(bold=True, size=14)
    sheet.append([_text(name) for name, _ in columns])
    for n, (_, width) in enumerate(columns, start=1):
        sheet.column_dimensions[get_column_letter(n)].width = width
        cell = sheet.cell(HEADER_ROW, n)
        cell.font, cell.fill, cell.border = _BOLD, _HEAD_FILL, _BORDER
        cell.alignment = Alignment(horizontal="center", vertical="center", wrap_text=True)


def _row(sheet: Worksheet, values: list[Any], amount: int, *, emphasis: bool = False) -> None:
    """A bordered row; `amount` is the index of the yen column."""
    sheet.append([_cell(v) for v in values])
    for n, cell in enumerate(sheet[sheet.max_row]):
        cell.border = _BORDER
        cell.alignment = Alignment(vertical="top", wrap_text=True)
        if n == amount:
            cell.number_format = YEN_FORMAT
        elif isinstance(cell.value, datetime):
            cell.number_format = TIME_FORMAT
        elif isinstance(cell.value, date):
            cell.number_format = DAY_FORMAT
        if emphasis:
            cell.font, cell.fill = _BOLD, _TOTAL_FILL


def _cell(value: Any) -> Any:
    """Excel has no time zones: a time is written as the JST wall clock."""
    if isinstance(value, datetime):
        return value.astimezone(JST).replace(tzinfo=None)
    if isinstance(value, str):
        return _text(value)
    return value


def _text(value: str) -> str:
    # control characters cannot be stored in a worksheet at all (openpyxl refuses them)
    return csv_safe.neutralise(ILLEGAL_CHARACTERS_RE.sub("", value))


def _print_layout(sheet: Worksheet) -> None:
    setup = sheet.page_setup
    setup.orientation = "landscape"
    setup.paperSize = sheet.PAPERSIZE_A4
    setup.fitToWidth, setup.fitToHeight = 1, 0  # one page wide, as many pages tall as needed
    sheet.sheet_properties.pageSetUpPr.fitToPage = True
    sheet.print_title_rows = f"{HEADER_ROW}:{HEADER_ROW}"
    sheet.print_options.horizontalCentered = True
    sheet.oddFooter.center.text = "&P / &N"
    sheet.freeze_panes = sheet.cell(HEADER_ROW + 1, 1)
