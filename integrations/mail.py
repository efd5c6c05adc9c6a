"""Mail transport for the dispatch intake: an SMTP receiver, an IMAP poller, DKIM verification
and a plain SMTP sender; and the relay client that sends the operator's notices (SmtpRelay). Raw bytes in, raw bytes out: reading a mail is formats/'s job, storing
and judging it is the intake service's.

Both receiving paths hand over a mail only to store it first: SMTP answers 250 after the sink
returned (451 when it raised, so the sender retries) and IMAP marks a mail \\Seen only after the
sink returned, so a failure on our side never loses a dispatch mail.
"""

from __future__ import annotations

import asyncio
import imaplib
import logging
import re
import smtplib
import socket
import ssl as ssl_lib
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any, Literal, TypeVar

import dkim
import dkim.dnsplug
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP
from aiosmtpd.smtp import Envelope as SmtpEnvelope
from aiosmtpd.smtp import Session as SmtpSession
from imapclient import SEEN, IMAPClient

from integrations.http import ExternalCall, Recorder

log = logging.getLogger(__name__)

T = TypeVar("T")


# --- SMTP receiving -------------------------------------------------------------------------


@dataclass(frozen=True)
class Envelope:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    peer: str  # the sending host's IP address


# Called in a worker thread with the exact bytes received. Returns None to accept (250), or a
# reason to refuse the mail for good (550); raising makes the sender retry later (451).
MailSink = Callable[[Envelope, bytes], str | None]

SINK_THREADS = 4
STOP_GRACE_SECONDS = 30.0
REPLY_TEXT = re.compile(r"[^\x20-\x7e]")


def free_loopback_port() -> int:
    """A TCP port on 127.0.0.1 that is free now (aiosmtpd 1.4 cannot bind port 0 itself)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SmtpReceiver:
    """An SMTP server (aiosmtpd, its own event loop in a thread) that hands each mail to `sink`.

    The sink and `accept_rcpt` run in a small thread pool, never on the event loop: a slow
    database write holds up its own sender only, while other senders are still greeted and
    served. Mails over `max_bytes` are refused with 552 before the sink sees them.
    """

    def __init__(
        self,
        sink: MailSink,
        *,
        host: str = "127.0.0.1",
        port: int,
        max_bytes: int,
        accept_rcpt: Callable[[str], bool] | None = None,
        hostname: str | None = None,
    ) -> None:
        if max_bytes <= 0:  # aiosmtpd reads 0 as "no limit"
            raise ValueError("max_bytes must be positive")
        self.host, self.port, self.max_bytes = host, port, max_bytes
        self.hostname = hostname or socket.gethostname()  # getfqdn() may wait on DNS
        self._handler = _SmtpHandler(sink, accept_rcpt)
        self._controller: Controller | None = None

    def start(self) -> None:
        if self._controller is not None:
            raise RuntimeError("SmtpReceiver already started")
        self._handler.executor = ThreadPoolExecutor(SINK_THREADS, thread_name_prefix="smtp-sink")
        self._controller = Controller(
            self._handler,
            hostname=self.host,
            port=self.port,
            server_hostname=self.hostname,
            data_size_limit=self.max_bytes,
        )
        try:
            self._controller.start()
        except BaseException:
            self._controller = None
            self._handler.executor.shutdown(wait=False)
            raise

    def stop(self, *, grace_seconds: float = STOP_GRACE_SECONDS) -> None:
        """Stop taking connections, let mails being stored finish (up to grace_seconds) so their
        senders still get their 250, then stop. A sink still running after that is abandoned:
        its sender gets no answer and retries."""
        controller, self._controller = self._controller, None
        if controller is None:
            return
        drained = asyncio.run_coroutine_threadsafe(
            self._handler.drain(controller, grace_seconds), controller.loop
        )
        drained.result(timeout=grace_seconds + 5)
        controller.stop()
        self._handler.executor.shutdown(wait=False, cancel_futures=True)

    def __enter__(self) -> SmtpReceiver:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _SmtpHandler:
    """aiosmtpd's handler hooks (it finds them by their handle_ names)."""

    executor: ThreadPoolExecutor

    def __init__(self, sink: MailSink, accept_rcpt: Callable[[str], bool] | None) -> None:
        self.sink, self.accept_rcpt = sink, accept_rcpt
        self.in_flight = 0  # handle_DATA calls under way; only touched on the event loop

    async def handle_RCPT(
        self,
        server: SMTP,
        session: SmtpSession,
        envelope: SmtpEnvelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if self.accept_rcpt is not None:
            try:
                accepted = await self._in_thread(self.accept_rcpt, address)
            except Exception:
                log.exception("accept_rcpt failed; answered 451")
                return "451 4.3.0 Temporary failure, please try again later"
            if not accepted:
                return "550 5.1.1 Recipient address rejected"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: SmtpSession, envelope: SmtpEnvelope) -> str:
        mail = Envelope(
            mail_from=envelope.mail_from or "",
            rcpt_tos=tuple(envelope.rcpt_tos),
            peer=str(session.peer[0]) if session.peer else "",
        )
        self.in_flight += 1
        try:
            reason = await self._in_thread(self.sink, mail, envelope.original_content or b"")
        except Exception:
            log.exception("mail sink failed; answered 451 so the sender retries")
            return "451 4.3.0 Temporary failure, please try again later"
        finally:
            self.in_flight -= 1
        if reason is None:
            return "250 2.0.0 OK"
        # Reply text is ASCII (RFC 5321 4.2); anything else in the reason is dropped.
        text = REPLY_TEXT.sub("", reason).strip()[:200]
        return f"550 5.7.1 {text or 'Message refused'}"

    async def _in_thread(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    async def drain(self, controller: Controller, grace_seconds: float) -> None:
        assert controller.server is not None
        controller.server.close()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace_seconds
        # A finished handle_DATA has written its reply before this coroutine runs again.
        while self.in_flight and loop.time() < deadline:
            await asyncio.sleep(0.05)


# --- SMTP sending ---------------------------------------------------------------------------


def send_mail(
    raw: bytes,
    *,
    host: str,
    port: int,
    mail_from: str,
    rcpt_tos: Sequence[str],
    timeout: float = 10,
) -> None:
    """Send a raw mail over plain SMTP (no TLS, no AUTH): for `cli send-test-mail` and the bench,
    talking to our own receiver. Line ends are sent as CRLF, as SMTP requires; otherwise the
    bytes go as they are. Raises smtplib's errors, also when only some recipients were refused."""
    wire = re.sub(rb"\r\n|\r|\n", b"\r\n", raw)
    with smtplib.SMTP(host, port, local_hostname=socket.gethostname(), timeout=timeout) as smtp:
        smtp.ehlo_or_helo_if_needed()
        options = ["BODY=8BITMIME"] if not wire.isascii() and smtp.has_extn("8bitmime") else []
        refused = smtp.sendmail(mail_from, list(rcpt_tos), wire, mail_options=options)
    if refused:
        raise smtplib.SMTPRecipientsRefused(refused)


SMTP_SERVICE = "smtp"
# What a relay that fails or refuses raises: socket and TLS errors, smtplib's errors.
SMTP_ERRORS = (OSError, smtplib.SMTPException)


class SmtpRelay:
    """Hands mails to the operator's relay over one connection: STARTTLS when asked (refusing
    a relay that does not offer it), a login when a username is given. `record` gets one
    ExternalCall per mail (method SEND, the relay's reply code), never an address or a body.
    After a connection failure the mails left fail at once, each recorded, instead of each
    waiting for its own timeout."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        starttls: bool,
        username: str = "",
        password: str = "",
        timeout: float = 30,
        ssl_context: ssl_lib.SSLContext | None = None,
        record: Recorder | None = None,
    ) -> None:
        self.host, self.port, self.starttls, self.timeout = host, port, starttls, timeout
        self.username, self._password = username, password
        self.ssl_context, self.record = ssl_context, record
        self.endpoint = f"smtp://{host}:{port}"
        self._smtp: smtplib.SMTP | None = None
        self._broken: str = ""

    def send(self, message: EmailMessage) -> bool:
        """Send one mail; True when the relay accepted it for every recipient."""
        started = time.perf_counter()
        if self._broken:
            self._record(started, None, self._broken)
            return False
        try:
            smtp = self._connection()
        except SMTP_ERRORS as exc:
            self._broken = type(exc).__name__
            self._record(started, getattr(exc, "smtp_code", None), self._broken)
            return False
        try:
            refused = smtp.send_message(message)
        except smtplib.SMTPResponseException as exc:
            self._record(started, exc.smtp_code, type(exc).__name__)
            return False
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            self._record(started, codes[0] if codes else None, type(exc).__name__)
            return False
        except SMTP_ERRORS as exc:  # the connection is gone: the next mail connects afresh
            self._drop()
            self._record(started, None, type(exc).__name__)
            return False
        if refused:
            self._record(started, None, "SMTPRecipientsRefused")
            return False
        self._record(started, 250, "")
        return True

    def close(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is not None:
            with suppress(*SMTP_ERRORS):
                smtp.quit()

    def __enter__(self) -> SmtpRelay:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _connection(self) -> smtplib.SMTP:
        if self._smtp is not None:
            return self._smtp
        smtp = smtplib.SMTP(
            self.host, self.port, local_hostname=socket.gethostname(), timeout=self.timeout
        )
        try:
            smtp.ehlo()
            if self.starttls:
                if not smtp.has_extn("starttls"):
                    raise smtplib.SMTPNotSupportedError("the relay does not offer STARTTLS")
                smtp.starttls(context=self.ssl_context or ssl_lib.create_default_context())
                smtp.ehlo()
            if self.username:
                smtp.login(self.username, self._password)
        except BaseException:
            with suppress(*SMTP_ERRORS):
                smtp.close()
            raise
        self._smtp = smtp
        return smtp

    def _drop(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is not None:
            with suppress(*SMTP_ERRORS):
                smtp.close()

    def _record(self, started: float, status: int | None, error: str) -> None:
        if self.record is None:
            return
        call = ExternalCall(
            service=SMTP_SERVICE,
            endpoint=self.endpoint,
            method="SEND",
            status=status,
            latency_ms=(time.perf_counter() - started) * 1000,
            error=error,
        )
        try:
            self.record(call)
        except Exception:  # a traffic log that cannot write must not stop the other mails
            log.exception("could not record SMTP SEND to %s", self.endpoint)


# --- IMAP polling ---------------------------------------------------------------------------

IMAP_SERVICE = "imap"
# What a lost or broken IMAP connection raises: socket and TLS errors, and imaplib's errors
# (its abort on EOF, NO/BAD answers, imapclient's protocol errors all derive from it).
CONNECTION_ERRORS = (OSError, imaplib.IMAP4.error)
# How often an idling poller looks at its stop event.
STOP_CHECK_SECONDS = 0.5
# The pause after IDLE ended early and the poll found no new mail.
IDLE_FALSE_ALARM_PAUSE_SECONDS = 1.0


class SinkFailed(Exception):
    """The sink raised for some mails; they stay unseen and are offered again at the next poll.
    The others in the same poll were handed over and marked seen."""

    def __init__(self, delivered: int, errors: list[Exception]) -> None:
        super().__init__(f"{len(errors)} mail(s) not accepted by the sink, {delivered} delivered")
        self.delivered, self.errors = delivered, errors


class ImapPoller:
    """Fetches unseen mail from one IMAP folder and hands each to a sink.

    Each mail is fetched with BODY.PEEK[] (exact bytes, the server's \\Seen flag untouched),
    handed to the sink, and only then marked \\Seen. A mail whose sink call raised stays unseen,
    so the next poll offers it again; the mails after it are still delivered.

    `record` gets one ExternalCall per connection (method LOGIN: connect, TLS, login, select),
    one per fetched mail (FETCH), and one for any other command that failed; never a body, a
    username or a password. Uneventful SEARCH/IDLE rounds are not recorded: they happen every
    minute for ever and say nothing.
    """

    def __init__(
        self,
        *,
        host: str,
        port: int,
        ssl: bool,
        username: str,
        password: str,
        folder: str = "INBOX",
        timeout: float = 30,
        ssl_context: ssl_lib.SSLContext | None = None,
        record: Recorder | None = None,
    ) -> None:
        self.host, self.port, self.ssl, self.folder, self.timeout = host, port, ssl, folder, timeout
        self.username, self._password = username, password
        self.ssl_context, self.record = ssl_context, record
        self.endpoint = f"{'imaps' if ssl else 'imap'}://{host}:{port}/{folder}"
        self._client: IMAPClient | None = None

    def poll_once(self, sink: Callable[[bytes], None]) -> int:
        """Connect if needed, hand every unseen mail to sink, mark each \\Seen after its sink call
        returned. Returns how many were delivered; raises SinkFailed after trying all of them
        when the sink raised for some, and the connection error when the connection failed."""
        delivered, errors, offered = 0, [], set()
        with self._connection() as client:
            # Search again after a round: mail that arrived meanwhile is fetched now, not after
            # the next IDLE (whose EXISTS for it may already have been swallowed).
            while uids := [
                u for u in self._call("SEARCH", client.search, ["UNSEEN"]) if u not in offered
            ]:
                for uid in uids:
                    offered.add(uid)
                    raw = self._fetch(client, uid)
                    if raw is None:  # expunged since the search
                        continue
                    try:
                        sink(raw)
                    except Exception as exc:
                        errors.append(exc)
                        continue
                    self._call("STORE", client.add_flags, [uid], [SEEN])
                    delivered += 1
        if errors:
            raise SinkFailed(delivered, errors) from errors[0]
        return delivered

    def run(
        self,
        sink: Callable[[bytes], None],
        *,
        stop: threading.Event,
        idle_seconds: float = 60,
        reconnect_backoff: tuple[float, ...] = (1, 2, 5, 15, 60),
    ) -> None:
        """Poll, then wait for new mail (IDLE when the server offers it, else sleep) for at most
        idle_seconds, until stop is set. Any failure (connection, sink) waits the next backoff
        step and tries again; a clean round resets the backoff. Logs out when stopped."""
        failures, woken = 0, False
        try:
            while not stop.is_set():
                try:
                    delivered = self.poll_once(sink)
                    if woken and not delivered:
                        # The server spoke up but there was no new mail: a server doing that at
                        # every IDLE must not drive a busy loop.
                        stop.wait(IDLE_FALSE_ALARM_PAUSE_SECONDS)
                    woken = self._wait_for_mail(stop, idle_seconds)
                    failures = 0
                except Exception as exc:  # the worker outlives any one failure
                    delay = reconnect_backoff[min(failures, len(reconnect_backoff) - 1)]
                    failures += 1
                    log.warning(
                        "IMAP poll of %s failed (%s); next try in %s s",
                        self.endpoint,
                        type(exc).__name__,
                        delay,
                        exc_info=not isinstance(exc, CONNECTION_ERRORS),
                    )
                    woken = False
                    stop.wait(delay)
        finally:
            self.close()

    def close(self) -> None:
        """Log out (or just close a connection that no longer answers)."""
        client, self._client = self._client, None
        if client is None:
            return
        try:
            client.logout()
        except CONNECTION_ERRORS:
            _shut(client)

    def __enter__(self) -> ImapPoller:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _connection(self) -> Iterator[IMAPClient]:
        """The logged-in client with the folder selected; dropped when a command on it failed,
        so the next use connects afresh."""
        if self._client is None:
            self._client = self._call("LOGIN", self._connect, recorded=True)
        try:
            yield self._client
        except Exception:  # a connection in an unknown state is not used again
            client, self._client = self._client, None
            if client is not None:
                _shut(client)
            raise

    def _connect(self) -> IMAPClient:
        client = IMAPClient(
            self.host,
            port=self.port,
            ssl=self.ssl,
            ssl_context=self.ssl_context,
            timeout=self.timeout,
        )
        try:
            client.login(self.username, self._password)
            client.select_folder(self.folder)
        except BaseException:
            _shut(client)
            raise
        return client

    def _fetch(self, client: IMAPClient, uid: int) -> bytes | None:
        response = self._call("FETCH", client.fetch, [uid], ["BODY.PEEK[]"], recorded=True)
        body = response.get(uid, {}).get(b"BODY[]")
        return bytes(body) if body is not None else None

    def _wait_for_mail(self, stop: threading.Event, seconds: float) -> bool:
        """Wait up to `seconds`; True when the server spoke up first (new mail, usually)."""
        with self._connection() as client:
            if not self._call("CAPABILITY", client.has_capability, "IDLE"):
                stop.wait(seconds)
                return False
            self._call("IDLE", client.idle)
            try:
                # What the server sent together with the IDLE continuation (an EXISTS, say) sits
                # in imaplib's read buffer, where idle_check (which polls the socket) would not
                # see it for the whole IDLE period: end IDLE at once, DONE reads it.
                woken = _input_waiting(client) or self._idle(client, stop, seconds)
            finally:
                _, late = self._call("IDLE", client.idle_done)
            return woken or _announces_mail(late)

    def _idle(self, client: IMAPClient, stop: threading.Event, seconds: float) -> bool:
        """True at the first EXISTS; False at the deadline or stop."""
        deadline = time.monotonic() + seconds
        while not stop.is_set() and (left := deadline - time.monotonic()) > 0:
            tick = min(STOP_CHECK_SECONDS, left)
            asked = time.monotonic()
            responses = client.idle_check(timeout=tick)
            if _announces_mail(responses):
                return True
            # imapclient reports a closed connection as an early, empty answer; DONE then
            # raises the error.
            if not responses and time.monotonic() - asked < tick / 2:
                return False
        return False

    def _call(self, method: str, fn: Callable[..., T], *args: Any, recorded: bool = False) -> T:
        """fn(*args), reported to `record` when it failed or when `recorded`."""
        started = time.perf_counter()
        try:
            result = fn(*args)
        except CONNECTION_ERRORS as exc:
            self._record(method, started, type(exc).__name__)
            raise
        if recorded:
            self._record(method, started, "")
        return result

    def _record(self, method: str, started: float, error: str) -> None:
        if self.record is None:
            return
        call = ExternalCall(
            service=IMAP_SERVICE,
            endpoint=self.endpoint,
            method=method,
            status=None,  # IMAP answers have no status code; error says how it went
            latency_ms=(time.perf_counter() - started) * 1000,
            error=error,
        )
        try:
            self.record(call)
        except Exception:  # a traffic log that cannot write must not hold up dispatch mail
            log.exception("could not record IMAP %s to %s", method, self.endpoint)


def _announces_mail(responses: list[tuple[Any, ...]]) -> bool:
    return any(len(r) > 1 and r[1] == b"EXISTS" for r in responses)


def _input_waiting(client: IMAPClient) -> bool:
    """Whether the server has sent anything not read yet, buffered or on the socket. Looks into
    imaplib's reader (a BufferedReader up to Python 3.13); False where there is none to look at."""
    peek = getattr(getattr(client._imap, "file", None), "peek", None)
    if peek is None:
        return False
    sock = client.socket()
    timeout = sock.gettimeout()
    sock.setblocking(False)  # peek reads the socket only when the buffer is empty: never wait
    try:
        return bool(peek(1))
    except OSError:  # nothing on the socket (a TLS socket says so with SSLWantReadError)
        return False
    finally:
        sock.settimeout(timeout)


def _shut(client: IMAPClient) -> None:
    with suppress(CONNECTION_ERRORS):
        client.shutdown()


# --- DKIM -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class DkimResult:
    status: Literal["pass", "fail", "none"]
    domain: str | None  # the d= of the passing signature, else of the first one
    detail: str


# A TXT look-up: the record for a name such as b"sel._domainkey.example.jp.", None if none.
DnsLookup = Callable[[bytes], bytes | None]


def verify_dkim(raw: bytes, *, dnsfunc: DnsLookup | None = None) -> DkimResult:
    """Verify the mail's DKIM signatures (dkimpy) until one passes. "none" when it has none.

    Looks the keys up in DNS unless dnsfunc is given; DNS trouble and missing keys are "fail".
    Never raises: the mail is the sender's to shape, and whatever it makes dkimpy or the DNS
    library throw is a failed verification.
    """
    lookup: Callable[..., bytes | None] = (
        dkim.dnsplug.get_txt if dnsfunc is None else lambda name, timeout=5: dnsfunc(name)
    )
    try:
        signatures = sum(
            1 for name, _ in dkim.DKIM(raw).headers if name.lower() == b"dkim-signature"
        )
    except Exception as exc:
        return DkimResult("fail", None, f"unreadable message: {type(exc).__name__}: {exc}"[:300])
    if not signatures:
        return DkimResult("none", None, "no DKIM-Signature header")
    first_domain, reasons = None, []
    for idx in range(signatures):
        notes = _DkimNotes()
        checker = dkim.DKIM(raw, logger=notes)
        try:
            passed = checker.verify(idx=idx, dnsfunc=lookup)
        except Exception as exc:
            passed = False
            notes.errors.append(f"{type(exc).__name__}: {exc}")
        domain = checker.domain.decode("ascii", "replace") if checker.domain else None
        first_domain = first_domain or domain
        if passed:
            return DkimResult("pass", domain, f"d={domain}")
        reasons.append("; ".join(notes.errors) or "signature does not match")
    return DkimResult("fail", first_domain, " | ".join(reasons)[:300])


class _DkimNotes:
    """Takes dkimpy's logger calls: its errors explain a failed verification (missing key, DNS
    timeout) that verify() itself reports only as False."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    def debug(self, msg: str, *args: object) -> None:
        pass

    def error(self, msg: str, *args: object) -> None:
        self.errors.append(msg % args if args else msg)
