"""災害出動: the brigade's incidents, made from dispatch mail or entered by hand, newest first.

An incident marked 要確認 (a mail the intake could not read in full) is put in front of every
reader with its reasons before anything else: the brigade's leaders must see it. 編集 moves an
incident through its stages (誤報・取消・終了 only after a question), confirms a 要確認 one and
enters one by hand; the services check every action again."""

from __future__ import annotations

import uuid

import streamlit as st

from core.access import Need, allows
from services.catalog import Function, IncidentStatus, Level
from services.dispatch import incidents
from services.dispatch.incidents import IncidentView
from services.errors import ServiceError
from ui import tables
from ui.callout_view import show_callout
from ui.common import current_actor, run_action, show_error
from ui.confirm import Confirmation, confirm_button
from ui.import_view import require
from ui.incident_map_view import show_incident_map
from ui.incident_view import (
    incident_table,
    label,
    manual_entry,
    number,
    review_warning,
    show_incident,
)

NOTICE, PICK, PICK_NEXT = "inc_notice", "inc_pick", "inc_pick_next"
REVIEWS_SHOWN = 5
S = IncidentStatus
# Ends that cannot be undone ask first: after 誤報 or 取消 only 終了 is left, after 終了 nothing.
ENDED = "まだ送信していない出動連絡と再通知は送られません。出動可・遅れて出動と回答した人にはLINEで知らせます（LINE設定時）。"
ASK = {
    S.FALSE_ALARM: "この後は「終了」以外に変更できません。" + ENDED,
    S.CANCELLED: "この後は「終了」以外に変更できません。" + ENDED,
    S.CLOSED: "終了した出動は、状態を変更できなくなります。",
}

actor = current_actor()
require(actor, Function.DISPATCH, Level.VIEW)
can_edit = allows(actor, Need(Function.DISPATCH, Level.EDIT))
state = st.session_state
# A widget's value may be set only before it is drawn: a new incident is picked on the next run.
# The link in a LINE call-out opens the page with ?incident=<id>.
if linked := st.query_params.get("incident"):
    state.setdefault(PICK_NEXT, linked)
    del st.query_params["incident"]
if PICK_NEXT in state:
    state[PICK] = state.pop(PICK_NEXT)

st.title("災害出動")
if notice := state.pop(NOTICE, None):
    st.success(notice)

try:
    open_rows = incidents.list_incidents(actor, open_only=True)
except ServiceError as exc:
    show_error(exc)
    st.stop()
reviews = [i for i in open_rows if i.needs_review]
cols = st.columns(3)
cols[0].metric("対応中", f"{len(open_rows)}件")
cols[1].metric("要確認（対応中）", f"{len(reviews)}件")
if reviews:
    st.error(
        f"要確認の出動が {len(reviews)}件あります。内容を確認してください。",
        icon=":material/priority_high:",
    )
    for incident in reviews[:REVIEWS_SHOWN]:
        review_warning(incident)
    if len(reviews) > REVIEWS_SHOWN:
        st.caption(f"ほかに {len(reviews) - REVIEWS_SHOWN}件あります（一覧の「要確認」列）。")

if can_edit:
    with st.expander("手入力で登録", icon=":material/edit_note:"):
        st.caption("電話で受けた出動など、メールが届かないものを登録します。")
        manual_entry(
            actor,
            notice_key=NOTICE,
            then=lambda incident: state.update({PICK_NEXT: str(incident.id)}),
        )

open_only = st.toggle("対応中のみ", key="inc_open_only")
rows = open_rows if open_only else incidents.list_incidents(actor)
if not rows:
    st.info("対応中の出動はありません。" if open_only else "出動の記録はありません。")
    st.stop()
tables.show(incident_table(rows), hide_index=True, width="stretch")
st.caption("時刻は日本時間（JST）。覚知は本部の記載、受信はこのシステムがメールを受けた時刻です。")

labels = {str(i.id): label(i) for i in rows}
if state.get(PICK) not in labels:  # a link to an incident not listed here (or not ours)
    state.pop(PICK, None)
picked = st.selectbox(
    "詳細を表示する出動",
    list(labels),
    format_func=lambda key: labels.get(key, key),
    index=None,
    placeholder="選択",
    key=PICK,
)
if picked is None:
    st.stop()
try:
    incident, entries = incidents.get_incident(actor, uuid.UUID(picked))
except ServiceError as exc:
    show_error(exc)
    st.stop()

st.divider()
show_incident(incident, entries)
show_incident_map(actor, incident, can_edit=can_edit, notice_key=NOTICE)
show_callout(actor, incident, can_edit=can_edit, notice_key=NOTICE)
if not can_edit:
    st.stop()


def status_action(current: IncidentView, status: IncidentStatus) -> Confirmation:
    return Confirmation(
        message=f"{number(current)}（{current.kind or '種別不明'}）を「{status.label}」にします。",
        details=(ASK.get(status, ""),),
        action=lambda: incidents.set_status(
            actor, current.id, status, expected_version=current.version
        ),
        notice=f"{number(current)}を「{status.label}」にしました。",
        notice_key=NOTICE,
    )


nexts = incidents.next_statuses(incident.status)
if incident.needs_review or nexts:
    st.markdown("**操作**")
buttons = st.columns(max(len(nexts) + 1, 4))
if incident.needs_review and buttons[0].button(
    "確認済みにする", type="primary", icon=":material/task_alt:", key="inc_confirm"
):
    run_action(
        lambda: incidents.confirm_review(actor, incident.id, expected_version=incident.version),
        f"{number(incident)}を確認済みにしました。",
        notice_key=NOTICE,
    )
for col, status in zip(buttons[1:], nexts, strict=False):
    question = status_action(incident, status)
    key = f"inc_status_{status}"
    if status in ASK:
        confirm_button(col, f"{status.label}にする", question, key=key)
    elif col.button(f"{status.label}にする", key=key):
        run_action(question.action, question.notice, notice_key=NOTICE)
