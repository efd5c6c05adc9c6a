"""ui/tables.py: the pages' read-only tables without Streamlit's English "None" and "empty",
as tall as their rows."""

from __future__ import annotations

import math
from datetime import date

import pandas as pd
from streamlit.testing.v1 import AppTest

from ui import tables


def test_missing_values_are_blank_and_present_ones_kept():
    frame = pd.DataFrame(
        {
            "a": ["x", None],
            "n": [1.5, math.nan],
            "w": [40.0, None],
            "d": [date(2024, 4, 1), None],
            "k": [1, 2],
        }
    )
    out = tables.blank_missing(frame)
    assert list(out["a"]) == ["x", ""] and list(out["n"]) == ["1.5", ""]
    assert list(out["w"]) == ["40", ""] and list(out["d"]) == ["2024-04-01", ""]
    assert out["k"].dtype == frame["k"].dtype  # a column with no gap keeps its type
    assert frame["a"].isna().any()  # the caller's frame is left as it was


def test_the_box_fits_the_rows_up_to_a_limit():
    assert tables.height_for(1) < tables.height_for(10) < tables.height_for(25)
    assert tables.height_for(25) == tables.height_for(145)


def script():
    from datetime import date

    import pandas as pd

    from ui import tables

    tables.show(pd.DataFrame({"日付": [None, date(2024, 4, 1)], "容量": [40.0, None]}))
    tables.show([], columns=["日時", "内容"])
    event = tables.show([], columns=["x"], on_select="rerun", key="t")
    tables.show([], columns=["x"], nothing="点検の記録はありません。")
    assert event.selection.rows == []


def test_an_empty_table_is_one_japanese_line_and_selects_nothing():
    at = AppTest.from_function(script).run()
    assert not at.exception, at.exception
    [grid] = at.dataframe
    assert list(grid.value["日付"]) == ["", "2024-04-01"]  # one type per column for Arrow
    assert list(grid.value["容量"]) == ["40", ""]
    assert [c.value for c in at.caption] == [
        tables.NOTHING,
        tables.NOTHING,
        "点検の記録はありません。",
    ]
