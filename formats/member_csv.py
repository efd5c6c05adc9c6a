"""The member (団員名簿) CSV layout: Japanese headers with English aliases, the template, export
and the reading of uploads. What `encode` writes, `parse` reads back cell for cell; turning the
cells into stored values is services/member_import.py's job. No database access."""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from typing import Any

from core.personal import personal_names
from formats import csv_safe, tabular
from formats.tabular import CellError, CellValueError, Column
from models.enums import MemberStatus

COLUMNS: tuple[Column, ...] = (
    Column(
        "member_code",
        "団員番号",
        ("code", "member_code", "団員コード", "member code"),
        required=True,
        max_length=20,
        example="A-0001",
    ),
    Column("name", "氏名", ("name", "名前"), required=True, max_length=50, example="消防　太郎"),
    Column("kana", "ふりがな", ("kana", "フリガナ"), max_length=100, example="ショウボウ　タロウ"),
    Column("rank", "階級", ("rank",), required=True, max_length=20, example="団員"),
    Column("roles", "役職", ("roles", "role"), max_length=500, example=""),
    Column("affiliation", "所属", ("affiliation", "unit"), max_length=100, example="第1分団 第2部"),
    Column("status", "状態", ("status",), max_length=20, example=MemberStatus.ACTIVE.label),
    Column("phone", "電話番号", ("phone", "電話"), max_length=30, example="090-1234-5678"),
    Column(
        "email",
        "メールアドレス",
        ("email", "e-mail", "メール"),
        max_length=254,
        example="taro@example.jp",
    ),
    Column("address", "住所", ("address",), max_length=200, example="長野県デモ市中央1-2-3"),
    Column("joined_on", "入団日", ("joined_on", "joined"), max_length=20, example="2020-04-01"),
    Column("notes", "備考", ("notes", "メモ"), max_length=2000, example="中型免許あり"),
)
HEADER = tuple(column.header for column in COLUMNS)
# The personal data an export of the roster carries (named in its audit record).
PERSONAL_COLUMNS = tuple(c.key for c in COLUMNS if c.key in personal_names("member"))
HEADERS = {column.key: column.header for column in COLUMNS}
ROLE_SEPARATOR = "、"
# Read at call time, so tests can lower them.
MAX_FILE_BYTES = 10 * 1024 * 1024
MAX_ROWS = 20_000
NO_HEADER = (
    "団員名簿の見出し行が見つかりません。テンプレートの見出し（団員番号、氏名、階級 など）を"
    "1行目に置いてください。"
)
_STATUSES = {
    **{status.label: status for status in MemberStatus},
    **{status.value: status for status in MemberStatus},
    "停止": MemberStatus.SUSPENDED,
}
_ROLE_SPLIT = re.compile(r"([、,;／/])")


Record = tuple[int, dict[str, str], list[CellError]]


@dataclass(frozen=True)
class ParsedTable:
    """An upload read as the member layout: the records below the header, or why it cannot be."""

    encoding: str
    sheet: str = ""
    header_row: int = 0  # as the spreadsheet numbers rows
    records: list[Record] = field(default_factory=list)
    file_errors: list[str] = field(default_factory=list)
    unquoted: dict[int, frozenset[str]] = field(default_factory=dict)  # tabular.unquoted_keys


def cells(member: Any) -> dict[str, str]:
    """A member (MemberPublic or alike) as the text of each column."""
    return {
        "member_code": member.member_code,
        "name": member.name,
        "kana": member.kana,
        "rank": member.rank_name,
        "roles": ROLE_SEPARATOR.join(member.role_names),
        "affiliation": member.affiliation,
        "status": MemberStatus(member.status).label,
        "phone": member.phone,
        "email": member.email,
        "address": member.address,
        "joined_on": member.joined_on.isoformat() if member.joined_on else "",
        "notes": member.notes,
    }


def encode(members: Iterable[Any], *, encoding: str = "utf-8") -> bytes:
    """UTF-8 with a BOM, or CP932 (characters it cannot hold raise csv_safe.Unencodable)."""
    rows = ([cells(m)[c.key] for c in COLUMNS] for m in members)
    return csv_safe.encode(HEADER, rows, encoding=encoding)


def template() -> bytes:
    return csv_safe.encode(HEADER, [[column.example for column in COLUMNS]])


def parse(data: bytes, filename: str) -> ParsedTable:
    """The records of an upload (CSV or XLSX; on a workbook, the sheet that names the most
    columns). Undecodable bytes, size and header problems are file errors; over-long cells are
    errors of their row."""
    try:
        tabular.check_size(data, MAX_FILE_BYTES)
        sheets = tabular.read_table(data, filename)
    except tabular.TableError as exc:
        return ParsedTable("", file_errors=[str(exc)])
    found = _best_sheet(sheets)
    if found is None:
        return ParsedTable(sheets[0].encoding if sheets else "", file_errors=[NO_HEADER])
    sheet, match = found
    header_row = match.row_index + 1
    if match.problems:
        return ParsedTable(sheet.encoding, sheet.name, header_row, file_errors=match.problems)
    rows = list(tabular.records(sheet, match, COLUMNS))
    if problem := _row_count_problem(len(rows)):
        return ParsedTable(sheet.encoding, sheet.name, header_row, file_errors=[problem])
    unquoted = tabular.unquoted_keys(sheet, match)
    return ParsedTable(sheet.encoding, sheet.name, header_row, rows, unquoted=unquoted)


def _row_count_problem(count: int) -> str:
    if not count:
        return "団員の行がありません。"
    if count > MAX_ROWS:
        return f"行数が多すぎます（{count:,}行）。{MAX_ROWS:,}行以下に分けてください。"
    return ""


def _best_sheet(sheets: list[tabular.Sheet]) -> tuple[tabular.Sheet, tabular.HeaderMatch] | None:
    best: tuple[tabular.Sheet, tabular.HeaderMatch] | None = None
    for sheet in sheets:
        match = tabular.find_header(sheet, COLUMNS)
        if match is not None and (best is None or len(match.columns) > len(best[1].columns)):
            best = (sheet, match)
    return best


def status_of(text: str) -> MemberStatus | None:
    """在籍 / 停止中 / 退団 (or active / suspended / retired); None for a blank cell."""
    cleaned = tabular.plain(text).casefold()
    if not cleaned:
        return None
    if cleaned not in _STATUSES:
        labels = "、".join(status.label for status in MemberStatus)
        raise CellValueError(f"「{labels}」のいずれかを入力してください。")
    return _STATUSES[cleaned]


def split_roles(text: str, known: Collection[str]) -> tuple[list[str], list[str]]:
    """(role names found, parts not naming a role). Names are separated by 、 , ; or ／; a known
    name that itself contains a separator is recognised whole. Names are compared by
    `tabular.plain`, so `known` holds plain names."""
    parts = _ROLE_SPLIT.split(text)  # names at even positions, separators between them
    found: list[str] = []
    unknown: list[str] = []
    start = 0
    while start < len(parts):
        end = _longest_known(parts, start, known)
        name = tabular.plain("".join(parts[start:end]))
        if name:
            (found if name in known else unknown).append(name)
        start = end + 1
    return list(dict.fromkeys(found)), unknown


def _longest_known(parts: list[str], start: int, known: Collection[str]) -> int:
    for end in range(len(parts), start, -2):
        if tabular.plain("".join(parts[start:end])) in known:
            return end
    return start + 1
