"""Incidents (災害事案): made from dispatch mail by the intake, or by hand; followed through
受信 → 出動中 → 鎮圧 → 鎮火/誤報/取消 → 終了. Places, landmarks, map links and subjects are
sealed (a house that burns is personal data)."""

from __future__ import annotations

import json
import unicodedata
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func
from sqlmodel import select

from core.access import Need
from core.actor import Actor
from formats.dispatch_profile import FollowUp, ParsedDispatch
from models.base import utcnow
from models.dispatch import Incident, IncidentEntry, IncidentStatus
from models.enums import Function, Level
from services.base import Tx, scoped, transaction
from services.errors import Conflict, NotFound, ValidationError
from services.validation import clean, has_control_chars

S = IncidentStatus
VIEW = Need(Function.DISPATCH, Level.VIEW)
EDIT = Need(Function.DISPATCH, Level.EDIT)
SEALED = ("place", "landmark", "map_url", "subject")
# The order a fire runs through; an end (鎮火・誤報・取消) may follow any open stage, 終了 only
# an end. A later mail never moves an incident back (mails overtake each other).
STAGE = {
    S.RECEIVED: 0,
    S.DISPATCHED: 1,
    S.SUPPRESSED: 2,
    S.EXTINGUISHED: 3,
    S.FALSE_ALARM: 3,
    S.CANCELLED: 3,
    S.CLOSED: 4,
}
ENDS = frozenset({S.EXTINGUISHED, S.FALSE_ALARM, S.CANCELLED})
FOLLOWUP_STATUS = {
    FollowUp.SUPPRESSED: S.SUPPRESSED,
    FollowUp.EXTINGUISHED: S.EXTINGUISHED,
    FollowUp.FALSE_ALARM: S.FALSE_ALARM,
    FollowUp.CANCELLED: S.CANCELLED,
}
NO_MATCH = "対応する出動指令が見つからない続報です。"
# The scheduled self-test's incident (services.dispatch.selftest) while it runs: numbered 0,
# outside the brigade's numbering, never listed, removed when the self-test ends.
SELFTEST_NUMBER = 0
SELFTEST_KIND = "【自己診断】出動連絡の自己診断"


@dataclass(frozen=True)
class IncidentView:
    id: uuid.UUID
    number: int
    status: IncidentStatus
    needs_review: bool
    review_reasons: tuple[str, ...]
    kind: str
    reference: str
    units: tuple[str, ...]
    place: str
    place_approximate: bool
    landmark: str
    map_url: str
    subject: str
    occurred_at: datetime | None
    mail_date: datetime | None
    received_at: datetime | None
    created_at: datetime
    updated_at: datetime
    closed_at: datetime | None
    from_mail: bool
    version: int


@dataclass(frozen=True)
class EntryView:
    at: datetime
    kind: str
    summary: str
    status: str
    actor_label: str
    from_mail: bool


def can_move(current: IncidentStatus, target: IncidentStatus) -> bool:
    if target == S.CLOSED:
        return current in ENDS
    if current in ENDS or current == S.CLOSED:
        return False
    return STAGE[target] > STAGE[current]


def next_statuses(current: IncidentStatus) -> tuple[IncidentStatus, ...]:
    return tuple(s for s in IncidentStatus if can_move(current, s))


# ---------------------------------------------------------------------------
# Reading and acting by hand


def list_incidents(
    actor: Actor, *, open_only: bool = False, limit: int = 200
) -> list[IncidentView]:
    with transaction(actor, VIEW, action="incident.list", read_only=True) as tx:
        query = scoped(select(Incident), actor).where(Incident.number != SELFTEST_NUMBER)
        if open_only:
            query = query.where(Incident.status != S.CLOSED)
        rows = tx.session.exec(query.order_by(Incident.created_at.desc()).limit(limit)).all()
        return [view_of(tx, row) for row in rows]


def open_reviews(actor: Actor) -> int:
    """How many open incidents are marked 要確認 (for ホーム), without unsealing any."""
    with transaction(actor, VIEW, action="incident.open_reviews", read_only=True) as tx:
        query = scoped(select(func.count(Incident.id)), actor).where(
            Incident.needs_review, Incident.status != S.CLOSED
        )
        return tx.session.exec(query).one()


def get_incident(actor: Actor, incident_id: uuid.UUID) -> tuple[IncidentView, list[EntryView]]:
    with transaction(actor, VIEW, action="incident.get", read_only=True) as tx:
        row = _get(tx, incident_id)
        entries = tx.session.exec(
            scoped(select(IncidentEntry), actor)
            .where(IncidentEntry.incident_id == row.id)
            .order_by(IncidentEntry.at)
        ).all()
        return view_of(tx, row), [
            EntryView(e.at, e.kind, e.summary, e.status, e.actor_label, e.mail_id is not None)
            for e in entries
        ]


@dataclass(frozen=True)
class IncidentInput:
    kind: str
    place: str = ""
    landmark: str = ""
    units: tuple[str, ...] = ()
    reference: str = ""
    occurred_at: datetime | None = None


def create_incident(actor: Actor, incident: IncidentInput) -> IncidentView:
    """An incident entered by hand (a call by telephone, a drill)."""
    with transaction(actor, EDIT, action="incident.create") as tx:
        values = _validated(incident)
        row = new_incident(tx, subject="", **values)
        add_entry(tx, row, "created", "手入力で登録しました。")
        tx.audit(
            "incident.create", target_type="incident", target_id=row.id, details=audit_summary(row)
        )
        view = view_of(tx, row)
        tx.commit()
        return view


def set_status(
    actor: Actor, incident_id: uuid.UUID, status: IncidentStatus, *, expected_version: int
) -> IncidentView:
    with transaction(actor, EDIT, action="incident.set_status") as tx:
        row = _get(tx, incident_id)
        if row.version != expected_version:
            raise Conflict()
        current = IncidentStatus(row.status)
        if not can_move(current, status):
            raise ValidationError(
                {"状態": f"「{current.label}」から「{status.label}」には変更できません。"}
            )
        move(tx, row, status, by_hand=True)
        tx.audit(
            "incident.set_status",
            target_type="incident",
            target_id=row.id,
            details={"number": row.number, "before": current.label, "after": status.label},
        )
        view = view_of(tx, row)
        tx.commit()
        return view


def confirm_review(actor: Actor, incident_id: uuid.UUID, *, expected_version: int) -> IncidentView:
    """A leader has read the mail of an incident marked 要確認 and confirms it."""
    with transaction(actor, EDIT, action="incident.confirm_review") as tx:
        row = _get(tx, incident_id)
        if row.version != expected_version:
            raise Conflict()
        row.needs_review = False
        touch(row)
        add_entry(tx, row, "review", "要確認を確認済みにしました。")
        tx.audit("incident.confirm_review", target_type="incident", target_id=row.id)
        view = view_of(tx, row)
        tx.commit()
        return view


# ---------------------------------------------------------------------------
# Building blocks, shared with the intake (services.dispatch.intake)


def new_incident(
    tx: Tx,
    *,
    kind: str,
    place: str,
    landmark: str,
    units: tuple[str, ...],
    reference: str,
    occurred_at: datetime | None,
    subject: str,
    place_approximate: bool = False,
    map_url: str = "",
    source_id: uuid.UUID | None = None,
    status: IncidentStatus = S.RECEIVED,
    mail_date: datetime | None = None,
    received_at: datetime | None = None,
    review_reasons: tuple[str, ...] = (),
    number: int | None = None,
) -> Incident:
    """The brigade's next number unless `number` is given (the self-test's incident: 0)."""
    if number is None:
        highest = tx.session.exec(scoped(select(func.max(Incident.number)), tx.actor)).one()
        number = (highest or 0) + 1
    row = Incident(
        tenant_id=tx.tenant_id,
        number=number,
        source_id=source_id,
        status=status,
        needs_review=bool(review_reasons),
        review_reasons=json.dumps(list(review_reasons), ensure_ascii=False),
        kind=kind,
        reference=reference,
        units=json.dumps(list(units), ensure_ascii=False),
        place_approximate=place_approximate,
        occurred_at=occurred_at,
        mail_date=mail_date,
        received_at=received_at,
        place_enc="",
        landmark_enc="",
        map_url_enc="",
        subject_enc="",
    )
    seal(tx, row, place=place, landmark=landmark, map_url=map_url, subject=subject)
    tx.session.add(row)
    tx.session.flush()
    return row


def seal(tx: Tx, row: Incident, **values: str) -> None:
    for name, value in values.items():
        assert name in SEALED
        setattr(
            row, f"{name}_enc", tx.cipher.encrypt(value, field=f"incident.{name}", row_id=row.id)
        )


def unseal(tx: Tx, row: Incident, name: str) -> str:
    return tx.cipher.decrypt(getattr(row, f"{name}_enc"), field=f"incident.{name}", row_id=row.id)


def view_of(tx: Tx, row: Incident) -> IncidentView:
    return IncidentView(
        id=row.id,
        number=row.number,
        status=IncidentStatus(row.status),
        needs_review=row.needs_review,
        review_reasons=tuple(json.loads(row.review_reasons)),
        kind=row.kind,
        reference=row.reference,
        units=tuple(json.loads(row.units)),
        place=unseal(tx, row, "place"),
        place_approximate=row.place_approximate,
        landmark=unseal(tx, row, "landmark"),
        map_url=unseal(tx, row, "map_url"),
        subject=unseal(tx, row, "subject"),
        occurred_at=row.occurred_at,
        mail_date=row.mail_date,
        received_at=row.received_at,
        created_at=row.created_at,
        updated_at=row.updated_at,
        closed_at=row.closed_at,
        from_mail=row.source_id is not None,
        version=row.version,
    )


def add_entry(
    tx: Tx, row: Incident, kind: str, summary: str, *, mail_id: uuid.UUID | None = None
) -> None:
    tx.session.add(
        IncidentEntry(
            tenant_id=tx.tenant_id,
            incident_id=row.id,
            kind=kind,
            summary=summary[:500],
            status=row.status,
            mail_id=mail_id,
            actor_label=tx.actor.label or tx.actor.display_name,
        )
    )


def touch(row: Incident) -> None:
    row.version += 1
    row.updated_at = utcnow()


def move(tx: Tx, row: Incident, status: IncidentStatus, *, by_hand: bool, mail_id=None) -> None:
    """The one way an incident's status changes (a follow-up mail or a leader's hand): the
    call-out follows in the same transaction (no reminder or unsent call after an end, and
    鎮圧・鎮火・誤報・取消 to those coming); at 終了 those who came are asked for 出動報告."""
    from services.dispatch import callout  # callout builds on this module

    before = IncidentStatus(row.status)
    row.status = status
    if status == S.CLOSED:
        row.closed_at = utcnow()
    touch(row)
    how = "手動で" if by_hand else "続報により"
    add_entry(
        tx,
        row,
        "status",
        f"{how}状態を「{before.label}」→「{status.label}」に変更しました。",
        mail_id=mail_id,
    )
    callout.on_status(tx, row, status)
    if status == S.CLOSED:
        from services.reports import reports  # reports build on incidents

        reports.request_for_incident(tx, row, before)


def find_match(
    tx: Tx,
    parsed: ParsedDispatch,
    *,
    source_id: uuid.UUID,
    window_minutes: int,
    now: datetime,
) -> Incident | None:
    """The open incident a mail continues: the same reference number; else, within the window,
    the same kind at the same place (unless both carry different numbers); a map mail or a
    follow-up without either joins the source's newest."""
    open_rows = scoped(select(Incident), tx.actor).where(Incident.status != S.CLOSED)
    if parsed.reference:
        row = tx.session.exec(
            open_rows.where(Incident.reference == parsed.reference).order_by(
                Incident.created_at.desc()
            )
        ).first()
        if row is not None:
            return row
    since = now - timedelta(minutes=window_minutes)
    recent = tx.session.exec(
        open_rows.where(Incident.created_at >= since).order_by(Incident.created_at.desc())
    ).all()
    place = _same_place_key(parsed.place or "")
    for row in recent:
        if parsed.reference and row.reference and row.reference != parsed.reference:
            continue  # two numbers: two incidents, wherever they are
        if place and _same_place_key(unseal(tx, row, "place")) == place:
            if not parsed.kind or not row.kind or parsed.kind == row.kind:
                return row
    if parsed.followup == FollowUp.MAP or (parsed.followup != FollowUp.DISPATCH and not place):
        return next((r for r in recent if r.source_id == source_id), None)
    return None


def _same_place_key(place: str) -> str:
    """Places compared as the mails write them, ignoring width, spaces and 付近/地内."""
    key = unicodedata.normalize("NFKC", place).replace(" ", "").replace("　", "")
    for tail in ("付近", "地内", "周辺"):
        key = key.removesuffix(tail)
    return key


def _get(tx: Tx, incident_id: uuid.UUID) -> Incident:
    row = tx.get(Incident, incident_id)
    if row is None:
        raise NotFound()
    return row


def _validated(incident: IncidentInput) -> dict:
    errors: dict[str, str] = {}
    kind = clean(incident.kind)
    if not kind or len(kind) > 50 or has_control_chars(kind):
        errors["災害種別"] = "災害種別を50文字以内で入力してください。"
    place, landmark = clean(incident.place), clean(incident.landmark)
    if len(place) > 200 or has_control_chars(place):
        errors["発生場所"] = "発生場所は200文字以内で入力してください。"
    if len(landmark) > 200 or has_control_chars(landmark):
        errors["目標物"] = "目標物は200文字以内で入力してください。"
    reference = clean(incident.reference)
    if len(reference) > 100:
        errors["指令番号"] = "指令番号は100文字以内で入力してください。"
    if errors:
        raise ValidationError(errors)
    return {
        "kind": kind,
        "place": place,
        "landmark": landmark,
        "units": tuple(dict.fromkeys(clean(u) for u in incident.units if clean(u))),
        "reference": reference,
        "occurred_at": incident.occurred_at,
    }


def audit_summary(row: Incident) -> dict:
    """No place in the audit record: it is sealed on the incident."""
    return {
        "number": row.number,
        "kind": row.kind,
        "status": IncidentStatus(row.status).label,
        "units": json.loads(row.units),
        "reference": row.reference,
        "needs_review": row.needs_review,
    }
