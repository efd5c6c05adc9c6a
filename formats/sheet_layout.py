"""Finding the data in a workbook someone else made: which sheet holds it (the most rows under a
header, never a legend), which row is its header (below any title rows), and which of the
header's columns are ours (by name, alias or after NFKC), so the mapping step starts with those
chosen instead of asking for every column. No database access."""

from __future__ import annotations

from collections.abc import Sequence

from formats import water_csv
from formats.tabular import HEADER_SCAN_ROWS, Sheet, find_header, header_key, match_header

# Sheet names that explain a register rather than hold it (compared after NFKC, case folded).
LEGEND_WORDS = ("凡例", "説明", "記入例", "記載例", "使い方", "注意事項", "legend")
# A legend or a cover is a column of sentences; a table has at least two named columns.
MIN_HEADER_CELLS = 2


def suggested_targets(header: Sequence[str]) -> dict[int, str]:
    """Position → our key (MAPPING_TARGETS) for every cell of the header our layout names. A
    column named twice keeps its first place; the administrator decides about the other."""
    return dict(match_header(header, water_csv.COLUMNS).columns)


def header_guess(sheet: Sheet) -> int:
    """Index of the likely header row: the row naming most of our columns, else the first of
    the top rows with the most filled cells (a title row above the header has one)."""
    if (match := find_header(sheet, water_csv.READ_COLUMNS)) is not None:
        return match.row_index
    counts = [sum(bool(c.strip()) for c in row) for row in sheet.rows[:HEADER_SCAN_ROWS]]
    return counts.index(max(counts)) if counts else 0


def is_legend(name: str) -> bool:
    key = header_key(name)
    return any(word in key for word in LEGEND_WORDS)


def data_sheet(sheets: Sequence[tuple[str, Sequence[str], int]]) -> int:
    """Position of the sheet that looks like data, given (name, header cells, non-blank rows
    under the header) per sheet: not named as a legend, a header of two cells or more, then
    the most rows; the first such sheet on a tie."""

    def likeness(position: int) -> tuple[bool, bool, int]:
        name, header, rows = sheets[position]
        named_cells = sum(bool(cell.strip()) for cell in header)
        return not is_legend(name), named_cells >= MIN_HEADER_CELLS, rows

    return max(range(len(sheets)), key=likeness, default=0)
