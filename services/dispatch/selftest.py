"""The call-out's scheduled self-test (自己診断, #21): once a day, at each brigade's hour (JST),
the path from a dispatch mail to the members' phones is walked without reaching anyone.

1. 受信メールの解析: each active mail source's profile reads a dispatch mail with the intake's
   own decoder and parser (services.dispatch.selftest_mail).
2. 出動の登録: a test incident (numbered 0, outside the brigade's numbering, never listed) and a
   wave of kind SELFTEST queued with callout.queue_wave, with one outbox chunk naming no member.
3. LINEでの送信確認: the sender hands that chunk to LINE's validate endpoint, which checks the
   message and the channel's token and sends it to nobody; a later pass of the worker checks
   that it reached SENT within CHECK_WITHIN. Without a Messaging API channel it is skipped.

The result is kept on the brigade's call-out settings and audited (callout.selftest), and the
incident and its rows are removed. A failure is shown to administrators on 出動メール設定 and
the dashboard, and pushed on LINE (an ordinary wave through the outbox, the incident kept
closed until it is sent) to the linked members holding 災害出動 管理, unless LINE refused the
validation itself: its push would be refused too.

Work no person starts runs as machine:callout-selftest (災害出動 編集). The worker finds the
brigades due, or with a self-test running, through the SECURITY DEFINER function of migration
y003 before any brigade is known."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from enum import StrEnum

from sqlalchemy import or_, text
from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from config import get_settings
from core.access import Need
from core.actor import Actor, machine_actor
from core.timefmt import JST, to_jst
from formats import line_callout
from integrations.line_messaging import new_retry_key
from models import Member, MemberLine, MemberRole, Permission, Tenant
from models.base import utcnow
from models.callout import (
    Callout,
    CalloutAnswer,
    CalloutKind,
    CalloutSettings,
    CalloutTarget,
    LineOutbox,
    OutboxStatus,
)
from models.dispatch import Incident, IncidentEntry, IncidentStatus
from models.enums import Function, Level, MemberStatus, TenantStatus
from services.base import Tx, scoped, transaction
from services.db import unit_of_work
from services.dispatch import callout, incidents, outbox, selftest_mail
from services.dispatch.selftest_mail import Outcome
from services.errors import ServiceError, ValidationError

log = logging.getLogger(__name__)
JOB = "callout-selftest"
CHECK_WITHIN = timedelta(minutes=2)  # the chunk must reach SENT by then
ALERT_WITHIN = timedelta(minutes=10)  # an alert still unsent then is given up with the rows
STALLED_AFTER = timedelta(minutes=5)  # a self-test still running then: no worker checks it
STALE_AFTER = timedelta(hours=26)  # switched on but not run for this long: no worker runs it
DEFAULT_HOUR: int | None = CalloutSettings.model_fields["selftest_hour"].default
CHECK_WORKER = "出動メールの受信処理（mail-intake）が動いているか確認してください。"
RUNNING = "自己診断を実行中です（異常の通知の送信を含みます）。しばらくしてからやり直してください。"


class Step(StrEnum):
    MAIL = "mail"
    INCIDENT = "incident"
    LINE = "line"

    @property
    def label(self) -> str:
        return {"mail": "受信メールの解析", "incident": "出動の登録", "line": "LINEでの送信確認"}[
            self.value
        ]


@dataclass(frozen=True)
class StepResult:
    step: Step
    outcome: Outcome
    reason: str = ""  # why it failed or was skipped, in Japanese


@dataclass(frozen=True)
class Result:
    started_at: datetime
    steps: tuple[StepResult, ...]

    @property
    def passed(self) -> bool:
        return all(s.outcome != Outcome.FAILED for s in self.steps)

    @property
    def error(self) -> str:
        """The failed steps, each named with its reason ("" when it passed)."""
        return " / ".join(
            f"{s.step.label}: {s.reason}" for s in self.steps if s.outcome == Outcome.FAILED
        )


@dataclass(frozen=True)
class Status:
    hour: int | None  # JST hour of day, None: off
    last_at: datetime | None  # when the last self-test started
    last_error: str  # "": it passed
    running_since: datetime | None
    messaging: bool
    version: int  # of the brigade's call-out settings
    now: datetime

    @property
    def warnings(self) -> tuple[str, ...]:
        """What administrators must see (出動メール設定, the dashboard)."""
        found = []
        if self.running_since is not None and self.now - self.running_since > STALLED_AFTER:
            found.append(
                f"{to_jst(self.running_since)}に始めた自己診断が終わっていません。" + CHECK_WORKER
            )
        if self.last_error and self.last_at is not None:
            found.append(
                f"出動連絡の自己診断で異常が見つかりました（{to_jst(self.last_at)}）。"
                f"{self.last_error}"
            )
        elif (
            self.hour is not None
            and self.last_at is not None
            and self.running_since is None
            and self.now - self.last_at > STALE_AFTER
        ):
            found.append(
                f"出動連絡の自己診断が{to_jst(self.last_at)}から行われていません。" + CHECK_WORKER
            )
        return tuple(found)


def selftest_actor(tenant_id: uuid.UUID) -> Actor:
    return machine_actor(tenant_id, JOB, [(Function.DISPATCH, Level.EDIT)])


# ---------------------------------------------------------------------------
# When


def last_slot(now: datetime, hour: int) -> datetime:
    """The latest time at `hour` o'clock JST not after `now`."""
    day = (now.astimezone(JST) - timedelta(hours=hour)).date()
    return datetime.combine(day, time(hour), tzinfo=JST)


def is_due(now: datetime, hour: int | None, last_at: datetime | None) -> bool:
    """Once a day: due when no self-test has started since the last slot at the brigade's hour
    (a run by hand before the hour leaves that day's run due; one after it stands for it)."""
    return hour is not None and (last_at is None or last_at < last_slot(now, hour))


def due_tenants(now: datetime) -> list[uuid.UUID]:
    """Brigades whose self-test is due or running, asked before any brigade is known: on
    PostgreSQL through the narrow SECURITY DEFINER function of migration y003."""
    with unit_of_work(None) as db:
        if db.get_bind().dialect.name == "postgresql":
            rows = db.execute(
                text("SELECT dispatch_selftest_due(:now, :hour)"),
                {"now": now, "hour": DEFAULT_HOUR},
            ).all()
            return [r[0] for r in rows]
        brigades = db.exec(
            select(
                Tenant.id,
                CalloutSettings.tenant_id,
                CalloutSettings.selftest_hour,
                CalloutSettings.selftest_last_at,
            )
            .select_from(Tenant)
            .outerjoin(CalloutSettings, CalloutSettings.tenant_id == Tenant.id)
            .where(Tenant.status == TenantStatus.ACTIVE)
        ).all()
        due = {
            tenant_id
            for tenant_id, row, hour, last_at in brigades
            if is_due(now, DEFAULT_HOUR if row is None else hour, last_at)
        }
        running = db.exec(
            select(Incident.tenant_id).where(
                Incident.test, Incident.number == incidents.SELFTEST_NUMBER
            )
        ).all()
        return list(due | set(running))


def run_due(*, now: datetime | None = None) -> int:
    """One pass of the worker over every brigade due: start, check or tidy up. Returns how many
    self-tests came to a result."""
    now = now or utcnow()
    results = 0
    for tenant_id in due_tenants(now):
        try:
            results += run_tenant(tenant_id, now=now) is not None
        except Exception:
            log.exception("a brigade's self-test failed; it is tried again at the next pass")
    return results


def run_tenant(tenant_id: uuid.UUID, *, now: datetime | None = None) -> Result | None:
    """Advance one brigade's self-test: check a running one, tidy up after its alert, or start
    the day's one when due. Returns the result when one came now."""
    now = now or utcnow()
    actor = selftest_actor(tenant_id)
    with transaction(actor, callout.EDIT, action="callout.selftest") as tx:
        row = _running(tx)
        if row is not None:
            result = _advance(tx, row, now)
            tx.commit()
            return result
        settings = callout.settings_in(tx)
        if not is_due(now, settings.selftest_hour, settings.selftest_last_at):
            return None
    try:
        return _start(actor, now, callout.EDIT)
    except ValidationError:  # another process started it a moment ago
        return None


def run_now(actor: Actor, *, now: datetime | None = None) -> Result | None:
    """「今すぐ自己診断」(管理): start at once. Returns the result when it is known at once
    (without LINE); else the worker's next pass checks LINE's answer and keeps the result."""
    return _start(actor, now or utcnow(), callout.ADMIN, manual=True)


# ---------------------------------------------------------------------------
# Start


def _start(actor: Actor, now: datetime, need: Need, *, manual: bool = False) -> Result | None:
    try:
        with transaction(actor, need, action="callout.selftest_start") as tx:
            if _running(tx) is not None:
                raise ValidationError({"自己診断": RUNNING})
            if manual:
                tx.audit("callout.selftest_start", target_type="callout_settings")
            row = _create(tx, now)
            result = None
            if not callout.messaging_enabled():
                line = StepResult(Step.LINE, Outcome.SKIPPED, "LINE未設定")
                result = _conclude(tx, row, now, line, now, alert=False)
            tx.commit()
    except ServiceError:
        raise
    except IntegrityError:  # the self-test's number is taken: another process started one
        raise ValidationError({"自己診断": RUNNING}) from None
    except Exception as exc:
        log.exception("the self-test could not register its incident")
        return _incident_failed(actor, now, need, exc)
    outbox.wake.set()  # a sender in this process sends the chunk now
    return result


def _create(tx: Tx, now: datetime) -> Incident:
    """The self-test's incident and its wave, as a call-out queues them, but for nobody."""
    row = incidents.new_incident(
        tx,
        kind=incidents.SELFTEST_KIND,
        place="",
        landmark="",
        units=(),
        reference="",
        occurred_at=now,
        subject="",
        received_at=now,
        number=incidents.SELFTEST_NUMBER,
    )
    row.test = True
    row.created_at = row.updated_at = now  # the check's deadline counts from `now`
    message = line_callout.callout_message(
        callout.content_of(tx, row), heading="自己診断（団員には送信されません）"
    )
    wave = callout.queue_wave(tx, row, CalloutKind.SELFTEST, [], [message])
    if callout.messaging_enabled():
        tx.session.add(
            LineOutbox(
                tenant_id=tx.tenant_id,
                callout_id=wave.id,
                chunk=0,
                member_ids="[]",
                retry_key=new_retry_key(),
                next_attempt_at=now,
            )
        )
        tx.session.flush()
    return row


def _incident_failed(actor: Actor, now: datetime, need: Need, exc: Exception) -> Result:
    reason = f"出動を登録できませんでした（{type(exc).__name__}）。"
    with transaction(actor, need, action="callout.selftest") as tx:
        steps = (
            StepResult(Step.INCIDENT, Outcome.FAILED, reason),
            StepResult(Step.LINE, Outcome.SKIPPED, "出動を登録できなかったため確認していません。"),
        )
        result = Result(now, (_mail_step(tx, now), *steps))
        _record(tx, result, alerted=0)
        tx.commit()
        return result


# ---------------------------------------------------------------------------
# Check, conclude, alert, tidy up


def _running(tx: Tx) -> Incident | None:
    """The brigade's self-test incident, locked: one process advances it at a time."""
    query = scoped(select(Incident), tx.actor).where(Incident.number == incidents.SELFTEST_NUMBER)
    return tx.session.exec(query.with_for_update()).first()


def _advance(tx: Tx, row: Incident, now: datetime) -> Result | None:
    if row.status == IncidentStatus.CLOSED:  # the result is kept; its alert was on its way
        if _alert_done(tx, row, now):
            _remove(tx, row)
        return None
    chunks = _chunks(tx, row, CalloutKind.SELFTEST)
    chunk = chunks[0] if chunks else None
    line = _line_step(chunk, row.created_at, now)
    if line is None:
        return None
    # a channel whose token or month's messages LINE refuses would refuse the alert too
    refused = chunk is not None and chunk.status == OutboxStatus.FAILED and _channel_refused(chunk)
    if chunk is not None and chunk.status in (OutboxStatus.PENDING, OutboxStatus.SENDING):
        chunk.status = OutboxStatus.CANCELLED  # no more retries of a self-test that is over
    return _conclude(tx, row, row.created_at, line, now, alert=not refused)


def _chunks(tx: Tx, row: Incident, kind: CalloutKind) -> list[LineOutbox]:
    waves = scoped(select(Callout.id), tx.actor).where(
        Callout.incident_id == row.id, Callout.kind == kind
    )
    query = scoped(select(LineOutbox), tx.actor).where(LineOutbox.callout_id.in_(waves))
    return list(tx.session.exec(query.order_by(LineOutbox.chunk).with_for_update()).all())


def _line_step(chunk: LineOutbox | None, started: datetime, now: datetime) -> StepResult | None:
    """What LINE made of the self-test's chunk; None while it may still be sent."""
    if chunk is None:
        return StepResult(Step.LINE, Outcome.FAILED, "送信の予約が見つかりません。")
    status = OutboxStatus(chunk.status)
    if status == OutboxStatus.SENT:
        return StepResult(Step.LINE, Outcome.PASSED)
    if status == OutboxStatus.FAILED:
        return StepResult(Step.LINE, Outcome.FAILED, _refusal(chunk))
    if status == OutboxStatus.CANCELLED:
        return StepResult(Step.LINE, Outcome.FAILED, "送信が取り消されました。")
    if now < started + CHECK_WITHIN or _in_flight(chunk, now):
        return None
    if chunk.attempts == 0:
        answer = "送信処理が動いていません"
    else:
        answer = f"LINEの応答: {chunk.last_status or 'なし'}"
    minutes = int(CHECK_WITHIN.total_seconds() // 60)
    return StepResult(
        Step.LINE,
        Outcome.FAILED,
        f"{minutes}分以内に送信できませんでした（{answer}）。"
        "出動メールの受信処理（mail-intake）とLINEの状態を確認してください。",
    )


def _in_flight(chunk: LineOutbox, now: datetime) -> bool:
    """Claimed by a sender whose lease runs: it is calling LINE and will mark the row."""
    return (
        chunk.status == OutboxStatus.SENDING
        and chunk.claimed_until is not None
        and chunk.claimed_until > now
    )


def _channel_refused(chunk: LineOutbox) -> bool:
    return chunk.last_status in (401, 403, 429) or chunk.error == outbox.QUOTA_EXHAUSTED.error


def _refusal(chunk: LineOutbox) -> str:
    if chunk.error == outbox.QUOTA_EXHAUSTED.error or chunk.last_status == 429:
        return "LINEの今月の送信上限に達しています。"
    if chunk.last_status in (401, 403):
        return (
            f"LINEがチャネルアクセストークンを受け付けませんでした（{chunk.last_status}）。"
            "Messaging APIの設定を確認してください。"
        )
    if chunk.last_status == 400:
        return "LINEが出動連絡のメッセージを受け付けませんでした（400）。"
    if chunk.last_status is None:
        return f"LINEから応答がありませんでした（{chunk.error or '不明'}）。"
    return f"LINEが受け付けませんでした（{chunk.last_status}）。"


def _conclude(
    tx: Tx, row: Incident, started: datetime, line: StepResult, now: datetime, *, alert: bool
) -> Result:
    """Keep the result; alert the administrators on a failure (the incident then stays, closed,
    until its alert is sent), else remove the incident and its rows now."""
    steps = (StepResult(Step.INCIDENT, Outcome.PASSED), line)
    result = Result(started, (_mail_step(tx, now), *steps))
    alerted = 0
    if not result.passed and alert and callout.messaging_enabled():
        alerted = _alert(tx, row, result)
    if alerted:
        row.status, row.closed_at = IncidentStatus.CLOSED, now
    else:
        _remove(tx, row)
    _record(tx, result, alerted=alerted)
    return result


def _record(tx: Tx, result: Result, *, alerted: int) -> None:
    row = tx.session.get(CalloutSettings, tx.tenant_id)
    if row is None:  # version 0: the rules form still sees "no rules saved yet"
        row = CalloutSettings(tenant_id=tx.tenant_id, version=0)
        tx.session.add(row)
    row.selftest_last_at = result.started_at
    row.selftest_last_error = result.error
    tx.audit(
        "callout.selftest",
        target_type="callout_settings",
        outcome="success" if result.passed else "failure",
        details={
            "started_at": result.started_at.isoformat(),
            "steps": {s.step.value: s.outcome.value for s in result.steps},
            "failed_steps": [s.step.label for s in result.steps if s.outcome == Outcome.FAILED],
            "error": result.error,
            "alerted": alerted,
        },
    )


def _alert(tx: Tx, row: Incident, result: Result) -> int:
    """A LINE message to the linked members holding 災害出動 管理; returns how many."""
    recipients = _dispatch_admins(tx)
    if not recipients:
        return 0
    link = f"{get_settings().public_base_url.rstrip('/')}/mail-sources"
    message = line_callout.text_message(
        f"【自己診断】出動連絡の自己診断で異常が見つかりました（{to_jst(result.started_at)}）。\n"
        f"{result.error}\n出動メール設定で確認してください。\n{link}"
    )
    callout.queue_wave(tx, row, CalloutKind.SELFTEST_ALERT, recipients, [message])
    return len(recipients)


def _dispatch_admins(tx: Tx) -> list[uuid.UUID]:
    """Active members linked to LINE who hold 災害出動 管理 through their rank or a role (the
    sender leaves out those who blocked the official account)."""
    holders = scoped(select(Permission.subject_id), tx.actor).where(
        Permission.function == str(Function.DISPATCH), Permission.level >= int(Level.ADMIN)
    )
    by_role = scoped(select(MemberRole.member_id), tx.actor).where(MemberRole.role_id.in_(holders))
    linked = scoped(select(MemberLine.member_id), tx.actor)
    query = scoped(select(Member.id), tx.actor).where(
        Member.status == str(MemberStatus.ACTIVE),
        or_(Member.rank_id.in_(holders), Member.id.in_(by_role)),
        Member.id.in_(linked),
    )
    return sorted(tx.session.exec(query).all())


def _alert_done(tx: Tx, row: Incident, now: datetime) -> bool:
    chunks = _chunks(tx, row, CalloutKind.SELFTEST_ALERT)
    if any(_in_flight(c, now) for c in chunks):
        return False  # a sender is on it: its row must still be there when it finishes
    settled = (OutboxStatus.SENT, OutboxStatus.FAILED, OutboxStatus.CANCELLED)
    return all(c.status in settled for c in chunks) or now >= row.closed_at + ALERT_WITHIN


def _mail_step(tx: Tx, now: datetime) -> StepResult:
    try:
        return StepResult(Step.MAIL, *selftest_mail.check_sources(tx, now))
    except Exception as exc:  # a fault of the self-test's own is reported as a failure
        log.exception("the self-test's mail step failed")
        reason = f"確認できませんでした（{type(exc).__name__}）。"
        return StepResult(Step.MAIL, Outcome.FAILED, reason)


def _remove(tx: Tx, row: Incident) -> None:
    """The self-test's incident and everything hanging on it, children first."""
    waves = scoped(select(Callout.id), tx.actor).where(Callout.incident_id == row.id)
    for query in (
        scoped(select(LineOutbox), tx.actor).where(LineOutbox.callout_id.in_(waves)),
        scoped(select(CalloutTarget), tx.actor).where(CalloutTarget.incident_id == row.id),
        scoped(select(CalloutAnswer), tx.actor).where(CalloutAnswer.incident_id == row.id),
        scoped(select(Callout), tx.actor).where(Callout.incident_id == row.id),
        scoped(select(IncidentEntry), tx.actor).where(IncidentEntry.incident_id == row.id),
    ):
        for child in tx.session.exec(query).all():
            tx.session.delete(child)
        tx.session.flush()
    tx.session.delete(row)
    tx.session.flush()


# ---------------------------------------------------------------------------
# Reading and setting (管理)


def status(actor: Actor, *, now: datetime | None = None) -> Status:
    with transaction(actor, callout.ADMIN, action="callout.selftest_status", read_only=True) as tx:
        return status_in(tx, now or utcnow())


def status_in(tx: Tx, now: datetime) -> Status:
    """For pages that read it inside their own transaction (the dashboard)."""
    settings = callout.settings_in(tx)
    running = tx.session.exec(
        scoped(select(Incident.created_at), tx.actor).where(
            Incident.number == incidents.SELFTEST_NUMBER, Incident.status != IncidentStatus.CLOSED
        )
    ).first()
    return Status(
        hour=settings.selftest_hour,
        last_at=settings.selftest_last_at,
        last_error=settings.selftest_last_error,
        running_since=running,
        messaging=callout.messaging_enabled(),
        version=settings.version,
        now=now,
    )


def set_hour(actor: Actor, hour: int | None, *, expected_version: int) -> Status:
    """The JST hour the self-test runs each day (0–23), or None to switch it off. Version 0
    means no call-out settings saved yet."""
    with transaction(actor, callout.ADMIN, action="callout.selftest_hour") as tx:
        row = callout.settings_to_change(tx, expected_version)
        if hour is not None and (type(hour) is not int or not 0 <= hour <= 23):
            raise ValidationError(
                {"実行時刻": "実行時刻は0〜23時から選ぶか、「実行しない」にしてください。"}
            )
        before = row.selftest_hour
        row.selftest_hour = hour
        callout.settings_changed(row)
        tx.audit(
            "callout.selftest_hour",
            target_type="callout_settings",
            details={"before": before, "after": hour},
        )
        tx.commit()
    return status(actor)
