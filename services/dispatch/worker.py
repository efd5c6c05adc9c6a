"""The mail intake of one process (`cli.py mail-intake`): the SMTP receiver, one IMAP poller per
brigade mailbox, and a sweep that handles mail a stopped process left unhandled, runs and checks
the call-out's daily self-test (services.dispatch.selftest), empties raw text past its
retention and deletes pre-change backups past theirs (services.pre_change). Several such processes may run against one database; the claims in
services.dispatch.intake keep each mail to one of them."""

from __future__ import annotations

import logging
import threading
import uuid
from dataclasses import dataclass, field

from sqlmodel import select

from config import get_settings
from core.actor import Actor, ActorKind, system_actor
from formats.dispatch_profile import sample_dispatch_mail
from integrations.mail import Envelope, ImapPoller, SmtpReceiver, send_mail
from models.base import utcnow
from models.dispatch import MailSource, MailTransport
from services import pre_change, tenants
from services.base import transaction
from services.dispatch import intake, line_webhook, outbox, selftest
from services.dispatch.sources import imap_password, list_sources
from services.traffic_log import external_call_recorder

log = logging.getLogger(__name__)
SWEEP_SECONDS = 30.0
SEND_SECONDS = 1.0
PURGE_EVERY_SWEEPS = 120  # about an hour
UNKNOWN_RECIPIENT = "No such recipient"
OPERATOR = Actor(kind=ActorKind.SYSTEM, display_name="send-test-mail", label="send-test-mail")


@dataclass(frozen=True)
class ImapSource:
    tenant_id: uuid.UUID
    source_id: uuid.UUID
    host: str
    port: int
    ssl: bool
    username: str
    password: str = field(repr=False)
    folder: str = "INBOX"


def accept_rcpt(address: str) -> bool:
    """A receiving address of some brigade's active source. Anything else is refused at RCPT
    (550: the sender gets a bounce) and noted in the intake's log, without the address's
    token, since no brigade's メール受信ログ can hold a mail that belongs to none."""
    if intake.route(address) is not None:
        return True
    log.warning("refused mail to an unknown address at %s", address.rpartition("@")[2][:100])
    return False


def smtp_sink(
    envelope: Envelope, raw: bytes, *, dnsfunc: intake.DNSFunc | None = None
) -> str | None:
    """Store the mail once per brigade address it was sent to, then handle it. The SMTP answer
    waits only for the store: a failure after it leaves the mail for the sweep, not lost."""
    stored = []
    for rcpt in dict.fromkeys(envelope.rcpt_tos):
        where = intake.route(rcpt)
        if where is None:
            continue
        mail_id = intake.store(
            where,
            raw,
            transport=MailTransport.SMTP,
            envelope_from=envelope.mail_from,
            rcpt=rcpt,
            peer=envelope.peer,
        )
        stored.append((where.tenant_id, mail_id))
    if not stored:
        return UNKNOWN_RECIPIENT
    for tenant_id, mail_id in stored:
        try:
            intake.process(tenant_id, mail_id, dnsfunc=dnsfunc)
        except Exception:
            log.exception("mail %s stored but not handled; the sweep will retry", mail_id)
    outbox.wake.set()  # a call-out queued with the incident goes out now, not at the next pass
    return None


def imap_sources() -> list[ImapSource]:
    """Every active brigade mailbox, read by each brigade's intake actor."""
    found = []
    for tenant_id in intake.brigades():
        actor = intake.intake_actor(tenant_id)
        with transaction(
            actor, intake.RECEIVE, action="mail_source.imap_list", read_only=True
        ) as tx:
            rows = tx.session.exec(
                select(MailSource).where(
                    MailSource.tenant_id == tx.tenant_id,
                    MailSource.transport == MailTransport.IMAP,
                    MailSource.active,
                )
            ).all()
            found += [
                ImapSource(
                    tenant_id,
                    row.id,
                    row.imap_host,
                    row.imap_port,
                    row.imap_ssl,
                    row.imap_username,
                    imap_password(tx, row),
                    row.imap_folder,
                )
                for row in rows
            ]
    return found


def imap_poller(source: ImapSource) -> ImapPoller:
    """A poller of the source's mailbox whose calls are logged as its brigade's intake."""
    return ImapPoller(
        host=source.host,
        port=source.port,
        ssl=source.ssl,
        username=source.username,
        password=source.password,
        folder=source.folder,
        record=external_call_recorder(intake.intake_actor(source.tenant_id)),
    )


def imap_sink(source: ImapSource, *, dnsfunc: intake.DNSFunc | None = None):
    where = intake.Route(source.tenant_id, source.source_id)

    def sink(raw: bytes) -> None:
        mail_id = intake.store(where, raw, transport=MailTransport.IMAP)
        try:
            intake.process(source.tenant_id, mail_id, dnsfunc=dnsfunc)
        except Exception:
            log.exception("mail %s stored but not handled; the sweep will retry", mail_id)
        outbox.wake.set()

    return sink


class MailIntake:
    def __init__(
        self,
        *,
        host: str | None = None,
        port: int | None = None,
        dnsfunc: intake.DNSFunc | None = None,
        imap: bool = True,
    ) -> None:
        settings = get_settings()
        self.dnsfunc = dnsfunc
        self.receiver = SmtpReceiver(
            lambda envelope, raw: smtp_sink(envelope, raw, dnsfunc=dnsfunc),
            host=host or settings.smtp_host,
            port=port or settings.smtp_port,
            max_bytes=settings.mail_max_bytes,
            accept_rcpt=accept_rcpt,
        )
        self.stop_event = threading.Event()
        # one poller per mailbox as configured now; a changed or disabled source's poller stops
        self.pollers: dict[ImapSource, tuple[threading.Event, threading.Thread]] = {}
        self.imap = imap
        self.quota = outbox.QuotaGuard()
        self.sender = threading.Thread(target=self.send_loop, name="line-outbox", daemon=True)

    def start(self) -> None:
        self.receiver.start()
        self.sender.start()
        if self.imap:
            self.refresh_pollers()

    def send_loop(self) -> None:
        """The LINE outbox and the call-out timers: at once when this process queued a wave,
        else every second (waves queued by the app's pages and by other processes)."""
        while not self.stop_event.is_set():
            outbox.wake.wait(SEND_SECONDS)
            outbox.wake.clear()
            try:
                outbox.run_due(self.quota)
            except Exception:
                log.exception("LINE outbox pass failed; trying again")

    def refresh_pollers(self) -> None:
        """Poll the mailboxes configured now: a source added on 出動メール設定 is picked up at
        the next sweep, a changed one is polled with its new settings, a disabled one no more."""
        wanted = set(imap_sources())
        for source in [s for s in self.pollers if s not in wanted]:
            self.pollers.pop(source)[0].set()  # the thread ends at its next wait
        for source in wanted - set(self.pollers):
            self._start_poller(source)

    def _start_poller(self, source: ImapSource) -> None:
        poller = imap_poller(source)
        stop = threading.Event()
        thread = threading.Thread(
            target=poller.run,
            args=(imap_sink(source, dnsfunc=self.dnsfunc),),
            kwargs={"stop": stop},
            name=f"imap-{source.source_id}",
            daemon=True,
        )
        thread.start()
        self.pollers[source] = (stop, thread)

    def run(self) -> None:
        """Sweep until stopped."""
        sweeps = 0
        while not self.stop_event.wait(SWEEP_SECONDS):
            try:
                if self.imap:
                    self.refresh_pollers()
                intake.process_pending(dnsfunc=self.dnsfunc)
                line_webhook.handle_pending()
                selftest.run_due()
                sweeps += 1
                if sweeps % PURGE_EVERY_SWEEPS == 0:
                    intake.purge_expired_raw()
                    pre_change.purge_expired()  # pre-change backups past 35 days (#17)
            except Exception:
                log.exception("mail sweep failed; trying again at the next one")

    def stop(self) -> None:
        self.stop_event.set()
        outbox.wake.set()
        self.sender.join(timeout=10)
        for stop, _thread in self.pollers.values():
            stop.set()
        self.receiver.stop()
        for _stop, thread in self.pollers.values():
            thread.join(timeout=10)


def send_sample(brigade: str, *, host: str | None = None, port: int | None = None) -> str:
    """Send a sample dispatch mail to a brigade's first receiving address (the demo, and
    `cli.py send-test-mail`); returns the address."""
    tenant_id = tenants.get_tenant_by_name(OPERATOR, brigade).id
    smtp = [
        s
        for s in list_sources(system_actor(tenant_id, label="send-test-mail"))
        if s.transport == MailTransport.SMTP and s.active
    ]
    if not smtp:
        raise LookupError(f"{brigade} has no receiving address (出動メール設定)")
    source = smtp[0]
    sender = source.senders[0]
    sender = f"shirei{sender}" if sender.startswith("@") else sender
    settings = get_settings()
    raw = sample_dispatch_mail(to=source.address, sender=sender, now=utcnow())
    send_mail(
        raw,
        host=host or settings.smtp_host,
        port=port or settings.smtp_port,
        mail_from=sender,
        rcpt_tos=[source.address],
    )
    return source.address
