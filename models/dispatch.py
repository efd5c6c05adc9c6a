"""Dispatch (災害出動): where a brigade's dispatch mail comes from, every mail received, and the
incidents they make. Mail text, places and senders are sealed like other personal data; see
services/dispatch."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import Column, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from models.base import UTCDateTime, created_field, new_id, optional_time_field


class MailTransport(StrEnum):
    SMTP = "smtp"  # sent to this installation's receiver at the source's secret address
    IMAP = "imap"  # fetched from the brigade's own mailbox

    @property
    def label(self) -> str:
        return {"smtp": "受信アドレス（SMTP）", "imap": "メールボックス（IMAP）"}[self.value]


class MailStatus(StrEnum):
    """What became of one received mail (メール受信ログ)."""

    RECEIVED = "received"  # stored raw, not yet checked
    ACCEPTED = "accepted"  # made or updated an incident
    DUPLICATE = "duplicate"  # the same mail again: recorded and dropped
    REJECTED_SENDER = "rejected_sender"
    REJECTED_DKIM = "rejected_dkim"
    REJECTED_SIZE = "rejected_size"

    @property
    def label(self) -> str:
        return MAIL_STATUS_LABELS[self]

    @property
    def rejected(self) -> bool:
        return self.value.startswith("rejected_")


MAIL_STATUS_LABELS = {
    MailStatus.RECEIVED: "受信（未処理）",
    MailStatus.ACCEPTED: "受理",
    MailStatus.DUPLICATE: "重複（破棄）",
    MailStatus.REJECTED_SENDER: "拒否（送信元が許可リストにない）",
    MailStatus.REJECTED_DKIM: "拒否（DKIM署名を確認できない）",
    MailStatus.REJECTED_SIZE: "拒否（サイズ超過）",
}


class IncidentStatus(StrEnum):
    RECEIVED = "received"
    DISPATCHED = "dispatched"
    SUPPRESSED = "suppressed"
    EXTINGUISHED = "extinguished"
    FALSE_ALARM = "false_alarm"
    CANCELLED = "cancelled"
    CLOSED = "closed"

    @property
    def label(self) -> str:
        return INCIDENT_STATUS_LABELS[self]

    @property
    def open(self) -> bool:
        return self != IncidentStatus.CLOSED


INCIDENT_STATUS_LABELS = {
    IncidentStatus.RECEIVED: "受信",
    IncidentStatus.DISPATCHED: "出動中",
    IncidentStatus.SUPPRESSED: "鎮圧",
    IncidentStatus.EXTINGUISHED: "鎮火",
    IncidentStatus.FALSE_ALARM: "誤報",
    IncidentStatus.CANCELLED: "取消",
    IncidentStatus.CLOSED: "終了",
}


class MailSource(SQLModel, table=True):
    """One 消防本部 that sends a brigade dispatch mail, how its mail arrives, whom to accept it
    from and how to read it."""

    __tablename__ = "mail_source"
    __table_args__ = (
        UniqueConstraint("tenant_id", "name"),
        UniqueConstraint("tenant_id", "address_hash"),
    )

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    tenant_id: uuid.UUID = Field(foreign_key="tenant.id", index=True)
    name: str = Field(max_length=100)
    transport: str = Field(default=MailTransport.SMTP, max_length=10)
    # SMTP: the secret part of the receiving address, sealed (shown to 管理) and hashed (routing)
    address_token_enc: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    address_hash: str | None = Field(default=None, max_length=64)
    # JSON list of accepted sender addresses ("a@b.jp") and domains ("@b.jp")
    senders: str = Field(default="[]", sa_column=Column(Text, nullable=False))
    dkim_required: bool = False
    charset_override: str = Field(default="", max_length=40)
    # JSON of formats.dispatch_mail.ParserProfile
    profile: str = Field(default="{}", sa_column=Column(Text, nullable=False))
    followup_window_minutes: int = 180
    raw_retention_days: int = 30
    imap_host: str = Field(default="", max_length=200)
    imap_port: int = 993
    imap_ssl: bool = True
    imap_username: str = Field(default="", max_length=200)
    imap_password_enc: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    imap_folder: str = Field(default="INBOX", max_length=100)
    active: bool = True
    version: int = 1
    created_at: datetime = created_field()
    updated_at: datetime = created_field()


class InboundMail(SQLModel, table=True):
    """One received mail: stored raw (sealed) before anything else, then checked, decoded,
    parsed and correlated; the row is its メール受信ログ entry."""

    __tablename__ = "inbound_mail"
    __table_args__ = (
        Index("ix_inbound_mail_tenant_message", "tenant_id", "message_key"),
        Index("ix_inbound_mail_tenant_received", "tenant_id", "received_at"),
        Index("ix_inbound_mail_pending", "status", "received_at"),
    )

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    tenant_id: uuid.UUID = Field(foreign_key="tenant.id")
    source_id: uuid.UUID = Field(foreign_key="mail_source.id")
    transport: str = Field(max_length=10)
    received_at: datetime = created_field()
    processed_at: datetime | None = optional_time_field()
    status: str = Field(default=MailStatus.RECEIVED, max_length=20)
    size: int = 0
    sha256: str = Field(max_length=64)
    # SHA-256 of the Message-ID (or, without one, of sender, date, subject and body): duplicates
    message_key: str = Field(default="", max_length=64)
    message_id: str = Field(default="", max_length=300)
    mail_date: datetime | None = optional_time_field()
    dkim: str = Field(default="", max_length=10)
    decode_status: str = Field(default="", max_length=20)
    parse_status: str = Field(default="", max_length=20)
    # JSON list of Japanese problem lines (no personal data)
    problems: str = Field(default="[]", sa_column=Column(Text, nullable=False))
    # sealed JSON: envelope from/to, header From, subject
    envelope_enc: str = Field(sa_column=Column(Text, nullable=False))
    # sealed raw bytes (base64 inside); emptied after the retention period
    raw_enc: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    raw_expires_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    incident_id: uuid.UUID | None = Field(default=None, foreign_key="incident.id")


class Incident(SQLModel, table=True):
    """One 災害 the brigade is called to: made from dispatch mail (or by hand), updated by its
    follow-ups."""

    __tablename__ = "incident"
    __table_args__ = (
        UniqueConstraint("tenant_id", "number"),
        Index("ix_incident_tenant_reference", "tenant_id", "reference"),
        Index("ix_incident_tenant_created", "tenant_id", "created_at"),
    )

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    tenant_id: uuid.UUID = Field(foreign_key="tenant.id")
    number: int
    source_id: uuid.UUID | None = Field(default=None, foreign_key="mail_source.id")
    status: str = Field(default=IncidentStatus.RECEIVED, max_length=20)
    needs_review: bool = False
    # JSON list of Japanese reasons it needs review
    review_reasons: str = Field(default="[]", sa_column=Column(Text, nullable=False))
    # as long as the parser takes a value (formats.dispatch_profile.MAX_VALUE_CHARS)
    kind: str = Field(default="", max_length=200)
    reference: str = Field(default="", max_length=200)
    # JSON list of the brigade's 分団 called out
    units: str = Field(default="[]", sa_column=Column(Text, nullable=False))
    place_approximate: bool = False
    # sealed: place, landmark, map URL and the first mail's subject
    place_enc: str = Field(sa_column=Column(Text, nullable=False))
    landmark_enc: str = Field(sa_column=Column(Text, nullable=False))
    map_url_enc: str = Field(sa_column=Column(Text, nullable=False))
    subject_enc: str = Field(sa_column=Column(Text, nullable=False))
    # The incident map (#22): where it is, sealed like the place (JSON: latitude, longitude and,
    # from the geocoder, what was searched and what it found; "" when unknown), where that came
    # from (services.dispatch.incident_map: map_url, geocoder, manual), and the geocoder's last
    # lookup: when it was claimed and what came of it (found, not_found, failed, off, no_place).
    position_enc: str = Field(default="", sa_column=Column(Text, nullable=False))
    position_source: str = Field(default="", max_length=20)
    position_lookup: str = Field(default="", max_length=20)
    position_checked_at: datetime | None = optional_time_field()
    occurred_at: datetime | None = optional_time_field()
    mail_date: datetime | None = optional_time_field()
    received_at: datetime | None = optional_time_field()
    created_at: datetime = created_field()
    updated_at: datetime = created_field()
    closed_at: datetime | None = optional_time_field()
    test: bool = False  # a test call-out (テスト): never counted, never reported
    version: int = 1


class IncidentEntry(SQLModel, table=True):
    """The incident's timeline: created, each follow-up mail, each change by hand."""

    __tablename__ = "incident_entry"
    __table_args__ = (Index("ix_incident_entry_incident", "tenant_id", "incident_id", "at"),)

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    tenant_id: uuid.UUID = Field(foreign_key="tenant.id")
    incident_id: uuid.UUID = Field(foreign_key="incident.id")
    at: datetime = created_field()
    kind: str = Field(max_length=20)
    summary: str = Field(default="", max_length=500)
    status: str = Field(default="", max_length=20)
    mail_id: uuid.UUID | None = Field(default=None, foreign_key="inbound_mail.id")
    actor_label: str = Field(default="", max_length=100)
