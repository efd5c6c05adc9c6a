"""Planning and writing the members, water sources and inspections of a backup."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import delete
from sqlmodel import select

from formats import backup as fmt
from formats import member_csv, water_csv
from formats.tabular import CellError, CellValueError, find_header, plain, read_csv, to_date
from models.water import WaterInspection, WaterSource
from services import member_import, water_import, water_rules, water_sources
from services import validation as v
from services.backup.create import member_codes
from services.backup.model import (
    INSPECTIONS,
    MEMBERS,
    WATER,
    counted_row,
    preview_of,
    with_cell_errors,
)
from services.base import Tx, scoped
from services.imports import (
    ImportPreview,
    ImportResult,
    RowStatus,
)


def plan_members(tx: Tx, backup: fmt.Backup) -> ImportPreview:
    records: list[tuple[int, dict[str, str]]] = []
    if backup.manifest.rows[fmt.MEMBERS]:  # the reader refuses a roster without members
        parsed = member_csv.parse(backup.files[fmt.MEMBERS], fmt.MEMBERS)
        if parsed.file_errors:
            return preview_of(MEMBERS, backup, file_errors=parsed.file_errors)
        records = [(row, raw) for row, raw, _ in parsed.records]
    # Planning checks the lengths the reader checked too, so its errors are not added twice.
    # The restorer's own scope and the per-row checks of an import apply (#15 finding 4): a
    # restore changes nothing its restorer could not change by hand.
    planned = member_import.plan_members(tx, records, checked=True)
    missing = [row.member_code for row in planned.absent]
    retiring, suspending = member_import.status_changes(planned.rows)
    return preview_of(
        MEMBERS,
        backup,
        rows=list(planned.rows),
        missing=missing,
        current=planned.current,
        retiring_rows=retiring,
        suspending_rows=suspending,
    )


def plan_water(tx: Tx, backup: fmt.Backup) -> ImportPreview:
    try:
        sheet = read_csv(backup.files[fmt.WATER_SOURCES])
    except ValueError as exc:
        return preview_of(WATER, backup, file_errors=[str(exc)])
    match = find_header(sheet, water_csv.READ_COLUMNS)
    if match is None:
        return preview_of(WATER, backup, file_errors=["見出し行が見つかりません。"])
    parsed = water_csv.parse(sheet, match)
    if parsed.file_errors:
        return preview_of(WATER, backup, file_errors=parsed.file_errors)
    plans = water_import.plan_water_sources(tx, parsed.records)
    rows = water_import.with_read_errors(plans, parsed.errors)
    current = set(tx.session.exec(scoped(select(WaterSource.code), tx.actor)).all())
    missing = sorted(current - {row.code for row in rows})
    return preview_of(WATER, backup, rows=rows, missing=missing, current=len(current))


# inspections ------------------------------------------------------------------------------------

InspectionKey = tuple[str, date, str, str, str, str, datetime]


def plan_inspections(
    tx: Tx, backup: fmt.Backup, people: ImportPreview, water: ImportPreview
) -> ImportPreview:
    table = fmt.read_table(backup.files[fmt.INSPECTIONS], fmt.INSPECTION_COLUMNS)
    sources = {row.code for row in water.rows}
    codes = {row.code for row in people.rows}
    existing = _existing_inspections(tx)
    rows = []
    for number, raw in table.records:
        key, errors = _inspection(number, raw, sources, codes)
        code = f"{plain(raw['source_code'])} {plain(raw['inspected_on'])}"
        rows.append(counted_row(existing, key, number, code, raw, errors))
    missing = [
        f"{key[0]} {key[1].isoformat()}" for key, left in existing.items() for _ in range(left)
    ]
    return preview_of(
        INSPECTIONS,
        backup,
        rows=with_cell_errors(rows, table.errors),
        missing=sorted(missing),
        file_errors=table.problems,
    )


def _existing_inspections(tx: Tx) -> dict[InspectionKey, int]:
    codes = member_codes(tx)
    sources = dict(
        tx.session.exec(scoped(select(WaterSource.id, WaterSource.code), tx.actor)).all()
    )
    found: dict[InspectionKey, int] = {}
    for row in tx.session.exec(scoped(select(WaterInspection), tx.actor)).all():
        personal = water_sources.inspection_personal(tx, row)
        key = (
            sources[row.water_source_id],
            row.inspected_on,
            row.result,
            codes.get(row.inspector_member_id, ""),
            personal["inspector_name"],
            personal["notes"],
            row.created_at,
        )
        found[key] = found.get(key, 0) + 1
    return found


def _inspection(
    number: int, raw: Mapping[str, str], sources: set[str], codes: set[str]
) -> tuple[InspectionKey | None, list[CellError]]:
    """The inspection a row describes (as a comparable key), or the errors of its cells."""
    header = {c.key: c.header for c in fmt.INSPECTION_COLUMNS}
    errors: list[CellError] = []

    def check(key: str, ok: bool, message: str) -> None:
        if not ok:
            errors.append(CellError(number, header[key], message))

    source, inspector = plain(raw["source_code"]), plain(raw["inspector_code"])
    on = _parsed(number, header["inspected_on"], to_date, raw["inspected_on"], errors)
    created = _parsed(number, header["created_at"], _aware, raw["created_at"], errors)
    check("source_code", source in sources, f"水利番号「{source[:30]}」が消防水利にありません。")
    check("result", raw["result"] in water_rules.INSPECTION_RESULTS, "点検結果が正しくありません。")
    check(
        "inspector_code",
        not inspector or inspector in codes,
        f"団員番号「{inspector[:20]}」が団員名簿にありません。",
    )
    check(
        "inspector_name",
        not v.has_control_chars(raw["inspector_name"]),
        v.control_chars_message("点検者の氏名"),
    )
    check("notes", "\x00" not in raw["notes"], "点検の記録に使用できない文字が含まれています。")
    if on is not None:
        check("inspected_on", on >= water_sources.EARLIEST_DATE, "点検日が正しくありません。")
    if errors or on is None or created is None:
        return None, errors
    name = v.clean_text(raw["inspector_name"])
    return (source, on, raw["result"], inspector, name, raw["notes"].strip(), created), []


def _parsed(number: int, column: str, read: Callable[[str], Any], text: str, errors: list) -> Any:
    try:
        value = read(text)
    except (CellValueError, ValueError) as exc:
        errors.append(CellError(number, column, str(exc) or "値が正しくありません。"))
        return None
    if value is None:
        errors.append(CellError(number, column, "入力してください。"))
    return value


def _aware(text: str) -> datetime:
    value = datetime.fromisoformat(plain(text))
    if value.tzinfo is None:
        raise ValueError("日時にタイムゾーンがありません。")
    return value.astimezone(UTC)


def write_inspections(tx: Tx, plan: ImportPreview) -> ImportResult:
    """Every inspection of the brigade replaced by the backup's (its sources are the backup's
    now); inspectors by member code, outsiders' names and notes encrypted again under the new
    rows."""
    removed = tx.session.exec(
        delete(WaterInspection)
        .where(WaterInspection.tenant_id == tx.tenant_id)
        .execution_options(synchronize_session=False)
    ).rowcount
    sources = {
        c: i for i, c in tx.session.exec(scoped(select(WaterSource.id, WaterSource.code), tx.actor))
    }
    members_by_code = {c: i for i, c in member_codes(tx).items()}
    known_sources, known_codes = set(sources), set(members_by_code)
    for row in plan.rows:
        key, _ = _inspection(row.row, row.raw, known_sources, known_codes)
        tx.session.add(_inspection_row(tx, key, sources, members_by_code))
    tx.session.flush()
    unchanged = plan.counts[RowStatus.UNCHANGED]
    return ImportResult(
        created=len(plan.rows) - unchanged, unchanged=unchanged, retired=removed - unchanged
    )


def _inspection_row(
    tx: Tx, key: InspectionKey, sources: Mapping[str, uuid.UUID], codes: Mapping[str, uuid.UUID]
) -> WaterInspection:
    source, on, result, inspector, name, notes, created = key
    row = WaterInspection(
        tenant_id=tx.tenant_id,
        water_source_id=sources[source],
        inspected_on=on,
        inspector_member_id=codes[inspector] if inspector else None,
        result=result,
        created_at=created,
    )
    water_sources.seal_inspection(tx, row, {"inspector_name": name, "notes": notes})
    return row
