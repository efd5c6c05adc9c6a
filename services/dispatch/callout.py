"""The call-out (出動連絡, #21): whom an incident calls, the waves of LINE messages queued for
them in the same transaction as the decision (the outbox, sent by services.dispatch.outbox),
their answers (出動可否); the tally a leader watches is services.dispatch.tally.

Targets are the active members of the called 分団 plus the leaders (the configured rank and
above). Only members linked to LINE and not blocking the official account are messaged; the
others are still targets, shown as 未回答 so that a leader can phone them and enter the answer
(代理入力). Without a Messaging API channel nobody is messaged and the page says so."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import select

from config import get_settings
from core import access
from core.access import Need, in_unit
from core.actor import Actor
from formats import line_callout
from formats.line_callout import CalloutContent
from integrations.line_messaging import MAX_RECIPIENTS, new_retry_key
from models import Member, MemberLine, Rank
from models.base import utcnow
from models.callout import (
    Callout,
    CalloutAnswer,
    CalloutKind,
    CalloutSettings,
    CalloutTarget,
    FriendStatus,
    LineOutbox,
    OutboxStatus,
)
from models.dispatch import Incident, IncidentStatus
from models.enums import Answer, Function, Level, MemberStatus
from services.base import Tx, scoped, transaction
from services.dispatch import callout_rules, incidents
from services.errors import Conflict, NotFound, ValidationError

VIEW = Need(Function.DISPATCH, Level.VIEW)
EDIT = Need(Function.DISPATCH, Level.EDIT)
ADMIN = Need(Function.DISPATCH, Level.ADMIN)
MESSAGES_FIELD = "callout.messages"
CALLABLE = frozenset(
    {IncidentStatus.RECEIVED, IncidentStatus.DISPATCHED, IncidentStatus.SUPPRESSED}
)
NOT_OPEN = "この出動は鎮火・誤報・取消・終了のため、連絡できません。"


def messaging_enabled() -> bool:
    return get_settings().line_messaging_configured


def unit_of(affiliation: str) -> str:
    """The 分団 of a 所属 as the tally groups members (core.access.unit_of)."""
    return access.unit_of(affiliation) or "（所属なし）"


def settings_in(tx: Tx) -> CalloutSettings:
    row = tx.session.get(CalloutSettings, tx.tenant_id)
    return row or CalloutSettings(tenant_id=tx.tenant_id, version=0)


def settings_to_change(tx: Tx, expected_version: int) -> CalloutSettings:
    """The brigade's call-out settings row for a change by 管理 (settings, rules, self-test
    hour): Conflict unless it is still at `expected_version` (0: none saved yet). A missing row
    is created with the defaults at once: an INSERT would leave out a None whose column has a
    server default (a self-test hour switched off would come back as 6)."""
    row = tx.session.get(CalloutSettings, tx.tenant_id)
    if (row.version if row else 0) != expected_version:
        raise Conflict()
    if row is None:
        row = CalloutSettings(tenant_id=tx.tenant_id, version=0)
        tx.session.add(row)
        tx.session.flush()
    return row


def settings_changed(row: CalloutSettings) -> None:
    row.version += 1
    row.updated_at = utcnow()


def incident_link(incident_id: uuid.UUID) -> str:
    return f"{get_settings().public_base_url.rstrip('/')}/turnout?incident={incident_id}"


def content_of(tx: Tx, row: Incident) -> CalloutContent:
    return CalloutContent(
        tenant_id=row.tenant_id,
        incident_id=row.id,
        number=row.number,
        kind=row.kind,
        place=incidents.unseal(tx, row, "place"),
        landmark=incidents.unseal(tx, row, "landmark"),
        occurred_at=row.occurred_at or row.received_at or row.created_at,
        units=tuple(json.loads(row.units)),
        link=incident_link(row.id),
        test=row.test,
    )


# ---------------------------------------------------------------------------
# Who is called


@dataclass(frozen=True)
class Candidate:
    member_id: uuid.UUID
    unit: str
    leader: bool
    reachable: bool


def candidates(
    tx: Tx, units: tuple[str, ...], *, leaders: bool, everyone: bool = False
) -> list[Candidate]:
    """Active members of `units` (every active member with `everyone`, or when units is empty
    and the brigade calls all for such mail), and with `leaders` every member of the leader
    ranks."""
    settings = settings_in(tx)
    query = scoped(select(Member, Rank), tx.actor).where(
        Member.rank_id == Rank.id, Member.status == MemberStatus.ACTIVE
    )
    reachable = reachable_ids(tx)
    everyone = everyone or (not units and settings.no_units_target == "all")
    found = []
    for member, rank in tx.session.exec(query).all():
        leader = rank.position <= settings.leader_rank_position
        called = next((u for u in units if in_unit(member.affiliation, u)), None)
        if called is None and not everyone and not (leaders and leader):
            continue
        unit = called or unit_of(member.affiliation)
        found.append(Candidate(member.id, unit, leader, member.id in reachable))
    return found


def reachable_ids(tx: Tx, member_ids: list[uuid.UUID] | None = None) -> set[uuid.UUID]:
    """Members (of `member_ids`, or all) linked to LINE whom the official account reaches."""
    query = scoped(select(MemberLine.member_id, MemberLine.friend_status), tx.actor)
    if member_ids is not None:
        query = query.where(MemberLine.member_id.in_(member_ids))
    return {m for m, status in tx.session.exec(query).all() if FriendStatus(status).reachable}


def targeted(tx: Tx, incident_id: uuid.UUID) -> dict[uuid.UUID, CalloutTarget]:
    rows = tx.session.exec(
        scoped(select(CalloutTarget), tx.actor).where(CalloutTarget.incident_id == incident_id)
    ).all()
    return {row.member_id: row for row in rows}


# ---------------------------------------------------------------------------
# Waves and the outbox


def queue_wave(
    tx: Tx,
    row: Incident,
    kind: CalloutKind,
    member_ids: list[uuid.UUID],
    messages: list[dict],
    *,
    units: tuple[str, ...] = (),
    escalate_at: datetime | None = None,
) -> Callout:
    """One wave: the same messages to every member, in chunks LINE takes in one multicast."""
    wave = Callout(
        tenant_id=tx.tenant_id,
        incident_id=row.id,
        kind=kind,
        units=json.dumps(list(units), ensure_ascii=False),
        recipients=len(member_ids) if messaging_enabled() else 0,
        messages_enc="",
        escalate_at=escalate_at,
        actor_label=tx.actor.label or tx.actor.display_name,
    )
    wave.messages_enc = tx.cipher.encrypt(
        json.dumps(messages, ensure_ascii=False), field=MESSAGES_FIELD, row_id=wave.id
    )
    tx.session.add(wave)
    if messaging_enabled():
        now = utcnow()
        for chunk, start in enumerate(range(0, len(member_ids), MAX_RECIPIENTS)):
            ids = [str(m) for m in member_ids[start : start + MAX_RECIPIENTS]]
            tx.session.add(
                LineOutbox(
                    tenant_id=tx.tenant_id,
                    callout_id=wave.id,
                    chunk=chunk,
                    member_ids=json.dumps(ids),
                    retry_key=new_retry_key(),
                    next_attempt_at=now,
                )
            )
    tx.session.flush()
    return wave


def wave_messages(tx: Tx, wave: Callout) -> list[dict]:
    return json.loads(tx.cipher.decrypt(wave.messages_enc, field=MESSAGES_FIELD, row_id=wave.id))


def call_units(
    tx: Tx,
    row: Incident,
    units: tuple[str, ...],
    *,
    kind: CalloutKind,
    leaders: bool,
    everyone: bool = False,
    applied: tuple[callout_rules.Applied, ...] = (),
) -> Callout | None:
    """Call the members of `units` (all with `everyone`) not called for this incident yet;
    None if there are none. `applied`: the brigade's rules that chose some of them."""
    if IncidentStatus(row.status) not in CALLABLE:
        raise ValidationError({"状態": NOT_OPEN})
    already = targeted(tx, row.id)
    fresh = [
        c
        for c in candidates(tx, units, leaders=leaders, everyone=everyone)
        if c.member_id not in already
    ]
    if not fresh:
        return None
    settings = settings_in(tx)
    heading = "応援要請" if kind == CalloutKind.WIDEN else ""
    message = line_callout.callout_message(content_of(tx, row), heading=heading)
    reachable = [c.member_id for c in fresh if c.reachable]
    wave = queue_wave(
        tx,
        row,
        kind,
        reachable,
        [message],
        units=units,
        escalate_at=utcnow() + timedelta(minutes=settings.reminder_minutes),
    )
    notified = messaging_enabled()
    for c in fresh:
        tx.session.add(
            CalloutTarget(
                tenant_id=tx.tenant_id,
                incident_id=row.id,
                member_id=c.member_id,
                callout_id=wave.id,
                unit=c.unit,
                leader=c.leader,
                notified=notified and c.reachable,
            )
        )
    how = f"LINEで{len(reachable)}名に送信します" if notified else "LINE未設定のため通知なし"
    called = callout_rules.EVERYONE if everyone else "・".join(units) or callout_rules.EVERYONE
    by_rules = f"呼び出しルール: {'、'.join(a.note for a in applied)}。" if applied else ""
    incidents.add_entry(
        tx, row, "callout", f"{kind.label}: {called}（対象{len(fresh)}名、{how}）。{by_rules}"
    )
    details = {
        "number": row.number,
        "units": list(units),
        "targets": len(fresh),
        "messaged": len(reachable) if notified else 0,
    }
    if applied:
        details |= {"everyone": everyone, "rules": [a.details for a in applied]}
    tx.audit(f"callout.{kind.value}", target_type="incident", target_id=row.id, details=details)
    return wave


def start_for_new_incident(tx: Tx, row: Incident) -> Callout | None:
    """The automatic call-out of a dispatch mail's incident, in the intake's transaction: the
    分団 the mail lists, and those of every targeting rule matching its kind and hour."""
    settings = settings_in(tx)
    if not settings.auto_callout or IncidentStatus(row.status) not in CALLABLE:
        return None
    listed = tuple(json.loads(row.units))
    at = row.occurred_at or row.received_at or row.created_at
    applied = callout_rules.matching(settings, row.kind, at)
    extra, by_rule = callout_rules.combined(applied)
    everyone = by_rule or (not listed and settings.no_units_target == "all")
    units = listed + tuple(u for u in extra if u not in listed)
    return call_units(
        tx,
        row,
        units,
        kind=CalloutKind.CALLOUT,
        leaders=True,
        everyone=everyone,
        applied=applied,
    )


# Waves that call members to come: not sent once the incident has ended (取消 above all).
CALLING = frozenset(
    {CalloutKind.CALLOUT, CalloutKind.WIDEN, CalloutKind.REMINDER, CalloutKind.SHORTAGE}
)


def on_status(tx: Tx, row: Incident, status: IncidentStatus) -> Callout | None:
    """What a status change (by a follow-up mail or by hand, services.dispatch.incidents.move)
    means for the call-out, in its transaction. Once the incident can no longer be answered, no
    reminder or crew check comes and calls still waiting in the outbox are not sent (the timeline
    says how many were withdrawn); 鎮圧・鎮火・誤報・取消 go to those whose latest answer says
    they are coming. Returns the follow-up wave, if any."""
    if status not in CALLABLE:
        _withdraw_calls(tx, row)
    if status not in incidents.FOLLOWUP_STATUS.values():
        return None
    coming = [
        member_id
        for member_id, answer in latest_answers(tx, row.id).items()
        if Answer(answer.answer).coming
    ]
    targets = targeted(tx, row.id)
    recipients = [m for m in coming if m in targets and targets[m].notified]
    if not recipients:
        return None
    message = line_callout.followup_message(content_of(tx, row), status.label)
    return queue_wave(tx, row, CalloutKind.FOLLOWUP, recipients, [message])


def _withdraw_calls(tx: Tx, row: Incident) -> None:
    waves = _waves(tx, row.id)
    for wave in waves:
        wave.escalate_at = None
    calling = [w.id for w in waves if CalloutKind(w.kind) in CALLING]
    if not calling:
        return
    unsent = tx.session.exec(
        scoped(select(LineOutbox), tx.actor).where(
            LineOutbox.callout_id.in_(calling), LineOutbox.status == OutboxStatus.PENDING
        )
    ).all()
    if not unsent:
        return
    members = 0
    for chunk in unsent:
        chunk.status = OutboxStatus.CANCELLED
        chunk.error = "incident_ended"
        members += len(json.loads(chunk.member_ids))
    incidents.add_entry(
        tx, row, "callout", f"まだ送信していなかった出動連絡（{members}名分）を取りやめました。"
    )
    tx.audit(
        "callout.withdrawn",
        target_type="incident",
        target_id=row.id,
        details={"number": row.number, "chunks": len(unsent), "recipients": members},
    )


def call_out(actor: Actor, incident_id: uuid.UUID, units: tuple[str, ...]) -> int:
    """A leader calls 分団 by hand: the first call-out of an incident entered by hand, or more
    分団 when crews are short (応援要請). Returns how many members were newly called."""
    with transaction(actor, EDIT, action="callout.call_out") as tx:
        row = _incident(tx, incident_id)
        before = len(targeted(tx, row.id))
        if not units and before:
            raise ValidationError({"分団": "応援要請する分団を選んでください。"})
        affiliations = _affiliations(tx)
        unknown = [u for u in units if not any(in_unit(a, u) for a in affiliations)]
        if unknown:
            raise ValidationError({"分団": f"{'、'.join(unknown)} には在籍中の団員がいません。"})
        kind = CalloutKind.WIDEN if before else CalloutKind.CALLOUT
        call_units(tx, row, units, kind=kind, leaders=not before)
        count = len(targeted(tx, row.id)) - before
        tx.commit()
        return count


# ---------------------------------------------------------------------------
# Answers


def latest_answers(tx: Tx, incident_id: uuid.UUID) -> dict[uuid.UUID, CalloutAnswer]:
    rows = tx.session.exec(
        scoped(select(CalloutAnswer), tx.actor)
        .where(CalloutAnswer.incident_id == incident_id)
        .order_by(CalloutAnswer.at, CalloutAnswer.id)
    ).all()
    return {row.member_id: row for row in rows}  # later rows win


def add_answer(
    tx: Tx,
    row: Incident,
    member: Member,
    answer: Answer,
    *,
    eta_minutes: int | None,
    via: str,
) -> CalloutAnswer:
    record = CalloutAnswer(
        tenant_id=tx.tenant_id,
        incident_id=row.id,
        member_id=member.id,
        answer=answer,
        eta_minutes=eta_minutes,
        via=via,
        actor_label=tx.actor.label or tx.actor.display_name,
        at=utcnow(),
    )
    tx.session.add(record)
    eta = f"（到着見込み{eta_minutes}分）" if eta_minutes else ""
    proxy = "（代理入力）" if via == "proxy" else ""
    incidents.add_entry(tx, row, "answer", f"{member.member_code}: {answer.label}{eta}{proxy}")
    tx.audit(
        "callout.answer_proxy" if via == "proxy" else "callout.answer",
        target_type="incident",
        target_id=row.id,
        details={
            "number": row.number,
            "member": member.member_code,
            "answer": answer.value,
            "eta_minutes": eta_minutes,
            "via": via,
        },
    )
    return record


def answer_by_proxy(
    actor: Actor,
    incident_id: uuid.UUID,
    member_id: uuid.UUID,
    answer: Answer,
    *,
    eta_minutes: int | None = None,
) -> None:
    """A leader enters the answer of a member reached by telephone (代理入力, audited)."""
    with transaction(actor, EDIT, action="callout.answer_proxy") as tx:
        row = _incident(tx, incident_id)
        if IncidentStatus(row.status) not in CALLABLE:
            raise ValidationError({"状態": NOT_OPEN})
        member = tx.get(Member, member_id)
        if member is None or member.status != MemberStatus.ACTIVE:
            raise NotFound()
        if member_id not in targeted(tx, row.id):
            raise ValidationError(
                {"団員": "この出動の対象ではない団員です。先に分団を呼び出してください。"}
            )
        if eta_minutes is not None and not 0 < eta_minutes <= 240:
            raise ValidationError({"到着見込み": "到着見込みは1〜240分で入力してください。"})
        add_answer(tx, row, member, answer, eta_minutes=eta_minutes, via="proxy")
        tx.commit()


def _waves(tx: Tx, incident_id: uuid.UUID) -> list[Callout]:
    return list(
        tx.session.exec(
            scoped(select(Callout), tx.actor)
            .where(Callout.incident_id == incident_id)
            .order_by(Callout.created_at)
        ).all()
    )


def _incident(tx: Tx, incident_id: uuid.UUID) -> Incident:
    row = tx.get(Incident, incident_id)
    if row is None:
        raise NotFound()
    return row


def _affiliations(tx: Tx) -> set[str]:
    """The 所属 of the brigade's active members."""
    rows = tx.session.exec(
        scoped(select(Member.affiliation), tx.actor).where(Member.status == MemberStatus.ACTIVE)
    ).all()
    return {a for a in rows if a}


def units_in(tx: Tx) -> list[str]:
    """The 分団 of the brigade's active members."""
    return sorted({unit_of(a) for a in _affiliations(tx)})


def unit_choices(actor: Actor) -> list[str]:
    """The 分団 of the brigade's active members, for calling or widening by hand."""
    with transaction(actor, EDIT, action="callout.unit_choices", read_only=True) as tx:
        return units_in(tx)
