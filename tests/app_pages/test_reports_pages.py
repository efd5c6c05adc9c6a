"""出動報告 and 報告の承認 pages: a member fills in the request made when the incident ended and
submits it, the 分団長 and the 団長 approve it, and 管理 sees the month's 出動報酬; who gets the
pages."""

from __future__ import annotations

from datetime import datetime, timedelta

from core.rewards import MISAWA
from core.timefmt import JST
from models.enums import Answer
from models.report import ReportStatus
from services.reports import reports, rewards
from tests.app_pages.conftest import nav_registers, page_text, run_page_directly, sign_in
from tests.factories import admin, make_tenant
from tests.report_factories import People, actor_of, closed_incident

REPORTS, APPROVALS = "app_pages/reports.py", "app_pages/approvals.py"


def test_member_submits_and_the_chain_approves(open_app):
    tenant = make_tenant()
    member = sign_in(tenant, "団員")
    leader = sign_in(tenant, "分団長")
    chief = sign_in(tenant, "団長")
    people = People(tenant, {"m": member.member.id})
    incident = closed_incident(people, {"m": Answer.AVAILABLE})

    at = open_app(member.token, incident=str(incident))
    at.switch_page(REPORTS).run()
    assert not at.exception, at.exception
    assert "入力が必要な報告（1件）" in page_text(at)
    (view,) = reports.my_reports(actor_of(tenant, member.member.id))
    key = f"rep_{view.id}"
    start = (datetime.now(JST) - timedelta(days=1)).replace(hour=9, minute=0)
    at.date_input(key=f"{key}_start_d").set_value(start.date())
    at.time_input(key=f"{key}_start_t").set_value(start.time())
    at.date_input(key=f"{key}_end_d").set_value(start.date())
    at.time_input(key=f"{key}_end_t").set_value(start.replace(hour=13).time())
    at.text_area[0].input("ホース延長、放水")
    next(b for b in at.button if b.label == "提出する").click().run()
    assert not at.exception, at.exception
    assert "提出しました" in page_text(at)
    (view,) = reports.my_reports(actor_of(tenant, member.member.id))
    assert view.status == ReportStatus.SUBMITTED and view.minutes == 240

    for token, notice in ((leader.token, "次の段階"), (chief.token, "すべて済みました")):
        at = open_app(token)
        at.switch_page(APPROVALS).run()
        assert not at.exception, at.exception
        assert member.member.member_code in page_text(at)
        next(b for b in at.button if b.label == "承認する").click().run()
        assert notice in page_text(at), page_text(at)
    assert reports.my_reports(actor_of(tenant, member.member.id))[0].status == "approved"

    _, version = rewards.get_reward_table(admin(tenant))
    rewards.save_reward_table(admin(tenant), MISAWA, expected_version=version)
    at = open_app(chief.token)
    at.switch_page(REPORTS).run()
    at.date_input(key="rep_export_month").set_value(start.date()).run()
    assert not at.exception, at.exception
    text = page_text(at)
    # 三沢市: 4 h is no longer "under 4 h" — 5,000 yen
    assert "5,000円" in text and "三沢市" in text


def test_who_gets_the_pages(open_app):
    tenant = make_tenant()
    member = sign_in(tenant, "団員")
    at = open_app(member.token)
    assert nav_registers(at, REPORTS)
    assert not nav_registers(at, APPROVALS)
    direct = run_page_directly(APPROVALS, member.token)
    assert "権限がありません" in page_text(direct)
    assert not any(t.label == "月次出力" for t in at.switch_page(REPORTS).run().tabs)
