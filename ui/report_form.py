"""The 出動報告 form (one's own, or a leader's for a member), and how a report is shown: times
in JST, the status with the step it waits for, and its trail of steps."""

from __future__ import annotations

import uuid
from datetime import date, datetime, time

import pandas as pd
import streamlit as st

from core.actor import Actor
from core.rewards import duration_label
from core.timefmt import JST, to_jst
from services.catalog import ReportStatus
from services.reports import reports
from services.reports.reports import ReportInput, ReportView
from ui.common import run_action

TURNED_BACK = "現場到着前に引き揚げた"
FALSE_ALARM = "誤報だった"


def title(view: ReportView) -> str:
    when = to_jst(view.started_at) if view.started_at else "日時未入力"
    what = (
        f"第{view.incident_number}号 {view.incident_kind}"
        if view.incident_number is not None
        else view.category
    )
    return f"{when}　{what}（{view.status.label}）"


def status_text(view: ReportView) -> str:
    return view.waiting_for or view.status.label


def report_form(
    actor: Actor,
    view: ReportView | None,
    categories: tuple[str, ...],
    *,
    key: str,
    notice_key: str,
    member_id: uuid.UUID | None = None,
) -> None:
    """Save (下書き), submit (提出) and, for a request, 報告なし. `view` None: a new activity (for
    `member_id`, or oneself)."""
    if view is not None and view.returned_reason:
        st.warning(f"差し戻しの理由: {view.returned_reason}", icon=":material/undo:")
    if view is not None and view.category and view.category not in categories:
        st.warning(
            f"区分「{view.category}」はこの団の出動報酬の表にありません。区分を選び直してください。"
        )
    with st.form(key, border=True):
        category = st.selectbox(
            "区分",
            categories,
            index=categories.index(view.category) if view and view.category in categories else 0,
            placeholder="選択してください",
        )
        start = _moment("開始", view.started_at if view else None, key=f"{key}_start")
        end = _moment("終了", view.ended_at if view else None, key=f"{key}_end")
        activity = st.text_area(
            "活動内容",
            value=view.activity if view else "",
            max_chars=reports.MAX_ACTIVITY_CHARS,
            placeholder="例: 放水活動、交通整理、残火処理",
        )
        cols = st.columns(2)
        turned_back = cols[0].checkbox(TURNED_BACK, value=bool(view and view.turned_back))
        false_alarm = cols[1].checkbox(FALSE_ALARM, value=bool(view and view.false_alarm))
        buttons = st.columns(3)
        submit = buttons[0].form_submit_button("提出する", type="primary")
        save = buttons[1].form_submit_button("保存（まだ提出しない）")
        decline = (
            buttons[2].form_submit_button("出動しなかった（報告なし）")
            if view is not None
            and view.incident_id is not None
            and view.status == ReportStatus.REQUESTED
            else False
        )
    data = ReportInput(category, activity, start, end, turned_back, false_alarm)
    if submit or save:
        run_action(
            lambda: reports.save_report(
                actor,
                view.id if view else None,
                data,
                member_id=member_id,
                submit=bool(submit),
                expected_version=view.version if view else 0,
            ),
            "提出しました。承認されると出動報酬の対象になります。" if submit else "保存しました。",
            notice_key=notice_key,
        )
    if decline and view is not None:
        run_action(
            lambda: reports.decline_report(actor, view.id, expected_version=view.version),
            "「報告なし」にしました。",
            notice_key=notice_key,
        )


def _moment(label: str, value: datetime | None, *, key: str) -> datetime | None:
    local = value.astimezone(JST) if value else None
    cols = st.columns(2)
    day = cols[0].date_input(f"{label}日", value=local.date() if local else None, key=f"{key}_d")
    clock = cols[1].time_input(
        f"{label}時刻（日本時間）",
        value=local.time().replace(second=0, microsecond=0) if local else None,
        step=300,
        key=f"{key}_t",
    )
    return _combine(day, clock)


def _combine(day: date | None, clock: time | None) -> datetime | None:
    if day is None or clock is None:
        return None
    return datetime.combine(day, clock, JST)


def reports_table(views: list[ReportView], *, with_member: bool) -> pd.DataFrame:
    rows = []
    for v in views:
        row = {
            "状態": status_text(v),
            "区分": v.category,
            "出動": f"第{v.incident_number}号" if v.incident_number is not None else "",
            "開始": to_jst(v.started_at) if v.started_at else "",
            "終了": to_jst(v.ended_at) if v.ended_at else "",
            "時間": duration_label(v.minutes) if v.minutes is not None else "",
            "活動内容": v.activity,
        }
        if with_member:
            row = {"団員番号": v.member_code, "氏名": v.member_name, "所属": v.affiliation, **row}
        rows.append(row)
    return pd.DataFrame(rows)


def show_trail(view: ReportView) -> None:
    if not view.steps:
        return
    st.caption("経過")
    for s in view.steps:
        comment = f"「{s.comment}」" if s.comment else ""
        st.markdown(f"- {to_jst(s.at)} {s.action.label}（{s.actor_label}）{comment}")
