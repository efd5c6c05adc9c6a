"""The month's export of approved 出動報告 (#22). The whole flow first: a dispatch mail calls the
brigade on LINE, members answer with the buttons, the incident ends, the requests are filled
in, approved through the chain, and the month's 出動明細書 pays what the municipal table gives.
Then the month's bounds, what is not exported, rights and other brigades."""

from __future__ import annotations

import io
from datetime import datetime, timedelta

import pytest
from openpyxl import load_workbook

from core.rewards import HIOKI, MISAWA
from core.timefmt import JST
from formats import report_export as fmt
from models.dispatch import IncidentStatus
from models.enums import Answer
from services.dispatch import incidents
from services.errors import PermissionDenied, ValidationError
from services.reports import approvals, export, reports, rewards
from services.reports.export import ExportKind
from services.reports.reports import ReportInput
from tests.callout_factories import Brigade, messaging
from tests.factories import admin, link_line
from tests.fakes.line_messaging import new_user_id
from tests.report_factories import make_people
from tests.services.test_callout import dispatch, press, send_all

pytestmark = pytest.mark.usefixtures("engine")

LAST_MONTH = (datetime.now(JST).replace(day=1) - timedelta(days=1)).replace(
    hour=0, minute=0, second=0, microsecond=0
)


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return LAST_MONTH.replace(day=day, hour=hour, minute=minute)


def use_table(tenant, table) -> None:
    _, version = rewards.get_reward_table(admin(tenant))
    rewards.save_reward_table(admin(tenant), table, expected_version=version)


def approve_all(people, view) -> None:
    for key in ("leader", "chief"):
        view = reports.get_report(people.actor(key), view.id)
        approvals.approve(people.actor(key), view.id, expected_version=view.version)


def member_totals(data: bytes) -> dict[str, int]:
    return {
        r.member_code: r.amount for r in fmt.read_detail_csv(data) if r.kind == fmt.MEMBER_TOTAL
    }


CREW = {
    "a": ("団員", "第1分団 第1部"),
    "b": ("団員", "第1分団 第1部"),
    "leader": ("分団長", "第1分団"),
    "chief": ("団長", "団本部"),
}


def test_dispatch_to_the_months_export():
    """Done means (#22): the whole path, with 日置市's table."""
    people = make_people(CREW)
    tenant, boss = people.tenant_id, admin(people.tenant_id)
    brigade = Brigade(tenant)
    for key in ("a", "b"):
        brigade.subs[people.ids[key]] = sub = new_user_id()
        link_line(tenant, people.ids[key], sub)
    use_table(tenant, HIOKI)
    with messaging() as fake:
        incident = dispatch(brigade, units="第1分団")
        send_all(brigade)
        press(fake, brigade, people.ids["a"], incident, Answer.AVAILABLE)
        press(fake, brigade, people.ids["b"], incident, Answer.LATE)
        view, _ = incidents.get_incident(boss, incident)
        for status in (IncidentStatus.EXTINGUISHED, IncidentStatus.CLOSED):
            view = incidents.set_status(boss, incident, status, expected_version=view.version)
    # a: 2 h; b: 9 h, over 8 h: two days (8-hour units), each the day amount
    codes = {}
    for key, hours in (("a", 2), ("b", 9)):
        (request,) = reports.my_reports(people.actor(key))
        assert request.incident_id == incident
        codes[key] = request.member_code
        done = reports.save_report(
            people.actor(key),
            request.id,
            ReportInput("火災", "消火活動", at(3, 10), at(3, 10) + timedelta(hours=hours)),
            submit=True,
            expected_version=request.version,
        )
        approve_all(people, done)
    data = export.export_month(boss, LAST_MONTH.date(), ExportKind.DETAILS_CSV).data
    assert member_totals(data) == {codes["a"]: 8_000, codes["b"]: 16_000}


def approved(people, key: str, category: str, start: datetime, minutes: int) -> None:
    view = reports.save_report(
        people.actor(key),
        None,
        ReportInput(category, "", start, start + timedelta(minutes=minutes)),
        submit=True,
    )
    approve_all(people, view)


def test_misawa_month_at_band_edges_and_only_approved_reports_of_the_month():
    people = make_people(CREW)
    tenant, boss = people.tenant_id, admin(people.tenant_id)
    use_table(tenant, MISAWA)
    approved(people, "a", "火災", at(2, 10), 239)  # 3:59 → 2,500
    approved(people, "a", "訓練", at(5, 9), 240)  # 4:00 → 3,500
    approved(people, "b", "警戒", at(7, 8), 60)  # 警戒 is per day: 2,500 once
    approved(people, "b", "警戒", at(7, 20), 120)
    approved(people, "b", "火災", at(1, 0, 0), 465)  # 7:45 from midnight of the 1st → 8,000
    # not in it: submitted only; started in the month before
    reports.save_report(
        people.actor("a"), None, ReportInput("火災", "", at(9, 10), at(9, 11)), submit=True
    )
    approved(people, "a", "火災", at(1, 0) - timedelta(minutes=1), 600)
    data = export.export_month(boss, LAST_MONTH.date(), ExportKind.DETAILS_CSV).data
    code = {k: reports.my_reports(people.actor(k))[0].member_code for k in ("a", "b")}
    assert member_totals(data) == {code["a"]: 6_000, code["b"]: 10_500}
    summary = export.month_summary(boss, LAST_MONTH.date())
    assert len(summary.activities) == 5
    book = load_workbook(
        io.BytesIO(export.export_month(boss, LAST_MONTH.date(), ExportKind.WORKBOOK).data)
    )
    assert book.sheetnames == [fmt.REPORT_SHEET, fmt.DETAIL_SHEET]
    report_csv = export.export_month(boss, LAST_MONTH.date(), ExportKind.REPORTS_CSV).data
    assert report_csv.decode("utf-8-sig").count("\n") == 1 + 5  # the header, one per activity


def test_export_needs_a_table_the_right_and_sees_one_brigade():
    people = make_people(CREW)
    boss = admin(people.tenant_id)
    with pytest.raises(ValidationError, match="出動報酬の表"):
        export.month_summary(boss, LAST_MONTH.date())
    use_table(people.tenant_id, MISAWA)
    approved(people, "a", "火災", at(2, 10), 60)
    with pytest.raises(PermissionDenied):
        export.export_month(people.actor("leader"), LAST_MONTH.date(), ExportKind.WORKBOOK)
    other = make_people({"chief": ("団長", "団本部")})
    use_table(other.tenant_id, MISAWA)
    assert export.month_summary(other.actor("chief"), LAST_MONTH.date()).activities == ()


def test_a_category_the_table_cannot_price_is_named():
    people = make_people(CREW)
    boss = admin(people.tenant_id)
    approved(people, "a", "会議", at(2, 10), 60)  # offered while no table was saved
    use_table(people.tenant_id, HIOKI)  # 日置市 pays no 会議 and has no catch-all
    with pytest.raises(ValidationError, match="会議"):
        export.month_summary(boss, LAST_MONTH.date())
