"""Provider backups (#23): how long a backup and a restore take for the demo brigade and for
many brigades of demo size.

PostgreSQL: a throw-away cluster with pgBackRest (the repository's configuration: encrypted,
zstd), the demo brigade seeded through the services N times (each a brigade of its own), then a
full backup, a differential after one change, and a point-in-time restore (stop, restore,
start, promoted). SQLite: the same brigades in a scratch file, `backup-db` and `restore-db`.
The baseline, measured in the same run, is the full backup of the freshly migrated, empty
database (pgBackRest's fixed cost); ratios are against it.

    .venv/bin/python bench/provider_backup.py [--brigades 1] [--copies 0]
        [--sqlite-only | --postgres-only]

Seeding a demo brigade through the services takes some seconds; for 100 brigades use
`--brigades 1 --copies 99 --postgres-only` (the seeded database copied 99 times in the cluster,
which pgBackRest backs up as a whole), about a minute here.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

from scratch import DATA, Database
from sqlalchemy import create_engine, text

from services import demo, demo_data
from services.db import current_engine
from services.db_snapshot import backup_db, restore_db


def timed(step: Callable[[], object]) -> float:
    start = time.perf_counter()
    step()
    return time.perf_counter() - start


def seed(brigades: int) -> float:
    """Seed brigades of demo size (the demo itself first); returns the seconds it took."""
    name = demo_data.DEMO_BRIGADE["name"]
    start = time.perf_counter()
    for i in range(brigades):
        demo_data.DEMO_BRIGADE["name"] = name if i == 0 else f"{name}{i:03d}"
        demo.ADMIN_LOGIN = "demo-admin" if i == 0 else f"demo-admin-{i:03d}"
        assert demo.seed_demo(today=date(2026, 12, 1)).created
    demo_data.DEMO_BRIGADE["name"] = name
    return time.perf_counter() - start


def postgres(brigades: int, copies: int) -> None:
    from tests.operations.cluster import ThrowAwayCluster, missing_tools

    if missing := missing_tools():
        raise SystemExit(f"needs {', '.join(missing)}")
    cluster = ThrowAwayCluster(Path(tempfile.gettempdir()))  # on disk, as in production
    try:
        cluster.create(os.urandom(32).hex())
        database = Database(cluster.url())
        baseline = timed(lambda: cluster.backrest.backup("full"))
        seeding = seed(brigades)
        copying = timed(lambda: _copy_database(database, copies))
        size = _pg_size(database.owner_url) * (1 + copies)
        full = timed(lambda: cluster.backrest.backup("full"))
        owner = create_engine(database.owner_url)
        with owner.begin() as conn:
            target = conn.execute(text("SELECT clock_timestamp()")).scalar_one()
            conn.execute(text("UPDATE water_source SET updated_at = now()"))
        owner.dispose()
        diff = timed(lambda: cluster.backrest.backup("diff"))
        cluster.backrest.check()
        database.app.dispose()
        label = cluster.backrest.backups()[-2]["label"]

        def restore() -> None:
            cluster.stop()
            cluster.backrest.restore(target_time=target, backup_set=label)
            cluster.start()
            _wait_promoted(cluster.url())

        restored = timed(restore)
        repo = sum(f.stat().st_size for f in cluster.layout.repo_path.rglob("*") if f.is_file())
        print(
            f"PostgreSQL, {brigades} demo-size brigades (seeded in {seeding:.1f} s)"
            + (f" in {1 + copies} databases (copied in {copying:.1f} s)" if copies else "")
        )
        print(f"  database {size / 1e6:.1f} MB, repository (encrypted, zstd) {repo / 1e6:.1f} MB")
        print(f"  baseline: full backup of the empty database  {baseline:6.2f} s")
        for what, seconds in (
            ("full backup", full),
            ("differential backup", diff),
            ("point-in-time restore", restored),
        ):
            print(f"  {what:<28} {seconds:6.2f} s  ({seconds / baseline:.2f} x baseline)")
        database.close()
    finally:
        cluster.remove()


def _copy_database(database: Database, copies: int) -> None:
    """Copies of the seeded database in the same cluster (CREATE DATABASE ... TEMPLATE): the
    bytes pgBackRest copies for (1 + copies) times as many brigades, without seeding each
    through the services (some seconds a brigade)."""
    if not copies:
        return
    database.app.dispose()
    database.owner.dispose()
    admin = create_engine(
        database.owner_url.rsplit("/", 1)[0] + "/postgres", isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as conn:
        for i in range(copies):
            conn.execute(
                text(f'CREATE DATABASE "{database.name}_{i:03d}" TEMPLATE "{database.name}"')
            )
    admin.dispose()


def _pg_size(url: str) -> int:
    engine = create_engine(url)
    with engine.connect() as conn:
        size = conn.execute(text("SELECT pg_database_size(current_database())")).scalar_one()
    engine.dispose()
    return size


def _wait_promoted(url: str) -> None:
    engine = create_engine(url)
    try:
        while True:
            with engine.connect() as conn:
                if not conn.execute(text("SELECT pg_is_in_recovery()")).scalar_one():
                    return
            time.sleep(0.05)
    finally:
        engine.dispose()


def sqlite(brigades: int) -> None:
    database = Database(None)
    os.environ["HIKESHI_DATABASE_URL"] = database.app_url
    snapshots = Path(DATA) / "snapshots"
    baseline = timed(lambda: backup_db(directory=snapshots))
    seeding = seed(brigades)
    current_engine().dispose()
    made: list = []
    full = timed(lambda: made.append(backup_db(directory=snapshots)))
    restored = timed(lambda: restore_db(made[0].path, confirmed=True, directory=snapshots))
    size = Path(database.app_url.removeprefix("sqlite:///")).stat().st_size
    print(f"SQLite, {brigades} demo-size brigades (seeded in {seeding:.1f} s)")
    print(f"  database {size / 1e6:.1f} MB, snapshot (encrypted) {made[0].size / 1e6:.1f} MB")
    print(f"  baseline: backup-db of the empty database     {baseline:6.2f} s")
    print(f"  backup-db                    {full:6.2f} s  ({full / baseline:.2f} x baseline)")
    print(
        f"  restore-db (with its safety snapshot) {restored:6.2f} s  "
        f"({restored / baseline:.2f} x baseline)"
    )
    database.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--brigades", type=int, default=1, help="seeded through the services")
    parser.add_argument(
        "--copies",
        type=int,
        default=0,
        help="PostgreSQL: copies of the seeded database (99 with --brigades 1: 100 brigades)",
    )
    only = parser.add_mutually_exclusive_group()
    only.add_argument("--sqlite-only", action="store_true")
    only.add_argument("--postgres-only", action="store_true")
    args = parser.parse_args()
    if not args.postgres_only:
        sqlite(args.brigades)
    if not args.sqlite_only:
        postgres(args.brigades, args.copies)


if __name__ == "__main__":
    main()
