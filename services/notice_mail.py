"""Platform notices by mail (#23, white paper 16.1.1: incidents are announced on the service
site and by mail): the operator sends a notice to the administrators of every brigade in use
(or of the brigades chosen), through the relay configured in HIKESHI_MAIL_RELAY_*.

An administrator is an active member who holds 役職・権限 管理 through their rank or a role,
the right that can give every other right, and has an e-mail address. Addresses are personal
data: each brigade's are decrypted in a read of that brigade alone and are never written to
the log. Every mail handed to the relay is one external-service event (service smtp, its reply
code, no address or text); the sending as a whole is one event in the platform's chain and one
in each brigade's, since the operator read that brigade's addresses.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formataddr, make_msgid

from sqlalchemy import or_
from sqlmodel import Session, select

from config import get_settings
from core.access import PLATFORM
from core.actor import Actor
from core.personal import personal_field
from core.timefmt import to_jst
from integrations.mail import SmtpRelay
from models import Member, MemberRole, Permission, Tenant
from models.enums import AuditCategory, Function, Level, MemberStatus, TenantStatus
from models.notice import MaintenanceNotice
from models.tenant import PLATFORM_TENANT_ID
from services import audit
from services.base import require
from services.crypto import TenantCipher
from services.db import unit_of_work
from services.errors import NotFound, ValidationError
from services.notices import KINDS, TARGET
from services.traffic_log import external_call_recorder

NOT_CONFIGURED = (
    "メール送信の設定（HIKESHI_MAIL_RELAY_HOST と HIKESHI_MAIL_FROM）がないため、"
    "メールは送れません。"
)
SENDER_NAME = "Hikeshi 運営"


@dataclass(frozen=True)
class MailResult:
    brigades: int  # brigades whose administrators were written to
    sent: int
    failed: int
    without_address: int  # administrators who have no e-mail address


@dataclass(frozen=True)
class _Recipient:
    tenant_id: uuid.UUID
    address: str


def mail_available() -> bool:
    """Whether a relay is configured, so the operator's page can offer the choice."""
    return get_settings().mail_relay_configured


def mail_notice(
    actor: Actor, notice_id: uuid.UUID, *, brigades: Collection[uuid.UUID] | None = None
) -> MailResult:
    """Send the notice to the administrators of every active brigade, or of `brigades` only
    (those not in use are left out). Refused unless the relay is configured."""
    require(actor, PLATFORM, action="notice.mail")
    settings = get_settings()
    if not settings.mail_relay_configured:
        raise ValidationError({"mail": NOT_CONFIGURED})
    with unit_of_work(PLATFORM_TENANT_ID, read_only=True) as session:
        notice = session.get(MaintenanceNotice, notice_id)
        if notice is None or notice.withdrawn_at is not None:
            raise NotFound()
        query = select(Tenant.id).where(Tenant.status == str(TenantStatus.ACTIVE))
        if brigades is not None:
            query = query.where(Tenant.id.in_(list(brigades)))
        tenant_ids = list(session.exec(query).all())
    recipients, without_address = [], 0
    for tenant_id in tenant_ids:
        addresses, missing = _administrator_addresses(tenant_id)
        recipients += [_Recipient(tenant_id, a) for a in addresses]
        without_address += missing
    outcomes = _send(actor, notice, recipients)
    result = MailResult(
        brigades=len({r.tenant_id for r in recipients}),
        sent=sum(outcomes),
        failed=len(outcomes) - sum(outcomes),
        without_address=without_address,
    )
    _audit(actor, notice, recipients, outcomes, result)
    return result


def _administrator_addresses(tenant_id: uuid.UUID) -> tuple[list[str], int]:
    """The distinct e-mail addresses of the brigade's administrators, and how many of them
    have none."""
    email = personal_field("member", "email")
    with unit_of_work(tenant_id, read_only=True) as session:
        members = _administrators(session, tenant_id)
        cipher = TenantCipher(session, tenant_id)
        addresses = [
            cipher.decrypt(getattr(m, email.column), field=email.aad, row_id=m.id).strip()
            for m in members
        ]
    found = list(dict.fromkeys(a for a in addresses if a))
    return found, sum(1 for a in addresses if not a)


def _administrators(session: Session, tenant_id: uuid.UUID) -> list[Member]:
    holders = select(Permission.subject_id).where(
        Permission.tenant_id == tenant_id,
        Permission.function == str(Function.PERMISSIONS),
        Permission.level >= int(Level.ADMIN),
    )
    by_role = select(MemberRole.member_id).where(
        MemberRole.tenant_id == tenant_id, MemberRole.role_id.in_(holders)
    )
    query = select(Member).where(
        Member.tenant_id == tenant_id,
        Member.status == str(MemberStatus.ACTIVE),
        or_(Member.rank_id.in_(holders), Member.id.in_(by_role)),
    )
    return list(session.exec(query.order_by(Member.member_code)).all())


def _send(actor: Actor, notice: MaintenanceNotice, recipients: list[_Recipient]) -> list[bool]:
    settings = get_settings()

    relay = SmtpRelay(
        host=settings.mail_relay_host,
        port=settings.mail_relay_port,
        starttls=settings.mail_relay_starttls,
        username=settings.mail_relay_username,
        password=settings.mail_relay_password,
        record=external_call_recorder(actor, request_id=notice.id.hex, recipients=1),
    )
    with relay:
        return [relay.send(_message(notice, r.address)) for r in recipients]


def _message(notice: MaintenanceNotice, address: str) -> EmailMessage:
    """One mail per administrator: no brigade sees another's addresses."""
    settings = get_settings()
    kind = KINDS.get(notice.kind, notice.kind)
    ends = f"{to_jst(notice.ends_at)}（日本時間）" if notice.ends_at else "未定"
    message = EmailMessage()
    message["Subject"] = f"【Hikeshi {kind}】{notice.title}"
    message["From"] = formataddr((SENDER_NAME, settings.mail_from))
    message["To"] = address
    message["Message-ID"] = make_msgid(domain=settings.mail_from.rpartition("@")[2] or None)
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(
        f"消防団の管理者の皆さま\n\nHikeshi の運営者からのお知らせです。\n\n"
        f"種類: {kind}\n件名: {notice.title}\n"
        f"期間: {to_jst(notice.starts_at)}（日本時間）から {ends}\n\n"
        f"{notice.body}\n\n"
        f"同じお知らせは Hikeshi の画面上部にも表示されます。\n"
        f"このメールは送信専用です。\n{settings.public_base_url}\n"
    )
    return message


def _audit(
    actor: Actor,
    notice: MaintenanceNotice,
    recipients: list[_Recipient],
    outcomes: list[bool],
    result: MailResult,
) -> None:
    per_brigade: dict[uuid.UUID, list[bool]] = {}
    for recipient, ok in zip(recipients, outcomes, strict=True):
        per_brigade.setdefault(recipient.tenant_id, []).append(ok)
    with unit_of_work(PLATFORM_TENANT_ID) as session:
        audit.record_platform(
            session,
            actor,
            "notice.mail",
            target_type=TARGET,
            target_id=notice.id,
            details={
                "title": notice.title,
                "brigades": result.brigades,
                "sent": result.sent,
                "failed": result.failed,
                "without_address": result.without_address,
            },
        )
        for tenant_id, sent in per_brigade.items():
            audit.record(
                session,
                actor,
                category=AuditCategory.OPERATION,
                action="notice.mail",
                target_type=TARGET,
                target_id=notice.id,
                details={"title": notice.title, "sent": sum(sent), "failed": sent.count(False)},
                outcome="success" if all(sent) else "failure",
                tenant_id=tenant_id,
            )
        session.commit()
