"""Dispatch test helpers: a mail source with a plain 【】 layout profile, and dispatch mails in
that layout, encoded as a 消防本部's system would send them (ISO-2022-JP by default)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from email.header import Header
from email.utils import format_datetime, make_msgid

from services.dispatch import intake, sources
from services.dispatch.sources import SourceInput, SourceView
from tests.factories import admin

SENDER = "shirei@fd.example.lg.jp"
PROFILE = {
    "name": "テスト用【】形式",
    "patterns": {
        "kind": r"【災害種別】\s*(?P<value>.+)",
        "place": r"【発生場所】\s*(?P<value>.+)",
        "landmark": r"【目標物】\s*(?P<value>.+)",
        "time": r"【覚知時刻】\s*(?P<value>.+)",
        "units": r"【出動隊】\s*(?P<value>.+)",
        "reference": r"【事案番号】\s*(?P<value>\S+)",
        "map_url": r"(?P<value>https?://\S+)",
    },
    "followup_words": {
        "dispatch": ["出動指令"],
        "request": ["出動要請"],
        "suppressed": ["鎮圧"],
        "extinguished": ["鎮火"],
        "false_alarm": ["誤報"],
        "cancelled": ["取消"],
        "map": ["災害地図"],
    },
    "vocabulary": {"本町団1": "第1分団", "第1分団": "第1分団", "第2分団": "第2分団"},
}


def make_source(tenant_id: uuid.UUID, **overrides: object) -> SourceView:
    values: dict[str, object] = {
        "name": f"テスト消防本部{uuid.uuid4().hex[:6]}",
        "senders": (SENDER,),
        "profile": PROFILE,
    }
    values.update(overrides)
    return sources.create_source(admin(tenant_id), SourceInput(**values))


def where(source: SourceView) -> intake.Route:
    found = intake.route(source.address)
    assert found is not None
    return found


def body(
    *,
    kind: str = "建物火災",
    place: str = "デモ市本町１丁目付近",
    landmark: str = "本町公民館",
    time: str = "令和８年１２月６日　１０時０５分",
    units: str = "本町団1、第2分団",
    reference: str = "2026-00123",
    extra: str = "",
) -> str:
    lines = [
        f"【災害種別】{kind}" if kind else "",
        f"【発生場所】{place}" if place else "",
        f"【目標物】{landmark}" if landmark else "",
        f"【覚知時刻】{time}" if time else "",
        f"【出動隊】{units}" if units else "",
        f"【事案番号】{reference}" if reference else "",
        extra,
    ]
    return "\n".join(line for line in lines if line) + "\n"


def mail(
    to: str,
    text: str,
    *,
    subject: str = "【出動指令】建物火災",
    sender: str = SENDER,
    message_id: str | None = None,
    charset: str = "iso-2022-jp",
    date: datetime | None = None,
) -> bytes:
    """A single-part mail with the exact bytes a sender would put on the wire."""
    encoded = text.replace("\n", "\r\n").encode(charset)
    transfer = "7bit" if charset == "iso-2022-jp" else "8bit"
    headers = [
        f"From: {sender}",
        f"To: {to}",
        f"Subject: {Header(subject, charset).encode()}",
        f"Date: {format_datetime(date or datetime.now(UTC))}",
        f"Message-ID: {message_id or make_msgid(domain='fd.example.lg.jp')}",
        "MIME-Version: 1.0",
        f"Content-Type: text/plain; charset={charset}",
        f"Content-Transfer-Encoding: {transfer}",
    ]
    return ("\r\n".join(headers) + "\r\n\r\n").encode("ascii") + encoded
