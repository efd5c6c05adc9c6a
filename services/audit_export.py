"""Signed audit checkpoints written outside the database (white paper 12.4.1).

Whoever can write the database can delete its checkpoint rows together with the events they
sign, and a verifier reading only the database would then find a consistent, shorter or
rewritten chain. So every checkpoint is also a file, `<dir>/<tenant id>/<seq>.json`, under
HIKESHI_AUDIT_CHECKPOINT_DIR, for the operator to ship to write-once storage; the verifier reads
both. A file is written once: atomically (temporary file, then a hard link that fails if the name
exists) and never replaced.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import uuid
from datetime import datetime
from pathlib import Path

from config import get_settings
from models import AuditCheckpoint

FORMAT = "hikeshi-audit-checkpoint/1"
NAME = re.compile(r"^(\d{12})\.json$")


class ExportConflict(RuntimeError):
    """A different checkpoint file already holds this seq: two signed chains disagree."""


def chain_dir(tenant_id: uuid.UUID) -> Path:
    return get_settings().audit_checkpoint_dir / str(tenant_id)


def file_name(seq: int) -> str:
    return f"{seq:012d}.json"


def to_json(checkpoint: AuditCheckpoint) -> bytes:
    return (
        json.dumps(
            {
                "format": FORMAT,
                "tenant_id": str(checkpoint.tenant_id),
                "seq": checkpoint.seq,
                "hash": checkpoint.hash,
                "signed_at": checkpoint.signed_at.isoformat(timespec="microseconds"),
                "key_id": checkpoint.key_id,
                "signature": checkpoint.signature,
            },
            sort_keys=True,
        )
        + "\n"
    ).encode()


def from_json(data: bytes) -> AuditCheckpoint:
    """Raises ValueError (or KeyError/TypeError) for anything but a well-formed file."""
    values = json.loads(data)
    if values["format"] != FORMAT:
        raise ValueError("unknown checkpoint file format")
    signed_at = datetime.fromisoformat(values["signed_at"])
    if signed_at.tzinfo is None:
        raise ValueError("naive signing time")
    return AuditCheckpoint(
        tenant_id=uuid.UUID(values["tenant_id"]),
        seq=int(values["seq"]),
        hash=str(values["hash"]),
        signed_at=signed_at,
        key_id=str(values["key_id"]),
        signature=str(values["signature"]),
    )


def export(checkpoint: AuditCheckpoint) -> bool:
    """Write the checkpoint's file. False when an identical checkpoint (same seq and hash) was
    already there; ExportConflict when a different one was."""
    directory = chain_dir(checkpoint.tenant_id)
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / file_name(checkpoint.seq)
    temporary = directory / f".{final.name}.{secrets.token_hex(8)}.tmp"
    try:
        with open(temporary, "xb") as out:
            out.write(to_json(checkpoint))
            out.flush()
            os.fsync(out.fileno())
        temporary.chmod(0o444)
        try:
            os.link(temporary, final)  # unlike a rename, refuses to replace an existing file
        except FileExistsError:
            existing = read(checkpoint.tenant_id, checkpoint.seq)
            if existing is None or existing.hash != checkpoint.hash:
                raise ExportConflict(f"{final} holds a different checkpoint") from None
            return False
    finally:
        temporary.unlink(missing_ok=True)
    _sync_directory(directory)
    return True


def _sync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def exported_seqs(tenant_id: uuid.UUID) -> list[int]:
    """The seqs of the chain's checkpoint files, ascending; none when the directory is absent."""
    try:
        with os.scandir(chain_dir(tenant_id)) as entries:
            seqs = [int(m.group(1)) for e in entries if (m := NAME.match(e.name))]
    except (FileNotFoundError, NotADirectoryError):
        return []
    return sorted(seqs)


def read(tenant_id: uuid.UUID, seq: int) -> AuditCheckpoint | None:
    """The checkpoint in the file for seq; None when the file cannot be read as one, names
    another chain or another seq."""
    try:
        checkpoint = from_json((chain_dir(tenant_id) / file_name(seq)).read_bytes())
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if (checkpoint.tenant_id, checkpoint.seq) != (tenant_id, seq):
        return None
    return checkpoint
