"""役職・権限: the rank × role matrix as an editable grid, role management and a preview of what
a member may do. Changes take effect on the affected members' next page load."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd
import streamlit as st

from core.access import Need, allows
from services import permissions, roles
from services.catalog import Function, Level, MemberStatus
from services.errors import ServiceError
from ui import tables
from ui.common import current_actor, run_action, show_error
from ui.permission_matrix import matrix_tabs

NOTICE_KEY = "permissions_notice"
REVISION_KEY = "permissions_revision"

actor = current_actor()
can_edit = allows(actor, Need(Function.PERMISSIONS, Level.EDIT))
is_admin = allows(actor, Need(Function.PERMISSIONS, Level.ADMIN))

st.title("役職・権限")
st.caption(
    "団員の権限は、階級と役職のうち最も強いものになります。設定のない機能は利用できません。"
    "「編集（自所属）」は、団員名簿を自分の所属（その下の部・班を含む）に限って編集でき、"
    "他の所属は閲覧のみです。変更は対象の団員が次に画面を操作したときから有効になります。"
)
if can_edit and not is_admin:
    st.info(
        "「役職・権限」の編集権限では、自分の権限を超える設定と「役職・権限」列の変更はできません"
        "（管理権限が必要です）。"
    )

if notice := st.session_state.pop(NOTICE_KEY, None):
    st.success(notice)


def run(action: Callable[[], object], notice: str) -> None:
    def next_revision(_result: object) -> None:
        st.session_state[REVISION_KEY] = st.session_state.get(REVISION_KEY, 0) + 1

    run_action(action, notice, notice_key=NOTICE_KEY, then=next_revision)


try:
    matrix = permissions.list_matrix(actor)
    role_list = roles.list_roles(actor)
except ServiceError as exc:
    show_error(exc)
    st.stop()

st.subheader("権限の一覧")
changes = matrix_tabs(
    matrix,
    editable=can_edit,
    # Only 管理 may change who edits permissions; the service refuses it as well.
    locked=() if is_admin else (Function.PERMISSIONS,),
    revision=st.session_state.get(REVISION_KEY, 0),
)
if can_edit:
    st.caption(f"未保存の変更: {len(changes)} 件（すべてのタブの合計）")
    if st.button("権限を保存", type="primary", disabled=not changes, key="save_matrix"):
        run(
            lambda: permissions.update_matrix(actor, changes),
            f"{len(changes)} 件の権限を保存しました。",
        )

st.subheader("役職")
tables.show(
    pd.DataFrame(
        [{"役職": r.name, "相当する階級": r.rank_name, "割当人数": r.members} for r in role_list],
        columns=["役職", "相当する階級", "割当人数"],
    ),
    hide_index=True,
    key="roles_table",
)

if can_edit:
    rank_by_name = {row.name: row.subject_id for row in matrix if row.is_rank}
    with (
        st.expander("役職を追加", icon=":material/add:"),
        st.form("role_add", clear_on_submit=True),
    ):
        name = st.text_input("役職名")
        rank = st.selectbox(
            "相当する階級",
            list(rank_by_name),
            index=len(rank_by_name) - 1,
            placeholder="選択してください",
        )
        if st.form_submit_button("追加"):
            run(
                lambda: roles.create_role(actor, name=name, rank_id=rank_by_name[rank]),
                f"役職「{name.strip()}」を追加しました。",
            )
    if role_list:
        with st.expander("役職の変更・削除", icon=":material/edit:"):
            by_name = {r.name: r for r in role_list}
            role = by_name[
                st.selectbox("役職", list(by_name), key="role_pick", placeholder="選択してください")
            ]
            cols = st.columns(2)
            new_name = cols[0].text_input("新しい役職名", role.name, key=f"rename_{role.id}")
            if cols[0].button("名前を変更", key="role_rename"):
                run(
                    lambda: roles.rename_role(actor, role.id, name=new_name),
                    f"役職名を「{new_name.strip()}」に変更しました。",
                )
            names = list(rank_by_name)
            new_rank = cols[1].selectbox(
                "相当する階級",
                names,
                names.index(role.rank_name),
                key=f"remap_{role.id}",
                placeholder="選択してください",
            )
            if cols[1].button("階級の対応を変更", key="role_remap"):
                run(
                    lambda: roles.remap_role(actor, role.id, rank_id=rank_by_name[new_rank]),
                    f"役職「{role.name}」を{new_rank}相当にしました。",
                )
            st.divider()
            others = {r.name: r.id for r in role_list if r.id != role.id}
            successor = st.selectbox(
                f"割り当てられている団員（{role.members}名）の引き継ぎ先",
                ["引き継がない", *others],
                key=f"successor_{role.id}",
                placeholder="選択してください",
            )
            confirmed = st.checkbox(
                f"役職「{role.name}」とその権限を削除することを確認しました",
                key=f"confirm_{role.id}",
            )
            if st.button("役職を削除", disabled=not confirmed, key="role_delete"):
                run(
                    lambda: roles.delete_role(actor, role.id, reassign_to=others.get(successor)),
                    f"役職「{role.name}」を削除しました。",
                )

st.subheader("団員ごとの権限の確認")
try:
    people = {c.label: c.member_id for c in permissions.preview_choices(actor)}
except ServiceError as exc:
    show_error(exc)
    st.stop()
chosen = st.selectbox(
    "団員", list(people), index=None, placeholder="選択してください", key="preview_member"
)
if chosen is not None:
    preview = permissions.preview_member(actor, people[chosen])
    roles_text = "・".join(preview.role_names) or "なし"
    st.caption(
        f"階級: {preview.rank_name}　／　役職: {roles_text}　／　所属: {preview.affiliation}"
    )
    if preview.status != MemberStatus.ACTIVE:
        st.warning("この団員は在籍中ではないため、ログインも操作もできません。")
    tables.show(
        pd.DataFrame(
            [
                {"機能": p.function.label, "権限": p.grant.label, "付与元": "・".join(p.sources)}
                for p in preview.functions
            ],
            columns=["機能", "権限", "付与元"],
        ),
        hide_index=True,
        key="preview_table",
    )
