"""LINE Login in Chromium: the real server (`streamlit run server.py`) configured for the fake
LINE server, the browser clicking through login button → consent → back in the app."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect
from sqlalchemy import Engine

from services import members, registrations
from services.signin import line, sessions
from tests.e2e.conftest import account, serve_app, submit_login
from tests.factories import admin, make_member, make_tenant
from tests.fakes.line_server import LOGIN_CHANNEL_ENV, FakeLine, FakeUser, configured, serve

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def fake_line() -> Iterator[FakeLine]:
    with serve(FakeLine()) as fake:
        yield fake


@pytest.fixture(scope="module")
def line_app(engine: Engine, fake_line: FakeLine) -> Iterator[str]:
    """A server of its own: the shared one is started without LINE settings."""
    with serve_app("hikeshi-e2e-line-", fake_line.settings_env()) as (url, _log):
        fake_line.redirect_uris = {url + line.CALLBACK_PATH}
        yield url


@pytest.fixture
def context(browser: Browser, fake_line: FakeLine) -> Iterator[BrowserContext]:
    fake_line.user = FakeUser(name="LINE 花子")
    context = browser.new_context()
    yield context
    context.close()


def issue(line_app: str, tenant, member_id) -> registrations.IssuedRegistration:
    """Issued as the administrator would on this server (the sheet's URL names it)."""
    with configured({**LOGIN_CHANNEL_ENV, "HIKESHI_PUBLIC_BASE_URL": line_app}):
        return registrations.issue_registration(admin(tenant), member_id)


def sidebar(page: Page):
    return page.get_by_test_id("stSidebar")


def consent(page: Page, fake_line: FakeLine) -> None:
    expect(page).to_have_url(re.compile(re.escape(fake_line.base_url) + "/oauth2/v2.1/authorize"))
    expect(page.get_by_text("LINE 花子 としてログイン")).to_be_visible()
    page.get_by_role("button", name="許可する").click()


def test_registration_sheet_to_linked_member(context, line_app, fake_line):
    tenant = make_tenant()
    member = make_member(tenant)
    issued = issue(line_app, tenant, member.id)
    assert issued.url.startswith(line_app)
    page = context.new_page()

    page.goto(issued.url)
    consent(page, fake_line)

    expect(page.get_by_role("heading", name="LINE連携の登録")).to_be_visible()
    expect(page.locator("input[name=user_id]")).to_have_value(issued.user_id)
    expect(sidebar(page)).not_to_contain_text("団員名簿")
    page.locator("input[name=code]").fill(issued.code.replace("-", "").lower())
    page.get_by_role("button", name="登録する").click()

    expect(page.get_by_text(f"ようこそ、{member.name} さん。")).to_be_visible()
    session = next(c for c in context.cookies() if c["name"] == "hikeshi_session")
    assert session["httpOnly"] is True and session["sameSite"] == "Lax"
    assert line.AUTH_COOKIE not in {c["name"] for c in context.cookies()}


def test_line_button_logs_a_linked_member_in(context, line_app, fake_line):
    tenant = make_tenant()
    member = make_member(tenant)
    issued = issue(line_app, tenant, member.id)
    page = context.new_page()
    page.goto(issued.url)
    consent(page, fake_line)
    page.locator("input[name=code]").fill(issued.code)
    page.get_by_role("button", name="登録する").click()
    expect(page.get_by_text(f"ようこそ、{member.name} さん。")).to_be_visible()
    sidebar(page).get_by_role("button", name="ログアウト").click()
    expect(page.get_by_text("ログアウトしました。")).to_be_visible()

    page.get_by_role("link", name="LINEでログイン").click()
    consent(page, fake_line)

    expect(page.get_by_text(f"ようこそ、{member.name} さん。")).to_be_visible()
    expect(sidebar(page)).to_contain_text(member.name)


def test_unlinked_line_account_sees_only_code_entry(context, line_app, fake_line):
    page = context.new_page()
    page.goto(line_app)

    page.get_by_role("link", name="LINEでログイン").click()
    consent(page, fake_line)

    expect(page.get_by_role("heading", name="LINE連携の登録")).to_be_visible()
    page.locator("input[name=user_id]").fill("ABCD-EFGH")
    page.locator("input[name=code]").fill("WRONG-CODE")
    page.get_by_role("button", name="登録する").click()
    expect(page.get_by_text(registrations.MESSAGES["invalid"])).to_be_visible()
    page.goto(f"{line_app}/roster")
    expect(page.get_by_role("heading", name="LINE連携の登録")).to_be_visible()


def test_suspended_member_is_turned_away(context, line_app, fake_line):
    tenant = make_tenant()
    member = make_member(tenant)
    issued = issue(line_app, tenant, member.id)
    page = context.new_page()
    page.goto(issued.url)
    consent(page, fake_line)
    page.locator("input[name=code]").fill(issued.code)
    page.get_by_role("button", name="登録する").click()
    expect(page.get_by_text(f"ようこそ、{member.name} さん。")).to_be_visible()

    members.suspend_member(admin(tenant), member.id)
    page.reload()
    page.get_by_role("link", name="LINEでログイン").click()
    consent(page, fake_line)

    expect(page.get_by_text(line.MESSAGES["inactive"])).to_be_visible()
    expect(sidebar(page)).to_have_count(0)
    left = [c["value"] for c in context.cookies() if c["name"] == sessions.COOKIE_NAME]
    assert all(sessions.resolve(token) is None for token in left)  # only the revoked one


def test_bulk_registration_sheets_download_as_one_page_per_member(browser: Browser, line_app):
    """#18: アカウント管理 → 一括発行 → the dialog → one HTML file; printed by Chromium, it is
    one A4 page per member, each with that member's code."""
    from tests.factories import rank_id

    tenant = make_tenant()
    chief = make_member(tenant, rank_id=rank_id(tenant, "団長"))
    login_name = account(tenant, chief)
    crew = [chief, *(make_member(tenant) for _ in range(3))]  # none linked to LINE yet
    context = browser.new_context(accept_downloads=True)
    page = context.new_page()
    submit_login(page, line_app, login_name)
    page.get_by_test_id("stSidebar").get_by_role("link", name="アカウント管理").click()
    expect(page.get_by_role("heading", name="一括発行")).to_be_visible()

    issue = page.get_by_role("button", name=re.compile(r"^\d+名分を一括発行$"))
    expect(issue).to_have_text("4名分を一括発行")
    issue.click()
    page.get_by_role("dialog").get_by_role("button", name="実行する").click()
    with page.expect_download() as done:
        page.get_by_role("button", name="登録用紙をダウンロード（A4・1名1枚・印刷用）").click()
    html = Path(done.value.path()).read_text(encoding="utf-8")

    sheet = context.new_page()
    sheet.set_content(html)
    printed = sheet.pdf(format="A4")
    assert len(re.findall(rb"/Type\s*/Page(?!s)", printed)) == len(crew)  # one A4 page each
    for member in crew:
        assert member.member_code in html
    context.close()
