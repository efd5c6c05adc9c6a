"""Retention of the event log (white paper 18.1.3: kept at least one year).

The purge deletes, per chain, only events older than the retention (HIKESHI_LOG_RETENTION_DAYS,
never below 365) and only up to a signed checkpoint: the newest checkpoint before the first event
that is still young. The chain up to that checkpoint is verified first, so evidence of tampering
is never purged. Deleting and recording the run (operation audit.purge, with the boundary the
verifier then starts from) happen in one transaction.

The database enforces the same rules on its own (migration e001): on PostgreSQL the application
role deletes only through the SECURITY DEFINER function audit_purge; on SQLite a guard row of
this transaction opens the delete trigger for exactly the purged rows. Either refuses rows not
older than 365 days by the database's clock, whatever clock the caller passes in.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, func, insert, text
from sqlmodel import Session, select

from config import MIN_LOG_RETENTION_DAYS, ConfigError, get_settings
from core.actor import system_actor
from models import AuditChainHead, AuditCheckpoint, AuditEvent, AuditPurgeGuard
from models.base import utcnow
from models.enums import AuditCategory
from services import audit
from services.audit_verify import (
    PURGE_ACTION,
    AuditChainBroken,
    chains,
    verification_key,
    verify_chain,
)
from services.db import unit_of_work

PURGE_LABEL = "retention-purge"
EVENTS = AuditEvent.__table__
GUARDS = AuditPurgeGuard.__table__


class RetentionUnavailable(RuntimeError):
    """No public key: checkpoints cannot be verified, so nothing may be purged."""


@dataclass(frozen=True)
class PurgeResult:
    tenant_id: uuid.UUID
    cutoff: datetime
    purged_through: int  # the chain now starts after this seq (0: nothing purged, ever)
    deleted: int  # by this run
    event_seq: int  # the audit.purge event recording this run


@dataclass
class PurgeRun:
    available: bool = True
    results: list[PurgeResult] = field(default_factory=list)
    broken: dict[uuid.UUID, int | None] = field(default_factory=dict)


def retention_days(days: int | None = None) -> int:
    days = get_settings().log_retention_days if days is None else days
    if days < MIN_LOG_RETENTION_DAYS:
        raise ConfigError(f"log retention must be at least {MIN_LOG_RETENTION_DAYS} days")
    return days


def purge_expired(
    tenant_id: uuid.UUID, *, now: datetime | None = None, days: int | None = None
) -> PurgeResult:
    """Purge one chain. now is the clock (injected in tests); raises AuditChainBroken when the
    part to purge does not verify, RetentionUnavailable without the public key."""
    if verification_key() is None:
        raise RetentionUnavailable("HIKESHI_AUDIT_VERIFY_KEY is not set")
    days = retention_days(days)
    actor = replace(system_actor(tenant_id, label=PURGE_LABEL), label=PURGE_LABEL)
    with unit_of_work(tenant_id) as session:
        # the database refuses rows younger than a year by its own clock: an app clock running
        # ahead must not make the whole run fail
        floor = _database_now(session) - timedelta(days=MIN_LOG_RETENTION_DAYS)
        cutoff = min((now or utcnow()) - timedelta(days=days), floor)
        head = session.exec(
            select(AuditChainHead).where(AuditChainHead.tenant_id == tenant_id).with_for_update()
        ).one()
        first = _scalar(session, func.min(AuditEvent.seq), AuditEvent.tenant_id == tenant_id)
        purged_through = (first or head.seq + 1) - 1
        boundary = _boundary(session, tenant_id, cutoff, head.seq)
        deleted = 0
        if boundary is not None and boundary > purged_through:
            result = verify_chain(session, tenant_id, to_seq=boundary)
            if not result.ok or result.last_seq != boundary:
                raise AuditChainBroken(tenant_id, result)
            deleted = _delete(session, tenant_id, boundary, cutoff)
            purged_through = boundary
        event = audit.record(
            session,
            actor,
            category=AuditCategory.OPERATION,
            action=PURGE_ACTION,
            target_type="audit_event",
            details={
                "cutoff": cutoff.isoformat(),
                "retention_days": days,
                "deleted": deleted,
                "purged_through": purged_through,
            },
            tenant_id=tenant_id,
        )
        session.commit()
    return PurgeResult(tenant_id, cutoff, purged_through, deleted, event.seq)


def _database_now(session: Session) -> datetime:
    if session.get_bind().dialect.name == "postgresql":
        return session.execute(text("SELECT now()")).scalar_one()
    stamp = session.execute(text("SELECT strftime('%Y-%m-%d %H:%M:%f', 'now')")).scalar_one()
    return datetime.fromisoformat(stamp).replace(tzinfo=UTC)


def _scalar(session: Session, column, *conditions) -> int | None:
    return session.exec(select(column).where(*conditions)).one()


def _boundary(session: Session, tenant_id: uuid.UUID, cutoff: datetime, head: int) -> int | None:
    """The newest checkpoint before the first event at or after the cutoff."""
    mine = AuditEvent.tenant_id == tenant_id
    first_young = _scalar(session, func.min(AuditEvent.seq), mine, AuditEvent.occurred_at >= cutoff)
    limit = head + 1 if first_young is None else first_young
    return _scalar(
        session,
        func.max(AuditCheckpoint.seq),
        AuditCheckpoint.tenant_id == tenant_id,
        AuditCheckpoint.seq < limit,
    )


def _delete(session: Session, tenant_id: uuid.UUID, boundary: int, cutoff: datetime) -> int:
    if session.get_bind().dialect.name == "postgresql":
        return session.execute(
            text("SELECT audit_purge(:tenant, :boundary, :cutoff)"),
            {"tenant": tenant_id, "boundary": boundary, "cutoff": cutoff},
        ).scalar_one()
    session.execute(
        insert(GUARDS).values(tenant_id=tenant_id, boundary_seq=boundary, cutoff=cutoff)
    )
    deleted = session.execute(
        delete(EVENTS).where(EVENTS.c.tenant_id == tenant_id, EVENTS.c.seq <= boundary)
    ).rowcount
    session.execute(delete(GUARDS).where(GUARDS.c.tenant_id == tenant_id))
    return deleted


def purge_all(*, now: datetime | None = None) -> PurgeRun:
    """The periodic job: every chain, the platform's included."""
    if verification_key() is None:
        return PurgeRun(available=False)
    run = PurgeRun()
    for tenant_id, _name in chains():
        try:
            run.results.append(purge_expired(tenant_id, now=now))
        except AuditChainBroken as exc:
            run.broken[tenant_id] = exc.result.first_broken_seq
    return run


def main_purge() -> int:
    """`cli.py purge-audit`: 0 when every chain was handled, 1 otherwise."""
    run = purge_all()
    if not run.available:
        print("NG  HIKESHI_AUDIT_VERIFY_KEY が未設定のため削除できません / no public key")
        return 1
    deleted = sum(r.deleted for r in run.results)
    print(
        f"保存期間 {retention_days()} 日: {len(run.results)} 件のチェーンで {deleted} 件を削除 / "
        f"retention {retention_days()} days: {deleted} events purged in {len(run.results)} chains"
    )
    for tenant_id, seq in run.broken.items():
        print(f"NG  {tenant_id}: seq {seq} で検証に失敗したため削除しません / chain broken")
    return 1 if run.broken else 0
