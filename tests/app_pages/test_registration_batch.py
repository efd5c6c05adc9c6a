"""アカウント管理's 一括発行 (#18) and the operator's view of the LINE Login setting, on the real
app and services (AppTest)."""

from __future__ import annotations

import uuid

import pytest

from services import registrations
from tests.app_pages.conftest import answer, dialog_lines, open_dialog, page_text, sign_in
from tests.app_pages.test_brigades import operator_token
from tests.factories import admin, make_member, make_tenant
from tests.fakes.line_server import configured

ACCOUNTS = "app_pages/accounts.py"
NO_LINE_LOGIN = {"HIKESHI_LINE_CHANNEL_ID": "", "HIKESHI_LINE_CHANNEL_SECRET": ""}
FILE_KEY = "accounts_batch_file"
FIRST, SECOND = "第5分団", "第6分団"  # the signed-in administrator is in 第1分団


def button(at, label: str):
    return next(b for b in at.button if b.label == label)


def accounts_page(open_app, token: str):
    at = open_app(token).switch_page(ACCOUNTS).run()
    assert not at.exception
    return at


def states(tenant) -> dict[uuid.UUID, str]:
    return {a.member_id: a.registration for a in registrations.list_accounts(admin(tenant))}


@pytest.mark.usefixtures("line_login_channel")
def test_administrator_issues_one_unit_and_downloads_one_file(open_app):
    tenant = make_tenant()
    user = sign_in(tenant)
    first = [make_member(tenant, affiliation=FIRST) for _ in range(2)]
    second = make_member(tenant, affiliation=SECOND)
    at = accounts_page(open_app, user.token)

    at.multiselect(key="accounts_batch_units").select(FIRST).run()
    assert "登録用紙を発行する団員: **2名**" in [m.value for m in at.markdown]
    button(at, "2名分を一括発行").click().run()
    assert dialog_lines(at)[0] == f"{FIRST}の2名に登録コードを発行します。よろしいですか？"
    assert all(s == "none" for s in states(tenant).values())
    answer(at, "実行する")

    assert not at.exception and open_dialog(at) is None
    assert [s.value for s in at.success] == ["2名の登録コードを発行しました。"]
    shown = states(tenant)
    assert [shown[m.id] for m in first] == ["issued", "issued"]
    assert shown[second.id] == "none" and shown[user.member.id] == "none"
    html, count, _ = at.session_state[FILE_KEY]
    assert count == 2 and html.count('<section class="sheet">') == 2
    assert all(m.name in html for m in first) and second.name not in html
    assert "登録用紙をダウンロード（A4・1名1枚・印刷用）" in page_text(at)

    button(at, "表示を閉じる").click().run()
    assert FILE_KEY not in at.session_state
    assert "登録用紙を発行する団員: **0名**" in [m.value for m in at.markdown]


@pytest.mark.usefixtures("line_login_channel")
def test_reissue_of_valid_codes_only_when_ticked(open_app):
    tenant = make_tenant()
    user = sign_in(tenant)
    holder = make_member(tenant, affiliation=FIRST)
    registrations.issue_registration(admin(tenant), holder.id)
    at = accounts_page(open_app, user.token)
    at.multiselect(key="accounts_batch_units").select(FIRST).run()

    assert "登録用紙を発行する団員: **0名**" in [m.value for m in at.markdown]
    assert any("有効な登録コードあり" in c.value for c in at.caption)
    assert not [b for b in at.button if b.label.endswith("一括発行")]

    at.checkbox(key="accounts_batch_reissue").check().run()
    button(at, "1名分を一括発行").click().run()
    answer(at, "実行する")

    html, count, _ = at.session_state[FILE_KEY]
    assert count == 1 and holder.name in html


def test_without_line_login_nothing_is_issued_and_the_page_says_why(open_app):
    tenant = make_tenant()
    user = sign_in(tenant)
    target = make_member(tenant)

    with configured(NO_LINE_LOGIN):
        at = accounts_page(open_app, user.token)
        at.selectbox[0].select(target.id).run()

    assert registrations.LINE_NOT_CONFIGURED in [w.value for w in at.warning]
    assert not [b for b in at.button if "発行" in b.label]
    assert not at.multiselect
    assert states(tenant)[target.id] == "none"


@pytest.mark.usefixtures("line_login_channel")
def test_sheets_pointing_at_this_pc_are_warned_about(open_app):
    user = sign_in(make_tenant())

    local = accounts_page(open_app, user.token)
    with configured({"HIKESHI_PUBLIC_BASE_URL": "https://hikeshi.example.jp"}):
        public = accounts_page(open_app, user.token)

    assert any("このパソコン自身" in w.value for w in local.warning)
    assert not any("このパソコン自身" in w.value for w in public.warning)
    assert any("https://hikeshi.example.jp" in c.value for c in public.caption)


def test_viewer_gets_no_batch_section(open_app):
    tenant = make_tenant()
    user = sign_in(tenant, rank="副分団長")
    make_member(tenant)

    at = accounts_page(open_app, user.token)

    assert not at.multiselect and "一括発行" not in page_text(at)


def test_operator_sees_whether_line_login_is_configured(open_app):
    token = operator_token()

    with configured(NO_LINE_LOGIN):
        missing = open_app(token)
    with configured(
        {"HIKESHI_LINE_CHANNEL_ID": "1650000000", "HIKESHI_LINE_CHANNEL_SECRET": "s" * 32}
    ):
        present = open_app(token)

    assert any("LINEログイン: 未設定" in w.value for w in missing.warning)
    assert any("LINEログイン: 設定済み" in i.value for i in present.info)
    assert any("/auth/line/callback" in i.value for i in present.info)
