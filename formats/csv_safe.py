"""CSV cells a spreadsheet will not run: the escaping every export uses, and its exact inverse.

A text cell starting with = + - @, tab, CR or LF would be taken as a formula (CSV injection), so
it is written with a leading '. A text cell that already starts with ' gets one more, so that
`unneutralise` can strip exactly one and backup → restore is the identity for every string.
Numbers and dates are written as they are. Files are UTF-8 with a BOM (Excel then reads them as
UTF-8) and CRLF line ends.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from typing import Any

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n")
QUOTE = "'"
ESCAPED_STARTS = (*FORMULA_STARTS, QUOTE)
BOM = "\ufeff"


def neutralise(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return QUOTE + value if value.startswith(ESCAPED_STARTS) else value
    return str(value)


def unneutralise(text: str) -> str:
    """The inverse of neutralise for text cells: strips the one ' that neutralise added."""
    if text.startswith(QUOTE) and text[1:].startswith(ESCAPED_STARTS):
        return text[1:]
    return text


class Unencodable(ValueError):
    """Cells CP932 cannot hold, as (record, column, character): the record is named by its
    first column (団員番号, 水利番号), since the file that would have had row numbers was never
    written; the header row is 「見出し」."""

    def __init__(self, problems: list[tuple[str, str, str]]) -> None:
        shown = "、".join(
            f"{record}の「{column}」の「{char}」" for record, column, char in problems[:20]
        )
        more = f" ほか{len(problems) - 20}件" if len(problems) > 20 else ""
        super().__init__(f"Shift_JIS（CP932）で表せない文字があります: {shown}{more}")
        self.problems = problems


HEADER_RECORD = "見出し"


def encode(
    header: Sequence[str], rows: Iterable[Iterable[Any]], *, encoding: str = "utf-8"
) -> bytes:
    """UTF-8 with a BOM (the default), or CP932 ("cp932"): a character CP932 cannot hold is
    reported with its row and column (Unencodable), never replaced."""
    lines = [[neutralise(name) for name in header]]
    lines.extend([neutralise(value) for value in row] for row in rows)
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows(lines)
    if encoding == "cp932":
        return _cp932(out.getvalue(), header, lines)
    return (BOM + out.getvalue()).encode("utf-8")


def _cp932(text: str, header: Sequence[str], lines: list[list[str]]) -> bytes:
    try:
        data = text.encode("cp932")
        if data.decode("cp932") == text:
            return data
    except UnicodeEncodeError:
        pass
    problems = []
    for number, cells in enumerate(lines, start=1):
        record = HEADER_RECORD if number == 1 else _record(header, cells, number)
        for index, cell in enumerate(cells):
            for char in dict.fromkeys(cell):
                if not in_cp932(char):
                    column = header[index] if index < len(header) else f"{index + 1}列目"
                    problems.append((record, column, char))
    raise Unencodable(problems)


def _record(header: Sequence[str], cells: list[str], number: int) -> str:
    """「団員番号 A-2」: the first column names the record; without a value, its data row."""
    key = unneutralise(cells[0]) if cells else ""
    if key and all(in_cp932(char) for char in key):
        return f"{header[0]} {key}" if header else key
    return f"{number - 1}件目"


def in_cp932(char: str) -> bool:
    """Whether CP932 holds char exactly: the codec also maps a few characters (¢ £ ¬ ‖ − 〜)
    to look-alikes that read back as different characters, which would change the data."""
    try:
        return char.encode("cp932").decode("cp932") == char
    except UnicodeEncodeError:
        return False


def decode(data: bytes) -> list[list[str]]:
    """Rows of a file written by encode (strict UTF-8, BOM optional), cells unneutralised."""
    text = data.decode("utf-8")
    text = text.removeprefix(BOM)
    return [[unneutralise(cell) for cell in row] for row in csv.reader(io.StringIO(text))]
