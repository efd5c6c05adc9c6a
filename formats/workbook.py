"""Reading XLSX workbooks with openpyxl, bounded before openpyxl parses anything (#16).

openpyxl 3.1, even read-only, builds in memory: an element tree of every part it read()s whole
(content types, workbook, relationships, styles, properties), the whole shared-string table
(each string, and a cleared element per string while it reads), and each sheet row as a list
of cell dicts before it yields the row. A 300 KB workbook with one 300 MB shared string took
740 MB; a 217 KB one with a row of 2,000,000 cells took 1.9 GB and 59 s. So, in order:

1. the ZIP directory: entry count, each entry's declared size and ratio, the total, and the
   compression method (formats.zip_limits);
2. every entry streamed once through expat (the parser openpyxl uses), counting what openpyxl
   would build — cells per row and in all, rows, strings and their length, elements and
   attributes, nesting depth, the longest tag — and refused at the first limit passed; a DTD
   (entity expansion) is refused outright, no Office file has one;
3. openpyxl's own reader on an archive that refuses a whole-tree read() of parts larger than a
   tree may be (a sheet passed off as the styles), each streamed part checked against what
   openpyxl keeps of the part it streams it as, rows streamed, declared dimensions ignored (a
   sheet can claim A1:XFD1048576 and be padded to it)."""

from __future__ import annotations

import io
import pyexpat
import re
import zipfile
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from openpyxl.reader.excel import ExcelReader
from openpyxl.xml.constants import SHARED_STRINGS

from formats import tabular, zip_limits
from formats.csv_safe import unneutralise
from formats.tabular import Sheet, TableError

# A workbook is ~10 parts plus two or three per sheet, drawing or image.
MAX_ENTRIES = 1_000
# Excel writes 15 to 40 bytes of XML per cell: 64 MB is a sheet of 1.6 to 4 million cells,
# around MAX_CELLS; the shared strings of as many Japanese cells with furigana about as much.
MAX_ENTRY_BYTES = 64 * 1024 * 1024
MAX_EXPANDED_BYTES = 128 * 1024 * 1024
# Excel's own limits: a row holds at most 16,384 cells, a cell at most 32,767 characters.
EXCEL_COLUMNS = 16_384
MAX_STRING_CHARS = 32_767
# Office parts nest ~20 deep (drawings); openpyxl builds its objects from a tree recursively.
MAX_DEPTH = 64
# One tag, comment or declaration. expat holds a token whole until it ends and then makes every
# attribute a Python string; a cell's text streams and is bounded by MAX_STRING_CHARS instead.
MAX_TOKEN_BYTES = 1024 * 1024
# Elements and attributes of the parts openpyxl reads as whole trees (styles, workbook,
# relationships, properties): a real workbook has a few thousand; one bloated to Excel's maximum
# of 64,000 cell formats about 400,000. ~100 bytes each in memory.
MAX_TREE_NODES = 500_000
MAX_TREE_BYTES = 16 * 1024 * 1024
# A cell of Japanese text with furigana is up to ~16 elements and attributes (c r s t, v; si, t,
# rPh sb eb, t, phoneticPr fontId): what expat and openpyxl may parse in all, and in one row.
NODES_PER_CELL = 16
CHUNK = 64 * 1024

UNREADABLE = "Excel（.xlsx）ファイルとして読めません。"
NOT_FROM_EXCEL = (
    "Excel ファイルに DTD（<!DOCTYPE>）が含まれています。Excel が作るファイルではありません。"
)
TOO_COMPLEX = "Excel ファイルの構造が複雑すぎます（XML の要素・属性が多すぎるか、深すぎます）。"
TOO_LONG_STRING = f"{MAX_STRING_CHARS:,}文字を超える文字列があります（Excel のセルの上限です）。"
_MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main "
_ROW, _STRING, _VALUE, _INLINE = (_MAIN + tag for tag in ("row", "si", "v", "is"))
_REFERENCE = re.compile(r"\$?([A-Za-z]{1,3})\$?\d+")
# What zipfile raises on a damaged archive: bad headers or CRC, a seek before the start
# (ValueError), a version or method it does not know (NotImplementedError, a RuntimeError),
# encryption (RuntimeError), a cut stream (EOFError, zlib.error).
_DAMAGED = (zipfile.BadZipFile, zlib.error, EOFError, OSError, RuntimeError, ValueError)


def read_xlsx(data: bytes, *, max_rows: int | None = None) -> list[Sheet]:
    """Every worksheet's rows as text; TableError when the file is not a workbook or passes a
    limit. Chartsheets are skipped: they hold no cells."""
    max_rows = max_rows or tabular.MAX_ROWS
    tabular.check_size(data)
    if problem := zip_limits.count_problem(data, MAX_ENTRIES):
        raise TableError(problem)
    with _opened(data) as archive:
        problem = zip_limits.entry_problem(
            archive.infolist(), max_entry_bytes=MAX_ENTRY_BYTES, max_total_bytes=MAX_EXPANDED_BYTES
        )
        if problem:
            raise TableError(problem)
        scan = _Scan(max_rows)
        archive.kept, archive.max_kept = scan.archive(archive), scan.max_kept
        archive.tree_budget = MAX_TREE_NODES
        try:
            reader = _Reader(data, archive)
            reader.read()
        except Exception as exc:  # openpyxl reports a malformed part with whatever it hit
            raise _refusal(exc) from exc
        return [_sheet(sheet, max_rows) for sheet in reader.wb.worksheets]


def xlsx_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.date().isoformat() if value.time() == datetime.min.time() else str(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


@dataclass(frozen=True)
class _Kept:
    """What openpyxl keeps while it reads an entry: as a whole tree (every element and
    attribute), streamed as a sheet (the rows it cleared and every node outside them) or as
    the shared strings (likewise with the strings). Which one depends on what the workbook's
    own parts say the entry is, so the scan counts all three and the reader checks the one
    that applies when openpyxl is about to read it."""

    tree: int
    as_sheet: int
    as_strings: int


class _Archive(zipfile.ZipFile):
    """The workbook's archive as openpyxl reads it: a part it read()s becomes a whole tree, so
    parts larger in all than a tree may be are refused."""

    kept: dict[str, _Kept]
    max_kept: int
    tree_budget: int

    def read(self, name: str | zipfile.ZipInfo, pwd: bytes | None = None) -> bytes:
        info = name if isinstance(name, zipfile.ZipInfo) else self.getinfo(name)
        self.tree_budget -= self.kept[info.filename].tree
        if self.tree_budget < 0 or info.file_size > MAX_TREE_BYTES:
            raise TableError(TOO_COMPLEX)
        return super().read(info, pwd)

    def streamed(self, name: str, kept: int) -> None:
        if kept > self.max_kept:
            raise TableError(TOO_COMPLEX)


class _Reader(ExcelReader):
    """openpyxl's own reader (read-only, cached values, no external links) on our archive,
    checking each part it streams against what streaming it as that part keeps."""

    archive: _Archive

    def __init__(self, data: bytes, archive: _Archive) -> None:
        super().__init__(io.BytesIO(data), read_only=True, data_only=True, keep_links=False)
        self.archive.close()
        self.archive = archive

    def read_strings(self) -> None:
        if (part := self.package.find(SHARED_STRINGS)) is not None:
            name = part.PartName[1:]
            self.archive.streamed(name, self.archive.kept[name].as_strings)
        super().read_strings()

    def read_worksheets(self) -> None:
        for _, rel in self.parser.find_sheets():
            if rel.target in self.archive.kept:
                self.archive.streamed(rel.target, self.archive.kept[rel.target].as_sheet)
        super().read_worksheets()

    def read_chartsheet(self, sheet: Any, rel: Any) -> None:
        """Skipped: a chartsheet holds no cells, and openpyxl would read its drawings whole."""


@contextmanager
def _opened(data: bytes) -> Iterator[_Archive]:
    """The archive, open; a file that is no ZIP (or a damaged one) is a TableError."""
    try:
        archive = _Archive(io.BytesIO(data))
    except _DAMAGED as exc:
        raise TableError(UNREADABLE) from exc
    with archive:
        yield archive


def _refusal(exc: BaseException) -> TableError:
    """Our own refusal when openpyxl passed it on (wrapped in its ValueError), else UNREADABLE."""
    for found in (exc, exc.__cause__):
        if isinstance(found, TableError):
            return found
    return TableError(UNREADABLE)


def _sheet(sheet: Any, max_rows: int) -> Sheet:
    sheet.reset_dimensions()  # the declared size is the sender's word; the rows are counted
    rows: list[list[str]] = []
    unquoted: set[tuple[int, int]] = set()  # cells whose escaping ' was stripped (the preview)
    for values in _guarded(sheet.iter_rows(values_only=True)):
        tabular.check_row_count(len(rows), max_rows)
        cells = [xlsx_cell(value) for value in values[: _filled(values)]]
        read = [unneutralise(cell) for cell in cells]
        unquoted.update((len(rows), i) for i, cell in enumerate(read) if cell != cells[i])
        rows.append(read)
    return Sheet(
        name=sheet.title, rows=_trimmed(rows), encoding="xlsx", unquoted=frozenset(unquoted)
    )


def _filled(values: Sequence[Any]) -> int:
    """Up to the last cell holding something: openpyxl pads a row to its last cell element,
    which may be an empty one that only carries a format."""
    width = len(values)
    while width and values[width - 1] in (None, ""):
        width -= 1
    return width


def _guarded(rows: Iterator[Sequence[Any]]) -> Iterator[Sequence[Any]]:
    while True:
        try:
            values = next(rows)
        except StopIteration:
            return
        except Exception as exc:  # as in read_xlsx: a malformed sheet raises what it hit
            raise _refusal(exc) from exc
        yield values


def _trimmed(rows: list[list[str]]) -> list[list[str]]:
    """Without the empty rows and columns a worksheet's used range often carries at its end."""
    while rows and not any(cell.strip() for cell in rows[-1]):
        rows.pop()
    width = max((i + 1 for row in rows for i, cell in enumerate(row) if cell.strip()), default=0)
    return [row[:width] for row in rows]


# -- the scan ------------------------------------------------------------------------------------


class _Scan:
    """Counts over the whole workbook, entry by entry; raises TableError at the first limit."""

    def __init__(self, max_rows: int) -> None:
        self.max_rows = max_rows
        self.max_columns = tabular.MAX_COLUMNS
        self.max_cells = tabular.MAX_CELLS
        self.max_nodes = NODES_PER_CELL * self.max_cells + MAX_TREE_NODES
        # Streamed, a part keeps one cleared element per row (or string) and what is outside.
        self.max_kept = MAX_TREE_NODES + self.max_rows + self.max_cells
        self.nodes = self.cells = 0

    def archive(self, archive: zipfile.ZipFile) -> dict[str, _Kept]:
        kept: dict[str, _Kept] = {}
        for info in archive.infolist():
            entry = _Entry(self)
            entry.feed(_chunks(archive, info))
            kept[info.filename] = _Kept(entry.nodes, entry.outside_rows, entry.outside_strings)
        return kept


class _Entry:
    """One entry through expat: what openpyxl would build reading it as a tree, as a sheet (rows
    cleared as it goes) or as the shared strings (each string cleared as it goes)."""

    def __init__(self, scan: _Scan) -> None:
        self.scan = scan
        self.nodes = self.depth = self.outside_rows = self.outside_strings = 0
        self.rows = self.strings = 0
        self.row_depth = self.string_depth = 0  # of the open row / string; 0: none open
        self.row_nodes = self.string_nodes = self.chars = 0
        self.row = self.column = self.elements = self.width = 0
        self.parser = pyexpat.ParserCreate(namespace_separator=" ")
        self.parser.buffer_text = True
        self.parser.StartElementHandler = self.start
        self.parser.EndElementHandler = self.end
        self.parser.CharacterDataHandler = self.text
        self.parser.StartDoctypeDeclHandler = self.doctype

    def feed(self, chunks: Iterator[bytes]) -> None:
        """Parse until the end or the first error: openpyxl's expat stops at the same byte, so
        what it could build is what was counted (an image is no XML and counts nothing)."""
        fed = 0
        try:
            for chunk in chunks:
                fed += len(chunk)
                self.parser.Parse(chunk, False)
                if fed - max(self.parser.CurrentByteIndex, 0) > MAX_TOKEN_BYTES:
                    raise TableError(TOO_COMPLEX)
            self.parser.Parse(b"", True)
        except pyexpat.ExpatError:
            return

    def doctype(self, *_: object) -> None:
        raise TableError(NOT_FROM_EXCEL)

    def start(self, name: str, attrs: dict[str, str]) -> None:
        """One element: counted where openpyxl keeps it; a row's children are its cells. (One
        method, not several: it runs for every element of the workbook.)"""
        scan = self.scan
        self.depth += 1
        size = 1 + len(attrs)
        self.nodes += size
        scan.nodes += size
        if self.depth > MAX_DEPTH or scan.nodes > scan.max_nodes:
            raise TableError(TOO_COMPLEX)
        if self.row_depth:
            self.row_nodes += size
            below = self.depth - self.row_depth
            if below == 1:  # openpyxl reads every child of a row as a cell
                self._cell(attrs)
            elif below == 2 and name in (_VALUE, _INLINE):
                # a value: the row reaches this column (trailing empty styled cells are not kept)
                self.width = max(self.width, self.column)
                if self.width > scan.max_columns:
                    raise TableError(tabular.too_many_columns(self.row, scan.max_columns))
            if self.row_nodes > NODES_PER_CELL * EXCEL_COLUMNS:
                raise TableError(TOO_COMPLEX)
        elif name == _ROW:
            self._row(attrs)
        else:
            self.outside_rows += size
        if self.string_depth:
            self.string_nodes += size
            if self.string_nodes > NODES_PER_CELL * EXCEL_COLUMNS:
                raise TableError(TOO_COMPLEX)
        elif name == _STRING:
            self._string()
        else:
            self.outside_strings += size

    def _row(self, attrs: dict[str, str]) -> None:
        self.rows += 1
        if self.rows > self.scan.max_rows:
            raise TableError(tabular.too_many_rows(self.scan.max_rows))
        self.outside_rows += 1  # openpyxl keeps the row it cleared
        self.row_depth = self.depth
        self.row_nodes = self.column = self.elements = self.width = 0
        number = attrs.get("r", "")
        # for messages only; Excel numbers rows up to 1,048,576 (and int() refuses 4,301 digits)
        known = number.isascii() and number.isdigit() and len(number) <= 7
        self.row = int(number) if known else self.row + 1

    def _cell(self, attrs: dict[str, str]) -> None:
        self.elements += 1
        self.chars = 0
        if self.elements > EXCEL_COLUMNS:
            raise TableError(
                f"{self.row}行目のセルが多すぎます（Excel の上限 {EXCEL_COLUMNS:,}列を超えています）。"
            )
        found = _REFERENCE.fullmatch(attrs.get("r", ""))
        self.column = _column_index(found.group(1)) if found else self.column + 1

    def _string(self) -> None:
        self.strings += 1
        if self.strings > self.scan.max_cells:
            raise TableError(tabular.too_many_cells(self.scan.max_cells))
        self.outside_strings += 1
        self.string_depth, self.string_nodes, self.chars = self.depth, 0, 0

    def text(self, data: str) -> None:
        if self.string_depth or (self.row_depth and self.depth > self.row_depth):
            self.chars += len(data)
            if self.chars > MAX_STRING_CHARS:
                raise TableError(TOO_LONG_STRING)

    def end(self, name: str) -> None:
        if self.depth == self.row_depth:
            self.scan.cells += self.width
            if self.scan.cells > self.scan.max_cells:
                raise TableError(tabular.too_many_cells(self.scan.max_cells))
            self.row_depth = 0
        if self.depth == self.string_depth:
            self.string_depth = 0
        self.depth -= 1


def _chunks(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> Iterator[bytes]:
    """An entry inflated a chunk at a time; damaged, cut short or encrypted: UNREADABLE."""
    try:
        with archive.open(info) as stream:
            while chunk := stream.read(CHUNK):
                yield chunk
    except _DAMAGED as exc:
        raise TableError(UNREADABLE) from exc


def _column_index(letters: str) -> int:
    index = 0
    for letter in letters.upper():
        index = index * 26 + ord(letter) - 64
    return index
