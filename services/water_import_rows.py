"""The rows of a water-source import inside a caller's transaction: each planned (validated and
compared with the stored source of the same 水利番号) and the plans written in bulk. The import
(services/water_import.py) and the restore of a backup (services/backup) call these; neither
checks access or audits here: the caller's transaction does both.

Planning runs once per row of files of up to tabular.MAX_ROWS rows, so a row's cells are read
once (water_csv.typed), validated once (validate_fields, the registry's own rules) and shown
once; writing is an executemany per chunk in the caller's unit of work (#19)."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import Dialect, bindparam, delete, insert, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from formats import water_csv
from formats.tabular import CellError, plain
from models.base import new_id, utcnow
from models.enums import HYDRANT_KINDS, OWNERSHIPS
from models.water import WaterInspection, WaterSource, WaterSourceBase
from services import water_file_checks as file_checks
from services.base import Tx, scoped
from services.errors import Conflict, ValidationError
from services.imports import (
    FieldChange,
    ImportResult,
    MissingRows,
    Progress,
    ProgressCounter,
    RowPlan,
    RowStatus,
    normalisations,
)
from services.water_sources import BASE_FIELDS, NOT_FOR_HYDRANTS, today_jst, validate_fields

CHUNK = 2_000
EXISTING_COLUMNS = (
    WaterSource.id,
    WaterSource.version,
    *(getattr(WaterSource, name) for name in BASE_FIELDS),
)
HYDRANT_ONLY = ("main_diameter_mm", "hydrant_type")
# Core statements on the table: the ORM's bulk insert splits a batch wherever the set of None
# values changes (hydrants and cisterns alternate), which costs one statement per row.
SOURCES = WaterSource.__table__
UPDATE_BY_ID = (
    update(SOURCES)
    .where(SOURCES.c.id == bindparam("_id"))
    .values({name: bindparam(name) for name in (*BASE_FIELDS, "version", "updated_at")})
)
# The columns of a new source as the table orders them: the validated fields, then these, which
# every row of one write shares but for the id.
WRITTEN_COLUMNS = ("id", "tenant_id", "version", "created_at", "updated_at")
INSERT_COLUMNS = (*BASE_FIELDS, *WRITTEN_COLUMNS)
DEFAULTS = {
    name: info.default
    for name, info in WaterSourceBase.model_fields.items()
    if name not in ("code", "kind")
}


@dataclass(frozen=True)
class WaterRowPlan(RowPlan):
    """A row's plan with what writing it needs: the validated values and the row it updates."""

    values: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    source_id: uuid.UUID | None = None
    version: int = 0


@dataclass(frozen=True)
class _Planning:
    """What every row of one planning compares with and names its columns by."""

    existing: Mapping[str, Any]
    headers: Mapping[str, str]  # our key → the column named in messages
    columns: tuple[str, ...]  # the column of each of BASE_FIELDS, in their order
    today: date
    first_rows: dict[str, tuple[int, str]] = field(default_factory=dict)  # code → (row, given)


def plan_water_sources(
    tx: Tx,
    records: Sequence[tuple[int, dict[str, str]]],
    *,
    headers: Mapping[str, str] | None = None,
    existing: Mapping[str, Any] | None = None,
) -> list[RowPlan]:
    """Each record (row number, our key → text) validated and compared with the source of the
    same 水利番号. A key absent from a record keeps the stored value (or the default for a new
    source). headers names the file's columns in error messages (our headers by default);
    existing: the stored sources by 水利番号 (existing_sources), when the caller has read them."""
    named = {**water_csv.HEADERS, **(headers or {})}
    planning = _Planning(
        existing_sources(tx) if existing is None else existing,
        named,
        tuple(named[name] for name in BASE_FIELDS),
        today_jst(),
    )
    return [_plan_row(number, raw, planning) for number, raw in records]


def write_water_sources(
    tx: Tx,
    plans: Sequence[RowPlan],
    *,
    missing: MissingRows,
    progress: Progress | None = None,
    existing: Mapping[str, Any] | None = None,
) -> ImportResult:
    """Insert the new rows and update the changed ones in bulk; with MissingRows.RETIRE delete
    the sources no plan mentions, with their inspections. existing: the stored sources the
    caller read in this transaction (existing_sources), so that what is deleted is what it
    counted. Any invalid plan: ValidationError and nothing written. No audit event: the caller
    records one for the whole operation."""
    _check_plans(plans)
    now = utcnow()
    new = [p for p in plans if isinstance(p, WaterRowPlan) and p.status == RowStatus.NEW]
    changed = [_update_row(plan, now) for plan in plans if plan.status == RowStatus.CHANGED]
    retired = []
    if missing == MissingRows.RETIRE:
        stored = existing_sources(tx) if existing is None else existing
        retired = [row.id for row in absent(stored, plans)]
    step = ProgressCounter(progress, len(new) + len(changed) + len(retired))
    try:
        for chunk in _chunks(new):
            _insert_rows(tx, chunk, now)
            step.advance(len(chunk))
        for chunk in _chunks(changed):
            _update_rows(tx, chunk)
            step.advance(len(chunk))
        for chunk in _chunks(retired):
            _delete_sources(tx, chunk)
            step.advance(len(chunk))
    except IntegrityError:
        raise Conflict() from None
    unchanged = sum(plan.status == RowStatus.UNCHANGED for plan in plans)
    unplaced = sum(  # written rows only (WaterRowPlans)
        plan.values.get("latitude") is None
        for plan in plans
        if plan.status in (RowStatus.NEW, RowStatus.CHANGED)
    )
    return ImportResult(len(new), len(changed), unchanged, len(retired), unplaced=unplaced)


def existing_sources(tx: Tx) -> dict[str, Any]:
    """The brigade's stored sources (EXISTING_COLUMNS) by 水利番号."""
    return {row.code: row for row in tx.session.exec(scoped(select(*EXISTING_COLUMNS), tx.actor))}


def absent(existing: Mapping[str, Any], plans: Sequence[RowPlan]) -> list[Any]:
    """The stored sources (existing: existing_sources) no plan mentions, by 水利番号."""
    mentioned = {plan.code for plan in plans}
    return [row for code, row in sorted(existing.items()) if code not in mentioned]


# -- planning ------------------------------------------------------------------------------------


def _plan_row(number: int, raw: dict[str, str], planning: _Planning) -> RowPlan:
    headers = planning.headers
    values, errors = water_csv.typed(raw)
    code = plain(raw.get("code", ""))
    current = planning.existing.get(code)
    stored = _stored(current) if current is not None else {**DEFAULTS, "code": code, "kind": ""}
    checked, problems = validate_fields(
        _fitted(stored | values, values), today=planning.today, memo_as_given=True
    )
    errors = problems | errors
    first_rows = planning.first_rows
    if code and code in first_rows:
        errors["code"] = file_checks.duplicate_code_message(raw["code"], *first_rows[code])
    if code:
        first_rows.setdefault(code, (number, raw["code"]))
    if errors:
        cells = tuple(CellError(number, headers.get(k, k), m) for k, m in errors.items())
        return WaterRowPlan(number, code, RowStatus.INVALID, dict(raw), errors=cells)
    shown = _shown_row(checked)
    normalised = normalisations(raw, shown, headers)
    if current is None:
        return WaterRowPlan(
            number,
            code,
            RowStatus.NEW,
            dict(raw),
            values=checked,
            fields=tuple(zip(planning.columns, shown.values(), strict=True)),
            normalised=normalised,
        )
    changes = tuple(
        FieldChange(headers[name], _shown(name, stored[name]), shown[name])
        for name in BASE_FIELDS
        if stored[name] != checked[name]
    )
    status = RowStatus.CHANGED if changes else RowStatus.UNCHANGED
    return WaterRowPlan(
        number,
        code,
        status,
        dict(raw),
        changes,
        (),
        checked,
        current.id,
        current.version,
        normalised=normalised,
    )


def _fitted(merged: dict[str, Any], given: Mapping[str, Any]) -> dict[str, Any]:
    """A stored figure that does not apply to the row's kind (a cistern's capacity once it is a
    hydrant) is cleared, unless the file itself gives it."""
    hydrant = merged.get("kind") in HYDRANT_KINDS
    for name in HYDRANT_ONLY if not hydrant else tuple(NOT_FOR_HYDRANTS):
        if name not in given:
            merged[name] = None
    return merged


def _stored(row: Any) -> dict[str, Any]:
    return {name: getattr(row, name) for name in BASE_FIELDS}


def _shown(name: str, value: Any) -> str:
    if name == "ownership":
        return OWNERSHIPS.get(value, value)
    return water_csv.cell(value)


def _shown_row(values: Mapping[str, Any]) -> dict[str, str]:
    """_shown of every field of BASE_FIELDS, in their order."""
    shown = {name: water_csv.cell(values[name]) for name in BASE_FIELDS}
    shown["ownership"] = _shown("ownership", values["ownership"])
    return shown


# -- writing -------------------------------------------------------------------------------------


def _check_plans(plans: Sequence[RowPlan]) -> None:
    errors = {
        f"{error.row}:{error.column}": error.message
        for plan in plans
        if plan.status == RowStatus.INVALID
        for error in plan.errors
    }
    if errors:
        raise ValidationError(errors)
    if not all(isinstance(plan, WaterRowPlan) for plan in plans):
        raise TypeError("plans must come from plan_water_sources")


def _insert_rows(tx: Tx, plans: Sequence[WaterRowPlan], now: datetime) -> None:
    """New sources, as Core writes them. On SQLite, SQLAlchemy's handling of each row's
    parameters costs more than SQLite's insert of the row (#19), so there the rows go to the
    driver's executemany as tuples, each value bound by its column's own bind processor, and
    the values every row shares bound once. Elsewhere the Core insert, which SQLAlchemy sends
    to PostgreSQL as multi-row INSERTs."""
    if tx.session.get_bind().dialect.name != "sqlite":
        shared = {"tenant_id": tx.tenant_id, "version": 1, "created_at": now, "updated_at": now}
        tx.session.execute(insert(SOURCES), [{**p.values, "id": new_id(), **shared} for p in plans])
        return
    connection = tx.session.connection()
    sql, (fields, bind_id, *binds) = _prepared_insert(connection.dialect)
    shared = [
        value if bind is None else bind(value)
        for bind, value in zip(binds, (tx.tenant_id, 1, now, now), strict=True)
    ]
    rows = []
    for plan in plans:
        values = plan.values
        row = [values[name] if bind is None else bind(values[name]) for name, bind in fields]
        row.append(new_id() if bind_id is None else bind_id(new_id()))
        rows.append((*row, *shared))
    tx.session.flush()
    connection.exec_driver_sql(sql, rows)


Bind = Callable[[Any], Any] | None


@functools.lru_cache(maxsize=4)
def _prepared_insert(dialect: Dialect) -> tuple[str, tuple[Any, ...]]:
    """The INSERT of INSERT_COLUMNS as this dialect compiles it (its parameters in that order),
    and the columns' bind processors (None where a type has none): each of BASE_FIELDS with its
    name, then those of WRITTEN_COLUMNS."""
    compiled = insert(SOURCES).compile(dialect=dialect, column_keys=list(INSERT_COLUMNS))
    if tuple(compiled.positiontup or ()) != INSERT_COLUMNS:
        raise RuntimeError(f"water_source's INSERT takes {compiled.positiontup}")

    def bind(name: str) -> Bind:
        return SOURCES.c[name].type.dialect_impl(dialect).bind_processor(dialect)

    fields = [(name, bind(name)) for name in BASE_FIELDS]
    return str(compiled), (fields, *(bind(name) for name in WRITTEN_COLUMNS))


def _update_row(plan: RowPlan, now: datetime) -> dict[str, Any]:
    assert isinstance(plan, WaterRowPlan)  # _check_plans has refused any other
    return {**plan.values, "id": plan.source_id, "version": plan.version + 1, "updated_at": now}


def _update_rows(tx: Tx, rows: list[dict[str, Any]]) -> None:
    tx.session.execute(UPDATE_BY_ID, [{**row, "_id": row["id"]} for row in rows])


def _delete_sources(tx: Tx, ids: list[uuid.UUID]) -> None:
    """The sources and their inspections (ids come from a scoped query)."""
    tx.session.execute(
        delete(WaterInspection).where(WaterInspection.water_source_id.in_(ids)),
        execution_options={"synchronize_session": False},
    )
    tx.session.execute(
        delete(WaterSource).where(WaterSource.id.in_(ids)),
        execution_options={"synchronize_session": False},
    )


def _chunks(rows: list[Any]) -> Iterator[list[Any]]:
    for start in range(0, len(rows), CHUNK):
        yield rows[start : start + CHUNK]
