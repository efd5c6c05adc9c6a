"""Which worker runs a job now, and what became of its runs (job_run, worker_heartbeat).

Any number of `cli.py worker` instances may run. A job run is guarded so that exactly one of
them runs it at a time and, per interval, once:

- PostgreSQL: a session-level advisory lock (pg_try_advisory_lock) on a connection of its own,
  held for the whole run. Nobody waits for it (a worker that does not get it moves on), and it
  ends with the session: a worker that dies mid-run frees its jobs at once.
- SQLite (one host, the embedded default): a lease in the job's row, taken by one conditional
  UPDATE and renewed by the worker's heartbeat while the run lasts. A dead worker's lease
  expires after LEASE (its runs resume then).

Under either guard the job's row decides whether the job is due (last start an interval ago, an
error's retry time come, or a run a dead worker left unfinished) and records the start in the
same statement, so two workers that take the guard one after the other still run it once.
The lease columns are written on PostgreSQL too: they say which worker runs what.
"""

from __future__ import annotations

import hashlib
import os
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from functools import cache

from sqlalchemy import Connection, Engine, and_, delete, func, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from models.base import utcnow
from models.jobs import JobRun, WorkerHeartbeat
from services.db import build_engine, current_engine, unit_of_work

LEASE = timedelta(seconds=60)
RETRY_AFTER = timedelta(minutes=5)  # a failed run is tried again then (or at its interval)
FORGET_WORKERS_AFTER = timedelta(days=1)
JOBS = JobRun.__table__
BEATS = WorkerHeartbeat.__table__


class JobFailed(RuntimeError):
    """A pass that handled what it could but not everything: counts only, no data."""


def new_worker_id() -> str:
    return f"{socket.gethostname()[:50]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def lock_key(name: str) -> int:
    """The advisory lock's 64-bit key of a job: stable across processes and versions."""
    digest = hashlib.blake2b(f"hikeshi.job:{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def _insert(dialect: str):
    return pg_insert if dialect == "postgresql" else sqlite_insert


def ensure_jobs(names: list[str]) -> None:
    """A row for every job (a new job's first worker creates it; several may try at once)."""
    with unit_of_work(None) as db:
        insert = _insert(db.get_bind().dialect.name)
        for name in names:
            db.execute(
                insert(JOBS)
                .values(name=name, last_error="", runs=0, failures=0, lease_owner="")
                .on_conflict_do_nothing(index_elements=["name"])
            )
        db.commit()


def _due(interval: timedelta, now: datetime):
    """The row's condition for a new run: never run, started an interval ago, or failed and its
    retry time come."""
    c = JOBS.c
    return or_(
        c.last_start.is_(None),
        c.last_start <= now - interval,
        and_(
            c.last_error_at.is_not(None),
            c.last_error_at >= c.last_start,
            c.last_start <= now - min(interval, RETRY_AFTER),
        ),
    )


def _start(name: str, interval: timedelta, owner: str, *, locked: bool) -> datetime | None:
    """Mark the run started if it is due (and, without the advisory lock, if no live lease
    holds it); returns the start time, or None when another worker has it or it is not due."""
    now = utcnow()
    c = JOBS.c
    if locked:  # we hold the advisory lock: a lease still set is a dead worker's
        free = or_(_due(interval, now), c.lease_until.is_not(None))
    else:
        free = or_(
            and_(c.lease_until.is_(None), _due(interval, now)),
            c.lease_until < now,
        )
    with unit_of_work(None) as db:
        claimed = db.execute(
            update(JOBS)
            .where(c.name == name, free)
            .values(last_start=now, lease_owner=owner, lease_until=now + LEASE, runs=c.runs + 1)
        ).rowcount
        db.commit()
    return now if claimed == 1 else None


def error_text(error: BaseException) -> str:
    """The exception's class, and its first line only where that cannot carry data: a job's own
    JobFailed (counts) and OS errors (a host, a port, a path). Any other message (a database
    error's, a KeyError's) may quote a value, so it stays in the worker's log."""
    described = f"{type(error).__name__}"
    if isinstance(error, OSError | JobFailed):
        described += f": {(str(error).splitlines() or [''])[0]}"
    return described[:200]


def finish(name: str, owner: str, *, error: BaseException | None = None) -> None:
    """Record the end of the run this worker holds: a success, or the error (error_text)."""
    now = utcnow()
    values: dict = {"lease_until": None}
    if error is None:
        values["last_success"] = now
    else:
        values |= {
            "last_error_at": now,
            "last_error": error_text(error),
            "failures": JOBS.c.failures + 1,
        }
    with unit_of_work(None) as db:
        db.execute(
            update(JOBS).where(JOBS.c.name == name, JOBS.c.lease_owner == owner).values(values)
        )
        db.commit()


NO_LOCK, LOCKED, TAKEN = "no-lock", "locked", "taken"


@cache
def _lock_engine(url: str) -> Engine:
    """The locks' connections come from a pool of their own: a lock's connection is held for
    its job's whole run, and the jobs' own work must not wait for the connections their locks
    hold (one per job thread, a few spare)."""
    return build_engine(url, pool_size=12, max_overflow=4)


@contextmanager
def _advisory_lock(name: str) -> Iterator[str]:
    """LOCKED while this worker holds the job's lock, TAKEN when another worker does, NO_LOCK
    on SQLite (the lease guards alone)."""
    engine = current_engine()
    if engine.dialect.name != "postgresql":
        yield NO_LOCK
        return
    conn: Connection = _lock_engine(engine.url.render_as_string(hide_password=False)).connect()
    key = lock_key(name)
    try:
        got = conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar_one()
        conn.commit()
    except BaseException:
        conn.invalidate()
        conn.close()
        raise
    if not got:
        conn.close()
        yield TAKEN
        return
    try:
        yield LOCKED
    finally:
        try:
            conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
            conn.commit()
        except Exception:
            conn.invalidate()  # closing the session ends its locks; never pooled half-known
        conn.close()


@contextmanager
def claimed(name: str, interval: timedelta, owner: str) -> Iterator[datetime | None]:
    """Run the block as this job's one run, if it is due and no other worker has it: yields the
    start time (None: skip). The block's exception is recorded as the run's error and raised."""
    with _advisory_lock(name) as lock:
        started = None if lock == TAKEN else _start(name, interval, owner, locked=lock == LOCKED)
        if started is None:
            yield None
            return
        try:
            yield started
        except BaseException as exc:
            finish(name, owner, error=exc)
            raise
        finish(name, owner)


def beat(worker_id: str, started_at: datetime) -> None:
    """The worker is alive: its heartbeat row, its leases renewed, long-gone workers' rows
    removed."""
    now = utcnow()
    with unit_of_work(None) as db:
        insert = _insert(db.get_bind().dialect.name)
        db.execute(
            insert(BEATS)
            .values(
                worker_id=worker_id,
                host=socket.gethostname()[:100],
                pid=os.getpid(),
                started_at=started_at,
                seen_at=now,
            )
            .on_conflict_do_update(index_elements=["worker_id"], set_={"seen_at": now})
        )
        db.execute(
            update(JOBS)
            .where(JOBS.c.lease_owner == worker_id, JOBS.c.lease_until.is_not(None))
            .values(lease_until=now + LEASE)
        )
        db.execute(delete(BEATS).where(BEATS.c.seen_at < now - FORGET_WORKERS_AFTER))
        db.commit()


def stopped(worker_id: str) -> None:
    """A worker that stops cleanly leaves no heartbeat behind."""
    with unit_of_work(None) as db:
        db.execute(delete(BEATS).where(BEATS.c.worker_id == worker_id))
        db.commit()


def last_heartbeat() -> datetime | None:
    with unit_of_work(None, read_only=True) as db:
        return db.execute(select(func.max(BEATS.c.seen_at))).scalar_one()


def job_rows() -> list[JobRun]:
    with unit_of_work(None, read_only=True) as db:
        return list(db.execute(select(JobRun).order_by(JobRun.name)).scalars().all())
