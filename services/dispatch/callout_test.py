"""Test call-outs (テスト, #21): 管理 sends an incident marked as a test to chosen members
(by default oneself); its buttons and tally work as in a real one, and others' presses are
refused (they are not its targets)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlmodel import select

from core.actor import Actor
from formats import line_callout
from models import Member
from models.base import utcnow
from models.callout import CalloutKind, CalloutTarget
from models.enums import MemberStatus
from services.base import scoped, transaction
from services.dispatch import incidents
from services.dispatch.callout import (
    ADMIN,
    content_of,
    messaging_enabled,
    queue_wave,
    reachable_ids,
)
from services.errors import ValidationError

TEST_KIND = "【テスト】出動連絡の試験"
MAX_TEST_RECIPIENTS = 50


@dataclass(frozen=True)
class Recipient:
    member_id: uuid.UUID
    member_code: str
    name: str
    reachable: bool


def test_recipients(actor: Actor) -> list[Recipient]:
    """Active members who could get a test call-out, for 管理 to choose from."""
    with transaction(actor, ADMIN, action="callout.test_recipients", read_only=True) as tx:
        reachable = reachable_ids(tx)
        rows = tx.session.exec(
            scoped(select(Member), tx.actor)
            .where(Member.status == MemberStatus.ACTIVE)
            .order_by(Member.member_code)
        ).all()
        return [
            Recipient(
                m.id,
                m.member_code,
                tx.cipher.member_name(m),
                m.id in reachable,
            )
            for m in rows
        ]


def send_test(actor: Actor, member_ids: tuple[uuid.UUID, ...]) -> uuid.UUID:
    """A test call-out (テスト): an incident marked as a test, called out to the chosen members
    only, whose buttons and tally work as in a real one. Returns the test incident's id."""
    with transaction(actor, ADMIN, action="callout.test") as tx:
        chosen = list(dict.fromkeys(member_ids))
        if not 0 < len(chosen) <= MAX_TEST_RECIPIENTS:
            raise ValidationError({"送信先": f"送信先を1〜{MAX_TEST_RECIPIENTS}名選んでください。"})
        active = tx.session.exec(
            scoped(select(Member.id), tx.actor).where(
                Member.id.in_(chosen), Member.status == MemberStatus.ACTIVE
            )
        ).all()
        if len(active) != len(chosen):
            raise ValidationError({"送信先": "在籍中の団員を選んでください。"})
        row = incidents.new_incident(
            tx,
            kind=TEST_KIND,
            place="",
            landmark="",
            units=(),
            reference="",
            occurred_at=utcnow(),
            subject="",
        )
        row.test = True
        incidents.add_entry(tx, row, "created", "テスト送信として登録しました。")
        reach = reachable_ids(tx, chosen)
        reachable = [m for m in chosen if m in reach]
        message = line_callout.callout_message(content_of(tx, row))
        wave = queue_wave(tx, row, CalloutKind.TEST, reachable, [message])
        for member_id in chosen:
            tx.session.add(
                CalloutTarget(
                    tenant_id=tx.tenant_id,
                    incident_id=row.id,
                    member_id=member_id,
                    callout_id=wave.id,
                    unit="テスト",
                    notified=messaging_enabled() and member_id in reachable,
                )
            )
        tx.audit(
            "callout.test",
            target_type="incident",
            target_id=row.id,
            details={
                "number": row.number,
                "targets": len(chosen),
                "messaged": len(reachable) if messaging_enabled() else 0,
            },
        )
        tx.commit()
        return row.id
