"""The mail sources (出動メール設定) of a backup: their settings, never their credentials.

A source is known by its name. One the brigade has keeps its receiving address and its IMAP
password (the backup holds neither); a new one gets a new receiving address, and an IMAP source
without a stored password is restored 無効 until its password is entered on 出動メール設定 (the
worker would otherwise log in with none). Sources absent from the backup are made 無効, not
deleted: the メール受信ログ and the incidents refer to them."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlmodel import select

from formats import backup as fmt
from formats import backup_dispatch as bd
from formats.tabular import CellError
from models.base import utcnow
from models.dispatch import MailSource, MailTransport
from services.backup.model import (
    CREDENTIALS_NOT_IN_BACKUP,
    MAIL_SOURCES,
    NEW_ADDRESS,
    PASSWORD_NEEDED,
    preview_of,
    with_cell_errors,
)
from services.base import Tx, scoped
from services.dispatch import sources
from services.errors import ValidationError
from services.imports import FieldChange, ImportPreview, ImportResult, RowPlan, RowStatus
from services.validation import clean

COMPARED = tuple(key for key in bd.SOURCE_FIELDS if key != "name")


def mail_source_settings(tx: Tx) -> bytes:
    """Every source's settings, by name, for the backup file."""
    rows = tx.session.exec(scoped(select(MailSource), tx.actor).order_by(MailSource.name)).all()
    return bd.encode_mail_sources(_settings(row) for row in rows)


def _settings(row: MailSource) -> dict[str, Any]:
    """A source's settings as JSON values: its columns, lists and profile opened."""
    values = {key: getattr(row, key) for key in bd.SOURCE_FIELDS}
    return values | {
        "transport": str(row.transport),
        "senders": json.loads(row.senders),
        "profile": json.loads(row.profile),
    }


@dataclass(frozen=True)
class _Restored:
    """A backup's source as the restore would write it."""

    columns: dict[str, Any]  # what sources.validated_settings returns
    new_address: bool
    disabled: bool  # active in the backup, but an IMAP source without a password here


def plan_mail_sources(tx: Tx, backup: fmt.Backup) -> ImportPreview:
    table = bd.read_mail_sources(backup.files[fmt.MAIL_SOURCES])
    current = _current(tx)
    unreadable = {error.row for error in table.errors}
    notes = [CREDENTIALS_NOT_IN_BACKUP]
    seen: set[str] = set()
    rows: list[RowPlan] = []
    for number, raw in table.records:
        if number in unreadable:  # its errors are added below
            rows.append(RowPlan(number, _name(raw), RowStatus.INVALID, raw))
            continue
        restored, errors = _restored(tx, number, raw, current, seen)
        if restored is None:
            rows.append(RowPlan(number, _name(raw), RowStatus.INVALID, raw, errors=tuple(errors)))
            continue
        name = restored.columns["name"]
        seen.add(name)
        notes += _notes(name, restored)
        rows.append(_plan(number, raw, name, restored, current.get(name)))
    missing = sorted(name for name, row in current.items() if name not in seen and row.active)
    return preview_of(
        MAIL_SOURCES,
        backup,
        rows=with_cell_errors(rows, table.errors),
        missing=missing,
        file_errors=table.problems,
        notes=notes,
    )


def _name(raw: Mapping[str, str]) -> str:
    """The name of a source record, even one with errors (incidents name it)."""
    name = json.loads(raw.get("name", '""'))
    return clean(name) if isinstance(name, str) else ""


def _current(tx: Tx) -> dict[str, MailSource]:
    return {row.name: row for row in tx.session.exec(scoped(select(MailSource), tx.actor)).all()}


def _restored(
    tx: Tx, number: int, raw: Mapping[str, str], current: Mapping[str, MailSource], seen: set[str]
) -> tuple[_Restored | None, list[CellError]]:
    """The source a record describes, checked as 出動メール設定 checks it (without a password),
    or its errors."""
    values = bd.source_values(raw)
    labels = {key: label for key, (label, _) in bd.SOURCE_FIELDS.items()}
    if values["transport"] not in tuple(MailTransport):
        return None, [CellError(number, labels["transport"], "受信方法が正しくありません。")]
    if clean(values["name"]) in seen:
        message = f"「{clean(values['name'])[:40]}」が重複しています。"
        return None, [CellError(number, labels["name"], message)]
    source = sources.SourceInput(
        **values
        | {"transport": MailTransport(values["transport"]), "senders": tuple(values["senders"])}
    )
    row = current.get(clean(values["name"]))
    try:
        columns = sources.validated_settings(tx, source, row, password_required=False)
    except ValidationError as exc:
        return None, [CellError(number, field, message) for field, message in exc.errors.items()]
    smtp = columns["transport"] == MailTransport.SMTP
    new_address = smtp and (row is None or row.address_hash is None)
    disabled = columns["active"] and not smtp and (row is None or not row.imap_password_enc)
    if disabled:
        columns["active"] = False
    return _Restored(columns, new_address, disabled), []


def _notes(name: str, restored: _Restored) -> list[str]:
    notes = [NEW_ADDRESS.format(name=name)] if restored.new_address else []
    if restored.disabled:
        notes.append(PASSWORD_NEEDED.format(name=name))
    return notes


def _plan(
    number: int, raw: dict[str, str], name: str, restored: _Restored, row: MailSource | None
) -> RowPlan:
    if row is None:
        return RowPlan(number, name, RowStatus.NEW, raw)
    before = _settings(row)
    after = _settings(MailSource(**restored.columns))
    changes = tuple(
        FieldChange(bd.SOURCE_FIELDS[key][0], *_shown(key, before[key], after[key]))
        for key in COMPARED
        if before[key] != after[key]
    )
    return RowPlan(
        number, name, RowStatus.CHANGED if changes else RowStatus.UNCHANGED, raw, changes
    )


def _shown(key: str, before: Any, after: Any) -> tuple[str, str]:
    """A changed setting as the preview shows it: a profile by its name."""
    if key == "profile":
        old, new = str(before.get("name", "")), str(after.get("name", ""))
        return old, new if new != old else f"{new}（内容の変更あり）"
    return _text(before), _text(after)


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return bd.YES if value else bd.NO
    if isinstance(value, list):
        return "、".join(value)
    return str(value)


def write_mail_sources(tx: Tx, plan: ImportPreview) -> ImportResult:
    """The backup's sources written by name, each keeping its own address and password; sources
    absent from the backup made 無効."""
    current = _current(tx)
    now = utcnow()
    for planned in plan.rows:
        if planned.status == RowStatus.UNCHANGED:
            continue
        restored, _ = _restored(tx, planned.row, planned.raw, current, set())
        assert restored is not None  # the plan was checked in this transaction
        row = current.get(planned.code) or MailSource(tenant_id=tx.tenant_id)
        _write(tx, row, restored)
        if planned.status == RowStatus.CHANGED:
            row.version += 1
        row.updated_at = now
        tx.session.add(row)
    for name in plan.missing:
        row = current[name]
        row.active, row.version, row.updated_at = False, row.version + 1, now
        tx.session.add(row)
    tx.session.flush()
    counts = plan.counts
    return ImportResult(
        created=counts[RowStatus.NEW],
        updated=counts[RowStatus.CHANGED],
        unchanged=counts[RowStatus.UNCHANGED],
        retired=len(plan.missing),
    )


def _write(tx: Tx, row: MailSource, restored: _Restored) -> None:
    """Settings as a save on 出動メール設定 writes them: an SMTP source has an address and no
    password, an IMAP source a password (if it had one) and no address."""
    for key, value in restored.columns.items():
        setattr(row, key, value)
    if restored.columns["transport"] == MailTransport.SMTP:
        row.imap_password_enc = None
        if row.address_hash is None:
            sources.issue_address(tx, row)
    else:
        row.address_hash = row.address_token_enc = None
