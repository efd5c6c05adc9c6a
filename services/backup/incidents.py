"""The incidents (災害出動) of a backup and their timelines: places, landmarks, map links and
subjects opened for the file, sealed again under the restoring brigade's key.

An incident is known by its number and the time it was registered: the same number registered
at another time is another incident (numbers are given again after a restore removed the later
ones), so it is replaced, not updated. Incidents absent from the backup are deleted with their
timelines; the メール受信ログ keeps their mails, which lose only the link. A timeline entry names
the mail it came from; a mail of this brigade's log so named is linked to the restored incident
again, another brigade's mail is not looked for. The self-test's incident (numbered 0, while a
self-test runs: services/dispatch/selftest.py) is machinery, not the brigade's record: it is
never backed up, and a restore leaves it as it is."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import astuple, fields
from datetime import datetime

from sqlalchemy import delete, update
from sqlmodel import select
from sqlmodel.sql.expression import SelectOfScalar

from core.timefmt import to_jst
from formats import backup as fmt
from formats import backup_dispatch as bd
from formats.tabular import CellError
from models.callout import Callout, CalloutAnswer, CalloutTarget, LineOutbox
from models.dispatch import InboundMail, Incident, IncidentEntry, IncidentStatus, MailSource
from services.backup.model import ENTRIES, INCIDENTS, counted_row, preview_of, with_cell_errors
from services.base import S, Tx, scoped
from services.dispatch import incidents as dispatch
from services.imports import FieldChange, ImportPreview, ImportResult, RowPlan, RowStatus

HEADERS = {column.key: column.header for column in bd.INCIDENT_COLUMNS}
ENTRY_HEADERS = {column.key: column.header for column in bd.ENTRY_COLUMNS}
STATUSES = {status.label: status for status in IncidentStatus}
UNKNOWN_STATUS = "状態が正しくありません。"


# -- the file ------------------------------------------------------------------------------------


def incident_files(tx: Tx) -> dict[str, bytes]:
    """The timelines are read first, with their incidents' numbers: an incident the intake adds
    meanwhile is then in the file without its first entry, never an entry without its incident
    (incidents are only ever deleted by a restore)."""
    timeline = sorted(_timeline(tx), key=_entry_order)
    query = without_selftest(scoped(select(Incident), tx.actor)).order_by(Incident.number)
    rows = tx.session.exec(query).all()
    names = _source_names(tx)
    return {
        fmt.INCIDENTS: bd.encode_incidents(_incident_row(tx, row, names) for row in rows),
        fmt.INCIDENT_ENTRIES: bd.encode_entries(timeline),
    }


def _source_names(tx: Tx) -> dict[uuid.UUID, str]:
    return dict(tx.session.exec(scoped(select(MailSource.id, MailSource.name), tx.actor)).all())


def _incident_row(tx: Tx, row: Incident, names: Mapping[uuid.UUID, str]) -> bd.IncidentRow:
    return bd.IncidentRow(
        number=row.number,
        status=IncidentStatus(row.status).label,
        needs_review=row.needs_review,
        review_reasons=tuple(json.loads(row.review_reasons)),
        kind=row.kind,
        reference=row.reference,
        units=tuple(json.loads(row.units)),
        place_approximate=row.place_approximate,
        source=names.get(row.source_id, ""),
        occurred_at=row.occurred_at,
        mail_date=row.mail_date,
        received_at=row.received_at,
        created_at=row.created_at,
        updated_at=row.updated_at,
        closed_at=row.closed_at,
        **{name: dispatch.unseal(tx, row, name) for name in dispatch.SEALED},
    )


def _timeline(tx: Tx) -> list[bd.EntryRow]:
    query = select(IncidentEntry, Incident.number).join(
        Incident, Incident.id == IncidentEntry.incident_id
    )
    found = tx.session.exec(without_selftest(scoped(query, tx.actor)))
    return [_entry_row(entry, number) for entry, number in found]


def without_selftest(query: S) -> S:
    """A query of incidents (or rows joined to them) without the self-test's incident."""
    return query.where(Incident.number != dispatch.SELFTEST_NUMBER)


def recorded(tx: Tx) -> SelectOfScalar[uuid.UUID]:
    """The ids of the brigade's incidents, the self-test's aside: what a restore replaces."""
    return without_selftest(select(Incident.id).where(Incident.tenant_id == tx.tenant_id))


def _entry_row(entry: IncidentEntry, number: int) -> bd.EntryRow:
    return bd.EntryRow(
        incident_number=number,
        at=entry.at,
        kind=entry.kind,
        summary=entry.summary,
        status=IncidentStatus(entry.status).label if entry.status else "",
        mail_id=entry.mail_id,
        actor_label=entry.actor_label,
    )


def _entry_order(entry: bd.EntryRow) -> tuple[int, datetime]:
    return (entry.incident_number, entry.at)


# -- incidents -----------------------------------------------------------------------------------


def plan_incidents(tx: Tx, backup: fmt.Backup, mail_sources: ImportPreview) -> ImportPreview:
    table = fmt.read_table(backup.files[fmt.INCIDENTS], bd.INCIDENT_COLUMNS)
    names = _source_names(tx)
    current = _current(tx)
    known_sources = {row.code for row in mail_sources.rows}
    seen: set[int] = set()
    rows = []
    for number, raw in table.records:
        incident, errors = bd.parse_incident(number, raw)
        if incident is not None:
            errors = _incident_errors(number, incident, known_sources, seen)
            seen.add(incident.number)
        code = str(incident.number) if incident else raw.get("number", "")[:10]
        if errors or incident is None:
            rows.append(RowPlan(number, code, RowStatus.INVALID, raw, errors=tuple(errors)))
        elif incident.number not in current:
            rows.append(RowPlan(number, code, RowStatus.NEW, raw))
        else:
            before = _incident_row(tx, current[incident.number], names)
            changes = _changes(before, incident)
            status = RowStatus.CHANGED if changes else RowStatus.UNCHANGED
            rows.append(RowPlan(number, code, status, raw, changes))
    return preview_of(
        INCIDENTS,
        backup,
        rows=with_cell_errors(rows, table.errors),
        missing=[str(n) for n in sorted(set(current) - seen)],
        file_errors=table.problems,
    )


def _current(tx: Tx) -> dict[int, Incident]:
    rows = tx.session.exec(without_selftest(scoped(select(Incident), tx.actor))).all()
    return {row.number: row for row in rows}


def _incident_errors(
    number: int, incident: bd.IncidentRow, known_sources: set[str], seen: set[int]
) -> list[CellError]:
    errors = []
    if incident.status not in STATUSES:
        errors.append(CellError(number, HEADERS["status"], UNKNOWN_STATUS))
    if incident.number in seen:
        message = f"番号 {incident.number} の事案が重複しています。"
        errors.append(CellError(number, HEADERS["number"], message))
    if incident.source and incident.source not in known_sources:
        message = f"送信元「{incident.source[:40]}」が出動メール設定にありません。"
        errors.append(CellError(number, HEADERS["source"], message))
    return errors


def _changes(before: bd.IncidentRow, after: bd.IncidentRow) -> tuple[FieldChange, ...]:
    return tuple(
        FieldChange(HEADERS[field.name], _shown(old), _shown(new))
        for field in fields(bd.IncidentRow)
        if (old := getattr(before, field.name)) != (new := getattr(after, field.name))
    )


def _shown(value: object) -> str:
    if isinstance(value, bool):
        return bd.YES if value else bd.NO
    if isinstance(value, tuple):
        return "、".join(value)
    if isinstance(value, datetime) or value is None:
        return to_jst(value, seconds=True)
    return str(value)


def write_incidents(tx: Tx, plan: ImportPreview) -> ImportResult:
    """Every incident replaced by the backup's, numbers kept: one registered at the same time is
    updated in place (its mails stay linked), any other removed first."""
    current = _current(tx)
    restored = [(p.status, bd.parse_incident(p.row, p.raw)[0]) for p in plan.rows]
    kept = {
        incident.number
        for _, incident in restored
        if incident
        and incident.number in current
        and current[incident.number].created_at == incident.created_at
    }
    _remove(tx, [row.id for number, row in current.items() if number not in kept])
    sources = {name: id_ for id_, name in _source_names(tx).items()}
    for status, incident in restored:
        assert incident is not None  # the plan was checked in this transaction
        if incident.number in kept:
            if status == RowStatus.UNCHANGED:
                continue
            row = current[incident.number]
            row.version += 1
        else:
            row = Incident(tenant_id=tx.tenant_id, number=incident.number, **_EMPTY_SEALS)
        _fill(tx, row, incident, sources)
        tx.session.add(row)
    tx.session.flush()
    counts = plan.counts
    return ImportResult(
        created=counts[RowStatus.NEW],
        updated=counts[RowStatus.CHANGED],
        unchanged=counts[RowStatus.UNCHANGED],
        retired=len(plan.missing),
    )


_EMPTY_SEALS = {f"{name}_enc": "" for name in dispatch.SEALED}


def _remove(tx: Tx, ids: list[uuid.UUID]) -> None:
    """Incidents with their timelines and call-outs; their mails stay in the log, unlinked."""
    tenant = tx.tenant_id
    waves = select(Callout.id).where(Callout.tenant_id == tenant, Callout.incident_id.in_(ids))
    tx.session.exec(
        delete(LineOutbox)
        .where(LineOutbox.tenant_id == tenant, LineOutbox.callout_id.in_(waves))
        .execution_options(synchronize_session=False)
    )
    for table in (CalloutAnswer, CalloutTarget, Callout):
        tx.session.exec(
            delete(table)
            .where(table.tenant_id == tenant, table.incident_id.in_(ids))
            .execution_options(synchronize_session=False)
        )
    tx.session.exec(
        update(InboundMail)
        .where(InboundMail.tenant_id == tenant, InboundMail.incident_id.in_(ids))
        .values(incident_id=None)
        .execution_options(synchronize_session=False)
    )
    for table, column in ((IncidentEntry, IncidentEntry.incident_id), (Incident, Incident.id)):
        tx.session.exec(
            delete(table)
            .where(table.tenant_id == tenant, column.in_(ids))
            .execution_options(synchronize_session=False)
        )
    tx.session.flush()


def _fill(
    tx: Tx, row: Incident, incident: bd.IncidentRow, sources: Mapping[str, uuid.UUID]
) -> None:
    row.status = STATUSES[incident.status]
    row.needs_review = incident.needs_review
    row.review_reasons = json.dumps(list(incident.review_reasons), ensure_ascii=False)
    row.kind, row.reference = incident.kind, incident.reference
    row.units = json.dumps(list(incident.units), ensure_ascii=False)
    row.place_approximate = incident.place_approximate
    row.source_id = sources[incident.source] if incident.source else None
    row.occurred_at, row.mail_date = incident.occurred_at, incident.mail_date
    row.received_at, row.created_at = incident.received_at, incident.created_at
    row.updated_at, row.closed_at = incident.updated_at, incident.closed_at
    dispatch.seal(tx, row, **{name: getattr(incident, name) for name in dispatch.SEALED})


# -- timelines -----------------------------------------------------------------------------------

EntryKey = tuple[object, ...]


def plan_entries(tx: Tx, backup: fmt.Backup, incidents: ImportPreview) -> ImportPreview:
    table = fmt.read_table(backup.files[fmt.INCIDENT_ENTRIES], bd.ENTRY_COLUMNS)
    numbers = {row.code for row in incidents.rows}  # an invalid incident has its own error
    existing = _existing_entries(tx)
    rows = []
    for number, raw in table.records:
        entry, errors = bd.parse_entry(number, raw)
        if entry is not None:
            errors = _entry_errors(number, entry, numbers)
        code = f"{raw.get('incident_number', '')[:10]} {raw.get('at', '')[:40]}"
        key = astuple(entry) if entry is not None else None
        rows.append(counted_row(existing, key, number, code, raw, errors))
    missing = sorted(
        f"{key[0]} {key[1].isoformat()}" for key, left in existing.items() for _ in range(left)
    )
    return preview_of(
        ENTRIES,
        backup,
        rows=with_cell_errors(rows, table.errors),
        missing=missing,
        file_errors=table.problems,
    )


def _entry_errors(number: int, entry: bd.EntryRow, incidents: set[str]) -> list[CellError]:
    errors = []
    if str(entry.incident_number) not in incidents:
        message = f"番号 {entry.incident_number} の事案が災害出動の事案にありません。"
        errors.append(CellError(number, ENTRY_HEADERS["incident_number"], message))
    if not entry.kind:
        errors.append(CellError(number, ENTRY_HEADERS["kind"], "入力してください。"))
    if entry.status and entry.status not in STATUSES:
        errors.append(CellError(number, ENTRY_HEADERS["status"], UNKNOWN_STATUS))
    return errors


def _existing_entries(tx: Tx) -> Counter[EntryKey]:
    return Counter(astuple(entry) for entry in _timeline(tx))


def write_entries(tx: Tx, plan: ImportPreview) -> ImportResult:
    """Every timeline replaced by the backup's; an entry keeps its mail when this brigade's log
    has that mail, which is then linked to the entry's incident."""
    removed = tx.session.exec(
        delete(IncidentEntry)
        .where(IncidentEntry.tenant_id == tx.tenant_id, IncidentEntry.incident_id.in_(recorded(tx)))
        .execution_options(synchronize_session=False)
    ).rowcount
    ids = {n: i for i, n in tx.session.exec(scoped(select(Incident.id, Incident.number), tx.actor))}
    entries = [bd.parse_entry(p.row, p.raw)[0] for p in plan.rows]
    mails = _mails(tx, {e.mail_id for e in entries if e and e.mail_id})
    for entry in entries:
        assert entry is not None  # the plan was checked in this transaction
        tx.session.add(
            IncidentEntry(
                tenant_id=tx.tenant_id,
                incident_id=ids[entry.incident_number],
                at=entry.at,
                kind=entry.kind,
                summary=entry.summary,
                status=str(STATUSES[entry.status]) if entry.status else "",
                mail_id=entry.mail_id if entry.mail_id in mails else None,
                actor_label=entry.actor_label,
            )
        )
    _relink(tx, mails, {e.mail_id: ids[e.incident_number] for e in entries if e and e.mail_id})
    tx.session.flush()
    unchanged = plan.counts[RowStatus.UNCHANGED]
    return ImportResult(
        created=len(plan.rows) - unchanged, unchanged=unchanged, retired=removed - unchanged
    )


def _mails(tx: Tx, wanted: Iterable[uuid.UUID]) -> dict[uuid.UUID, uuid.UUID | None]:
    """This brigade's mails among those named, with the incident each is linked to."""
    query = select(InboundMail.id, InboundMail.incident_id).where(InboundMail.id.in_(list(wanted)))
    return dict(tx.session.exec(scoped(query, tx.actor)).all())


def _relink(
    tx: Tx, mails: Mapping[uuid.UUID, uuid.UUID | None], wanted: Mapping[uuid.UUID, uuid.UUID]
) -> None:
    for mail_id, incident_id in wanted.items():
        if mail_id in mails and mails[mail_id] != incident_id:
            tx.session.exec(
                update(InboundMail)
                .where(InboundMail.tenant_id == tx.tenant_id, InboundMail.id == mail_id)
                .values(incident_id=incident_id)
                .execution_options(synchronize_session=False)
            )
