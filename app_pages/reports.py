"""出動報告: one's own reports (asked for after a turn-out, or any activity: 訓練, 警戒 …), entered
and submitted for approval; for 出動報告 編集, every member's reports and entry for a member
(代理入力); for 管理, the month's export of approved reports with their 出動報酬.

Opened from the LINE request with ?incident=<id>: that incident's report comes first."""

from __future__ import annotations

import streamlit as st

from core.access import Need, allows
from core.timefmt import today_jst
from services.catalog import Function, Level, ReportStatus
from services.errors import ServiceError
from services.reports import inspections, reports
from ui import tables
from ui.common import current_actor, run_action, show_error
from ui.import_view import require
from ui.report_export_view import show_month_export
from ui.report_form import report_form, reports_table, show_trail, status_text, title

NOTICE = "rep_notice"

actor = current_actor()
require(actor, Function.REPORTS, Level.VIEW)
others = allows(actor, Need(Function.REPORTS, Level.EDIT))
admin = allows(actor, Need(Function.REPORTS, Level.ADMIN))

st.title("出動報告")
if notice := st.session_state.pop(NOTICE, None):
    st.success(notice)
linked = st.query_params.get("incident")

try:
    mine = reports.my_reports(actor)
    categories = reports.categories(actor)
except ServiceError as exc:
    show_error(exc)
    st.stop()

tabs = st.tabs(
    ["自分の報告"] + (["団員の報告"] if others else []) + (["月次出力"] if admin else [])
)
with tabs[0]:
    todo = [v for v in mine if v.editable]
    todo.sort(key=lambda v: str(v.incident_id) != linked)  # the linked incident's first
    if todo:
        st.subheader(f"入力が必要な報告（{len(todo)}件）")
        st.caption("時刻は日本時間です。提出すると承認の順に回ります。")
    for view in todo:
        with st.expander(title(view), expanded=view is todo[0]):
            report_form(actor, view, categories, key=f"rep_{view.id}", notice_key=NOTICE)
            show_trail(view)
    with st.expander("出動以外の活動を報告する（訓練・警戒・広報など）", icon=":material/add:"):
        report_form(actor, None, categories, key="rep_new", notice_key=NOTICE)
    if checks := inspections.unreported_inspections(actor):
        with st.expander(
            f"記録済みの水利点検を報告する（{len(checks)}件）", icon=":material/water_drop:"
        ):
            check = st.selectbox(
                "水利点検",
                checks,
                format_func=lambda c: c.label,
                key="rep_insp",
                placeholder="選択してください",
            )
            if st.button("この点検の報告を作る", key="rep_insp_go"):
                run_action(
                    lambda: inspections.report_from_inspection(actor, check.id),
                    "報告を作りました。開始・終了の時刻を入力して提出してください。",
                    notice_key=NOTICE,
                )
    done = [v for v in mine if not v.editable]
    st.subheader("提出した報告")
    if done:
        tables.show(reports_table(done, with_member=False), hide_index=True, width="stretch")
        picked = st.selectbox(
            "経過を見る報告",
            done,
            index=None,
            format_func=title,
            placeholder="選択",
            key="rep_trail",
        )
        if picked is not None:
            st.markdown(f"**{status_text(picked)}**")
            show_trail(reports.get_report(actor, picked.id))
    else:
        st.info("提出した報告はまだありません。")

if others:
    with tabs[1]:
        cols = st.columns(2)
        month = cols[0].date_input("月（その月の開始日の報告）", value=today_jst(), key="rep_month")
        statuses = {s.label: s for s in ReportStatus}
        status = cols[1].selectbox("状態", list(statuses), index=None, placeholder="すべて")
        views = reports.list_reports(actor, month=month, status=statuses.get(status or ""))
        if views:
            tables.show(reports_table(views, with_member=True), hide_index=True, width="stretch")
        else:
            st.info("この条件の報告はありません。")
        with st.expander("団員の代わりに報告を入力する（代理入力）", icon=":material/edit_note:"):
            people = reports.reporters(actor)
            who = st.selectbox(
                "団員",
                people,
                index=None,
                format_func=lambda p: p.label,
                placeholder="選択",
                key="rep_for",
            )
            if who is not None:
                report_form(
                    actor, None, categories, key="rep_proxy", notice_key=NOTICE, member_id=who.id
                )

if admin:
    with tabs[-1]:
        show_month_export(actor)
