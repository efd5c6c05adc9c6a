"""Signing checkpoints of the audit chains and exporting them (white paper 12.4.1 / 18.1.3).

Only this module reads the signing seed (HIKESHI_AUDIT_SIGNING_KEY); it runs in the periodic
`cli.py checkpoint-audit` job. Verifiers hold the public key alone (services/audit_verify.py).

A checkpoint is committed to the database first and then written as a file
(services/audit_export.py). The other order could leave a file without its row after a failed
commit, which the verifier must treat as a checkpoint deleted from the database: a false alarm
that write-once storage could never take back. This order can only leave a row without its file,
which each run repairs by exporting every checkpoint newer than the newest file.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from config import ConfigError, get_settings, verify_key_of
from models import AuditCheckpoint
from models.base import utcnow
from services import audit_export
from services.audit_verify import (
    BATCH,
    AuditChainBroken,
    CheckpointKey,
    VerifyResult,
    chains,
    sign_checkpoint,
    verification_key,
    verify_chain,
)
from services.db import unit_of_work


class ExportFailed(RuntimeError):
    """The checkpoint is in the database, but its file could not be written."""


def signing_key() -> Ed25519PrivateKey | None:
    """The signing key, None when no seed is set. A configured public key that does not belong
    to the seed is a ConfigError: every checkpoint signed then would fail verification."""
    seed = get_settings().audit_signing_key
    if seed is None:
        return None
    private_key = Ed25519PrivateKey.from_private_bytes(seed)
    configured = verification_key()
    if (
        configured is not None
        and configured.key_id != CheckpointKey.of(private_key.public_key()).key_id
    ):
        raise ConfigError(
            "HIKESHI_AUDIT_VERIFY_KEY does not belong to HIKESHI_AUDIT_SIGNING_KEY "
            "(`cli.py audit-public-key` prints the right one)"
        )
    return private_key


def write_checkpoint(tenant_id: uuid.UUID) -> AuditCheckpoint | None:
    """Sign the tenant's chain at its end if it grew since the last checkpoint, then export every
    checkpoint not yet exported.

    The rows since the last checkpoint are verified first, against the exported files too: a
    broken chain is never signed (AuditChainBroken). None when nothing is new or no signing key
    is configured; ExportFailed when the file could not be written."""
    private_key = signing_key()
    if private_key is None:
        return None
    key = CheckpointKey.of(private_key.public_key())
    written = None
    try:
        with unit_of_work(tenant_id) as session:
            written = _write_checkpoint(session, tenant_id, private_key, key)
            session.commit()
    except IntegrityError:
        pass  # another job signed the same seq a moment earlier
    export_pending(tenant_id, key)
    return written


def _write_checkpoint(
    session: Session, tenant_id: uuid.UUID, private_key: Ed25519PrivateKey, key: CheckpointKey
) -> AuditCheckpoint | None:
    latest = session.exec(
        select(AuditCheckpoint)
        .where(AuditCheckpoint.tenant_id == tenant_id)
        .order_by(AuditCheckpoint.seq.desc())
        .limit(1)
    ).first()
    result = verify_chain(session, tenant_id, from_seq=latest.seq if latest else 1, key=key)
    if not result.ok:
        raise AuditChainBroken(tenant_id, result)
    if result.last_seq == 0 or (latest is not None and latest.seq >= result.last_seq):
        return None
    checkpoint = sign_checkpoint(
        private_key,
        tenant_id=tenant_id,
        seq=result.last_seq,
        hash=result.last_hash,
        signed_at=utcnow(),
    )
    session.add(checkpoint)
    session.flush()
    return checkpoint


def export_pending(tenant_id: uuid.UUID, key: CheckpointKey) -> int:
    """Export the chain's checkpoints newer than its newest file: the one just written, and any
    whose export failed before. Only checkpoints this key signed leave the database. Returns
    how many files were written."""
    exported = audit_export.exported_seqs(tenant_id)
    after = exported[-1] if exported else 0
    written = 0
    with unit_of_work(tenant_id) as session:
        while True:
            batch = session.exec(
                select(AuditCheckpoint)
                .where(AuditCheckpoint.tenant_id == tenant_id, AuditCheckpoint.seq > after)
                .order_by(AuditCheckpoint.seq)
                .limit(BATCH)
            ).all()
            for checkpoint in batch:
                if key.verifies(checkpoint):
                    try:
                        written += audit_export.export(checkpoint)
                    except (OSError, audit_export.ExportConflict) as exc:
                        raise ExportFailed(f"seq {checkpoint.seq}: {exc}") from exc
            if len(batch) < BATCH:
                return written
            after = batch[-1].seq


@dataclass
class CheckpointRun:
    available: bool = True
    written: list[AuditCheckpoint] = field(default_factory=list)
    unchanged: int = 0
    broken: dict[uuid.UUID, VerifyResult] = field(default_factory=dict)
    export_failed: dict[uuid.UUID, str] = field(default_factory=dict)


def checkpoint_all() -> CheckpointRun:
    """The periodic job: a checkpoint for every chain that grew, the platform's included."""
    if signing_key() is None:
        return CheckpointRun(available=False)
    run = CheckpointRun()
    for tenant_id, _name in chains():
        try:
            checkpoint = write_checkpoint(tenant_id)
        except AuditChainBroken as exc:
            run.broken[tenant_id] = exc.result
            continue
        except ExportFailed as exc:
            run.export_failed[tenant_id] = str(exc)
            continue
        if checkpoint is None:
            run.unchanged += 1
        else:
            run.written.append(checkpoint)
    return run


def main_checkpoint() -> int:
    """`cli.py checkpoint-audit`: 0 when every chain was handled, 1 otherwise."""
    run = checkpoint_all()
    if not run.available:
        print("NG   HIKESHI_AUDIT_SIGNING_KEY が未設定のため、チェックポイントは書けません。")
        return 1
    print(
        f"チェックポイント: 新規 {len(run.written)} 件、変化なし {run.unchanged} 件"
        f"（書き出し先 {get_settings().audit_checkpoint_dir}）"
    )
    if verification_key() is None:
        print(
            "警告: HIKESHI_AUDIT_VERIFY_KEY が未設定のため、検証ではチェックポイントを確認できません"
            "（`cli.py audit-public-key` で値を表示できます）"
        )
    for tenant_id, result in run.broken.items():
        print(f"NG   {tenant_id}: seq {result.first_broken_seq}: {result.reason}")
    for tenant_id, error in run.export_failed.items():
        print(f"NG   {tenant_id}: チェックポイントを書き出せません / export failed: {error}")
    return 1 if run.broken or run.export_failed else 0


def main_public_key() -> int:
    """`cli.py audit-public-key`: the HIKESHI_AUDIT_VERIFY_KEY line for the signing seed."""
    seed = get_settings().audit_signing_key
    if seed is None:
        print("NG   HIKESHI_AUDIT_SIGNING_KEY が未設定です / no signing key")
        return 1
    print(f"HIKESHI_AUDIT_VERIFY_KEY={verify_key_of(seed)}")
    return 0
