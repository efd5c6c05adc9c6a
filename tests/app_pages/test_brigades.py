"""The operator's 消防団管理 page: creating a brigade and cancelling one, on real services."""

from __future__ import annotations

import uuid
from datetime import date

from services import tenant_lifecycle, tenants
from services.signin import local
from tests.app_pages.conftest import PASSWORD, nav_registers, sign_in
from tests.factories import PLATFORM, make_tenant


def operator_token() -> str:
    login_name = f"operator-{uuid.uuid4().hex[:8]}"
    local.create_account(PLATFORM, login_name=login_name, password=PASSWORD, is_operator=True)
    token = local.login(login_name, PASSWORD, local.RequestContext()).token
    assert token is not None
    return token


def widget(elements, label: str):
    return next(e for e in elements if e.label == label)


def test_operator_creates_a_brigade_with_its_administrator(open_app):
    at = open_app(operator_token())
    name = f"新設消防団{uuid.uuid4().hex[:6]}"
    for label, value in {
        "消防団名 *": name,
        "団員番号 *": "A0001",
        "氏名 *": "山田　太郎",
        "ログイン名 *": f"chief-{uuid.uuid4().hex[:8]}",
        "初期パスワード（12文字以上） *": PASSWORD,
    }.items():
        widget(at.text_input, label).input(value)
    widget(at.button, "作成").click().run()

    assert not at.exception
    assert f"「{name}」を作成しました。" in [s.value for s in at.success]
    table = at.dataframe[0].value
    assert table.loc[table["消防団"] == name, "状態"].tolist() == ["利用中"]
    # the form starts empty again: the initial password is not left in it (#18)
    assert {w.label: w.value for w in at.text_input if w.label.endswith(" *")} == dict.fromkeys(
        ("消防団名 *", "団員番号 *", "氏名 *", "ログイン名 *", "初期パスワード（12文字以上） *"), ""
    )


def test_a_refused_brigade_keeps_what_was_typed(open_app):
    at = open_app(operator_token())
    widget(at.text_input, "消防団名 *").input("入力途中消防団")
    widget(at.text_input, "初期パスワード（12文字以上） *").input("short")
    widget(at.button, "作成").click().run()

    assert not at.exception and at.error
    assert widget(at.text_input, "消防団名 *").value == "入力途中消防団"


def test_operator_cancels_a_brigade_and_sees_the_deletion_deadline(open_app):
    tenant = make_tenant(f"解約予定消防団{uuid.uuid4().hex[:6]}")
    chief = sign_in(tenant)
    name = next(b.name for b in brigades() if b.id == tenant)
    at = open_app(operator_token())

    widget(at.selectbox, "消防団").set_value(name)
    widget(at.date_input, "解約日").set_value(date(2026, 12, 25))
    widget(at.button, "解約する").click().run()
    assert at.error, "cancelling without the confirmation must be refused"
    assert tenant in {b.id for b in brigades() if b.status == "active"}

    widget(at.checkbox, "解約すると元に戻せないことを確認しました").check()
    widget(at.button, "解約する").click().run()

    assert not at.exception
    assert f"「{name}」を解約しました。データ削除期限: 2027-01-15" in [s.value for s in at.success]
    row = at.dataframe[0].value.set_index("消防団").loc[name]
    assert row["状態"] == "解約（削除待ち）"
    assert str(row["データ削除期限"]).startswith("2027-01-15")
    # The brigade's administrator is signed out at once: only the login page is registered.
    signed_out = open_app(chief.token)
    assert nav_registers(signed_out, "app_pages/login.py")
    assert not nav_registers(signed_out, "app_pages/roster.py")
    assert tenant in {p.tenant_id for p in tenant_lifecycle.pending_deletions(PLATFORM)}


def brigades():
    return tenants.list_brigades(PLATFORM)


def test_operator_lets_a_locked_out_administrator_back_in(open_app):
    from models.enums import MemberStatus
    from services import members
    from tests.factories import admin, make_member, rank_id

    tenant = make_tenant(f"締め出し消防団{uuid.uuid4().hex[:6]}")
    chief = make_member(tenant, rank_id=rank_id(tenant, "団員"), member_code="C-9")
    members.suspend_member(admin(tenant), chief.id)
    name = next(b.name for b in brigades() if b.id == tenant)
    at = open_app(operator_token())

    at.selectbox[1].set_value(name)
    widget(at.text_input, "団員番号").input("C-9")
    widget(at.checkbox, "役職・権限の管理権限を付与する").check()
    widget(at.button, "復旧する").click().run()

    assert not at.exception
    assert [s.value for s in at.success] == [
        f"「{name}」の団員 C-9: 利用停止を解除、役職「権限管理（復旧）」（役職・権限 管理）を付与しました。"
    ]
    after = members.get_member(admin(tenant), chief.id)
    assert after.status == MemberStatus.ACTIVE and after.role_names == ["権限管理（復旧）"]
