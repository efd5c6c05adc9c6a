"""団員名簿 page: the brigade's own members only, the add form, and the suspend button."""

from __future__ import annotations

import uuid

import pytest
from streamlit.testing.v1 import AppTest

from models import MemberLine
from models.callout import FriendStatus
from models.enums import AuditCategory, Function, Level, MemberStatus
from services import members, permissions
from services.db import unit_of_work
from services.errors import PermissionDenied
from services.permissions import CellChange, Grant
from services.signin import sessions
from tests.app_pages.conftest import answer, dialog_lines, open_dialog, page_text, sign_in
from tests.factories import admin, audit_events, last_audit_seq, make_member, make_tenant, rank_id

ROSTER = "app_pages/roster.py"
DETAIL = "詳細を表示する団員"
SELF_ACTION = "自分自身の利用停止・退団・連携解除はできません。"


def open_roster(open_app, token: str) -> AppTest:
    at = open_app(token)
    at.switch_page(ROSTER).run()
    assert not at.exception
    assert [t.value for t in at.title] == ["団員名簿"]
    return at


def widget(elements, label: str):
    return next(e for e in elements if e.label == label)


def choose(at: AppTest, member) -> None:
    widget(at.selectbox, DETAIL).select(member.id).run()


def status_of(tenant_id: uuid.UUID, member) -> MemberStatus:
    return members.get_member(admin(tenant_id), member.id).status


def codes(tenant_id: uuid.UUID) -> set[str]:
    return {m.member_code for m in members.list_members(admin(tenant_id))}


def test_roster_lists_exactly_the_brigades_members(open_app):
    tenant, other = make_tenant(), make_tenant()
    user = sign_in(tenant)
    own = [make_member(tenant) for _ in range(3)]
    foreign = [
        make_member(other, member_code=f"X{uuid.uuid4().hex[:8]}", name=f"別団　花子{i}")
        for i in range(2)
    ]

    at = open_roster(open_app, user.token)

    table = at.dataframe[0].value
    assert set(table["団員番号"]) == {user.member.member_code, *(m.member_code for m in own)}
    assert at.caption[0].value == "4 名"
    text = page_text(at)
    for m in foreign:
        assert m.name not in text and m.member_code not in text


def fill_add_form(at: AppTest, **values: str) -> None:
    for label, value in values.items():
        widget(at.text_input, label).input(value)
    widget(at.button, "登録").click().run()


def test_add_form_creates_the_member_with_one_audit_event(open_app, engine):
    tenant = make_tenant()
    user = sign_in(tenant)
    at = open_roster(open_app, user.token)
    seq = last_audit_seq(engine, tenant)

    fill_add_form(at, **{"団員番号 *": "A-101", "氏名 *": "追加　次郎", "電話番号": "09012345678"})

    assert not at.exception and not at.error
    assert [s.value for s in at.success] == ["追加　次郎 さんを登録しました。"]
    added = next(m for m in members.list_members(admin(tenant)) if m.member_code == "A-101")
    assert (added.name, added.phone, added.rank_name) == ("追加　次郎", "090-1234-5678", "団員")
    assert "A-101" in set(at.dataframe[0].value["団員番号"])
    events = audit_events(engine, tenant, after_seq=seq, category=AuditCategory.OPERATION)
    assert [(e.action, e.target_id) for e in events] == [("member.create", str(added.id))]


def test_add_form_rejects_bad_input_and_writes_nothing(open_app, engine):
    tenant = make_tenant()
    user = sign_in(tenant)
    at = open_roster(open_app, user.token)
    before = codes(tenant)
    seq = last_audit_seq(engine, tenant)

    fill_add_form(at, **{"団員番号 *": "A-102", "氏名 *": "誤入力　三郎", "電話番号": "123"})

    assert not at.exception
    message = at.error[0].value
    assert message.startswith("入力内容を確認してください。")
    assert "電話番号の形式が正しくありません" in message
    assert codes(tenant) == before
    assert audit_events(engine, tenant, after_seq=seq, category=AuditCategory.OPERATION) == []


def test_detail_picker_starts_empty(open_app):
    tenant = make_tenant()
    user = sign_in(tenant)
    at = open_roster(open_app, user.token)

    picker = widget(at.selectbox, DETAIL)
    assert picker.value is None and picker.placeholder == "団員を選択してください"
    assert not at.subheader
    assert not {"suspend", "retire"} & {b.key for b in at.button}


def test_suspend_asks_in_a_dialog_naming_the_member(open_app, engine):
    tenant = make_tenant()
    user = sign_in(tenant)
    target = make_member(tenant)
    at = open_roster(open_app, user.token)
    choose(at, target)

    at.button(key="suspend").click().run()
    assert dialog_lines(at) == [
        f"{target.name} さん（{target.member_code}）を利用停止にします。よろしいですか？"
    ]
    answer(at, "キャンセル")
    assert open_dialog(at) is None and status_of(tenant, target) == MemberStatus.ACTIVE

    at.button(key="suspend").click().run()
    answer(at, "実行する")

    assert not at.exception and open_dialog(at) is None
    assert [s.value for s in at.success] == [
        f"{target.name} さん（{target.member_code}）の利用を停止しました。"
    ]
    assert status_of(tenant, target) == MemberStatus.SUSPENDED
    row = at.dataframe[0].value.set_index("団員番号").loc[target.member_code]
    assert row["状態"] == "停止中"
    assert widget(at.selectbox, DETAIL).value is None


def test_retire_asks_in_a_dialog_naming_the_member(open_app):
    tenant = make_tenant()
    user = sign_in(tenant)
    target = make_member(tenant)
    at = open_roster(open_app, user.token)
    choose(at, target)

    at.button(key="retire").click().run()
    assert dialog_lines(at) == [
        f"{target.name} さん（{target.member_code}）を退団として記録します。よろしいですか？"
    ]
    assert status_of(tenant, target) == MemberStatus.ACTIVE
    answer(at, "実行する")

    assert status_of(tenant, target) == MemberStatus.RETIRED
    assert open_dialog(at) is None and widget(at.selectbox, DETAIL).value is None


def test_own_entry_offers_no_suspension_or_retirement(open_app):
    tenant = make_tenant()
    user = sign_in(tenant)
    other = make_member(tenant)
    at = open_roster(open_app, user.token)

    choose(at, user.member)
    assert [i.value for i in at.info] == [SELF_ACTION]
    assert not {"suspend", "retire"} & {b.key for b in at.button}
    assert "保存" in [b.label for b in at.button]  # editing his own details stays possible

    select_rows(at, {user.member.member_code, other.member_code})
    assert SELF_ACTION in [i.value for i in at.info]
    assert "bulk_suspend" not in [b.key for b in at.button]
    assert status_of(tenant, user.member) == MemberStatus.ACTIVE


@pytest.mark.parametrize("rank", ["副分団長", "部長"])
def test_suspend_button_is_absent_without_account_edit_permission(open_app, rank):
    tenant = make_tenant()
    user = sign_in(tenant, rank=rank)
    target = make_member(tenant)
    at = open_roster(open_app, user.token)

    choose(at, target)

    assert not at.exception
    assert at.subheader[0].value.startswith(target.name)
    assert "suspend" not in [b.key for b in at.button]
    assert "利用停止" not in [b.label for b in at.button]
    assert members.get_member(admin(tenant), target.id).status == MemberStatus.ACTIVE


# ---------------------------------------------------------------------------
# Filters, bulk actions, labels, readmission, narrowed editors, viewers
# ---------------------------------------------------------------------------


def select_rows(at: AppTest, member_codes: set[str]) -> None:
    """Tick the table rows of the given members (the selection state of st.dataframe)."""
    table = at.dataframe[0]
    rows = [i for i, code in enumerate(table.value["団員番号"]) if code in member_codes]
    at.session_state[table.key] = {"selection": {"rows": rows, "columns": []}}
    at.run()


def test_filters_by_label_and_line_link(open_app):
    tenant = make_tenant()
    user = sign_in(tenant)
    second = make_member(tenant, affiliation="第2分団")
    below = make_member(tenant, affiliation="第2分団 第1部")
    with unit_of_work(tenant) as db:
        db.add(
            MemberLine(
                tenant_id=tenant,
                member_id=below.id,
                sub_enc="x",
                sub_bidx="y",
                friend_status=FriendStatus.BLOCKED,
            )
        )
        db.commit()
    at = open_roster(open_app, user.token)

    widget(at.multiselect, "所属").select("第2分団").run()
    assert list(at.dataframe[0].value["団員番号"]) == [second.member_code]
    widget(at.multiselect, "所属").unselect("第2分団").run()
    widget(at.selectbox, "LINE連携").select("連携済み").run()
    table = at.dataframe[0].value
    assert list(table["団員番号"]) == [below.member_code]
    assert list(table["LINE"]) == ["連携済み（ブロック中）"]  # a call-out does not reach them


def test_bulk_affiliation_change_on_a_selection(open_app, engine):
    tenant = make_tenant()
    user = sign_in(tenant)
    picked = [make_member(tenant, affiliation="第1分団") for _ in range(2)]
    left = make_member(tenant, affiliation="第1分団")
    at = open_roster(open_app, user.token)
    seq = last_audit_seq(engine, tenant)

    select_rows(at, {m.member_code for m in picked})
    assert "選択した 2 名への一括操作" in page_text(at)
    at.text_input(key="bulk_affiliation").input("第3分団 第1部")
    at.button(key="bulk_affiliation_apply").click().run()

    assert not at.exception and not at.error
    assert [s.value for s in at.success] == ["2 名の所属を変更しました。"]
    after = {m.id: m.affiliation for m in members.list_members(admin(tenant))}
    assert [after[m.id] for m in picked] == ["第3分団 第1部"] * 2
    assert after[left.id] == "第1分団"
    events = audit_events(engine, tenant, after_seq=seq, category=AuditCategory.OPERATION)
    assert sorted(e.target_id for e in events) == sorted(str(m.id) for m in picked)


def test_bulk_suspend_asks_in_a_dialog_naming_the_members(open_app):
    tenant = make_tenant()
    user = sign_in(tenant)
    picked = [make_member(tenant) for _ in range(2)]
    at = open_roster(open_app, user.token)

    select_rows(at, {m.member_code for m in picked})
    assert "bulk_confirm" not in [c.key for c in at.checkbox]
    at.button(key="bulk_suspend").click().run()
    question, targets = dialog_lines(at)
    assert question == "選択した団員のうち在籍中の 2 名を利用停止にします。よろしいですか？"
    assert all(f"{m.member_code} {m.name}" in targets for m in picked)
    answer(at, "キャンセル")
    assert open_dialog(at) is None
    assert [status_of(tenant, m) for m in picked] == [MemberStatus.ACTIVE] * 2

    at.button(key="bulk_suspend").click().run()
    answer(at, "実行する")

    assert [s.value for s in at.success] == ["2 名の利用を停止しました。"]
    statuses = {m.id: m.status for m in members.list_members(admin(tenant))}
    assert [statuses[m.id] for m in picked] == [MemberStatus.SUSPENDED] * 2
    assert statuses[user.member.id] == MemberStatus.ACTIVE
    assert open_dialog(at) is None
    assert "bulk_suspend" not in [b.key for b in at.button]  # the selection is gone


def test_retired_member_is_readmitted(open_app):
    tenant = make_tenant()
    user = sign_in(tenant)
    target = members.retire_member(admin(tenant), make_member(tenant).id)
    at = open_roster(open_app, user.token)
    widget(at.multiselect, "状態").select("退団").run()
    choose(at, target)

    assert "reactivate" not in [b.key for b in at.button]
    assert "retire" not in [b.key for b in at.button]
    at.button(key="readmit").click().run()

    assert [s.value for s in at.success] == ["在籍に戻しました。"]
    assert members.get_member(admin(tenant), target.id).status == MemberStatus.ACTIVE


def test_labels_are_listed_and_renamed(open_app):
    tenant = make_tenant()
    user = sign_in(tenant)  # 第1分団
    make_member(tenant, affiliation="第1分団 第2部")
    at = open_roster(open_app, user.token)

    labels = next(d.value for d in at.dataframe if "うち在籍" in d.value.columns)
    assert list(zip(labels["所属"], labels["団員数"], strict=True)) == [
        ("第1分団", 1),
        ("第1分団 第2部", 1),
    ]
    at.selectbox(key="rename_old").select("第1分団").run()
    at.text_input(key="rename_new").input("第一分団")
    at.checkbox(key="rename_below").check()
    at.button(key="rename_apply").click().run()

    assert [s.value for s in at.success] == ["2 名の所属を「第一分団」に変更しました。"]
    assert {a.label for a in members.list_affiliations(admin(tenant))} == {
        "第一分団",
        "第一分団 第2部",
    }


def test_narrowed_editor_edits_only_their_own_unit(open_app):
    tenant = make_tenant()
    hancho = rank_id(tenant, "班長")
    permissions.update_matrix(
        admin(tenant),
        [CellChange("rank", hancho, Function.ROSTER, Grant(Level.EDIT, own_unit=True))],
    )
    user = sign_in(tenant, rank="班長")  # 第1分団
    inside = make_member(tenant, affiliation="第1分団 第2部")
    outside = make_member(tenant, affiliation="第2分団")
    at = open_roster(open_app, user.token)

    add_form = at.get("form")[0]
    assert widget(add_form.text_input, "所属").value == "第1分団"
    choose(at, inside)
    assert "保存" in [b.label for b in at.button] and "retire" in [b.key for b in at.button]
    choose(at, outside)
    assert "保存" not in [b.label for b in at.button]
    assert "retire" not in [b.key for b in at.button]
    assert at.json  # read-only details

    actor = sessions.resolve(user.token)
    with pytest.raises(PermissionDenied):
        members.retire_member(actor, outside.id)
    assert members.get_member(admin(tenant), outside.id).status == MemberStatus.ACTIVE
    home = open_app(user.token)
    home.switch_page("app_pages/home.py").run()
    assert "編集（自所属: 第1分団）" in page_text(home)


def test_viewer_gets_no_editing_controls_and_the_services_refuse(open_app):
    tenant = make_tenant()
    user = sign_in(tenant, rank="部長")  # 団員名簿: 閲覧
    target = make_member(tenant)
    at = open_roster(open_app, user.token)

    assert not at.get("form")
    assert not [b for b in at.button if b.key in {"rename_apply", "bulk_affiliation_apply"}]
    assert at.dataframe[0].key is None  # no row selection, so no bulk actions
    choose(at, target)
    assert not {b.key for b in at.button} & {"suspend", "retire", "readmit"}

    actor = sessions.resolve(user.token)
    for call in (
        lambda: members.retire_member(actor, target.id),
        lambda: members.bulk_set_affiliation(actor, [target.id], affiliation="第9分団"),
        lambda: members.rename_affiliation(actor, old="第1分団", new="第9分団"),
        lambda: members.bulk_suspend(actor, [target.id]),
    ):
        with pytest.raises(PermissionDenied):
            call()
    assert members.get_member(admin(tenant), target.id) == target


def test_the_rank_order_column_sorts_ranks_as_ranked_not_as_text(open_app):
    tenant = make_tenant()
    user = sign_in(tenant)  # 団長
    for rank in ("団員", "班長", "副団長"):
        make_member(tenant, rank_id=rank_id(tenant, rank))
    at = open_roster(open_app, user.token)

    table = at.dataframe[0].value
    by_order = table.sort_values("階級順")["階級"].drop_duplicates().tolist()
    assert by_order == ["団長", "副団長", "班長", "団員"]  # as text: 副団長, 団員, 団長, 班長
