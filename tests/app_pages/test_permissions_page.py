"""役職・権限 page with AppTest on real services: the grid of the actor's brigade only, saving a
cell, role management, the preview, the lock-out message, read-only viewers, and which pages the
matrix lets each member reach (the same rule as tests/services/test_authorization_matrix.py)."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

import ui.common
from models import MemberUpdate
from models.enums import AuditCategory, Function, Level, SubjectType
from services import members, permissions, roles
from services.errors import PermissionDenied
from services.permissions import CellChange, Grant, choices
from services.signin import sessions
from tests.app_pages.conftest import nav_registers, page_text, sign_in
from tests.factories import admin, audit_events, last_audit_seq, make_member, make_tenant, rank_id
from tests.services.test_authorization_matrix import expected_pages
from ui.permission_matrix import EDITOR_KEY, GROUPS, group_of
from ui.registry import MEMBER_PAGES

PAGE = "app_pages/permissions.py"


def editor_key(function: Function) -> str:
    return EDITOR_KEY.format(revision=0, group=group_of(function))


def whole_grid(at: AppTest):
    """The tabs' grids side by side: one row per rank or role, every function's column."""
    frames = [e.value.set_index("対象") for e in at.data_editor]
    return pd.concat(
        [frames[0], *(f.drop(columns="在籍人数") for f in frames[1:])], axis=1
    ).reset_index()


def open_page(open_app, token: str) -> AppTest:
    at = open_app(token)
    at.switch_page(PAGE).run()
    assert not at.exception
    assert [t.value for t in at.title] == ["役職・権限"]
    return at


def grid_row(at: AppTest, name: str) -> int:
    subjects = list(whole_grid(at)["対象"])
    return next(i for i, s in enumerate(subjects) if s.split(": ")[1].split("（")[0] == name)


def edit_cells(at: AppTest, edits: dict[tuple[str, Function], str]) -> None:
    by_editor: dict[str, dict[int, dict[str, str]]] = {}
    for (name, function), value in edits.items():
        rows = by_editor.setdefault(editor_key(function), {})
        rows.setdefault(grid_row(at, name), {})[function.label] = value
    for key, rows in by_editor.items():
        at.session_state[key] = {"edited_rows": rows, "added_rows": [], "deleted_rows": []}
    at.run()


def table_with(at: AppTest, column: str):
    """The first table (st.dataframe) that has the column: read-only tables carry no key."""
    return next(d.value for d in at.dataframe if column in d.value.columns)


def grant(tenant, name: str, function: Function) -> Grant:
    row = next(r for r in permissions.list_matrix(admin(tenant)) if r.name == name)
    return row.grants[function]


def test_grid_shows_the_brigades_ranks_and_roles_only(open_app):
    tenant, other = make_tenant(), make_tenant()
    roles.create_role(admin(tenant), name="庶務", rank_id=rank_id(tenant, "部長"))
    roles.create_role(admin(other), name="他団の秘密係", rank_id=rank_id(other))
    stranger = make_member(other, name="他団　太郎")
    user = sign_in(tenant)

    at = open_page(open_app, user.token)

    grid = whole_grid(at)
    assert len(at.data_editor) == len(GROUPS)  # one grid per tab, every function in one of them
    assert set(grid.columns) == {"対象", "在籍人数", *(f.label for f in Function)}
    assert list(grid["対象"]) == [
        *(f"階級: {n}" for n in ("団長", "副団長", "分団長", "副分団長", "部長", "班長", "団員")),
        "役職: 庶務（部長相当）",
    ]
    assert grid.iloc[0]["役職・権限"] == "管理"
    assert grid.iloc[6]["団員名簿"] == "なし"
    text = page_text(at)
    assert "他団の秘密係" not in text and stranger.name not in text


def test_saving_a_cell_changes_the_matrix_with_one_audit_event(open_app, engine):
    tenant = make_tenant()
    user = sign_in(tenant)
    at = open_page(open_app, user.token)
    start = last_audit_seq(engine, tenant)

    edit_cells(at, {("団員", Function.ROSTER): "閲覧", ("班長", Function.ROSTER): "編集（自所属）"})
    assert "未保存の変更: 2 件（すべてのタブの合計）" in [c.value for c in at.caption]
    at.button(key="save_matrix").click().run()

    assert not at.exception and not at.error
    assert [s.value for s in at.success] == ["2 件の権限を保存しました。"]
    assert grant(tenant, "団員", Function.ROSTER) == Grant(Level.VIEW)
    assert grant(tenant, "班長", Function.ROSTER) == Grant(Level.EDIT, own_unit=True)
    events = audit_events(engine, tenant, after_seq=start, category=AuditCategory.OPERATION)
    assert [e.action for e in events] == ["permission.update"]
    assert len(json.loads(events[0].details)["changes"]) == 2
    assert whole_grid(at).iloc[6]["団員名簿"] == "閲覧"


def test_removing_the_last_administration_shows_the_lockout_message(open_app):
    tenant = make_tenant()
    user = sign_in(tenant)  # the only 団長
    at = open_page(open_app, user.token)

    edit_cells(at, {("団長", Function.PERMISSIONS): "編集"})
    at.button(key="save_matrix").click().run()

    assert not at.exception
    assert "役職・権限を管理できる在籍中の団員がいなくなります" in at.error[0].value
    assert grant(tenant, "団長", Function.PERMISSIONS) == Grant(Level.ADMIN)


def test_changes_take_effect_on_the_affected_members_next_run(open_app, monkeypatch):
    tenant = make_tenant()
    chief = sign_in(tenant)
    leader = sign_in(tenant, rank="分団長")
    at_leader = open_app(leader.token)
    assert nav_registers(at_leader, "app_pages/roster.py")

    at = open_page(open_app, chief.token)
    edit_cells(at, {("分団長", Function.ROSTER): "なし"})
    at.button(key="save_matrix").click().run()
    assert not at.error

    monkeypatch.setattr(ui.common, "session_token", lambda: leader.token)
    at_leader.run()
    assert not nav_registers(at_leader, "app_pages/roster.py")


def test_roles_are_added_renamed_remapped_and_deleted(open_app):
    tenant = make_tenant()
    user = sign_in(tenant)
    at = open_page(open_app, user.token)

    next(t for t in at.text_input if t.label == "役職名").input("ポンプ係")
    next(s for s in at.selectbox if s.label == "相当する階級").select("班長")
    next(b for b in at.button if b.label == "追加").click().run()
    assert [s.value for s in at.success] == ["役職「ポンプ係」を追加しました。"]
    (role,) = roles.list_roles(admin(tenant))
    assert (role.name, role.rank_name) == ("ポンプ係", "班長")

    at.text_input(key=f"rename_{role.id}").input("機関員").run()
    at.button(key="role_rename").click().run()
    at.selectbox(key=f"remap_{role.id}").select("部長").run()
    at.button(key="role_remap").click().run()
    (role,) = roles.list_roles(admin(tenant))
    assert (role.name, role.rank_name) == ("機関員", "部長")

    holder = make_member(tenant, role_ids=[role.id])
    at.run()
    at.checkbox(key=f"confirm_{role.id}").check().run()
    at.button(key="role_delete").click().run()
    assert "1名の団員に割り当てられているため削除できません" in at.error[0].value
    assert members.get_member(admin(tenant), holder.id).role_names == ["機関員"]

    roles.create_role(admin(tenant), name="ポンプ係", rank_id=rank_id(tenant))
    at.run()
    at.selectbox(key="role_pick").select("機関員").run()
    at.selectbox(key=f"successor_{role.id}").select("ポンプ係").run()
    at.checkbox(key=f"confirm_{role.id}").check().run()
    at.button(key="role_delete").click().run()
    assert [s.value for s in at.success] == ["役職「機関員」を削除しました。"]
    assert members.get_member(admin(tenant), holder.id).role_names == ["ポンプ係"]


def test_preview_shows_what_a_member_may_do(open_app):
    tenant = make_tenant()
    user = sign_in(tenant)
    clerk = roles.create_role(admin(tenant), name="庶務", rank_id=rank_id(tenant))
    member = make_member(tenant, rank_id=rank_id(tenant, "班長"), role_ids=[clerk])
    at = open_page(open_app, user.token)

    at.selectbox(key="preview_member").select(f"{member.member_code}　{member.name}").run()

    table = table_with(at, "付与元").set_index("機能")
    assert table.loc["団員名簿", "権限"] == "編集"
    assert table.loc["団員名簿", "付与元"] == "班長・庶務"
    assert table.loc["団設定", "権限"] == "なし"


def test_viewer_gets_no_editing_controls_and_the_services_refuse(open_app):
    tenant = make_tenant()
    role = roles.create_role(admin(tenant), name="庶務", rank_id=rank_id(tenant))
    user = sign_in(tenant, rank="分団長")  # 役職・権限: 閲覧
    at = open_page(open_app, user.token)

    assert not at.data_editor
    assert table_with(at, "役職・権限").iloc[0]["役職・権限"] == "管理"
    labels = {b.label for b in at.button}
    assert not labels & {"権限を保存", "追加", "名前を変更", "階級の対応を変更", "役職を削除"}
    assert not [t for t in at.text_input if t.label == "役職名"]

    actor = sessions.resolve(user.token)
    change = CellChange(SubjectType.RANK, rank_id(tenant), Function.ROSTER, Grant(Level.EDIT))
    for call in (
        lambda: permissions.update_matrix(actor, [change]),
        lambda: roles.create_role(actor, name="新係", rank_id=rank_id(tenant)),
        lambda: roles.delete_role(actor, role),
    ):
        with pytest.raises(PermissionDenied):
            call()
    assert grant(tenant, "団員", Function.ROSTER) == Grant()


def test_editor_without_admin_cannot_touch_the_permissions_column(open_app):
    tenant = make_tenant()
    keeper = roles.create_role(admin(tenant), name="権限係", rank_id=rank_id(tenant))
    permissions.update_matrix(
        admin(tenant),
        [CellChange(SubjectType.ROLE, keeper, Function.PERMISSIONS, Grant(Level.EDIT))],
    )
    user = sign_in(tenant, rank="分団長")
    members.update_member(
        admin(tenant), user.member.id, data=MemberUpdate(role_ids=[keeper]), expected_version=1
    )
    at = open_page(open_app, user.token)

    assert "管理権限が必要です" in at.info[0].value
    edit_cells(at, {("団員", Function.PERMISSIONS): "閲覧"})
    at.button(key="save_matrix").click().run()
    assert "管理権限が必要です" in at.error[0].value
    assert grant(tenant, "団員", Function.PERMISSIONS) == Grant()


def test_member_without_permission_view_gets_no_page(open_app):
    user = sign_in(make_tenant(), rank="団員")
    at = open_app(user.token)
    assert not at.exception
    assert not nav_registers(at, PAGE)


PAGE_FUNCTIONS = sorted({p.function for p in MEMBER_PAGES if p.function is not None})


@pytest.mark.parametrize(
    ("function", "cell"),
    [
        pytest.param(f, g, id=f"{f}-{g.level.name.lower()}{'-own_unit' if g.own_unit else ''}")
        for f in PAGE_FUNCTIONS
        for g in choices(f)
    ],
)
def test_page_visibility_follows_the_matrix(open_app, function, cell):
    """A 団員 whose rank row holds exactly one grant reaches exactly the pages it allows."""
    tenant = make_tenant()
    permissions.update_matrix(
        admin(tenant),
        [
            CellChange(SubjectType.RANK, rank_id(tenant), f, cell if f == function else Grant())
            for f in Function
        ],
    )
    user = sign_in(tenant, rank="団員")
    at = open_app(user.token)
    assert not at.exception
    reachable = {p.path for p in MEMBER_PAGES if nav_registers(at, p.path)}
    assert reachable == expected_pages(function, cell)
