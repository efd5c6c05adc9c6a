"""The メール受信ログ as a table (white paper 12.4.1): every received mail with its envelope and
header senders, Message-ID, Date, size, SHA-256, what became of it and the incident it made.
Senders and subjects are shown to イベントログ 管理 only, and so is a mail's raw text, whose
every viewing is recorded."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import select

from core.access import Need, allows
from core.actor import Actor
from formats.dispatch_mail import DecodedMail, decode_mail
from models.dispatch import InboundMail, Incident, MailSource, MailStatus
from models.enums import AuditCategory, Function, Level
from services.base import scoped, transaction
from services.dispatch.intake import ENVELOPE_FIELD, RAW_FIELD, ParseStatus
from services.errors import NotFound, ValidationError

VIEW = Need(Function.EVENT_LOGS, Level.VIEW)
ADMIN = Need(Function.EVENT_LOGS, Level.ADMIN)
RAW_GONE = "原文は保存期間を過ぎたため削除されています。"


@dataclass(frozen=True)
class MailLogRow:
    id: uuid.UUID
    received_at: datetime
    processed_at: datetime | None
    source: str
    transport: str
    status: MailStatus
    message_id: str
    mail_date: datetime | None
    size: int
    sha256: str
    dkim: str
    decode_status: str
    parse_status: str
    parse_label: str
    problems: tuple[str, ...]
    incident_number: int | None
    raw_kept: bool
    # 管理 only; "" for others
    envelope_from: str = ""
    rcpt: str = ""
    header_from: str = ""
    subject: str = ""


def list_mail(
    actor: Actor,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    statuses: tuple[MailStatus, ...] = (),
    limit: int = 500,
) -> list[MailLogRow]:
    with transaction(actor, VIEW, action="mail_log.list", read_only=True) as tx:
        query = scoped(select(InboundMail), actor)
        if since is not None:
            query = query.where(InboundMail.received_at >= since)
        if until is not None:
            query = query.where(InboundMail.received_at < until)
        if statuses:
            query = query.where(InboundMail.status.in_([str(s) for s in statuses]))
        mails = tx.session.exec(query.order_by(InboundMail.received_at.desc()).limit(limit)).all()
        names = dict(tx.session.exec(scoped(select(MailSource.id, MailSource.name), actor)).all())
        numbers = dict(tx.session.exec(scoped(select(Incident.id, Incident.number), actor)).all())
        personal = allows(tx.actor, ADMIN)
        rows = []
        for mail in mails:
            envelope = {}
            if personal:
                envelope = json.loads(
                    tx.cipher.decrypt(mail.envelope_enc, field=ENVELOPE_FIELD, row_id=mail.id)
                )
            rows.append(
                MailLogRow(
                    id=mail.id,
                    received_at=mail.received_at,
                    processed_at=mail.processed_at,
                    source=names.get(mail.source_id, ""),
                    transport=mail.transport,
                    status=MailStatus(mail.status),
                    message_id=mail.message_id,
                    mail_date=mail.mail_date,
                    size=mail.size,
                    sha256=mail.sha256,
                    dkim=mail.dkim,
                    decode_status=mail.decode_status,
                    parse_status=mail.parse_status,
                    parse_label=ParseStatus(mail.parse_status).label if mail.parse_status else "—",
                    problems=tuple(json.loads(mail.problems)),
                    incident_number=numbers.get(mail.incident_id),
                    raw_kept=mail.raw_enc is not None,
                    envelope_from=envelope.get("envelope_from", ""),
                    rcpt=envelope.get("rcpt", ""),
                    header_from=envelope.get("header_from", ""),
                    subject=envelope.get("subject", ""),
                )
            )
        return rows


@dataclass(frozen=True)
class RawMail:
    raw: bytes
    decoded: DecodedMail


def raw_mail(actor: Actor, mail_id: uuid.UUID) -> RawMail:
    """A mail's raw bytes and their decoded text, for イベントログ 管理; recorded."""
    with transaction(actor, ADMIN, action="mail_log.raw") as tx:
        mail = tx.get(InboundMail, mail_id)
        if mail is None:
            raise NotFound()
        if mail.raw_enc is None:
            raise ValidationError({"原文": RAW_GONE})
        raw = tx.cipher.decrypt(mail.raw_enc, field=RAW_FIELD, row_id=mail.id).encode("latin-1")
        source = tx.get(MailSource, mail.source_id)
        tx.audit(
            "mail.raw_view",
            category=AuditCategory.MAIL,
            target_type="inbound_mail",
            target_id=mail.id,
            details={"sha256": mail.sha256},
        )
        tx.commit()
    override = source.charset_override if source is not None else ""
    return RawMail(raw, decode_mail(raw, charset_override=override or None))
