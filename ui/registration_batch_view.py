"""アカウント管理's 一括発行 (#18): choose 所属 and whether valid codes are replaced, see who gets
a sheet, confirm, and download one printable file with a page per member. Also where the sheets
send members (the configured public URL), since a sheet pointing at this PC helps nobody."""

from __future__ import annotations

import ipaddress
from datetime import datetime
from urllib.parse import urlsplit

import pandas as pd
import streamlit as st

from core.actor import Actor
from core.timefmt import to_jst
from formats.registration_sheet import RegistrationSheet, registration_sheets_html
from services import registration_batch, registrations
from services.errors import ServiceError
from ui import tables
from ui.common import show_error
from ui.confirm import Confirmation, confirm_button

FILE_KEY = "accounts_batch_file"
LOCAL_ONLY = (
    "登録用紙のURLがこのパソコン自身を指しているため、団員のスマートフォンからは開けません。"
    "運営者に、団員が開けるURLを HIKESHI_PUBLIC_BASE_URL に設定するよう依頼してください。"
)


def local_only(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def sheet_address() -> None:
    url = registrations.public_base_url()
    st.caption(f"登録用紙のQRコードとURLの接続先: {url}")
    if local_only(url):
        st.warning(LOCAL_ONLY)


def batch_section(actor: Actor, *, notice_key: str) -> None:
    st.subheader("一括発行")
    st.caption(
        "LINE未連携の団員の登録コードをまとめて発行し、1名1枚の登録用紙を1つのファイルで"
        "ダウンロードします。期限切れ・ロック中・使用済みのコードは新しいコードに替わります。"
    )
    if (file := st.session_state.get(FILE_KEY)) is not None:
        _download(file)
        return
    try:
        units = registration_batch.batch_units(actor)
    except ServiceError as exc:
        show_error(exc)
        return
    chosen = st.multiselect(
        "所属",
        units,
        format_func=lambda unit: unit or registration_batch.NO_UNIT,
        placeholder="すべての所属",
        key="accounts_batch_units",
        select_all=False,
    )
    include_valid = st.checkbox(
        "有効な登録コードを持つ団員にも再発行する（配布済みの用紙のコードは使えなくなります）",
        key="accounts_batch_reissue",
    )
    try:
        plan = registration_batch.plan_batch(actor, units=chosen, include_valid=include_valid)
    except ServiceError as exc:
        show_error(exc)
        return
    st.markdown(f"登録用紙を発行する団員: **{plan.count}名**")
    left_out = [
        (plan.linked, "LINE連携済み"),
        (plan.valid_kept, "有効な登録コードあり（再発行する場合は上のチェックを入れてください）"),
        (plan.not_permitted, "自分より大きい権限を持つ、または役職・権限の管理権限が必要な団員"),
    ]
    for count, reason in left_out:
        if count:
            st.caption(f"対象外 {count}名: {reason}")
    if plan.count > registration_batch.BATCH_LIMIT:
        st.warning(registration_batch.TOO_MANY)
        return
    if not plan.count:
        return
    with st.expander("対象の団員"):
        tables.show(
            pd.DataFrame(
                [
                    {
                        "団員番号": m.member_code,
                        "氏名": m.name,
                        "所属": m.affiliation,
                        "発行": "再発行" if m.reissue else "新規",
                    }
                    for m in plan.members
                ]
            ),
            hide_index=True,
            width="stretch",
        )
    where = "、".join(u or registration_batch.NO_UNIT for u in chosen) or "すべての所属"
    question = Confirmation(
        message=f"{where}の{plan.count}名に登録コードを発行します。よろしいですか？",
        details=("再発行する団員の以前の登録コードは使えなくなります。",),
        action=lambda: registration_batch.issue_batch(
            actor,
            units=chosen,
            include_valid=include_valid,
            expected=[m.member_id for m in plan.members],
        ),
        notice=lambda issued: f"{len(issued)}名の登録コードを発行しました。",
        notice_key=notice_key,
        then=_keep_file,
    )
    confirm_button(st, f"{plan.count}名分を一括発行", question, key="accounts_batch_issue")


def _keep_file(issued: list[registrations.IssuedRegistration]) -> None:
    sheets = [
        RegistrationSheet(
            member_name=i.member_name,
            member_code=i.member_code,
            user_id=i.user_id,
            code=i.code,
            url=i.url,
            expires_at=i.expires_at,
            affiliation=i.affiliation,
        )
        for i in issued
    ]
    st.session_state[FILE_KEY] = (
        registration_sheets_html(issued[0].tenant_name, sheets),
        len(issued),
        max(i.expires_at for i in issued),
    )


def _download(file: tuple[str, int, datetime]) -> None:
    html, count, expires_at = file
    with st.container(border=True):
        st.warning(
            "登録コードはこのファイルにのみ記載されています。閉じる前にダウンロードしてください。"
            "なくしたときは、一括発行で「有効な登録コードを持つ団員にも再発行する」を選んで"
            "発行し直してください。"
        )
        st.markdown(f"**{count}名分の登録用紙**（有効期限 {to_jst(expires_at)}（日本時間）まで）")
        st.download_button(
            "登録用紙をダウンロード（A4・1名1枚・印刷用）",
            data=html,
            file_name="line-registration-sheets.html",
            mime="text/html",
            icon=":material/print:",
        )
        st.caption(
            "ダウンロードしたファイルをブラウザで開き、印刷（Ctrl+P、Macは⌘+P）で"
            "用紙「A4」・向き「縦」を選んで印刷してください。1名分ずつ改ページされます。"
        )
        if st.button("表示を閉じる", key="accounts_batch_close"):
            st.session_state.pop(FILE_KEY, None)
            st.rerun()
