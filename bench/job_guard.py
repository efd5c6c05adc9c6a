"""What guarding a job run costs the worker (#23): a run of a job that does nothing, through
services.jobs (on PostgreSQL: advisory lock, due check and start in one UPDATE, the end in
another, unlock; on SQLite: the lease's UPDATE and the end's), against the baseline of one
write transaction of the same kind (one UPDATE of the job's row) in the same run.

    .venv/bin/python bench/job_guard.py [--runs 300]
        [--database-url postgresql://postgres@127.0.0.1:5432/postgres]

SQLite always runs; with --database-url PostgreSQL runs after it, as the application role.
The line-outbox job is claimed once a second by every worker: the figure says what that costs.
Each figure is the median of --runs, wall-clock in this process.
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import timedelta

import scratch
from sqlalchemy import update

from services.db import unit_of_work
from services.jobs import claims
from services.jobs.runner import Job, Worker


def median_ms(action, runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def one_write() -> None:
    with unit_of_work(None) as db:
        db.execute(
            update(claims.JOBS)
            .where(claims.JOBS.c.name == "bench-baseline")
            .values(runs=claims.JOBS.c.runs + 1)
        )
        db.commit()


def measure(server_url: str | None, runs: int) -> None:
    database = scratch.Database(server_url)
    try:
        claims.ensure_jobs(["bench-guarded", "bench-baseline"])
        job = Job("bench-guarded", timedelta(0), lambda: None)
        worker = Worker([job])
        guarded = median_ms(lambda: worker.attempt(job, now=True), runs)
        baseline = median_ms(one_write, runs)
        ran = next(r.runs for r in claims.job_rows() if r.name == "bench-guarded")
        print(
            f"{database.dialect:<10} guarded run {guarded:6.2f} ms  one write transaction "
            f"{baseline:6.2f} ms  ratio {guarded / baseline:4.1f}  ({ran} runs recorded)"
        )
    finally:
        database.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--database-url")
    args = parser.parse_args()
    measure(None, args.runs)
    if args.database_url:
        measure(args.database_url, args.runs)


if __name__ == "__main__":
    main()
