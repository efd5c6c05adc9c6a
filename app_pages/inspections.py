"""水利点検 (#18: a page of its own): the brigade's water sources in the order they are due for
inspection — overdue first, then by the next due date — filtered by 担当分団 and how soon they
are due; choose one to see its history and record an inspection. The 水利マップ still records
inspections beside the map; this is the list to work through."""

from __future__ import annotations

from datetime import date

import pandas as pd
import streamlit as st

from core.access import Need, allows
from services import water_sources
from services.catalog import Function, Level
from services.errors import ServiceError
from ui import tables
from ui import water_forms as forms
from ui.common import current_actor, plain, show_error
from ui.import_view import require

SOON_DAYS = 30
DUE = {"期限切れ": "overdue", f"{SOON_DAYS}日以内に期限": "soon", "すべて": "all"}

actor = current_actor()
require(actor, Function.INSPECTIONS, Level.VIEW)
require(actor, Function.WATER_SOURCES, Level.VIEW)
can_record = allows(actor, Need(Function.INSPECTIONS, Level.EDIT))
st.title("水利点検")
st.caption(
    "点検の期限が近い順（期限切れが先）に並びます。行を選ぶと点検履歴を表示し、"
    + ("点検を記録できます。" if can_record else "記録には水利点検の編集権限が必要です。")
)
if notice := st.session_state.pop(forms.NOTICE, None):
    st.success(notice)

try:
    every = water_sources.list_water_sources(actor)
except ServiceError as exc:
    show_error(exc)
    st.stop()
cols = st.columns([2, 3])
due = cols[0].radio("点検の期限", list(DUE), horizontal=True, key="insp_due")
units = cols[1].multiselect(
    "担当分団",
    sorted({s.unit for s in every if s.unit}),
    placeholder="すべて",
    select_all=False,
    key="insp_units",
)
today = water_sources.today_jst()
shown = [s for s in every if not units or s.unit in units]  # one registry read per run


def days_left(due_on: date | None) -> int | None:
    return None if due_on is None else (due_on - today).days


def wanted(days: int | None, overdue: bool) -> bool:
    if DUE[due] == "overdue":
        return overdue
    if DUE[due] == "soon":
        return overdue or (days is not None and days <= SOON_DAYS)
    return True


shown = sorted(
    (s for s in shown if wanted(days_left(s.next_inspection_due), s.overdue)),
    key=lambda s: (not s.overdue, s.next_inspection_due or date.max, s.code),
)
st.caption(f"{len(shown):,} 件（登録 {len(every):,} 件）")


def state(source) -> str:
    days = days_left(source.next_inspection_due)
    if source.overdue:
        return f"期限切れ（{-days}日超過）" if days is not None else "期限切れ"
    return "" if days is None else f"あと{days}日"


picked = tables.show(
    pd.DataFrame(
        [
            {
                "水利番号": s.code,
                "種別": s.kind,
                "担当分団": s.unit,
                "所在地": s.address,
                "最終点検日": s.last_inspected_on,
                "次回点検期限": s.next_inspection_due,
                "状況": state(s),
            }
            for s in shown
        ]
    ),
    on_select="rerun",
    selection_mode="single-row",
    key=f"insp_table_{due}_{'_'.join(units)}",
    nothing="この条件に当てはまる消防水利はありません。",
)
rows = picked.selection.rows
if rows and rows[0] < len(shown):
    source = shown[rows[0]]
    st.subheader(f"{plain(source.code)}（{plain(source.kind)}）")
    forms.inspections(actor, source, can_record)
