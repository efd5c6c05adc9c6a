"""Backup and restore of 出動報告 (#22, format version 4): the reports with their approval trails,
the approval chain and the reward table come back as they were, in this brigade or another; an
older backup leaves them alone; a row naming an unknown member writes nothing; backing them up
and changing them by a restore need 出動報告 管理."""

from __future__ import annotations

import csv
import io
import uuid
from dataclasses import replace
from datetime import timedelta

import pytest
from sqlmodel import select

from core.rewards import KUMIYAMA, MISAWA
from core.timefmt import today_jst
from formats import backup as fmt
from formats import csv_safe
from models import ActivityReport
from models.base import utcnow
from models.enums import Answer, Function, Level
from models.water import WaterInspectionCreate
from services import backup, water_sources
from services.db import unit_of_work
from services.errors import PermissionDenied, ValidationError
from services.imports import RowStatus
from services.reports import approvals, inspections, reports, rewards
from services.reports.approvals import ChainStep, StepScope
from services.reports.reports import ReportInput
from tests.factories import actor_with, admin, make_tenant, rebuilt_backup, restore
from tests.report_factories import closed_incident, make_people
from tests.water_factories import make_source

pytestmark = pytest.mark.usefixtures("engine")
CREW = {
    "a": ("団員", "第1分団 第1部"),
    "b": ("団員", "第1分団 第2部"),
    "leader1": ("分団長", "第1分団"),
    "chief": ("団長", "団本部"),
}
ENTITIES = ("activity_reports", "report_steps", "report_settings")


def timed(category: str, activity: str, *, hours: float = 3) -> ReportInput:
    start = utcnow().replace(microsecond=0) - timedelta(hours=hours + 5)
    return ReportInput(category, activity, start, start + timedelta(hours=hours))


def reported() -> uuid.UUID:
    """A closed incident: a's report approved through the chain (with a comment), b's returned;
    the leader's 訓練 saved but not submitted; a water inspection made a's report; a chain and
    the 三沢市 table saved. Texts start with = + - so that the CSV neutralises them."""
    people = make_people(CREW)
    boss = admin(people.tenant_id)
    closed_incident(people, {"a": Answer.AVAILABLE, "b": Answer.LATE})
    for key in ("a", "b"):
        (view,) = reports.my_reports(people.actor(key))
        reports.save_report(
            people.actor(key),
            view.id,
            timed("火災", "=放水活動"),
            submit=True,
            expected_version=view.version,
        )
    first, second = (reports.my_reports(people.actor(key))[0] for key in ("a", "b"))
    approvals.approve(
        people.actor("leader1"), first.id, expected_version=first.version, comment="+確認済み"
    )
    approved = reports.get_report(boss, first.id)
    approvals.approve(people.actor("chief"), first.id, expected_version=approved.version)
    approvals.return_report(
        people.actor("leader1"), second.id, expected_version=second.version, reason="-終了時刻"
    )
    reports.save_report(people.actor("leader1"), None, timed("訓練", "@ポンプ操法"))
    source = make_source(people.tenant_id)
    inspection = water_sources.record_inspection(
        boss,
        source.id,
        data=WaterInspectionCreate(
            inspected_on=today_jst(), result="異常なし", inspector_member_id=people.ids["a"]
        ),
    )
    inspections.report_from_inspection(people.actor("a"), inspection.id)
    steps = [ChainStep("分団長", StepScope.UNIT), ChainStep("団長", StepScope.BRIGADE)]
    approvals.save_chain(boss, steps, expected_version=0)
    rewards.save_reward_table(boss, MISAWA, expected_version=1)
    return people.tenant_id


def snapshot(tenant: uuid.UUID) -> dict:
    """The reports with their trails as 出動報告 管理 sees them (ids and versions aside), which
    are linked to a water inspection, and the settings."""
    boss = admin(tenant)
    views = [reports.get_report(boss, v.id) for v in reports.list_reports(boss)]
    shown = [replace(v, id=None, member_id=None, incident_id=None, version=0) for v in views]
    with unit_of_work(tenant) as db:
        linked = db.exec(
            select(ActivityReport.category).where(
                ActivityReport.tenant_id == tenant, ActivityReport.inspection_id.is_not(None)
            )
        ).all()
    return {
        "reports": sorted(shown, key=lambda v: (v.member_code, v.category, str(v.started_at))),
        "linked": sorted(linked),
        "chain": approvals.get_chain(boss).steps,
        "table": rewards.get_reward_table(boss)[0],
    }


def change_reports(tenant: uuid.UUID) -> None:
    """After the backup: another activity, and the 久御山町 table."""
    boss = admin(tenant)
    (member, *_) = reports.reporters(boss)
    reports.save_report(boss, None, timed("警戒", "夜警"), member_id=member.id)
    rewards.save_reward_table(boss, KUMIYAMA, expected_version=2)


def counted(preview: backup.RestorePreview, status: RowStatus) -> list[int]:
    return [preview.plans[name].counts[status] for name in ENTITIES]


def test_reports_and_settings_come_back_in_their_brigade_and_in_another():
    tenant = reported()
    before = snapshot(tenant)
    assert len(before["reports"]) == 4 and before["linked"] == ["警防調査"]
    assert sorted(len(v.steps) for v in before["reports"]) == [0, 0, 2, 3]
    made = backup.create_backup(admin(tenant))
    files = fmt.read_zip(made.data).files
    assert "'=放水活動" in files[fmt.ACTIVITY_REPORTS].decode("utf-8-sig")
    assert "'+確認済み" in files[fmt.REPORT_STEPS].decode("utf-8-sig")
    change_reports(tenant)
    assert snapshot(tenant) != before

    preview = backup.inspect_backup(admin(tenant), data=made.data)
    assert preview.ready, {name: plan.errors for name, plan in preview.plans.items()}
    assert backup.REPORTS_RESTORED in preview.notes
    assert len(preview.plans["activity_reports"].missing) == 1
    result = restore(admin(tenant), preview)
    assert result.activity_reports is not None and result.activity_reports.retired == 1
    assert snapshot(tenant) == before
    again = backup.inspect_backup(admin(tenant), data=made.data)
    assert counted(again, RowStatus.UNCHANGED) == [4, 5, 1]

    fresh = make_tenant()
    preview = backup.inspect_backup(admin(fresh), data=made.data)
    assert preview.ready, {name: plan.errors for name, plan in preview.plans.items()}
    assert counted(preview, RowStatus.NEW) == [4, 5, 0]
    restore(admin(fresh), preview, allow_other_brigade=True)
    assert snapshot(fresh) == before  # sealed again under the fresh brigade's key
    assert snapshot(tenant) == before
    again = backup.inspect_backup(admin(fresh), data=made.data)
    assert counted(again, RowStatus.UNCHANGED) == [4, 5, 1]


def test_a_version_3_backup_leaves_reports_and_settings_as_they_are():
    tenant = reported()
    made = backup.create_backup(admin(tenant))
    contents = fmt.read_zip(made.data).files
    old = {name: contents[name] for name in fmt.VERSION_FILES[3]}
    manifest = fmt.build_manifest(
        old,
        tenant_id=tenant,
        brigade=made.manifest.brigade,
        created_at=made.manifest.created_at,
        app_version="0.2.0",
        format_version=3,
    )
    data = fmt.write_zip(manifest, old, password=None)
    change_reports(tenant)
    now = snapshot(tenant)

    preview = backup.inspect_backup(admin(tenant), data=data)
    assert preview.ready, preview.errors
    assert not set(ENTITIES) & set(preview.plans)
    assert backup.NO_REPORTS.format(version=3) in preview.notes
    result = restore(admin(tenant), preview)
    assert result.activity_reports is None and result.report_settings is None
    # the inspections were replaced: the report made from one is linked to its successor
    assert snapshot(tenant) == now


def edited(made: backup.BackupFile, name: str, row: int, column: int, value: str) -> bytes:
    lines = list(csv.reader(io.StringIO(fmt.read_zip(made.data).files[name].decode("utf-8-sig"))))
    lines[row - 1][column] = value
    return rebuilt_backup(made, {name: csv_safe.encode(lines[0], lines[1:])})


def test_a_report_of_an_unknown_member_is_refused_by_row_and_column():
    tenant = reported()
    made = backup.create_backup(admin(tenant))
    data = edited(made, fmt.ACTIVITY_REPORTS, 3, 1, "Z-999")
    change_reports(tenant)
    before = snapshot(tenant)

    preview = backup.inspect_backup(admin(tenant), data=data)
    assert not preview.ready
    plan = preview.plans["activity_reports"]
    assert plan.filename == "activity_reports.csv" and plan.counts[RowStatus.INVALID] == 1
    assert [(e.row, e.column, e.message) for e in plan.errors] == [
        (3, "団員番号", "団員番号「Z-999」が団員名簿（members.csv）にありません。")
    ]
    with pytest.raises(ValidationError):
        restore(admin(tenant), preview)
    assert snapshot(tenant) == before


def test_bad_settings_are_refused_naming_the_entry():
    tenant = reported()
    made = backup.create_backup(admin(tenant))
    settings = fmt.read_zip(made.data).files[fmt.REPORT_SETTINGS].decode()
    wrong = settings.replace('"団長"', '"大団長"', 1).replace('"amount": 2500', '"amount": "x"', 1)
    preview = backup.inspect_backup(
        admin(tenant), data=rebuilt_backup(made, {fmt.REPORT_SETTINGS: wrong.encode()})
    )
    assert not preview.ready
    assert [(e.row, e.column) for e in preview.plans["report_settings"].errors] == [
        (1, "出動報酬の表")
    ]
    preview = backup.inspect_backup(
        admin(tenant),
        data=rebuilt_backup(
            made, {fmt.REPORT_SETTINGS: settings.replace('"団長"', '"大団長"', 1).encode()}
        ),
    )
    assert [str(e) for e in preview.plans["report_settings"].errors] == [
        "1行目「承認の段階」: 2段目: 階級「大団長」がありません。"
    ]


def test_a_backup_needs_reports_admin():
    tenant = reported()
    levels = dict(backup.BACKUP_NEEDS)
    assert levels[Function.REPORTS] == Level.ADMIN
    backup.create_backup(actor_with(tenant, levels))
    with pytest.raises(PermissionDenied):
        backup.create_backup(actor_with(tenant, levels | {Function.REPORTS: Level.EDIT}))


def test_a_restore_changing_reports_needs_reports_admin(watch):
    tenant = reported()
    made = backup.create_backup(admin(tenant))
    restorer = actor_with(tenant, {Function.RESTORE: Level.EDIT, Function.PERMISSIONS: Level.EDIT})
    unchanged = backup.inspect_backup(restorer, data=made.data)
    assert unchanged.ready, unchanged.errors  # nothing of the reports changes: 復元 編集 is enough
    change_reports(tenant)
    before = snapshot(tenant)
    preview = backup.inspect_backup(restorer, data=made.data)
    assert preview.errors == [backup.CHANGES_REPORTS]
    audit = watch(tenant)
    with pytest.raises(PermissionDenied):
        restore(restorer, preview)
    assert snapshot(tenant) == before
    (denial,) = audit.new()
    assert denial.action == "permission_denied"
