"""Key management: master-key rotation, tenant data-key rotation and crypto-shredding.

Every step is its own transaction and every operation is idempotent, so an interrupted run is
finished by simply running it again. Audit events name key ids, never key material.

Destroying a tenant's keys makes its data unreadable in the live database at once; in backups
taken earlier the wrapped keys survive, so they become unreadable only once the master key that
wrapped them is retired (rotate-master-key, then remove the old id from HIKESHI_MASTER_KEYS).
A database restored from such a backup then takes the live key table (export-keys, adopt-keys):
the brigades that still exist are readable again, the purged ones are not (docs/operations.md).
"""

from __future__ import annotations

import json
import os
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import ColumnElement, and_, delete, or_, text
from sqlmodel import Session, SQLModel, col, select

from config import get_settings
from core.access import PLATFORM
from core.actor import Actor, ActorKind
from core.personal import PersonalField, personal_fields
from models import (
    ActivityReport,
    AuditEvent,
    Member,
    MemberLine,
    PreChangeBackup,
    ReportStep,
    Tenant,
    TenantKey,
)
from models.callout import Callout
from models.dispatch import InboundMail, Incident, MailSource
from models.enums import AuditCategory
from models.tenant import PLATFORM_TENANT_ID
from models.water import WaterInspection
from services import audit, plaintext_cache
from services.base import require
from services.crypto import (
    DATA,
    FORMAT,
    DecryptionError,
    TenantCipher,
    new_tenant_key,
    unwrap_key,
    wrap_key,
)
from services.db import set_tenant, unit_of_work
from services.errors import NotFound, ValidationError

CLI_ACTOR = Actor(kind=ActorKind.SYSTEM, display_name="cli", label="cli-key-management")
# The tables whose personal fields are sealed with the tenant's data key. Audit details have a
# key of their own (never re-encrypted); a pending LINE login is sealed with a platform key.
REENCRYPTED: tuple[type[SQLModel], ...] = (
    Member,
    WaterInspection,
    MemberLine,
    MailSource,
    InboundMail,
    Incident,
    Callout,
    ActivityReport,
    ReportStep,
    PreChangeBackup,
)
LOCK_TIMEOUT = "10s"


class KeyStateError(RuntimeError):
    """A tenant's keys are not in a state the operation can start from."""


@dataclass
class RotationReport:
    tenants: int = 0
    keys_rewrapped: int = 0
    rows_reencrypted: int = 0
    new_key_id: str = ""
    resumed: bool = False
    deleted_key_ids: list[str] = field(default_factory=list)
    retained_key_ids: list[str] = field(default_factory=list)
    failures: dict[uuid.UUID, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failures and not self.retained_key_ids


# ---------------------------------------------------------------------------
# Master key


def rotate_master_key(actor: Actor) -> RotationReport:
    """Re-wrap every tenant key not yet wrapped by the active master key, tenant by tenant."""
    require(actor, PLATFORM, action="key.master_rewrap")
    report = RotationReport()
    for tenant_id in _tenant_ids():
        try:
            rewrapped = _rewrap_tenant(actor, tenant_id)
        except DecryptionError as exc:
            report.failures[tenant_id] = str(exc)
            continue
        if rewrapped:
            report.tenants += 1
            report.keys_rewrapped += rewrapped
    return report


def _tenant_ids() -> list[uuid.UUID]:
    with unit_of_work(PLATFORM_TENANT_ID) as session:
        return list(session.exec(select(Tenant.id).order_by(Tenant.created_at)).all())


def _rewrap_tenant(actor: Actor, tenant_id: uuid.UUID) -> int:
    active = _active_master_id()
    with unit_of_work(tenant_id) as session:
        stale = [row for row in _tenant_keys(session, tenant_id) if _master_id(row) != active]
        if not stale:
            return 0
        previous = sorted({_master_id(row) for row in stale})
        for row in stale:
            row.wrapped = wrap_key(unwrap_key(row), row.tenant_id, row.key_id, row.purpose)
            session.add(row)
        _audit(
            session,
            actor,
            tenant_id,
            "key.master_rewrap",
            rewrapped=len(stale),
            from_master_key_ids=previous,
            to_master_key_id=active,
        )
        session.commit()
        return len(stale)


def _active_master_id() -> str:
    return get_settings().active_master_key_id


def _master_id(row: TenantKey) -> str:
    return row.wrapped.partition(":")[0]


# ---------------------------------------------------------------------------
# Tenant data key


def rotate_tenant_data_key(
    actor: Actor,
    tenant_id: uuid.UUID,
    *,
    batch_size: int = 500,
    on_batch: Callable[[int], None] | None = None,
) -> RotationReport:
    """Switch the tenant to a new data key, re-encrypt its values, then delete the old key.

    A run that finds an inactive data key resumes that rotation instead of starting another.
    on_batch receives the running count of re-encrypted rows after each committed batch.
    """
    require(actor, PLATFORM, action="key.data_rotate")
    if batch_size < 1:
        raise ValidationError({"batch_size": "batch_size must be at least 1"})
    report = RotationReport(tenants=1)
    _start_rotation(actor, tenant_id, report)
    while True:
        while count := _reencrypt_batch(tenant_id, batch_size):
            report.rows_reencrypted += count
            if on_batch is not None:
                on_batch(report.rows_reencrypted)
        if _finish_rotation(actor, tenant_id, report):
            return report


def _start_rotation(actor: Actor, tenant_id: uuid.UUID, report: RotationReport) -> None:
    with unit_of_work(tenant_id) as session:
        if tenant_id == PLATFORM_TENANT_ID or session.get(Tenant, tenant_id) is None:
            raise NotFound()
        rows = [r for r in _tenant_keys(session, tenant_id) if r.purpose == DATA]
        active = [r for r in rows if r.active]
        if len(active) != 1:
            raise KeyStateError(f"tenant {tenant_id} has {len(active)} active data keys")
        report.resumed = any(not r.active for r in rows)
        if report.resumed:
            report.new_key_id = active[0].key_id
        else:
            new = new_tenant_key(tenant_id, DATA)
            active[0].active = False
            session.add_all([active[0], new])
            report.new_key_id = new.key_id
        _audit(
            session,
            actor,
            tenant_id,
            "key.data_rotate.start",
            new_key_id=report.new_key_id,
            old_key_ids=sorted(r.key_id for r in rows if r.key_id != report.new_key_id),
            resumed=report.resumed,
        )
        session.commit()


def _reencrypt_batch(tenant_id: uuid.UUID, batch_size: int) -> int:
    """Re-encrypt up to batch_size rows (of the first table that has any) holding a value under
    a non-active key."""
    with unit_of_work(tenant_id) as session:
        prefix = _stored_prefix(_active_data_key(session, tenant_id))
        cipher = TenantCipher(session, tenant_id)
        for model in REENCRYPTED:
            stale = session.exec(
                select(model)
                .where(model.tenant_id == tenant_id, or_(*_not_under_key(model, prefix)))
                .order_by(model.id)
                .limit(batch_size)
                .with_for_update()
            ).all()
            for row in stale:
                for f in _encrypted(model):
                    stored = getattr(row, f.column)
                    if stored and not stored.startswith(prefix):
                        where = {"field": f.aad, "row_id": row.id}
                        plain = cipher.decrypt(stored, **where)
                        setattr(row, f.column, cipher.encrypt(plain, **where))
                session.add(row)
            if stale:
                session.commit()
                return len(stale)
        return 0


def _finish_rotation(actor: Actor, tenant_id: uuid.UUID, report: RotationReport) -> bool:
    """Delete old data keys no value uses any more; False if rows still need a pass."""
    with unit_of_work(tenant_id) as session:
        _lock_keys_against_stale_writers(session)
        old = [r for r in _tenant_keys(session, tenant_id) if r.purpose == DATA and not r.active]
        if any(_values_use(session, tenant_id, r.key_id) for r in old):
            return False
        retained = {r.key_id for r in old if _audit_uses(session, tenant_id, r.key_id)}
        for row in old:
            if row.key_id not in retained:
                session.delete(row)
        report.deleted_key_ids = sorted(r.key_id for r in old if r.key_id not in retained)
        report.retained_key_ids = sorted(retained)
        _audit(
            session,
            actor,
            tenant_id,
            "key.data_rotate.finish",
            new_key_id=report.new_key_id,
            deleted_key_ids=report.deleted_key_ids,
            retained_key_ids=report.retained_key_ids,
            rows_reencrypted=report.rows_reencrypted,
        )
        session.commit()
    plaintext_cache.forget(tenant_id)  # what the old key opened leaves this process's memory
    return True


def _lock_keys_against_stale_writers(session: Session) -> None:
    """Wait for transactions that read the old key before the switch, and hold new ones back.

    A writer that loaded the keys before the rotation started may still write a value under the
    old key; once it has finished, the reference check below sees that value. SQLite needs no
    lock: every transaction there begins IMMEDIATE, so they run one at a time.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))
        session.execute(text("LOCK TABLE tenant_key IN ACCESS EXCLUSIVE MODE"))


def _values_use(session: Session, tenant_id: uuid.UUID, key_id: str) -> bool:
    prefix = _stored_prefix(key_id)
    for model in REENCRYPTED:
        query = select(model.id).where(
            model.tenant_id == tenant_id, or_(*_under_key(model, prefix))
        )
        if session.exec(query.limit(1)).first() is not None:
            return True
    return False


def _encrypted(model: type[SQLModel]) -> tuple[PersonalField, ...]:
    return personal_fields(str(model.__tablename__), encrypted=True)


def _under_key(model: type[SQLModel], prefix: str) -> list[ColumnElement[bool]]:
    """Per personal column: "this value is stored under the key with this prefix"."""
    return [
        col(getattr(model, f.column)).startswith(prefix, autoescape=True) for f in _encrypted(model)
    ]


def _not_under_key(model: type[SQLModel], prefix: str) -> list[ColumnElement[bool]]:
    """Per personal column: "this value is stored, under another key" (an inspection without
    an outside inspector or notes stores nothing)."""
    return [
        and_(column != "", ~column.startswith(prefix, autoescape=True))
        for column in (col(getattr(model, f.column)) for f in _encrypted(model))
    ]


def _audit_uses(session: Session, tenant_id: uuid.UUID, key_id: str) -> bool:
    """Audit rows are hashed into the chain and never re-encrypted, so their key must stay."""
    query = select(AuditEvent.id).where(
        AuditEvent.tenant_id == tenant_id,
        col(AuditEvent.details_enc).startswith(_stored_prefix(key_id), autoescape=True),
    )
    return session.exec(query.limit(1)).first() is not None


def _active_data_key(session: Session, tenant_id: uuid.UUID) -> str:
    active = [r.key_id for r in _tenant_keys(session, tenant_id) if r.purpose == DATA and r.active]
    if len(active) != 1:
        raise KeyStateError(f"tenant {tenant_id} has {len(active)} active data keys")
    return active[0]


def _stored_prefix(key_id: str) -> str:
    return f"{FORMAT}:{key_id}:"


# ---------------------------------------------------------------------------
# Crypto-shredding


def destroy_tenant_keys(actor: Actor, tenant_id: uuid.UUID) -> int:
    """Delete every key of a (cancelled) brigade: its ciphertexts become unreadable for good."""
    require(actor, PLATFORM, action="key.destroy")
    if tenant_id == PLATFORM_TENANT_ID:
        raise ValidationError({"tenant": "the platform has no brigade keys to destroy"})
    with unit_of_work(PLATFORM_TENANT_ID) as session:
        tenant = session.get(Tenant, tenant_id)
        if tenant is None:
            raise NotFound()
        set_tenant(session, tenant_id)
        key_ids = sorted(r.key_id for r in _tenant_keys(session, tenant_id))
        session.exec(delete(TenantKey).where(col(TenantKey.tenant_id) == tenant_id))
        _audit(
            session,
            actor,
            PLATFORM_TENANT_ID,
            "key.destroy",
            target_id=tenant_id,
            destroyed_key_ids=key_ids,
        )
        session.commit()
    plaintext_cache.forget(tenant_id)  # nothing it opened stays readable in this process
    return len(key_ids)


# ---------------------------------------------------------------------------
# Restored backups: the live key table decides what stays readable


@dataclass
class AdoptionReport:
    keys_adopted: int = 0
    tenants_rekeyed: int = 0
    shredded: list[uuid.UUID] = field(default_factory=list)
    unreadable: dict[uuid.UUID, list[str]] = field(default_factory=dict)


def export_wrapped_keys(actor: Actor) -> list[dict[str, object]]:
    """Every tenant's keys as stored (wrapped by a master key, so never key material in clear),
    for adopt_wrapped_keys on a database restored from an older backup."""
    require(actor, PLATFORM, action="key.export_wrapped")
    rows = []
    for tenant_id in _tenant_ids():
        with unit_of_work(tenant_id) as session:
            rows += [
                {
                    "tenant_id": str(row.tenant_id),
                    "key_id": row.key_id,
                    "purpose": row.purpose,
                    "active": row.active,
                    "wrapped": row.wrapped,
                }
                for row in _tenant_keys(session, tenant_id)
            ]
    return rows


def adopt_wrapped_keys(actor: Actor, exported: list[dict[str, object]]) -> AdoptionReport:
    """Give a restored database the live database's keys (white paper 8.3.2 and 12.3.1).

    A backup taken before a brigade's purge still holds that brigade's keys, wrapped by the
    master key of the time; once that master key is retired (rotate-master-key, then remove it
    from HIKESHI_MASTER_KEYS), no key in that backup can be unwrapped. This replaces each
    tenant's keys with the live ones (wrapped by the current master key), so the brigades that
    still exist can be read again, and deletes the keys of every tenant the live database no
    longer has keys for: a purged brigade stays unreadable in the restored copy too. Restored
    keys the export lacks (a data key rotated away since) are kept if they still unwrap and
    reported otherwise."""
    require(actor, PLATFORM, action="key.adopt_wrapped")
    live: dict[uuid.UUID, list[dict[str, object]]] = {}
    for row in exported:
        live.setdefault(uuid.UUID(str(row["tenant_id"])), []).append(row)
    report = AdoptionReport()
    for tenant_id in _tenant_ids():
        if tenant_id not in live:
            if tenant_id != PLATFORM_TENANT_ID and _restored_keys(tenant_id):
                destroy_tenant_keys(actor, tenant_id)
                report.shredded.append(tenant_id)
            continue
        adopted, unreadable = _adopt_tenant(actor, tenant_id, live[tenant_id])
        report.keys_adopted += adopted
        report.tenants_rekeyed += 1
        if unreadable:
            report.unreadable[tenant_id] = unreadable
    return report


def _restored_keys(tenant_id: uuid.UUID) -> int:
    with unit_of_work(tenant_id) as session:
        return len(_tenant_keys(session, tenant_id))


def _adopt_tenant(
    actor: Actor, tenant_id: uuid.UUID, rows: list[dict[str, object]]
) -> tuple[int, list[str]]:
    with unit_of_work(tenant_id) as session:
        restored = {row.key_id: row for row in _tenant_keys(session, tenant_id)}
        for given in rows:
            row = restored.pop(str(given["key_id"]), None) or TenantKey(
                tenant_id=tenant_id, key_id=str(given["key_id"]), purpose=str(given["purpose"])
            )
            row.purpose, row.wrapped = str(given["purpose"]), str(given["wrapped"])
            row.active = bool(given["active"])
            unwrap_key(row)  # DecryptionError: the export needs a master key not configured
            session.add(row)
        unreadable = []
        active = {str(r["purpose"]) for r in rows if r["active"]}
        for row in restored.values():
            if row.purpose in active:  # the live database has rotated this purpose's key since
                row.active = False
                session.add(row)
            try:
                unwrap_key(row)
            except DecryptionError:
                unreadable.append(row.key_id)
        _audit(
            session,
            actor,
            tenant_id,
            "key.adopt_wrapped",
            adopted_key_ids=sorted(str(r["key_id"]) for r in rows),
            unreadable_key_ids=sorted(unreadable),
        )
        session.commit()
    return len(rows), sorted(unreadable)


# ---------------------------------------------------------------------------
# Shared helpers


def _tenant_keys(session: Session, tenant_id: uuid.UUID) -> list[TenantKey]:
    query = select(TenantKey).where(TenantKey.tenant_id == tenant_id).order_by(TenantKey.created_at)
    return list(session.exec(query.with_for_update()).all())


def _audit(
    session: Session,
    actor: Actor,
    chain: uuid.UUID,
    action: str,
    *,
    target_id: uuid.UUID | None = None,
    **details: object,
) -> None:
    audit.record(
        session,
        actor,
        category=AuditCategory.OPERATION,
        action=action,
        target_type="tenant",
        target_id=target_id or chain,
        details=details,
        tenant_id=chain,
    )


# ---------------------------------------------------------------------------
# Command line (wired into cli.py)


def main_rotate_master() -> int:
    active = get_settings().active_master_key_id
    print(f"マスター鍵 {active} で再ラップ中 / re-wrapping tenant keys with master key {active}")
    report = rotate_master_key(CLI_ACTOR)
    for tenant_id, reason in report.failures.items():
        print(f"失敗 / failed: brigade {tenant_id}: {reason}", file=sys.stderr)
    print(
        f"完了 / done: {report.keys_rewrapped} 鍵 keys re-wrapped in {report.tenants} 団 brigades, "
        f"{len(report.failures)} 団失敗 failed"
    )
    return 0 if report.ok else 1


def main_rotate_tenant(tenant: str) -> int:
    found = _find_tenant(tenant)
    if found is None:
        print(f"消防団が見つかりません / brigade not found: {tenant}", file=sys.stderr)
        return 2
    print(f"データ鍵を更新中 / rotating the data key of {found.name} ({found.id})")
    try:
        report = rotate_tenant_data_key(
            CLI_ACTOR,
            found.id,
            on_batch=lambda n: print(f"  再暗号化 {n} 件 / re-encrypted {n} rows"),
        )
    except (DecryptionError, KeyStateError) as exc:
        print(f"失敗 / failed: {exc} (鍵は削除していません / no key was deleted)", file=sys.stderr)
        return 1
    print(
        f"完了 / done: 新しい鍵 new key {report.new_key_id}, 削除 deleted "
        f"{', '.join(report.deleted_key_ids) or '-'}"
        + (" (再開 resumed)" if report.resumed else "")
    )
    if report.retained_key_ids:
        print(
            "注意 / warning: 監査ログが旧鍵を参照しているため保持しました / kept, still used by "
            f"audit events: {', '.join(report.retained_key_ids)}",
            file=sys.stderr,
        )
    return 0 if report.ok else 1


def _find_tenant(text_or_id: str) -> Tenant | None:
    try:
        condition = Tenant.id == uuid.UUID(text_or_id)
    except ValueError:
        condition = Tenant.name == text_or_id
    with unit_of_work(PLATFORM_TENANT_ID) as session:
        tenant = session.exec(select(Tenant).where(condition)).first()
    if tenant is None or tenant.id == PLATFORM_TENANT_ID:
        return None
    return tenant


def main_export_keys(path: str) -> int:
    """`cli.py export-keys FILE`: the live key table (wrapped keys only), private to its owner."""
    rows = export_wrapped_keys(CLI_ACTOR)
    fd = os.open(path, os.O_CREAT | os.O_TRUNC | os.O_WRONLY, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump(rows, out, indent=1)
    print(f"{len(rows)} 鍵を書き出しました / wrapped keys written: {path}")
    return 0


def main_adopt_keys(path: str) -> int:
    """`cli.py adopt-keys FILE`, on a database restored from an older backup."""
    with open(path, encoding="utf-8") as source:
        exported = json.load(source)
    try:
        report = adopt_wrapped_keys(CLI_ACTOR, exported)
    except DecryptionError as exc:
        print(f"失敗 / failed: {exc}", file=sys.stderr)
        return 1
    print(
        f"{report.tenants_rekeyed} 団の鍵を置き換え / re-keyed {report.tenants_rekeyed} brigades; "
        f"鍵を破棄 / keys destroyed for {len(report.shredded)} purged brigades"
    )
    for tenant_id, key_ids in report.unreadable.items():
        print(
            f"注意 / warning: {tenant_id}: 復号できない鍵 / keys no longer unwrap: "
            + ", ".join(key_ids),
            file=sys.stderr,
        )
    return 0 if not report.unreadable else 3
