"""The self-test's first step (自己診断: 受信メールの解析, services.dispatch.selftest): can each
active mail source's profile still read a dispatch mail, with the intake's own decoder and
parser?

The mail is the example 消防本部's sample (as `cli.py send-test-mail` sends it) for a profile
named after an example; a brigade's own profile has no sample, so the newest mail of that source
the intake read completely, and still holds raw, is read again (a profile edited since must
still read it). Nothing is stored; the mail is unsealed only in memory, as the intake does.

A brigade without any mail source skips the step: a brigade that enters its incidents by hand
would otherwise be warned every day, learn to ignore the warning, or switch the self-test off
and lose its LINE check. Sources that exist but are all stopped fail it: mail is refused."""

from __future__ import annotations

import json
from datetime import datetime
from enum import StrEnum

from sqlmodel import select

from config import get_settings
from formats.dispatch_mail import decode_mail
from formats.dispatch_profile import (
    EXAMPLE_PROFILES,
    FollowUp,
    parse_dispatch,
    sample_dispatch_mail,
)
from models.dispatch import InboundMail, MailSource, MailStatus
from services.base import Tx, scoped
from services.dispatch.intake import RAW_FIELD, ParseStatus
from services.dispatch.sources import source_profile, source_senders

NO_SOURCE = "受信設定がありません（出動メールを使わない団では確認しません）。"
ALL_STOPPED = "受信設定がすべて停止中のため、出動メールを受け付けません。"
NOTHING_TO_READ = (
    "確かめられるメールがありません（独自の解析ルールは、受信して読めたメールで確かめます）。"
)
SAMPLE, LAST_READ = "見本メール", "前回読めたメール"


class Outcome(StrEnum):
    """What one step of a self-test came to."""

    PASSED = "passed"
    FAILED = "failed"
    SKIPPED = "skipped"


def check_sources(tx: Tx, now: datetime) -> tuple[Outcome, str]:
    """The outcome and, unless it passed, why (Japanese, naming each failing source)."""
    rows = tx.session.exec(scoped(select(MailSource), tx.actor).order_by(MailSource.name)).all()
    if not rows:
        return Outcome.SKIPPED, NO_SOURCE
    active = [row for row in rows if row.active]
    if not active:
        return Outcome.FAILED, ALL_STOPPED
    problems, read = [], 0
    for source in active:
        found = mail_to_read(tx, source, now)
        if found is None:
            continue
        read += 1
        if problem := read_problem(source, *found):
            problems.append(f"「{source.name}」: {problem}")
    if problems:
        return Outcome.FAILED, " ".join(problems)
    return (Outcome.PASSED, "") if read else (Outcome.SKIPPED, NOTHING_TO_READ)


def mail_to_read(tx: Tx, source: MailSource, now: datetime) -> tuple[bytes, str] | None:
    """A mail the source's profile must read, and what to call it; None if there is none."""
    name = json.loads(source.profile).get("name", "")
    if name in EXAMPLE_PROFILES:
        sender = next(iter(source_senders(source)), "@example.jp")
        sender = f"shirei{sender}" if sender.startswith("@") else sender
        to = f"dispatch@{get_settings().mail_domain}"
        return sample_dispatch_mail(to=to, sender=sender, now=now, profile=name), SAMPLE
    query = (
        scoped(select(InboundMail), tx.actor)
        .where(
            InboundMail.source_id == source.id,
            InboundMail.status == MailStatus.ACCEPTED,
            InboundMail.parse_status == ParseStatus.OK,
            InboundMail.raw_enc.is_not(None),
        )
        .order_by(InboundMail.received_at.desc())
    )
    mail = tx.session.exec(query).first()
    if mail is None:
        return None
    raw = tx.cipher.decrypt(mail.raw_enc, field=RAW_FIELD, row_id=mail.id).encode("latin-1")
    return raw, LAST_READ


def read_problem(source: MailSource, raw: bytes, what: str) -> str:
    """What goes wrong when the intake reads `raw` with the source's profile ("" if nothing)."""
    try:
        profile = source_profile(source)
    except ValueError:
        return "解析ルールを読み取れません。"
    decoded = decode_mail(raw, charset_override=source.charset_override or None)
    try:
        parsed = parse_dispatch(decoded, profile)
    except Exception:  # the intake keeps such a mail as 解析失敗; here it is the finding
        return f"{what}の解析が途中で止まります。"
    if what == SAMPLE and parsed.followup != FollowUp.DISPATCH:
        return f"{what}を出動指令として読めません。"
    if parsed.needs_review:
        return f"{what}から{'・'.join(parsed.missing)}を読み取れません。"
    return ""
