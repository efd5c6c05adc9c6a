"""ダッシュボード: members by 分団 and rank, accounts, water sources, 出動統計 and recent events."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core.access import Need, allows
from services import dashboard
from services.catalog import Function, Level
from services.dispatch import statistics
from services.errors import ServiceError
from ui import charts, tables
from ui.common import current_actor, show_error
from ui.incident_history_view import show_statistics
from ui.setup_checklist_view import point_to_setup

actor = current_actor()
st.title("ダッシュボード")
point_to_setup(actor)
st.write(f"ようこそ、{actor.display_name} さん。")

try:
    data = dashboard.load(actor)
except ServiceError as exc:
    show_error(exc)
    st.stop()
for warning in data.selftest_warnings:
    st.warning(warning, icon=":material/warning:")


def chart(counts: list[dashboard.Count], label: str, unit: str, key: str) -> None:
    """A bar chart in the services' order, with its numbers as a table beneath."""
    frame = pd.DataFrame({label: [c.label for c in counts], unit: [c.count for c in counts]})
    if frame.empty:
        st.info("データがありません。")
        return
    charts.bars(frame, x=label, y=unit, horizontal=True)
    tables.show(frame, hide_index=True, key=key)


m = data.members
cols = st.columns(4)
cols[0].metric("在籍", f"{m.active} 名")
cols[1].metric("利用停止中", f"{m.suspended} 名")
cols[2].metric("LINE未連携（在籍）", f"{m.not_linked} 名")
cols[3].metric("退団", f"{m.retired} 名")

left, right = st.columns(2)
with left:
    st.subheader("分団別の団員数")
    st.caption("退団者を除く。所属の「…分団」までで集計します。")
    chart(m.by_unit, "分団", "人数", "units_table")
with right:
    st.subheader("階級別の団員数")
    st.caption("退団者を除く。")
    chart(m.by_rank, "階級", "人数", "ranks_table")

if data.water is not None:
    w = data.water
    st.subheader("消防水利")
    cols = st.columns(2)
    cols[0].metric("登録数", f"{w.total} か所")
    cols[1].metric("点検期限切れ", f"{w.overdue} か所")
    left, right = st.columns(2)
    with left:
        chart(w.by_kind, "種別", "か所", "water_kinds_table")
    with right:
        chart(w.by_status, "状態", "か所", "water_status_table")

if allows(actor, Need(Function.DISPATCH, Level.VIEW)):
    try:
        show_statistics(statistics.dispatch_statistics(actor))
    except ServiceError as exc:
        show_error(exc)

if data.events is not None:
    st.subheader("最近のイベント")
    tables.show(
        pd.DataFrame(
            [
                {
                    "日時 (JST)": e.occurred_at,
                    "区分": e.category,
                    "操作": e.action_label,
                    "結果": e.outcome_label,
                    "対象": e.target,
                }
                for e in data.events
            ],
            columns=["日時 (JST)", "区分", "操作", "結果", "対象"],
        ),
        hide_index=True,
        width="stretch",
        key="events_table",
    )
