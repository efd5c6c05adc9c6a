"""Encrypted SQLite snapshots (cli.py backup-db / restore-db): a consistent copy that restores
to what the application read, refused when tampered with, kept 35 days.

SQLite only, on databases of the tests' own (tmp_path): the PostgreSQL pass leaves these out,
and tests/operations/test_restore_drill.py covers PostgreSQL's backups."""

from __future__ import annotations

import base64
import secrets
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlalchemy.engine import make_url

import cli
import config
from core.actor import system_actor
from models import MemberUpdate
from services import db_snapshot, members
from services.audit_verify import verify_chain
from services.db import build_engine, current_engine, set_engine, unit_of_work
from services.db_snapshot import SnapshotError, backup_db, list_snapshots, restore_db
from tests.factories import make_member, make_tenant

NOW = datetime(2026, 12, 7, 1, 0, tzinfo=UTC)


@pytest.fixture
def live(engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A migrated SQLite database of this test's own (a copy of the test database), configured
    and used by the app."""
    if engine.dialect.name != "sqlite":
        pytest.skip("SQLite snapshots; PostgreSQL is backed up by pgBackRest (tests/operations)")
    path = tmp_path / "hikeshi.db"
    with (
        sqlite3.connect(make_url(str(engine.url)).database) as shared,
        sqlite3.connect(path) as own,
    ):
        shared.backup(own)
    monkeypatch.setenv("HIKESHI_DATABASE_URL", f"sqlite:///{path}")
    monkeypatch.setenv("HIKESHI_SNAPSHOT_DIR", str(tmp_path / "snapshots"))
    engine = build_engine(f"sqlite:///{path}")
    shared = current_engine()
    set_engine(engine)
    try:
        yield path
    finally:
        set_engine(shared)
        engine.dispose()


def roster(tenant_id) -> dict[str, str]:
    return {m.member_code: m.name for m in members.list_members(system_actor(tenant_id))}


def test_restore_brings_back_the_snapshot_and_keeps_the_database_it_replaced(live):
    brigade = make_tenant()
    member = make_member(brigade, name="火消　一郎")
    before = roster(brigade)
    taken = backup_db()
    members.update_member(
        system_actor(brigade),
        member.id,
        data=MemberUpdate(name="改名　二郎"),
        expected_version=member.version,
    )
    changed = roster(brigade)

    safety = restore_db(taken.path, confirmed=True)
    current_engine().dispose()

    assert roster(brigade) == before
    with unit_of_work(brigade) as session:
        assert verify_chain(session, brigade).ok
    assert safety is not None and safety.path != taken.path
    restore_db(safety.path, confirmed=True)
    current_engine().dispose()
    assert roster(brigade) == changed


def test_snapshot_holds_no_plaintext_and_is_private(live):
    brigade_name = f"平文確認消防団{secrets.token_hex(4)}"
    make_tenant(brigade_name)
    taken = backup_db()
    data = taken.path.read_bytes()
    assert brigade_name.encode() not in data
    assert b"SQLite format 3" not in data
    assert taken.path.stat().st_mode & 0o777 == 0o600


def test_tampered_truncated_or_foreign_snapshots_are_refused(live):
    make_tenant()
    taken = backup_db()
    good = taken.path.read_bytes()
    flipped = bytearray(good)
    flipped[len(good) // 2] ^= 1
    for damaged in (bytes(flipped), good[:-1], good[: len(good) // 2]):
        taken.path.write_bytes(damaged)
        with pytest.raises(SnapshotError):
            restore_db(taken.path, confirmed=True)
    taken.path.write_bytes(good)
    other = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HIKESHI_MASTER_KEYS", f"{config.get_settings().active_master_key_id}:{other}")
        config.get_settings.cache_clear()
        try:
            with pytest.raises(SnapshotError, match="authentication"):
                restore_db(taken.path, confirmed=True)
        finally:
            config.get_settings.cache_clear()
    assert list_snapshots() == [taken]  # nothing refused was restored, so no safety copy


def test_restore_needs_confirmation_and_a_sound_hikeshi_database(live, tmp_path):
    taken = backup_db()
    with pytest.raises(SnapshotError, match="--yes"):
        restore_db(taken.path, confirmed=False)
    stranger = sqlite3.connect(":memory:")
    stranger.execute("CREATE TABLE t (x)")
    foreign = tmp_path / "foreign.db.enc"
    foreign.write_bytes(db_snapshot.seal_snapshot(stranger.serialize(), taken_at=NOW))
    with pytest.raises(SnapshotError, match="alembic_version"):
        restore_db(foreign, confirmed=True)
    assert list_snapshots() == [taken]


def test_snapshots_older_than_35_days_are_deleted(live, tmp_path):
    directory = tmp_path / "rotation"
    old = backup_db(directory=directory, now=NOW - timedelta(days=35, seconds=1))
    kept = backup_db(directory=directory, now=NOW - timedelta(days=35))
    newest = backup_db(directory=directory, now=NOW)
    assert [s.path for s in list_snapshots(directory)] == [kept.path, newest.path]
    assert not old.path.exists()


def test_backup_db_refuses_postgresql(monkeypatch, tmp_path):
    monkeypatch.setenv("HIKESHI_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    with pytest.raises(SnapshotError, match="pgBackRest"):
        backup_db(directory=tmp_path)


def test_command_line_backs_up_lists_and_restores_only_when_confirmed(live, capsys):
    with pytest.raises(SystemExit) as done:
        cli.main(["backup-db"])
    assert done.value.code == 0
    (taken,) = list_snapshots()
    with pytest.raises(SystemExit) as done:
        cli.main(["restore-db"])
    assert done.value.code == 0
    assert str(taken.path) in capsys.readouterr().out
    with pytest.raises(SystemExit) as done:
        cli.main(["restore-db", str(taken.path)])
    assert done.value.code == 1
    assert "--yes" in capsys.readouterr().err
    with pytest.raises(SystemExit) as done:
        cli.main(["restore-db", str(taken.path), "--yes"])
    assert done.value.code == 0
    assert len(list_snapshots()) == 2  # the safety snapshot of the database it replaced


def test_a_snapshot_sealed_under_a_retired_master_key_cannot_be_opened(live):
    """Crypto-shredding on SQLite (docs/operations.md): once the master key of a snapshot's time
    is retired, nothing in that snapshot can be read, a purged brigade's data included."""
    taken = backup_db()
    retired = config.get_settings().active_master_key_id
    new = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HIKESHI_MASTER_KEYS", f"after-{retired}:{new}")
        mp.delenv("HIKESHI_ACTIVE_MASTER_KEY", raising=False)
        config.get_settings.cache_clear()
        try:
            with pytest.raises(SnapshotError, match="not configured"):
                restore_db(taken.path, confirmed=True)
        finally:
            config.get_settings.cache_clear()
