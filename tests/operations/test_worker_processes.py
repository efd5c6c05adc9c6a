"""Several `cli.py worker` processes on one PostgreSQL database (#23): each due job runs once,
a dispatch mail makes one incident and one call-out, every member gets the call-out once, a
job held by a worker that dies is free at once, and SIGTERM stops a worker cleanly.

PostgreSQL only (the advisory locks; SQLite's leases are tested in tests/services/test_jobs.py).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from models import InboundMail, Incident
from models.base import utcnow
from models.dispatch import MailTransport
from services.db import unit_of_work
from services.dispatch import intake
from services.jobs import claims
from services.jobs.runner import Job, Worker
from tests.callout_factories import make_brigade, messaging
from tests.dispatch_factories import body, mail, make_source, where

pytestmark = [
    pytest.mark.postgres_only,
    pytest.mark.skipif(
        not os.environ.get("HIKESHI_TEST_DATABASE_URL"),
        reason="several workers share a PostgreSQL database (HIKESHI_TEST_DATABASE_URL)",
    ),
    pytest.mark.usefixtures("engine"),
]
ROOT = Path(__file__).resolve().parents[2]
WAIT_SECONDS = 90  # two workers' start on a busy 2-core machine


def start_worker(tmp_path: Path, index: int, *args: str) -> subprocess.Popen:
    env = os.environ | {
        "HIKESHI_DATA_DIR": str(tmp_path / f"worker{index}"),
        "PYTHONUNBUFFERED": "1",
    }
    return subprocess.Popen(
        [sys.executable, "cli.py", "worker", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def until_started(worker: subprocess.Popen) -> str:
    """The worker's output up to its start line (or its end, should it fail to start)."""
    lines = []
    while line := worker.stdout.readline():
        lines.append(line)
        if "ワーカーを開始しました" in line:
            break
    return "".join(lines)


def job_runs(name: str) -> int:
    return next((r.runs for r in claims.job_rows() if r.name == name), 0)


def test_two_workers_handle_a_mail_and_its_call_out_once_and_a_due_job_once(tmp_path):
    brigade = make_brigade({"第1分団": 3})
    source = make_source(brigade.tenant_id)
    raw = mail(source.address, body(units="本町団1"))
    mail_id = intake.store(where(source), raw, transport=MailTransport.SMTP)
    with unit_of_work(brigade.tenant_id) as db:  # stored two minutes ago, by a stopped process
        db.execute(
            update(InboundMail)
            .where(InboundMail.id == mail_id)
            .values(received_at=utcnow() - timedelta(minutes=2))
        )
        db.commit()
    purges = job_runs("purge-cancelled")
    jobs = ("--job", "mail-sweep", "--job", "line-outbox", "--job", "purge-cancelled")
    subs = {sub for sub in brigade.subs.values() if sub}
    with messaging() as fake:
        workers = [start_worker(tmp_path, n, *jobs) for n in range(2)]
        try:
            # both have started (and so handle SIGTERM) before either is stopped
            started = [until_started(worker) for worker in workers]
            deadline = time.monotonic() + WAIT_SECONDS
            while time.monotonic() < deadline and not subs <= set(recipients(fake)):
                time.sleep(0.2)
            time.sleep(2)  # time for a second send, were there one
            for worker in workers:
                worker.send_signal(signal.SIGTERM)
            outputs = [
                head + worker.communicate(timeout=30)[0]
                for head, worker in zip(started, workers, strict=True)
            ]
        finally:
            for worker in workers:
                if worker.poll() is None:
                    worker.kill()
        sent = Counter(r for r in recipients(fake) if r in subs)
    assert [w.returncode for w in workers] == [0, 0], outputs
    assert all("ワーカーを停止しました" in out for out in outputs), outputs
    assert sent == Counter(dict.fromkeys(subs, 1))
    with unit_of_work(brigade.tenant_id) as db:
        incidents = db.execute(
            select(func.count()).where(Incident.tenant_id == brigade.tenant_id)
        ).scalar_one()
    assert incidents == 1
    assert job_runs("purge-cancelled") == purges + 1
    ids = [re.search(r"ワーカーを開始しました（(.+?)）", out).group(1) for out in outputs]
    with unit_of_work(None) as db:  # a worker stopped cleanly leaves no heartbeat
        left = db.execute(select(claims.BEATS.c.worker_id).where(claims.BEATS.c.worker_id.in_(ids)))
        assert left.all() == []


def recipients(fake) -> list[str]:
    return [to for d in fake.deliveries if d.endpoint == "multicast" for to in d.to]


HOLDER = """
import sys, time
from datetime import timedelta
from services.jobs import claims
claims.ensure_jobs([sys.argv[1]])
with claims.claimed(sys.argv[1], timedelta(hours=1), "doomed-worker") as started:
    print("claimed" if started else "refused", flush=True)
    time.sleep(120)
"""


def test_a_job_held_by_a_worker_that_dies_is_free_at_once(tmp_path):
    name = f"test-dead-{os.getpid()}-{time.monotonic_ns() % 10**6}"
    job = Job(name, claims.LEASE * 60, lambda: None)
    env = os.environ | {"HIKESHI_DATA_DIR": str(tmp_path)}
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, name], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "claimed"
        live = Worker([job])
        assert live.attempt(job) is False  # the holder's advisory lock

        holder.kill()  # no clean-up: its lease stays in the row, its session ends
        holder.wait(timeout=10)
        deadline = time.monotonic() + 10
        while not (ran := live.attempt(job)) and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        if holder.poll() is None:
            holder.kill()
    assert ran
    row = next(r for r in claims.job_rows() if r.name == name)
    assert row.runs == 2 and row.lease_owner == live.worker_id and row.lease_until is None
