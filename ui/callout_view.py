"""The call-out part of an incident on 災害出動: the live tally (出動可 / 遅れて / 不可 / 未回答
per 分団 against the crew minimum), who answered what and when, and for 編集 the call-out,
the widening to more 分団 (応援要請) and answers entered for members reached by telephone
(代理入力). The tally refreshes itself every few seconds without disturbing the rest of the
page."""

from __future__ import annotations

import uuid

import pandas as pd
import streamlit as st

from core.actor import Actor
from core.timefmt import clock_jst, to_jst
from services.catalog import ETA_CHOICES, Answer
from services.dispatch import callout, callout_rules, tally
from services.dispatch.incidents import IncidentView
from services.errors import ServiceError
from ui import tables
from ui.common import run_action, show_error

REFRESH_SECONDS = 5
NO_LINE = (
    "LINE（Messaging API）が設定されていないため、団員には通知されていません。"
    "電話などで確認した回答は「代理入力」で記録できます。"
)


@st.fragment(run_every=REFRESH_SECONDS)
def live_tally(actor: Actor, incident_id: uuid.UUID) -> None:
    try:
        board = tally.tally(actor, incident_id)
    except ServiceError as exc:
        show_error(exc)
        return
    if not board.messaging:
        st.warning(NO_LINE, icon=":material/notifications_off:")
    if not board.lines:
        st.info("この出動ではまだ誰も呼び出していません。")
        return
    totals = board.totals
    cols = st.columns(4)
    for col, (key, text) in zip(
        cols, [(a.value, a.label) for a in Answer] + [("none", "未回答")], strict=True
    ):
        col.metric(text, f"{totals.get(key, 0)}名")
    if board.units:
        tables.show(
            pd.DataFrame(
                [
                    {
                        "分団": u.unit,
                        "出動可": u.counts.get(Answer.AVAILABLE, 0),
                        "遅れて出動": u.counts.get(Answer.LATE, 0),
                        "出動不可": u.counts.get(Answer.UNAVAILABLE, 0),
                        "未回答": u.counts.get("none", 0),
                        "必要人数": u.crew_minimum,
                        "判定": "不足" if u.short else "充足",
                    }
                    for u in board.units
                ]
            ),
            hide_index=True,
            width="stretch",
        )
    tables.show(
        pd.DataFrame(
            [
                {
                    "団員番号": line.member_code,
                    "氏名": line.name,
                    "分団": line.unit,
                    "回答": line.answer_label,
                    "到着見込み（分）": line.eta_minutes,
                    "回答時刻": to_jst(line.answered_at, seconds=True),
                    "経路": {"line": "LINE", "proxy": "代理入力"}.get(line.via, ""),
                    "LINE通知": "済" if line.notified else "なし",
                    "再通知": "済" if line.reminded else "",
                    "既読": f"既読 {clock_jst(line.read_at)}" if line.read_at else "",
                }
                for line in board.lines
            ]
        ),
        hide_index=True,
        width="stretch",
    )
    waves = "、".join(f"{kind} {to_jst(at)}（{n}名）" for kind, at, n in board.waves)
    st.caption(f"送信: {waves}。{REFRESH_SECONDS}秒ごとに自動で更新します。時刻は日本時間。")


def show_callout(actor: Actor, incident: IncidentView, *, can_edit: bool, notice_key: str) -> None:
    st.subheader("出動連絡と回答状況")
    live_tally(actor, incident.id)
    if not can_edit:
        return
    try:  # read once for both forms (the live tally above reads its own on each refresh)
        board = tally.tally(actor, incident.id)
        choices = callout.unit_choices(actor)
        offer = [u for u in callout_rules.widening_offer(actor, incident.id, board) if u in choices]
    except ServiceError as exc:
        show_error(exc)
        return
    left, right = st.columns(2)
    with left.form("callout_units", border=True):
        st.markdown("**分団を呼び出す（応援要請）**")
        if offer:
            st.caption(f"人員不足の分団の隣接分団（応援候補）を選んであります: {'・'.join(offer)}")
        units = st.multiselect(
            "分団",
            choices,
            default=offer,
            placeholder="選択",
            # a new offer (a crew filled or short, a neighbour called) is a new widget
            key=f"callout_units_pick:{incident.id}:{'・'.join(offer)}",
            select_all=False,
        )
        if st.form_submit_button("呼び出す", icon=":material/campaign:"):
            run_action(
                lambda: callout.call_out(actor, incident.id, tuple(units)),
                "呼び出しました（LINEでの送信は数秒以内に行われます）。",
                notice_key=notice_key,
            )
    with right.form("callout_proxy", border=True):
        st.markdown("**代理入力（電話などで確認した回答）**")
        names = {str(line.member_id): f"{line.member_code} {line.name}" for line in board.lines}
        member = st.selectbox(
            "団員",
            list(names),
            format_func=names.get,
            index=None,
            placeholder="選択",
            key="callout_proxy_member",
        )
        answer = st.radio(
            "回答",
            list(Answer),
            format_func=lambda a: a.label,
            horizontal=True,
            key="callout_proxy_answer",
        )
        eta = st.selectbox(
            "到着見込み（分）",
            [None, *ETA_CHOICES],
            format_func=lambda m: "—" if m is None else f"{m}分",
            placeholder="選択してください",
        )
        if st.form_submit_button("記録する", icon=":material/edit_note:"):
            if member is None:
                st.error("団員を選んでください。")
            else:
                run_action(
                    lambda: callout.answer_by_proxy(
                        actor, incident.id, uuid.UUID(member), answer, eta_minutes=eta
                    ),
                    f"{names[member]} の回答を「{answer.label}」で記録しました。",
                    notice_key=notice_key,
                )
