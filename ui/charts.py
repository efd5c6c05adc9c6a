"""Bar charts as Vega-Lite specs handed straight to st.vega_lite_chart.

st.bar_chart builds an Altair chart and validates it against the Vega-Lite JSON schema on every
run: about 40 ms a chart on this machine, 260 ms of the ダッシュボード's first run (the page an
administrator lands on after signing in). These specs draw the same bars without Altair."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st


def bars(
    frame: pd.DataFrame,
    *,
    x: str,
    y: str,
    horizontal: bool = False,
    color: str | None = None,
    key: str | None = None,
) -> None:
    """Bars of `y` per `x`, categories in the frame's order (not sorted), stacked by `color`."""
    category = {"field": x, "type": "nominal", "sort": None, "title": x}
    value = {"field": y, "type": "quantitative", "title": y}
    encoding: dict[str, Any] = (
        {"y": category, "x": value}
        if horizontal
        else {
            "x": category,
            "y": value,
        }
    )
    tooltip = [{"field": x, "type": "nominal"}, {"field": y, "type": "quantitative"}]
    if color is not None:
        encoding["color"] = {"field": color, "type": "nominal", "title": color, "sort": None}
        tooltip.append({"field": color, "type": "nominal"})
    encoding["tooltip"] = tooltip
    spec = {"mark": {"type": "bar"}, "encoding": encoding}
    st.vega_lite_chart(frame, spec, width="stretch", key=key)
