"""アカウント管理: LINE registration codes (issue, reissue, printable sheet, 一括発行), unlinking,
and suspending / reactivating a member's access."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core.access import Need, allows
from core.timefmt import to_jst
from formats.registration_sheet import registration_sheet_html
from services import members, registrations
from services.catalog import Function, Level, MemberStatus
from services.errors import ServiceError
from services.signin import line
from ui import tables
from ui.common import current_actor, run_action, show_error
from ui.confirm import SELF_ACTION, Confirmation, confirm_button, named
from ui.pickers import member_picker, next_round
from ui.registration_batch_view import batch_section, sheet_address

ISSUED_KEY = "accounts_issued"
NOTICE_KEY = "accounts_notice"
PAGE = "accounts"

actor = current_actor()
st.title("アカウント管理")
st.caption(
    "団員がLINEで利用するための登録コードの発行、LINE連携の解除、利用停止・再開を行います。"
    "退団の手続きは団員名簿で行います。"
)

if notice := st.session_state.pop(NOTICE_KEY, None):
    st.success(notice)

if issued := st.session_state.get(ISSUED_KEY):
    with st.container(border=True):
        again = "（再発行）" if issued.reissued else ""
        st.markdown(f"**{issued.member_name} さん（{issued.member_code}）の登録コード{again}**")
        st.warning(
            "登録コードはこの画面でのみ表示します。閉じる前に登録用紙をダウンロードしてください。"
        )
        cols = st.columns(3)
        cols[0].metric("ユーザID", issued.user_id)
        cols[1].metric("登録コード", issued.code)
        cols[2].metric("有効期限", to_jst(issued.expires_at))
        st.download_button(
            "登録用紙をダウンロード（A4・印刷用）",
            data=registration_sheet_html(
                brigade=issued.tenant_name,
                member_name=issued.member_name,
                member_code=issued.member_code,
                affiliation=issued.affiliation,
                user_id=issued.user_id,
                code=issued.code,
                url=issued.url,
                expires_at=issued.expires_at,
            ),
            file_name=f"line-registration-{issued.member_code}.html",
            mime="text/html",
            icon=":material/print:",
        )
        if st.button("表示を閉じる"):
            st.session_state.pop(ISSUED_KEY, None)
            st.rerun()

try:
    accounts = registrations.list_accounts(actor)
except ServiceError as exc:
    show_error(exc)
    st.stop()

tables.show(
    pd.DataFrame(
        [
            {
                "団員番号": a.member_code,
                "氏名": a.name,
                "階級": a.rank_name,
                "状態": a.status_label,
                "LINE連携": "連携済み" if a.line_linked else "未連携",
                "出動連絡（公式アカウント）": a.friend_label,
                "登録コード": a.registration_label,
                "ユーザID": a.user_id,
                "コード有効期限 (JST)": to_jst(a.expires_at) if a.registration == "issued" else "",
                "ログイン中": a.open_sessions,
            }
            for a in accounts
        ],
        columns=[
            "団員番号",
            "氏名",
            "階級",
            "状態",
            "LINE連携",
            "出動連絡（公式アカウント）",
            "登録コード",
            "ユーザID",
            "コード有効期限 (JST)",
            "ログイン中",
        ],
    ),
    hide_index=True,
    width="stretch",
)
st.caption(
    "出動連絡（公式アカウント）: 「友だち」はLINEで出動連絡が届きます。"
    "「ブロック中」「未追加またはブロック」の団員には届きません"
    "（出動の回答状況では未回答として表示され、電話での確認と代理入力が必要です）。"
    "公式アカウントの友だち追加またはブロック解除を団員に依頼してください。"
    "「不明」は友だち追加・ブロックの通知がまだなく、LINEでのログイン時の確認もまだの状態です。"
)

if not accounts or not allows(actor, Need(Function.MEMBER_ACCOUNTS, Level.EDIT)):
    st.stop()

line_ready = line.is_configured()
if line_ready:
    sheet_address()
    batch_section(actor, notice_key=NOTICE_KEY)
else:
    st.warning(registrations.LINE_NOT_CONFIGURED)

st.subheader("個別の操作")
by_id = {a.member_id: a for a in accounts}
member_id = member_picker(
    st,
    "団員",
    list(by_id),
    page=PAGE,
    format_func=lambda i: f"{by_id[i].member_code} {by_id[i].name}（{by_id[i].status_label}）",
)
if member_id is None:
    st.stop()
account = by_id[member_id]
active = account.status == MemberStatus.ACTIVE
is_self = account.member_id == actor.member_id
who = named(account.name, account.member_code)
start_over = next_round(PAGE)
if is_self:
    st.info(SELF_ACTION)
cols = st.columns(3)


def run(action, done: str) -> None:
    def keep_issued(result: object) -> None:
        if isinstance(result, registrations.IssuedRegistration):
            st.session_state[ISSUED_KEY] = result
        start_over(result)

    run_action(
        lambda: action(actor, account.member_id), done, notice_key=NOTICE_KEY, then=keep_issued
    )


def question(action, message: str, done: str) -> Confirmation:
    return Confirmation(
        message=message,
        action=lambda: action(actor, account.member_id),
        notice=done,
        notice_key=NOTICE_KEY,
        then=start_over,
    )


if account.line_linked:
    if not is_self:
        unlink = question(
            registrations.unlink_line,
            f"{who}のLINE連携を解除します。よろしいですか？",
            f"{account.name} さんのLINE連携を解除しました。",
        )
        confirm_button(cols[0], "LINE連携を解除", unlink, key="accounts_unlink")
elif active and line_ready:
    label = "登録コードを発行" if account.registration == "none" else "登録コードを再発行"
    if cols[0].button(label, type="primary"):
        run(registrations.issue_registration, f"{account.name} さんの登録コードを発行しました。")
if active and not is_self:
    suspend = question(
        members.suspend_member,
        f"{who}を利用停止にします。よろしいですか？",
        f"{account.name} さんを利用停止にしました。",
    )
    confirm_button(cols[1], "利用停止", suspend, key="accounts_suspend")
elif account.status == MemberStatus.SUSPENDED and cols[1].button("利用再開"):
    run(members.reactivate_member, f"{account.name} さんの利用を再開しました。")
