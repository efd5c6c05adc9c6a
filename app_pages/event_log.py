"""イベントログ: the brigade's operation, mail, authentication and external-service events.

閲覧 (EVENT_LOGS view) shows each event's summary and its non-personal before/after; 管理 (admin)
also sees the decrypted personal part (names, mail senders, the before/after of personal fields)
of the one event opened. Viewing the list is logged once per filter combination in a session
(event_log.is_new_view), not per page turn; each opened event, the CSV export and each integrity
check are logged each time. The service is called only when the filters or the page change.
"""

from __future__ import annotations

from datetime import timedelta

import streamlit as st

from core.access import Need, allows
from services import event_labels, event_log
from services.catalog import AuditCategory, Function, Level
from services.errors import ServiceError
from services.event_log import EventFilter
from ui import event_view, mail_log_view
from ui.common import current_actor, plain, show_error

ALL = "すべて"
CUSTOM = "期間を指定"
MAIL_LOG = "メール受信ログ"

actor = current_actor()
is_admin = allows(actor, Need(Function.EVENT_LOGS, Level.ADMIN))
state = st.session_state

st.title("イベントログ")
st.caption(
    "操作・メール受信・認証認可・外部サービス連携の記録です。時刻は日本時間（JST）で表示し、"
    "詳細にはUTCの記録値も示します。ログの閲覧（絞り込み条件ごとに1回）・出力・検証も記録されます。"
    + (
        "管理権限のため、個人情報を含む詳細（氏名・差出人・変更前後の個人情報）も表示できます。"
        if is_admin
        else "個人情報を含む詳細の表示には、イベントログの管理権限が必要です。"
    )
)
# The mail log is its own table (one row per received mail); only the chosen view is read.
if st.radio("表示", ["イベント", MAIL_LOG], horizontal=True, key="elog_view") == MAIL_LOG:
    mail_log_view.show(actor, is_admin=is_admin)
    st.stop()

try:
    actor_ids = {o.label: o.actor_id for o in event_log.actor_options(actor)}
    action_names = event_log.known_actions(actor)
except ServiceError as exc:
    show_error(exc)
    st.stop()
categories = {c.label: str(c) for c in AuditCategory}

cols = st.columns([2, 3, 2, 2])
quick = cols[0].selectbox(
    "期間",
    [*event_log.QUICK_RANGES, CUSTOM],
    index=2,
    key="elog_quick",
    placeholder="選択してください",
)
if quick == CUSTOM:
    today = event_log.jst_today()
    picked = cols[1].date_input(
        "期間（日本時間・開始日〜終了日）",
        (today - timedelta(days=6), today),
        format="YYYY/MM/DD",
        key="elog_dates",
    )
    first, last = (*picked, None, None)[:2] if picked else (None, None)
    last = last or first
else:
    first, last = event_log.quick_range(quick)
    cols[1].text_input(
        "期間（日本時間）",
        f"{first:%Y/%m/%d} 〜 {last:%Y/%m/%d}" if first else "全期間",
        disabled=True,
    )
chosen_categories = cols[2].multiselect(
    "種別", list(categories), key="elog_cat", placeholder=ALL, select_all=False
)
chosen_actor = cols[3].selectbox(
    "実行者", [ALL, *actor_ids], key="elog_actor", placeholder="選択してください"
)
cols = st.columns([3, 2, 3])
chosen_actions = cols[0].multiselect(
    "操作",
    action_names,
    format_func=event_labels.action_label,
    key="elog_actions",
    placeholder=ALL,
    select_all=False,
)
target_id = cols[1].text_input("対象ID", key="elog_target")
text = cols[2].text_input(
    "キーワード（操作・対象・実行者ラベル・詳細・リクエストID）", key="elog_text"
)

start, end = event_log.jst_period(first, last)
filters = EventFilter(
    start=start,
    end=end,
    categories=tuple(categories[c] for c in chosen_categories),
    actor_id=actor_ids.get(chosen_actor, ""),
    actions=tuple(chosen_actions),
    target_id=target_id.strip(),
    text=text,
)

if state.get("elog_filters") != filters:
    state["elog_filters"], state["elog_cursors"] = filters, [None]
cursors = state["elog_cursors"]


def load_page() -> event_log.EventPage:
    """The current page, read only when the filters or the page changed, and recorded as a view
    only the first time this session reads these filters."""
    key = (filters, cursors[-1])
    if state.get("elog_page_key") != key:
        viewed = state.setdefault("elog_viewed", [])
        new = event_log.is_new_view(viewed, filters)
        state["elog_page"] = event_log.query_events(
            actor, filters, cursor=cursors[-1], record_view=new
        )
        state["elog_page_key"] = key
        if new:
            viewed.append(filters)
    return state["elog_page"]


try:
    page = load_page()
except ServiceError as exc:
    show_error(exc)
    st.stop()


def reload() -> None:
    state.pop("elog_page_key", None)
    state["elog_cursors"] = [None]


def newer() -> None:
    cursors.pop()


def older() -> None:
    cursors.append(page.next_cursor)


number = len(cursors)
if page.events:
    st.caption(
        f"{number}ページ目（新しい順・{event_log.PAGE_SIZE}件ずつ）: {len(page.events)}件を表示"
    )
event_view.events_table(page.events)  # or one line: 条件に合うイベントはありません。
buttons = st.columns(4)
buttons[0].button("新しい方へ", icon=":material/arrow_back:", disabled=number == 1, on_click=newer)
buttons[1].button(
    "古い方へ", icon=":material/arrow_forward:", disabled=page.next_cursor is None, on_click=older
)
buttons[2].button("最新の状態に更新", icon=":material/refresh:", on_click=reload)
buttons[3].download_button(
    "CSVを出力",
    data=lambda: event_log.export_events(actor, filters).data,
    file_name=f"event_log_{event_log.jst_today():%Y%m%d}.csv",
    mime="text/csv",
    icon=":material/download:",
    help="絞り込んだイベントを出力します（個人情報の部分は含みません）。",
)

st.divider()
by_label = {event_view.choice_label(e): e.seq for e in page.events}
choice = st.selectbox("詳細を表示するイベント", list(by_label), index=None, placeholder="選択")
if choice is not None:
    seq = by_label[choice]
    if state.get("elog_detail_seq") != seq:
        state["elog_detail"], state["elog_detail_seq"] = event_log.get_event(actor, seq), seq
    detail = state["elog_detail"]
    event_view.show_detail(detail)
    e = detail.event
    if e.request_id:
        st.button(
            "同じリクエストのイベントを表示",
            on_click=lambda rid=e.request_id: state.update(elog_text=rid, elog_quick=ALL),
        )
    if e.target_id:
        st.button(
            "同じ対象のイベントを表示",
            on_click=lambda tid=e.target_id: state.update(elog_target=tid, elog_quick=ALL),
        )

st.divider()
with st.expander("改ざん検証（ハッシュチェーン）", icon=":material/verified_user:"):
    scope = st.radio("検証の範囲", ["記録全体", "選択中の期間"], horizontal=True, key="elog_scope")
    if st.button("検証する", key="elog_verify"):
        try:
            whole = scope == "記録全体"
            report = event_log.verify_integrity(
                actor, start=None if whole else start, end=None if whole else end
            )
        except ServiceError as exc:
            show_error(exc)
        else:
            span = f"（連番 {report.first_seq}〜{report.last_seq}）" if report.checked else ""
            if not report.ok:
                st.error(
                    f"NG: 連番 {report.first_broken_seq} で不整合を検出しました: {report.reason}"
                )
                if (b := report.broken_event) is not None:
                    st.write(
                        f"該当記録: {b.occurred_jst}　{b.category_label}　{b.action_label}"
                        f"　{plain(b.target_display)}"
                    )
            elif report.warnings:
                st.warning(
                    f"要確認: {report.checked}件の記録{span}に不整合は見つかりませんでしたが、"
                    "次の点を確認できていません。"
                )
            else:
                st.success(f"OK: {report.checked}件の記録を検証しました{span}。")
            for message in report.warnings:
                st.warning(message, icon=":material/warning:")
            if report.checkpoints_checked is not None:
                st.caption(
                    f"署名済みチェックポイント {report.checkpoints_checked}件と照合しました"
                    "（データベースと書き出し先の両方）。"
                )
            if report.purged_through:
                st.caption(
                    f"連番 {report.purged_through} までは保存期間を過ぎたため削除済みです"
                    "（削除の境界は署名済みチェックポイントで確認しています）。"
                )
