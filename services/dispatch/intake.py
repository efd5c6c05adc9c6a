"""Dispatch mail intake (メール受信, white paper 12.4.1): every mail is stored raw and sealed
first, then its sender is checked, it is decoded, parsed and correlated into an incident, and
its メール受信ログ entry is written in the same transaction. A mail that cannot be parsed still
makes an incident marked 要確認: a dispatch mail is never dropped silently.

The work runs as the machine actor `machine:mail-intake`, which holds 災害出動 編集 and nothing
else. With several intake processes on one database, exactly one handles each stored mail: the
mail row is claimed with FOR UPDATE SKIP LOCKED, and the brigade's correlation runs under the
row lock of its audit chain head, so two processes never make the same incident twice."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

from sqlalchemy import text
from sqlmodel import select

from config import get_settings
from core.access import Need
from core.actor import Actor, machine_actor
from formats.dispatch_mail import DecodedMail, DecodeStatus, decode_mail
from formats.dispatch_profile import FollowUp, ParsedDispatch, parse_dispatch
from integrations.mail import verify_dkim
from models import AuditChainHead, Tenant
from models.base import utcnow
from models.dispatch import InboundMail, Incident, MailSource, MailStatus, MailTransport
from models.enums import AuditCategory, Function, Level, TenantStatus
from services.base import Tx, transaction
from services.db import unit_of_work
from services.dispatch import callout, incidents
from services.dispatch.sources import (
    address_hash,
    sender_allowed,
    source_profile,
    source_senders,
    token_of,
)

RECEIVE = Need(Function.DISPATCH, Level.EDIT)
RAW_FIELD = "inbound_mail.raw"
ENVELOPE_FIELD = "inbound_mail.envelope"
PARSE_FAILED = "本文を解析できませんでした。"
DNSFunc = Callable[..., bytes]


class ParseStatus(StrEnum):
    OK = "ok"
    REVIEW = "review"  # parsed, but fields are missing: the incident is marked 要確認
    FAILED = "failed"

    @property
    def label(self) -> str:
        return {"ok": "解析済み", "review": "要確認", "failed": "解析失敗"}[self.value]


def intake_actor(tenant_id: uuid.UUID) -> Actor:
    return machine_actor(tenant_id, "mail-intake", [(Function.DISPATCH, Level.EDIT)])


@dataclass(frozen=True)
class Route:
    tenant_id: uuid.UUID
    source_id: uuid.UUID


def route(address: str) -> Route | None:
    """The brigade and source a receiving address belongs to, asked before any brigade is
    known: on PostgreSQL through the narrow SECURITY DEFINER function of migration x001."""
    token = token_of(address)
    if token is None:
        return None
    digest = address_hash(token)
    with unit_of_work(None) as db:
        if db.get_bind().dialect.name == "postgresql":
            found = db.execute(
                text("SELECT tenant_id, source_id FROM dispatch_mail_route(:h)"), {"h": digest}
            ).first()
        else:
            found = db.execute(
                select(MailSource.tenant_id, MailSource.id).where(
                    MailSource.address_hash == digest,
                    MailSource.active,
                    MailSource.transport == MailTransport.SMTP,
                )
            ).first()
    return Route(*found) if found else None


def store(
    where: Route,
    raw: bytes,
    *,
    transport: MailTransport,
    envelope_from: str = "",
    rcpt: str = "",
    peer: str = "",
) -> uuid.UUID:
    """Keep the raw mail, sealed, before anything else looks at it; over the size limit only
    its trace is kept."""
    actor = intake_actor(where.tenant_id)
    with transaction(actor, RECEIVE, action="mail.receive") as tx:
        source = tx.get(MailSource, where.source_id)
        if source is None:
            raise LookupError("mail source vanished")
        now = utcnow()
        mail = InboundMail(
            tenant_id=tx.tenant_id,
            source_id=source.id,
            transport=transport,
            received_at=now,
            size=len(raw),
            sha256=hashlib.sha256(raw).hexdigest(),
            envelope_enc="",
            raw_expires_at=now + timedelta(days=source.raw_retention_days),
        )
        envelope = {"envelope_from": envelope_from, "rcpt": rcpt, "peer": peer}
        _seal_envelope(tx, mail, envelope)
        if len(raw) > get_settings().mail_max_bytes:
            mail.status = MailStatus.REJECTED_SIZE
            mail.processed_at = now
            tx.session.add(mail)
            _audit(tx, mail, source, envelope, None)
        else:
            # latin-1 maps every byte to one character: the exact bytes come back
            mail.raw_enc = tx.cipher.encrypt(raw.decode("latin-1"), field=RAW_FIELD, row_id=mail.id)
            tx.session.add(mail)
        tx.commit()
        return mail.id


@dataclass(frozen=True)
class Outcome:
    mail_id: uuid.UUID
    status: MailStatus
    incident_id: uuid.UUID | None
    incident_number: int | None


def process(
    tenant_id: uuid.UUID, mail_id: uuid.UUID, *, dnsfunc: DNSFunc | None = None
) -> Outcome | None:
    """Check, decode, parse and correlate one stored mail; None when another process has it
    or it was handled already."""
    actor = intake_actor(tenant_id)
    with transaction(actor, RECEIVE, action="mail.process") as tx:
        _serialise(tx)
        mail = tx.session.exec(
            select(InboundMail)
            .where(
                InboundMail.id == mail_id,
                InboundMail.tenant_id == tx.tenant_id,
                InboundMail.status == MailStatus.RECEIVED,
            )
            .with_for_update(skip_locked=True)
        ).first()
        if mail is None:
            return None
        source = tx.get(MailSource, mail.source_id)
        raw = tx.cipher.decrypt(mail.raw_enc, field=RAW_FIELD, row_id=mail.id).encode("latin-1")
        envelope = json.loads(
            tx.cipher.decrypt(mail.envelope_enc, field=ENVELOPE_FIELD, row_id=mail.id)
        )
        incident = _handle(tx, source, mail, raw, envelope, dnsfunc)
        mail.processed_at = utcnow()
        if incident is not None:
            mail.incident_id = incident.id
        _seal_envelope(tx, mail, envelope)
        _audit(tx, mail, source, envelope, incident)
        tx.commit()
        return Outcome(
            mail.id,
            MailStatus(mail.status),
            mail.incident_id,
            incident.number if incident else None,
        )


def receive(
    where: Route,
    raw: bytes,
    *,
    transport: MailTransport = MailTransport.SMTP,
    envelope_from: str = "",
    rcpt: str = "",
    peer: str = "",
    dnsfunc: DNSFunc | None = None,
) -> Outcome | None:
    """Store, then handle at once. A failure after the store leaves the mail 受信（未処理）
    for `process_pending`, never lost."""
    mail_id = store(
        where, raw, transport=transport, envelope_from=envelope_from, rcpt=rcpt, peer=peer
    )
    return process(where.tenant_id, mail_id, dnsfunc=dnsfunc)


def process_pending(*, older_than_seconds: float = 30, dnsfunc: DNSFunc | None = None) -> int:
    """Handle mail left 受信（未処理） (a process stopped between storing and handling)."""
    cutoff = utcnow() - timedelta(seconds=older_than_seconds)
    handled = 0
    for tenant_id in brigades():
        with unit_of_work(tenant_id) as db:
            pending = db.exec(
                select(InboundMail.id).where(
                    InboundMail.tenant_id == tenant_id,
                    InboundMail.status == MailStatus.RECEIVED,
                    InboundMail.received_at < cutoff,
                )
            ).all()
        for mail_id in pending:
            handled += process(tenant_id, mail_id, dnsfunc=dnsfunc) is not None
    return handled


def purge_expired_raw() -> int:
    """Empty the raw text of mail past its source's retention period; the log entry stays."""
    now, purged = utcnow(), 0
    for tenant_id in brigades():
        actor = machine_actor(tenant_id, "mail-retention", [(Function.DISPATCH, Level.EDIT)])
        with transaction(actor, RECEIVE, action="mail.purge_raw") as tx:
            rows = tx.session.exec(
                select(InboundMail).where(
                    InboundMail.tenant_id == tx.tenant_id,
                    InboundMail.raw_enc.is_not(None),
                    InboundMail.raw_expires_at < now,
                    InboundMail.status != MailStatus.RECEIVED,
                )
            ).all()
            for row in rows:
                row.raw_enc = None
            if rows:
                tx.audit(
                    "mail.purge_raw", category=AuditCategory.MAIL, details={"mails": len(rows)}
                )
                tx.commit()
            purged += len(rows)
    return purged


# ---------------------------------------------------------------------------


def brigades() -> list[uuid.UUID]:
    with unit_of_work(None) as db:
        return list(db.exec(select(Tenant.id).where(Tenant.status == TenantStatus.ACTIVE)).all())


def _serialise(tx: Tx) -> None:
    """One correlation at a time per brigade, across processes: the audit chain head's row
    lock, which every audited write of the brigade takes anyway."""
    tx.session.exec(
        select(AuditChainHead).where(AuditChainHead.tenant_id == tx.tenant_id).with_for_update()
    ).one()


def _handle(
    tx: Tx,
    source: MailSource,
    mail: InboundMail,
    raw: bytes,
    envelope: dict,
    dnsfunc: DNSFunc | None,
) -> Incident | None:
    decoded = decode_mail(raw, charset_override=source.charset_override or None)
    envelope.update(header_from=decoded.header_from, subject=decoded.subject)
    mail.message_id = (decoded.message_id or "")[:300]
    mail.mail_date = decoded.date
    mail.decode_status = decoded.decode_status
    mail.message_key = _message_key(decoded)
    problems = list(decoded.problems)
    if not sender_allowed(source_senders(source), decoded.header_from):
        return _done(mail, MailStatus.REJECTED_SENDER, problems)
    if source.dkim_required:
        result = verify_dkim(raw, dnsfunc=dnsfunc)
        mail.dkim = result.status
        if result.status != "pass" or not _aligned(result.domain, decoded.header_from):
            problems.append(f"DKIM: {result.detail or result.status}")
            return _done(mail, MailStatus.REJECTED_DKIM, problems)
    earlier = tx.session.exec(
        select(InboundMail).where(
            InboundMail.tenant_id == tx.tenant_id,
            InboundMail.message_key == mail.message_key,
            InboundMail.status == MailStatus.ACCEPTED,
            InboundMail.id != mail.id,
        )
    ).first()
    if earlier is not None:
        mail.incident_id = earlier.incident_id
        _done(mail, MailStatus.DUPLICATE, problems)
        return None
    try:
        parsed: ParsedDispatch | None = parse_dispatch(decoded, source_profile(source))
    except Exception:  # a profile that breaks on this mail must not lose the mail
        parsed = None
    incident = _correlate(tx, source, mail, decoded, parsed)
    mail.parse_status = (
        ParseStatus.FAILED
        if parsed is None
        else ParseStatus.REVIEW
        if _reasons(decoded, parsed)
        else ParseStatus.OK
    )
    _done(mail, MailStatus.ACCEPTED, problems)
    return incident


def _done(mail: InboundMail, status: MailStatus, problems: list[str]) -> None:
    mail.status = status
    mail.problems = json.dumps(problems, ensure_ascii=False)


def _reasons(decoded: DecodedMail, parsed: ParsedDispatch | None) -> list[str]:
    if parsed is None:
        return [PARSE_FAILED]
    reasons = (
        [f"{label}が見つかりません。" for label in parsed.missing] if parsed.needs_review else []
    )
    if decoded.decode_status == DecodeStatus.REPLACED:
        reasons.append("本文の一部を文字に戻せませんでした（原文を確認してください）。")
    return reasons


def _correlate(
    tx: Tx,
    source: MailSource,
    mail: InboundMail,
    decoded: DecodedMail,
    parsed: ParsedDispatch | None,
) -> Incident:
    reasons = _reasons(decoded, parsed)
    match = None
    if parsed is not None:
        match = incidents.find_match(
            tx,
            parsed,
            source_id=source.id,
            window_minutes=source.followup_window_minutes,
            now=mail.received_at,
        )
    if match is not None:
        _follow_up(tx, match, mail, parsed)
        return match
    followup = parsed.followup if parsed else FollowUp.DISPATCH
    if followup not in (FollowUp.DISPATCH, FollowUp.REQUEST):
        reasons.append(incidents.NO_MATCH)
    row = incidents.new_incident(
        tx,
        kind=(parsed.kind if parsed else None) or "",
        place=(parsed.place if parsed else None) or "",
        landmark=(parsed.landmark if parsed else None) or "",
        units=parsed.units if parsed else (),
        reference=(parsed.reference if parsed else None) or "",
        occurred_at=parsed.occurred_at if parsed else None,
        subject=decoded.subject,
        place_approximate=bool(parsed and parsed.place_approximate),
        map_url=(parsed.map_url if parsed else None) or "",
        source_id=source.id,
        status=incidents.FOLLOWUP_STATUS.get(followup, incidents.S.RECEIVED),
        mail_date=decoded.date,
        received_at=mail.received_at,
        review_reasons=tuple(reasons),
    )
    incidents.add_entry(
        tx, row, "created", f"{followup.label}メールから登録しました。", mail_id=mail.id
    )
    callout.start_for_new_incident(tx, row)
    return row


def _follow_up(tx: Tx, row: Incident, mail: InboundMail, parsed: ParsedDispatch) -> None:
    notes = [f"{parsed.followup.label}メールを受信しました。"]
    units = json.loads(row.units)
    added = [u for u in parsed.units if u not in units]
    if added:
        row.units = json.dumps(units + added, ensure_ascii=False)
        notes.append(f"出動分団に{'・'.join(added)}を追加しました。")
    for name in ("kind", "reference"):
        if not getattr(row, name) and getattr(parsed, name):
            setattr(row, name, getattr(parsed, name))
    if row.occurred_at is None and parsed.occurred_at is not None:
        row.occurred_at = parsed.occurred_at
    for name in ("place", "landmark", "map_url"):
        value = getattr(parsed, name) or ""
        if value and not incidents.unseal(tx, row, name):
            incidents.seal(tx, row, **{name: value})
            notes.append(
                {"place": "発生場所", "landmark": "目標物", "map_url": "地図"}[name]
                + "を追記しました。"
            )
    incidents.touch(row)
    incidents.add_entry(tx, row, "followup", " ".join(notes), mail_id=mail.id)
    target = incidents.FOLLOWUP_STATUS.get(parsed.followup)
    if target is not None and incidents.can_move(incidents.S(row.status), target):
        incidents.move(tx, row, target, by_hand=False, mail_id=mail.id)


def _aligned(dkim_domain: str | None, header_from: str) -> bool:
    """The signing domain is the From address's domain or a parent of it (relaxed alignment)."""
    if not dkim_domain:
        return False
    domain = header_from.rsplit("@", 1)[-1].lower()
    signer = dkim_domain.lower().rstrip(".")
    return domain == signer or domain.endswith("." + signer)


def _message_key(decoded: DecodedMail) -> str:
    basis = decoded.message_id or "|".join(
        (
            decoded.header_from,
            decoded.date.isoformat() if decoded.date else "",
            decoded.subject,
            decoded.body,
        )
    )
    return hashlib.sha256(basis.strip().encode("utf-8", "surrogatepass")).hexdigest()


def _seal_envelope(tx: Tx, mail: InboundMail, envelope: dict) -> None:
    mail.envelope_enc = tx.cipher.encrypt(
        json.dumps(envelope, ensure_ascii=False), field=ENVELOPE_FIELD, row_id=mail.id
    )


def _audit(
    tx: Tx, mail: InboundMail, source: MailSource, envelope: dict, incident: Incident | None
) -> None:
    status = MailStatus(mail.status)
    tx.audit(
        "mail.receive",
        category=AuditCategory.MAIL,
        target_type="inbound_mail",
        target_id=mail.id,
        outcome="rejected" if status.rejected else "success",
        details={
            "status": status.value,
            "source": source.name,
            "transport": mail.transport,
            "size": mail.size,
            "sha256": mail.sha256,
            "message_id": mail.message_id,
            "mail_date": mail.mail_date.isoformat() if mail.mail_date else "",
            "dkim": mail.dkim,
            "decode_status": mail.decode_status,
            "parse_status": mail.parse_status,
            "incident": incident.number if incident is not None else None,
            "problems": json.loads(mail.problems),
        },
        personal={
            "envelope_from": envelope.get("envelope_from", ""),
            "header_from": envelope.get("header_from", ""),
            "subject": envelope.get("subject", ""),
        },
    )
