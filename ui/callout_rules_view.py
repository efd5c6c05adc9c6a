"""呼び出しルール on 出動メール設定: which 分団 a dispatch mail's incident calls besides those
the mail lists, by kind and time of day, and each 分団's neighbours, offered for widening
(応援要請) when its crew is short. Two tables in one form, saved together (管理)."""

from __future__ import annotations

import numbers
from collections.abc import Iterable

import pandas as pd
import streamlit as st

from core.actor import Actor
from services.dispatch import callout_rules
from services.dispatch.callout_rules import (
    END,
    EVERYONE,
    KINDS,
    MAX_RULES,
    NEAR,
    START,
    UNIT,
    UNITS,
    NeighbourRow,
    RuleRow,
    Saved,
)
from services.errors import ServiceError
from ui.common import run_action, show_error

RULES_KEY, NEIGHBOURS_KEY = "callout_rules_table", "callout_neighbours_table"


def callout_rules_form(actor: Actor, *, notice_key: str) -> None:
    st.markdown("**呼び出しルールと隣接分団**")
    st.caption(
        "出動指令メールに書かれた分団のほかに、種別と時間帯で呼び出す分団を決めます。"
        "例:「22時〜6時の建物火災は第2分団も呼ぶ」は、種別に含む語「建物火災」、開始時 22、"
        "終了時 6、呼び出す分団「第2分団」。時刻は日本時間の指令時刻で、開始時を含み終了時を"
        "含みません（22〜6 は 22:00〜5:59、開始時と終了時が同じなら終日）。種別に含む語は"
        "「、」区切りで、空なら全種別です。隣接分団は、分団の人員が不足したとき幹部への連絡に"
        "応援候補として示し、災害出動の応援要請で選んでおく分団です。"
    )
    try:
        targeting = callout_rules.get_targeting(actor)
    except ServiceError as exc:
        show_error(exc)
        return
    saved_units = {u for r in targeting.rules for u in r.units} | {
        u for unit, near in targeting.neighbours.items() for u in (unit, *near)
    }
    units = [*targeting.units, *sorted(saved_units - set(targeting.units))]
    rules = pd.DataFrame(
        [
            {
                KINDS: "、".join(r.words),
                START: r.start,
                END: r.end,
                UNITS: [EVERYONE] if r.everyone else list(r.units),
            }
            for r in targeting.rules
        ],
        columns=[KINDS, START, END, UNITS],
    )
    neighbours = pd.DataFrame(
        [{UNIT: unit, NEAR: list(near)} for unit, near in targeting.neighbours.items()],
        columns=[UNIT, NEAR],
    )
    hour = {"min_value": 0, "max_value": 23, "step": 1, "format": "%d時"}
    with st.form("callout_targeting"):
        st.markdown(f"呼び出しルール（{MAX_RULES}件まで）")
        rules = st.data_editor(
            rules,
            key=RULES_KEY,
            num_rows="dynamic",
            hide_index=True,
            width="stretch",
            column_config={
                KINDS: st.column_config.TextColumn(KINDS, help="例: 建物火災、林野火災"),
                START: st.column_config.NumberColumn(START, **hour),
                END: st.column_config.NumberColumn(END, **hour),
                UNITS: st.column_config.MultiselectColumn(UNITS, options=[*units, EVERYONE]),
            },
        )
        st.markdown("隣接分団（人員不足のときの応援候補）")
        neighbours = st.data_editor(
            neighbours,
            key=NEIGHBOURS_KEY,
            num_rows="dynamic",
            hide_index=True,
            width="stretch",
            column_config={
                UNIT: st.column_config.SelectboxColumn(UNIT, options=units),
                NEAR: st.column_config.MultiselectColumn(NEAR, options=units),
            },
        )
        if st.form_submit_button("ルールを保存", type="primary"):
            run_action(
                lambda: callout_rules.update_targeting(
                    actor,
                    rules=[
                        RuleRow(_text(r[KINDS]), _cell(r[START]), _cell(r[END]), _list(r[UNITS]))
                        for r in rules.to_dict("records")
                    ],
                    neighbours=[
                        NeighbourRow(_text(r[UNIT]), _list(r[NEAR]))
                        for r in neighbours.to_dict("records")
                    ],
                    expected_version=targeting.version,
                ),
                _notice,
                notice_key=notice_key,
            )


def _notice(saved: Saved) -> str:
    done = (
        f"呼び出しルール（{len(saved.targeting.rules)}件）と隣接分団"
        f"（{len(saved.targeting.neighbours)}件）を保存しました。"
    )
    return "\n\n".join([done, *(f"- {note}" for note in saved.notes)])


def _cell(value: object) -> str | int | float | None:
    """A table cell as entered (numpy numbers as Python's): an empty cell is None."""
    if isinstance(value, str):
        return value
    if value is None or (pd.api.types.is_scalar(value) and pd.isna(value)):
        return None
    if isinstance(value, numbers.Integral):
        return int(value)
    return float(value) if isinstance(value, numbers.Real) else str(value)


def _text(value: object) -> str:
    cell = _cell(value)
    return "" if cell is None else str(cell)


def _list(value: object) -> tuple[str, ...]:
    """A multiselect cell: a list (or array) of options, a single text, or empty."""
    if isinstance(value, str):
        return (value,)
    if isinstance(value, Iterable):
        return tuple(str(v) for v in value)
    return ()
