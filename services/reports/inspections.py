"""Water inspections (警防調査) as 出動報告 (#22): an inspection already recorded in Hikeshi
becomes its inspector's report, to be timed and submitted like any other."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, timedelta

from sqlmodel import select

from core.actor import Actor
from core.timefmt import JST
from models import ActivityReport, WaterSource
from models.base import utcnow
from models.water import WaterInspection
from services.base import scoped, transaction
from services.errors import NotFound, ValidationError
from services.reports.reports import (
    ACTIVITY_FIELD,
    INSPECTION_CATEGORY,
    ReportView,
    get_report,
    new_row,
)
from services.reports.settings import OWN


def report_from_inspection(actor: Actor, inspection_id: uuid.UUID) -> ReportView:
    """A recorded water inspection (警防調査) becomes its inspector's report, to be timed and
    submitted; once per inspection."""
    with transaction(actor, OWN, action="reports.from_inspection") as tx:
        inspection = tx.get(WaterInspection, inspection_id)
        if inspection is None:
            raise NotFound()
        if inspection.inspector_member_id is None:
            raise ValidationError({"点検者": "団員以外の点検は出動報告にできません。"})
        taken = tx.session.exec(
            scoped(select(ActivityReport.id), tx.actor).where(
                ActivityReport.inspection_id == inspection.id
            )
        ).first()
        if taken:
            raise ValidationError({"点検": "この点検はすでに出動報告になっています。"})
        row = new_row(tx, inspection.inspector_member_id)
        source = tx.get(WaterSource, inspection.water_source_id)
        row.inspection_id = inspection.id
        row.category = INSPECTION_CATEGORY
        # the inspection has a day, not times: the member enters them before submitting
        text = f"水利点検 {source.code if source else ''}（{inspection.inspected_on:%Y/%m/%d}）"
        row.activity_enc = tx.cipher.encrypt(text, field=ACTIVITY_FIELD, row_id=row.id)
        tx.audit(
            "reports.from_inspection",
            target_type="activity_report",
            target_id=str(row.id),
            details={"inspection": str(inspection.id)},
        )
        tx.commit()
        report = row.id
    return get_report(actor, report)


@dataclass(frozen=True)
class InspectionChoice:
    id: uuid.UUID
    inspected_on: date
    source_code: str
    result: str

    @property
    def label(self) -> str:
        return f"{self.inspected_on:%Y/%m/%d} 水利 {self.source_code}（{self.result}）"


INSPECTION_DAYS = 90


def unreported_inspections(actor: Actor) -> list[InspectionChoice]:
    """The signed-in member's water inspections of the last 90 days not yet reported."""
    with transaction(actor, OWN, action="reports.inspections", read_only=True) as tx:
        if tx.actor.member_id is None:
            return []
        reported = select(ActivityReport.inspection_id).where(
            ActivityReport.tenant_id == tx.tenant_id, ActivityReport.inspection_id.is_not(None)
        )
        since = utcnow().astimezone(JST).date() - timedelta(days=INSPECTION_DAYS)
        rows = tx.session.exec(
            scoped(select(WaterInspection, WaterSource), tx.actor)
            .where(
                WaterInspection.water_source_id == WaterSource.id,
                WaterInspection.inspector_member_id == tx.actor.member_id,
                WaterInspection.inspected_on >= since,
                WaterInspection.id.not_in(reported),
            )
            .order_by(WaterInspection.inspected_on.desc())
        ).all()
        return [InspectionChoice(i.id, i.inspected_on, s.code, i.result) for i, s in rows]
