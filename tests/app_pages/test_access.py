"""Who gets which page: anonymous visitors, ranks without the roster, suspended members."""

from __future__ import annotations

import pytest

from services import members
from services.signin import sessions
from services.signin.local import MESSAGES
from tests.app_pages.conftest import nav_registers, page_text, sign_in
from tests.factories import admin, make_member, make_tenant
from ui.registry import specs_for

ROSTER = "app_pages/roster.py"


def assert_login_page(at) -> None:
    assert not at.exception
    assert [t.value for t in at.title] == ["火消し Hikeshi"]
    assert any('action="/auth/login"' in h.value for h in at.html)
    assert not at.sidebar.children
    assert not nav_registers(at, ROSTER)


def test_anonymous_visitor_gets_only_the_login_page(open_app):
    tenant = make_tenant()
    member = make_member(tenant)

    at = open_app(None)

    assert_login_page(at)
    html = at.html[0].value
    assert 'name="login_name"' in html and 'name="password"' in html
    text = page_text(at)
    assert "団員名簿" not in text
    assert member.name not in text and member.member_code not in text


def test_unknown_session_token_gets_the_login_page(open_app):
    assert_login_page(open_app("not-a-real-token"))


@pytest.mark.parametrize("error", sorted(MESSAGES))
def test_login_error_shows_the_japanese_message(open_app, error):
    at = open_app(None, login_error=error)

    assert [e.value for e in at.error] == [MESSAGES[error]]
    assert_login_page(at)


def test_unknown_login_error_is_not_echoed(open_app):
    at = open_app(None, login_error="<b>forged</b>")

    assert not at.error
    assert "forged" not in page_text(at)


def test_rank_without_roster_permission_gets_no_roster_page(open_app):
    tenant = make_tenant()
    colleague = make_member(tenant)
    user = sign_in(tenant, rank="団員")
    actor = sessions.resolve(user.token)

    assert actor is not None
    assert ROSTER not in [spec.path for spec in specs_for(actor)]
    at = open_app(user.token)
    assert not at.exception
    assert not nav_registers(at, ROSTER)
    assert not at.dataframe or "団員番号" not in at.dataframe[0].value.columns
    text = page_text(at)
    assert colleague.name not in text and colleague.member_code not in text


def test_administrator_gets_the_roster_page(open_app):
    user = sign_in(make_tenant())

    at = open_app(user.token)

    assert not at.exception
    assert nav_registers(at, ROSTER)
    assert user.member.name in page_text(at.switch_page(ROSTER).run())


def test_suspended_member_is_signed_out_on_the_next_run(open_app):
    tenant = make_tenant()
    user = sign_in(tenant)
    at = open_app(user.token)
    assert nav_registers(at, ROSTER)

    members.suspend_member(admin(tenant), user.member.id)
    at.run()

    assert_login_page(at)
    assert user.member.name not in page_text(at)


def test_every_member_page_has_its_place_in_the_menu():
    from ui.registry import MEMBER_PAGES, SECTIONS

    placed = [url for urls in SECTIONS.values() for url in urls]
    assert sorted(placed) == sorted(p.url_path for p in MEMBER_PAGES)


def test_a_session_ended_by_idleness_is_explained_on_the_login_page(open_app, engine):
    from datetime import timedelta

    from config import get_settings
    from models.base import utcnow
    from tests.signin.test_sessions import age

    tenant = make_tenant()
    user = sign_in(tenant)
    at = open_app(user.token)
    assert any("自動的にログアウトします" in c.value for c in at.sidebar.caption)
    idle = timedelta(minutes=get_settings().session_idle_minutes + 1)
    age(engine, user.token, last_seen_at=utcnow() - idle)

    at = open_app(user.token)
    assert_login_page(at)
    assert [w.value for w in at.warning] == [sessions.ended(user.token)]
    assert "自動的にログアウトしました" in at.warning[0].value

    assert not open_app("not-a-real-token").warning  # nothing to explain
