"""A brigade's contract ending: cancellation by the platform operator, then deletion of the
brigade's data within 10 business days (white paper 8.3.2: data and backups deleted within 10
稼働日 of cancellation; operation logs kept for a year after it, 18.1.3).

Business days are weekdays that are neither national holidays (jpholiday) nor the year-end
closure (29 December – 3 January). Deletion removes every row the brigade owns except its event
log, then destroys the brigade's keys, so the personal parts of the log that are kept become
unreadable too. The log itself goes when its retention runs out (services/audit_retention.py).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date, timedelta

import jpholiday
from sqlalchemy import Table, delete, func, select, update
from sqlmodel import SQLModel

from core.access import PLATFORM
from core.actor import Actor
from models import Session as UserSession
from models import Tenant
from models.base import utcnow
from models.enums import TenantStatus
from models.tenant import PLATFORM_TENANT_ID
from services import audit, keys
from services.base import require
from services.db import set_tenant, unit_of_work
from services.errors import NotFound, ValidationError

DELETION_BUSINESS_DAYS = 10
# Kept after cancellation: the event log and its chain (retention rules apply), and the keys,
# which keys.destroy_tenant_keys removes in its own audited step.
KEPT_TABLES = frozenset(
    {"audit_event", "audit_chain_head", "audit_checkpoint", "audit_purge_guard", "tenant_key"}
)


def is_business_day(day: date) -> bool:
    year_end = (day.month == 12 and day.day >= 29) or (day.month == 1 and day.day <= 3)
    return day.weekday() < 5 and not jpholiday.is_holiday(day) and not year_end


def business_days_after(start: date, count: int) -> date:
    """The count-th business day after start (start itself not counted)."""
    day = start
    while count > 0:
        day += timedelta(days=1)
        count -= is_business_day(day)
    return day


def deletion_due(cancelled_on: date) -> date:
    return business_days_after(cancelled_on, DELETION_BUSINESS_DAYS)


@dataclass(frozen=True)
class DeletionReport:
    tenant_id: uuid.UUID
    name: str
    cancelled_on: date
    due: date
    rows_deleted: dict[str, int] = field(default_factory=dict)
    keys_destroyed: int = 0


def cancel_brigade(actor: Actor, tenant_id: uuid.UUID, *, cancelled_on: date) -> date:
    """End a brigade's contract on cancelled_on: nobody can sign in from then on, open sessions
    are revoked at once, and its data is due for deletion; returns the deletion deadline."""
    require(actor, PLATFORM, action="tenant.cancel")
    with unit_of_work(PLATFORM_TENANT_ID) as session:
        tenant = _brigade(session, tenant_id)
        if tenant.status != TenantStatus.ACTIVE:
            raise ValidationError({"tenant": "この消防団は既に解約されています。"})
        tenant.status = TenantStatus.CANCELLED
        tenant.contract_end = cancelled_on
        session.add(tenant)
        set_tenant(session, tenant_id)  # the brigade's sessions are visible only to itself
        revoked = session.execute(
            update(UserSession)
            .where(UserSession.tenant_id == tenant_id, UserSession.revoked_at.is_(None))
            .values(revoked_at=utcnow(), revoke_reason="tenant_cancelled")
        ).rowcount
        set_tenant(session, PLATFORM_TENANT_ID)
        due = deletion_due(cancelled_on)
        audit.record_platform(
            session,
            actor,
            "tenant.cancel",
            target_type="tenant",
            target_id=tenant_id,
            details={
                "cancelled_on": cancelled_on,
                "deletion_due": due,
                "sessions_revoked": revoked,
            },
        )
        session.commit()
    return due


def pending_deletions(actor: Actor) -> list[DeletionReport]:
    """Cancelled brigades whose data is still held, with their deadlines."""
    require(actor, PLATFORM, action="tenant.pending_deletions")
    with unit_of_work(PLATFORM_TENANT_ID) as session:
        cancelled = session.execute(
            select(Tenant).where(Tenant.status == TenantStatus.CANCELLED)
        ).scalars()
        return [_report(t) for t in sorted(cancelled, key=lambda t: t.contract_end or date.min)]


def delete_cancelled_data(actor: Actor, *, today: date) -> list[DeletionReport]:
    """Delete the data of every brigade whose cancellation date has come (run daily, e.g. from
    cron: `python cli.py purge-cancelled`). Idempotent: an interrupted run is finished by the
    next one."""
    done = []
    for pending in pending_deletions(actor):
        if pending.cancelled_on <= today:
            done.append(delete_brigade_data(actor, pending.tenant_id))
    return done


def delete_brigade_data(actor: Actor, tenant_id: uuid.UUID) -> DeletionReport:
    require(actor, PLATFORM, action="tenant.delete_data")
    with unit_of_work(PLATFORM_TENANT_ID) as session:
        tenant = _brigade(session, tenant_id)
        if tenant.status != TenantStatus.CANCELLED:
            raise ValidationError({"tenant": "解約されていない消防団のデータは削除できません。"})
        set_tenant(session, tenant_id)
        counts = {table.name: _delete_rows(session, table, tenant_id) for table in _owned_tables()}
        set_tenant(session, PLATFORM_TENANT_ID)
        report = _report(tenant)
        session.commit()
    destroyed = keys.destroy_tenant_keys(actor, tenant_id)
    with unit_of_work(PLATFORM_TENANT_ID) as session:
        tenant = _brigade(session, tenant_id)
        tenant.status = TenantStatus.DELETED
        session.add(tenant)
        details = {
            "cancelled_on": report.cancelled_on,
            "deletion_due": report.due,
            "rows_deleted": {name: count for name, count in counts.items() if count},
            "keys_destroyed": destroyed,
        }
        audit.record_platform(
            session,
            actor,
            "tenant.delete_data",
            target_type="tenant",
            target_id=tenant_id,
            details=details,
        )
        session.commit()
    return DeletionReport(
        report.tenant_id, report.name, report.cancelled_on, report.due, counts, destroyed
    )


def remaining_rows(actor: Actor, tenant_id: uuid.UUID) -> dict[str, int]:
    """Rows a brigade still owns, per table (the kept event-log tables excluded): how the
    operator confirms a deletion."""
    require(actor, PLATFORM, action="tenant.remaining_rows")
    with unit_of_work(tenant_id) as session:
        counts = {
            table.name: session.execute(
                select(func.count()).select_from(table).where(table.c.tenant_id == tenant_id)
            ).scalar_one()
            for table in _owned_tables()
        }
    return {name: count for name, count in counts.items() if count}


def _owned_tables() -> list[Table]:
    """Every table with a tenant_id, children before parents, the kept ones left out."""
    return [
        table
        for table in reversed(SQLModel.metadata.sorted_tables)
        if "tenant_id" in table.c and table.name not in KEPT_TABLES
    ]


def _delete_rows(session, table: Table, tenant_id: uuid.UUID) -> int:
    return session.execute(delete(table).where(table.c.tenant_id == tenant_id)).rowcount


def _brigade(session, tenant_id: uuid.UUID) -> Tenant:
    tenant = session.get(Tenant, tenant_id)
    if tenant is None or tenant_id == PLATFORM_TENANT_ID:
        raise NotFound()
    return tenant


def _report(tenant: Tenant) -> DeletionReport:
    cancelled_on = tenant.contract_end or tenant.created_at.date()
    return DeletionReport(tenant.id, tenant.name, cancelled_on, deletion_due(cancelled_on))
