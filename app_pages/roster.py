"""団員名簿: search, filter, add, edit, suspend / reactivate, retire / readmit, bulk actions on a
selection, and the 所属 labels in use."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import pandas as pd
import streamlit as st

from core.access import Need, allows
from services import members
from services.catalog import Function, Level, MemberCreate, MemberStatus, MemberUpdate
from ui import tables
from ui.common import current_actor, run_action
from ui.confirm import SELF_ACTION, Confirmation, confirm_button, named
from ui.member_form import member_form
from ui.pickers import fresh_key, member_picker, next_round
from ui.roster_filters import roster_filter

PAGE = "roster"
COLUMNS = [
    "団員番号",
    "氏名",
    "ふりがな",
    "階級順",
    "階級",
    "役職",
    "所属",
    "電話番号",
    "メール",
    "LINE",
    "状態",
]

# 階級 sorts as text in the grid (団員 before 団長); 階級順 (1 = 団長) sorts it in rank order
ORDERED = {"階級順": st.column_config.NumberColumn("階級順", width="small", help="1 = 団長")}

actor = current_actor()
view = members.roster_view(actor)  # the page's one read: options, scope, members, LINE reach
scope = view.scope
rank_by_name = {r.name: r.id for r in view.ranks}
role_by_name = {r.name: r.id for r in view.roles}
can_edit = scope.allows_editing
form_lists = {"rank_by_name": rank_by_name, "role_by_name": role_by_name, "unit": scope.unit}
can_manage_accounts = allows(actor, Need(Function.MEMBER_ACCOUNTS, Level.EDIT))

st.title("団員名簿")

if notice := st.session_state.pop("roster_notice", None):
    st.success(notice)

labels_in_use = view.affiliations
chosen = roster_filter(rank_by_name, role_by_name, [a.label for a in labels_in_use])
rows = view.matching(chosen)
reach = view.reach  # linked members: whether the official account reaches them
st.caption(f"{len(rows)} 名")
status_label = {s.value: s.label for s in MemberStatus}
table = pd.DataFrame(  # built by column: 5,000 per-row dicts cost more than the grid itself
    {
        "団員番号": [m.member_code for m in rows],
        "氏名": [m.name for m in rows],
        "ふりがな": [m.kana for m in rows],
        "階級順": [m.rank_position for m in rows],
        "階級": [m.rank_name for m in rows],
        "役職": ["・".join(m.role_names) for m in rows],
        "所属": [m.affiliation for m in rows],
        "電話番号": [m.phone for m in rows],
        "メール": [m.email for m in rows],
        "LINE": [f"連携済み（{reach[m.id]}）" if m.id in reach else "未連携" for m in rows],
        "状態": [status_label[m.status] for m in rows],
    },
    columns=COLUMNS,
)
selectable = can_edit or can_manage_accounts
if selectable:
    # The key follows the listed members, so a selection never outlives the rows it was made on.
    listed = hashlib.sha256(b"".join(m.id.bytes for m in rows)).hexdigest()[:12]
    event = tables.show(
        table,
        hide_index=True,
        width="stretch",
        on_select="rerun",
        selection_mode="multi-row",
        key=fresh_key(PAGE, f"table_{listed}"),
        column_config=ORDERED,
    )
    selected = [rows[i] for i in event.selection.rows if i < len(rows)]
else:
    tables.show(table, hide_index=True, width="stretch", column_config=ORDERED)
    selected = []


def run(action: Callable[[], object], notice: str | Callable[[object], str]) -> None:
    run_action(action, notice, notice_key="roster_notice", then=next_round(PAGE))


def question(
    message: str, action: Callable[[], object], notice: str | Callable[[object], str], *details: str
) -> Confirmation:
    return Confirmation(message, action, notice, "roster_notice", details, next_round(PAGE))


if selected:
    with st.container(border=True):
        st.markdown(f"**選択した {len(selected)} 名への一括操作**")
        st.caption("、".join(f"{m.member_code} {m.name}" for m in selected))
        cols = st.columns(2)
        if can_edit:
            new_label = cols[0].text_input("新しい所属", key="bulk_affiliation")
            if cols[0].button("所属を変更", key="bulk_affiliation_apply"):
                run(
                    lambda: members.bulk_set_affiliation(
                        actor, [m.id for m in selected], affiliation=new_label
                    ),
                    lambda n: f"{n} 名の所属を変更しました。",
                )
        targets = [m for m in selected if m.status == MemberStatus.ACTIVE]
        if can_manage_accounts and any(m.id == actor.member_id for m in selected):
            cols[1].info(SELF_ACTION)
        elif can_manage_accounts and targets:
            bulk = question(
                f"選択した団員のうち在籍中の {len(targets)} 名を利用停止にします。よろしいですか？",
                lambda: members.bulk_suspend(actor, [m.id for m in targets]),
                lambda n: f"{n} 名の利用を停止しました。",
                "対象: " + "、".join(f"{m.member_code} {m.name}" for m in targets),
            )
            confirm_button(cols[1], "利用停止", bulk, key="bulk_suspend")


if can_edit:
    with st.expander("団員を追加", icon=":material/person_add:"):
        if not scope.whole_brigade:
            st.caption(f"自分の所属（{scope.unit}）の団員だけを追加できます。")
        if (values := member_form("member_add", None, **form_lists)) is not None:
            run(
                lambda: members.create_member(actor, data=MemberCreate(**values)),
                f"{values['name']} さんを登録しました。",
            )

st.divider()
by_id = {m.id: m for m in rows}
choice = member_picker(
    st,
    "詳細を表示する団員",
    list(by_id),
    page=PAGE,
    format_func=lambda i: f"{by_id[i].member_code}　{by_id[i].name}",
)
if choice is not None:
    member = by_id[choice]
    who, is_self = named(member.name, member.member_code), member.id == actor.member_id
    st.subheader(f"{member.name}（{member.kana}）")
    status = MemberStatus(member.status)
    st.caption(f"状態: {status.label}　／　団員番号: {member.member_code}")
    editable = scope.covers(member.affiliation)
    if editable and status != MemberStatus.RETIRED:
        if (values := member_form(f"member_edit_{member.id}", member, **form_lists)) is not None:
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
    if is_self and (can_manage_accounts or editable) and status != MemberStatus.RETIRED:
        st.info(SELF_ACTION)
    buttons = st.columns(3)
    if can_manage_accounts and status == MemberStatus.ACTIVE and not is_self:
        suspend = question(
            f"{who}を利用停止にします。よろしいですか？",
            lambda: members.suspend_member(actor, member.id),
            f"{who}の利用を停止しました。",
        )
        confirm_button(buttons[0], "利用停止", suspend, key="suspend", icon=":material/block:")
    if can_manage_accounts and status == MemberStatus.SUSPENDED:
        if buttons[0].button("利用再開", icon=":material/check_circle:", key="reactivate"):
            run(lambda: members.reactivate_member(actor, member.id), "利用を再開しました。")
    if editable and status != MemberStatus.RETIRED and not is_self:
        retire = question(
            f"{who}を退団として記録します。よろしいですか？",
            lambda: members.retire_member(actor, member.id),
            f"{who}を退団として記録しました。",
        )
        confirm_button(buttons[1], "退団処理", retire, key="retire", icon=":material/logout:")
    if editable and status == MemberStatus.RETIRED:
        if buttons[1].button("再入団", icon=":material/undo:", key="readmit"):
            run(lambda: members.readmit_member(actor, member.id), "在籍に戻しました。")

with st.expander("所属ラベルの一覧", icon=":material/label:"):
    tables.show(
        pd.DataFrame(
            [{"所属": a.label, "団員数": a.members, "うち在籍": a.active} for a in labels_in_use],
            columns=["所属", "団員数", "うち在籍"],
        ),
        hide_index=True,
        key="affiliation_table",
    )
    if can_edit and labels_in_use:
        old = st.selectbox(
            "変更する所属",
            [a.label for a in labels_in_use],
            key="rename_old",
            placeholder="選択してください",
        )
        new = st.text_input("新しい名前", key="rename_new")
        below = st.checkbox("下位の所属（例: 「第1分団 第1部」）も変更する", key="rename_below")
        if st.button("所属の名前を変更", key="rename_apply"):
            run(
                lambda: members.rename_affiliation(
                    actor, old=old, new=new, include_sub_units=below
                ),
                lambda n: f"{n} 名の所属を「{new.strip()}」に変更しました。",
            )
