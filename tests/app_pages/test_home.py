"""ホーム tells a member when a LINE registration code was issued for them, and tells the 管理
holders when one was issued for a password user or a permission editor (#15)."""

from __future__ import annotations

import uuid

import pytest

from services import registrations
from services.dispatch import intake
from services.signin import sessions
from tests.app_pages.conftest import sign_in
from tests.dispatch_factories import mail, make_source, where
from tests.factories import make_member, make_tenant, open_member_session, rank_id

HOME = "app_pages/home.py"


def _texts(at) -> list[str]:
    at.switch_page(HOME).run()
    assert not at.exception
    return [e.value for e in (*at.warning, *at.info)]


@pytest.mark.usefixtures("line_login_channel")
def test_codes_issued_for_me_and_for_password_users_are_shown(open_app):
    tenant = make_tenant(f"通知消防団{uuid.uuid4().hex[:6]}")
    chief = sign_in(tenant)  # 団長, 管理, password login
    deputy = sign_in(tenant, "副団長")  # a password user too
    plain = make_member(tenant, rank_id=rank_id(tenant, "団員"), member_code="P-1")
    chief_actor = sessions.resolve(chief.token)
    registrations.issue_registration(chief_actor, deputy.member.id)
    registrations.issue_registration(chief_actor, plain.id)

    seen_by_deputy = _texts(open_app(deputy.token))
    assert any("あなたのLINE登録コード" in t for t in seen_by_deputy)

    seen_by_chief = _texts(open_app(chief.token))
    assert any(deputy.member.member_code in t for t in seen_by_chief)
    assert not any("P-1" in t for t in seen_by_chief)  # an ordinary code is no news

    plain_actor = sessions.resolve(open_member_session(tenant, plain.id))
    (mine,) = registrations.code_notices(plain_actor)
    assert mine.for_me and mine.member_code == "P-1"


def test_an_incident_marked_for_review_is_announced_on_home(open_app):
    tenant = make_tenant(f"要確認消防団{uuid.uuid4().hex[:6]}")
    chief = sign_in(tenant)
    source = make_source(tenant)
    at = open_app(chief.token)
    at.switch_page(HOME).run()
    assert not any("要確認の出動" in e.value for e in at.error)
    intake.receive(where(source), mail(source.address, "項目のない本文\n"))
    at.switch_page(HOME).run()
    assert any("要確認の出動が 1 件" in e.value for e in at.error)
    stranger = sign_in(make_tenant(f"他の消防団{uuid.uuid4().hex[:6]}"))
    at = open_app(stranger.token)
    at.switch_page(HOME).run()
    assert not any("要確認の出動" in e.value for e in at.error)


def test_reports_to_do_and_approvals_waiting_are_announced(open_app):
    from datetime import timedelta

    from models.base import utcnow
    from models.enums import Answer
    from services.reports import reports
    from services.reports.reports import ReportInput
    from tests.report_factories import People, actor_of, closed_incident

    tenant = make_tenant()
    member = sign_in(tenant, "団員")
    leader = sign_in(tenant, "分団長")
    closed_incident(People(tenant, {"m": member.member.id}), {"m": Answer.AVAILABLE})
    assert any("出動報告が 1件" in t for t in _texts(open_app(member.token)))
    assert not any("出動報告" in t for t in _texts(open_app(leader.token)))

    (view,) = reports.my_reports(actor_of(tenant, member.member.id))
    start = utcnow() - timedelta(hours=3)
    reports.save_report(
        actor_of(tenant, member.member.id),
        view.id,
        ReportInput("火災", "", start, start + timedelta(hours=1)),
        submit=True,
        expected_version=view.version,
    )
    assert not any("出動報告" in t for t in _texts(open_app(member.token)))
    assert any("承認の順番が来ている出動報告が 1件" in t for t in _texts(open_app(leader.token)))
