"""Automatic backups before a bulk change (#17): an import or a restore that retires, suspends or
deletes records first keeps the brigade's whole data as a backup ZIP (the format of バックアップ),
sealed with the brigade's data key, for RETENTION_DAYS and at most KEEP per brigade. 復元 lists
them and undoes the change in one step (「元に戻す」: the normal inspect → restore of that ZIP).

take() runs inside the caller's transaction, after planning and before the first write: the
backup shows the data exactly as the change found it (same snapshot, same row locks), and it is
kept only if the change commits — a refused or failed change wrote nothing, so there is nothing
to undo. No permission of its own is needed to take one (the change's own permissions were
checked); listing and opening one need 復元 編集, like any restore.
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete
from sqlmodel import col, select

from core.access import Need
from core.actor import Actor, machine_actor
from core.personal import personal_field
from core.timefmt import to_jst
from models import PreChangeBackup, Tenant
from models.base import utcnow
from models.enums import Function, Level, TenantStatus
from services.base import Tx, scoped, transaction
from services.db import unit_of_work
from services.errors import NotFound, ValidationError
from services.imports import Progress

RETENTION_DAYS = 35
KEEP = 20  # per brigade: the oldest beyond this go first, whatever their age
DATA = personal_field("pre_change_backup", "data")
NEED = Need(Function.RESTORE, Level.EDIT)
LISTED = ("id", "tenant_id", "created_at", "reason", "actor_label", "bytes", "sha256")


@dataclass(frozen=True)
class PreChangeEntry:
    """What 復元 lists of a pre-change backup (never its data)."""

    id: uuid.UUID
    created_at: datetime
    reason: str
    actor_label: str
    bytes: int
    sha256: str

    @property
    def created_at_jst(self) -> str:
        return to_jst(self.created_at)

    @property
    def expires_at_jst(self) -> str:
        return to_jst(self.created_at + timedelta(days=RETENTION_DAYS))


def take(tx: Tx, reason: str) -> PreChangeEntry:
    """Back the brigade up as it is in this transaction, before the caller changes it; kept
    only if the caller commits. Audited (the reason, size and hash; no data)."""
    # Imported here: services.backup imports the import services that call this.
    from services.backup.create import zip_of

    manifest, data = zip_of(tx)
    row = PreChangeBackup(
        tenant_id=tx.tenant_id,
        created_at=manifest.created_at,
        reason=reason[:200],
        actor_label=(tx.actor.label or tx.actor.display_name or "")[:100],
        bytes=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
    )
    row.data_enc = tx.cipher.encrypt(base64.b64encode(data).decode(), field=DATA.aad, row_id=row.id)
    tx.session.add(row)
    tx.session.flush()
    _keep_newest(tx)
    tx.audit(
        "backup.pre_change",
        target_type="pre_change_backup",
        target_id=str(row.id),
        details={"reason": row.reason, "bytes": row.bytes, "sha256": row.sha256, **_rows(manifest)},
    )
    return _entry(row)


def list_backups(actor: Actor) -> list[PreChangeEntry]:
    """The brigade's pre-change backups, newest first (復元 編集)."""
    with transaction(actor, NEED, action="backup.pre_change_list", read_only=True) as tx:
        columns = [getattr(PreChangeBackup, name) for name in LISTED]
        rows = tx.session.exec(
            scoped(select(*columns), actor).order_by(col(PreChangeBackup.created_at).desc())
        ).all()
        return [_entry(row) for row in rows]


def backup_data(actor: Actor, backup_id: uuid.UUID) -> bytes:
    """The ZIP of one pre-change backup of the brigade, to inspect and restore (復元 編集);
    another brigade's id is not found. Audited: the data leaves the database decrypted."""
    with transaction(actor, NEED, action="backup.pre_change_open") as tx:
        row = tx.get(PreChangeBackup, backup_id)
        if row is None:
            raise NotFound()
        data = base64.b64decode(tx.cipher.decrypt(row.data_enc, field=DATA.aad, row_id=row.id))
        tx.audit(
            "backup.pre_change_open",
            target_type="pre_change_backup",
            target_id=str(row.id),
            details={"reason": row.reason, "sha256": row.sha256},
        )
        tx.commit()
    return data


def undo(actor: Actor, backup_id: uuid.UUID, *, progress: Progress | None = None) -> Any:
    """「元に戻す」: the normal restore of one pre-change backup — verified and planned
    (inspect_backup), then restored in one transaction (restore_backup, which itself backs up
    first what it would retire or delete). 復元 編集, and whatever else that restore needs."""
    from services import backup

    preview = backup.inspect_backup(actor, data=backup_data(actor, backup_id))
    if not preview.ready:
        raise ValidationError({"backup": " ".join(preview.errors) or backup.NOT_READY})
    return backup.restore_backup(actor, preview, undoing=backup_id, progress=progress)


def purge_expired(now: datetime | None = None) -> int:
    """Delete every brigade's pre-change backups older than RETENTION_DAYS (the mail worker's
    periodic sweep calls this); audited per brigade that had any."""
    cutoff = (now or utcnow()) - timedelta(days=RETENTION_DAYS)
    purged = 0
    for tenant_id in _brigades():
        actor = machine_actor(tenant_id, "pre-change-retention", [(Function.RESTORE, Level.EDIT)])
        with transaction(actor, NEED, action="backup.pre_change_purge") as tx:
            ids = tx.session.exec(
                scoped(select(PreChangeBackup.id), actor).where(
                    col(PreChangeBackup.created_at) < cutoff
                )
            ).all()
            if not ids:
                continue
            _delete(tx, list(ids))
            tx.audit(
                "backup.pre_change_purge",
                target_type="pre_change_backup",
                details={"deleted": len(ids), "retention_days": RETENTION_DAYS},
            )
            tx.commit()
            purged += len(ids)
    return purged


def _keep_newest(tx: Tx) -> None:
    ids = tx.session.exec(
        scoped(select(PreChangeBackup.id), tx.actor)
        .order_by(col(PreChangeBackup.created_at).desc(), col(PreChangeBackup.id))
        .offset(KEEP)
    ).all()
    if ids:
        _delete(tx, list(ids))


def _delete(tx: Tx, ids: list[uuid.UUID]) -> None:
    tx.session.execute(
        delete(PreChangeBackup).where(
            col(PreChangeBackup.tenant_id) == tx.tenant_id, col(PreChangeBackup.id).in_(ids)
        ),
        execution_options={"synchronize_session": False},
    )


def _brigades() -> list[uuid.UUID]:
    with unit_of_work(None) as db:
        return list(db.exec(select(Tenant.id).where(Tenant.status == TenantStatus.ACTIVE)).all())


def _entry(row: object) -> PreChangeEntry:
    return PreChangeEntry(
        row.id,  # type: ignore[attr-defined]
        row.created_at,  # type: ignore[attr-defined]
        row.reason,  # type: ignore[attr-defined]
        row.actor_label,  # type: ignore[attr-defined]
        row.bytes,  # type: ignore[attr-defined]
        row.sha256,  # type: ignore[attr-defined]
    )


def _rows(manifest: object) -> dict[str, object]:
    return {"rows": dict(getattr(manifest, "rows", {}))}
