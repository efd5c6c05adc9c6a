"""How 出動履歴 and the dashboard's 出動統計 show incidents that have ended: the list, one
incident's timeline with its measured delays, and the statistics.

Kinds, places and member names come from mails and the roster: shown only in plain-text
elements (tables, metrics), never inside Markdown."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core.timefmt import clock_jst, to_jst
from services.dispatch.history import HistoryRow, Timeline
from services.dispatch.statistics import DispatchStatistics
from ui import charts, tables

UNKNOWN_KIND = "種別不明"
# The steps from the 消防本部's mail to LINE accepting the call-out, each from the one before.
DELAYS = (
    ("mail_to_received", "受信まで", "メールのDate:から、このシステムが受信するまで"),
    ("received_to_incident", "登録まで", "受信から出動として登録するまで"),
    ("incident_to_first", "出動連絡の受付まで", "登録から、LINEが最初の出動連絡を受け付けるまで"),
    ("first_to_last", "最後の受付まで", "最初の受付から、最後の出動連絡を受け付けるまで"),
)


def duration(seconds: float | None) -> str:
    """「12秒」「3分05秒」「1時間02分」; a negative one (the sender's clock ahead) with 「−」."""
    if seconds is None:
        return "—"
    sign, whole = ("−" if seconds < 0 else ""), round(abs(seconds))
    if whole < 60:
        return f"{sign}{whole}秒"
    if whole < 3600:
        return f"{sign}{whole // 60}分{whole % 60:02d}秒"
    return f"{sign}{whole // 3600}時間{whole % 3600 // 60:02d}分"


def row_label(row: HistoryRow) -> str:
    """How the incident picker names one incident."""
    return (
        f"第{row.number}号　{row.status.label}　{row.kind or UNKNOWN_KIND}"
        f"　{to_jst(row.dispatched_at)}"
    )


def history_table(rows: list[HistoryRow]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "番号": r.number,
                "状態": r.status.label,
                "災害種別": r.kind,
                "発生場所": r.place + ("（概略）" if r.place_approximate else ""),
                "出動分団": "、".join(r.units),
                "指令時刻": to_jst(r.dispatched_at),
                "終了": to_jst(r.ended_at),
                "出動可": r.answers.available,
                "遅れて": r.answers.late,
                "不可": r.answers.unavailable,
                "未回答": r.answers.unanswered,
            }
            for r in rows
        ],
        columns=[
            "番号",
            "状態",
            "災害種別",
            "発生場所",
            "出動分団",
            "指令時刻",
            "終了",
            "出動可",
            "遅れて",
            "不可",
            "未回答",
        ],
    )


def show_timeline(line: Timeline) -> None:
    st.subheader(f"第{line.number}号の経過")
    st.markdown("**測定した遅れ**")
    cols = st.columns(len(DELAYS))
    for col, (field, name, meaning) in zip(cols, DELAYS, strict=True):
        col.metric(name, duration(getattr(line.delays, field)), help=meaning)
    st.markdown("**出動連絡の受付後の回答数**")
    if line.answers_at:
        cols = st.columns(len(line.answers_at))
        for col, mark in zip(cols, line.answers_at, strict=True):
            col.metric(
                f"{mark.seconds // 60}分後",
                f"{mark.answered}名",
                help="うち出動可・遅れて出動の人数",
                delta=f"出動可・遅れて {mark.coming}名",
                delta_color="off",
            )
    else:
        st.caption("LINEが受け付けた出動連絡がないため、数えられません。")
    tables.show(
        pd.DataFrame(
            [
                {"日時": to_jst(e.at, seconds=True), "できごと": e.what, "内容": e.detail}
                for e in line.events
            ],
            columns=["日時", "できごと", "内容"],
        ),
        hide_index=True,
        width="stretch",
        key="history_events",
    )
    st.caption("時刻は日本時間（JST）です。")


def show_statistics(stats: DispatchStatistics) -> None:
    """The dashboard's 出動統計: per month and kind, time to the crew minimum, answer rates."""
    st.subheader("出動統計")
    st.caption(
        f"{stats.since:%Y/%m/%d}〜{stats.until:%Y/%m/%d}（日本時間）。テスト送信は含みません。"
        f"{clock_jst(stats.counted_at)} 時点の集計（5分ごとに更新）。"
    )
    if not stats.incidents:
        st.info("この期間の出動はありません。")
        return
    cols = st.columns(3)
    cols[0].metric("出動件数", f"{stats.incidents}件")
    cols[1].metric(
        f"{stats.crew_minimum}名そろうまで（中央値）",
        duration(stats.median_to_crew),
        help="出動連絡をLINEが受け付けてから、分団ごとの出動可・遅れて出動が規定人数に達するまで",
    )
    cols[2].metric("規定人数に達しなかった分団", f"{stats.not_reached}件")
    _months(stats)
    left, right = st.columns(2)
    with left:
        st.markdown("**分団別：規定人数がそろうまで**")
        tables.show(
            pd.DataFrame(
                [
                    {
                        "分団": c.unit,
                        "中央値": duration(c.median_seconds),
                        "そろった": c.reached,
                        "そろわず": c.not_reached,
                    }
                    for c in stats.crews
                ],
                columns=["分団", "中央値", "そろった", "そろわず"],
            ),
            hide_index=True,
            key="stats_crews",
        )
    with right:
        st.markdown("**分団別の回答率**")
        rates = pd.DataFrame(
            [
                {
                    "分団": a.unit,
                    "回答率(%)": round(100 * a.rate, 1) if a.rate is not None else None,
                    "回答": a.answered,
                    "呼出": a.called,
                }
                for a in stats.answers
            ],
            columns=["分団", "回答率(%)", "回答", "呼出"],
        )
        if not rates.empty:
            charts.bars(rates, x="分団", y="回答率(%)", horizontal=True)
        tables.show(rates, hide_index=True, key="stats_answers")


def _months(stats: DispatchStatistics) -> None:
    counts = pd.DataFrame(
        [(m.month, m.kind or UNKNOWN_KIND, m.count) for m in stats.by_month],
        columns=["月", "種別", "件数"],
    )
    st.markdown("**月別・種別の出動件数**")
    charts.bars(counts, x="月", y="件数", color="種別")
    table = counts.pivot_table(index="月", columns="種別", values="件数", aggfunc="sum")
    table = table.reindex(list(stats.months)).fillna(0).astype(int)
    tables.show(table.rename_axis(columns=None).reset_index(), hide_index=True, key="stats_months")
