"""One worker instance (`cli.py worker`): a thread per job that tries to claim it when due
(services.jobs.claims), and a heartbeat. Any number of instances may run against one database.

A job's thread looks every min(interval, CHECK_SECONDS): a daily job starts within half a
minute of being due on whichever worker looks first. stop() (SIGTERM) lets each job's run under
way finish, then the threads end and the heartbeat row goes.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from models.base import utcnow
from services.jobs import claims

log = logging.getLogger(__name__)

CHECK_SECONDS = 30.0
HEARTBEAT_SECONDS = 10.0  # /readyz calls a worker alive while its beat is < 3 of these old
STOP_WAIT_SECONDS = 60.0


@dataclass(frozen=True)
class Job:
    name: str
    interval: timedelta
    run: Callable[[], object]
    # off when the installation lacks what it needs (a key): not scheduled, not reported late
    enabled: Callable[[], bool] = lambda: True
    # set by whoever queued work for it (the SMTP receiver queues a call-out): run now
    wake: threading.Event | None = None


def is_enabled(job: Job) -> bool:
    """A job whose check itself fails (a key that does not match its pair) runs, so that its
    error is recorded and seen, rather than silently not at all."""
    try:
        return bool(job.enabled())
    except Exception:
        return True


class Worker:
    def __init__(self, jobs: list[Job], *, worker_id: str | None = None) -> None:
        self.jobs = [job for job in jobs if is_enabled(job)]
        self.worker_id = worker_id or claims.new_worker_id()
        self.stop_event = threading.Event()
        self.started_at = utcnow()

    def attempt(self, job: Job, *, now: bool = False) -> bool:
        """Run the job if it is due (or, with now, whenever no other worker runs it) and no
        other worker has it; True when this worker ran it. Its error is recorded, logged and
        not raised: the worker outlives any one run."""
        interval = timedelta(0) if now else job.interval
        ran = False
        try:
            with claims.claimed(job.name, interval, self.worker_id) as started:
                if started is not None:
                    ran = True
                    job.run()
        except Exception:
            log.exception("job %s failed; it is tried again later", job.name)
        return ran

    def run_once(self) -> list[str]:
        """Every due job once, one after another (cron-style use, and tests); the names run.
        The heartbeat goes on meanwhile: on SQLite it renews the lease of a long run."""
        self._begin()
        beating = threading.Thread(target=self._beat_until_stopped, daemon=True)
        beating.start()
        try:
            return [job.name for job in self.jobs if self.attempt(job)]
        finally:
            self.stop_event.set()
            beating.join()
            claims.stopped(self.worker_id)

    def run(self) -> None:
        """Until stop(): the jobs on their threads, the heartbeat on this one."""
        self._begin()
        threads = [
            threading.Thread(target=self._loop, args=(job,), name=f"job-{job.name}", daemon=True)
            for job in self.jobs
        ]
        for thread in threads:
            thread.start()
        self._beat_until_stopped()
        for thread in threads:
            thread.join(timeout=STOP_WAIT_SECONDS)
        try:
            claims.stopped(self.worker_id)
        except Exception:
            log.exception("could not remove the worker's heartbeat; it ages out")

    def _beat_until_stopped(self) -> None:
        while not self.stop_event.wait(HEARTBEAT_SECONDS):
            try:
                claims.beat(self.worker_id, self.started_at)
            except Exception:
                log.exception("worker heartbeat failed; trying again")

    def stop(self) -> None:
        self.stop_event.set()
        for job in self.jobs:
            if job.wake is not None:
                job.wake.set()

    def _begin(self) -> None:
        claims.ensure_jobs([job.name for job in self.jobs])
        claims.beat(self.worker_id, self.started_at)

    def _loop(self, job: Job) -> None:
        pause = min(job.interval.total_seconds(), CHECK_SECONDS)
        woken = False
        while not self.stop_event.is_set():
            self.attempt(job, now=woken)
            if job.wake is None:
                self.stop_event.wait(pause)
                continue
            woken = job.wake.wait(pause) and not self.stop_event.is_set()
            job.wake.clear()
