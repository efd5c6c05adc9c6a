"""What only a browser shows: the login form post, the HttpOnly cookie, navigation, logout."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from playwright.sync_api import Browser, Page, expect
from sqlmodel import Session as DbSession
from sqlmodel import select

from models import Session as UserSession
from models.base import utcnow
from services.db import set_tenant
from services.signin import owners, sessions
from services.signin.local import MESSAGES
from tests.e2e.conftest import PASSWORD, Brigade, submit_login

pytestmark = pytest.mark.e2e


def sidebar(page: Page):
    return page.get_by_test_id("stSidebar")


def expect_login_form(page: Page) -> None:
    expect(page.locator("form.hikeshi-login input[name=login_name]")).to_be_visible()
    expect(sidebar(page)).to_have_count(0)


@pytest.mark.both_databases
def test_login_roster_and_logout(browser: Browser, base_url: str, brigade: Brigade):
    context = browser.new_context()
    page = context.new_page()

    submit_login(page, base_url, brigade.admin_login)

    expect(sidebar(page)).to_contain_text(brigade.name)
    session = next(c for c in context.cookies() if c["name"] == "hikeshi_session")
    assert session["httpOnly"] is True
    assert session["sameSite"] == "Lax"

    sidebar(page).get_by_role("link", name="団員名簿").click()
    expect(page).to_have_url(re.compile(r"/roster$"))
    expect(page.get_by_text(f"{len(brigade.members)} 名", exact=True)).to_be_visible()
    grid = page.get_by_test_id("stDataFrame").locator("table[role=grid]")
    for member in brigade.members:
        expect(grid).to_contain_text(member.member_code)

    sidebar(page).get_by_role("button", name="ログアウト").click()
    expect_login_form(page)
    expect(page.get_by_text("ログアウトしました。")).to_be_visible()
    assert "hikeshi_session" not in {c["name"] for c in context.cookies()}
    context.close()

    replay = browser.new_context()
    replay.add_cookies([{"name": "hikeshi_session", "value": session["value"], "url": base_url}])
    page = replay.new_page()
    page.goto(f"{base_url}/roster")
    expect_login_form(page)
    expect(page.get_by_text(brigade.name)).to_have_count(0)
    replay.close()


def test_wrong_password_shows_the_japanese_error(browser: Browser, base_url: str, brigade):
    context = browser.new_context()
    page = context.new_page()

    submit_login(page, base_url, brigade.member_login, password="wrong horse battery staple")

    expect(page).to_have_url(re.compile(r"login_error=invalid"))
    expect(page.get_by_text(MESSAGES["invalid"])).to_be_visible()
    assert MESSAGES["invalid"] == "ログイン名またはパスワードが正しくありません。"
    expect_login_form(page)
    assert "hikeshi_session" not in {c["name"] for c in context.cookies()}
    context.close()


def test_rank_without_roster_permission_cannot_open_it_by_url(
    browser: Browser, base_url: str, brigade: Brigade
):
    context = browser.new_context()
    page = context.new_page()
    submit_login(page, base_url, brigade.member_login)
    expect(sidebar(page)).to_contain_text(brigade.name)

    page.goto(f"{base_url}/roster")

    # A Japanese refusal at that address, not Streamlit's English "Page not found" dialog
    expect(page.get_by_role("heading", name="このページは表示できません")).to_be_visible()
    expect(page.get_by_text("このページを表示する権限がありません。")).to_be_visible()
    expect(page.get_by_role("dialog")).to_have_count(0)
    expect(sidebar(page)).to_contain_text(brigade.name)
    expect(page.get_by_role("heading", name="団員名簿")).to_have_count(0)
    expect(page.get_by_role("link", name="団員名簿")).to_have_count(0)
    for member in brigade.members[2:]:
        expect(page.get_by_text(member.member_code)).to_have_count(0)
    # an operator's page likewise
    page.goto(f"{base_url}/brigades")
    expect(page.get_by_text("このページを表示する権限がありません。")).to_be_visible()
    expect(page.get_by_role("dialog")).to_have_count(0)
    # an address that is no page at all: a Japanese 404, not Streamlit's English dialog
    response = page.goto(f"{base_url}/rostr")
    assert response is not None and response.status == 404
    expect(page.get_by_role("heading", name="ページが見つかりません")).to_be_visible()
    expect(page.get_by_text("アドレス「/rostr」のページはありません。")).to_be_visible()
    page.get_by_role("link", name="火消し Hikeshi のトップページへ").click()
    expect(sidebar(page)).to_contain_text(brigade.name)
    expect(page.get_by_role("dialog")).to_have_count(0)
    context.close()


def test_a_bookmarked_page_asks_for_the_login_then_opens(
    browser: Browser, base_url: str, brigade: Brigade
):
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{base_url}/roster")
    expect(page.get_by_role("heading", name="ログイン")).to_be_visible()
    expect(page.get_by_role("dialog")).to_have_count(0)
    page.get_by_label("ログイン名").fill(brigade.admin_login)
    page.get_by_label("パスワード").fill(PASSWORD)
    page.get_by_role("button", name="ログイン").click()
    expect(page).to_have_url(re.compile(r"/roster$"))
    expect(page.get_by_role("heading", name="団員名簿")).to_be_visible()
    context.close()


def end_session_in(engine, token: str, seconds: int) -> None:
    """Bring the session's absolute end to `seconds` from now, as if it had been open for
    almost its whole lifetime."""
    digest = sessions.token_hash(token)
    with DbSession(engine) as db:
        set_tenant(db, owners.session_tenant(db, digest))
        row = db.exec(select(UserSession).where(UserSession.token_hash == digest)).one()
        row.expires_at = utcnow() + timedelta(seconds=seconds)
        db.add(row)
        db.commit()


def test_the_sidebar_warns_before_the_session_ends_and_says_when_it_has(
    browser: Browser, base_url: str, brigade: Brigade, engine
):
    """#18: a form submitted after the session ended lost what was typed, with no warning: the
    sidebar now warns in the last five minutes and says so when the session has ended, by CSS
    delays counted from the page's last run (no script, no rerun)."""
    context = browser.new_context()
    page = context.new_page()
    submit_login(page, base_url, brigade.admin_login)
    expect(sidebar(page)).to_contain_text(brigade.name)
    soon = sidebar(page).locator(".hk-expiry-soon")
    ended = sidebar(page).locator(".hk-expiry-ended")
    expect(soon).to_be_hidden()  # 30 minutes to go
    expect(ended).to_be_hidden()

    token = next(c["value"] for c in context.cookies() if c["name"] == "hikeshi_session")
    end_session_in(engine, token, seconds=10)
    page.reload()
    expect(soon).to_be_visible()
    expect(soon).to_contain_text("まもなく")
    expect(soon).to_contain_text("入力中の内容は保存されないため、先に保存してください。")
    expect(ended).to_be_hidden()

    expect(ended).to_be_visible(timeout=15_000)
    expect(ended).to_contain_text("ログインの有効期限が切れたため、ログアウトしました。")
    expect(soon).to_be_hidden()
    # shown at the end, not before it: the next click finds the session over, and says why
    sidebar(page).get_by_role("link", name="団員名簿").click()
    expect(page.locator("form.hikeshi-login input[name=login_name]")).to_be_visible()
    expect(page.get_by_text(sessions.ENDED["absolute_timeout"])).to_be_visible()
    # within the same browser session Streamlit may keep the (emptied) sidebar's frame: what
    # matters is that no page of the brigade is offered any more
    expect(page.get_by_role("link", name="団員名簿")).to_have_count(0)
    expect(page.get_by_text(brigade.name)).to_have_count(0)
    context.close()
