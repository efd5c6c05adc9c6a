"""Platform notices (お知らせ): the operator announces maintenance, updates and incidents in
advance; every signed-in user sees the ones that are not over yet. Times are stored in UTC."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_
from sqlmodel import col, select

from core.access import PLATFORM
from core.actor import Actor
from models.base import utcnow
from models.notice import MaintenanceNotice
from models.tenant import PLATFORM_TENANT_ID
from services import audit
from services import validation as v
from services.base import require
from services.db import unit_of_work
from services.errors import NotFound, ValidationError

KINDS = {"maintenance": "メンテナンス", "update": "サービス更新", "incident": "障害・セキュリティ"}
# Notices starting within this window are shown as a banner on every page.
BANNER_AHEAD = timedelta(days=7)
TARGET = "maintenance_notice"


@dataclass(frozen=True)
class Notice:
    id: uuid.UUID
    kind: str
    kind_label: str
    title: str
    body: str
    starts_at: datetime
    ends_at: datetime | None
    published_at: datetime
    withdrawn: bool

    def in_progress(self, now: datetime) -> bool:
        return self.starts_at <= now and (self.ends_at is None or now < self.ends_at)

    def banner(self, now: datetime) -> bool:
        return (
            not self.withdrawn
            and self.starts_at - BANNER_AHEAD <= now
            and (self.ends_at is None or now < self.ends_at)
        )


def publish_notice(
    actor: Actor,
    *,
    kind: str,
    title: str,
    body: str,
    starts_at: datetime,
    ends_at: datetime | None,
) -> uuid.UUID:
    require(actor, PLATFORM, action="notice.publish")
    values = _validated(kind, title, body, starts_at, ends_at)
    notice = MaintenanceNotice(**values, published_by=actor.label)
    with unit_of_work(PLATFORM_TENANT_ID) as session:
        session.add(notice)
        session.flush()
        audit.record_platform(
            session,
            actor,
            "notice.publish",
            target_type=TARGET,
            target_id=notice.id,
            details=values,
        )
        session.commit()
    return notice.id


def withdraw_notice(actor: Actor, notice_id: uuid.UUID) -> None:
    require(actor, PLATFORM, action="notice.withdraw")
    with unit_of_work(PLATFORM_TENANT_ID) as session:
        notice = session.get(MaintenanceNotice, notice_id)
        if notice is None or notice.withdrawn_at is not None:
            raise NotFound()
        notice.withdrawn_at = utcnow()
        session.add(notice)
        audit.record_platform(
            session,
            actor,
            "notice.withdraw",
            target_type=TARGET,
            target_id=notice.id,
            details={"title": notice.title},
        )
        session.commit()


def current_notices(actor: Actor | None, *, now: datetime | None = None) -> list[Notice]:
    """What a signed-in user is shown: notices not withdrawn and not yet over, soonest first."""
    if actor is None:
        return []
    now = now or utcnow()
    query = select(MaintenanceNotice).where(
        col(MaintenanceNotice.withdrawn_at).is_(None),
        or_(col(MaintenanceNotice.ends_at).is_(None), col(MaintenanceNotice.ends_at) > now),
    )
    with unit_of_work(None, read_only=True) as session:
        rows = session.exec(query.order_by(col(MaintenanceNotice.starts_at))).all()
        return [_public(row) for row in rows]


def all_notices(actor: Actor) -> list[Notice]:
    """The operator's list, newest first, withdrawn and past ones included."""
    require(actor, PLATFORM, action="notice.list")
    with unit_of_work(None, read_only=True) as session:
        query = select(MaintenanceNotice).order_by(col(MaintenanceNotice.starts_at).desc())
        return [_public(row) for row in session.exec(query).all()]


def _validated(
    kind: str, title: str, body: str, starts_at: datetime, ends_at: datetime | None
) -> dict:
    title, body = v.clean_text(title), (body or "").strip()
    errors = {}
    if kind not in KINDS:
        errors["kind"] = "種類を選んでください。"
    if not title or len(title) > 100:
        errors["title"] = "件名を100文字以内で入力してください。"
    elif v.has_control_chars(title):
        errors["title"] = v.control_chars_message("件名")
    if len(body) > 2000:
        errors["body"] = "本文は2000文字以内で入力してください。"
    elif v.has_control_chars(body, multiline=True):
        errors["body"] = v.control_chars_message("本文")
    if starts_at.tzinfo is None or (ends_at is not None and ends_at.tzinfo is None):
        raise ValueError("naive datetime: pass timezone-aware times")
    if ends_at is not None and ends_at <= starts_at:
        errors["ends_at"] = "終了日時は開始日時より後にしてください。"
    if errors:
        raise ValidationError(errors)
    return {"kind": kind, "title": title, "body": body, "starts_at": starts_at, "ends_at": ends_at}


def _public(row: MaintenanceNotice) -> Notice:
    return Notice(
        id=row.id,
        kind=row.kind,
        kind_label=KINDS.get(row.kind, row.kind),
        title=row.title,
        body=row.body,
        starts_at=row.starts_at,
        ends_at=row.ends_at,
        published_at=row.published_at,
        withdrawn=row.withdrawn_at is not None,
    )
