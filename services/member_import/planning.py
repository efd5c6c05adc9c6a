"""Planning a member import: every row read, checked and compared with the roster, and the
permission rules for what a row would change, before anything is written."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row

from core.access import Need, allows
from formats import member_csv
from formats.member_csv import HEADERS
from formats.tabular import CellError, CellValueError, plain, to_date
from models.enums import Function, Level, MemberStatus
from services import members
from services.base import Tx
from services.imports import (
    FieldChange,
    Progress,
    ProgressCounter,
    RowPlan,
    RowStatus,
    normalisations,
)
from services.member_import.model import (
    ACCOUNTS_REQUIRED,
    CHUNK,
    COLUMN_ORDER,
    FIELD_COLUMNS,
    MAX_LENGTHS,
    TEXT_FIELDS,
    Fields,
    MemberRowPlan,
    PlanContext,
    Planned,
    Prepared,
)
from services.members import EditScope
from services.members.ceiling import ceiling_problem
from services.permissions import (
    Grant,
    Refused,
    check_grants_permission_editing,
)


def plan_rows(
    tx: Tx,
    records: Sequence[tuple[int, dict[str, str]]],
    *,
    scope: EditScope | None,
    lock: bool = False,
    progress: Progress | None = None,
    context: PlanContext | None = None,
) -> Planned:
    """`context`: the brigade as this transaction has already loaded it (else loaded here)."""
    context = context or PlanContext.load(tx, scope=scope, lock=lock)
    first_row: dict[str, int] = {}
    ticker = ProgressCounter(progress, len(records))
    rows = []
    for row, raw in records:
        rows.append(_plan_row(context, row, raw, first_row))
        ticker.advance(1, every=CHUNK)
    ticker.finish()
    codes = {plan.code for plan in rows}
    absent, outside = absent_members(context, codes)
    current = [row for row in context.existing.values() if row.status != MemberStatus.RETIRED]
    own = context.tx.actor.member_id
    kept_self = next(
        (r.member_code for r in current if r.id == own and r.member_code not in codes), ""
    )
    return Planned(rows, absent, outside, len(current), kept_self)


def _plan_row(
    context: PlanContext, row: int, raw: dict[str, str], first_row: dict[str, int]
) -> MemberRowPlan:
    errors = _length_errors(raw)
    code = plain(raw.get("member_code", ""))
    current = context.existing.get(code)
    before = context.fields(current) if current is not None else None
    values = _values(context, raw, before, errors)
    if code and first_row.setdefault(code, row) != row:
        errors.setdefault(
            "member_code", f"団員番号「{code}」は{first_row[code]}行目と重複しています。"
        )
    changes = _changes(context, before, values) if before is not None else ()
    if not errors and context.checks_rows and (before is None or changes):
        _check_permissions(context, values, before, errors)
    if not errors and (before is None or changes):
        _check_ceiling(context, current, values, before, errors)
    stored = {} if errors else context.cells(values)
    return MemberRowPlan(
        row=row,
        code=code,
        status=_status(before, changes, errors),
        raw=dict(raw),
        changes=changes,
        errors=tuple(_cell_errors(row, errors)),
        prepared=None
        if errors
        else Prepared(context, code, values, current, before, bool(changes)),
        fields=tuple((HEADERS[key], stored[key]) for key in stored) if before is None else (),
        normalised=normalisations(raw, stored, HEADERS),
    )


def _length_errors(raw: dict[str, str]) -> dict[str, str]:
    return {
        key: f"{MAX_LENGTHS[key]}文字以内にしてください。"
        for key, text in raw.items()
        if len(text) > MAX_LENGTHS.get(key, len(text))
    }


def _values(
    context: PlanContext, raw: dict[str, str], before: Fields | None, errors: dict[str, str]
) -> Fields:
    """The member's fields from the row's cells, normalised and checked as services.members
    does; a column the file lacks keeps the current value (a new member's is blank), and a
    blank 状態 keeps the current status (new: 在籍)."""
    fields: Fields = dict(before) if before is not None else {"status": MemberStatus.ACTIVE}
    fields.update({name: raw[name] for name in TEXT_FIELDS if name in raw})
    for key, read in _READERS.items():
        if key in raw and key not in errors:
            try:
                fields.update(read(context, raw[key]))
            except CellValueError as exc:
                errors[key] = str(exc)
    if "rank_id" not in fields and "rank" not in errors:
        errors["rank"] = "階級を入力してください。"
    values = members.normalise_member(fields, notes_as_given=True) | {"status": fields["status"]}
    for name, message in members.member_errors(values).items():
        errors.setdefault(FIELD_COLUMNS[name], message)
    return values


def _read_rank(context: PlanContext, text: str) -> dict[str, Any]:
    name = plain(text)
    if not name:
        raise CellValueError("階級を入力してください。")
    if name not in context.ranks:
        raise CellValueError(f"階級「{name}」はありません（{'、'.join(context.ranks)}）。")
    return {"rank_id": context.ranks[name]}


def _read_roles(context: PlanContext, text: str) -> dict[str, Any]:
    names, unknown = member_csv.split_roles(text, context.roles)
    if unknown:
        raise CellValueError(f"役職「{'、'.join(unknown)}」はありません。")
    return {"role_ids": [context.roles[name] for name in names]}


def _read_status(_: PlanContext, text: str) -> dict[str, Any]:
    status = member_csv.status_of(text)
    return {"status": status} if status is not None else {}


def _read_joined_on(_: PlanContext, text: str) -> dict[str, Any]:
    return {"joined_on": to_date(text)}


_READERS = {
    "rank": _read_rank,
    "roles": _read_roles,
    "status": _read_status,
    "joined_on": _read_joined_on,
}


def _changes(context: PlanContext, before: Fields, after: Fields) -> tuple[FieldChange, ...]:
    """The columns whose text changes, compared as the export writes them."""
    if all(_same(name, before[name], after[name]) for name in COMPARED):
        return ()
    old, new = context.cells(before), context.cells(after)
    return tuple(
        FieldChange(HEADERS[key], old[key], new[key]) for key in HEADERS if old[key] != new[key]
    )


COMPARED = (*TEXT_FIELDS, "rank_id", "role_ids", "status", "joined_on")


def _same(name: str, before: Any, after: Any) -> bool:
    return set(before) == set(after) if name == "role_ids" else before == after


def _status(
    before: Fields | None, changes: tuple[FieldChange, ...], errors: dict[str, str]
) -> RowStatus:
    if errors:
        return RowStatus.INVALID
    if before is None:
        return RowStatus.NEW
    return RowStatus.CHANGED if changes else RowStatus.UNCHANGED


def _cell_errors(row: int, errors: dict[str, str]) -> list[CellError]:
    ordered = sorted(errors.items(), key=lambda item: COLUMN_ORDER[item[0]])
    return [CellError(row, HEADERS[key], message) for key, message in ordered]


def _check_permissions(
    context: PlanContext, values: Fields, before: Fields | None, errors: dict[str, str]
) -> None:
    """What services.members checks on create and update, for a row about to be written:
    the editor's own 所属, granting the right to edit permissions, suspending. Only for rows
    that write something: an unchanged row outside the own 所属 is no error."""
    scope, actor = context.scope, context.tx.actor
    assert scope is not None
    affiliations = [values["affiliation"], *([before["affiliation"]] if before else [])]
    if not all(scope.covers(a) for a in affiliations):
        errors["affiliation"] = (
            f"自分の所属（{scope.unit}）以外の団員は登録・変更できません。"
            if scope.unit
            else "団員名簿の編集権限がないため、団員は登録・変更できません。"
        )
        return
    subjects = [values["rank_id"], *values["role_ids"]]
    old = [before["rank_id"], *before["role_ids"]] if before is not None else []
    if set(old) != set(subjects):
        previous = context.permissions_grant(old) if old else Grant()
        try:
            check_grants_permission_editing(
                context.tx, previous, context.permissions_grant(subjects)
            )
        except Refused as refused:
            rank_changed = before is None or before["rank_id"] != values["rank_id"]
            errors["rank" if rank_changed else "roles"] = refused.message or ""
    was = before["status"] if before is not None else values["status"]
    suspending = MemberStatus.SUSPENDED in (was, values["status"]) and was != values["status"]
    if suspending and not allows(actor, Need(Function.MEMBER_ACCOUNTS, Level.EDIT)):
        errors["status"] = ACCOUNTS_REQUIRED


def _check_ceiling(
    context: PlanContext,
    current: Row[Any] | None,
    values: Fields,
    before: Fields | None,
    errors: dict[str, str],
) -> None:
    """The ceiling (services.members.ceiling), as the roster applies it: nobody changes their
    own status, rank or roles, and without 管理 nobody acts on a member above him or gives more
    than he holds."""
    subjects = [values["rank_id"], *values["role_ids"]]
    old = [before["rank_id"], *before["role_ids"]] if before is not None else None
    problem = ceiling_problem(
        context.tx.actor,
        member_id=current.id if current is not None else None,
        before=context.grants_of(old) if old is not None else None,
        after=context.grants_of(subjects) if old is None or set(old) != set(subjects) else None,
        status_changes=before is not None and before["status"] != values["status"],
    )
    if problem is not None:
        field, message = problem
        if field == "rank" and before is not None and before["rank_id"] == values["rank_id"]:
            field = "roles"
        errors[{"member": "member_code"}.get(field, field)] = message


def absent_members(context: PlanContext, codes: set[str]) -> tuple[list[Row[Any]], int]:
    """Members the file does not mention and that are not retired: (those the actor may
    retire, how many are left alone: outside the actor's scope, above his ceiling, or the actor
    himself)."""
    absent = [
        row
        for code, row in sorted(context.existing.items())
        if code not in codes and row.status != MemberStatus.RETIRED
    ]
    scope, actor = context.scope, context.tx.actor
    inside = [
        row
        for row in absent
        if (scope is None or scope.covers(row.affiliation))
        and ceiling_problem(
            actor, member_id=row.id, before=context.member_grants(row), status_changes=True
        )
        is None
    ]
    return inside, len(absent) - len(inside)


def without_prepared(plan: MemberRowPlan) -> RowPlan:
    """What a preview keeps: the page holds it between requests, the database rows stay."""
    return RowPlan(
        plan.row,
        plan.code,
        plan.status,
        plan.raw,
        plan.changes,
        plan.errors,
        fields=plan.fields,
        normalised=plan.normalised,
    )
