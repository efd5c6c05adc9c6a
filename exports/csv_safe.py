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


def encode(header: Sequence[str], rows: Iterable[Iterable[Any]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(neutralise(name) for name in header)
    for row in rows:
        writer.writerow(neutralise(value) for value in row)
    return (BOM + out.getvalue()).encode("utf-8")


def decode(data: bytes) -> list[list[str]]:
    """Rows of a file written by encode (strict UTF-8, BOM optional), cells unneutralised."""
    text = data.decode("utf-8")
    text = text.removeprefix(BOM)
    return [[unneutralise(cell) for cell in row] for row in csv.reader(io.StringIO(text))]
