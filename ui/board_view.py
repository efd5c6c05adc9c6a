"""Drawing the 出動中の事案 board (#22) for a tablet at the station: one card per open incident
with big numbers per 分団 against the crew minimum, the answers with the time each member
expects to arrive, and who has not answered. The board redraws itself every few seconds as a
fragment, so whatever the user does elsewhere on the page is kept."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import streamlit as st

from core.actor import Actor
from core.timefmt import to_jst
from services.catalog import Answer
from services.dispatch import board
from services.dispatch.board import BoardIncident
from services.dispatch.tally import UNANSWERED, UnitTally
from services.errors import ServiceError
from ui import tables
from ui.common import plain, show_error

REFRESH_SECONDS = 3
INCIDENTS_PAGE = "app_pages/incidents.py"
NONE_OPEN = "出動中の事案はありません。"
COLUMNS = [(a.value, a.label) for a in Answer] + [("none", UNANSWERED)]


def clock(value: datetime | None, *, seconds: bool = False) -> str:
    """The time of day in JST (the board is read within the hour)."""
    return to_jst(value, seconds=seconds).partition(" ")[2]


def elapsed(since: datetime, now: datetime) -> str:
    minutes = max(int((now - since).total_seconds() // 60), 0)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}時間{minutes}分" if hours else f"{minutes}分"


@st.fragment(run_every=REFRESH_SECONDS)
def live_board(actor: Actor) -> None:
    try:
        items = board.board(actor)
    except ServiceError as exc:
        show_error(exc)
        return
    now = datetime.now(UTC)
    st.caption(f"最終更新 {clock(now, seconds=True)}（{REFRESH_SECONDS}秒ごとに自動更新）")
    if not items:
        st.info(NONE_OPEN, icon=":material/check_circle:")
        return
    for item in items:
        incident_card(item, now)


def incident_card(item: BoardIncident, now: datetime) -> None:
    with st.container(border=True):
        st.subheader(f"第{item.number}号 {plain(item.kind) or '種別不明'}")
        st.markdown(
            f"**{plain(item.place) or '場所不明'}** ・ 指令 {clock(item.ordered_at)}"
            f"（経過 {elapsed(item.ordered_at, now)}） ・ {item.status.label}"
        )
        if not item.tally.lines:
            st.info("この出動ではまだ誰も呼び出していません。")
        for unit in item.tally.units:
            unit_row(unit)
        answers_table(item)
        silent = item.silent
        if silent:
            names = "、".join(plain(f"{line.member_code} {line.name}".strip()) for line in silent)
            st.markdown(f"**{UNANSWERED}（{len(silent)}名）**: {names}")
        st.page_link(
            INCIDENTS_PAGE,
            label="災害出動で開く",
            icon=":material/open_in_new:",
            query_params={"incident": str(item.id)},
        )


def unit_row(unit: UnitTally) -> None:
    if unit.short:
        verdict = f":red[**不足** あと{unit.crew_minimum - unit.coming}名]"
    else:
        verdict = ":green[**充足**]"
    st.markdown(f"#### {plain(unit.unit)}　必要{unit.crew_minimum}名　{verdict}")
    for col, (key, label) in zip(st.columns(len(COLUMNS)), COLUMNS, strict=True):
        col.metric(label, f"{unit.counts.get(key, 0)}名")


def answers_table(item: BoardIncident) -> None:
    answered = item.answered
    if not answered:
        return
    tables.show(
        pd.DataFrame(
            [
                {
                    "団員番号": line.member_code,
                    "氏名": line.name,
                    "分団": line.unit,
                    "回答": line.answer_label,
                    "到着見込み": clock(board.arrival(line)),
                    "回答時刻": clock(line.answered_at),
                }
                for line in answered
            ]
        ),
        hide_index=True,
        width="stretch",
    )
