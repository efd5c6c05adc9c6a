"""出動報告 and 出動報酬 (#22): each member's report of an activity (a turn-out, 訓練, 警戒,
点検 …), the steps it went through on the brigade's approval chain, and the brigade's report
settings (the chain and the reward table). See services/reports/."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import Column, Index, Text, text
from sqlmodel import Field, SQLModel

from models.base import created_field, new_id, optional_time_field


class ReportStatus(StrEnum):
    REQUESTED = "requested"  # asked of a member who was coming, when the incident ended
    SUBMITTED = "submitted"  # waiting for the approval step `ActivityReport.step`
    RETURNED = "returned"  # 差し戻し: back to the member for correction
    APPROVED = "approved"  # every step approved: it is paid in the month of its start
    DECLINED = "declined"  # the member did not take part after all: nothing to report

    @property
    def label(self) -> str:
        return REPORT_STATUS_LABELS[self]


REPORT_STATUS_LABELS = {
    ReportStatus.REQUESTED: "未提出",
    ReportStatus.SUBMITTED: "承認待ち",
    ReportStatus.RETURNED: "差し戻し",
    ReportStatus.APPROVED: "承認済み",
    ReportStatus.DECLINED: "報告なし",
}


class StepAction(StrEnum):
    SUBMIT = "submit"
    APPROVE = "approve"
    RETURN = "return"
    DECLINE = "decline"

    @property
    def label(self) -> str:
        return {
            "submit": "提出",
            "approve": "承認",
            "return": "差し戻し",
            "decline": "報告なし",
        }[self.value]


class ActivityReport(SQLModel, table=True):
    """One member's one activity. A report asked for after an incident names the incident;
    an activity entered by itself (訓練, 警戒 …) names none, and one made from a recorded water
    inspection names that."""

    __tablename__ = "activity_report"
    __table_args__ = (
        # one report per member and incident; activities without an incident are free
        Index(
            "uq_activity_report_incident_member",
            "tenant_id",
            "incident_id",
            "member_id",
            unique=True,
            sqlite_where=text("incident_id IS NOT NULL"),
            postgresql_where=text("incident_id IS NOT NULL"),
        ),
        Index(
            "uq_activity_report_inspection",
            "tenant_id",
            "inspection_id",
            unique=True,
            sqlite_where=text("inspection_id IS NOT NULL"),
            postgresql_where=text("inspection_id IS NOT NULL"),
        ),
        Index("ix_activity_report_tenant_start", "tenant_id", "started_at"),
        Index("ix_activity_report_tenant_status", "tenant_id", "status"),
    )

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    tenant_id: uuid.UUID = Field(foreign_key="tenant.id")
    member_id: uuid.UUID = Field(foreign_key="member.id")
    incident_id: uuid.UUID | None = Field(default=None, foreign_key="incident.id")
    inspection_id: uuid.UUID | None = Field(default=None, foreign_key="water_inspection.id")
    category: str = Field(default="", max_length=20)  # 火災, 訓練, 警戒 … (the reward table's)
    # sealed: what was done (活動内容), and the latest return reason
    activity_enc: str = Field(default="", sa_column=Column(Text, nullable=False))
    started_at: datetime | None = optional_time_field()
    ended_at: datetime | None = optional_time_field()
    turned_back: bool = False  # 現場到着前に引き揚げ
    false_alarm: bool = False  # 誤報
    status: str = Field(default=ReportStatus.REQUESTED, max_length=20)
    step: int = 0  # the approval step it waits for (SUBMITTED)
    returned_enc: str = Field(default="", sa_column=Column(Text, nullable=False))
    entered_by: str = Field(default="", max_length=100)  # the actor label of the last entry
    version: int = 1
    created_at: datetime = created_field()
    updated_at: datetime = created_field()
    submitted_at: datetime | None = optional_time_field()
    approved_at: datetime | None = optional_time_field()


class ReportStep(SQLModel, table=True):
    """What happened to a report, step by step (submitted, approved at step N, returned)."""

    __tablename__ = "report_step"
    __table_args__ = (Index("ix_report_step_report", "tenant_id", "report_id", "at"),)

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    tenant_id: uuid.UUID = Field(foreign_key="tenant.id")
    report_id: uuid.UUID = Field(foreign_key="activity_report.id")
    step: int = 0
    action: str = Field(max_length=20)
    member_id: uuid.UUID | None = Field(default=None, foreign_key="member.id")
    actor_label: str = Field(default="", max_length=100)
    comment_enc: str = Field(default="", sa_column=Column(Text, nullable=False))
    at: datetime = created_field()


class ReportSettings(SQLModel, table=True):
    """A brigade's approval chain and reward table, as JSON (services/reports/settings.py and
    formats/reward_table.py read and check them)."""

    __tablename__ = "report_settings"

    tenant_id: uuid.UUID = Field(foreign_key="tenant.id", primary_key=True)
    # [{"rank": "分団長", "scope": "unit"}, {"rank": "団長", "scope": "brigade"}]
    chain: str = Field(default="[]", sa_column=Column(Text, nullable=False))
    reward_table: str = Field(default="", sa_column=Column(Text, nullable=False))  # "" = none
    version: int = 1
    updated_at: datetime = created_field()
