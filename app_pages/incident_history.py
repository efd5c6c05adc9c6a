"""出動履歴: the incidents that have ended (鎮火・誤報・取消・終了), filtered by period, kind and
分団, and for one of them what happened when: mails, the call-out and LINE's acceptance,
answers, follow-ups and the close, with the measured delays and the answers at 1, 3 and 5
minutes. Read only; the services check the permission again."""

from __future__ import annotations

import uuid

import streamlit as st

from services.catalog import Function, Level
from services.dispatch import history
from services.errors import ServiceError
from ui import tables
from ui.common import current_actor, show_error
from ui.import_view import require
from ui.incident_history_view import history_table, row_label, show_timeline

actor = current_actor()
require(actor, Function.DISPATCH, Level.VIEW)
st.title("出動履歴")

try:
    kinds, units = history.filter_choices(actor)
except ServiceError as exc:
    show_error(exc)
    st.stop()

cols = st.columns(4)
since = cols[0].date_input("期間（開始日）", value=None, format="YYYY/MM/DD", key="hist_since")
until = cols[1].date_input("期間（終了日）", value=None, format="YYYY/MM/DD", key="hist_until")
kind = cols[2].selectbox("災害種別", kinds, index=None, placeholder="すべて", key="hist_kind")
unit = cols[3].selectbox("分団", units, index=None, placeholder="すべて", key="hist_unit")

try:
    found = history.closed_incidents(actor, since=since, until=until, kind=kind, unit=unit)
except ServiceError as exc:
    show_error(exc)
    st.stop()
if not found.rows:
    st.info("条件に合う終わった出動はありません。")
    st.stop()
tables.show(history_table(found.rows), hide_index=True, width="stretch", key="hist_table")
shown = f"{len(found.rows)}件"
if found.more:
    shown = f"新しい順に{shown}を表示しています。ほかにもあります。期間などで絞り込んでください。"
st.caption(f"{shown}　時刻は日本時間（JST）。回答数は各団員の最新の回答です。")

labels = {str(r.id): row_label(r) for r in found.rows}
picked = st.selectbox(
    "経過を表示する出動",
    list(labels),
    format_func=lambda key: labels.get(key, key),
    index=None,
    placeholder="選択",
    key="hist_pick",
)
if picked is None:
    st.stop()
try:
    line = history.timeline(actor, uuid.UUID(picked))
except ServiceError as exc:
    show_error(exc)
    st.stop()
st.divider()
show_timeline(line)
