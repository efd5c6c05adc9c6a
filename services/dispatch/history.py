"""出動履歴 (#22): the incidents that have ended, what happened in each one and when, and the
delays measured on the way from the 消防本部's mail to LINE accepting the call-out.

Test incidents (テスト送信) and the self-test's incident are never listed or counted. Everything
here only reads (read-only units of work): a history is looked at, not changed."""

from __future__ import annotations

import json
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from sqlalchemy import false, func, or_
from sqlmodel import select

from core.access import Need
from core.actor import Actor
from core.timefmt import JST, to_jst
from models import Member
from models.callout import Callout, CalloutAnswer, CalloutKind, CalloutTarget, LineOutbox
from models.dispatch import InboundMail, Incident, IncidentEntry, IncidentStatus, MailStatus
from models.enums import Answer, Function, Level
from services.base import Tx, scoped, transaction
from services.dispatch import incidents
from services.errors import NotFound, ValidationError

S = IncidentStatus
VIEW = Need(Function.DISPATCH, Level.VIEW)
ENDED = incidents.ENDS | {S.CLOSED}  # 鎮火・誤報・取消・終了: nothing more is called for these
LIMIT = 500
MARKS = (60, 180, 300)  # answers are counted 1, 3 and 5 minutes after LINE took the call-out
BAD_PERIOD = "期間の終わりは、始まりと同じ日かそれより後の日付にしてください。"


# ---------------------------------------------------------------------------
# Building blocks, shared with services.dispatch.statistics


def jst_period(since: date | None, until: date | None) -> tuple[datetime | None, datetime | None]:
    """JST dates, both inclusive, as a half-open UTC range [start, end)."""
    if since is not None and until is not None and until < since:
        raise ValidationError({"期間": BAD_PERIOD})
    start = datetime.combine(since, time(), JST) if since is not None else None
    end = datetime.combine(until + timedelta(days=1), time(), JST) if until is not None else None
    return start, end


def dispatched_at():
    """When the incident happened as far as is known: the 指令 time the mail gave, else when
    its mail came, else when it was entered. Periods and months are counted on this."""
    return func.coalesce(Incident.occurred_at, Incident.received_at, Incident.created_at)


def counted(query, start: datetime | None = None, end: datetime | None = None):
    """Only incidents that count (no test, no self-test), dispatched within [start, end)."""
    query = query.where(Incident.test == false(), Incident.number != incidents.SELFTEST_NUMBER)
    if start is not None:
        query = query.where(dispatched_at() >= start)
    if end is not None:
        query = query.where(dispatched_at() < end)
    return query


def accepted_by_incident(tx: Tx, incident_ids) -> dict[uuid.UUID, tuple[datetime, datetime]]:
    """When LINE accepted the first and the last chunk of each incident's call-out (the first
    call to its 分団, not the waves a leader or a timer added later)."""
    rows = tx.session.exec(
        scoped(
            select(Callout.incident_id, func.min(LineOutbox.sent_at), func.max(LineOutbox.sent_at)),
            tx.actor,
        )
        .join(LineOutbox, LineOutbox.callout_id == Callout.id)
        .where(
            Callout.incident_id.in_(incident_ids),
            Callout.kind == CalloutKind.CALLOUT,
            LineOutbox.tenant_id == tx.tenant_id,
            LineOutbox.sent_at.is_not(None),
        )
        .group_by(Callout.incident_id)
    ).all()
    return {incident_id: (first, last) for incident_id, first, last in rows}


def seconds(start: datetime | None, end: datetime | None) -> float | None:
    return (end - start).total_seconds() if start is not None and end is not None else None


# ---------------------------------------------------------------------------
# The list


@dataclass(frozen=True)
class AnswerCounts:
    available: int = 0
    late: int = 0
    unavailable: int = 0
    unanswered: int = 0


@dataclass(frozen=True)
class HistoryRow:
    id: uuid.UUID
    number: int
    kind: str
    place: str
    place_approximate: bool
    dispatched_at: datetime  # see dispatched_at()
    ended_at: datetime  # 終了, else the change to 鎮火・誤報・取消, else when it was entered
    status: IncidentStatus
    units: tuple[str, ...]
    answers: AnswerCounts  # the latest answer of each member called


@dataclass(frozen=True)
class History:
    rows: list[HistoryRow]  # newest first
    more: bool  # more incidents match: only the newest LIMIT are listed


def closed_incidents(
    actor: Actor,
    *,
    since: date | None = None,
    until: date | None = None,
    kind: str | None = None,
    unit: str | None = None,
    limit: int = LIMIT,
) -> History:
    """The incidents that have ended, dispatched between the JST dates `since` and `until`
    (inclusive), of `kind` and calling `unit` when given."""
    with transaction(actor, VIEW, action="incident.history", read_only=True) as tx:
        start, end = jst_period(since, until)
        query = counted(scoped(select(Incident), actor), start, end).where(
            Incident.status.in_(ENDED)
        )
        if kind := (kind or "").strip():
            query = query.where(Incident.kind == kind)
        if unit := (unit or "").strip():
            query = query.where(_calls(tx, unit))
        found = tx.session.exec(
            query.order_by(dispatched_at().desc(), Incident.number.desc()).limit(limit + 1)
        ).all()
        rows = found[:limit]
        ids = [row.id for row in rows]
        ended, answers = _last_changes(tx, ids), _answer_counts(tx, ids)
        return History(
            rows=[
                HistoryRow(
                    id=row.id,
                    number=row.number,
                    kind=row.kind,
                    place=incidents.unseal(tx, row, "place"),
                    place_approximate=row.place_approximate,
                    dispatched_at=row.occurred_at or row.received_at or row.created_at,
                    ended_at=row.closed_at or ended.get(row.id) or row.created_at,
                    status=IncidentStatus(row.status),
                    units=tuple(json.loads(row.units)),
                    answers=answers.get(row.id, AnswerCounts()),
                )
                for row in rows
            ],
            more=len(found) > limit,
        )


def filter_choices(actor: Actor) -> tuple[list[str], list[str]]:
    """The kinds and the 分団 that ended incidents have had, for the filters."""
    with transaction(actor, VIEW, action="incident.history_filters", read_only=True) as tx:
        ended = counted(scoped(select(Incident.id), actor)).where(Incident.status.in_(ENDED))
        kinds = tx.session.exec(
            scoped(select(Incident.kind), actor).where(Incident.id.in_(ended)).distinct()
        ).all()
        lists = tx.session.exec(
            scoped(select(Incident.units), actor).where(Incident.id.in_(ended)).distinct()
        ).all()
        waves = tx.session.exec(
            scoped(select(Callout.units), actor).where(Callout.incident_id.in_(ended)).distinct()
        ).all()
        units = {u for text in [*lists, *waves] for u in json.loads(text)}
        return sorted(k for k in kinds if k), sorted(units)


def _calls(tx: Tx, unit: str):
    """The incident names the 分団, or one of its waves called it (応援要請). Both lists are
    JSON written by json.dumps(..., ensure_ascii=False), so the quoted name is a substring."""
    token = json.dumps(unit, ensure_ascii=False)
    waves = scoped(select(Callout.id), tx.actor).where(
        Callout.incident_id == Incident.id, Callout.units.contains(token, autoescape=True)
    )
    return or_(Incident.units.contains(token, autoescape=True), waves.exists())


def _last_changes(tx: Tx, ids: list[uuid.UUID]) -> dict[uuid.UUID, datetime]:
    rows = tx.session.exec(
        scoped(select(IncidentEntry.incident_id, func.max(IncidentEntry.at)), tx.actor)
        .where(IncidentEntry.incident_id.in_(ids), IncidentEntry.kind == "status")
        .group_by(IncidentEntry.incident_id)
    ).all()
    return dict(rows)


def _answer_counts(tx: Tx, ids: list[uuid.UUID]) -> dict[uuid.UUID, AnswerCounts]:
    called = dict(
        tx.session.exec(
            scoped(select(CalloutTarget.incident_id, func.count(CalloutTarget.id)), tx.actor)
            .where(CalloutTarget.incident_id.in_(ids))
            .group_by(CalloutTarget.incident_id)
        ).all()
    )
    # Each member's latest answer, counted in the database (a busy year holds tens of
    # thousands of answers): the newest row per incident and member is numbered 1.
    newest = (
        scoped(select(CalloutAnswer.incident_id, CalloutAnswer.answer), tx.actor)
        .add_columns(
            func.row_number()
            .over(
                partition_by=(CalloutAnswer.incident_id, CalloutAnswer.member_id),
                order_by=(CalloutAnswer.at.desc(), CalloutAnswer.id.desc()),
            )
            .label("newest")
        )
        .where(CalloutAnswer.incident_id.in_(ids))
        .subquery()
    )
    per_incident: dict[uuid.UUID, Counter] = defaultdict(Counter)
    for incident_id, answer, count in tx.session.exec(
        select(newest.c.incident_id, newest.c.answer, func.count())
        .where(newest.c.newest == 1)
        .group_by(newest.c.incident_id, newest.c.answer)
    ).all():
        per_incident[incident_id][answer] = count
    result = {}
    for incident_id in ids:
        counts = per_incident.get(incident_id, Counter())
        result[incident_id] = AnswerCounts(
            available=counts[Answer.AVAILABLE],
            late=counts[Answer.LATE],
            unavailable=counts[Answer.UNAVAILABLE],
            unanswered=max(called.get(incident_id, 0) - counts.total(), 0),
        )
    return result


# ---------------------------------------------------------------------------
# One incident's timeline


@dataclass(frozen=True)
class Event:
    at: datetime
    what: str
    detail: str


@dataclass(frozen=True)
class Delays:
    """Seconds between the steps, None where a step is not known (an incident entered by hand
    has no mail; a call-out LINE never accepted has no acceptance)."""

    mail_to_received: float | None  # the mail's Date: header → this system received it
    received_to_incident: float | None  # → the incident was made
    incident_to_first: float | None  # → LINE accepted the call-out's first chunk
    first_to_last: float | None  # → … and its last chunk


@dataclass(frozen=True)
class AnswersAt:
    seconds: int  # after the call-out's first chunk was accepted
    answered: int  # members who had answered by then
    coming: int  # … whose answer then was 出動可 or 遅れて出動


@dataclass(frozen=True)
class Timeline:
    number: int
    events: list[Event]  # in order
    delays: Delays
    answers_at: list[AnswersAt]  # empty when LINE accepted no call-out


# Events at the same moment in the order they happen in.
_MAIL, _CREATED, _STATUS, _WAVE, _ACCEPTED, _ANSWER, _CLOSED = range(7)


def timeline(actor: Actor, incident_id: uuid.UUID) -> Timeline:
    """Mails, creation, waves and their acceptance by LINE, answers (names for 編集 only),
    status changes and the close, with the delays and the answers at 1, 3 and 5 minutes."""
    with transaction(actor, VIEW, action="incident.timeline", read_only=True) as tx:
        row = tx.get(Incident, incident_id)
        if row is None or row.test or row.number == incidents.SELFTEST_NUMBER:
            raise NotFound()
        events: list[tuple[datetime, int, str, str]] = [
            (row.created_at, _CREATED, "登録", "出動メールから" if row.source_id else "手入力"),
            *_mail_events(tx, row.id),
            *_status_events(tx, row),
            *_wave_events(tx, row.id),
        ]
        answers = _answers(tx, row.id)
        events += _answer_events(tx, answers)
        first, last = accepted_by_incident(tx, [row.id]).get(row.id, (None, None))
        return Timeline(
            number=row.number,
            events=[Event(at, what, detail) for at, _, what, detail in sorted(events)],
            delays=Delays(
                mail_to_received=seconds(row.mail_date, row.received_at),
                received_to_incident=seconds(row.received_at, row.created_at),
                incident_to_first=seconds(row.created_at, first),
                first_to_last=seconds(first, last),
            ),
            answers_at=answers_at(answers, first),
        )


def answers_at(answers: list[CalloutAnswer], first: datetime | None) -> list[AnswersAt]:
    """How many had answered, and how many were coming, `MARKS` seconds after `first`
    (an answer at exactly the mark counts). `answers` are in the order given."""
    if first is None:
        return []
    result = []
    for mark in MARKS:
        latest = {a.member_id: a.answer for a in answers if a.at <= first + timedelta(seconds=mark)}
        coming = sum(1 for answer in latest.values() if Answer(answer).coming)
        result.append(AnswersAt(mark, len(latest), coming))
    return result


def _mail_events(tx: Tx, incident_id: uuid.UUID) -> list[tuple]:
    mails = tx.session.exec(
        scoped(select(InboundMail.received_at, InboundMail.mail_date, InboundMail.status), tx.actor)
        .where(InboundMail.incident_id == incident_id)
        .order_by(InboundMail.received_at)
    ).all()
    return [
        (
            received,
            _MAIL,
            "メール受信",
            f"{MailStatus(status).label}　Date: {to_jst(date_header, seconds=True) or '不明'}",
        )
        for received, date_header, status in mails
    ]


def _status_events(tx: Tx, row: Incident) -> list[tuple]:
    entries = tx.session.exec(
        scoped(select(IncidentEntry.at, IncidentEntry.summary, IncidentEntry.status), tx.actor)
        .where(IncidentEntry.incident_id == row.id, IncidentEntry.kind == "status")
        .order_by(IncidentEntry.at)
    ).all()
    events = [(at, _STATUS, "状態変更", summary) for at, summary, _ in entries]
    if row.closed_at is not None and S.CLOSED not in {status for _, _, status in entries}:
        events.append((row.closed_at, _CLOSED, "終了", S.CLOSED.label))
    return events


def _wave_events(tx: Tx, incident_id: uuid.UUID) -> list[tuple]:
    waves = tx.session.exec(
        scoped(select(Callout), tx.actor)
        .where(Callout.incident_id == incident_id)
        .order_by(Callout.created_at)
    ).all()
    chunks = {
        callout_id: (first, last, total, sent)
        for callout_id, first, last, total, sent in tx.session.exec(
            scoped(
                select(
                    LineOutbox.callout_id,
                    func.min(LineOutbox.sent_at),
                    func.max(LineOutbox.sent_at),
                    func.count(LineOutbox.id),
                    func.count(LineOutbox.sent_at),
                ),
                tx.actor,
            )
            .where(LineOutbox.callout_id.in_([w.id for w in waves]))
            .group_by(LineOutbox.callout_id)
        ).all()
    }
    events = []
    for wave in waves:
        label = CalloutKind(wave.kind).label
        units = "・".join(json.loads(wave.units))
        first, last, total, sent = chunks.get(wave.id, (None, None, 0, 0))
        unsent = f"　未送信 {total - sent}通" if total > sent else ""
        where = f"（{units}）" if units else ""
        events.append((wave.created_at, _WAVE, label, f"{wave.recipients}名{where}{unsent}"))
        if sent == 1:
            events.append((first, _ACCEPTED, "LINE受付", label))
        elif sent > 1:
            events.append((first, _ACCEPTED, "LINE受付（最初）", f"{label}（{sent}通）"))
            events.append((last, _ACCEPTED, "LINE受付（最後）", f"{label}（{sent}通）"))
    return events


def _answers(tx: Tx, incident_id: uuid.UUID) -> list[CalloutAnswer]:
    return list(
        tx.session.exec(
            scoped(select(CalloutAnswer), tx.actor)
            .where(CalloutAnswer.incident_id == incident_id)
            .order_by(CalloutAnswer.at, CalloutAnswer.id)
        ).all()
    )


def _answer_events(tx: Tx, answers: list[CalloutAnswer]) -> list[tuple]:
    """Member codes for all; names only for 災害出動 編集 (as the tally shows them)."""
    names = tx.actor.level(Function.DISPATCH) >= Level.EDIT
    members = {
        m.id: m
        for m in tx.session.exec(
            scoped(select(Member), tx.actor).where(Member.id.in_({a.member_id for a in answers}))
        ).all()
    }
    events = []
    for answer in answers:
        member = members[answer.member_id]
        who = (
            f"{member.member_code} {tx.cipher.member_name(member)}" if names else member.member_code
        )
        eta = f"（到着見込み{answer.eta_minutes}分）" if answer.eta_minutes else ""
        proxy = "（代理入力）" if answer.via == "proxy" else ""
        events.append(
            (answer.at, _ANSWER, "回答", f"{who}: {Answer(answer.answer).label}{eta}{proxy}")
        )
    return events
