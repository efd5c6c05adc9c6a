"""The roster's filter row (団員名簿): search text, then 階級・役職・状態・所属 and LINE連携, wide
enough that chosen values are shown whole (#18: 「在…」). An empty choice means every value."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import streamlit as st

from services import members
from services.catalog import MemberStatus

LINE_FILTERS = {"すべて": None, "連携済み": True, "未連携": False}
EVERY = "すべて"  # what an empty multiselect means here


def roster_filter(
    rank_by_name: Mapping[str, object],
    role_by_name: Mapping[str, object],
    affiliations: Sequence[str],
) -> members.MemberFilter:
    status_by_label = {s.label: s.value for s in MemberStatus}
    top = st.columns([3, 1])
    text = top[0].text_input("検索（氏名・ふりがな・団員番号）", key="roster_text")
    line = top[1].selectbox(
        "LINE連携", list(LINE_FILTERS), key="roster_line", placeholder="選択してください"
    )
    cols = st.columns(4)
    ranks = cols[0].multiselect(
        "階級", list(rank_by_name), key="roster_ranks", placeholder=EVERY, select_all=False
    )
    roles = cols[1].multiselect(
        "役職", list(role_by_name), key="roster_roles", placeholder=EVERY, select_all=False
    )
    statuses = cols[2].multiselect(
        "状態",
        list(status_by_label),
        default=["在籍", "停止中"],
        key="roster_status",
        placeholder=EVERY,
        select_all=False,
    )
    units = cols[3].multiselect(
        "所属", list(affiliations), key="roster_affiliations", placeholder=EVERY, select_all=False
    )
    return members.MemberFilter(
        text=text,
        rank_ids=tuple(rank_by_name[n] for n in ranks),
        role_ids=tuple(role_by_name[n] for n in roles),
        statuses=tuple(status_by_label[s] for s in statuses),
        affiliations=tuple(units),
        line_linked=LINE_FILTERS[line],
    )
