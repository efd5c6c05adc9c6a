"""出動報告の設定 (#22): the brigade's 出動報酬 table, shown in plain Japanese and edited from
the saved table or a municipal preset, with a 試算 of one activity; then the approval chain.
出動報告 管理 only."""

from __future__ import annotations

import streamlit as st

from services.catalog import Function, Level
from services.errors import ServiceError
from services.reports import rewards
from ui.approval_chain_view import show_chain_editor
from ui.common import current_actor, show_error
from ui.import_view import require
from ui.reward_table_view import reward_table_editor, show_saved_table

NOTICE = "rs_notice"

actor = current_actor()
require(actor, Function.REPORTS, Level.ADMIN)
st.title("出動報告の設定")
st.caption(
    "出動報酬の計算に使う表（区分ごとの時間帯と金額、時間単価と1日の上限、同日の扱い）を"
    "設定します。承認された出動報告の報酬は、この表で計算します。"
)
if notice := st.session_state.pop(NOTICE, None):
    st.success(notice)

try:
    table, version = rewards.get_reward_table(actor)
except ServiceError as exc:
    show_error(exc)
    st.stop()
show_saved_table(table)
with st.expander("出動報酬の表を編集・試算する", icon=":material/edit:", expanded=table is None):
    reward_table_editor(actor, table, version, notice_key=NOTICE)
st.divider()
show_chain_editor(actor, notice_key=NOTICE)
