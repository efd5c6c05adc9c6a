"""お知らせ管理 (platform operator): announce maintenance, updates and incidents to every
brigade in advance, and withdraw a notice."""

from __future__ import annotations

from datetime import datetime, time

import pandas as pd
import streamlit as st

from core.timefmt import JST, to_jst, today_jst
from services import notice_mail, notices
from services.errors import ServiceError
from ui import tables
from ui.common import current_actor, show_error

actor = current_actor()
st.title("お知らせ管理")
st.caption(
    "メンテナンスやサービス更新は、事前にここで告知します。開始の7日前から終了まで、"
    "すべての団の画面上部に表示されます。日時は日本時間（JST）で入力します。"
)
if message := st.session_state.pop("notices_message", None):
    st.success(message)
if mailed := st.session_state.pop("notices_mailed", None):
    (st.warning if mailed.failed else st.info)(
        f"メール: {mailed.brigades} 団の管理者へ {mailed.sent} 通を送信しました"
        + (f"（失敗 {mailed.failed} 通）" if mailed.failed else "")
        + (
            f"。メールアドレスのない管理者が {mailed.without_address} 名います。"
            if mailed.without_address
            else "。"
        )
    )
can_mail = notice_mail.mail_available()
MAIL_HELP = (
    "各消防団の管理者（役職・権限の「管理」を持つ在籍中の団員）のうち、"
    "メールアドレスのある方へ1通ずつ送ります。"
    if can_mail
    else "メール送信（SMTP）が設定されていないため使えません。"
)

# A form starts empty again only after it succeeded; a refused one keeps what was typed.
generation = st.session_state.get("notices_forms", 0)
with st.form(f"notice_publish_{generation}"):
    kind = st.selectbox(
        "種類", list(notices.KINDS), format_func=notices.KINDS.get, placeholder="選択してください"
    )
    title = st.text_input("件名 *", max_chars=100)
    body = st.text_area("本文", max_chars=2000)
    c = st.columns(4)
    start_day = c[0].date_input("開始日", value=today_jst(), format="YYYY/MM/DD")
    start_time = c[1].time_input("開始時刻", value=time(22, 0))
    end_day = c[2].date_input("終了日", value=today_jst(), format="YYYY/MM/DD")
    end_time = c[3].time_input("終了時刻", value=time(23, 59))
    by_mail = st.checkbox("メールでも送る", disabled=not can_mail, help=MAIL_HELP)
    publish = st.form_submit_button("告知する", type="primary")


def send_by_mail(notice_id) -> bool:
    """Mail a notice to every brigade's administrators; the counts are shown after the rerun."""
    try:
        with st.spinner("メールを送信しています…"):
            st.session_state["notices_mailed"] = notice_mail.mail_notice(actor, notice_id)
    except ServiceError as exc:
        show_error(exc)
        return False
    return True


if publish:
    try:
        notice_id = notices.publish_notice(
            actor,
            kind=kind,
            title=title,
            body=body,
            starts_at=datetime.combine(start_day, start_time, JST),
            ends_at=datetime.combine(end_day, end_time, JST),
        )
    except ServiceError as exc:
        show_error(exc)
    else:
        st.session_state["notices_message"] = f"「{title}」を告知しました。"
        st.session_state["notices_forms"] = generation + 1
        if not by_mail or send_by_mail(notice_id):
            st.rerun()

st.subheader("これまでのお知らせ")
listed = notices.all_notices(actor)
tables.show(
    pd.DataFrame(
        [
            {
                "種類": n.kind_label,
                "件名": n.title,
                "開始 (JST)": to_jst(n.starts_at),
                "終了 (JST)": to_jst(n.ends_at),
                "状態": "取り下げ" if n.withdrawn else "掲載中",
            }
            for n in listed
        ],
        columns=["種類", "件名", "開始 (JST)", "終了 (JST)", "状態"],
    ),
    hide_index=True,
    width="stretch",
)
live = {f"{to_jst(n.starts_at)} {n.title}": n.id for n in listed if not n.withdrawn}
if live:
    with st.form(f"notice_withdraw_{generation}"):
        chosen = st.selectbox(
            "取り下げるお知らせ", list(live), index=None, placeholder="選択してください"
        )
        withdraw = st.form_submit_button("取り下げる")
    if withdraw and chosen is not None:
        try:
            notices.withdraw_notice(actor, live[chosen])
        except ServiceError as exc:
            show_error(exc)
        else:
            st.session_state["notices_message"] = "お知らせを取り下げました。"
            st.session_state["notices_forms"] = generation + 1
            st.rerun()
    if can_mail:
        with st.form(f"notice_mail_{generation}"):
            to_mail = st.selectbox(
                "メールで送るお知らせ（掲載中）",
                list(live),
                index=None,
                placeholder="選択してください",
            )
            mail = st.form_submit_button("管理者へメールで送る")
        if mail and to_mail is not None and send_by_mail(live[to_mail]):
            st.session_state["notices_forms"] = generation + 1
            st.rerun()
