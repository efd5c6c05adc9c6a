"""The month's export of approved 出動報告 (#22), with the 出動報酬 the brigade's table gives:
出動報告書 and 出動明細書, as CSV or one XLSX workbook (formats.report_export). 出動報告 管理 only;
every export is audited (it holds names).

A report belongs to the JST month its activity starts in (core.rewards: an activity is paid on
the day it starts, N-hour pieces included). The amounts are computed from the month's approved
reports together, so "per day" amounts, daily caps and "highest per day only" see each member's
whole day."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from enum import StrEnum

from sqlmodel import select

from core.actor import Actor
from core.rewards import Activity, compute_rewards
from formats import report_export as fmt
from models import ActivityReport, Incident, Member
from models.report import ReportStatus
from services.base import Tx, scoped, transaction
from services.errors import ValidationError
from services.reports import rewards
from services.reports.reports import ACTIVITY_FIELD, month_bounds
from services.reports.settings import ADMIN

NO_TABLE = "出動報酬の表が設定されていません。「出動報告の設定」で設定してください。"


class ExportKind(StrEnum):
    REPORTS_CSV = "reports_csv"
    DETAILS_CSV = "details_csv"
    WORKBOOK = "xlsx"

    @property
    def label(self) -> str:
        return {
            "reports_csv": "出動報告書（CSV）",
            "details_csv": "出動明細書（CSV）",
            "xlsx": "出動報告書・出動明細書（Excel、印刷用）",
        }[self.value]


@dataclass(frozen=True)
class ExportFile:
    name: str
    data: bytes
    mime: str


MIME = {
    ExportKind.REPORTS_CSV: "text/csv",
    ExportKind.DETAILS_CSV: "text/csv",
    ExportKind.WORKBOOK: "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}
WRITERS = {
    ExportKind.REPORTS_CSV: fmt.report_csv,
    ExportKind.DETAILS_CSV: fmt.detail_csv,
    ExportKind.WORKBOOK: fmt.month_xlsx,
}


def export_month(actor: Actor, month: date, kind: ExportKind) -> ExportFile:
    with transaction(actor, ADMIN, action="reports.export") as tx:
        data = month_data(tx, month)
        tx.audit(
            "reports.export",
            target_type="report_month",
            details={
                "month": f"{month:%Y-%m}",
                "file": str(kind),
                "activities": len(data.activities),
                "total": sum(line.amount for a in data.activities for line in a.lines),
            },
        )
        tx.commit()
    return ExportFile(file_name(month, kind), WRITERS[kind](data), MIME[kind])


def file_name(month: date, kind: ExportKind) -> str:
    stem = {
        ExportKind.REPORTS_CSV: "出動報告書",
        ExportKind.DETAILS_CSV: "出動明細書",
        ExportKind.WORKBOOK: "出動報告書・出動明細書",
    }[kind]
    return f"{stem}_{month:%Y-%m}.{'xlsx' if kind == ExportKind.WORKBOOK else 'csv'}"


def month_summary(actor: Actor, month: date) -> fmt.ExportMonth:
    """What the export would hold (the page shows the totals before downloading)."""
    with transaction(actor, ADMIN, action="reports.export.preview", read_only=True) as tx:
        return month_data(tx, month)


def month_data(tx: Tx, month: date) -> fmt.ExportMonth:
    table = rewards.table_in(tx)
    if table is None:
        raise ValidationError({"出動報酬": NO_TABLE})
    start, end = month_bounds(month)
    rows = tx.session.exec(
        scoped(select(ActivityReport, Member), tx.actor).where(
            ActivityReport.member_id == Member.id,
            ActivityReport.status == ReportStatus.APPROVED,
            ActivityReport.started_at >= start,
            ActivityReport.started_at < end,
        )
    ).all()
    incidents = _incidents(tx, {r.incident_id for r, _ in rows if r.incident_id})
    errors = {}
    activities = []
    for report, member in rows:
        try:
            table.rule_for(report.category)
        except ValueError as exc:
            errors[f"{member.member_code} {report.started_at:%m/%d}"] = str(exc)
        activities.append(
            Activity(
                key=report.id,
                member=member.id,
                category=report.category,
                start=report.started_at,
                end=report.ended_at,
                turned_back=report.turned_back,
                false_alarm=report.false_alarm,
            )
        )
    if errors:
        raise ValidationError(errors)
    result = compute_rewards(table, activities)
    return fmt.ExportMonth(
        brigade=tx.brigade_name,
        year=month.year,
        month=month.month,
        table_name=table.name,
        activities=tuple(
            _exported(tx, report, member, incidents.get(report.incident_id), result)
            for report, member in rows
        ),
    )


def _incidents(tx: Tx, ids: set) -> dict:
    if not ids:
        return {}
    found = tx.session.exec(scoped(select(Incident), tx.actor).where(Incident.id.in_(ids))).all()
    return {i.id: i for i in found}


def _exported(tx: Tx, report, member, incident, result) -> fmt.ExportActivity:
    activity = (
        tx.cipher.decrypt(report.activity_enc, field=ACTIVITY_FIELD, row_id=report.id)
        if report.activity_enc
        else ""
    )
    return fmt.ExportActivity(
        report_id=str(report.id),
        member_code=member.member_code,
        member_name=tx.cipher.member_name(member),
        affiliation=member.affiliation,
        category=report.category,
        incident_number=incident.number if incident else None,
        incident_kind=incident.kind if incident else "",
        activity=activity,
        start=report.started_at,
        end=report.ended_at,
        minutes=int((report.ended_at - report.started_at).total_seconds()) // 60,
        turned_back=report.turned_back,
        false_alarm=report.false_alarm,
        approved_at=report.approved_at,
        lines=tuple(
            fmt.ExportPayLine(
                day=line.day,
                amount=line.amount,
                explanation=line.explanation,
                adjustments=line.adjustments,
            )
            for line in result.for_activity(report.id)
        ),
    )
