"""Pages of the LINE flow and アカウント管理, on the real app and services (AppTest)."""

from __future__ import annotations

import pytest

from services import members, registrations
from services.signin import line, line_sessions, sessions
from tests.app_pages.conftest import (
    answer,
    dialog_lines,
    nav_registers,
    open_dialog,
    page_text,
    sign_in,
)
from tests.factories import admin, make_member, make_tenant, request_context
from tests.fakes.line_server import configured, new_sub

ACCOUNTS = "app_pages/accounts.py"
REGISTER = "app_pages/line_register.py"
LINE_ENV = {"HIKESHI_LINE_CHANNEL_ID": "1650000000", "HIKESHI_LINE_CHANNEL_SECRET": "s" * 32}
pytestmark = pytest.mark.usefixtures("line_login_channel")


def pending_token(sub: str | None = None, uid: str = "") -> str:
    token = line_sessions.complete_login(sub or new_sub(), uid, request_context()).token
    assert token is not None
    return token


def button(at, label: str):
    return next(b for b in at.button if b.label == label)


# ---------------------------------------------------------------------------
# Login page


def test_login_page_offers_line_only_when_configured(open_app):
    with configured(LINE_ENV):
        configured_page = open_app(None)
    with configured({"HIKESHI_LINE_CHANNEL_ID": "", "HIKESHI_LINE_CHANNEL_SECRET": ""}):
        plain_page = open_app(None)

    assert any('href="/auth/line/login"' in h.value for h in configured_page.html)
    assert "LINEでログイン" in page_text(configured_page)
    assert not any("/auth/line/login" in h.value for h in plain_page.html)


@pytest.mark.parametrize("error", sorted(line.MESSAGES))
def test_line_error_shows_the_japanese_message(open_app, error):
    at = open_app(None, line_error=error)

    assert [e.value for e in at.error] == [line.MESSAGES[error]]


def test_unknown_line_error_is_not_echoed(open_app):
    at = open_app(None, line_error="<i>forged</i>")

    assert not at.error and "forged" not in page_text(at)


# ---------------------------------------------------------------------------
# Code entry and brigade choice


def test_pending_line_login_sees_only_code_entry(open_app, engine):
    tenant = make_tenant()
    colleague = make_member(tenant)

    at = open_app(pending_token())

    assert not at.exception
    assert [t.value for t in at.title] == ["LINE連携の登録"]
    form = at.html[0].value
    assert 'action="/auth/line/register"' in form
    assert 'name="user_id"' in form and 'name="code"' in form
    assert not nav_registers(at, ACCOUNTS) and not nav_registers(at, "app_pages/roster.py")
    assert colleague.name not in page_text(at)


def test_code_entry_prefills_the_user_id_from_the_sheet(open_app, engine):
    tenant = make_tenant()
    issued = registrations.issue_registration(admin(tenant), make_member(tenant).id)

    at = open_app(pending_token(uid=registrations.normalise(issued.user_id)))

    assert f'value="{issued.user_id}"' in at.html[0].value
    assert issued.code not in page_text(at)


@pytest.mark.parametrize("error", sorted(registrations.MESSAGES))
def test_code_entry_shows_the_japanese_message(open_app, engine, error):
    at = open_app(pending_token(), register_error=error)

    assert [e.value for e in at.error] == [registrations.MESSAGES[error]]


def test_brigade_choice_lists_the_linked_brigades(open_app, engine):
    sub = new_sub()
    tenants = []
    for _ in range(2):
        tenant = make_tenant()
        tenants.append(tenant)
        member = make_member(tenant)
        issued = registrations.issue_registration(admin(tenant), member.id)
        actor = sessions.resolve(pending_token(sub, registrations.normalise(issued.user_id)))
        assert registrations.redeem(actor, user_id=issued.user_id, code=issued.code).token
    chooser = pending_token_for_linked(sub)

    at = open_app(chooser)

    assert [t.value for t in at.title] == ["消防団の選択"]
    forms = [h.value for h in at.html if 'action="/auth/line/brigade"' in h.value]
    assert len(forms) == 2
    assert {str(t) for t in tenants} == {
        f.split('name="tenant_id" value="')[1].split('"')[0] for f in forms
    }


def pending_token_for_linked(sub: str) -> str:
    """A LINE login (not from a sheet) of an account linked in several brigades."""
    token = line_sessions.complete_login(sub, "", request_context()).token
    assert sessions.resolve(token).kind == "line_choose"
    return token


# ---------------------------------------------------------------------------
# アカウント管理


def test_member_without_permission_gets_no_accounts_page(open_app):
    user = sign_in(make_tenant(), rank="団員")

    at = open_app(user.token)

    assert not nav_registers(at, ACCOUNTS)


def test_viewer_sees_status_but_no_actions(open_app):
    tenant = make_tenant()
    user = sign_in(tenant, rank="副分団長")
    other = make_member(tenant)

    at = open_app(user.token).switch_page(ACCOUNTS).run()

    assert not at.exception
    table = at.dataframe[0].value
    assert other.member_code in set(table["団員番号"])
    assert not [b for b in at.button if b.label.startswith("登録コード")]


def test_administrator_issues_a_code_and_gets_the_sheet(open_app):
    tenant = make_tenant()
    user = sign_in(tenant)
    target = make_member(tenant)
    at = open_app(user.token).switch_page(ACCOUNTS).run()

    at.selectbox[0].select(target.id).run()
    button(at, "登録コードを発行").click().run()

    assert not at.exception
    text = page_text(at)
    account = next(
        a for a in registrations.list_accounts(admin(tenant)) if a.member_id == target.id
    )
    assert account.registration == "issued" and account.user_id in text
    issued = at.session_state["accounts_issued"]
    assert issued.code in text and issued.member_id == target.id
    assert "登録用紙をダウンロード" in text

    button(at, "表示を閉じる").click().run()
    assert issued.code not in page_text(at)


def linked_member(tenant):
    target = make_member(tenant)
    issued = registrations.issue_registration(admin(tenant), target.id)
    registrations.redeem(
        sessions.resolve(pending_token()), user_id=issued.user_id, code=issued.code
    )
    return target


def account_of(tenant, member_id):
    return next(a for a in registrations.list_accounts(admin(tenant)) if a.member_id == member_id)


def test_picker_starts_empty_and_offers_nothing_until_a_member_is_chosen(open_app):
    tenant = make_tenant()
    user = sign_in(tenant)
    make_member(tenant)

    at = open_app(user.token).switch_page(ACCOUNTS).run()

    picker = at.selectbox[0]
    assert picker.value is None and picker.placeholder == "団員を選択してください"
    assert any(user.member.member_code in option for option in picker.options)
    assert not {"利用停止", "LINE連携を解除", "利用再開"} & {b.label for b in at.button}
    assert not [c for c in at.checkbox if c.key != "accounts_batch_reissue"]  # 一括発行's own


def test_administrator_is_offered_no_suspension_or_unlink_of_himself(open_app):
    tenant = make_tenant()
    user = sign_in(tenant)
    at = open_app(user.token).switch_page(ACCOUNTS).run()

    at.selectbox[0].select(user.member.id).run()

    assert not at.exception
    assert [i.value for i in at.info] == ["自分自身の利用停止・退団・連携解除はできません。"]
    assert not {"利用停止", "LINE連携を解除"} & {b.label for b in at.button}
    assert members.get_member(admin(tenant), user.member.id).status == "active"


def test_unlink_asks_in_a_dialog_naming_the_member(open_app):
    tenant = make_tenant()
    user = sign_in(tenant)
    target = linked_member(tenant)
    at = open_app(user.token).switch_page(ACCOUNTS).run()
    at.selectbox[0].select(target.id).run()

    button(at, "LINE連携を解除").click().run()
    assert dialog_lines(at) == [
        f"{target.name} さん（{target.member_code}）のLINE連携を解除します。よろしいですか？"
    ]
    answer(at, "キャンセル")
    assert open_dialog(at) is None
    assert account_of(tenant, target.id).line_linked

    button(at, "LINE連携を解除").click().run()
    answer(at, "実行する")

    assert not at.exception and open_dialog(at) is None
    assert not account_of(tenant, target.id).line_linked
    assert [s.value for s in at.success] == [f"{target.name} さんのLINE連携を解除しました。"]
    assert at.selectbox[0].value is None


def test_administrator_suspends_after_the_dialog_and_reactivates(open_app):
    tenant = make_tenant()
    user = sign_in(tenant)
    target = make_member(tenant)
    at = open_app(user.token).switch_page(ACCOUNTS).run()
    at.selectbox[0].select(target.id).run()

    button(at, "利用停止").click().run()
    assert dialog_lines(at) == [
        f"{target.name} さん（{target.member_code}）を利用停止にします。よろしいですか？"
    ]
    assert members.get_member(admin(tenant), target.id).status == "active"
    answer(at, "実行する")
    assert members.get_member(admin(tenant), target.id).status == "suspended"
    assert open_dialog(at) is None and at.selectbox[0].value is None

    at.selectbox[0].select(target.id).run()
    button(at, "利用再開").click().run()
    assert members.get_member(admin(tenant), target.id).status == "active"
    assert open_dialog(at) is None and at.selectbox[0].value is None


def test_issuing_a_code_needs_no_dialog_and_empties_the_picker(open_app):
    tenant = make_tenant()
    user = sign_in(tenant)
    target = make_member(tenant)
    at = open_app(user.token).switch_page(ACCOUNTS).run()
    at.selectbox[0].select(target.id).run()

    button(at, "登録コードを発行").click().run()

    assert open_dialog(at) is None
    assert account_of(tenant, target.id).registration == "issued"
    assert at.selectbox[0].value is None
