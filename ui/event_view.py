"""The イベントログ page's drawing: a page of events and one opened event, in Japanese (labels
from services.event_labels); details as a 項目/内容 table, never raw JSON."""

from __future__ import annotations

import streamlit as st

from services.event_log import EventDetail, EventRow
from ui import tables
from ui.common import plain

COLUMNS = ["日時(JST)", "種別", "操作", "結果", "実行者", "対象", "接続元", "連番"]
DETAIL_COLUMNS = ["項目", "内容"]


def events_table(events: list[EventRow]) -> None:
    tables.show(
        [
            {
                "日時(JST)": e.occurred_jst,
                "種別": e.category_label,
                "操作": e.action_label,
                "結果": e.outcome_label,
                "実行者": e.actor_display,
                "対象": e.target_display,
                "接続元": e.client_addr,
                "連番": e.seq,
            }
            for e in events
        ],
        columns=COLUMNS,
        nothing="条件に合うイベントはありません。",
    )


def choice_label(e: EventRow) -> str:
    return f"{e.seq}　{e.occurred_jst}　{e.action_label}"


def details_table(rows: list[tuple[str, str]], *, key: str) -> None:
    tables.show(rows, columns=DETAIL_COLUMNS, nothing="記録された項目はありません。", key=key)


def show_detail(detail: EventDetail) -> None:
    e = detail.event
    st.subheader(f"{e.action_label}（{e.category_label}）")
    st.markdown(
        f"- 日時: **{e.occurred_jst}**（JST） / UTC: `{e.occurred_utc}`\n"
        f"- 操作コード: `{e.action}` / 結果: {e.outcome_label}\n"
        f"- 実行者: {plain(e.actor_display)}（種別 {e.actor_type_label or '-'}、"
        f"ID `{e.actor_id or '-'}`）\n"
        f"- 対象: {plain(e.target_display) or '-'}"
        + (f"（対象ID `{e.target_id}`）" if e.target_id else "")
        + "\n"
        f"- リクエストID: `{e.request_id or '-'}` / 接続元: {plain(e.client_addr) or '-'}\n"
        f"- ユーザーエージェント: {plain(e.user_agent) or '-'}"
    )
    st.caption("記録内容（変更前・変更後を含む。個人情報は含みません）")
    details_table(e.detail_rows, key="elog_detail_table")
    if detail.personal is not None:
        st.caption("個人情報を含む詳細（管理権限・この表示も記録されます）")
        details_table(detail.personal_rows, key="elog_personal_table")
    elif detail.personal_hidden:
        st.info("この記録には暗号化された個人情報があります。表示には管理権限が必要です。")
