"""Sending the call-out (white paper 12.4.1, 外部サービスとの送受信): the outbox rows queued with
each wave go to LINE as multicasts, and the call-out timers (再通知, the crew check) run.

Any number of sender processes may run: a row is claimed (FOR UPDATE SKIP LOCKED on
PostgreSQL; SQLite's write lock serialises the claim) for a lease, sent outside any
transaction, then marked. A sender that dies mid-send leaves its lease to expire and the row is
sent again with the same X-Line-Retry-Key, which LINE answers with 409 instead of delivering it
twice. Every call to LINE is one entry in the brigade's 外部サービス log, without bodies,
tokens or user ids."""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_, text
from sqlmodel import select

from config import get_settings
from core.actor import Actor, machine_actor
from formats.line_callout import OFFER_LABEL, callout_message, shortage_message
from integrations.line_messaging import (
    MessagingCall,
    MessagingChannel,
    MessagingClient,
    Quota,
    SendResult,
)
from models import MemberLine
from models.base import utcnow
from models.callout import (
    Callout,
    CalloutKind,
    CalloutTarget,
    FriendStatus,
    LineOutbox,
    OutboxStatus,
)
from models.dispatch import Incident, IncidentStatus
from models.enums import Answer, Function, Level
from services import traffic_log
from services.base import Tx, scoped, transaction
from services.db import unit_of_work
from services.dispatch import callout, callout_rules, incidents
from services.signin.line_sessions import SUB_FIELD

log = logging.getLogger(__name__)
LEASE = timedelta(seconds=60)
CLAIM_BATCH = 20
SEND_TIMEOUT = 10.0  # seconds; a lost answer is retried with the same retry key
MAX_ATTEMPTS = 8
QUOTA_MAX_AGE_SECONDS = 60.0
# set by whoever queued a wave in this process: the sender loop wakes at once
wake = threading.Event()
# what a self-test's validation comes to when the month's messages are used up: a call-out
# would not go out either
QUOTA_EXHAUSTED = SendResult(
    status=None,
    request_id="",
    accepted=False,
    retryable=False,
    quota_exceeded=True,
    retry_after=None,
    error="quota_exhausted",
)


def sender_actor(tenant_id: uuid.UUID) -> Actor:
    return machine_actor(tenant_id, "line-outbox", [(Function.DISPATCH, Level.EDIT)])


def timer_actor(tenant_id: uuid.UUID) -> Actor:
    return machine_actor(tenant_id, "callout-timer", [(Function.DISPATCH, Level.EDIT)])


def channel() -> MessagingChannel:
    settings = get_settings()
    return MessagingChannel(
        access_token=settings.line_messaging_token,
        channel_secret=settings.line_messaging_secret,
        api_url=settings.line_api_url,
    )


def recorder(actor: Actor, quota: QuotaGuard | None = None):
    """Each LINE call as one external.call event of the brigade (or the platform's) chain."""

    def record(call: MessagingCall) -> None:
        traffic_log.record_external_call(
            actor,
            service="line-messaging",
            endpoint=call.endpoint,
            method=call.method,
            status=call.status,
            latency_ms=call.latency_ms,
            retry_key=call.retry_key,
            error=call.error,
            request_id=call.request_id,
            recipients=call.recipients,
            quota_remaining=quota.remaining if quota else None,
        )

    return record


class QuotaGuard:
    """The month's remaining allowance, read at most once a minute and counted down locally
    after each send: a wave that would exceed it is not sent (LINE would refuse it anyway)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._read_at = 0.0
        self._quota: Quota | None = None
        self._sent = 0

    @property
    def remaining(self) -> int | None:
        with self._lock:
            if self._quota is None or self._quota.remaining is None:
                return None
            return max(self._quota.remaining - self._sent, 0)

    def refresh(self, client: MessagingClient) -> None:
        with self._lock:
            if time.monotonic() - self._read_at < QUOTA_MAX_AGE_SECONDS:
                return
            self._read_at = time.monotonic()
        try:
            quota = client.quota()
        except Exception:  # an unknown quota never stops a call-out
            log.warning("LINE quota could not be read")
            return
        with self._lock:
            self._quota, self._sent = quota, 0

    def allows(self, recipients: int) -> bool:
        remaining = self.remaining
        return remaining is None or recipients <= remaining

    def spent(self, recipients: int) -> None:
        with self._lock:
            self._sent += recipients


@dataclass(frozen=True)
class Work:
    tenant_id: uuid.UUID
    outbox_id: uuid.UUID
    incident_id: uuid.UUID
    user_ids: tuple[str, ...]
    messages: list[dict]
    retry_key: str
    attempts: int
    kind: CalloutKind


def due_tenants(now: datetime) -> list[uuid.UUID]:
    """Brigades with outbox rows or call-out timers due, asked before any brigade is known: on
    PostgreSQL through the narrow SECURITY DEFINER function of migration y001."""
    with unit_of_work(None) as db:
        if db.get_bind().dialect.name == "postgresql":
            rows = db.execute(text("SELECT dispatch_due_tenants(:now)"), {"now": now}).all()
            return [r[0] for r in rows]
        outbox = select(LineOutbox.tenant_id).where(
            or_(
                (LineOutbox.status == OutboxStatus.PENDING) & (LineOutbox.next_attempt_at <= now),
                (LineOutbox.status == OutboxStatus.SENDING) & (LineOutbox.claimed_until <= now),
            )
        )
        timers = select(Callout.tenant_id).where(Callout.escalate_at <= now)
        return list({*db.exec(outbox).all(), *db.exec(timers).all()})


def claim(tenant_id: uuid.UUID, now: datetime) -> list[Work]:
    with transaction(sender_actor(tenant_id), callout.EDIT, action="line_outbox.claim") as tx:
        rows = tx.session.exec(
            scoped(select(LineOutbox), tx.actor)
            .where(
                or_(
                    (LineOutbox.status == OutboxStatus.PENDING)
                    & (LineOutbox.next_attempt_at <= now),
                    (LineOutbox.status == OutboxStatus.SENDING) & (LineOutbox.claimed_until <= now),
                )
            )
            .order_by(LineOutbox.created_at, LineOutbox.chunk)
            .limit(CLAIM_BATCH)
            .with_for_update(skip_locked=True)
        ).all()
        work = []
        for row in rows:
            row.status, row.claimed_until = OutboxStatus.SENDING, now + LEASE
            row.attempts += 1
            wave = tx.session.get(Callout, row.callout_id)
            user_ids = _user_ids(tx, [uuid.UUID(m) for m in json.loads(row.member_ids)])
            work.append(
                Work(
                    tenant_id,
                    row.id,
                    wave.incident_id,
                    user_ids,
                    callout.wave_messages(tx, wave),
                    row.retry_key,
                    row.attempts,
                    CalloutKind(wave.kind),
                )
            )
        tx.commit()
        return work


def _user_ids(tx: Tx, member_ids: list[uuid.UUID]) -> tuple[str, ...]:
    """The LINE user ids of these members as linked now (a link removed or a block since the
    wave was queued drops the member)."""
    rows = tx.session.exec(
        scoped(select(MemberLine), tx.actor).where(MemberLine.member_id.in_(member_ids))
    ).all()
    return tuple(
        tx.cipher.decrypt(row.sub_enc, field=SUB_FIELD, row_id=row.id)
        for row in rows
        if FriendStatus(row.friend_status).reachable
    )


def deliver(client: MessagingClient, work: Work, quota: QuotaGuard) -> SendResult | None:
    """One multicast; None when no recipient is left, QUOTA_EXHAUSTED when the month's
    remaining messages do not cover it. The self-test's chunk is only validated by LINE
    (services.dispatch.selftest): nobody gets it."""
    if work.kind == CalloutKind.SELFTEST:
        return client.validate_multicast(work.messages) if quota.allows(1) else QUOTA_EXHAUSTED
    if not work.user_ids:
        return None
    if not quota.allows(len(work.user_ids)):
        return QUOTA_EXHAUSTED
    result = client.multicast(work.user_ids, work.messages, retry_key=work.retry_key)
    if result.accepted and result.status != 409:
        quota.spent(len(work.user_ids))
    return result


def backoff(attempts: int, retry_after: float | None) -> timedelta:
    return timedelta(seconds=max(retry_after or 0.0, min(0.5 * 2 ** (attempts - 1), 60.0)))


def finish(work: Work, result: SendResult | None) -> None:
    with transaction(sender_actor(work.tenant_id), callout.EDIT, action="line_outbox.finish") as tx:
        row = tx.get(LineOutbox, work.outbox_id)
        now = utcnow()
        row.claimed_until = None
        if result is None:
            row.status, row.error = OutboxStatus.SENT, "no_recipients"
        else:
            row.last_status, row.request_id = result.status, result.request_id[:64]
            row.error = result.error[:60]
            if result.accepted:
                row.status, row.sent_at = OutboxStatus.SENT, now
            elif result.retryable and work.attempts < MAX_ATTEMPTS:
                row.status = OutboxStatus.PENDING
                row.next_attempt_at = now + backoff(work.attempts, result.retry_after)
            else:
                row.status = OutboxStatus.FAILED
                reason = (
                    "今月の送信上限に達した" if result.quota_exceeded else "LINEが受け付けなかった"
                )
                _note(tx, work, f"{reason}ため、{len(work.user_ids)}名に送信できませんでした。")
        tx.commit()


def _note(tx: Tx, work: Work, summary: str) -> None:
    row = tx.get(Incident, work.incident_id)
    if row is not None:
        incidents.add_entry(tx, row, "line", summary)
    tx.audit(
        "callout.send_failed",
        target_type="incident",
        target_id=work.incident_id,
        outcome="failure",
        details={"recipients": len(work.user_ids), "summary": summary},
    )


def send_tenant(tenant_id: uuid.UUID, quota: QuotaGuard, *, now: datetime | None = None) -> int:
    """Send what is due for one brigade; returns how many multicasts LINE accepted."""
    accepted = 0
    work_items = claim(tenant_id, now or utcnow())
    if not work_items:
        return 0
    record = recorder(sender_actor(tenant_id), quota)
    with MessagingClient(channel(), record, timeout=SEND_TIMEOUT) as client:
        quota.refresh(client)
        for work in work_items:
            result = deliver(client, work, quota)
            finish(work, result)
            accepted += bool(result and result.accepted)
    return accepted


def run_due(quota: QuotaGuard, *, now: datetime | None = None) -> int:
    """One pass of the sender and the timers over every brigade with something due."""
    now = now or utcnow()
    accepted = 0
    for tenant_id in due_tenants(now):
        try:
            escalate(tenant_id, now=now)
            if callout.messaging_enabled():
                accepted += send_tenant(tenant_id, quota, now=now)
        except Exception:
            log.exception("call-out work of a brigade failed; it is retried at the next pass")
    return accepted


# ---------------------------------------------------------------------------
# Timers: the reminder to the silent, and the crew check


def escalate(tenant_id: uuid.UUID, *, now: datetime) -> int:
    """For each wave whose time has come: remind its targets who have not answered, and tell
    the leaders which 分団 are short of the crew minimum. Returns the waves handled."""
    with transaction(timer_actor(tenant_id), callout.EDIT, action="callout.escalate") as tx:
        waves = tx.session.exec(
            scoped(select(Callout), tx.actor)
            .where(Callout.escalate_at <= now)
            .with_for_update(skip_locked=True)
        ).all()
        for wave in waves:
            wave.escalate_at = None
            row = tx.get(Incident, wave.incident_id)
            if IncidentStatus(row.status) in callout.CALLABLE:
                _remind(tx, row, wave, now)
                _check_crews(tx, row, wave)
        tx.commit()
        return len(waves)


def _remind(tx: Tx, row: Incident, wave: Callout, now: datetime) -> None:
    answers = callout.latest_answers(tx, row.id)
    silent = [
        t
        for t in tx.session.exec(
            scoped(select(CalloutTarget), tx.actor).where(CalloutTarget.callout_id == wave.id)
        ).all()
        if t.member_id not in answers and t.notified and t.reminded_at is None
    ]
    if not silent:
        return
    for target in silent:
        target.reminded_at = now
    message = callout_message(callout.content_of(tx, row), heading="再通知（未回答）")
    callout.queue_wave(
        tx, row, callout.CalloutKind.REMINDER, [t.member_id for t in silent], [message]
    )
    incidents.add_entry(tx, row, "callout", f"未回答の{len(silent)}名に再通知します。")
    tx.audit(
        "callout.reminder",
        target_type="incident",
        target_id=row.id,
        details={"number": row.number, "recipients": len(silent)},
    )


def _check_crews(tx: Tx, row: Incident, wave: Callout) -> None:
    minimum = callout.settings_in(tx).crew_minimum
    units = json.loads(wave.units)
    answers = callout.latest_answers(tx, row.id)
    targets = callout.targeted(tx, row.id).values()
    shortages = {}
    for unit in units:
        coming = sum(
            1
            for t in targets
            if t.unit == unit
            and t.member_id in answers
            and Answer(answers[t.member_id].answer).coming
        )
        if coming < minimum:
            shortages[unit] = (coming, minimum)
    if not shortages:
        return
    leaders = [t.member_id for t in targets if t.leader and t.notified]
    offer = callout_rules.offer_in(tx, row, shortages)
    if leaders:
        callout.queue_wave(
            tx,
            row,
            callout.CalloutKind.SHORTAGE,
            leaders,
            [shortage_message(callout.content_of(tx, row), shortages, offer)],
        )
    short = "、".join(f"{u} {c}/{m}名" for u, (c, m) in shortages.items())
    near = f"{OFFER_LABEL}: {'・'.join(offer)}。" if offer else ""
    told = "LINEで幹部に連絡します" if leaders else "LINEで連絡できる幹部がいません"
    incidents.add_entry(tx, row, "shortage", f"人員不足（出動可/必要）: {short}。{near}{told}。")
    tx.audit(
        "callout.shortage",
        target_type="incident",
        target_id=row.id,
        details={
            "number": row.number,
            "shortages": {u: list(v) for u, v in shortages.items()},
            "offer": list(offer),
        },
    )
