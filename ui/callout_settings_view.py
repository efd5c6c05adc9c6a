"""出動連絡の設定 on 出動メール設定: the brigade's call-out rules, and this month's LINE messages
used against the channel's allowance (each recipient of a message counts)."""

from __future__ import annotations

import uuid

import streamlit as st

from core.actor import Actor
from services.dispatch import callout_settings, callout_test
from services.dispatch.callout_settings import NO_UNITS
from services.errors import ServiceError
from ui.common import run_action, show_error


def callout_settings_form(actor: Actor, *, notice_key: str) -> None:
    st.subheader("出動連絡の設定（LINE）")
    try:
        rules = callout_settings.get_rules(actor)
        quota = callout_settings.quota(actor)
    except ServiceError as exc:
        show_error(exc)
        return
    if quota is None:
        st.warning(
            "LINE（Messaging API）が設定されていないため、出動連絡は団員に送信されません。",
            icon=":material/notifications_off:",
        )
    else:
        limit = "上限なし" if quota.limit is None else f"{quota.limit:,}通"
        st.metric(
            "今月のLINE送信数（受信者1人につき1通）", f"{quota.used:,}通", help=f"上限: {limit}"
        )
    positions = [p for p, _ in rules.ranks]
    with st.form("callout_rules"):
        auto = st.checkbox("出動指令メールを受けたら自動で呼び出す", value=rules.auto_callout)
        minutes = st.number_input(
            "再通知までの時間（分）", 1, 60, rules.reminder_minutes, help="未回答の人への再通知"
        )
        crew = st.number_input("分団ごとの必要人数（出動可＋遅れて）", 1, 20, rules.crew_minimum)
        leader = st.selectbox(
            "この階級以上を幹部として常に呼び出す",
            positions,
            index=positions.index(rules.leader_rank_position)
            if rules.leader_rank_position in positions
            else 0,
            format_func=dict(rules.ranks).get,
            placeholder="選択してください",
        )
        no_units = st.radio(
            "メールに分団の記載がないとき",
            list(NO_UNITS),
            index=list(NO_UNITS).index(rules.no_units_target),
            format_func=NO_UNITS.get,
            horizontal=True,
        )
        if st.form_submit_button("保存", type="primary"):
            run_action(
                lambda: callout_settings.update_rules(
                    actor,
                    auto_callout=auto,
                    reminder_minutes=int(minutes),
                    crew_minimum=int(crew),
                    leader_rank_position=leader,
                    no_units_target=no_units,
                    expected_version=rules.version,
                ),
                "出動連絡の設定を保存しました。",
                notice_key=notice_key,
            )


def test_callout_form(actor: Actor, *, notice_key: str) -> None:
    """テスト送信: a test incident called out to the chosen members (default: oneself)."""
    st.markdown("**テスト送信**")
    st.caption(
        "「【テスト】」と示した出動連絡を選んだ団員だけに送ります。ボタンの回答は"
        "テスト用の出動（災害出動の一覧）で確認できます。"
    )
    try:
        people = callout_test.test_recipients(actor)
    except ServiceError as exc:
        show_error(exc)
        return
    labels = {
        str(p.member_id): f"{p.member_code} {p.name}" + ("" if p.reachable else "（LINE未連携）")
        for p in people
    }
    own = [str(actor.member_id)] if str(actor.member_id) in labels else []
    chosen = st.multiselect(
        "送信先",
        list(labels),
        default=own,
        format_func=labels.get,
        placeholder="選択",
        key="callout_test_to",
        select_all=False,
    )
    if st.button("テスト送信する", icon=":material/send:", key="callout_test_send"):
        run_action(
            lambda: callout_test.send_test(actor, tuple(uuid.UUID(m) for m in chosen)),
            f"テスト送信を登録しました（{len(chosen)}名）。LINEでの送信は数秒以内に行われます。",
            notice_key=notice_key,
        )
