"""Verifying the audit chains and signing checkpoints of them (white paper 12.4.1 / 18.1.3).

A hash chain proves only that it is consistent with itself: whoever can write the table can
rewrite it from some row onward, or cut off its tail, and recompute every hash. A checkpoint
signs a (seq, hash) of the chain with a key that lives outside the database, so a rewrite
before it, or a chain shorter than it, shows. Signing is services/audit_checkpoint.py's; this
module verifies with the public key alone (HIKESHI_AUDIT_VERIFY_KEY), never the signing seed.

Checkpoints are read from the database and from their exported files (services/audit_export.py):
a checkpoint deleted from the database together with the events it signed still shows in its
file. Without the public key nothing about checkpoints can be said, and the result says so in
its warnings instead of passing.

The retention purge (services/audit_retention.py) deletes a prefix of the chain up to a signed
checkpoint. A chain whose first row is not seq 1 verifies from that checkpoint: it must be
signed, its hash must be the first remaining row's prev_hash, and an intact audit.purge event of
the chain must record that boundary.
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Generic, Protocol, TypeVar

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sqlalchemy import func
from sqlmodel import Session, select

from config import get_settings
from core.timefmt import to_jst
from models import AuditChainHead, AuditCheckpoint, AuditEvent, Tenant
from models.base import utcnow
from models.tenant import PLATFORM_TENANT_ID
from services import audit_export
from services.audit import GENESIS_HASH, event_hash
from services.db import set_tenant, unit_of_work

BATCH = 1000

HASH_MISMATCH = "ハッシュが一致しません"
SEQ_MISSING = "連番が欠けています"
SEQ_DUPLICATE = "連番が重複しています"
LINK_BROKEN = "前のハッシュと繋がっていません"
HEAD_MISMATCH = "チェーンの先頭情報と記録が一致しません"
HEAD_MISSING = "チェーンの先頭情報がありません"
TRUNCATED = "署名済みチェックポイントより短くなっています"
CHECKPOINT_MISMATCH = "署名済みチェックポイントと一致しません"
BAD_SIGNATURE = "チェックポイントの署名が不正です"
CHECKPOINT_DELETED = "書き出し済みの署名済みチェックポイントがデータベースから消えています"
EXPORT_UNREADABLE = "書き出した署名済みチェックポイントのファイルが読めません"
PREFIX_UNRECORDED = "先頭の記録が、保存期間による削除の記録なしに欠けています"
PURGE_ACTION = "audit.purge"
ENGLISH = {
    HASH_MISMATCH: "hash mismatch",
    SEQ_MISSING: "sequence number missing",
    SEQ_DUPLICATE: "sequence number duplicated",
    LINK_BROKEN: "not linked to the previous hash",
    HEAD_MISMATCH: "chain head disagrees with the records",
    HEAD_MISSING: "chain head missing",
    TRUNCATED: "shorter than a signed checkpoint",
    CHECKPOINT_MISMATCH: "disagrees with a signed checkpoint",
    BAD_SIGNATURE: "invalid checkpoint signature",
    CHECKPOINT_DELETED: "an exported checkpoint is missing from the database",
    EXPORT_UNREADABLE: "exported checkpoint file unreadable",
    PREFIX_UNRECORDED: "leading events missing without a recorded retention purge",
}

# Warnings: the chain holds as far as it could be checked, but not everything could be.
NO_VERIFY_KEY = "no-verify-key"
NO_CHECKPOINT = "no-checkpoint"
STALE_CHECKPOINT = "stale-checkpoint"
NOT_EXPORTED = "not-exported"
WARNINGS = {
    NO_VERIFY_KEY: (
        "検証用の公開鍵が設定されていないため、署名済みチェックポイントを確認できません"
        "（記録の書き換えや末尾の削除を見逃すおそれがあります。運営者にお知らせください）",
        "checkpoints cannot be checked: HIKESHI_AUDIT_VERIFY_KEY is not set",
    ),
    NO_CHECKPOINT: (
        "記録があるのに、署名済みチェックポイントが一つもありません",
        "the chain has events but no signed checkpoint (is checkpoint-audit running?)",
    ),
    STALE_CHECKPOINT: (
        "最新の署名済みチェックポイント（連番 {seq}、{signed_at_jst}）から {hours} 時間以上、"
        "その後の記録が署名されていません",
        "the newest checkpoint (seq {seq}, {signed_at}) is older than {hours} hours and later "
        "events are unsigned (is checkpoint-audit running?)",
    ),
    NOT_EXPORTED: (
        "署名済みチェックポイント {count}件が書き出し先にありません（最初は連番 {seq}）",
        "{count} checkpoints missing from HIKESHI_AUDIT_CHECKPOINT_DIR (first: seq {seq})",
    ),
}


@dataclass(frozen=True)
class VerifyWarning:
    kind: str
    japanese: str
    english: str


def _warn(kind: str, **values: object) -> VerifyWarning:
    japanese, english = WARNINGS[kind]
    return VerifyWarning(kind, japanese.format(**values), english.format(**values))


@dataclass(frozen=True)
class VerifyResult:
    ok: bool  # no broken link found; warnings say what could not be checked
    checked: int
    first_broken_seq: int | None = None
    reason: str = ""
    last_seq: int = 0  # the last row found intact
    last_hash: str = GENESIS_HASH
    checkpoints_checked: int | None = None  # None: no public key, checkpoints not checked
    purged_through: int = 0  # seq 1..purged_through were deleted by the retention purge
    warnings: tuple[VerifyWarning, ...] = ()


class AuditChainBroken(RuntimeError):
    def __init__(self, tenant_id: uuid.UUID, result: VerifyResult) -> None:
        super().__init__(f"audit chain of {tenant_id} broken at seq {result.first_broken_seq}")
        self.result = result


@dataclass(frozen=True)
class CheckpointKey:
    public_key: Ed25519PublicKey
    key_id: str

    @classmethod
    def of(cls, public_key: Ed25519PublicKey) -> CheckpointKey:
        raw = public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
        return cls(public_key, hashlib.sha256(raw).hexdigest()[:16])

    def verifies(self, checkpoint: AuditCheckpoint) -> bool:
        if checkpoint.key_id != self.key_id:
            return False
        try:
            signature = base64.b64decode(checkpoint.signature, validate=True)
            self.public_key.verify(signature, checkpoint_message(checkpoint))
        except (InvalidSignature, ValueError):
            return False
        return True


def verification_key() -> CheckpointKey | None:
    """The configured public key (HIKESHI_AUDIT_VERIFY_KEY); None when it is not set."""
    raw = get_settings().audit_verify_key
    return CheckpointKey.of(Ed25519PublicKey.from_public_bytes(raw)) if raw else None


def checkpoint_message(checkpoint: AuditCheckpoint) -> bytes:
    signed_at = checkpoint.signed_at.astimezone(UTC).isoformat(timespec="microseconds")
    return (
        f"hikeshi-checkpoint|v1|{checkpoint.tenant_id}|{checkpoint.seq}|{checkpoint.hash}|"
        f"{signed_at}"
    ).encode()


def sign_checkpoint(
    private_key: Ed25519PrivateKey,
    *,
    tenant_id: uuid.UUID,
    seq: int,
    hash: str,
    signed_at: datetime,
) -> AuditCheckpoint:
    checkpoint = AuditCheckpoint(
        tenant_id=tenant_id,
        seq=seq,
        hash=hash,
        signed_at=signed_at,
        key_id=CheckpointKey.of(private_key.public_key()).key_id,
        signature="",
    )
    checkpoint.signature = base64.b64encode(
        private_key.sign(checkpoint_message(checkpoint))
    ).decode()
    return checkpoint


def verify_chain(
    session: Session,
    tenant_id: uuid.UUID,
    *,
    from_seq: int = 1,
    to_seq: int | None = None,
    key: CheckpointKey | None = None,
) -> VerifyResult:
    """Walk the tenant's chain in seq order and report the first link that does not hold.

    Checkpoints are checked with key, by default the configured public key. Sets the session's
    tenant for row-level security. Memory stays bounded: rows and checkpoints are read in keyset
    batches of BATCH (only the seqs of the exported files are listed at once)."""
    if from_seq < 1:
        raise ValueError("from_seq starts at 1")
    set_tenant(session, tenant_id)
    return _Walk(session, tenant_id, key or verification_key()).run(from_seq, to_seq)


@dataclass(frozen=True)
class _Mark:
    """A checkpointed seq: its database row and its exported file, either possibly missing."""

    seq: int
    stored: AuditCheckpoint | None
    exported: AuditCheckpoint | None
    unreadable: bool = False  # a file is there but holds no checkpoint of this chain and seq


class _Walk:
    def __init__(self, session: Session, tenant_id: uuid.UUID, key: CheckpointKey | None) -> None:
        self.session = session
        self.tenant_id = tenant_id
        self.key = key
        self.checked = 0
        self.checkpoints = 0
        self.last_seq, self.last_hash = 0, GENESIS_HASH
        self.purged_through = 0
        self.exported = audit_export.exported_seqs(tenant_id) if key else []
        self.exported_set = set(self.exported)
        self.unexported: list[int] = []

    def result(
        self,
        broken_seq: int | None = None,
        reason: str = "",
        warnings: tuple[VerifyWarning, ...] = (),
    ) -> VerifyResult:
        return VerifyResult(
            ok=not reason,
            checked=self.checked,
            first_broken_seq=broken_seq,
            reason=reason,
            last_seq=self.last_seq,
            last_hash=self.last_hash,
            checkpoints_checked=self.checkpoints if self.key else None,
            purged_through=self.purged_through,
            warnings=warnings,
        )

    def run(self, from_seq: int, to_seq: int | None) -> VerifyResult:
        snapshot = self._head_snapshot()
        if snapshot is None:
            return self.result(None, HEAD_MISSING)
        head_seq, head_hash, min_seq, max_seq = snapshot
        end = max(head_seq, max_seq or 0)
        if to_seq is not None:
            end = min(end, to_seq)
        if min_seq is not None and min_seq > 1 and from_seq <= min_seq:
            if problem := self._purged_prefix(min_seq):
                return problem
            from_seq = min_seq
        elif from_seq > 1 and (problem := self._anchor(from_seq - 1, head_seq, head_hash)):
            return problem
        marks = _Peekable(self._marks(from_seq, to_seq))
        for row in self._rows(from_seq, end):
            if row.seq != self.last_seq + 1:
                if row.seq > self.last_seq + 1:
                    return self.result(self.last_seq + 1, SEQ_MISSING)
                return self.result(row.seq, SEQ_DUPLICATE)
            if event_hash(row) != row.hash:
                return self.result(row.seq, HASH_MISMATCH)
            if row.prev_hash != self.last_hash:
                return self.result(row.seq, LINK_BROKEN)
            while (mark := marks.pop_through(row.seq)) is not None:
                if problem := self._check_mark(mark, row):
                    return problem
            if row.seq > head_seq or (row.seq == head_seq and row.hash != head_hash):
                return self.result(row.seq, HEAD_MISMATCH)
            self.checked += 1
            self.last_seq, self.last_hash = row.seq, row.hash
        if self.last_seq < end:
            return self.result(self.last_seq + 1, SEQ_MISSING)
        if (beyond := marks.pop_through(None)) is not None:
            return self._beyond(beyond)
        return self.result(warnings=self._warnings(head_seq))

    def _signed(self, mark: _Mark) -> AuditCheckpoint | None:
        """The first checkpoint of the mark whose signature does not hold, if any."""
        for checkpoint in (mark.stored, mark.exported):
            if checkpoint is not None and not (self.key and self.key.verifies(checkpoint)):
                return checkpoint
        return None

    def _check_mark(self, mark: _Mark, row: AuditEvent) -> VerifyResult | None:
        self.checkpoints += 1
        if mark.unreadable:
            return self.result(mark.seq, EXPORT_UNREADABLE)
        if (forged := self._signed(mark)) is not None:
            return self.result(forged.seq, BAD_SIGNATURE)
        for checkpoint in (mark.stored, mark.exported):
            if checkpoint is not None and (checkpoint.seq, checkpoint.hash) != (row.seq, row.hash):
                return self.result(checkpoint.seq, CHECKPOINT_MISMATCH)
        if mark.stored is None:
            return self.result(mark.seq, CHECKPOINT_DELETED)
        if mark.exported is None:
            self.unexported.append(mark.seq)
        return None

    def _beyond(self, mark: _Mark) -> VerifyResult:
        """A checkpoint past the chain's end: the chain lost its tail, unless it is forged."""
        if mark.unreadable:
            return self.result(mark.seq, EXPORT_UNREADABLE)
        if (forged := self._signed(mark)) is not None:
            return self.result(forged.seq, BAD_SIGNATURE)
        return self.result(self.last_seq + 1, TRUNCATED)

    def _warnings(self, head_seq: int) -> tuple[VerifyWarning, ...]:
        if self.key is None:
            return (_warn(NO_VERIFY_KEY),)
        warnings: list[VerifyWarning] = []
        if self.unexported:
            warnings.append(_warn(NOT_EXPORTED, count=len(self.unexported), seq=self.unexported[0]))
        newest = self._newest_checkpoint(self.key)
        hours = get_settings().audit_checkpoint_max_age_hours
        if newest is None:
            if head_seq > 0:
                warnings.append(_warn(NO_CHECKPOINT))
        # a quiet chain is covered by its last checkpoint however old; a growing one is not
        elif newest.seq < head_seq and newest.signed_at < utcnow() - timedelta(hours=hours):
            signed_at = newest.signed_at.astimezone(UTC)
            warnings.append(
                _warn(
                    STALE_CHECKPOINT,
                    seq=newest.seq,
                    signed_at=signed_at.isoformat(timespec="seconds"),
                    signed_at_jst=to_jst(signed_at),
                    hours=hours,
                )
            )
        return tuple(warnings)

    def _newest_checkpoint(self, key: CheckpointKey) -> AuditCheckpoint | None:
        stored = self.session.exec(
            select(AuditCheckpoint)
            .where(AuditCheckpoint.tenant_id == self.tenant_id)
            .order_by(AuditCheckpoint.seq.desc())
            .limit(1)
            .execution_options(populate_existing=True)
        ).first()
        exported = audit_export.read(self.tenant_id, self.exported[-1]) if self.exported else None
        # a range walk may not have reached the newest: a forged one must not hide staleness
        found = [c for c in (stored, exported) if c is not None and key.verifies(c)]
        return max(found, key=lambda c: c.seq, default=None)

    def _head_snapshot(self) -> tuple[int, str, int | None, int | None] | None:
        # One statement, so one snapshot: concurrent writers and the purge move head and rows
        # together.
        mine = AuditEvent.tenant_id == self.tenant_id
        min_seq = select(func.min(AuditEvent.seq)).where(mine).scalar_subquery()
        max_seq = select(func.max(AuditEvent.seq)).where(mine).scalar_subquery()
        row = self.session.exec(
            select(AuditChainHead.seq, AuditChainHead.hash, min_seq, max_seq).where(
                AuditChainHead.tenant_id == self.tenant_id
            )
        ).first()
        return None if row is None else (row[0], row[1], row[2], row[3])

    def _purged_prefix(self, first: int) -> VerifyResult | None:
        """Rows 1..first-1 are gone: only a recorded purge up to a signed checkpoint explains it.
        The walk then continues from the checkpoint's hash."""
        checkpoint = self.session.exec(
            select(AuditCheckpoint)
            .where(AuditCheckpoint.tenant_id == self.tenant_id, AuditCheckpoint.seq == first - 1)
            .execution_options(populate_existing=True)
        ).first()
        if checkpoint is None:
            return self.result(1, SEQ_MISSING)
        if self.key is not None:
            self.checkpoints += 1
            mark = self._mark(checkpoint.seq, checkpoint)
            if mark.unreadable:
                return self.result(mark.seq, EXPORT_UNREADABLE)
            if (forged := self._signed(mark)) is not None:
                return self.result(forged.seq, BAD_SIGNATURE)
            if mark.exported is not None and mark.exported.hash != checkpoint.hash:
                return self.result(mark.seq, CHECKPOINT_MISMATCH)
            if mark.exported is None:
                self.unexported.append(mark.seq)
        if not self._purge_recorded(checkpoint.seq):
            return self.result(1, PREFIX_UNRECORDED)
        self.last_seq, self.last_hash = checkpoint.seq, checkpoint.hash
        self.purged_through = checkpoint.seq
        return None

    def _purge_recorded(self, boundary: int) -> bool:
        events = self.session.exec(
            select(AuditEvent)
            .where(
                AuditEvent.tenant_id == self.tenant_id,
                AuditEvent.action == PURGE_ACTION,
                AuditEvent.seq > boundary,
            )
            .execution_options(populate_existing=True)
        ).all()
        return any(
            event_hash(event) == event.hash
            and json.loads(event.details).get("purged_through") == boundary
            for event in events
        )

    def _anchor(self, seq: int, head_seq: int, head_hash: str) -> VerifyResult | None:
        """The row before from_seq: the walk continues from its hash."""
        row = self.session.exec(
            select(AuditEvent)
            .where(AuditEvent.tenant_id == self.tenant_id, AuditEvent.seq == seq)
            .execution_options(populate_existing=True)
        ).first()
        if row is None:
            return self.result(seq, SEQ_MISSING)
        if event_hash(row) != row.hash:
            return self.result(seq, HASH_MISMATCH)
        if seq > head_seq or (seq == head_seq and row.hash != head_hash):
            return self.result(seq, HEAD_MISMATCH)
        self.last_seq, self.last_hash = row.seq, row.hash
        return None

    def _rows(self, from_seq: int, end: int) -> Iterator[AuditEvent]:
        after = from_seq - 1
        while True:
            batch = self.session.exec(
                select(AuditEvent)
                .where(
                    AuditEvent.tenant_id == self.tenant_id,
                    AuditEvent.seq > after,
                    AuditEvent.seq <= end,
                )
                .order_by(AuditEvent.seq)
                .limit(BATCH)
                # the verifier must see the database, never objects cached in the session
                .execution_options(populate_existing=True)
            ).all()
            yield from batch
            if len(batch) < BATCH:
                return
            after = batch[-1].seq

    def _marks(self, from_seq: int, to_seq: int | None) -> Iterator[_Mark]:
        """The database's checkpoints and the exported files merged by seq."""
        stored = _Peekable(self._checkpoints(from_seq, to_seq))
        for seq in self.exported:
            if seq < from_seq or (to_seq is not None and seq > to_seq):
                continue
            while (checkpoint := stored.pop_through(seq - 1)) is not None:
                yield _Mark(checkpoint.seq, checkpoint, None)
            yield self._mark(seq, stored.pop_through(seq))
        while (checkpoint := stored.pop_through(None)) is not None:
            yield _Mark(checkpoint.seq, checkpoint, None)

    def _mark(self, seq: int, stored: AuditCheckpoint | None) -> _Mark:
        if seq not in self.exported_set:
            return _Mark(seq, stored, None)
        exported = audit_export.read(self.tenant_id, seq)
        return _Mark(seq, stored, exported, unreadable=exported is None)

    def _checkpoints(self, from_seq: int, to_seq: int | None) -> Iterator[AuditCheckpoint]:
        if self.key is None:
            return
        after = from_seq - 1
        while True:
            query = select(AuditCheckpoint).where(
                AuditCheckpoint.tenant_id == self.tenant_id, AuditCheckpoint.seq > after
            )
            if to_seq is not None:
                query = query.where(AuditCheckpoint.seq <= to_seq)
            batch = self.session.exec(
                query.order_by(AuditCheckpoint.seq)
                .limit(BATCH)
                .execution_options(populate_existing=True)
            ).all()
            yield from batch
            if len(batch) < BATCH:
                return
            after = batch[-1].seq


class _Sequenced(Protocol):
    seq: int


T = TypeVar("T", bound=_Sequenced)


class _Peekable(Generic[T]):
    def __init__(self, items: Iterator[T]) -> None:
        self.items = items
        self.head = next(items, None)

    def pop_through(self, seq: int | None) -> T | None:
        """The next item if its seq is at most seq (or any next item if seq is None)."""
        item = self.head
        if item is None or (seq is not None and item.seq > seq):
            return None
        self.head = next(self.items, None)
        return item


def chains() -> list[tuple[uuid.UUID, str]]:
    """(tenant id, name) of every chain, the platform's included, oldest brigade first."""
    with unit_of_work(PLATFORM_TENANT_ID) as session:
        rows = session.exec(select(Tenant.id, Tenant.name).order_by(Tenant.created_at)).all()
    return [(tenant_id, name) for tenant_id, name in rows]


def _find_tenants(spec: str | None) -> list[tuple[uuid.UUID, str]]:
    tenants = chains()
    if spec is None:
        return tenants
    if spec == "platform":
        spec = str(PLATFORM_TENANT_ID)
    return [(tenant_id, name) for tenant_id, name in tenants if spec in (str(tenant_id), name)]


def describe(result: VerifyResult, tenant_id: uuid.UUID, name: str) -> str:
    who = f"{name} ({tenant_id})"
    if not result.ok:
        where = f"seq {result.first_broken_seq}" if result.first_broken_seq else "-"
        english = ENGLISH.get(result.reason, result.reason)
        return f"NG   {who}: {where}: {result.reason} / {english}"
    if result.checkpoints_checked is None:
        checkpoints, checkpoints_en = "チェックポイント未確認", "checkpoints not checked"
    else:
        checkpoints = f"チェックポイント {result.checkpoints_checked}件"
        checkpoints_en = f"{result.checkpoints_checked} checkpoints"
    purged = purged_en = ""
    if result.purged_through:
        purged = f"、seq {result.purged_through} までは保存期間により削除済み"
        purged_en = f", purged by retention through seq {result.purged_through}"
    lines = [
        f"{'WARN' if result.warnings else 'OK  '} {who}: {result.checked}件を検証"
        f"（最終 seq {result.last_seq}、{checkpoints}{purged}） / verified {result.checked} "
        f"events (last seq {result.last_seq}, {checkpoints_en}{purged_en})"
    ]
    lines += [f"     警告: {w.japanese} / warning: {w.english}" for w in result.warnings]
    return "\n".join(lines)


def main_verify(tenant: str | None) -> int:
    """`cli.py verify-audit [tenant]`: 0 if every chain holds and every check could be made,
    1 if one is broken, 2 if the tenant (id, name or "platform") is unknown, 3 if every chain
    holds but with warnings (no public key, no or a stale checkpoint, checkpoints missing from
    the export directory): a cron job or monitor must not read that as a pass."""
    targets = _find_tenants(tenant)
    if not targets:
        print(f"NG   消防団が見つかりません / no such brigade: {tenant}")
        return 2
    broken = warned = 0
    for tenant_id, name in targets:
        with unit_of_work(tenant_id) as session:
            result = verify_chain(session, tenant_id)
        print(describe(result, tenant_id, name))
        broken += not result.ok
        warned += bool(result.warnings)
    return 1 if broken else 3 if warned else 0
