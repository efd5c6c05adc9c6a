"""The worker's job guard (services/jobs), /readyz's checks and the metrics' figures, in one
process on both databases. The same guard across real processes: tests/operations/
test_worker_processes.py."""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import text, update

from core.actor import RequestContext
from models.base import utcnow
from models.dispatch import MailTransport
from services import monitoring
from services.db import current_engine, unit_of_work
from services.dispatch import incidents, intake
from services.jobs import claims
from services.jobs.claims import JobFailed
from services.jobs.runner import Job, Worker
from services.jobs.schedule import MailPolling
from services.signin import local
from tests.dispatch_factories import body, mail, make_source, where
from tests.factories import PLATFORM, admin, make_member, make_tenant
from tests.fakes.imap_server import FakeImap

PASSWORD = "correct horse battery staple"

pytestmark = pytest.mark.usefixtures("engine")
HOUR = timedelta(hours=1)


def job_name() -> str:
    return f"test-{uuid.uuid4().hex[:8]}"


def row(name: str):
    return next(r for r in claims.job_rows() if r.name == name)


def test_a_due_job_runs_once_per_interval_whichever_worker_asks():
    name, calls = job_name(), []
    job = Job(name, HOUR, lambda: calls.append(1))
    first, second = Worker([job]), Worker([job])
    claims.ensure_jobs([name])

    assert first.attempt(job) is True
    assert second.attempt(job) is False
    assert first.attempt(job) is False
    assert calls == [1]
    done = row(name)
    assert done.runs == 1 and done.last_success >= done.last_start
    assert done.lease_until is None and done.lease_owner == first.worker_id


def test_two_workers_at_the_same_moment_run_a_slow_job_once():
    """Threads with connections of their own: on PostgreSQL the advisory lock keeps the second
    out while the first runs; on SQLite the lease does."""
    name, calls = job_name(), []
    started = threading.Barrier(2)

    def slow() -> None:
        calls.append(1)
        time.sleep(0.3)

    job = Job(name, HOUR, slow)
    claims.ensure_jobs([name])
    results: list[bool] = []

    def attempt() -> None:
        started.wait()
        results.append(Worker([job]).attempt(job))

    threads = [threading.Thread(target=attempt) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False, True]
    assert calls == [1] and row(name).runs == 1


def test_a_failed_run_records_its_error_and_is_retried_before_its_interval():
    name = job_name()

    def fail() -> None:
        raise JobFailed("2 of 3 mailboxes could not be read")

    job = Job(name, timedelta(days=1), fail)
    worker = Worker([job])
    claims.ensure_jobs([name])
    assert worker.attempt(job) is True
    failed = row(name)
    assert failed.failures == 1 and failed.last_success is None
    assert failed.last_error == "JobFailed: 2 of 3 mailboxes could not be read"
    assert worker.attempt(job) is False  # RETRY_AFTER has not passed
    _age(name, claims.RETRY_AFTER)
    assert worker.attempt(job) is True
    assert row(name).failures == 2


def test_an_error_is_recorded_by_its_class_and_its_message_only_where_it_holds_no_data():
    assert claims.error_text(KeyError("山田太郎")) == "KeyError"
    assert claims.error_text(ConnectionRefusedError(111, "Connection refused")) == (
        "ConnectionRefusedError: [Errno 111] Connection refused"
    )
    assert claims.error_text(JobFailed("1 chains broken")) == "JobFailed: 1 chains broken"


def _age(name: str, by: timedelta) -> None:
    """Move a job's times back, as if `by` had passed."""
    c = claims.JOBS.c
    with unit_of_work(None) as db:
        old = db.execute(claims.JOBS.select().where(c.name == name)).one()
        values = {
            column: getattr(old, column) - by
            for column in ("last_start", "last_success", "last_error_at", "lease_until")
            if getattr(old, column) is not None
        }
        db.execute(update(claims.JOBS).where(c.name == name).values(values))
        db.commit()


def test_a_run_its_worker_left_unfinished_is_run_again_once_the_guard_is_free(dialect):
    """A worker that died mid-run: on PostgreSQL its advisory lock ended with its connection,
    and the lease it left says the run never finished; on SQLite the lease must expire first."""
    name = job_name()
    claims.ensure_jobs([name])
    engine = current_engine()
    dead = engine.connect()  # the dead worker's session, holding the lock while "running"
    if dialect == "postgresql":
        dead.execute(text("SELECT pg_advisory_lock(:k)"), {"k": claims.lock_key(name)})
        dead.commit()
    assert claims._start(name, HOUR, "dead-worker", locked=dialect == "postgresql")
    job = Job(name, HOUR, lambda: None)
    live = Worker([job])

    assert live.attempt(job) is False  # the lock (PostgreSQL) or the lease (SQLite) holds
    if dialect == "postgresql":
        dead.invalidate()  # the process is gone: its session and lock end
    else:
        _age(name, claims.LEASE)  # the lease was not renewed: it ran out
    dead.close()
    deadline = time.monotonic() + 5  # the server ends a closed session's backend in a moment
    while not (ran := live.attempt(job)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ran
    assert row(name).runs == 2 and row(name).lease_owner == live.worker_id


def test_a_live_workers_heartbeat_renews_the_lease_of_its_run():
    name = job_name()
    claims.ensure_jobs([name])
    assert claims._start(name, HOUR, "long-runner", locked=False)
    _age(name, claims.LEASE - timedelta(seconds=5))
    claims.beat("long-runner", utcnow())
    assert row(name).lease_until > utcnow() + claims.LEASE - timedelta(seconds=5)
    claims.stopped("long-runner")


def test_readiness_wants_a_fresh_worker_heartbeat():
    worker_id = f"test-{uuid.uuid4().hex[:8]}"
    claims.beat(worker_id, utcnow())
    checks = {c.name: c for c in monitoring.readiness()}
    assert checks["database"].ok and checks["migrations"].ok, checks
    assert checks["worker"].ok
    later = utcnow() + timedelta(seconds=monitoring.FRESH_BEATS * 10 + 60)
    assert not {c.name: c for c in monitoring.readiness(later)}["worker"].ok
    claims.stopped(worker_id)


def test_readiness_reports_a_database_behind_the_code(monkeypatch):
    monkeypatch.setattr(monitoring, "code_head", lambda: "z999")
    checks = {c.name: c for c in monitoring.readiness()}
    assert not checks["migrations"].ok and "code z999" in checks["migrations"].detail


def test_figures_count_live_sessions_waiting_mail_and_job_times():
    """On PostgreSQL through the SECURITY DEFINER function (row-level security hides the other
    brigades' rows from the application role), on SQLite directly. Other tests' rows count
    too: the session is counted by the change it makes."""
    before = monitoring.figures(utcnow() + timedelta(seconds=30))
    tenant, login = make_tenant(), f"figures-{uuid.uuid4().hex[:8]}"
    member = make_member(tenant)
    local.create_account(
        PLATFORM, login_name=login, password=PASSWORD, tenant_id=tenant, member_id=member.id
    )
    assert local.login(login, PASSWORD, RequestContext()).token
    source = make_source(tenant)
    intake.store(where(source), mail(source.address, body()), transport=MailTransport.SMTP)
    name = job_name()
    claims.ensure_jobs([name])
    job = Job(name, HOUR, lambda: None)
    Worker([job]).attempt(job)

    figures = monitoring.figures(utcnow() + timedelta(seconds=30))
    assert figures.active_sessions == before.active_sessions + 1
    assert figures.intake_lag_seconds >= 29
    assert next(j for j in figures.jobs if j.name == name).last_success


def test_the_worker_command_refuses_an_unknown_job():
    import cli

    with pytest.raises(SystemExit) as refused:
        cli.main(["worker", "--once", "--job", "no-such-job"])
    assert "no-such-job" in str(refused.value.code)


def test_run_once_runs_each_due_job_and_leaves_no_heartbeat():
    names, calls = [job_name(), job_name()], []
    worker = Worker([Job(name, HOUR, lambda n=name: calls.append(n)) for name in names])
    assert worker.run_once() == names and calls == names
    with unit_of_work(None) as db:
        beats = db.execute(
            claims.BEATS.select().where(claims.BEATS.c.worker_id == worker.worker_id)
        ).all()
    assert beats == []


def test_a_running_worker_runs_a_woken_job_at_once_and_stops_when_told():
    name, calls, wake = job_name(), [], threading.Event()
    worker = Worker([Job(name, HOUR, lambda: calls.append(1), wake=wake)])
    thread = threading.Thread(target=worker.run)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while len(calls) < 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        wake.set()  # queued work: run now, though the hour has not passed
        while len(calls) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        worker.stop()
        thread.join(timeout=10)
    assert not thread.is_alive() and calls == [1, 1]


def test_mail_polling_takes_a_mailbox_mail_once():
    """One pass per run over every brigade's IMAP mailbox (other tests' mailboxes, long gone,
    fail the pass: JobFailed, after the others were read)."""
    tenant = make_tenant()
    with FakeImap() as server:
        make_source(
            tenant,
            transport=MailTransport.IMAP,
            imap_host=server.host,
            imap_port=server.port,
            imap_ssl=False,
            imap_username=server.username,
            imap_password=server.password,
        )
        uid = server.deliver(mail("dispatch@example.jp", body()))
        polling = MailPolling()
        try:
            for _ in range(2):
                with contextlib.suppress(JobFailed):
                    polling.run()
        finally:
            polling.close()
        assert server.is_seen(uid)
    (incident,) = incidents.list_incidents(admin(tenant))
    assert incident.reference == "2026-00123"


def test_the_worker_sends_a_sample_mail_only_to_its_own_receiver():
    import cli

    with pytest.raises(SystemExit) as refused:
        cli.main(["worker", "--send-sample"])
    assert "--smtp" in str(refused.value.code)
