"""The one way the pages draw a read-only table (#18: Japanese throughout, readable tables).

Streamlit's grid writes a missing value as an English "None" and an empty table as "empty", and
gives every table the same short box (10 rows of 145). `show` writes missing values as blank
cells, says in Japanese that there is nothing to list, and makes the box as tall as the rows
(up to ROWS_IN_VIEW, then it scrolls). Editable grids (st.data_editor) are not drawn here."""

from __future__ import annotations

from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

import pandas as pd
import streamlit as st
from pandas.io.formats.style import Styler
from streamlit.delta_generator import DeltaGenerator

NOTHING = "該当するデータはありません。"
ROWS_IN_VIEW = 25
ROW_PX = 35  # the grid's row height, the header's too
BORDER_PX = 3


def blank_missing(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with None/NaN/NaT written as empty text. A column with any becomes a text
    column (Arrow, which carries the table to the browser, holds one type per column): dates
    as 2024-04-01, whole numbers without ".0"."""
    out = frame.copy()
    for column in out.columns:
        values = out[column]
        if values.isna().any():
            out[column] = [_text(v) for v in values]
    return out


def _text(value: Any) -> str:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def height_for(rows: int) -> int:
    """Pixels for the header and `rows` rows, at most ROWS_IN_VIEW of them."""
    return ROW_PX * (1 + min(max(rows, 1), ROWS_IN_VIEW)) + BORDER_PX


def show(
    data: pd.DataFrame | Styler | Sequence[Any],
    *,
    columns: Sequence[str] | None = None,
    where: DeltaGenerator | None = None,
    nothing: str = NOTHING,
    **options: Any,
) -> Any:
    """st.dataframe of `data` (a frame, or rows with `columns`), hide_index and the full width
    unless said otherwise. An empty table is one line of `nothing`; a table with on_select then
    returns an event with nothing selected."""
    place = where if where is not None else st
    if isinstance(data, Styler):  # styled rows (ui/incident_view.py): blanked before styling
        frame, shown = data.data, data
    else:
        frame = (
            data if isinstance(data, pd.DataFrame) else pd.DataFrame(list(data), columns=columns)
        )
        shown = blank_missing(frame)
    if frame.empty:
        place.caption(nothing)
        return SimpleNamespace(selection=SimpleNamespace(rows=[], columns=[], cells=[]))
    options.setdefault("hide_index", True)
    options.setdefault("width", "stretch")
    options.setdefault("height", height_for(len(frame)))
    return place.dataframe(shown, **options)
