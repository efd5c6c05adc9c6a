"""報告の承認: the 出動報告 waiting for a step the signed-in member may take (出動報告の承認), each
approved or returned for correction with a reason. A 出動報告 管理 holder also sees, apart, the
reports of other 分団 waiting at a 分団内 step (an absent 分団長's)."""

from __future__ import annotations

import streamlit as st

from core.rewards import duration_label
from core.timefmt import to_jst
from services.catalog import Function, Level
from services.errors import ServiceError
from services.reports import approvals, reports
from services.reports.reports import ReportView
from ui.common import current_actor, run_action, show_error
from ui.import_view import require
from ui.report_form import FALSE_ALARM, TURNED_BACK, show_trail, title

NOTICE = "appr_notice"

actor = current_actor()
require(actor, Function.APPROVALS, Level.EDIT)

st.title("報告の承認")
if notice := st.session_state.pop(NOTICE, None):
    st.success(notice)
st.caption("承認の順番が来ている出動報告です。内容を確認して承認するか、理由を書いて差し戻します。")


def decide(view: ReportView, key: str) -> None:
    st.markdown(f"**{view.member_code} {view.member_name}**（{view.affiliation or '所属なし'}）")
    facts = [
        f"区分: {view.category}",
        f"開始: {to_jst(view.started_at)}",
        f"終了: {to_jst(view.ended_at)}",
        f"活動時間: {duration_label(view.minutes or 0)}",
    ]
    facts += [TURNED_BACK] if view.turned_back else []
    facts += [FALSE_ALARM] if view.false_alarm else []
    st.markdown("　".join(facts))
    if view.activity:
        st.markdown(f"活動内容: {view.activity}")
    show_trail(view)
    with st.form(key):
        comment = st.text_input(
            "コメント（差し戻すときは理由を必ず入力）", max_chars=approvals.MAX_COMMENT_CHARS
        )
        cols = st.columns(2)
        approve = cols[0].form_submit_button("承認する", type="primary")
        send_back = cols[1].form_submit_button("差し戻す")
    if approve:
        run_action(
            lambda: approvals.approve(
                actor, view.id, expected_version=view.version, comment=comment
            ),
            lambda final: (
                f"{view.member_code}の報告を承認しました。"
                + ("承認がすべて済みました。" if final else "次の段階に回しました。")
            ),
            notice_key=NOTICE,
        )
    if send_back:
        run_action(
            lambda: approvals.return_report(
                actor, view.id, expected_version=view.version, reason=comment
            ),
            f"{view.member_code}の報告を差し戻しました。",
            notice_key=NOTICE,
        )


try:
    waiting = reports.pending_approval(actor)
    others = reports.pending_approval(actor, overrides=True)
except ServiceError as exc:
    show_error(exc)
    st.stop()

if not waiting:
    st.info("承認の順番が来ている報告はありません。")
for view in waiting:
    with st.expander(f"{title(view)}　{view.member_code}", expanded=len(waiting) <= 3):
        decide(view, f"appr_{view.id}")
if others:
    st.subheader(f"他の分団の承認待ち（{len(others)}件）")
    st.caption("出動報告の管理権限で、分団内の段階を代わりに承認できます。")
    for view in others:
        with st.expander(f"{title(view)}　{view.member_code}（{view.waiting_for}）"):
            decide(view, f"appr_o_{view.id}")
