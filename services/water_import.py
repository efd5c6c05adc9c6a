"""Water sources in and out as files: the template, the export, the import of our layout, of
the municipal open-data layout and of any other sheet through a column mapping, and the saved
mappings.

An import is previewed first (nothing written): every row validated and classed new / changed /
unchanged / invalid against the registry as it is. Applying plans the same rows again inside the
write transaction and writes all of them or none; one audit event records the file's SHA-256 and
the counts. Rows are matched by 水利番号; a field whose column the file lacks keeps its value.
The restore of a backup calls plan_water_sources and write_water_sources
(services/water_import_rows.py, where the rows are planned and written) inside its own
transaction."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from sqlmodel import select

from core.access import Need
from core.actor import Actor
from formats import opendata, sheet_layout, tabular, water_csv
from formats.csv_safe import Unencodable
from formats.opendata import MAPPING_TARGETS, ColumnMapping
from formats.tabular import HeaderMatch, Sheet, TableError, find_header
from formats.water_csv import ParsedRows
from models.enums import Function, Level
from models.water import WaterSource
from services import brigade_settings, bulk_guard, import_reuse, pre_change
from services import water_file_checks as file_checks
from services.base import require, scoped, transaction
from services.errors import ValidationError
from services.imports import (
    ImportPreview,
    ImportResult,
    MissingRows,
    Progress,
    RowPlan,
    RowStatus,
    file_error_preview,
    sha256,
    with_quotes,
    with_read_errors,
)
from services.water_import_rows import (
    EXISTING_COLUMNS,
    WaterRowPlan,
    absent,
    existing_sources,
    plan_water_sources,
    write_water_sources,
)

ENTITY = "water_sources"
TABLE = "water_source"
MAX_FILE_BYTES = tabular.MAX_FILE_BYTES
MAX_ROWS = tabular.MAX_ROWS
SAMPLE_ROWS = 5
ENCODINGS = ("utf-8", "cp932")
IMPORTING = (Need(Function.CSV_IMPORT, Level.EDIT), Need(Function.WATER_SOURCES, Level.EDIT))
EXPORTING = (Need(Function.CSV_EXPORT, Level.VIEW), Need(Function.WATER_SOURCES, Level.VIEW))
NO_LAYOUT = (
    "列の見出しから形式を判別できません（「水利番号」と「種別」の列、または自治体標準オープン"
    "データの「ID」と「種別」の列が必要です）。テンプレートの形式で保存し直すか、列の対応付けを"
    "指定してください。"
)


@dataclass(frozen=True)
class SheetInfo:
    """One sheet of an upload, for the mapping step: where its header seems to be (as the
    spreadsheet numbers rows), the header cells, a few rows below it and how many there are."""

    index: int
    name: str
    header_row: int | None
    header: list[str]
    sample: list[list[str]]
    data_rows: int
    layout: str | None = None
    top: list[list[str]] = field(default_factory=list)  # the rows a header may be chosen from

    def header_at(self, row: int) -> list[str]:
        """The cells of another row (as numbered in the sheet), when the guess was wrong."""
        return [cell.strip() for cell in self.top[row - 1]] if 0 < row <= len(self.top) else []

    def sample_below(self, row: int) -> list[list[str]]:
        below = [r for r in self.top[row:] if any(c.strip() for c in r)]
        return below[:SAMPLE_ROWS] if row != self.header_row else self.sample


@dataclass(frozen=True)
class WaterFile:
    """What an upload is: its layout ("hikeshi" = ours, "opendata", or None: a mapping is
    needed), its encoding, its sheets; file_errors when it cannot be read at all."""

    filename: str
    sha256: str
    encoding: str
    layout: str | None
    sheets: list[SheetInfo] = field(default_factory=list)
    file_errors: list[str] = field(default_factory=list)
    targets: dict[str, str] = field(default_factory=lambda: dict(MAPPING_TARGETS))


# -- template and export -------------------------------------------------------------------------


def water_template(actor: Actor) -> bytes:
    """The template, its examples beside the brigade's area centre when it has one."""
    with transaction(actor, *IMPORTING, action="water_source.template", read_only=True) as tx:
        return water_csv.template(brigade_settings.settings_in(tx).area_center)


def export_water_csv(actor: Actor, *, encoding: str = "utf-8") -> bytes:
    """Every source with every registry field, in the layout the import reads. UTF-8 with a BOM
    or CP932 ("cp932"); a character CP932 cannot hold raises ValidationError naming its row and
    column. The export is audited."""
    if encoding not in ENCODINGS:
        raise ValidationError({"encoding": "文字コードは UTF-8 か Shift_JIS を選んでください。"})
    with transaction(actor, *EXPORTING, action="water_source.export") as tx:
        query = scoped(select(*EXISTING_COLUMNS), tx.actor).order_by(WaterSource.code)
        rows = tx.session.exec(query).all()
        try:
            data = water_csv.encode(rows, encoding=encoding)
        except Unencodable as exc:
            raise ValidationError({"encoding": str(exc)}) from None
        tx.audit(
            "water_source.export",
            target_type=TABLE,
            details={"count": len(rows), "encoding": encoding, "layout": water_csv.LAYOUT},
        )
        tx.commit()
    return data


# -- reading an upload ---------------------------------------------------------------------------


def inspect_water_file(actor: Actor, *, data: bytes, filename: str) -> WaterFile:
    """The upload's layout, encoding and sheets, so the page can offer the mapping step."""
    require(actor, *IMPORTING, action="water_source.import")
    try:
        sheets = _sheets(data, filename)
    except TableError as exc:
        return WaterFile(filename, sha256(data), "", None, file_errors=[str(exc)])
    infos = [_sheet_info(index, sheet) for index, sheet in enumerate(sheets)]
    layout = next((info.layout for info in infos if info.layout), None)
    encoding = sheets[0].encoding_label if sheets else ""
    return WaterFile(filename, sha256(data), encoding, layout, infos)


def preview_water_import(
    actor: Actor,
    *,
    data: bytes,
    filename: str,
    mapping: ColumnMapping | None = None,
    sheet: int | None = None,
    swap_coordinates: bool = False,
) -> ImportPreview:
    """Every row validated and classed, nothing written. Our layout and the open-data layout are
    recognised (on the sheet given by its index, else on the first that has one); any other
    needs a mapping (file_errors says so)."""
    with transaction(actor, *IMPORTING, action="water_source.import", read_only=True) as tx:
        try:
            parsed, encoding = _parsed(data, filename, mapping, sheet)
        except TableError as exc:
            return file_error_preview(ENTITY, filename, data, str(exc))
        preview = ImportPreview(
            ENTITY,
            filename,
            sha256(data),
            encoding,
            parsed.sheet,
            parsed.header_row,
            file_errors=list(parsed.file_errors) + _row_count_errors(parsed),
            notes=list(parsed.notes),
        )
        if preview.file_errors:
            return preview
        records = file_checks.oriented(parsed.records, swap=swap_coordinates)
        headers = {**water_csv.HEADERS, **parsed.headers}
        existing = existing_sources(tx)
        planned = plan_water_sources(tx, records, headers=parsed.headers, existing=existing)
        preview.rows = with_quotes(
            with_read_errors(planned, parsed.errors), parsed.unquoted, headers
        )
        preview.missing = [row.code for row in absent(existing, preview.rows)]
        preview.current = len(existing)
        preview.limits = brigade_settings.bulk_limits_in(tx)
        preview.notes += _unplaced_notes(preview.rows)
        file_checks.check_positions(
            tx, preview, records, headers=headers, swap=swap_coordinates, stored=existing.values()
        )
        if preview.ready:
            stamp = _stamp(existing, preview.limits)
            preview.token = import_reuse.keep(tx.actor, ENTITY, records, stamp, planned)
        return preview


def apply_water_import(
    actor: Actor,
    preview: ImportPreview,
    *,
    missing: MissingRows,
    confirm_name: str | None = None,
    progress: Progress | None = None,
) -> ImportResult:
    """Write a previewed file in one transaction: the rows are planned again from the file's
    values against the registry as it is now, and any invalid row writes nothing; the preview's
    own plans serve instead when services.import_reuse finds nothing changed since (#19).

    MissingRows.RETIRE retires (廃止) the sources the file does not mention: they are deleted
    together with their inspection records. MissingRows.KEEP leaves them as they are. Deleting
    more than services/bulk_guard.py allows needs `confirm_name`, the brigade's name; any
    deletion first takes an automatic backup (services/pre_change.py) in this transaction."""
    with transaction(actor, *IMPORTING, action="water_source.import") as tx:
        if preview.entity != ENTITY or not preview.ready:
            raise ValidationError({"file": "エラーのあるファイルは取り込めません。"})
        records, existing = [(row.row, row.raw) for row in preview.rows], existing_sources(tx)
        kept = import_reuse.take(preview.token, tx.actor, ENTITY)
        stamp = _stamp(existing, brigade_settings.bulk_limits_in(tx))
        plans = kept.plans_if(records, stamp) if kept is not None else None
        reused = plans is not None
        plans = plans or plan_water_sources(tx, records, existing=existing)
        backup_id = None
        if MissingRows(missing) == MissingRows.RETIRE and (gone := len(absent(existing, plans))):
            bulk_guard.check(
                gone,
                len(existing),
                brigade=tx.brigade_name,
                confirm_name=confirm_name,
                what=f"消防水利の削除（廃止） {gone:,}件",
                limits=brigade_settings.bulk_limits_in(tx),
            )
            reason = f"CSV一括登録（消防水利）: 削除（廃止） {gone:,}件"
            backup_id = pre_change.take(tx, reason).id
        result = write_water_sources(
            tx, plans, missing=missing, progress=progress, existing=existing
        )
        result = replace(result, backup_id=backup_id, reused_preview=reused)
        tx.audit(
            "water_source.import",
            target_type=TABLE,
            details={
                **preview.audit_details(),
                "sheet": preview.sheet,
                "missing_rows": str(missing),
                "validated": "preview" if reused else "apply",
                "created": result.created,
                "updated": result.updated,
                "unchanged_applied": result.unchanged,
                "retired": result.retired,
                **({"pre_change_backup": str(backup_id)} if backup_id else {}),
            },
        )
        tx.commit()
        return result


# -- helpers: reading ----------------------------------------------------------------------------


def _sheets(data: bytes, filename: str) -> list[Sheet]:
    if len(data) > MAX_FILE_BYTES:
        raise TableError(
            f"ファイルが大きすぎます（{len(data) / 1_048_576:.1f}MB）。"
            f"{MAX_FILE_BYTES // 1_048_576}MB以下に分けてください。"
        )
    sheets = tabular.read_table(data, filename)
    if not any(sheet.rows for sheet in sheets):
        raise TableError("ファイルに行がありません。")
    return sheets


def _detect(sheet: Sheet) -> tuple[str, HeaderMatch] | None:
    """Our layout when the header names only our columns, each once; the open-data layout when
    it names the standard's required ones (its other columns are noted, not read). A header
    that matches ours only in part is no layout: the page offers the mapping step for it."""
    found = [
        (layout, match)
        for layout, columns, complete in (
            (water_csv.LAYOUT, water_csv.READ_COLUMNS, lambda m: not m.problems),
            (opendata.LAYOUT, opendata.COLUMNS, lambda m: not m.missing),
        )
        if (match := find_header(sheet, columns)) is not None and complete(match)
    ]
    return max(found, key=lambda item: len(item[1].columns), default=None)


def _parsed(
    data: bytes, filename: str, mapping: ColumnMapping | None, only: int | None = None
) -> tuple[ParsedRows, str]:
    sheets = _sheets(data, filename)
    label = sheets[0].encoding_label
    if mapping is not None:
        return opendata.apply_mapping(sheets, mapping), label
    for sheet in sheets if only is None else sheets[only : only + 1]:
        if detected := _detect(sheet):
            layout, match = detected
            reader = water_csv.parse if layout == water_csv.LAYOUT else opendata.parse
            parsed = reader(sheet, match)
            if len(sheets) > 1:
                parsed.notes.append(
                    f"シート「{sheet.name}」を読み込みます（他のシートは読み込みません）。"
                )
            return parsed, label
    return ParsedRows("", "", 0, {}, file_errors=[*_near_miss(sheets[0]), NO_LAYOUT]), label


def _near_miss(sheet: Sheet) -> list[str]:
    match = find_header(sheet, water_csv.READ_COLUMNS)
    return match.problems if match is not None else []


def _row_count_errors(parsed: ParsedRows) -> list[str]:
    if len(parsed.records) > MAX_ROWS:
        return [
            f"行数が多すぎます（{len(parsed.records):,}行）。{MAX_ROWS:,}行以下に分けてください。"
        ]
    if not parsed.records and not parsed.file_errors:
        return ["見出しの下にデータの行がありません。"]
    return []


def _sheet_info(index: int, sheet: Sheet) -> SheetInfo:
    detected = _detect(sheet)
    header_index = detected[1].row_index if detected else sheet_layout.header_guess(sheet)
    below = [row for row in sheet.rows[header_index + 1 :] if any(c.strip() for c in row)]
    return SheetInfo(
        index=index,
        name=sheet.name,
        header_row=header_index + 1 if sheet.rows else None,
        header=[cell.strip() for cell in sheet.rows[header_index]] if sheet.rows else [],
        sample=below[:SAMPLE_ROWS],
        data_rows=len(below),
        layout=detected[0] if detected else None,
        top=sheet.rows[: tabular.HEADER_SCAN_ROWS],
    )


def _stamp(existing: Mapping[str, Any], limits: bulk_guard.Limits) -> str:
    """What planning read: every stored source's columns and the brigade's bulk limits
    (import_reuse.stamp)."""
    rows = (tuple(row) for _, row in sorted(existing.items()))
    return import_reuse.stamp(rows, [limits])


def _unplaced_notes(plans: Sequence[RowPlan]) -> list[str]:
    rows = [
        plan.row
        for plan in plans
        if isinstance(plan, WaterRowPlan)
        and plan.status != RowStatus.INVALID
        and plan.values.get("latitude") is None
    ]
    if not rows:
        return []
    shown = "、".join(str(row) for row in rows[:20]) + ("…" if len(rows) > 20 else "")
    return [
        f"位置なし {len(rows):,}件（{shown}行目）: 緯度・経度がないため地図には表示されません。"
        "位置を推測して補うことはしません。"
    ]
