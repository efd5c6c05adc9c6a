"""The mail transport over real loopback sockets: the SMTP receiver with smtplib as the sender,
the IMAP poller against tests/fakes/imap_server.py, and DKIM with a key made here."""

from __future__ import annotations

import base64
import imaplib
import smtplib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from integrations import mail
from integrations.http import ExternalCall
from integrations.mail import (
    DkimResult,
    Envelope,
    ImapPoller,
    MailSink,
    SinkFailed,
    SmtpReceiver,
    free_loopback_port,
    send_mail,
    verify_dkim,
)
from tests.fakes.dkim_key import SigningKey
from tests.fakes.imap_server import FakeImap

WAIT = 5  # seconds: the bound on every wait below; a passing test never comes near it
SENDER = "alarm@city.example.jp"
BRIGADE = "dispatch@brigade.example.jp"


def iso2022jp_mail() -> bytes:
    subject = base64.b64encode("出動指令".encode("iso-2022-jp"))
    return (
        b"From: " + SENDER.encode() + b"\r\nTo: " + BRIGADE.encode() + b"\r\n"
        b"Subject: =?ISO-2022-JP?B?" + subject + b"?=\r\n"
        b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=ISO-2022-JP\r\n"
        b"Content-Transfer-Encoding: 7bit\r\n\r\n"
        + "建物火災 東町一丁目2番3号\r\n".encode("iso-2022-jp")
        + b".a line that SMTP dot-stuffs\r\n"
    )


def eight_bit_mail() -> bytes:
    return (
        b"From: " + SENDER.encode() + b"\r\nTo: " + BRIGADE.encode() + b"\r\n"
        b"Subject: 8bit\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\n"
        b"Content-Transfer-Encoding: 8bit\r\n\r\n" + "救急 西町 ① ～ 〒\r\n..\r\n.\r\n".encode()
    )


# --- SMTP -----------------------------------------------------------------------------------


@pytest.fixture
def receiver() -> Iterator[Callable[..., SmtpReceiver]]:
    started: list[SmtpReceiver] = []

    def start(sink: MailSink, *, max_bytes: int = 100_000, **options: object) -> SmtpReceiver:
        smtp = SmtpReceiver(sink, port=free_loopback_port(), max_bytes=max_bytes, **options)
        smtp.start()
        started.append(smtp)
        return smtp

    yield start
    for smtp in started:
        smtp.stop(grace_seconds=1)


def collecting() -> tuple[list[tuple[Envelope, bytes]], MailSink]:
    got: list[tuple[Envelope, bytes]] = []

    def sink(envelope: Envelope, raw: bytes) -> None:
        got.append((envelope, raw))

    return got, sink


def send(smtp: SmtpReceiver, raw: bytes, rcpt_tos: tuple[str, ...] = (BRIGADE,)) -> None:
    send_mail(
        raw, host=smtp.host, port=smtp.port, mail_from=SENDER, rcpt_tos=rcpt_tos, timeout=WAIT
    )


@pytest.mark.parametrize("raw", [iso2022jp_mail(), eight_bit_mail()], ids=["iso-2022-jp", "8bit"])
def test_the_sink_gets_the_exact_bytes_and_the_envelope(receiver, raw: bytes) -> None:
    got, sink = collecting()
    smtp = receiver(sink)
    send(smtp, raw)
    assert got == [(Envelope(mail_from=SENDER, rcpt_tos=(BRIGADE,), peer="127.0.0.1"), raw)]


def test_send_mail_puts_bare_line_feeds_on_the_wire_as_crlf(receiver) -> None:
    got, sink = collecting()
    send(receiver(sink), b"Subject: lf\n\nline one\nline two\n")
    assert got[0][1] == b"Subject: lf\r\n\r\nline one\r\nline two\r\n"


def test_a_signed_mail_still_verifies_after_the_trip(receiver, signing_key) -> None:
    got, sink = collecting()
    signed = sign(eight_bit_mail(), signing_key)
    send(receiver(sink), signed)
    assert verify_dkim(got[0][1], dnsfunc=signing_key.lookup).status == "pass"


def test_the_sink_runs_off_the_event_loop(receiver) -> None:
    entered, release = threading.Event(), threading.Event()
    threads: list[str] = []

    def slow_sink(envelope: Envelope, raw: bytes) -> None:
        threads.append(threading.current_thread().name)
        entered.set()
        assert release.wait(WAIT)

    smtp = receiver(slow_sink)
    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(send, smtp, iso2022jp_mail())
        try:
            assert entered.wait(WAIT)
            # While the sink holds the first mail, the loop still greets a second sender.
            with socket.create_connection((smtp.host, smtp.port), timeout=2) as second:
                assert second.recv(512).startswith(b"220 ")
        finally:
            release.set()
        first.result(timeout=WAIT)
    assert threads[0].startswith("smtp-sink")


def test_a_sink_that_raises_gets_451_so_the_sender_retries(receiver) -> None:
    def broken(envelope: Envelope, raw: bytes) -> None:
        raise RuntimeError("database unavailable")

    smtp = receiver(broken)
    with pytest.raises(smtplib.SMTPDataError) as refused:
        send(smtp, iso2022jp_mail())
    assert refused.value.smtp_code == 451
    assert b"database" not in refused.value.smtp_error


def test_a_reason_from_the_sink_refuses_with_550_in_ascii(receiver) -> None:
    smtp = receiver(lambda envelope, raw: "sender not allowed 送信者が許可されていません")
    with pytest.raises(smtplib.SMTPDataError) as refused:
        send(smtp, iso2022jp_mail())
    assert refused.value.smtp_code == 550
    assert refused.value.smtp_error == b"5.7.1 sender not allowed"


def test_mail_over_max_bytes_is_refused_with_552_whether_announced_or_not(receiver) -> None:
    got, sink = collecting()
    smtp = receiver(sink, max_bytes=2000)
    big = iso2022jp_mail() + (b"x" * 70 + b"\r\n") * 50
    with pytest.raises(smtplib.SMTPResponseException) as announced:  # MAIL FROM ... SIZE=
        send(smtp, big)
    assert announced.value.smtp_code == 552
    with smtplib.SMTP(smtp.host, smtp.port, timeout=WAIT) as client:  # no SIZE: caught in DATA
        client.ehlo()
        assert client.mail(SENDER)[0] == 250
        assert client.rcpt(BRIGADE)[0] == 250
        assert client.data(big)[0] == 552
    assert got == []


def test_unknown_recipients_are_refused_with_550(receiver) -> None:
    got, sink = collecting()
    smtp = receiver(sink, accept_rcpt=lambda address: address == BRIGADE)
    with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        send(smtp, iso2022jp_mail(), rcpt_tos=("nobody@brigade.example.jp",))
    assert refused.value.recipients["nobody@brigade.example.jp"][0] == 550
    assert got == []
    with pytest.raises(smtplib.SMTPRecipientsRefused):  # partly refused: still an error
        send(smtp, iso2022jp_mail(), rcpt_tos=("nobody@brigade.example.jp", BRIGADE))
    assert [envelope.rcpt_tos for envelope, _ in got] == [(BRIGADE,)]


def test_stop_lets_a_mail_being_stored_finish_and_answer_250(receiver) -> None:
    entered, release = threading.Event(), threading.Event()
    got: list[bytes] = []

    def slow_sink(envelope: Envelope, raw: bytes) -> None:
        entered.set()
        assert release.wait(WAIT)
        got.append(raw)

    smtp = receiver(slow_sink)
    with ThreadPoolExecutor(2) as pool:
        sending = pool.submit(send, smtp, iso2022jp_mail())
        assert entered.wait(WAIT)
        stopping = pool.submit(smtp.stop, grace_seconds=WAIT)
        time.sleep(0.2)  # stop() is now waiting for the sink
        assert not stopping.done()
        release.set()
        sending.result(timeout=WAIT)  # no exception: the sender got its 250
        stopping.result(timeout=WAIT)
    assert got == [iso2022jp_mail()]
    with pytest.raises(OSError):
        socket.create_connection((smtp.host, smtp.port), timeout=1).close()


# --- IMAP -----------------------------------------------------------------------------------


@pytest.fixture
def fake() -> Iterator[FakeImap]:
    with FakeImap() as server:
        yield server


def poller_for(fake: FakeImap, calls: list[ExternalCall], **options: str) -> ImapPoller:
    settings = {"username": fake.username, "password": fake.password} | options
    return ImapPoller(
        host=fake.host, port=fake.port, ssl=False, timeout=WAIT, record=calls.append, **settings
    )


def wait_until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def test_poll_fetches_hands_over_then_marks_seen(fake: FakeImap) -> None:
    uids = [fake.deliver(iso2022jp_mail()), fake.deliver(eight_bit_mail())]
    calls: list[ExternalCall] = []
    seen_when_handed_over: list[bool] = []
    got: list[bytes] = []

    def sink(raw: bytes) -> None:
        seen_when_handed_over.append(fake.is_seen(uids[len(got)]))
        got.append(raw)

    with poller_for(fake, calls) as poller:
        assert poller.poll_once(sink) == 2
        assert poller.poll_once(sink) == 0
    assert got == [iso2022jp_mail(), eight_bit_mail()]
    assert seen_when_handed_over == [False, False]
    assert all(fake.is_seen(uid) for uid in uids)
    fetch_store = [c for c in fake.commands if c in ("UID FETCH", "UID STORE")]
    assert fetch_store == ["UID FETCH", "UID STORE"] * 2
    assert [(c.service, c.method, c.error) for c in calls] == [
        ("imap", "LOGIN", ""),
        ("imap", "FETCH", ""),
        ("imap", "FETCH", ""),
    ]
    assert calls[0].endpoint == f"imap://127.0.0.1:{fake.port}/INBOX"


def test_a_sink_failure_leaves_that_mail_unseen_for_the_next_poll(fake: FakeImap) -> None:
    poison, fine = fake.deliver(iso2022jp_mail()), fake.deliver(eight_bit_mail())
    got: list[bytes] = []

    def failing_on_first(raw: bytes) -> None:
        if raw == iso2022jp_mail():
            raise RuntimeError("database unavailable")
        got.append(raw)

    with poller_for(fake, []) as poller:
        with pytest.raises(SinkFailed) as failed:
            poller.poll_once(failing_on_first)
        assert failed.value.delivered == 1
        assert not fake.is_seen(poison)
        assert fake.is_seen(fine)
        assert poller.poll_once(got.append) == 1
    assert got == [eight_bit_mail(), iso2022jp_mail()]
    assert fake.is_seen(poison)


def test_a_dropped_connection_is_reopened_at_the_next_poll(fake: FakeImap) -> None:
    calls: list[ExternalCall] = []
    got: list[bytes] = []
    with poller_for(fake, calls) as poller:
        assert poller.poll_once(got.append) == 0
        uid = fake.deliver(iso2022jp_mail())
        fake.drop_after(1)  # SEARCH is answered, the FETCH is not
        with pytest.raises((OSError, imaplib.IMAP4.error)):
            poller.poll_once(got.append)
        assert got == []
        assert not fake.is_seen(uid)
        assert poller.poll_once(got.append) == 1
    assert got == [iso2022jp_mail()]
    assert fake.logins == 2
    assert [c.method for c in calls if c.error] == ["FETCH"]


def test_a_wrong_password_is_recorded_without_the_password(fake: FakeImap) -> None:
    calls: list[ExternalCall] = []
    poller = poller_for(fake, calls, password="wrong-horse")
    with pytest.raises(imaplib.IMAP4.error):
        poller.poll_once(lambda raw: None)
    assert [(c.method, c.error) for c in calls] == [("LOGIN", "LoginError")]
    assert "wrong-horse" not in repr(calls)
    assert fake.username not in repr(calls)


@pytest.fixture
def running() -> Iterator[Callable[..., threading.Event]]:
    """Starts ImapPoller.run in a thread; the test sets the event or the fixture does."""
    threads: list[tuple[threading.Thread, threading.Event]] = []

    def start(poller: ImapPoller, sink: Callable[[bytes], None], **options: object):
        stop = threading.Event()
        thread = threading.Thread(target=poller.run, args=(sink,), kwargs={"stop": stop, **options})
        thread.start()
        threads.append((thread, stop))
        return stop

    yield start
    for thread, stop in threads:
        stop.set()
        thread.join(WAIT)
        assert not thread.is_alive(), "run() did not stop"


def test_idle_wakes_the_poller_on_new_mail(fake: FakeImap, running) -> None:
    arrived = threading.Event()
    got: list[bytes] = []

    def sink(raw: bytes) -> None:
        got.append(raw)
        arrived.set()

    stop = running(poller_for(fake, []), sink, idle_seconds=60)
    wait_until(lambda: "IDLE" in fake.commands)
    fake.deliver(iso2022jp_mail())
    assert arrived.wait(WAIT)  # far sooner than idle_seconds: IDLE told the poller
    assert got == [iso2022jp_mail()]
    stop.set()
    wait_until(lambda: "LOGOUT" in fake.commands)


def test_run_reconnects_after_the_server_drops_an_idling_connection(
    fake: FakeImap, running
) -> None:
    arrived = threading.Event()
    running(
        poller_for(fake, []),
        lambda raw: arrived.set(),
        idle_seconds=60,
        reconnect_backoff=(0.05,),
    )
    wait_until(lambda: "IDLE" in fake.commands)
    fake.drop_all()
    fake.deliver(iso2022jp_mail())
    assert arrived.wait(WAIT)
    assert fake.logins == 2
    assert len(fake.commands) < 30  # an unnoticed EOF would spin through IDLE rounds


def test_a_server_announcing_mail_at_every_idle_does_not_cause_a_busy_loop(
    running, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The EXISTS comes with the IDLE continuation, so this also shows that an announcement
    sitting in imaplib's read buffer is heard at once."""
    monkeypatch.setattr(mail, "IDLE_FALSE_ALARM_PAUSE_SECONDS", 0.2)
    with FakeImap(idle_restates_exists=True) as fake:
        started = time.monotonic()
        running(poller_for(fake, []), lambda raw: None, idle_seconds=60)
        wait_until(lambda: fake.commands.count("IDLE") >= 3)
        assert time.monotonic() - started >= 2 * 0.2


def test_without_idle_the_poller_sleeps_between_polls(running) -> None:
    with FakeImap(idle=False) as fake:
        arrived = threading.Event()
        running(poller_for(fake, []), lambda raw: arrived.set(), idle_seconds=0.2)
        wait_until(lambda: "UID SEARCH" in fake.commands)
        fake.deliver(iso2022jp_mail())
        assert arrived.wait(WAIT)
        assert "IDLE" not in fake.commands
        assert fake.commands.count("UID SEARCH") <= 8


def test_run_backs_off_between_failed_logins(fake: FakeImap, running) -> None:
    calls: list[ExternalCall] = []
    started = time.monotonic()
    running(
        poller_for(fake, calls, password="wrong"),
        lambda raw: None,
        reconnect_backoff=(0.05, 0.1, 0.2),
    )
    wait_until(lambda: fake.commands.count("LOGIN") >= 4)
    assert time.monotonic() - started >= 0.05 + 0.1 + 0.2
    assert {(c.method, c.error) for c in calls} == {("LOGIN", "LoginError")}


# --- DKIM -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def signing_key() -> SigningKey:
    return SigningKey()


def sign(raw: bytes, key: SigningKey) -> bytes:
    return key.sign(raw)


def test_dkim_passes_a_signed_mail(signing_key: SigningKey) -> None:
    result = verify_dkim(sign(iso2022jp_mail(), signing_key), dnsfunc=signing_key.lookup)
    assert (result.status, result.domain) == ("pass", "city.example.jp")
    assert signing_key.asked[-1] == b"sel._domainkey.city.example.jp."


def test_dkim_fails_an_altered_body(signing_key: SigningKey) -> None:
    altered = sign(iso2022jp_mail(), signing_key).replace(b"dot-stuffs", b"dot-stuffed")
    result = verify_dkim(altered, dnsfunc=signing_key.lookup)
    assert (result.status, result.domain) == ("fail", "city.example.jp")
    assert "body hash mismatch" in result.detail


def test_dkim_fails_when_the_key_is_not_published(signing_key: SigningKey) -> None:
    result = verify_dkim(sign(iso2022jp_mail(), signing_key), dnsfunc=lambda name: None)
    assert result.status == "fail"
    assert "missing public key" in result.detail


def test_dkim_fails_rather_than_raises_when_the_lookup_blows_up(signing_key: SigningKey) -> None:
    def broken_lookup(name: bytes) -> bytes | None:
        raise ValueError("label too long")

    result = verify_dkim(sign(iso2022jp_mail(), signing_key), dnsfunc=broken_lookup)
    assert (result.status, result.domain) == ("fail", "city.example.jp")
    assert "ValueError: label too long" in result.detail


def test_dkim_none_for_an_unsigned_mail() -> None:
    assert verify_dkim(iso2022jp_mail(), dnsfunc=lambda name: None) == DkimResult(
        "none", None, "no DKIM-Signature header"
    )
