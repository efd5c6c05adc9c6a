"""The audit log resists tampering (white paper 12.4.1 / 18.1.3): every way of changing a chain
behind the application's back is found, at the right seq.

Tampering goes through the schema owner, which still hits the append-only triggers, so the forger
switches them off inside its transaction. Every tampering is rolled back after the verifier has
run on the tampered rows, so each test starts from an intact chain.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import random
import secrets
import threading
import time
import tomllib
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sqlalchemy import Engine, bindparam, delete, insert, inspect, text, update
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session, SQLModel, select

import cli
import config
from core.actor import RequestContext
from models import AuditChainHead, AuditCheckpoint, AuditEvent
from models.base import utcnow
from models.enums import AuditCategory
from models.tenant import PLATFORM_TENANT_ID
from services import audit, audit_checkpoint, audit_export, audit_verify
from services.audit import GENESIS_HASH, event_hash
from services.audit_checkpoint import (
    ExportFailed,
    checkpoint_all,
    main_checkpoint,
    main_public_key,
    write_checkpoint,
)
from services.audit_verify import (
    BAD_SIGNATURE,
    CHECKPOINT_DELETED,
    CHECKPOINT_MISMATCH,
    EXPORT_UNREADABLE,
    HASH_MISMATCH,
    HEAD_MISMATCH,
    HEAD_MISSING,
    LINK_BROKEN,
    NO_CHECKPOINT,
    NO_VERIFY_KEY,
    NOT_EXPORTED,
    SEQ_MISSING,
    STALE_CHECKPOINT,
    TRUNCATED,
    AuditChainBroken,
    VerifyResult,
    main_verify,
    sign_checkpoint,
    verify_chain,
)
from services.db import build_engine, set_tenant, unit_of_work
from tests.conftest import _create_postgres_database, _drop_postgres_database, alembic_config
from tests.factories import admin, make_tenant

EVENTS = AuditEvent.__table__
HEADS = AuditChainHead.__table__
CHECKPOINTS = AuditCheckpoint.__table__
LOCKED = ("audit_event", "audit_checkpoint")
SEED = secrets.token_bytes(32)
VERIFY_KEY = config.verify_key_of(SEED)
EDITABLE = {
    "action": 60,
    "outcome": 20,
    "category": 20,
    "actor_type": 20,
    "actor_id": 40,
    "actor_label": 100,
    "target_type": 40,
    "target_id": 80,
    "request_id": 40,
    "client_addr": 64,
    "user_agent": 300,
    "details": 1000,
    "details_enc": 1000,
}


@pytest.fixture(scope="module", autouse=True)
def signing_key(engine: Engine, tmp_path_factory) -> Iterator[Ed25519PrivateKey]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HIKESHI_AUDIT_SIGNING_KEY", base64.urlsafe_b64encode(SEED).decode().rstrip("="))
        mp.setenv("HIKESHI_AUDIT_VERIFY_KEY", VERIFY_KEY)
        mp.setenv("HIKESHI_AUDIT_CHECKPOINT_DIR", str(tmp_path_factory.mktemp("checkpoints")))
        mp.delenv("HIKESHI_AUDIT_CHECKPOINT_MAX_AGE_HOURS", raising=False)
        config.get_settings.cache_clear()
        yield Ed25519PrivateKey.from_private_bytes(SEED)
    config.get_settings.cache_clear()


@contextmanager
def settings_env(**values: str | None) -> Iterator[None]:
    with pytest.MonkeyPatch.context() as mp:
        for name, value in values.items():
            if value is None:
                mp.delenv(name, raising=False)
            else:
                mp.setenv(name, value)
        config.get_settings.cache_clear()
        yield
    config.get_settings.cache_clear()


def no_signing_key():
    return settings_env(HIKESHI_AUDIT_SIGNING_KEY=None)


def no_verify_key():
    return settings_env(HIKESHI_AUDIT_VERIFY_KEY=None)


@pytest.fixture
def own_checkpoint_dir(own_database: Engine, tmp_path: Path) -> Iterator[Path]:
    """A database of its own restarts the platform's chain at seq 1: its checkpoint files must
    not meet those of the shared database's platform chain."""
    directory = tmp_path / "own-checkpoints"
    with settings_env(HIKESHI_AUDIT_CHECKPOINT_DIR=str(directory)):
        yield directory


def kinds(result: VerifyResult) -> list[str]:
    return [w.kind for w in result.warnings]


def append(tenant_id: uuid.UUID, count: int) -> None:
    actor = admin(tenant_id)
    with unit_of_work(tenant_id) as session:
        for n in range(count):
            audit.record(
                session,
                actor,
                category=AuditCategory.OPERATION,
                action="test.event",
                target_type="member",
                target_id=f"M{n:05d}",
                details={"n": n},
            )
        session.commit()


@dataclass(frozen=True)
class Chain:
    tenant_id: uuid.UUID
    length: int
    checkpoints: tuple[int, ...]


def build_chain(chunks: tuple[int, ...]) -> Chain:
    """A fresh tenant's chain with a signed checkpoint after each chunk."""
    tenant_id = make_tenant()
    for size in chunks:
        append(tenant_id, size)
        assert write_checkpoint(tenant_id) is not None
    with unit_of_work(tenant_id) as session:
        seqs = session.exec(
            select(AuditCheckpoint.seq)
            .where(AuditCheckpoint.tenant_id == tenant_id)
            .order_by(AuditCheckpoint.seq)
        ).all()
    return Chain(tenant_id, seqs[-1], tuple(seqs))


@pytest.fixture(scope="module")
def long_chain(engine: Engine) -> Chain:
    started = time.perf_counter()
    chain = build_chain((700, 800, 500))
    print(f"\n[audit] built {chain.length} events in {time.perf_counter() - started:.1f}s")
    assert chain.checkpoints == (700, 1500, 2000)
    return chain


class Forger:
    """Changes one tenant's chain as the schema owner, in a transaction the test controls."""

    def __init__(self, session: Session, tenant_id: uuid.UUID) -> None:
        self.session = session
        self.tenant_id = tenant_id
        self.postgres = session.get_bind().dialect.name == "postgresql"
        self.dropped_triggers: list[str] | None = None

    def verify(self, **kwargs: int | None) -> VerifyResult:
        self.relock()
        return verify_chain(self.session, self.tenant_id, **kwargs)

    def unlock(self) -> None:
        """Switch the append-only triggers of the events and the checkpoints off for the rest of
        this transaction or relock()."""
        if self.dropped_triggers is not None:
            return
        if self.postgres:
            for table in LOCKED:
                self.session.execute(text(f"ALTER TABLE {table} DISABLE TRIGGER USER"))
            self.dropped_triggers = []
            return
        triggers = self.session.execute(
            text(
                "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' "
                "AND tbl_name IN ('audit_event', 'audit_checkpoint')"
            )
        ).all()
        for name, _sql in triggers:
            self.session.execute(text(f"DROP TRIGGER {name}"))
        self.dropped_triggers = [sql for _name, sql in triggers]

    def relock(self) -> None:
        if self.dropped_triggers is None:
            return
        if self.postgres:
            for table in LOCKED:
                self.session.execute(text(f"ALTER TABLE {table} ENABLE TRIGGER USER"))
        for sql in self.dropped_triggers:
            self.session.execute(text(sql))
        self.dropped_triggers = None

    def _mine(self, *conditions):
        return (EVENTS.c.tenant_id == self.tenant_id, *conditions)

    def rows(self, first: int, last: int) -> list[AuditEvent]:
        result = self.session.execute(
            select(EVENTS)
            .where(*self._mine(EVENTS.c.seq.between(first, last)))
            .order_by(EVENTS.c.seq)
        )
        return [AuditEvent(**row._mapping) for row in result]

    def hash_at(self, seq: int) -> str:
        return self.rows(seq, seq)[0].hash if seq else GENESIS_HASH

    def edit(self, seq: int, **values: object) -> None:
        self.unlock()
        self.session.execute(update(EVENTS).where(*self._mine(EVENTS.c.seq == seq)).values(values))

    def edit_and_rehash(self, seq: int, **values: object) -> None:
        (row,) = self.rows(seq, seq)
        for name, value in values.items():
            setattr(row, name, value)
        self.edit(seq, **values, hash=event_hash(row))

    def delete(self, first: int, last: int | None = None) -> None:
        self.unlock()
        self.session.execute(
            delete(EVENTS).where(*self._mine(EVENTS.c.seq.between(first, last or first)))
        )

    def truncate(self, after: int, *, fix_head: bool) -> None:
        self.unlock()
        self.session.execute(delete(EVENTS).where(*self._mine(EVENTS.c.seq > after)))
        if fix_head:
            self.set_head(seq=after, hash=self.hash_at(after))

    def move(self, seq: int, to: int) -> None:
        self.unlock()
        self.session.execute(update(EVENTS).where(*self._mine(EVENTS.c.seq == seq)).values(seq=to))

    def swap(self, a: int, b: int) -> None:
        self.move(a, -1)
        self.move(b, a)
        self.move(-1, b)

    def insert_forged(self, seq: int) -> None:
        """A well-formed row at seq, linked to the row before; later rows move up by one."""
        self.unlock()
        mine = self._mine(EVENTS.c.seq >= seq)
        self.session.execute(update(EVENTS).where(*mine).values(seq=-EVENTS.c.seq))
        self.session.execute(
            update(EVENTS).where(*self._mine(EVENTS.c.seq < 0)).values(seq=1 - EVENTS.c.seq)
        )
        forged = AuditEvent(
            tenant_id=self.tenant_id,
            seq=seq,
            category=AuditCategory.OPERATION,
            action="member.delete",
            actor_type="member",
            actor_label="forger",
            prev_hash=self.hash_at(seq - 1),
            hash="",
        )
        forged.hash = event_hash(forged)
        self.session.execute(
            insert(EVENTS).values({c.name: getattr(forged, c.name) for c in EVENTS.c})
        )

    def rewrite(self, first: int, last: int, *, fix_head: bool) -> None:
        """Change row first and re-chain first..last with correctly recomputed hashes."""
        rows = self.rows(first, last)
        rows[0].action = "rewritten"
        previous = self.hash_at(first - 1)
        for row in rows:
            row.prev_hash = previous
            row.hash = previous = event_hash(row)
        self.unlock()
        self.session.execute(
            update(EVENTS)
            .where(EVENTS.c.id == bindparam("row_id"))
            .values(action=bindparam("new_action"), prev_hash=bindparam("p"), hash=bindparam("h"))
            .execution_options(synchronize_session=False),
            [{"row_id": r.id, "new_action": r.action, "p": r.prev_hash, "h": r.hash} for r in rows],
        )
        if fix_head:
            self.set_head(seq=last, hash=previous)

    def set_head(self, **values: object) -> None:
        self.session.execute(
            update(HEADS).where(HEADS.c.tenant_id == self.tenant_id).values(values)
        )

    def delete_checkpoints(self, first: int = 0) -> None:
        """What a forger who read the old issue does next: the database's checkpoints go."""
        self.unlock()
        self.session.execute(
            delete(CHECKPOINTS).where(
                CHECKPOINTS.c.tenant_id == self.tenant_id, CHECKPOINTS.c.seq >= first
            )
        )

    def add_checkpoint(self, checkpoint: AuditCheckpoint) -> None:
        self.session.execute(
            insert(CHECKPOINTS).values({c.name: getattr(checkpoint, c.name) for c in CHECKPOINTS.c})
        )

    def forge_checkpoint(self, seq: int, how: str, rng: random.Random | None = None) -> None:
        rng = rng or random.Random(seq)
        stolen = self.session.execute(
            select(CHECKPOINTS).where(CHECKPOINTS.c.tenant_id == self.tenant_id).limit(1)
        ).one()
        row_hash = self.hash_at(seq) if self.rows(seq, seq) else rng.randbytes(32).hex()
        if how == "other-key":
            key = Ed25519PrivateKey.generate()
            forged = sign_checkpoint(
                key, tenant_id=self.tenant_id, seq=seq, hash=row_hash, signed_at=utcnow()
            )
        else:
            forged = AuditCheckpoint(
                tenant_id=self.tenant_id,
                seq=seq,
                hash=row_hash,
                signed_at=stolen.signed_at if how == "moved" else utcnow(),
                key_id=stolen.key_id,
                signature=stolen.signature
                if how == "moved"
                else base64.b64encode(rng.randbytes(64)).decode(),
            )
        self.add_checkpoint(forged)


@contextmanager
def forging(owner_engine: Engine, tenant_id: uuid.UUID, *, commit: bool = False):
    with Session(owner_engine) as session:
        set_tenant(session, tenant_id)
        try:
            forger = Forger(session, tenant_id)
            yield forger
            forger.relock()
            if commit:
                session.commit()
        finally:
            session.rollback()


def assert_broken(result: VerifyResult, seq: int, reason: str) -> None:
    assert (result.ok, result.first_broken_seq, result.reason) == (False, seq, reason), result


# --- the intact chain -----------------------------------------------------------------------


def test_intact_chain_verifies_with_its_checkpoints(long_chain, owner_engine, engine):
    for chosen in (engine, owner_engine):
        with Session(chosen) as session:
            result = verify_chain(session, long_chain.tenant_id)
        assert result.ok and result.warnings == (), result
        assert (result.checked, result.last_seq, result.checkpoints_checked) == (2000, 2000, 3)


def test_the_verifier_needs_only_the_public_key(long_chain, engine):
    with no_signing_key(), Session(engine) as session:
        assert config.get_settings().audit_signing_key is None
        result = verify_chain(session, long_chain.tenant_id)
    assert result.ok and result.warnings == () and result.checkpoints_checked == 3


def test_a_range_verifies_on_its_own(long_chain, owner_engine):
    with forging(owner_engine, long_chain.tenant_id) as forger:
        forger.edit(1800, action="forged")
        result = forger.verify(from_seq=1001, to_seq=1500)
        assert (result.ok, result.checked, result.last_seq) == (True, 500, 1500)
        assert_broken(forger.verify(from_seq=1501), 1800, HASH_MISMATCH)


def test_without_a_public_key_verification_warns_instead_of_passing(long_chain, engine, capsys):
    with no_verify_key():
        with Session(engine) as session:
            result = verify_chain(session, long_chain.tenant_id)
        assert main_verify(str(long_chain.tenant_id)) == 3
    assert result.ok and result.checkpoints_checked is None
    assert kinds(result) == [NO_VERIFY_KEY]
    out = capsys.readouterr().out
    assert out.startswith("WARN") and "HIKESHI_AUDIT_VERIFY_KEY is not set" in out
    assert "公開鍵が設定されていない" in out


def test_without_a_signing_key_no_checkpoint_is_written(long_chain):
    with no_signing_key():
        assert write_checkpoint(long_chain.tenant_id) is None
        assert checkpoint_all().available is False
        assert main_checkpoint() == 1


def test_a_wrong_public_key_fails_and_the_signer_refuses_it(long_chain, engine, capsys):
    other = config.verify_key_of(secrets.token_bytes(32))
    with settings_env(HIKESHI_AUDIT_VERIFY_KEY=other):
        with Session(engine) as session:
            assert_broken(verify_chain(session, long_chain.tenant_id), 700, BAD_SIGNATURE)
        assert main_verify(str(long_chain.tenant_id)) == 1
        with pytest.raises(config.ConfigError, match="does not belong"):
            write_checkpoint(long_chain.tenant_id)
    assert "invalid checkpoint signature" in capsys.readouterr().out


# --- each kind of tampering -------------------------------------------------------------------

LATER = "2030-01-01 00:00:00+00:00"
SCENARIOS: dict[str, tuple[Callable[[Forger], None], int, str]] = {
    "edit-action": (lambda f: f.edit(1234, action="member.view"), 1234, HASH_MISMATCH),
    "edit-details": (lambda f: f.edit(3, details='{"n": 999}'), 3, HASH_MISMATCH),
    "edit-last-of-batch": (lambda f: f.edit(1000, outcome="denied"), 1000, HASH_MISMATCH),
    "edit-first-of-batch": (lambda f: f.edit(1001, actor_label="x"), 1001, HASH_MISMATCH),
    "edit-hash": (lambda f: f.edit(77, hash="f" * 64), 77, HASH_MISMATCH),
    "edit-and-rehash": (lambda f: f.edit_and_rehash(900, action="x"), 901, LINK_BROKEN),
    "delete-row": (lambda f: f.delete(1001), 1001, SEQ_MISSING),
    "delete-first-row": (lambda f: f.delete(1), 1, SEQ_MISSING),
    "delete-last-row": (lambda f: f.delete(2000), 2000, SEQ_MISSING),
    "insert-row": (lambda f: f.insert_forged(1001), 1002, HASH_MISMATCH),
    "insert-row-at-checkpoint": (lambda f: f.insert_forged(1500), 1500, CHECKPOINT_MISMATCH),
    "append-past-head": (lambda f: f.insert_forged(2001), 2001, HEAD_MISMATCH),
    "swap-rows": (lambda f: f.swap(500, 1600), 500, HASH_MISMATCH),
    "swap-neighbours": (lambda f: f.swap(1000, 1001), 1000, HASH_MISMATCH),
    "rewrite-from-1200": (
        lambda f: f.rewrite(1200, 2000, fix_head=True),
        1500,
        CHECKPOINT_MISMATCH,
    ),
    "rewrite-from-1600": (
        lambda f: f.rewrite(1600, 2000, fix_head=True),
        2000,
        CHECKPOINT_MISMATCH,
    ),
    "rewrite-a-stretch": (lambda f: f.rewrite(1100, 1200, fix_head=False), 1201, LINK_BROKEN),
    "truncate-after-1800": (lambda f: f.truncate(1800, fix_head=True), 1801, TRUNCATED),
    "truncate-everything": (lambda f: f.truncate(0, fix_head=True), 1, TRUNCATED),
    "truncate-keeping-head": (lambda f: f.truncate(1800, fix_head=False), 1801, SEQ_MISSING),
    "head-hash": (lambda f: f.set_head(hash="0" * 64), 2000, HEAD_MISMATCH),
    "head-ahead": (lambda f: f.set_head(seq=2005), 2001, SEQ_MISSING),
    "checkpoint-other-key": (lambda f: f.forge_checkpoint(1000, "other-key"), 1000, BAD_SIGNATURE),
    "checkpoint-garbage": (lambda f: f.forge_checkpoint(1999, "garbage"), 1999, BAD_SIGNATURE),
    "checkpoint-moved": (lambda f: f.forge_checkpoint(42, "moved"), 42, BAD_SIGNATURE),
    "checkpoint-past-end": (lambda f: f.forge_checkpoint(5000, "other-key"), 5000, BAD_SIGNATURE),
}


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_tampering_is_found_at_the_first_broken_seq(long_chain, owner_engine, name):
    tamper, seq, reason = SCENARIOS[name]
    with forging(owner_engine, long_chain.tenant_id) as forger:
        tamper(forger)
        result = forger.verify()
    assert_broken(result, seq, reason)
    assert result.last_seq == seq - 1 or reason in (
        BAD_SIGNATURE,
        CHECKPOINT_MISMATCH,
        HEAD_MISMATCH,
    )


@pytest.mark.parametrize("name", ["rewrite-from-1200", "truncate-after-1800"])
def test_some_tampering_only_a_checkpoint_can_show(long_chain, owner_engine, name):
    tamper, _seq, _reason = SCENARIOS[name]
    with forging(owner_engine, long_chain.tenant_id) as forger:
        tamper(forger)
        with no_verify_key():
            unchecked = forger.verify()
        assert unchecked.ok and kinds(unchecked) == [NO_VERIFY_KEY]
        assert not forger.verify().ok


def test_missing_chain_head_is_reported(long_chain, owner_engine):
    with forging(owner_engine, long_chain.tenant_id) as forger:
        forger.session.execute(delete(HEADS).where(HEADS.c.tenant_id == long_chain.tenant_id))
        result = forger.verify()
    assert (result.ok, result.reason) == (False, HEAD_MISSING)


def test_tampering_is_rolled_back(long_chain, engine):
    with Session(engine) as session:
        assert verify_chain(session, long_chain.tenant_id).ok


# --- randomized tampering -------------------------------------------------------------------


@pytest.fixture(scope="module")
def short_chain(engine: Engine) -> Chain:
    return build_chain((23, 31, 19, 27))


KINDS = ("edit", "edit2", "rehash", "delete", "insert", "swap", "rewrite", "truncate", "head")
KINDS += ("checkpoint",)


def random_tampering(rng: random.Random, chain: Chain) -> tuple[str, Callable, tuple[int, str]]:
    """One tampering and the (seq, reason) the verifier must report for it."""
    n, marks = chain.length, chain.checkpoints
    kind = rng.choice(KINDS)
    s = rng.randint(1, n)
    if kind == "edit":
        field, value = random_edit(rng, chain, s)
        return kind, lambda f: f.edit(s, **{field: value(f)}), (s, HASH_MISMATCH)
    if kind == "edit2":
        t = rng.randint(1, n)
        first, second = random_edit(rng, chain, s), random_edit(rng, chain, t)
        return (
            kind,
            lambda f: (
                f.edit(s, **{first[0]: first[1](f)}),
                f.edit(t, **{second[0]: second[1](f)}),
            ),
            (min(s, t), HASH_MISMATCH),
        )
    if kind == "rehash":
        field, value = random_edit(rng, chain, s, hashable_only=True)
        expected = (
            (s, CHECKPOINT_MISMATCH)
            if s in marks
            else (s, HEAD_MISMATCH)
            if s == n
            else (s + 1, LINK_BROKEN)
        )
        return kind, lambda f: f.edit_and_rehash(s, **{field: value(f)}), expected
    if kind == "delete":
        last = min(n, s + rng.randint(0, 3))
        return kind, lambda f: f.delete(s, last), (s, SEQ_MISSING)
    if kind == "insert":
        k = rng.randint(1, n + 1)
        expected = (
            (k, CHECKPOINT_MISMATCH)
            if k in marks
            else (k, HEAD_MISMATCH)
            if k >= n
            else (k + 1, HASH_MISMATCH)
        )
        return kind, lambda f: f.insert_forged(k), expected
    if kind == "swap":
        a, b = sorted(rng.sample(range(1, n + 1), 2))
        return kind, lambda f: f.swap(a, b), (a, HASH_MISMATCH)
    if kind == "rewrite":
        last = n if rng.random() < 0.3 else min(n, s + rng.randint(0, 25))
        fix_head = rng.random() < 0.5
        hit = next((c for c in marks if s <= c <= last), None)
        expected = (hit, CHECKPOINT_MISMATCH) if hit else (last + 1, LINK_BROKEN)
        return kind, lambda f: f.rewrite(s, last, fix_head=fix_head), expected
    if kind == "truncate":
        after, fix_head = s - 1, rng.random() < 0.7
        expected = (s, TRUNCATED if fix_head else SEQ_MISSING)
        return kind, lambda f: f.truncate(after, fix_head=fix_head), expected
    if kind == "head":
        return random_head_change(rng, n)
    q = rng.choice([c for c in range(1, n + 30) if c not in marks])
    how = rng.choice(["other-key", "garbage", "moved"])
    return kind, lambda f: f.forge_checkpoint(q, how, rng), (q, BAD_SIGNATURE)


def random_edit(
    rng: random.Random, chain: Chain, seq: int, *, hashable_only: bool = False
) -> tuple[str, Callable[[Forger], object]]:
    # a forger who rehashes the row leaves prev_hash alone: changing it breaks the link at once
    choices = [*EDITABLE, "occurred_at", "id"]
    field = rng.choice(choices if hashable_only else [*choices, "prev_hash", "hash"])
    token = f"~{rng.getrandbits(40):x}"
    if field in EDITABLE:
        return field, lambda f: token[: EDITABLE[field]]
    if field == "occurred_at":
        shift = timedelta(microseconds=rng.choice([1, -1, 1000, 86_400_000_000]))
        return field, lambda f: f.rows(seq, seq)[0].occurred_at + shift
    if field == "id":
        new_id = uuid.UUID(int=rng.getrandbits(128))
        return field, lambda f: new_id
    digest = rng.randbytes(32).hex()
    return field, lambda f: digest


def random_head_change(rng: random.Random, n: int) -> tuple[str, Callable, tuple[int, str]]:
    variant = rng.choice(["hash", "ahead", "behind", "behind-consistent"])
    if variant == "hash":
        digest = rng.randbytes(32).hex()
        return "head", lambda f: f.set_head(hash=digest), (n, HEAD_MISMATCH)
    if variant == "ahead":
        return "head", lambda f: f.set_head(seq=n + rng.randint(1, 5)), (n + 1, SEQ_MISSING)
    s = rng.randint(0, n - 1)
    if variant == "behind":
        return "head", lambda f: f.set_head(seq=s), (max(s, 1), HEAD_MISMATCH)
    return (
        "head",
        lambda f: f.set_head(seq=s, hash=f.hash_at(s)),
        (s + 1, HEAD_MISMATCH),
    )


def test_randomized_tampering_is_always_found(short_chain, owner_engine, monkeypatch):
    rng = random.Random(20261126)
    tried = detected = exact = 0
    kinds: Counter[str] = Counter()
    misses: list[str] = []
    started = time.perf_counter()
    for _ in range(1000):
        kind, tamper, (seq, reason) = random_tampering(rng, short_chain)
        monkeypatch.setattr(audit_verify, "BATCH", rng.choice([7, 16, 50, 1000]))
        from_seq = rng.randint(1, min(seq, short_chain.length + 1)) if rng.random() < 0.5 else 1
        with forging(owner_engine, short_chain.tenant_id) as forger:
            tamper(forger)
            result = forger.verify(from_seq=from_seq)
        tried += 1
        kinds[kind] += 1
        detected += not result.ok
        if (result.first_broken_seq, result.reason) == (seq, reason) and not result.ok:
            exact += 1
        elif len(misses) < 10:
            misses.append(f"{kind}: expected {seq} {reason}, got {result}")
    elapsed = time.perf_counter() - started
    print(
        f"\n[audit] random tampering: tried {tried}, detected {detected}, right seq {exact} "
        f"in {elapsed:.1f}s {dict(sorted(kinds.items()))}"
    )
    assert misses == []
    assert detected == tried == exact


# --- checkpoints -----------------------------------------------------------------------------


def test_checkpoint_is_signed_with_the_configured_key(signing_key):
    tenant_id = make_tenant()
    append(tenant_id, 3)
    checkpoint = write_checkpoint(tenant_id)
    assert checkpoint is not None and (checkpoint.seq, checkpoint.tenant_id) == (3, tenant_id)
    public = signing_key.public_key()
    raw = public.public_bytes(Encoding.Raw, PublicFormat.Raw)
    assert checkpoint.key_id == hashlib.sha256(raw).hexdigest()[:16]
    stamp = checkpoint.signed_at.isoformat(timespec="microseconds")
    public.verify(
        base64.b64decode(checkpoint.signature),
        f"hikeshi-checkpoint|v1|{tenant_id}|3|{checkpoint.hash}|{stamp}".encode(),
    )
    assert write_checkpoint(tenant_id) is None
    append(tenant_id, 2)
    assert write_checkpoint(tenant_id).seq == 5


def test_checkpoint_all_covers_every_chain_including_the_platform(own_checkpoint_dir):
    grown, idle = make_tenant(), make_tenant()
    append(grown, 4)
    append(idle, 2)
    first = checkpoint_all()
    append(grown, 1)
    second = checkpoint_all()
    assert first.available and first.broken == {} and second.broken == {}
    assert {grown, idle, PLATFORM_TENANT_ID} <= {c.tenant_id for c in first.written}
    assert [c.seq for c in second.written if c.tenant_id == grown] == [5]
    assert idle not in {c.tenant_id for c in second.written}
    for tenant_id in (grown, PLATFORM_TENANT_ID):
        with unit_of_work(tenant_id) as session:
            head = session.get(AuditChainHead, tenant_id)
            latest = session.exec(
                select(AuditCheckpoint.seq)
                .where(AuditCheckpoint.tenant_id == tenant_id)
                .order_by(AuditCheckpoint.seq.desc())
            ).first()
        assert latest == head.seq


def test_a_broken_chain_is_never_signed_and_the_cli_says_so(owner_engine, capsys):
    tenant_id = make_tenant()
    append(tenant_id, 10)
    write_checkpoint(tenant_id)
    append(tenant_id, 5)
    with forging(owner_engine, tenant_id, commit=True) as forger:
        original = forger.rows(12, 12)[0].action
        forger.edit(12, action="member.view")
    try:
        with pytest.raises(AuditChainBroken) as raised:
            write_checkpoint(tenant_id)
        assert raised.value.result.first_broken_seq == 12
        assert main_verify(str(tenant_id)) == 1
        line = capsys.readouterr().out.strip()
        assert line.startswith("NG") and "seq 12" in line and HASH_MISMATCH in line
        assert "hash mismatch" in line
    finally:
        with forging(owner_engine, tenant_id, commit=True) as forger:
            forger.edit(12, action=original)
    assert write_checkpoint(tenant_id).seq == 15
    assert main_verify(str(tenant_id)) == 0
    assert capsys.readouterr().out.startswith("OK")


def test_cli_verifies_every_chain_and_rejects_unknown_tenants(own_checkpoint_dir, capsys):
    append(make_tenant(), 2)
    assert main_verify(None) == 3  # chains with events and no checkpoint yet
    lines = capsys.readouterr().out.splitlines()
    assert lines and all(line.startswith(("WARN", "     警告")) for line in lines)
    assert any("no signed checkpoint" in line for line in lines)
    assert main_checkpoint() == 0
    assert "新規" in capsys.readouterr().out
    assert main_verify(None) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines and all(line.startswith("OK") for line in lines)
    assert any(str(PLATFORM_TENANT_ID) in line for line in lines)
    assert main_verify("platform") == 0
    assert main_verify(str(uuid.uuid4())) == 2
    assert "no such brigade" in capsys.readouterr().out.splitlines()[-1]


# --- checkpoints outside the database -------------------------------------------------------


def verify(tenant_id: uuid.UUID) -> VerifyResult:
    with unit_of_work(tenant_id) as session:
        return verify_chain(session, tenant_id)


def export_path(tenant_id: uuid.UUID, seq: int) -> Path:
    return audit_export.chain_dir(tenant_id) / f"{seq:012d}.json"


def test_every_checkpoint_is_also_a_file_written_once(signing_key):
    tenant_id = make_tenant()
    append(tenant_id, 3)
    checkpoint = write_checkpoint(tenant_id)
    path = export_path(tenant_id, checkpoint.seq)
    assert json.loads(path.read_text(encoding="utf-8")) == {
        "format": "hikeshi-audit-checkpoint/1",
        "tenant_id": str(tenant_id),
        "seq": checkpoint.seq,
        "hash": checkpoint.hash,
        "signed_at": checkpoint.signed_at.isoformat(timespec="microseconds"),
        "key_id": checkpoint.key_id,
        "signature": checkpoint.signature,
    }
    assert path.stat().st_mode & 0o222 == 0
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left
    assert audit_export.export(checkpoint) is False  # the same checkpoint again changes nothing
    other = sign_checkpoint(
        signing_key, tenant_id=tenant_id, seq=checkpoint.seq, hash="0" * 64, signed_at=utcnow()
    )
    with pytest.raises(audit_export.ExportConflict):
        audit_export.export(other)
    assert audit_export.read(tenant_id, checkpoint.seq).hash == checkpoint.hash


# The attack and its relatives: the forger rewrites or cuts the chain and deletes the
# database's checkpoints that would show it. The files still hold them.
ATTACKS: dict[str, tuple[Callable[[Forger], None], int, str]] = {
    "rewrite-and-delete-every-checkpoint": (
        lambda f: (f.rewrite(1200, 2000, fix_head=True), f.delete_checkpoints()),
        700,
        CHECKPOINT_DELETED,
    ),
    "rewrite-and-delete-the-checkpoints-after-it": (
        lambda f: (f.rewrite(1200, 2000, fix_head=True), f.delete_checkpoints(1200)),
        1500,
        CHECKPOINT_MISMATCH,
    ),
    "truncate-and-delete-the-checkpoints-after-it": (
        lambda f: (f.truncate(1800, fix_head=True), f.delete_checkpoints(1800)),
        1801,
        TRUNCATED,
    ),
    "delete-checkpoints-only": (lambda f: f.delete_checkpoints(1500), 1500, CHECKPOINT_DELETED),
}


@pytest.mark.parametrize("name", list(ATTACKS))
def test_checkpoints_deleted_from_the_database_still_show_in_their_files(
    long_chain, owner_engine, tmp_path, name
):
    tamper, seq, reason = ATTACKS[name]
    with forging(owner_engine, long_chain.tenant_id) as forger:
        tamper(forger)
        with no_signing_key():
            assert_broken(forger.verify(), seq, reason)
        with settings_env(HIKESHI_AUDIT_CHECKPOINT_DIR=str(tmp_path)):
            blind = forger.verify()  # a verifier that has lost the files
    assert blind.ok and blind.warnings, blind  # nothing to show, and it says so


def test_the_checkpoint_job_never_signs_a_rewritten_chain(owner_engine, capsys):
    chain = build_chain((10, 10))
    with forging(owner_engine, chain.tenant_id, commit=True) as forger:
        forger.rewrite(5, chain.length, fix_head=True)
        forger.delete_checkpoints()
    with pytest.raises(AuditChainBroken) as raised:
        write_checkpoint(chain.tenant_id)
    first = chain.checkpoints[0]
    assert (raised.value.result.first_broken_seq, raised.value.result.reason) == (
        first,
        CHECKPOINT_MISMATCH,
    )
    with no_signing_key():
        assert main_verify(str(chain.tenant_id)) == 1
    assert capsys.readouterr().out.startswith("NG")
    assert audit_export.exported_seqs(chain.tenant_id) == list(chain.checkpoints)


def test_a_checkpoint_missing_from_the_files_is_reported_and_exported_again():
    tenant_id = make_tenant()
    append(tenant_id, 4)
    checkpoint = write_checkpoint(tenant_id)
    export_path(tenant_id, checkpoint.seq).unlink()
    missing = verify(tenant_id)
    assert missing.ok and kinds(missing) == [NOT_EXPORTED]
    assert (
        f"1件が書き出し先にありません（最初は連番 {checkpoint.seq}）"
        in missing.warnings[0].japanese
    )
    assert write_checkpoint(tenant_id) is None  # nothing new to sign; the file is written again
    assert export_path(tenant_id, checkpoint.seq).exists()
    assert verify(tenant_id).warnings == ()


def test_a_checkpoint_that_cannot_be_exported_is_reported_and_exported_later(
    tmp_path, monkeypatch, capsys
):
    blocked = tmp_path / "a-file-not-a-directory"
    blocked.write_text("", encoding="utf-8")
    tenant_id = make_tenant()
    append(tenant_id, 2)
    monkeypatch.setattr(audit_checkpoint, "chains", lambda: [(tenant_id, "brigade")])
    with settings_env(HIKESHI_AUDIT_CHECKPOINT_DIR=str(blocked)):
        with pytest.raises(ExportFailed):
            write_checkpoint(tenant_id)
        assert kinds(verify(tenant_id)) == [NOT_EXPORTED]
        append(tenant_id, 1)
        assert main_checkpoint() == 1
        assert "export failed" in capsys.readouterr().out
    assert main_checkpoint() == 0
    assert len(audit_export.exported_seqs(tenant_id)) == 2
    assert verify(tenant_id).warnings == ()


@pytest.mark.parametrize("how", ["garbage", "other-key", "other-chain"])
def test_a_bad_checkpoint_file_fails(how):
    tenant_id = make_tenant()
    append(tenant_id, 3)
    write_checkpoint(tenant_id)
    append(tenant_id, 3)
    last = write_checkpoint(tenant_id)
    seq = last.seq - 1
    if how == "garbage":
        data = b"{not json"
    elif how == "other-key":
        forged = sign_checkpoint(
            Ed25519PrivateKey.generate(),
            tenant_id=tenant_id,
            seq=seq,
            hash="0" * 64,
            signed_at=utcnow(),
        )
        data = audit_export.to_json(forged)
    else:
        other = make_tenant()
        append(other, seq)
        data = export_path(other, write_checkpoint(other).seq).read_bytes()
    export_path(tenant_id, seq).write_bytes(data)
    assert_broken(
        verify(tenant_id), seq, BAD_SIGNATURE if how == "other-key" else EXPORT_UNREADABLE
    )


def test_a_chain_without_any_checkpoint_warns():
    tenant_id = make_tenant()
    append(tenant_id, 2)
    result = verify(tenant_id)
    assert result.ok and kinds(result) == [NO_CHECKPOINT]


def test_a_stale_checkpoint_warns_once_the_chain_grew(capsys):
    tenant_id = make_tenant()
    append(tenant_id, 3)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(audit_checkpoint, "utcnow", lambda: utcnow() - timedelta(hours=49))
        checkpoint = write_checkpoint(tenant_id)
    assert verify(tenant_id).warnings == ()  # a quiet chain is covered however old its checkpoint
    append(tenant_id, 1)
    stale = verify(tenant_id)
    assert stale.ok and kinds(stale) == [STALE_CHECKPOINT]
    assert f"連番 {checkpoint.seq}" in stale.warnings[0].japanese
    assert "48 時間" in stale.warnings[0].japanese
    assert main_verify(str(tenant_id)) == 3
    assert "older than 48 hours" in capsys.readouterr().out
    with settings_env(HIKESHI_AUDIT_CHECKPOINT_MAX_AGE_HOURS="72"):
        assert verify(tenant_id).warnings == ()


def test_the_cli_prints_the_public_key_of_the_signing_seed(capsys):
    with pytest.raises(SystemExit) as exited:
        cli.main(["audit-public-key"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.strip() == f"HIKESHI_AUDIT_VERIFY_KEY={VERIFY_KEY}"
    with no_signing_key():
        assert main_public_key() == 1


# --- concurrent writers -------------------------------------------------------------------------


def test_concurrent_writers_never_fork_the_chain(engine):
    tenant_id = make_tenant()
    writers, events = 10, 80  # enough to race; few enough that SQLite's lock wait holds under load
    barrier = threading.Barrier(writers)
    errors: list[str] = []

    def write(number: int) -> None:
        actor = admin(tenant_id).with_request(RequestContext(request_id=f"writer-{number:02d}"))
        barrier.wait()
        try:
            for n in range(events):
                with unit_of_work(tenant_id) as session:
                    audit.record(
                        session,
                        actor,
                        category=AuditCategory.OPERATION,
                        action="test.concurrent",
                        target_id=str(n),
                    )
                    session.commit()
        except Exception as exc:
            errors.append(repr(exc))

    started = time.perf_counter()
    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    assert errors == []
    with unit_of_work(tenant_id) as session:
        rows = session.exec(
            select(AuditEvent.seq, AuditEvent.request_id)
            .where(AuditEvent.tenant_id == tenant_id)
            .order_by(AuditEvent.seq)
        ).all()
        result = verify_chain(session, tenant_id)
    print(
        f"\n[audit] {writers} writers x {events} events on {engine.dialect.name}: "
        f"{len(rows)} rows in {elapsed:.1f}s, verified {result.checked}"
    )
    assert [seq for seq, _ in rows] == list(range(1, writers * events + 1))
    assert set(Counter(request for _, request in rows).values()) == {events}
    assert result.ok and result.checked == writers * events


# --- the checkpoint table is protected like the log ----------------------------------------


def _some_checkpoint(engine: Engine) -> tuple[uuid.UUID, uuid.UUID]:
    tenant_id = make_tenant()
    append(tenant_id, 1)
    return tenant_id, write_checkpoint(tenant_id).id


@pytest.mark.parametrize("change", ["update", "delete"])
@pytest.mark.parametrize("who", ["application", "owner"])
def test_checkpoints_cannot_be_changed_or_deleted(engine, owner_engine, who, change):
    tenant_id, checkpoint_id = _some_checkpoint(engine)
    statement = (
        update(CHECKPOINTS).values(hash="0" * 64) if change == "update" else delete(CHECKPOINTS)
    ).where(CHECKPOINTS.c.id == checkpoint_id)
    with (engine if who == "application" else owner_engine).connect() as conn:
        trans = conn.begin()
        if conn.dialect.name == "postgresql":
            conn.execute(
                text("SELECT set_config('app.tenant_id', :t, true)"), {"t": str(tenant_id)}
            )
        with pytest.raises(DBAPIError, match=r"append-only|permission denied"):
            conn.execute(statement)
        trans.rollback()


def test_checkpoints_cannot_be_truncated_or_read_across_tenants(engine, owner_engine):
    if engine.dialect.name != "postgresql":
        pytest.skip("row-level security and TRUNCATE exist only on PostgreSQL")
    mine, _ = _some_checkpoint(engine)
    theirs, _ = _some_checkpoint(engine)
    with engine.connect() as conn, conn.begin():
        conn.execute(text("SELECT set_config('app.tenant_id', :t, true)"), {"t": str(mine)})
        seen = {r[0] for r in conn.execute(text("SELECT tenant_id FROM audit_checkpoint"))}
        assert seen == {mine}
    forged = sign_checkpoint(
        Ed25519PrivateKey.from_private_bytes(SEED),
        tenant_id=theirs,
        seq=99,
        hash="0" * 64,
        signed_at=utcnow(),
    )
    with engine.connect() as conn:
        trans = conn.begin()
        conn.execute(text("SELECT set_config('app.tenant_id', :t, true)"), {"t": str(mine)})
        with pytest.raises(DBAPIError, match="row-level security"):
            conn.execute(
                insert(CHECKPOINTS).values({c.name: getattr(forged, c.name) for c in CHECKPOINTS.c})
            )
        trans.rollback()
    with owner_engine.connect() as conn:
        trans = conn.begin()
        with pytest.raises(DBAPIError, match="append-only"):
            conn.execute(text("TRUNCATE audit_checkpoint"))
        trans.rollback()


def test_schema_matches_the_models(owner_engine):
    with owner_engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diffs = compare_metadata(context, SQLModel.metadata)
    assert [d for d in diffs if "audit_checkpoint" in repr(d)] == []


def test_migration_0003_downgrades_and_upgrades(database_url, tmp_path):
    server = os.environ.get("HIKESHI_TEST_DATABASE_URL")
    if server:
        url, name = _create_postgres_database(server)
    else:
        url, name = f"sqlite:///{tmp_path / 'roundtrip.db'}", ""
    try:
        cfg = alembic_config(url)
        command.upgrade(cfg, "0003")
        scratch = build_engine(url)
        assert "audit_checkpoint" in inspect(scratch).get_table_names()
        command.downgrade(cfg, "0002")
        assert "audit_checkpoint" not in inspect(scratch).get_table_names()
        with scratch.connect() as conn:
            triggers = _trigger_names(conn)
        assert not any("checkpoint" in t for t in triggers) and triggers
        command.upgrade(cfg, "0003")
        with scratch.connect() as conn:
            assert {t for t in _trigger_names(conn) if "checkpoint" in t}
        scratch.dispose()
    finally:
        if name:
            _drop_postgres_database(server, name)


def _trigger_names(conn) -> set[str]:
    if conn.dialect.name == "postgresql":
        query = "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal"
    else:
        query = "SELECT name FROM sqlite_master WHERE type = 'trigger'"
    return {row[0] for row in conn.execute(text(query))}


# --- configuration ----------------------------------------------------------------------------


def test_signing_key_setting_is_a_32_byte_seed():
    assert config.parse_signing_key("") is None
    assert config.parse_signing_key(base64.urlsafe_b64encode(SEED).decode().rstrip("=")) == SEED
    with pytest.raises(config.ConfigError, match="32-byte"):
        config.parse_signing_key(base64.urlsafe_b64encode(b"short").decode())


def test_verify_key_setting_takes_base64_or_pem(signing_key):
    public = signing_key.public_key()
    raw = public.public_bytes(Encoding.Raw, PublicFormat.Raw)
    pem = public.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()
    assert config.parse_verify_key("") is None
    for value in (VERIFY_KEY, base64.b64encode(raw).decode(), pem, f"  {pem}\n"):
        assert config.parse_verify_key(value) == raw
    not_ed25519 = (
        X25519PrivateKey.generate()
        .public_key()
        .public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    broken_pem = "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----"
    for bad in ("not base64!", base64.b64encode(b"short").decode(), not_ed25519, broken_pem):
        with pytest.raises(config.ConfigError, match="HIKESHI_AUDIT_VERIFY_KEY"):
            config.parse_verify_key(bad)
    assert config.parse_max_age_hours("12") == 12
    for bad in ("0", "-3", "1.5", "day"):
        with pytest.raises(config.ConfigError, match="MAX_AGE_HOURS"):
            config.parse_max_age_hours(bad)


def test_local_demo_settings_include_a_signing_key(tmp_path, monkeypatch):
    monkeypatch.setattr(config, "DATA_DIR", tmp_path)
    monkeypatch.setattr(config, "LOCAL_SETTINGS", tmp_path / "local.toml")
    for name in ("MASTER_KEYS", "ACTIVE_MASTER_KEY", "SESSION_SECRET"):
        monkeypatch.delenv(f"HIKESHI_{name}", raising=False)
    for name in ("SIGNING_KEY", "VERIFY_KEY", "CHECKPOINT_DIR"):
        monkeypatch.delenv(f"HIKESHI_AUDIT_{name}", raising=False)
    assert config.generate_local_settings()
    written = tomllib.loads((tmp_path / "local.toml").read_text(encoding="utf-8"))
    seed = config.parse_signing_key(written["audit_signing_key"])
    settings = config.load_settings()
    assert seed is not None and settings.audit_signing_key == seed
    public = Ed25519PrivateKey.from_private_bytes(seed).public_key()
    assert settings.audit_verify_key == public.public_bytes(Encoding.Raw, PublicFormat.Raw)
    assert settings.audit_checkpoint_max_age_hours == 48
    assert settings.audit_checkpoint_dir == tmp_path / "audit-checkpoints"
