"""How the 災害出動 page shows incidents: the list, a 要確認 warning with its reasons, one
incident's facts and timeline, and the form for one entered by hand.

Places, landmarks and subjects come from a 消防本部's mail: they are shown only in plain-text
elements (tables, st.text), never inside Markdown, so a mail cannot put a link or markup on the
page."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime

import pandas as pd
import streamlit as st

from core.actor import Actor
from core.timefmt import JST, to_jst, today_jst
from services.catalog import IncidentStatus
from services.dispatch import incidents
from services.dispatch.incidents import EntryView, IncidentInput, IncidentView
from ui import tables
from ui.common import run_action

REVIEW_BADGE = "⚠ 要確認"
LIST_COLUMNS = [
    "番号",
    "状態",
    "要確認",
    "災害種別",
    "発生場所",
    "出動分団",
    "覚知",
    "受信",
    "登録",
]
NEW_KEYS = ("inc_new_kind", "inc_new_place", "inc_new_landmark", "inc_new_units", "inc_new_ref")
_UNIT_SEPARATORS = re.compile(r"[、,，\s]+")
_REVIEW_ROW = "background-color: #fdecea; font-weight: 600"


def number(incident: IncidentView) -> str:
    return f"第{incident.number}号"


def label(incident: IncidentView) -> str:
    """How the incident picker names one incident."""
    review = f"　{REVIEW_BADGE}" if incident.needs_review else ""
    return (
        f"{number(incident)}　{incident.status.label}　{incident.kind or '種別不明'}"
        f"　{to_jst(incident.created_at)}{review}"
    )


def incident_table(rows: list[IncidentView]) -> pd.io.formats.style.Styler:
    """The list, newest first as the service returns it; 要確認 rows stand out in colour too."""
    frame = pd.DataFrame(
        [
            {
                "番号": i.number,
                "状態": i.status.label,
                "要確認": REVIEW_BADGE if i.needs_review else "",
                "災害種別": i.kind,
                "発生場所": i.place,
                "出動分団": "、".join(i.units),
                "覚知": to_jst(i.occurred_at),
                "受信": to_jst(i.received_at),
                "登録": to_jst(i.created_at),
            }
            for i in rows
        ],
        columns=LIST_COLUMNS,
    )
    return tables.blank_missing(frame).style.apply(
        lambda row: [_REVIEW_ROW if row["要確認"] else ""] * len(row), axis=1
    )


def review_warning(incident: IncidentView) -> None:
    """The reasons come from the service (never the mail's text), so Markdown is safe here."""
    reasons = "\n".join(f"- {r}" for r in incident.review_reasons) or "- 理由の記録がありません。"
    st.warning(
        f"**{number(incident)}（{incident.status.label}）は要確認です。**"
        f"メールの原文を確認してください。\n\n{reasons}",
        icon=":material/warning:",
    )


def _fact(name: str, value: str) -> None:
    cols = st.columns([1, 4])
    cols[0].caption(name)
    cols[1].text(value or "—")


def show_incident(incident: IncidentView, entries: list[EntryView]) -> None:
    st.subheader(number(incident))
    st.badge(
        incident.status.label,
        color="red" if incident.status.open else "gray",
        icon=":material/flag:",
    )
    if incident.needs_review:
        review_warning(incident)
    _fact("災害種別", incident.kind)
    _fact("発生場所", incident.place)
    _fact("目標物", incident.landmark)
    _fact("出動分団", "、".join(incident.units))
    _fact("指令番号", incident.reference)
    _fact("件名", incident.subject)
    _fact("経路", "出動メール" if incident.from_mail else "手入力")
    _fact("覚知", to_jst(incident.occurred_at))
    _fact("メールのDate", to_jst(incident.mail_date, seconds=True))
    _fact("受信", to_jst(incident.received_at, seconds=True))
    _fact("登録", to_jst(incident.created_at, seconds=True))
    if incident.closed_at is not None:
        _fact("終了", to_jst(incident.closed_at, seconds=True))
    st.caption("時刻はすべて日本時間（JST）です。")
    if incident.map_url:
        st.link_button("地図を開く（消防本部のリンク）", incident.map_url, icon=":material/map:")
    st.markdown("**経過**")
    tables.show(
        pd.DataFrame(
            [
                {
                    "日時": to_jst(e.at, seconds=True),
                    "内容": e.summary,
                    "状態": IncidentStatus(e.status).label if e.status else "",
                    "実行者": e.actor_label,
                    "メール": "✓" if e.from_mail else "",
                }
                for e in entries
            ],
            columns=["日時", "内容", "状態", "実行者", "メール"],
        ),
        hide_index=True,
        width="stretch",
    )


def manual_entry(actor: Actor, *, notice_key: str, then: Callable[[IncidentView], None]) -> None:
    """An incident called in by telephone (or a drill): kind required, the rest as known."""
    with st.form("inc_new"):
        kind = st.text_input("災害種別", key="inc_new_kind", placeholder="建物火災")
        place = st.text_input("発生場所", key="inc_new_place", placeholder="〇〇町1丁目付近")
        landmark = st.text_input("目標物", key="inc_new_landmark")
        units = st.text_input("出動分団（「、」区切り）", key="inc_new_units")
        reference = st.text_input("指令番号", key="inc_new_ref")
        cols = st.columns(2)
        day = cols[0].date_input("覚知日", value=today_jst(), format="YYYY/MM/DD")
        clock = cols[1].time_input("覚知時刻（わからなければ空欄）", value=None, step=60)
        submitted = st.form_submit_button("登録する", type="primary")
    if not submitted:
        return
    entered = IncidentInput(
        kind=kind,
        place=place,
        landmark=landmark,
        units=tuple(u for u in _UNIT_SEPARATORS.split(units) if u),
        reference=reference,
        occurred_at=(
            datetime.combine(day, clock, tzinfo=JST).astimezone(UTC)
            if day is not None and clock is not None
            else None
        ),
    )

    def done(incident: IncidentView) -> None:
        for key in NEW_KEYS:
            st.session_state.pop(key, None)
        then(incident)

    run_action(
        lambda: incidents.create_incident(actor, entered),
        lambda incident: f"{number(incident)}を登録しました。",
        notice_key=notice_key,
        then=done,
    )
