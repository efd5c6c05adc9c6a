"""The worker's scheduled jobs (`cli.py worker`): what each runs, how often, and as whom.

Each job runs as the narrow actor its services already use: the mail intake's and the LINE
sender's machine actors per brigade (services.dispatch), the audit jobs' own chain access
(services.audit_checkpoint, services.audit_retention), and for the cancellation purge a
platform actor with no brigade rights (it may only do platform tasks, as the command line's
`purge-cancelled` does). None runs as system_actor, which holds every right in a brigade.
"""

from __future__ import annotations

import logging
import shutil
import time
from datetime import timedelta

from core.actor import Actor, ActorKind
from core.timefmt import today_jst
from integrations import pgbackrest
from services import audit_checkpoint, audit_retention, db_snapshot, pre_change, tenant_lifecycle
from services.dispatch import intake, line_webhook, outbox, selftest
from services.dispatch.worker import ImapSource, imap_poller, imap_sink, imap_sources
from services.jobs.claims import JobFailed
from services.jobs.runner import Job

log = logging.getLogger(__name__)

SOURCES_SECONDS = 30.0
PURGE_ACTOR = Actor(
    kind=ActorKind.SYSTEM, display_name="worker:purge-cancelled", label="worker:purge-cancelled"
)


def checkpoint_audit() -> None:
    run = audit_checkpoint.checkpoint_all()
    if run.broken or run.export_failed:
        raise JobFailed(f"{len(run.broken)} chains broken, {len(run.export_failed)} exports failed")


def purge_audit() -> None:
    run = audit_retention.purge_all()
    if run.broken:
        raise JobFailed(f"{len(run.broken)} chains broken: not purged")


def purge_cancelled() -> None:
    tenant_lifecycle.delete_cancelled_data(PURGE_ACTOR, today=today_jst())


def mail_sweep() -> None:
    """Mail and LINE webhook events a stopped process stored but did not handle."""
    intake.process_pending()
    line_webhook.handle_pending()


def retention() -> None:
    intake.purge_expired_raw()
    pre_change.purge_expired()  # pre-change backups past 35 days (#17)


def on_sqlite() -> bool:
    try:
        db_snapshot.database_path()
    except db_snapshot.SnapshotError:
        return False
    return True


def backup_sqlite() -> None:
    db_snapshot.backup_db()  # also deletes snapshots past 35 days


def pgbackrest_ready() -> bool:
    """pgBackRest runs where PostgreSQL's files are: a worker on the database host, with the
    configuration `cli.py provider-backup configure` wrote. Elsewhere (a container without the
    tool) the database host's timer takes the backups instead (docs/operations.md)."""
    return (
        not on_sqlite()
        and pgbackrest.DEFAULT_CONFIG.exists()
        and shutil.which("pgbackrest") is not None
    )


def backup_postgres() -> None:
    """Full on Sundays, differential otherwise; pgBackRest expires past the 35 days itself."""
    pgbackrest.PgBackRest(pgbackrest.DEFAULT_CONFIG).backup(pgbackrest.scheduled_type(today_jst()))


class MailPolling:
    """One pass over every brigade's IMAP mailbox per run. The connections stay open between
    runs (a SEARCH for unseen mail each time); a changed or removed mailbox's is closed."""

    def __init__(self, dnsfunc: intake.DNSFunc | None = None) -> None:
        self.dnsfunc = dnsfunc
        self.pollers: dict[ImapSource, object] = {}
        self.wanted: set[ImapSource] = set()
        self.listed_at: float | None = None

    def sources(self) -> set[ImapSource]:
        """The mailboxes as 出動メール設定 has them, read again every SOURCES_SECONDS (one
        transaction per brigade; a pass runs every few seconds)."""
        now = time.monotonic()
        if self.listed_at is None or now - self.listed_at >= SOURCES_SECONDS:
            self.wanted, self.listed_at = set(imap_sources()), now
        return self.wanted

    def run(self) -> None:
        wanted = self.sources()
        for source in [s for s in self.pollers if s not in wanted]:
            self.pollers.pop(source).close()
        failed = 0
        for source in wanted:
            if source not in self.pollers:
                self.pollers[source] = imap_poller(source)
            try:
                if self.pollers[source].poll_once(imap_sink(source, dnsfunc=self.dnsfunc)):
                    outbox.wake.set()
            except Exception as exc:
                failed += 1
                log.warning("IMAP poll of a mailbox failed (%s)", type(exc).__name__)
        if failed:
            raise JobFailed(f"{failed} of {len(wanted)} mailboxes could not be read")

    def close(self) -> None:
        for poller in self.pollers.values():
            poller.close()
        self.pollers.clear()


def default_jobs(polling: MailPolling) -> list[Job]:
    """Every scheduled job; those whose installation lacks what they need are left out by
    their enabled check (no signing key, another database's backup)."""
    quota = outbox.QuotaGuard()
    return [
        Job("line-outbox", timedelta(seconds=1), lambda: outbox.run_due(quota), wake=outbox.wake),
        Job("mail-poll", timedelta(seconds=5), polling.run),
        Job("mail-sweep", timedelta(seconds=30), mail_sweep),
        Job("callout-selftest", timedelta(seconds=30), selftest.run_due),
        Job(
            "checkpoint-audit",
            timedelta(hours=1),
            checkpoint_audit,
            enabled=lambda: audit_checkpoint.signing_key() is not None,
        ),
        Job(
            "purge-audit",
            timedelta(days=1),
            purge_audit,
            enabled=lambda: audit_retention.verification_key() is not None,
        ),
        Job("purge-cancelled", timedelta(days=1), purge_cancelled),
        Job("mail-retention", timedelta(hours=1), retention),
        Job("backup-db", timedelta(days=1), backup_sqlite, enabled=on_sqlite),
        Job("provider-backup", timedelta(days=1), backup_postgres, enabled=pgbackrest_ready),
    ]
