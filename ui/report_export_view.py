"""The month's export of approved 出動報告 on the 出動報告 page (出動報告 管理): the totals per
member first, then the three downloads."""

from __future__ import annotations

from collections import defaultdict

import pandas as pd
import streamlit as st

from core.actor import Actor
from core.rewards import yen
from core.timefmt import today_jst
from services.errors import ServiceError
from services.reports import export
from services.reports.export import ExportKind
from ui import tables
from ui.common import show_error


def show_month_export(actor: Actor) -> None:
    st.caption(
        "承認済みの報告を、活動を始めた月ごとに出力します。金額は「出動報告の設定」の"
        "出動報酬の表で計算します。"
    )
    month = st.date_input(
        "出力する月（その月の任意の日）", value=today_jst(), key="rep_export_month"
    )
    try:
        summary = export.month_summary(actor, month)
    except ServiceError as exc:
        show_error(exc)
        return
    if not summary.activities:
        st.info(f"{month:%Y年%m月}に始まった承認済みの報告はありません。")
        return
    totals: dict[tuple[str, str], int] = defaultdict(int)
    for activity in summary.activities:
        totals[(activity.member_code, activity.member_name)] += sum(
            line.amount for line in activity.lines
        )
    st.metric(
        f"{month:%Y年%m月}の出動報酬（{summary.table_name}）",
        yen(sum(totals.values())),
        help=f"{len(summary.activities)}件の活動、{len(totals)}名",
    )
    tables.show(
        pd.DataFrame(
            [{"団員番号": c, "氏名": n, "報酬額": yen(t)} for (c, n), t in sorted(totals.items())]
        ),
        hide_index=True,
    )
    cols = st.columns(len(ExportKind))
    for col, kind in zip(cols, ExportKind, strict=True):
        col.download_button(
            kind.label,
            data=lambda kind=kind: _file(actor, month, kind),
            file_name=export.file_name(month, kind),
            mime=export.MIME[kind],
            key=f"rep_export_{kind}",
        )


def _file(actor: Actor, month, kind: ExportKind) -> bytes:
    return export.export_month(actor, month, kind).data
