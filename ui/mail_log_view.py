"""The メール受信ログ view of the イベントログ page: every received dispatch mail and what became
of it. Senders and subjects are in the table for イベントログ 管理 only (the service leaves them
empty for others), and so is a mail's raw text; the service records every raw viewing, so it is
fetched only when 「原文を表示」 is pressed, and kept in the session for the download."""

from __future__ import annotations

import uuid

import pandas as pd
import streamlit as st

from core.actor import Actor
from core.timefmt import to_jst
from formats.dispatch_mail import DecodeStatus
from services import event_log
from services.catalog import MailStatus
from services.dispatch import mail_log
from services.dispatch.mail_log import MailLogRow
from services.errors import ServiceError
from ui import tables
from ui.common import show_error
from ui.profile_preview import problem_lines

RAW = "mlog_raw"
LIMIT = 500
COLUMNS = [
    "受信日時",
    "送信元設定",
    "状態",
    "Message-ID",
    "Date",
    "サイズ",
    "SHA-256",
    "DKIM",
    "文字コード",
    "解析",
    "事案番号",
    "問題",
]
PERSONAL_COLUMNS = ["エンベロープ送信者", "宛先", "差出人（From）", "件名"]


def _decode_label(value: str) -> str:
    return DecodeStatus(value).label if value in set(DecodeStatus) else value or "—"


def _record(row: MailLogRow, personal: bool) -> dict[str, object]:
    record: dict[str, object] = {
        "受信日時": to_jst(row.received_at, seconds=True),
        "送信元設定": row.source,
        "状態": row.status.label,
        "Message-ID": row.message_id,
        "Date": to_jst(row.mail_date, seconds=True),
        "サイズ": f"{row.size:,} B",
        "SHA-256": row.sha256,
        "DKIM": row.dkim or "—",
        "文字コード": _decode_label(row.decode_status),
        "解析": row.parse_label,
        "事案番号": "" if row.incident_number is None else f"第{row.incident_number}号",
        "問題": " / ".join(row.problems),
    }
    if personal:
        record.update(
            zip(
                PERSONAL_COLUMNS,
                (row.envelope_from, row.rcpt, row.header_from, row.subject),
                strict=True,
            )
        )
    return record


def show(actor: Actor, *, is_admin: bool) -> None:
    cols = st.columns([2, 3])
    quick = cols[0].selectbox(
        "期間", event_log.QUICK_RANGES, index=2, key="mlog_quick", placeholder="選択してください"
    )
    statuses = cols[1].multiselect(
        "状態",
        list(MailStatus),
        format_func=lambda s: MailStatus(s).label,
        key="mlog_status",
        placeholder="すべて",
        select_all=False,
    )
    since, until = event_log.jst_period(*event_log.quick_range(quick))
    try:
        rows = mail_log.list_mail(
            actor, since=since, until=until, statuses=tuple(statuses), limit=LIMIT
        )
    except ServiceError as exc:
        show_error(exc)
        return
    st.caption(
        f"{len(rows)}件（新しい順・最大{LIMIT}件）。時刻は日本時間（JST）。"
        if rows
        else "条件に合う受信メールはありません。"
    )
    tables.show(
        pd.DataFrame(
            [_record(r, is_admin) for r in rows],
            columns=COLUMNS + PERSONAL_COLUMNS if is_admin else COLUMNS,
        ),
        hide_index=True,
        width="stretch",
    )
    if not is_admin:
        st.caption("送信者・件名・原文の表示には、イベントログの管理権限が必要です。")
        return
    _raw_view(actor, rows)


def _raw_view(actor: Actor, rows: list[MailLogRow]) -> None:
    kept = {str(r.id): r for r in rows if r.raw_kept}
    picked = st.selectbox(
        "原文を表示するメール",
        list(kept),
        format_func=lambda key: (
            f"{to_jst(kept[key].received_at, seconds=True)}　"
            f"{kept[key].status.label}　{kept[key].message_id or kept[key].sha256[:16]}"
        ),
        index=None,
        placeholder="選択（保存期間内のメールのみ）",
        key="mlog_pick",
    )
    if picked is None:
        return
    if st.button("原文を表示", icon=":material/mail:", key="mlog_show"):
        try:
            st.session_state[RAW] = (picked, mail_log.raw_mail(actor, uuid.UUID(picked)))
        except ServiceError as exc:
            show_error(exc)
            return
    shown = st.session_state.get(RAW)
    if shown is None or shown[0] != picked:
        st.caption("原文の表示は、イベントログに記録されます。")
        return
    raw = shown[1]
    mail = raw.decoded
    st.text(
        f"差出人: {mail.from_name} <{mail.header_from}>"
        if mail.from_name
        else f"差出人: {mail.header_from}"
    )
    st.text(f"件名: {mail.subject}")
    st.text(
        f"文字コード: {mail.charset_declared or '宣言なし'} → {mail.charset_used or '—'}（{mail.decode_status.label}）"
    )
    problem_lines(mail.problems)
    st.code(mail.body or "（本文なし）", language=None)
    st.download_button(
        "原文（.eml）をダウンロード",
        data=raw.raw,
        file_name=f"mail_{kept[picked].sha256[:12]}.eml",
        mime="message/rfc822",
        icon=":material/download:",
        on_click="ignore",
        key="mlog_download",
    )
