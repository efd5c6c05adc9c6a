"""団員名簿: search, filter, add, edit, suspend / reactivate, retire."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app_pages.common import current_actor, show_error
from services import members
from services.catalog import Function, Level, MemberCreate, MemberStatus, MemberUpdate
from services.errors import ServiceError

actor = current_actor()
ranks = members.list_ranks(actor)
roles = members.list_roles(actor)
rank_by_name = {r.name: r.id for r in ranks}
role_by_name = {r.name: r.id for r in roles}
status_by_label = {s.label: s.value for s in MemberStatus}
can_edit = actor.can(Function.ROSTER, Level.EDIT)
can_manage_accounts = actor.can(Function.MEMBER_ACCOUNTS, Level.EDIT)

st.title("団員名簿")

if notice := st.session_state.pop("roster_notice", None):
    st.success(notice)

cols = st.columns([3, 2, 2, 2, 2])
text = cols[0].text_input("検索（氏名・ふりがな・団員番号）", key="roster_text")
rank_names = cols[1].multiselect(
    "階級", list(rank_by_name), key="roster_ranks", placeholder="すべて"
)
role_names = cols[2].multiselect(
    "役職", list(role_by_name), key="roster_roles", placeholder="すべて"
)
status_labels = cols[3].multiselect(
    "状態", list(status_by_label), default=["在籍", "停止中"], key="roster_status"
)
affiliation = cols[4].text_input("所属（部分一致）", key="roster_affiliation")

rows = members.list_members(
    actor,
    members.MemberFilter(
        text=text,
        rank_ids=tuple(rank_by_name[n] for n in rank_names),
        role_ids=tuple(role_by_name[n] for n in role_names),
        statuses=tuple(status_by_label[s] for s in status_labels),
        affiliation=affiliation,
    ),
)
st.caption(f"{len(rows)} 名")
st.dataframe(
    pd.DataFrame(
        [
            {
                "団員番号": m.member_code,
                "氏名": m.name,
                "ふりがな": m.kana,
                "階級": m.rank_name,
                "役職": "・".join(m.role_names),
                "所属": m.affiliation,
                "電話番号": m.phone,
                "メール": m.email,
                "状態": MemberStatus(m.status).label,
            }
            for m in rows
        ],
        columns=[
            "団員番号",
            "氏名",
            "ふりがな",
            "階級",
            "役職",
            "所属",
            "電話番号",
            "メール",
            "状態",
        ],
    ),
    hide_index=True,
    width="stretch",
)


def member_form(key: str, current: members.MemberPublic | None) -> dict | None:
    """The add/edit form; returns the submitted values or None."""
    rank_names_list = list(rank_by_name)
    with st.form(key, clear_on_submit=current is None):
        c = st.columns(3)
        values = {
            "member_code": c[0].text_input("団員番号 *", current.member_code if current else ""),
            "name": c[1].text_input("氏名 *", current.name if current else ""),
            "kana": c[2].text_input("ふりがな", current.kana if current else ""),
        }
        c = st.columns(3)
        rank_index = rank_names_list.index(current.rank_name) if current else len(ranks) - 1
        values["rank_id"] = rank_by_name[c[0].selectbox("階級 *", rank_names_list, rank_index)]
        values["role_ids"] = [
            role_by_name[n]
            for n in c[1].multiselect(
                "役職", list(role_by_name), current.role_names if current else []
            )
        ]
        values["affiliation"] = c[2].text_input("所属", current.affiliation if current else "")
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


def run(action, notice: str) -> None:
    try:
        action()
    except ServiceError as exc:
        show_error(exc)
        return
    st.session_state["roster_notice"] = notice
    st.rerun()


if can_edit:
    with st.expander("団員を追加", icon=":material/person_add:"):
        if (values := member_form("member_add", None)) is not None:
            run(
                lambda: members.create_member(actor, data=MemberCreate(**values)),
                f"{values['name']} さんを登録しました。",
            )

st.divider()
labels = {f"{m.member_code}　{m.name}": m for m in rows}
choice = st.selectbox(
    "詳細を表示する団員", list(labels), index=None, placeholder="選択してください"
)
if choice is not None:
    member = labels[choice]
    st.subheader(f"{member.name}（{member.kana}）")
    status = MemberStatus(member.status)
    st.caption(f"状態: {status.label}　／　団員番号: {member.member_code}")
    if can_edit and status != MemberStatus.RETIRED:
        if (values := member_form(f"member_edit_{member.id}", member)) is not None:
            run(
                lambda: members.update_member(
                    actor, member.id, data=MemberUpdate(**values), expected_version=member.version
                ),
                f"{values['name']} さんの情報を保存しました。",
            )
    else:
        st.json(
            {
                "階級": member.rank_name,
                "役職": member.role_names,
                "所属": member.affiliation,
                "電話番号": member.phone,
                "メール": member.email,
                "住所": member.address,
                "入団日": str(member.joined_on or ""),
                "備考": member.notes,
            }
        )
    buttons = st.columns(3)
    if can_manage_accounts and status == MemberStatus.ACTIVE:
        if buttons[0].button("利用停止", icon=":material/block:", key="suspend"):
            run(lambda: members.suspend_member(actor, member.id), "利用を停止しました。")
    if can_manage_accounts and status == MemberStatus.SUSPENDED:
        if buttons[0].button("利用再開", icon=":material/check_circle:", key="reactivate"):
            run(lambda: members.reactivate_member(actor, member.id), "利用を再開しました。")
    if can_edit and status != MemberStatus.RETIRED:
        if buttons[1].button("退団処理", icon=":material/logout:", key="retire"):
            run(lambda: members.retire_member(actor, member.id), "退団として記録しました。")
