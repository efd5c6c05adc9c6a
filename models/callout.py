"""The call-out (出動連絡, #21): who was called for an incident, what they answered (出動可否),
the LINE messages waiting to be sent (the outbox), the brigade's call-out settings, and the
LINE webhook events received and not yet handled. See services/dispatch/callout*.py."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import Column, Index, Integer, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from models.base import UTCDateTime, created_field, new_id, optional_time_field


class CalloutKind(StrEnum):
    """One wave of LINE messages for an incident."""

    CALLOUT = "callout"  # the first call to the incident's 分団
    WIDEN = "widen"  # more 分団 called by a leader (応援要請)
    REMINDER = "reminder"  # to targets who have not answered
    SHORTAGE = "shortage"  # to leaders: a 分団 is short of its crew minimum
    FOLLOWUP = "followup"  # 鎮圧・鎮火・誤報・取消 to those who are coming
    TEST = "test"  # a test call-out (テスト), to administrators or chosen members
    # the daily self-test (自己診断): its chunk goes to LINE's validate endpoint, reaching nobody
    SELFTEST = "selftest"
    SELFTEST_ALERT = "selftest_alert"  # to the 災害出動 管理 holders: the self-test failed
    REPORT_REQUEST = "report_request"  # after 終了: to those who came, asking for 出動報告

    @property
    def label(self) -> str:
        return {
            "callout": "出動連絡",
            "widen": "応援要請",
            "reminder": "再通知",
            "shortage": "人員不足の連絡",
            "followup": "続報",
            "test": "テスト送信",
            "selftest": "自己診断",
            "selftest_alert": "自己診断の異常通知",
            "report_request": "出動報告の依頼",
        }[self.value]


class OutboxStatus(StrEnum):
    PENDING = "pending"  # waiting, or waiting for a retry
    SENDING = "sending"  # claimed by a sender until claimed_until
    SENT = "sent"  # accepted by LINE (200, or 409 for its retry key)
    FAILED = "failed"  # given up: refused by LINE, quota exhausted, or retries spent
    CANCELLED = "cancelled"  # not sent: the incident was cancelled (取消) or ended first


class FriendStatus(StrEnum):
    """Whether LINE delivers the official account's messages to a linked member: known from
    follow / unfollow webhook events, and asked of LINE Login at each sign-in
    (services/signin/line_friendship.py)."""

    UNKNOWN = "unknown"
    FRIEND = "friend"
    BLOCKED = "blocked"  # an unfollow event: the member blocked the account
    # a sign-in found no friendship: LINE does not say whether the account was never added or
    # blocked (before the webhook was set up); either way the member must add or unblock it
    NOT_FRIEND = "not_friend"

    @property
    def label(self) -> str:
        return {
            "unknown": "不明",
            "friend": "友だち",
            "blocked": "ブロック中",
            "not_friend": "未追加またはブロック",
        }[self.value]

    @property
    def reachable(self) -> bool:
        """Whether a call-out is sent to the member (an unknown status is tried)."""
        return self in (FriendStatus.UNKNOWN, FriendStatus.FRIEND)


class CalloutSettings(SQLModel, table=True):
    """A brigade's call-out rules; no row means the defaults."""

    __tablename__ = "callout_settings"

    tenant_id: uuid.UUID = Field(foreign_key="tenant.id", primary_key=True)
    auto_callout: bool = True  # call the listed 分団 as soon as a dispatch mail arrives
    reminder_minutes: int = 3
    crew_minimum: int = 3  # per 分団 (one pump each)
    # members of this rank or higher are leaders: always called, alerted when crews are short
    leader_rank_position: int = 3  # 分団長
    # a mail that names no 分団 of the brigade calls: "all" members or only the "leaders"
    no_units_target: str = Field(default="all", max_length=10)
    # targeting rules by incident kind and time of day (JSON list, see callout_settings.Rule)
    rules: str = Field(default="[]", sa_column=Column(Text, nullable=False, server_default="[]"))
    # 分団 → neighbouring 分団 offered when its crew is short (JSON object)
    neighbours: str = Field(
        default="{}", sa_column=Column(Text, nullable=False, server_default="{}")
    )
    # the scheduled self-test: the JST hour it runs each day (None: off), and its last result
    selftest_hour: int | None = Field(
        default=6, sa_column=Column(Integer, nullable=True, server_default="6")
    )
    selftest_last_at: datetime | None = optional_time_field()
    selftest_last_error: str = Field(
        default="", sa_column=Column(Text, nullable=False, server_default="")
    )
    version: int = 1
    updated_at: datetime = created_field()


class Callout(SQLModel, table=True):
    """One wave of messages: the same message to every recipient (LINE multicasts it), sealed
    since it names the place."""

    __tablename__ = "callout"
    __table_args__ = (
        Index("ix_callout_incident", "tenant_id", "incident_id", "created_at"),
        Index("ix_callout_escalate", "escalate_at"),
    )

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    tenant_id: uuid.UUID = Field(foreign_key="tenant.id")
    incident_id: uuid.UUID = Field(foreign_key="incident.id")
    kind: str = Field(max_length=20)
    units: str = Field(default="[]", sa_column=Column(Text, nullable=False))  # JSON list
    recipients: int = 0
    messages_enc: str = Field(sa_column=Column(Text, nullable=False))
    # when the reminder and the crew check of a call-out are due; cleared once done
    escalate_at: datetime | None = optional_time_field()
    actor_label: str = Field(default="", max_length=100)
    created_at: datetime = created_field()


class CalloutTarget(SQLModel, table=True):
    """A member called for an incident, once per incident however many waves reached them."""

    __tablename__ = "callout_target"
    __table_args__ = (UniqueConstraint("tenant_id", "incident_id", "member_id"),)

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    tenant_id: uuid.UUID = Field(foreign_key="tenant.id")
    incident_id: uuid.UUID = Field(foreign_key="incident.id")
    member_id: uuid.UUID = Field(foreign_key="member.id")
    # the wave that called them; None for a target restored from a backup (waves are not)
    callout_id: uuid.UUID | None = Field(default=None, foreign_key="callout.id")
    unit: str = Field(default="", max_length=100)  # the 分団 they were called for
    leader: bool = False
    notified: bool = True  # False: not reachable on LINE (no link, blocked, LINE not set up)
    reminded_at: datetime | None = optional_time_field()
    created_at: datetime = created_field()


class CalloutAnswer(SQLModel, table=True):
    """Every answer, kept: the latest per member counts."""

    __tablename__ = "callout_answer"
    __table_args__ = (Index("ix_callout_answer_incident", "tenant_id", "incident_id", "at"),)

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    tenant_id: uuid.UUID = Field(foreign_key="tenant.id")
    incident_id: uuid.UUID = Field(foreign_key="incident.id")
    member_id: uuid.UUID = Field(foreign_key="member.id")
    answer: str = Field(max_length=20)
    eta_minutes: int | None = None
    via: str = Field(default="line", max_length=10)  # "line" or "proxy" (代理入力)
    actor_label: str = Field(default="", max_length=100)
    at: datetime = created_field()


class LineOutbox(SQLModel, table=True):
    """One multicast (≤ 500 recipients) of a wave, queued in the transaction that decided it and
    sent by whichever sender claims it first; retried with the same retry key."""

    __tablename__ = "line_outbox"
    __table_args__ = (
        Index("ix_line_outbox_due", "status", "next_attempt_at"),
        UniqueConstraint("tenant_id", "callout_id", "chunk"),
    )

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    tenant_id: uuid.UUID = Field(foreign_key="tenant.id")
    callout_id: uuid.UUID = Field(foreign_key="callout.id")
    chunk: int = 0
    member_ids: str = Field(sa_column=Column(Text, nullable=False))  # JSON list of member ids
    retry_key: str = Field(max_length=36)
    status: str = Field(default=OutboxStatus.PENDING, max_length=10)
    attempts: int = 0
    next_attempt_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    claimed_until: datetime | None = optional_time_field()
    request_id: str = Field(default="", max_length=64)
    last_status: int | None = None
    error: str = Field(default="", max_length=60)
    created_at: datetime = created_field()
    sent_at: datetime | None = optional_time_field()


class LineWebhookEvent(SQLModel, table=True):
    """A LINE webhook event, kept from the moment its signature was verified until handled:
    the webhookEventId makes a redelivered event a no-op. The event (user id, reply token) is
    sealed with a platform key, since no brigade is known when it arrives; emptied once done."""

    __tablename__ = "line_webhook_event"
    __table_args__ = (Index("ix_line_webhook_event_pending", "status", "received_at"),)

    event_id: str = Field(primary_key=True, max_length=64)
    received_at: datetime = created_field()
    status: str = Field(default="pending", max_length=10)  # pending, done
    event_enc: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    handled_at: datetime | None = optional_time_field()
