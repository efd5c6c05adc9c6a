"""The call-out (出動連絡, #21) of a backup: who was called for each incident (the targets) and
what they answered (出動可否: every answer, the latest per member counting), each naming its
incident by number and registration time, as incidents are matched, and its member by member
code (white paper 12.3.1).

The waves (Callout) and the LINE outbox are not backed up or restored. A wave is a message that
was sent, or waiting to be sent, at the backup's moment: history, and sending it again after a
restore would call members out for an old incident. A restored target therefore belongs to no
wave (CalloutTarget.callout_id is empty, migration y004), except on an incident the restore kept
(same number, same registration time), where the member's target keeps its wave: an open
incident restored in place still reminds those who have not answered. The tally of a restored
incident lists no waves, and counts crews against the incident's own 分団 only.

A restore replaces the targets and answers of every incident by the file's; the incidents were
replaced just before (services/backup/incidents.py), the self-test's left aside there and here.
A row naming a member code absent from the file's roster, or an incident absent from its
incidents, is an error of that row and column."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import TypeVar

from sqlalchemy import delete
from sqlmodel import select

from formats import backup as fmt
from formats import backup_dispatch as bd
from formats.tabular import CellError, Column
from models import Member
from models.callout import CalloutAnswer, CalloutTarget
from models.dispatch import Incident
from models.enums import Answer
from services.backup.incidents import recorded, without_selftest
from services.backup.model import (
    ANSWERS,
    ENTITIES,
    TARGETS,
    counted_row,
    preview_of,
    with_cell_errors,
)
from services.base import Tx, scoped
from services.imports import ImportPreview, ImportResult, RowStatus

TARGET_HEADERS = {column.key: column.header for column in bd.TARGET_COLUMNS}
ANSWER_HEADERS = {column.key: column.header for column in bd.ANSWER_COLUMNS}
Row = TypeVar("Row", bd.TargetRow, bd.AnswerRow)
Called = tuple[int, datetime, str]  # incident number, its registration time, member code
Parse = Callable[[int, Mapping[str, str]], tuple[Row | None, list[CellError]]]


def _called(row: bd.TargetRow | bd.AnswerRow) -> Called:
    return (row.incident_number, row.incident_created_at, row.member_code)


# -- the files -----------------------------------------------------------------------------------


def callout_files(tx: Tx) -> dict[str, bytes]:
    """Read before the roster and the incidents (services/backup/create.py), answers before
    targets: whatever is called or answered meanwhile is then in the file with its member, its
    incident and its target, never without them (members are only retired, incidents only
    deleted by a restore)."""
    answers = sorted(_answer_rows(tx), key=lambda a: (a.incident_number, a.at, a.member_code))
    targets = sorted(_target_rows(tx), key=lambda t: (t.incident_number, t.unit, t.member_code))
    return {
        fmt.CALLOUT_TARGETS: bd.encode_targets(targets),
        fmt.CALLOUT_ANSWERS: bd.encode_answers(answers),
    }


def _target_rows(tx: Tx) -> list[bd.TargetRow]:
    query = (
        select(CalloutTarget, Incident.number, Incident.created_at, Member.member_code)
        .join(Incident, Incident.id == CalloutTarget.incident_id)
        .join(Member, Member.id == CalloutTarget.member_id)
    )
    return [
        bd.TargetRow(
            incident_number=number,
            incident_created_at=registered,
            member_code=code,
            unit=row.unit,
            leader=row.leader,
            notified=row.notified,
            reminded_at=row.reminded_at,
            created_at=row.created_at,
        )
        for row, number, registered, code in tx.session.exec(
            without_selftest(scoped(query, tx.actor))
        )
    ]


def _answer_rows(tx: Tx) -> list[bd.AnswerRow]:
    query = (
        select(CalloutAnswer, Incident.number, Incident.created_at, Member.member_code)
        .join(Incident, Incident.id == CalloutAnswer.incident_id)
        .join(Member, Member.id == CalloutAnswer.member_id)
    )
    return [
        bd.AnswerRow(
            incident_number=number,
            incident_created_at=registered,
            member_code=code,
            answer=Answer(row.answer),
            eta_minutes=row.eta_minutes,
            via=row.via,
            actor_label=row.actor_label,
            at=row.at,
        )
        for row, number, registered, code in tx.session.exec(
            without_selftest(scoped(query, tx.actor))
        )
    ]


# -- planning ------------------------------------------------------------------------------------


def plan_targets(
    tx: Tx, backup: fmt.Backup, incidents: ImportPreview, people: ImportPreview
) -> ImportPreview:
    registered, codes = _registered(incidents), {row.code for row in people.rows}
    seen: set[Called] = set()

    def check(number: int, target: bd.TargetRow) -> list[CellError]:
        errors = _reference_errors(number, target, registered, codes, TARGET_HEADERS)
        if _called(target) in seen:
            message = "同じ事案に同じ団員が重複しています。"
            errors.append(CellError(number, TARGET_HEADERS["member_code"], message))
        seen.add(_called(target))
        return errors

    return _plan(backup, TARGETS, bd.TARGET_COLUMNS, bd.parse_target, check, _target_rows(tx))


def plan_answers(
    tx: Tx,
    backup: fmt.Backup,
    incidents: ImportPreview,
    people: ImportPreview,
    targets: ImportPreview,
) -> ImportPreview:
    registered, codes = _registered(incidents), {row.code for row in people.rows}
    called = {_called(target) for target in _parsed(targets, bd.parse_target) if target}

    def check(number: int, answer: bd.AnswerRow) -> list[CellError]:
        errors = _reference_errors(number, answer, registered, codes, ANSWER_HEADERS)
        if not errors and _called(answer) not in called:
            message = f"この団員は {fmt.CALLOUT_TARGETS} でこの事案に呼び出されていません。"
            errors.append(CellError(number, ANSWER_HEADERS["member_code"], message))
        return errors

    return _plan(backup, ANSWERS, bd.ANSWER_COLUMNS, bd.parse_answer, check, _answer_rows(tx))


def _plan(
    backup: fmt.Backup,
    entity: str,
    columns: tuple[Column, ...],
    parse: Parse[Row],
    check: Callable[[int, Row], list[CellError]],
    current: Iterable[Row],
) -> ImportPreview:
    """Each row checked and compared with the brigade's rows now: those left over are what the
    restore removes."""
    table = fmt.read_table(backup.files[ENTITIES[entity]], columns)
    existing = Counter(current)
    rows = []
    for number, raw in table.records:
        found, errors = parse(number, raw)
        if found is not None:
            errors = check(number, found)
        code = f"{raw.get('incident_number', '')[:10]} {raw.get('member_code', '')[:20]}"
        rows.append(counted_row(existing, found, number, code, raw, errors))
    missing = sorted(
        f"{row.incident_number} {row.member_code}"
        for row, left in existing.items()
        for _ in range(left)
    )
    return preview_of(
        entity,
        backup,
        rows=with_cell_errors(rows, table.errors),
        missing=missing,
        file_errors=table.problems,
    )


def _registered(incidents: ImportPreview) -> dict[str, datetime | None]:
    """The file's incidents: registration time by number (as text); None for one whose row has
    errors of its own, which are not repeated on the rows naming it."""
    found: dict[str, datetime | None] = {}
    for row in incidents.rows:
        valid = row.status != RowStatus.INVALID
        incident = bd.parse_incident(row.row, row.raw)[0] if valid else None
        found[row.code] = incident.created_at if incident else None
    return found


def _reference_errors(
    number: int,
    row: bd.TargetRow | bd.AnswerRow,
    registered: Mapping[str, datetime | None],
    codes: set[str],
    headers: Mapping[str, str],
) -> list[CellError]:
    errors = []
    incident = str(row.incident_number)
    if incident not in registered:
        message = f"番号 {incident} の事案が災害出動の事案（{fmt.INCIDENTS}）にありません。"
        errors.append(CellError(number, headers["incident_number"], message))
    elif registered[incident] not in (None, row.incident_created_at):
        message = f"番号 {incident} の事案の登録日時が {fmt.INCIDENTS} と異なります。"
        errors.append(CellError(number, headers["incident_created_at"], message))
    if row.member_code not in codes:
        message = f"団員番号「{row.member_code[:20]}」が団員名簿（{fmt.MEMBERS}）にありません。"
        errors.append(CellError(number, headers["member_code"], message))
    return errors


def _parsed(plan: ImportPreview, parse: Parse[Row]) -> list[Row | None]:
    return [parse(row.row, row.raw)[0] for row in plan.rows]


# -- writing -------------------------------------------------------------------------------------


def write_targets(tx: Tx, plan: ImportPreview) -> ImportResult:
    """Every target replaced by the file's; one on a kept incident keeps its member's wave."""
    query = select(CalloutTarget.incident_id, CalloutTarget.member_id, CalloutTarget.callout_id)
    waves = {(i, m): w for i, m, w in tx.session.exec(scoped(query, tx.actor))}
    removed = _delete_all(tx, CalloutTarget)
    incidents, members = _incident_ids(tx), _member_ids(tx)
    for target in _parsed(plan, bd.parse_target):
        assert target is not None  # the plan was checked in this transaction
        incident_id = incidents[(target.incident_number, target.incident_created_at)]
        member_id = members[target.member_code]
        tx.session.add(
            CalloutTarget(
                tenant_id=tx.tenant_id,
                incident_id=incident_id,
                member_id=member_id,
                callout_id=waves.get((incident_id, member_id)),
                unit=target.unit,
                leader=target.leader,
                notified=target.notified,
                reminded_at=target.reminded_at,
                created_at=target.created_at,
            )
        )
    tx.session.flush()
    return _result(plan, removed)


def write_answers(tx: Tx, plan: ImportPreview) -> ImportResult:
    """Every answer replaced by the file's, its history whole."""
    removed = _delete_all(tx, CalloutAnswer)
    incidents, members = _incident_ids(tx), _member_ids(tx)
    for answer in _parsed(plan, bd.parse_answer):
        assert answer is not None  # the plan was checked in this transaction
        tx.session.add(
            CalloutAnswer(
                tenant_id=tx.tenant_id,
                incident_id=incidents[(answer.incident_number, answer.incident_created_at)],
                member_id=members[answer.member_code],
                answer=answer.answer,
                eta_minutes=answer.eta_minutes,
                via=answer.via,
                actor_label=answer.actor_label,
                at=answer.at,
            )
        )
    tx.session.flush()
    return _result(plan, removed)


def _delete_all(tx: Tx, table: type[CalloutTarget] | type[CalloutAnswer]) -> int:
    return tx.session.exec(
        delete(table)
        .where(table.tenant_id == tx.tenant_id, table.incident_id.in_(recorded(tx)))
        .execution_options(synchronize_session=False)
    ).rowcount


def _incident_ids(tx: Tx) -> dict[tuple[int, datetime], uuid.UUID]:
    query = select(Incident.number, Incident.created_at, Incident.id)
    return {(n, at): i for n, at, i in tx.session.exec(scoped(query, tx.actor))}


def _member_ids(tx: Tx) -> dict[str, uuid.UUID]:
    return dict(tx.session.exec(scoped(select(Member.member_code, Member.id), tx.actor)).all())


def _result(plan: ImportPreview, removed: int) -> ImportResult:
    unchanged = plan.counts[RowStatus.UNCHANGED]
    return ImportResult(
        created=len(plan.rows) - unchanged, unchanged=unchanged, retired=removed - unchanged
    )
