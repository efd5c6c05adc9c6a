"""Encrypted snapshots of the embedded SQLite database (white paper 12.3.1: the provider backs
up customer data and keeps 35 days of encrypted backups; PostgreSQL uses pgBackRest instead,
see integrations/pgbackrest.py).

`cli.py backup-db` copies the live database with SQLite's online backup API into memory (a
consistent copy while the app keeps running; no plaintext copy ever touches the disk), checks
it, and writes it sealed with AES-256-GCM under a key derived from the active master key, in
chunks whose associated data binds each to the file's header, its position and whether it is
the last, so a truncated, reordered or edited file is refused. Snapshots older than 35 days
are deleted. `cli.py restore-db` opens a snapshot, checks it, saves a snapshot of the current
database first, and only then copies it over the live database.
"""

from __future__ import annotations

import json
import os
import sqlite3
import struct
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy.engine import make_url

import config
from services.crypto import DecryptionError, platform_key

RETENTION = timedelta(days=35)
MAGIC = b"HIKESHI-DB-SNAPSHOT\n"
PURPOSE = "db-snapshot"
CHUNK = 1 << 20
SUFFIX = ".db.enc"
STAMP = "%Y%m%dT%H%M%S%fZ"
_LENGTH = struct.Struct(">I")


class SnapshotError(RuntimeError):
    """No SQLite database to snapshot, or a snapshot that cannot be trusted."""


@dataclass(frozen=True)
class Snapshot:
    path: Path
    taken_at: datetime
    size: int


def snapshot_dir() -> Path:
    return Path(os.environ.get("HIKESHI_SNAPSHOT_DIR") or config.DATA_DIR / "snapshots")


def database_path() -> Path:
    url = make_url(config.configured_database_url())
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        raise SnapshotError(
            "backup-db copies the embedded SQLite database; PostgreSQL is backed up with "
            "pgBackRest (cli.py provider-backup)"
        )
    return Path(url.database)


def backup_db(*, directory: Path | None = None, now: datetime | None = None) -> Snapshot:
    """Snapshot the live database, then delete snapshots older than the retention."""
    now = now or datetime.now(UTC)
    directory = directory or snapshot_dir()
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    source = database_path()
    if not source.exists():
        raise SnapshotError(f"{source} does not exist")
    image = _copy_out(source)
    path = directory / f"hikeshi-{now.strftime(STAMP)}{SUFFIX}"
    _write_private(path, seal_snapshot(image, taken_at=now))
    rotate(directory, now=now)
    return Snapshot(path, now, path.stat().st_size)


def _copy_out(source: Path) -> bytes:
    live = sqlite3.connect(source, timeout=10)
    memory = sqlite3.connect(":memory:")
    try:
        live.backup(memory)
        _check(memory)
        image = bytearray(memory.serialize())
    finally:
        live.close()
        memory.close()
    # Header bytes 18-19 say the live file is in WAL mode, which a database opened from memory
    # cannot use: the image says "rollback journal"; the app switches the restored file to WAL
    # again when it connects.
    image[18:20] = b"\x01\x01"
    return bytes(image)


def _check(conn: sqlite3.Connection) -> None:
    result = conn.execute("PRAGMA integrity_check").fetchall()
    if result != [("ok",)]:
        raise SnapshotError(f"integrity check failed: {result[:3]}")
    if conn.execute("SELECT name FROM sqlite_master WHERE name = 'alembic_version'").fetchone():
        return
    raise SnapshotError("not a Hikeshi database (no alembic_version)")


def _write_private(path: Path, data: bytes) -> None:
    """Write to a 0600 file beside path, then rename, so a crash leaves no half snapshot."""
    partial = path.with_name(path.name + ".part")
    fd = os.open(partial, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    partial.replace(path)


def seal_snapshot(image: bytes, *, taken_at: datetime) -> bytes:
    master_id = config.get_settings().active_master_key_id
    header = json.dumps(
        {"format": 1, "master_key_id": master_id, "taken_at": taken_at.isoformat()},
        sort_keys=True,
    ).encode()
    aead = AESGCM(platform_key(master_id, PURPOSE))
    out = [MAGIC, _LENGTH.pack(len(header)), header]
    chunks = [image[i : i + CHUNK] for i in range(0, len(image), CHUNK)] or [b""]
    for index, chunk in enumerate(chunks):
        nonce = os.urandom(12)
        sealed = aead.encrypt(nonce, chunk, _aad(header, index, index == len(chunks) - 1))
        out += [_LENGTH.pack(len(sealed)), nonce, sealed]
    return b"".join(out)


def _aad(header: bytes, index: int, last: bool) -> bytes:
    return header + struct.pack(">Q?", index, last)


def open_snapshot(data: bytes) -> tuple[dict, bytes]:
    """(header, database image) of a sealed snapshot; SnapshotError if anything is off."""
    if not data.startswith(MAGIC):
        raise SnapshotError("not a Hikeshi database snapshot")
    view, pos = memoryview(data), len(MAGIC)
    header, pos = _field(view, pos)
    try:
        meta = json.loads(bytes(header))
        aead = AESGCM(platform_key(meta["master_key_id"], PURPOSE))
    except (ValueError, KeyError, DecryptionError) as exc:
        raise SnapshotError(f"snapshot header unusable: {exc}") from exc
    parts, index = [], 0
    while pos < len(view):
        sealed, pos = _field(view, pos, nonce=True)
        last = pos == len(view)
        try:
            parts.append(aead.decrypt(sealed[:12], sealed[12:], _aad(header, index, last)))
        except Exception as exc:  # InvalidTag: edited, reordered, truncated or another key
            raise SnapshotError(f"snapshot chunk {index} fails authentication") from exc
        index += 1
    if not index:
        raise SnapshotError("snapshot holds no data")
    return meta, b"".join(parts)


def _field(view: memoryview, pos: int, *, nonce: bool = False) -> tuple[bytes, int]:
    if pos + _LENGTH.size > len(view):
        raise SnapshotError("snapshot is truncated")
    (length,) = _LENGTH.unpack(view[pos : pos + _LENGTH.size])
    start = pos + _LENGTH.size
    end = start + length + (12 if nonce else 0)
    if end > len(view):
        raise SnapshotError("snapshot is truncated")
    return bytes(view[start:end]), end


def restore_db(
    snapshot: Path, *, confirmed: bool, directory: Path | None = None
) -> Snapshot | None:
    """Replace the live database with snapshot's, after checking it and snapshotting the current
    database, if there is one (returned, so the restore can itself be undone). Stop the app and
    workers first."""
    if not confirmed:
        raise SnapshotError("restore replaces the whole database: confirm with --yes")
    _meta, image = open_snapshot(snapshot.read_bytes())
    restored = sqlite3.connect(":memory:")
    try:
        restored.deserialize(image)
        _check(restored)
        safety = backup_db(directory=directory) if database_path().exists() else None
        live = sqlite3.connect(database_path(), timeout=10)
        try:
            # The backup API takes the live file's locks and writes it page by page, in WAL
            # mode too: a reader sees either the old database or the restored one.
            restored.backup(live)
        finally:
            live.close()
    finally:
        restored.close()
    return safety


def rotate(directory: Path, *, now: datetime) -> list[Path]:
    """Delete the snapshots taken more than RETENTION before now; returns what was deleted."""
    gone = [s.path for s in list_snapshots(directory) if s.taken_at < now - RETENTION]
    for path in gone:
        path.unlink()
    return gone


def list_snapshots(directory: Path | None = None) -> list[Snapshot]:
    """The snapshots in directory, oldest first (their time is in their names)."""
    directory = directory or snapshot_dir()
    found = []
    for path in directory.glob(f"hikeshi-*{SUFFIX}"):
        stamp = path.name.removeprefix("hikeshi-").removesuffix(SUFFIX)
        try:
            taken_at = datetime.strptime(stamp, STAMP).replace(tzinfo=UTC)
        except ValueError:
            continue
        found.append(Snapshot(path, taken_at, path.stat().st_size))
    return sorted(found, key=lambda s: s.taken_at)


# ---------------------------------------------------------------------------
# Command line (wired into cli.py)


def main_backup() -> int:
    try:
        made = backup_db()
    except SnapshotError as exc:
        print(f"失敗 / failed: {exc}", file=sys.stderr)
        return 1
    kept = list_snapshots(made.path.parent)
    print(
        f"スナップショットを作成しました / snapshot written: {made.path} ({made.size} bytes); "
        f"保管中 {len(kept)} 件 / {len(kept)} kept (35 days)"
    )
    return 0


def main_restore(snapshot: str | None, *, confirmed: bool) -> int:
    if snapshot is None:
        for found in list_snapshots():
            print(f"{found.taken_at:%Y-%m-%d %H:%M:%S} UTC  {found.size:>12}  {found.path}")
        return 0
    try:
        safety = restore_db(Path(snapshot), confirmed=confirmed)
    except (SnapshotError, OSError, sqlite3.Error) as exc:
        print(f"復元しませんでした / not restored: {exc}", file=sys.stderr)
        return 1
    before = safety.path if safety else "-"
    print(
        f"復元しました / restored {snapshot}. 復元前のデータベース / the database before: "
        f"{before}. `cli.py migrate` でスキーマを最新にしてからアプリを起動してください / "
        "run `cli.py migrate`, then start the app."
    )
    return 0
