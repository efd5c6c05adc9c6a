"""Reading the spreadsheets brigades actually have: CSV decoded strictly (UTF-8 with or without a
BOM, or CP932 — detected, never guessed), XLSX workbooks with several sheets, title rows above
the header, full-width header text; and turning cells into typed values with Japanese messages
that name the row and the column. No database access: services call this."""

from __future__ import annotations

import codecs
import csv
import io
import math
import re
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date

from formats.csv_safe import QUOTE, unneutralise

MAX_FILE_BYTES = 30 * 1024 * 1024
MAX_ROWS = 100_000
# Every cell read is a Python string held until the import is done (~60 bytes and a pointer):
# MAX_ROWS rows of our widest layout (the map's 24-column list), ~150 MB of cells at most,
# whatever the file's shape (#16). Our own exports and backups must read back.
MAX_CELLS = 2_500_000
# Our layouts have 12 to 24 columns and the municipal ones we map a few dozen; a row is held
# whole (csv and openpyxl build it before we see it), so a row of millions of columns is
# refused while it is read.
MAX_COLUMNS = 1_000
MAX_CELL_CHARS = 5_000
# Header names quoted in a message: a file may have a thousand, each as long as a cell.
NAMES_SHOWN = 3
NAME_CHARS = 30
HEADER_SCAN_ROWS = 30
ENCODING_LABELS = {
    "utf-8-sig": "UTF-8（BOM付き）",
    "utf-8": "UTF-8",
    "cp932": "Shift_JIS（CP932）",
    "xlsx": "Excel（.xlsx）",
}
# What CP932 decoding yields for bytes that are not text: C1 controls (0x80) and the private-use
# area (user-defined 外字, and 0xA0 and 0xFD-0xFF). Other control characters are reported by the
# cell that holds them, as they are in UTF-8 files.
_NOT_TEXT = re.compile(r"[\x80-\x9f\ue000-\uf8ff]")
_HEADER_NOISE = re.compile(r"[\s_・:：*＊※]+")


class TableError(ValueError):
    """The file as a whole cannot be read; the message says why, in Japanese."""


@dataclass(frozen=True)
class CellError:
    """A problem in one cell: row as the spreadsheet numbers it, column by its header text."""

    row: int
    column: str
    message: str

    def __str__(self) -> str:
        return f"{self.row}行目「{self.column}」: {self.message}"


@dataclass(frozen=True)
class Sheet:
    name: str
    rows: list[list[str]]
    encoding: str
    # (row index, column position) of the CSV cells whose escaping ' was stripped on reading
    # (csv_safe.unneutralise), so that a preview can show it (#17).
    unquoted: frozenset[tuple[int, int]] = frozenset()

    @property
    def encoding_label(self) -> str:
        return ENCODING_LABELS.get(self.encoding, self.encoding)


@dataclass(frozen=True)
class Column:
    """One column of a documented layout: its key, its Japanese header and accepted aliases."""

    key: str
    header: str
    aliases: tuple[str, ...] = ()
    required: bool = False
    max_length: int = 200
    example: str = ""

    def names(self) -> tuple[str, ...]:
        return (self.header, *self.aliases)


@dataclass(frozen=True)
class HeaderMatch:
    """Where the header row is (index into Sheet.rows) and which column holds which key."""

    row_index: int
    columns: dict[int, str]
    unknown: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)

    @property
    def problems(self) -> list[str]:
        """One sentence per missing or repeated column of the layout, and one for all the
        columns it does not have, however many."""
        found = [f"必須の列「{name}」がありません。" for name in self.missing]
        found += [f"列「{name}」が複数あります。" for name in dict.fromkeys(self.duplicated)]
        if len(self.unknown) == 1:
            found.append(f"列{named(self.unknown)}はこの形式にない列です。")
        elif self.unknown:
            found.append(
                f"この形式にない列が {len(self.unknown):,} 個あります（例: {named(self.unknown)}）。"
            )
        return found


def named(names: Sequence[str], shown: int = NAMES_SHOWN) -> str:
    """「A」、「B」、「C」 ほか 997 列: a bounded list of header names for a message."""
    quoted = "、".join(
        f"「{name[:NAME_CHARS]}{'…' if len(name) > NAME_CHARS else ''}」" for name in names[:shown]
    )
    return quoted + (f" ほか {len(names) - shown:,} 列" if len(names) > shown else "")


# -- decoding ----------------------------------------------------------------------------------


def check_size(data: bytes, limit: int | None = None) -> None:
    limit = limit or MAX_FILE_BYTES
    if len(data) > limit:
        raise TableError(
            f"ファイルが大きすぎます（{len(data) / 1_048_576:.1f}MB）。"
            f"{limit // 1_048_576}MB以下に分けてください。"
        )
    if not data.strip():
        raise TableError("ファイルが空です。")


def decode(data: bytes) -> tuple[str, str]:
    """(text, encoding): strict UTF-8 (BOM optional) first, then strict CP932; anything else,
    NUL bytes, UTF-16 and bytes that are not text are refused with the byte position."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise TableError(
            "UTF-16 のファイルは読み込めません。UTF-8 か Shift_JIS で保存してください。"
        )
    if (nul := data.find(b"\x00")) >= 0:
        raise TableError(
            f"{nul + 1}バイト目に NUL 文字があります。テキスト形式のCSVではありません。"
        )
    if data.startswith(codecs.BOM_UTF8):
        try:
            return data[len(codecs.BOM_UTF8) :].decode("utf-8"), "utf-8-sig"
        except UnicodeDecodeError as exc:
            raise TableError(
                f"UTF-8（BOM付き）として{exc.start + len(codecs.BOM_UTF8) + 1}バイト目が不正です。"
            ) from exc
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError as utf8:
        try:
            return _cp932_text(data.decode("cp932")), "cp932"
        except UnicodeDecodeError as cp932:
            raise TableError(
                "文字コードを判別できません（UTF-8 としては"
                f"{utf8.start + 1}バイト目、Shift_JIS（CP932）としては{cp932.start + 1}バイト目が"
                "不正です）。UTF-8 か Shift_JIS で保存し直してください。"
            ) from cp932


def _cp932_text(text: str) -> str:
    if found := _NOT_TEXT.search(text):
        line = text.count("\n", 0, found.start()) + 1
        raise TableError(
            f"Shift_JIS（CP932）として読むと{line}行目に文字として扱えないコード"
            f"（U+{ord(found.group()):04X}、外字など）があります。"
        )
    return text


# -- reading -----------------------------------------------------------------------------------


def read_csv(data: bytes, *, max_rows: int | None = None) -> Sheet:
    """The rows of a CSV file; TableError when it cannot be decoded or parsed, or passes a
    limit (rows, columns in a row, cells in all)."""
    max_rows = max_rows or MAX_ROWS
    check_size(data)
    text, encoding = decode(data)
    rows: list[list[str]] = []
    unquoted: set[tuple[int, int]] = set()
    cells = 0
    for row in csv_rows(text):
        check_row_count(len(rows), max_rows)
        cells += len(row)
        if cells > MAX_CELLS:
            raise TableError(too_many_cells(MAX_CELLS))
        # Only a cell starting with ' can lose one: most rows have none and stay as csv built them.
        quoted = QUOTE in "".join(row)
        rows.append(_unneutralised(row, len(rows), unquoted) if quoted else row)
    return Sheet(name="", rows=rows, encoding=encoding, unquoted=frozenset(unquoted))


def _unneutralised(row: list[str], index: int, unquoted: set[tuple[int, int]]) -> list[str]:
    """The row's cells with csv_safe's escaping ' stripped; (row, column) of each that lost
    one added to unquoted."""
    read = [unneutralise(cell) for cell in row]
    unquoted.update((index, i) for i, cell in enumerate(read) if cell != row[i])
    return read


def csv_rows(text: str) -> Iterator[list[str]]:
    """The rows of decoded CSV text one at a time, each refused before csv builds it when it
    is wider than MAX_COLUMNS; TableError when the text is not CSV."""
    lines = _Lines(text, MAX_COLUMNS)
    reader = csv.reader(lines, strict=True)
    try:
        for row in reader:
            yield row
            lines.next_row()
    except csv.Error as exc:
        raise TableError(
            f"{reader.line_num}行目付近のCSVの形式が正しくありません（{exc}）。"
        ) from exc


class _Lines:
    """The lines csv.reader asks for, counting the commas of the row it is reading: a row is
    refused before csv builds it (30 MB of commas would be one row of 30 million fields).
    Commas inside quotes count too; a row with more than MAX_COLUMNS of them is no roster."""

    def __init__(self, text: str, max_columns: int) -> None:
        self.lines = io.StringIO(text, newline="")
        self.max_columns = max_columns
        self.row = 1
        self.commas = 0

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        line = next(self.lines)
        self.commas += line.count(",")
        if self.commas >= self.max_columns:
            raise TableError(too_many_columns(self.row, self.max_columns))
        return line

    def next_row(self) -> None:
        self.row += 1
        self.commas = 0


def read_table(data: bytes, filename: str) -> list[Sheet]:
    """Every sheet of an upload: one for a CSV, one per worksheet for an XLSX."""
    from formats.workbook import read_xlsx  # imported here: it builds on this module

    name = filename.lower()
    if name.endswith(".xls") or data.startswith(b"\xd0\xcf\x11\xe0"):
        raise TableError(
            "Excel 97-2003 形式（.xls）は読み込めません。.xlsx か CSV で保存し直してください。"
        )
    if name.endswith((".xlsx", ".xlsm")) or data.startswith(b"PK\x03\x04"):
        return read_xlsx(data)
    return [read_csv(data)]


def check_row_count(count: int, limit: int) -> None:
    if count > limit:
        raise TableError(too_many_rows(limit))


def too_many_rows(limit: int) -> str:
    return f"行数が多すぎます。{limit:,}行以下に分けてください。"


def too_many_columns(row: int, limit: int) -> str:
    return f"{row:,}行目の列が多すぎます（{limit:,}列まで）。不要な列を削除してください。"


def too_many_cells(limit: int) -> str:
    return (
        f"セルが多すぎます（{limit:,}個まで）。ファイルを分けるか、不要な行・列を削除してください。"
    )


# -- headers -----------------------------------------------------------------------------------


def header_key(text: str) -> str:
    """How header cells are compared: NFKC (full-width letters, digits and brackets become
    ASCII), spaces, underscores, middle dots and required-marks removed, case folded."""
    return _HEADER_NOISE.sub("", unicodedata.normalize("NFKC", text or "")).casefold()


def match_header(row: Sequence[str], columns: Sequence[Column]) -> HeaderMatch:
    return _match_header(row, columns, _by_name(columns))


def _by_name(columns: Sequence[Column]) -> dict[str, Column]:
    return {header_key(name): column for column in columns for name in column.names()}


def _match_header(
    row: Sequence[str], columns: Sequence[Column], by_name: dict[str, Column]
) -> HeaderMatch:
    found: dict[int, str] = {}
    unknown: list[str] = []
    duplicated: list[str] = []
    for index, cell in enumerate(row):
        if not cell.strip():
            continue
        column = by_name.get(header_key(cell))
        if column is None:
            unknown.append(cell.strip())
        elif column.key in found.values():
            duplicated.append(column.header)
        else:
            found[index] = column.key
    missing = [c.header for c in columns if c.required and c.key not in found.values()]
    return HeaderMatch(-1, found, unknown, missing, duplicated)


def find_header(sheet: Sheet, columns: Sequence[Column]) -> HeaderMatch | None:
    """The first row, among the top HEADER_SCAN_ROWS, that names the most of the layout's
    columns (title rows above the header are skipped); None when no row names two."""
    best: HeaderMatch | None = None
    by_name = _by_name(columns)
    for index, row in enumerate(sheet.rows[:HEADER_SCAN_ROWS]):
        match = _match_header(row, columns, by_name)
        if len(match.columns) >= 2 and (best is None or len(match.columns) > len(best.columns)):
            best = HeaderMatch(index, match.columns, match.unknown, match.missing, match.duplicated)
    return best


def records(
    sheet: Sheet, match: HeaderMatch, columns: Sequence[Column]
) -> Iterator[tuple[int, dict[str, str], list[CellError]]]:
    """(row number, {key: text}, errors) for every non-blank row below the header; a cell
    longer than its column allows is an error, not truncated."""
    by_key = {c.key: c for c in columns}
    layout = [
        (position, key, min(by_key[key].max_length, MAX_CELL_CHARS), by_key[key])
        for position, key in match.columns.items()
    ]
    for index in range(match.row_index + 1, len(sheet.rows)):
        row = sheet.rows[index]
        if not "".join(row).strip():
            continue
        width = len(row)
        values = {key: row[position] if position < width else "" for position, key, _, _ in layout}
        errors = [
            CellError(index + 1, column.header, f"{column.max_length}文字以内にしてください。")
            for _, key, limit, column in layout
            if len(values[key]) > limit
        ]
        yield index + 1, values, errors


def unquoted_keys(sheet: Sheet, match: HeaderMatch) -> dict[int, frozenset[str]]:
    """Row number → the keys of the row's cells that lost their escaping ' on reading."""
    found: dict[int, set[str]] = {}
    for index, position in sheet.unquoted:
        if index > match.row_index and position in match.columns:
            found.setdefault(index + 1, set()).add(match.columns[position])
    return {row: frozenset(keys) for row, keys in found.items()}


# -- cell values -------------------------------------------------------------------------------


class CellValueError(ValueError):
    """A cell that does not hold what its column needs; the message is Japanese."""


_DATE = re.compile(r"^(\d{4})[-/.年](\d{1,2})[-/.月](\d{1,2})日?$")
_ERAS = {"令和": 2018, "平成": 1988, "昭和": 1925, "R": 2018, "H": 1988, "S": 1925}
_ERA_DATE = re.compile(r"^(令和|平成|昭和|R|H|S)(\d{1,2}|元)[年./-](\d{1,2})[月./-](\d{1,2})日?$")


def plain(text: str) -> str:
    return unicodedata.normalize("NFKC", text).strip() if text else ""


def to_int(text: str) -> int | None:
    value = to_float(text)
    if value is None:
        return None
    if not value.is_integer():
        raise CellValueError("整数で入力してください。")
    return int(value)


def to_float(text: str) -> float | None:
    if not text:  # a blank cell, the most common of all
        return None
    if text.isascii() and "," not in text:
        # NFKC leaves ASCII as it is, and float() trims the same whitespace as plain(): a number
        # written plainly needs neither; anything float() refuses takes the way below.
        try:
            value = float(text)
        except ValueError:
            pass
        else:
            return _finite(value)
    cleaned = plain(text).replace(",", "")
    if not cleaned:
        return None
    try:
        value = float(cleaned)
    except ValueError:
        raise CellValueError(f"数値として読めません（「{cleaned[:20]}」）。") from None
    return _finite(value)


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise CellValueError("数値として読めません。")
    return value


def to_date(text: str) -> date | None:
    """2024-04-01, 2024/4/1, 2024年4月1日, 令和6年4月1日 or R6.4.1; also an Excel date-time."""
    cleaned = plain(text).split(" ")[0]
    if not cleaned:
        return None
    try:
        if found := _DATE.match(cleaned):
            return date(*(int(part) for part in found.groups()))
        if found := _ERA_DATE.match(cleaned):
            era, year, month, day = found.groups()
            return date(_ERAS[era] + (1 if year == "元" else int(year)), int(month), int(day))
    except ValueError:
        pass
    raise CellValueError("日付として読めません（例: 2024-04-01、2024/4/1、令和6年4月1日）。")
