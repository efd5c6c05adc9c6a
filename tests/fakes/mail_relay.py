"""A local mail relay for the operator's notices by mail: the real SMTP receiver
(integrations/mail.py) on a loopback port, keeping what it is handed, with the HIKESHI_MAIL_*
settings pointing at it while it runs."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest

import config
from integrations.mail import Envelope, SmtpReceiver, free_loopback_port


class Relay:
    def __init__(self) -> None:
        self.mails: list[tuple[Envelope, bytes]] = []
        self.refuse: set[str] = set()

    def sink(self, envelope: Envelope, raw: bytes) -> None:
        self.mails.append((envelope, raw))

    def accept(self, address: str) -> bool:
        return address not in self.refuse

    def recipients(self) -> list[str]:
        return sorted(rcpt for envelope, _ in self.mails for rcpt in envelope.rcpt_tos)


@contextmanager
def local_relay(monkeypatch: pytest.MonkeyPatch) -> Iterator[Relay]:
    relay = Relay()
    receiver = SmtpReceiver(
        relay.sink, port=free_loopback_port(), max_bytes=100_000, accept_rcpt=relay.accept
    )
    receiver.start()
    monkeypatch.setenv("HIKESHI_MAIL_RELAY_HOST", receiver.host)
    monkeypatch.setenv("HIKESHI_MAIL_RELAY_PORT", str(receiver.port))
    monkeypatch.setenv("HIKESHI_MAIL_RELAY_STARTTLS", "false")  # the local receiver has no TLS
    monkeypatch.setenv("HIKESHI_MAIL_FROM", "ops@hikeshi.example.jp")
    config.get_settings.cache_clear()
    try:
        yield relay
    finally:
        receiver.stop(grace_seconds=1)
        monkeypatch.undo()  # before the cache is cleared: the next settings have no relay
        config.get_settings.cache_clear()
