"""What /readyz and /metrics read from the database (white paper 12.1.3: the provider monitors
capacity and the service's health). Platform-wide figures only: counts and ages, never a row,
an id or a brigade's name.

On PostgreSQL the cross-brigade counts come from the SECURITY DEFINER function of migration
z007 (row-level security hides other brigades' rows from the application role); on SQLite,
which has no such wall, from the same queries written out here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path

from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import case, func, or_, select, text, type_coerce

from config import get_settings
from models import AuditEvent, InboundMail, LineOutbox, Tenant
from models import Session as UserSession
from models.base import UTCDateTime, utcnow
from models.callout import OutboxStatus
from models.dispatch import MailStatus
from models.enums import AuditCategory
from models.jobs import JobRun
from services.db import unit_of_work
from services.jobs import claims
from services.jobs.runner import HEARTBEAT_SECONDS

ROOT = Path(__file__).resolve().parent.parent
FRESH_BEATS = 3  # a worker is alive while its heartbeat is younger than this many beats
CALLS_WINDOW = timedelta(hours=1)


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


@cache
def code_head() -> str:
    """The migration this code expects: the head of migrations/versions."""
    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(ROOT / "migrations"))
    return ScriptDirectory.from_config(config).get_current_head() or ""


def readiness(now: datetime | None = None) -> list[Check]:
    """The database answers, its schema is at the code's head, a worker beat recently."""
    now = now or utcnow()
    try:
        with unit_of_work(None, read_only=True) as db:
            versions = set(db.execute(text("SELECT version_num FROM alembic_version")).scalars())
    except Exception as exc:
        return [Check("database", False, type(exc).__name__)]
    checks = [Check("database", True, "ok")]
    head = code_head()
    checks.append(
        Check(
            "migrations", versions == {head}, f"database {','.join(sorted(versions))}, code {head}"
        )
    )
    beat = claims.last_heartbeat()
    limit = timedelta(seconds=FRESH_BEATS * HEARTBEAT_SECONDS)
    if beat is None:
        checks.append(Check("worker", False, "no worker heartbeat"))
    else:
        age = (now - beat).total_seconds()
        checks.append(Check("worker", now - beat < limit, f"heartbeat {age:.0f} s ago"))
    return checks


@dataclass(frozen=True)
class Figures:
    active_sessions: int
    intake_lag_seconds: float
    outbox_lag_seconds: float
    # (service, outcome) -> external calls in the last CALLS_WINDOW, from the external-service log
    external_calls: dict[tuple[str, str], int]
    jobs: list[JobRun]
    heartbeat_age_seconds: float | None


def figures(now: datetime | None = None) -> Figures:
    now = now or utcnow()
    idle_after = now - timedelta(minutes=get_settings().session_idle_minutes)
    since = now - CALLS_WINDOW
    with unit_of_work(None, read_only=True) as db:
        if db.get_bind().dialect.name == "postgresql":
            rows = db.execute(
                text("SELECT name, label, value FROM monitoring_counts(:now, :idle, :since)"),
                {"now": now, "idle": idle_after, "since": since},
            ).all()
        else:
            rows = _sqlite_counts(db, now, idle_after, since)
    values = {name: value for name, label, value in rows if name != "external_calls"}
    calls = {
        tuple(label.split(" ", 1)): int(value)
        for name, label, value in rows
        if name == "external_calls"
    }
    beat = claims.last_heartbeat()
    return Figures(
        active_sessions=int(values.get("active_sessions", 0)),
        intake_lag_seconds=float(values.get("intake_lag_seconds", 0.0)),
        outbox_lag_seconds=float(values.get("outbox_lag_seconds", 0.0)),
        external_calls=calls,
        jobs=claims.job_rows(),
        heartbeat_age_seconds=None if beat is None else (now - beat).total_seconds(),
    )


def _age(now: datetime, oldest: datetime | None) -> float:
    return max((now - oldest).total_seconds(), 0.0) if oldest is not None else 0.0


def _sqlite_counts(db, now: datetime, idle_after: datetime, since: datetime) -> list[tuple]:
    sessions = db.execute(
        select(func.count()).where(
            UserSession.revoked_at.is_(None),
            UserSession.expires_at > now,
            UserSession.last_seen_at > idle_after,
        )
    ).scalar_one()
    mail = db.execute(
        select(func.min(InboundMail.received_at)).where(InboundMail.status == MailStatus.RECEIVED)
    ).scalar_one()
    due = type_coerce(
        case(
            (LineOutbox.status == OutboxStatus.PENDING, LineOutbox.next_attempt_at),
            else_=LineOutbox.claimed_until,
        ),
        UTCDateTime(),
    )
    outbox = db.execute(
        select(func.min(due)).where(
            or_(
                (LineOutbox.status == OutboxStatus.PENDING) & (LineOutbox.next_attempt_at <= now),
                (LineOutbox.status == OutboxStatus.SENDING) & (LineOutbox.claimed_until <= now),
            )
        )
    ).scalar_one()
    calls = db.execute(
        select(AuditEvent.target_type, AuditEvent.outcome, func.count())
        .join(Tenant, Tenant.id == AuditEvent.tenant_id)
        .where(AuditEvent.category == AuditCategory.EXTERNAL, AuditEvent.occurred_at >= since)
        .group_by(AuditEvent.target_type, AuditEvent.outcome)
    ).all()
    return [
        ("active_sessions", "", sessions),
        ("intake_lag_seconds", "", _age(now, mail)),
        ("outbox_lag_seconds", "", _age(now, outbox)),
        *[("external_calls", f"{service} {outcome}", count) for service, outcome, count in calls],
    ]
