"""The 団員名簿 page's add / edit form for one member."""

from __future__ import annotations

import uuid
from collections.abc import Mapping

import streamlit as st

from services.catalog import MemberPublic
from services.members import RosterMember


def member_form(
    key: str,
    current: MemberPublic | RosterMember | None,
    *,
    rank_by_name: Mapping[str, uuid.UUID],
    role_by_name: Mapping[str, uuid.UUID],
    unit: str,
) -> dict | None:
    """The add form (current None; a new member's 所属 starts as `unit`, the editor's own) or the
    edit form of `current`; returns the submitted values or None."""
    rank_names_list = list(rank_by_name)
    with st.form(key, clear_on_submit=current is None):
        c = st.columns(3)
        values = {
            "member_code": c[0].text_input("団員番号 *", current.member_code if current else ""),
            "name": c[1].text_input("氏名 *", current.name if current else ""),
            "kana": c[2].text_input("ふりがな", current.kana if current else ""),
        }
        c = st.columns(3)
        rank_index = (
            rank_names_list.index(current.rank_name) if current else len(rank_names_list) - 1
        )
        values["rank_id"] = rank_by_name[
            c[0].selectbox("階級 *", rank_names_list, rank_index, placeholder="選択してください")
        ]
        values["role_ids"] = [
            role_by_name[n]
            for n in c[1].multiselect(
                "役職",
                list(role_by_name),
                current.role_names if current else [],
                placeholder="選択してください",
                select_all=False,
            )
        ]
        default_unit = current.affiliation if current else unit
        values["affiliation"] = c[2].text_input("所属", default_unit)
        c = st.columns(3)
        values["phone"] = c[0].text_input("電話番号", current.phone if current else "")
        values["email"] = c[1].text_input("メール", current.email if current else "")
        values["joined_on"] = c[2].date_input(
            "入団日", current.joined_on if current else None, format="YYYY/MM/DD"
        )
        values["address"] = st.text_input("住所", current.address if current else "")
        values["notes"] = st.text_area("備考", current.notes if current else "")
        submitted = st.form_submit_button("登録" if current is None else "保存")
    return values if submitted else None
