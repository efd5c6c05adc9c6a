"""The 出動報告 of a backup (format version 4, #22): every report with its approval trail, and the
brigade's approval chain and reward table (formats/backup_reports.py), activity texts, return
reasons and comments opened for the file and sealed again under the restoring brigade's key.

A report is known by its key, its id: restored in its own brigade it keeps that id (links and
the event log name it); restored in another brigade it gets an id derived from the key and the
brigade, so that the same file planned again there finds it unchanged. Its member is matched by
member code, its incident by number and registration time, its water inspection by source code,
day and recording time, each in the file's own roster, incidents and inspections; a row naming
one the file does not have is an error of that row and column.

The restore replaces the brigade's reports, trails and settings by the file's. Inspections and
incidents are replaced just before, so the reports are set aside first (services/backup/
__init__.py): with a backup holding reports they are removed and written again from the file;
with an older one (format versions 1 to 3, which say nothing about reports) they stay, and each
is linked again to the inspection or incident of the same natural key, or loses only the link
when there is none."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import date, datetime

from sqlalchemy import delete
from sqlmodel import select

from core.rewards import RewardTable
from formats import backup as fmt
from formats import backup_dispatch as bd
from formats import backup_reports as br
from formats.reward_table import from_json, to_json
from formats.tabular import CellError, plain, to_date
from models import ActivityReport, Member, Rank, ReportSettings, ReportStep, WaterSource
from models.base import utcnow
from models.dispatch import Incident
from models.report import ReportStatus, StepAction
from models.water import WaterInspection
from services.backup.model import (
    REPORT_SETTINGS,
    REPORTS,
    STEPS,
    counted_row,
    preview_of,
    with_cell_errors,
)
from services.base import Tx, scoped
from services.imports import FieldChange, ImportPreview, ImportResult, RowPlan, RowStatus
from services.reports.approvals import COMMENT_FIELD, RETURNED_FIELD, ChainStep, StepScope
from services.reports.approvals import chain_errors as approval_chain_errors
from services.reports.reports import ACTIVITY_FIELD
from services.reports.rewards import table_problems
from services.reports.settings import settings_changed, settings_in

HEADERS = {column.key: column.header for column in br.REPORT_COLUMNS}
STATUSES = {status.label: status for status in ReportStatus}
ACTIONS = {action.label: action for action in StepAction}
STEP_HEADERS = {column.key: column.header for column in br.STEP_COLUMNS}
InspectionKey = tuple[str, date, datetime]
IncidentKey = tuple[int, datetime]


# -- the files -----------------------------------------------------------------------------------


def report_files(tx: Tx) -> dict[str, bytes]:
    """Read before the roster, the inspections and the incidents (services/backup/create.py),
    steps before reports: whatever is reported meanwhile is then in the file with what it names
    (members are only retired, inspections and incidents only replaced by a restore)."""
    steps = sorted(_step_rows(tx), key=lambda s: (str(s.report), s.at))
    reports = sorted(_report_rows(tx), key=lambda r: (r.created_at, str(r.key)))
    row = settings_in(tx)
    return {
        fmt.ACTIVITY_REPORTS: br.encode_reports(reports),
        fmt.REPORT_STEPS: br.encode_steps(steps),
        fmt.REPORT_SETTINGS: br.encode_settings(row.chain, row.reward_table),
    }


def _report_rows(tx: Tx) -> list[br.ReportRow]:
    codes, incidents, inspections = _codes(tx), _incidents(tx), _inspections(tx)
    rows = tx.session.exec(scoped(select(ActivityReport), tx.actor)).all()
    return [_report_row(tx, row, codes, incidents, inspections) for row in rows]


def _report_row(
    tx: Tx,
    row: ActivityReport,
    codes: Mapping[uuid.UUID, str],
    incidents: Mapping[uuid.UUID, IncidentKey],
    inspections: Mapping[uuid.UUID, InspectionKey],
) -> br.ReportRow:
    incident = incidents.get(row.incident_id) if row.incident_id else None
    inspection = inspections.get(row.inspection_id) if row.inspection_id else None
    return br.ReportRow(
        key=row.id,
        member_code=codes[row.member_id],
        incident_number=incident[0] if incident else None,
        incident_created_at=incident[1] if incident else None,
        source_code=inspection[0] if inspection else "",
        inspected_on=inspection[1] if inspection else None,
        inspection_created_at=inspection[2] if inspection else None,
        category=row.category,
        activity=_open(tx, row.activity_enc, ACTIVITY_FIELD, row.id),
        started_at=row.started_at,
        ended_at=row.ended_at,
        turned_back=row.turned_back,
        false_alarm=row.false_alarm,
        status=ReportStatus(row.status).label,
        step=row.step,
        returned=_open(tx, row.returned_enc, RETURNED_FIELD, row.id),
        entered_by=row.entered_by,
        created_at=row.created_at,
        updated_at=row.updated_at,
        submitted_at=row.submitted_at,
        approved_at=row.approved_at,
    )


def _step_rows(tx: Tx) -> list[br.StepRow]:
    codes = _codes(tx)
    return [
        br.StepRow(
            report=row.report_id,
            step=row.step,
            action=StepAction(row.action).label,
            member_code=codes.get(row.member_id, "") if row.member_id else "",
            actor_label=row.actor_label,
            comment=_open(tx, row.comment_enc, COMMENT_FIELD, row.id),
            at=row.at,
        )
        for row in tx.session.exec(scoped(select(ReportStep), tx.actor)).all()
    ]


def _open(tx: Tx, stored: str, field_name: str, row_id: uuid.UUID) -> str:
    return tx.cipher.decrypt(stored, field=field_name, row_id=row_id) if stored else ""


def _codes(tx: Tx) -> dict[uuid.UUID, str]:
    return dict(tx.session.exec(scoped(select(Member.id, Member.member_code), tx.actor)).all())


def _incidents(tx: Tx) -> dict[uuid.UUID, IncidentKey]:
    query = select(Incident.id, Incident.number, Incident.created_at)
    return {i: (n, at) for i, n, at in tx.session.exec(scoped(query, tx.actor))}


def _inspections(tx: Tx) -> dict[uuid.UUID, InspectionKey]:
    query = select(
        WaterInspection.id,
        WaterSource.code,
        WaterInspection.inspected_on,
        WaterInspection.created_at,
    ).join(WaterSource, WaterSource.id == WaterInspection.water_source_id)
    return {i: (c, on, at) for i, c, on, at in tx.session.exec(scoped(query, tx.actor))}


# -- planning ------------------------------------------------------------------------------------


def target_id(tx: Tx, backup: fmt.Backup, key: uuid.UUID) -> uuid.UUID:
    """The id a report of the file has once restored: its own in its brigade, else one derived
    from it and the restoring brigade (ids are unique across brigades)."""
    if backup.manifest.tenant_id == tx.tenant_id:
        return key
    return uuid.uuid5(tx.tenant_id, str(key))


def plan_reports(
    tx: Tx,
    backup: fmt.Backup,
    people: ImportPreview,
    incidents: ImportPreview,
    inspections: ImportPreview,
) -> ImportPreview:
    table = fmt.read_table(backup.files[fmt.ACTIVITY_REPORTS], br.REPORT_COLUMNS)
    current = {row.key: row for row in _report_rows(tx)}
    known = _Known(
        codes={row.code for row in people.rows},
        incidents=_file_incidents(incidents),
        inspections=_file_inspections(inspections),
    )
    rows = []
    for number, raw in table.records:
        found, errors = br.parse_report(number, raw)
        if found is not None:
            found = replace(found, key=target_id(tx, backup, found.key))
            errors = known.report_errors(number, found)
        rows.append(_report_plan(number, raw, found, errors, current))
    missing = sorted(str(key) for key in set(current) - known.keys)
    return preview_of(
        REPORTS,
        backup,
        rows=with_cell_errors(rows, table.errors),
        missing=missing,
        file_errors=table.problems,
    )


@dataclass
class _Known:
    """What the file holds that a report may name, and the reports seen so far."""

    codes: set[str]
    incidents: set[IncidentKey]
    inspections: set[InspectionKey]
    keys: set[uuid.UUID] = field(default_factory=set)
    called: set[tuple[IncidentKey, str]] = field(default_factory=set)

    def report_errors(self, number: int, row: br.ReportRow) -> list[CellError]:
        errors = []
        if row.status not in STATUSES:
            errors.append(CellError(number, HEADERS["status"], bd._choose(STATUSES)))
        if row.member_code not in self.codes:
            message = f"団員番号「{row.member_code[:20]}」が団員名簿（{fmt.MEMBERS}）にありません。"
            errors.append(CellError(number, HEADERS["member_code"], message))
        if row.incident is not None and row.incident not in self.incidents:
            message = (
                f"番号 {row.incident_number} で同じ登録日時の事案が"
                f"災害出動の事案（{fmt.INCIDENTS}）にありません。"
            )
            errors.append(CellError(number, HEADERS["incident_number"], message))
        if row.inspection is not None and row.inspection not in self.inspections:
            message = f"この水利点検が水利点検の記録（{fmt.INSPECTIONS}）にありません。"
            errors.append(CellError(number, HEADERS["source_code"], message))
        if row.key in self.keys:
            errors.append(CellError(number, HEADERS["key"], "報告IDが重複しています。"))
        if row.incident is not None and (row.incident, row.member_code) in self.called:
            message = "同じ事案に同じ団員の報告が重複しています。"
            errors.append(CellError(number, HEADERS["member_code"], message))
        self.keys.add(row.key)
        if row.incident is not None:
            self.called.add((row.incident, row.member_code))
        return errors


def _report_plan(
    number: int,
    raw: dict[str, str],
    found: br.ReportRow | None,
    errors: list[CellError],
    current: Mapping[uuid.UUID, br.ReportRow],
) -> RowPlan:
    code = f"{plain(raw.get('member_code', ''))[:20]} {raw.get('key', '')[:8]}"
    if errors or found is None:
        return RowPlan(number, code, RowStatus.INVALID, raw, errors=tuple(errors))
    before = current.get(found.key)
    if before is None:
        return RowPlan(number, code, RowStatus.NEW, raw)
    changes = tuple(
        FieldChange(
            HEADERS[f.name], _shown(getattr(before, f.name)), _shown(getattr(found, f.name))
        )
        for f in fields(br.ReportRow)
        if getattr(before, f.name) != getattr(found, f.name)
    )
    return RowPlan(
        number, code, RowStatus.CHANGED if changes else RowStatus.UNCHANGED, raw, changes
    )


def _shown(value: object) -> str:
    return "" if value is None else str(value)


def _file_incidents(plan: ImportPreview) -> set[IncidentKey]:
    parsed = (bd.parse_incident(row.row, row.raw)[0] for row in plan.rows)
    return {(row.number, row.created_at) for row in parsed if row is not None}


def _file_inspections(plan: ImportPreview) -> set[InspectionKey]:
    found = set()
    for row in plan.rows:
        try:
            on = to_date(row.raw["inspected_on"])
            created = datetime.fromisoformat(plain(row.raw["created_at"]))
        except (KeyError, ValueError):
            continue  # the inspection's own row error says why
        if on is not None and created.tzinfo is not None:
            found.add((plain(row.raw["source_code"]), on, created))
    return found


def plan_steps(
    tx: Tx, backup: fmt.Backup, reports: ImportPreview, people: ImportPreview
) -> ImportPreview:
    """Each step checked and compared with the brigade's steps now: those left over are what
    the restore removes."""
    table = fmt.read_table(backup.files[fmt.REPORT_STEPS], br.STEP_COLUMNS)
    keys = {_key_text(row.raw.get("key", "")) for row in reports.rows}
    codes = {row.code for row in people.rows}
    existing = Counter(_step_rows(tx))
    rows = []
    for number, raw in table.records:
        found, errors = br.parse_step(number, raw)
        if found is not None:
            errors = _step_errors(number, found, keys, codes)
            found = replace(found, report=target_id(tx, backup, found.report))
        code = f"{raw.get('report', '')[:8]} {raw.get('step', '')[:2]}"
        rows.append(counted_row(existing, found, number, code, raw, errors))
    missing = sorted(
        f"{row.report} {row.step}" for row, left in existing.items() for _ in range(left)
    )
    return preview_of(
        STEPS,
        backup,
        rows=with_cell_errors(rows, table.errors),
        missing=missing,
        file_errors=table.problems,
    )


def _key_text(text: str) -> str:
    """A key as parse_report reads it, so that steps find their report however it is spelt."""
    try:
        return str(uuid.UUID(text.strip()))
    except ValueError:
        return text.strip()


def _step_errors(number: int, row: br.StepRow, keys: set[str], codes: set[str]) -> list[CellError]:
    errors = []
    if row.action not in ACTIONS:
        errors.append(CellError(number, STEP_HEADERS["action"], bd._choose(ACTIONS)))
    if str(row.report) not in keys:
        message = f"この報告IDの出動報告が {fmt.ACTIVITY_REPORTS} にありません。"
        errors.append(CellError(number, STEP_HEADERS["report"], message))
    if row.member_code and row.member_code not in codes:
        message = f"団員番号「{row.member_code[:20]}」が団員名簿（{fmt.MEMBERS}）にありません。"
        errors.append(CellError(number, STEP_HEADERS["member_code"], message))
    return errors


def plan_settings(tx: Tx, backup: fmt.Backup) -> ImportPreview:
    """The chain checked as 承認の段階 checks it (against this brigade's ranks), the reward table
    as the 出動報酬 page checks it; one row."""
    found = br.read_settings(backup.files[fmt.REPORT_SETTINGS])
    errors = list(found.errors) or _settings_errors(tx, found)
    raw = {"chain": found.chain, "reward_table": found.reward_table}
    code = br.CHAIN_LABEL
    if errors:
        row = RowPlan(1, code, RowStatus.INVALID, raw, errors=tuple(errors))
    else:
        row = _settings_plan(tx, raw)
    return preview_of(REPORT_SETTINGS, backup, rows=[row])


def _settings_errors(tx: Tx, found: br.ReportSettingsFile) -> list[CellError]:
    errors = []
    try:
        steps = _chain(found.chain)
    except ValueError:
        return [CellError(1, br.CHAIN_LABEL, "承認の範囲は「unit」か「brigade」にしてください。")]
    if steps:
        ranks = dict(tx.session.exec(scoped(select(Rank.name, Rank.position), tx.actor)).all())
        for place, message in approval_chain_errors(list(steps), ranks).items():
            errors.append(CellError(1, br.CHAIN_LABEL, f"{place}: {message}"))
    if found.reward_table:
        for message in table_problems(from_json(found.reward_table)):
            errors.append(CellError(1, br.TABLE_LABEL, message))
    return errors


def _chain(text: str) -> tuple[ChainStep, ...]:
    return tuple(ChainStep(step["rank"], StepScope(step["scope"])) for step in json.loads(text))


def _settings_plan(tx: Tx, raw: dict[str, str]) -> RowPlan:
    row = settings_in(tx)
    before = {"chain": _stored_chain(row.chain), "reward_table": _stored_table(row.reward_table)}
    changes = []
    if before["chain"] != raw["chain"]:
        chains = (_chain_label(before["chain"]), _chain_label(raw["chain"]))
        changes.append(FieldChange(br.CHAIN_LABEL, *chains))
    if before["reward_table"] != raw["reward_table"]:
        tables = (_table_label(before["reward_table"]), _table_label(raw["reward_table"]))
        changes.append(FieldChange(br.TABLE_LABEL, *tables))
    status = RowStatus.CHANGED if changes else RowStatus.UNCHANGED
    return RowPlan(1, br.CHAIN_LABEL, status, raw, changes=tuple(changes))


def _stored_chain(text: str) -> str:
    return json.dumps(json.loads(text or "[]"), ensure_ascii=False)


def _stored_table(text: str) -> str:
    return to_json(from_json(text)) if text else ""


def _chain_label(text: str) -> str:
    return " → ".join(step.label for step in _chain(text)) or "既定"


def _table_label(text: str) -> str:
    table: RewardTable | None = from_json(text) if text else None
    return table.name if table else "なし"


# -- writing -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Aside:
    """What set_aside kept: each removed report's version (a restored one moves on from it), or
    each kept report's links by natural key."""

    versions: dict[uuid.UUID, int] = field(default_factory=dict)
    incidents: dict[uuid.UUID, IncidentKey] = field(default_factory=dict)
    inspections: dict[uuid.UUID, InspectionKey] = field(default_factory=dict)


def set_aside(tx: Tx, *, replaced: bool) -> Aside:
    """Before inspections and incidents are replaced: the reports removed when the backup
    replaces them, else unlinked, their links kept by natural key for relink."""
    rows = tx.session.exec(scoped(select(ActivityReport), tx.actor)).all()
    if replaced:
        tx.session.exec(
            delete(ReportStep)
            .where(ReportStep.tenant_id == tx.tenant_id)
            .execution_options(synchronize_session=False)
        )
        for row in rows:
            tx.session.delete(row)  # through the session: the restore adds rows of these ids
        tx.session.flush()
        return Aside(versions={row.id: row.version for row in rows})
    incidents, inspections = _incidents(tx), _inspections(tx)
    aside = Aside(
        incidents={r.id: incidents[r.incident_id] for r in rows if r.incident_id},
        inspections={r.id: inspections[r.inspection_id] for r in rows if r.inspection_id},
    )
    for row in rows:
        row.incident_id, row.inspection_id = None, None
        tx.session.add(row)
    tx.session.flush()
    return aside


def relink(tx: Tx, aside: Aside) -> None:
    """The kept reports linked again to the restored incidents and inspections of their
    natural keys; one whose incident or inspection is gone keeps only its other data."""
    incidents = {key: id_ for id_, key in _incidents(tx).items()}
    inspections = {key: id_ for id_, key in _inspections(tx).items()}
    for report_id in aside.incidents.keys() | aside.inspections.keys():
        row = tx.session.get(ActivityReport, report_id)
        assert row is not None  # set aside in this transaction
        incident, inspection = aside.incidents.get(report_id), aside.inspections.get(report_id)
        row.incident_id = incidents.get(incident) if incident else None
        row.inspection_id = inspections.get(inspection) if inspection else None
        tx.session.add(row)
    tx.session.flush()


def write_reports(
    tx: Tx, backup: fmt.Backup, plans: Mapping[str, ImportPreview], aside: Aside
) -> dict[str, ImportResult]:
    """The file's reports, then their trails, then the settings (set_aside removed the
    brigade's reports and trails)."""
    members = {code: id_ for id_, code in _codes(tx).items()}
    incidents = {key: id_ for id_, key in _incidents(tx).items()}
    inspections = {key: id_ for id_, key in _inspections(tx).items()}
    for plan in plans[REPORTS].rows:
        found = br.parse_report(plan.row, plan.raw)[0]
        assert found is not None  # the plan was checked in this transaction
        row = ActivityReport(
            id=target_id(tx, backup, found.key),
            tenant_id=tx.tenant_id,
            member_id=members[found.member_code],
            incident_id=incidents[found.incident] if found.incident else None,
            inspection_id=inspections[found.inspection] if found.inspection else None,
        )
        _fill(tx, row, found, aside.versions.get(row.id), plan.status)
        tx.session.add(row)
    tx.session.flush()
    for plan in plans[STEPS].rows:
        step = br.parse_step(plan.row, plan.raw)[0]
        assert step is not None  # the plan was checked in this transaction
        tx.session.add(_step(tx, backup, step, members))
    tx.session.flush()
    return {
        REPORTS: _counted(plans[REPORTS]),
        STEPS: _counted(plans[STEPS]),
        REPORT_SETTINGS: _write_settings(tx, plans[REPORT_SETTINGS]),
    }


def _fill(
    tx: Tx, row: ActivityReport, found: br.ReportRow, before: int | None, status: RowStatus
) -> None:
    for name in ("category", "started_at", "ended_at", "turned_back", "false_alarm", "step"):
        setattr(row, name, getattr(found, name))
    for name in ("entered_by", "created_at", "updated_at", "submitted_at", "approved_at"):
        setattr(row, name, getattr(found, name))
    row.status = STATUSES[found.status]
    row.activity_enc = _seal(tx, found.activity, ACTIVITY_FIELD, row.id)
    row.returned_enc = _seal(tx, found.returned, RETURNED_FIELD, row.id)
    # a report open on a page at the backup's moment must not be saved over the restored one
    if before is None:
        row.version = 1
    else:
        row.version = before if status == RowStatus.UNCHANGED else before + 1


def _step(tx: Tx, backup: fmt.Backup, found: br.StepRow, members: Mapping[str, uuid.UUID]):
    row = ReportStep(
        tenant_id=tx.tenant_id,
        report_id=target_id(tx, backup, found.report),
        step=found.step,
        action=ACTIONS[found.action],
        member_id=members[found.member_code] if found.member_code else None,
        actor_label=found.actor_label,
        at=found.at,
    )
    row.comment_enc = _seal(tx, found.comment, COMMENT_FIELD, row.id)
    return row


def _seal(tx: Tx, text: str, field_name: str, row_id: uuid.UUID) -> str:
    return tx.cipher.encrypt(text, field=field_name, row_id=row_id) if text else ""


def _write_settings(tx: Tx, plan: ImportPreview) -> ImportResult:
    (found,) = plan.rows
    if found.status == RowStatus.UNCHANGED:
        return ImportResult(unchanged=1)
    row = tx.session.get(ReportSettings, tx.tenant_id, with_for_update=True)
    if row is None:
        row = ReportSettings(tenant_id=tx.tenant_id, version=0, updated_at=utcnow())
    row.chain, row.reward_table = found.raw["chain"], found.raw["reward_table"]
    settings_changed(row)  # a settings page open meanwhile must not save over the restore
    tx.session.add(row)
    tx.session.flush()
    return ImportResult(updated=1)


def _counted(plan: ImportPreview) -> ImportResult:
    counts = plan.counts
    return ImportResult(
        created=counts[RowStatus.NEW],
        updated=counts[RowStatus.CHANGED],
        unchanged=counts[RowStatus.UNCHANGED],
        retired=len(plan.missing),
    )
