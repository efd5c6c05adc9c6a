"""History test helpers: incidents, mails, waves with their LINE chunks, targets and answers
written directly with chosen times (the intake and the call-out that make them in real life are
tested elsewhere; the history only reads what they leave)."""

from __future__ import annotations

import itertools
import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, event

from models.callout import (
    Callout,
    CalloutAnswer,
    CalloutKind,
    CalloutTarget,
    LineOutbox,
    OutboxStatus,
)
from models.dispatch import (
    InboundMail,
    Incident,
    IncidentEntry,
    IncidentStatus,
    MailSource,
    MailStatus,
)
from models.enums import Answer
from services.crypto import TenantCipher
from services.db import unit_of_work

_numbers = itertools.count(1000)
T0 = datetime(2026, 3, 10, 1, 0, tzinfo=UTC)  # 10:00 JST


def at(seconds: float) -> datetime:
    """A moment `seconds` after T0."""
    return T0 + timedelta(seconds=seconds)


def make_incident(
    tenant_id: uuid.UUID,
    *,
    kind: str = "建物火災",
    place: str = "デモ市本町1丁目付近",
    units: tuple[str, ...] = ("第1分団",),
    status: IncidentStatus = IncidentStatus.CLOSED,
    created_at: datetime = T0,
    occurred_at: datetime | None = None,
    mail_date: datetime | None = None,
    received_at: datetime | None = None,
    closed_at: datetime | None = None,
    from_mail: bool = False,
    test: bool = False,
    number: int | None = None,
) -> uuid.UUID:
    with unit_of_work(tenant_id) as db:
        source_id = _source(db, tenant_id) if from_mail else None
        row = Incident(
            tenant_id=tenant_id,
            number=next(_numbers) if number is None else number,
            source_id=source_id,
            status=status,
            kind=kind,
            units=json.dumps(list(units), ensure_ascii=False),
            occurred_at=occurred_at,
            mail_date=mail_date,
            received_at=received_at,
            created_at=created_at,
            updated_at=created_at,
            closed_at=closed_at
            if closed_at or status != IncidentStatus.CLOSED
            else created_at + timedelta(hours=2),
            test=test,
            place_enc="",
            landmark_enc="",
            map_url_enc="",
            subject_enc="",
        )
        cipher = TenantCipher(db, tenant_id)
        for name, value in (("place", place), ("landmark", ""), ("map_url", ""), ("subject", "")):
            setattr(
                row, f"{name}_enc", cipher.encrypt(value, field=f"incident.{name}", row_id=row.id)
            )
        db.add(row)
        db.commit()
        return row.id


def _source(db, tenant_id: uuid.UUID) -> uuid.UUID:
    source = MailSource(tenant_id=tenant_id, name=f"テスト消防本部{uuid.uuid4().hex[:6]}")
    db.add(source)
    db.flush()
    return source.id


def add_mail(
    tenant_id: uuid.UUID,
    incident_id: uuid.UUID,
    *,
    received_at: datetime,
    mail_date: datetime | None,
    status: MailStatus = MailStatus.ACCEPTED,
) -> None:
    with unit_of_work(tenant_id) as db:
        incident = db.get(Incident, incident_id)
        source_id = incident.source_id or _source(db, tenant_id)
        db.add(
            InboundMail(
                tenant_id=tenant_id,
                source_id=source_id,
                transport="smtp",
                received_at=received_at,
                status=status,
                sha256="0" * 64,
                mail_date=mail_date,
                envelope_enc="",
                raw_expires_at=received_at + timedelta(days=30),
                incident_id=incident_id,
            )
        )
        db.commit()


def add_wave(
    tenant_id: uuid.UUID,
    incident_id: uuid.UUID,
    *,
    created_at: datetime,
    sent: tuple[datetime | None, ...] = (),
    kind: CalloutKind = CalloutKind.CALLOUT,
    units: tuple[str, ...] = (),
    recipients: int = 0,
) -> uuid.UUID:
    """A wave and one LINE chunk per `sent` entry: accepted then, or never (None)."""
    with unit_of_work(tenant_id) as db:
        wave = Callout(
            tenant_id=tenant_id,
            incident_id=incident_id,
            kind=kind,
            units=json.dumps(list(units), ensure_ascii=False),
            recipients=recipients,
            messages_enc="",
            created_at=created_at,
        )
        db.add(wave)
        db.flush()
        for chunk, sent_at in enumerate(sent):
            db.add(
                LineOutbox(
                    tenant_id=tenant_id,
                    callout_id=wave.id,
                    chunk=chunk,
                    member_ids="[]",
                    retry_key=str(uuid.uuid4()),
                    status=OutboxStatus.SENT if sent_at else OutboxStatus.FAILED,
                    next_attempt_at=created_at,
                    created_at=created_at,
                    sent_at=sent_at,
                )
            )
        db.commit()
        return wave.id


def add_target(
    tenant_id: uuid.UUID,
    incident_id: uuid.UUID,
    member_id: uuid.UUID,
    *,
    unit: str,
    leader: bool = False,
) -> None:
    with unit_of_work(tenant_id) as db:
        db.add(
            CalloutTarget(
                tenant_id=tenant_id,
                incident_id=incident_id,
                member_id=member_id,
                unit=unit,
                leader=leader,
            )
        )
        db.commit()


def add_answer(
    tenant_id: uuid.UUID,
    incident_id: uuid.UUID,
    member_id: uuid.UUID,
    answer: Answer,
    when: datetime,
    *,
    eta_minutes: int | None = None,
    via: str = "line",
) -> None:
    with unit_of_work(tenant_id) as db:
        db.add(
            CalloutAnswer(
                tenant_id=tenant_id,
                incident_id=incident_id,
                member_id=member_id,
                answer=answer,
                eta_minutes=eta_minutes,
                via=via,
                at=when,
            )
        )
        db.commit()


def add_status_entry(
    tenant_id: uuid.UUID,
    incident_id: uuid.UUID,
    *,
    when: datetime,
    status: IncidentStatus,
    summary: str,
) -> None:
    with unit_of_work(tenant_id) as db:
        db.add(
            IncidentEntry(
                tenant_id=tenant_id,
                incident_id=incident_id,
                at=when,
                kind="status",
                summary=summary,
                status=status,
            )
        )
        db.commit()


@contextmanager
def counting(engine: Engine) -> Iterator[list[str]]:
    """The SQL statements run on `engine` inside the block (for bounded-query checks)."""
    seen: list[str] = []

    def record(_conn, _cursor, statement, *_args) -> None:
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)
