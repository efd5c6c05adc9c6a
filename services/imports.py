"""What every bulk import shows before it writes and reports after: the per-row plan (new,
changed, unchanged, invalid), the field changes, the errors by row and column, and the
administrator's explicit choice for records missing from the file. Entity services
(member_import, water_import, backup) build these; the import page draws them."""

from __future__ import annotations

import hashlib
import uuid
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from formats.csv_safe import QUOTE
from formats.tabular import CellError
from services import bulk_guard

Progress = Callable[[int, int], None]  # (rows done, rows in all)


class ProgressCounter:
    """The one progress reporter of imports and restores: counts rows as they are written and
    calls progress(done, total), never past total, at most every `every` rows and once at the
    end. part() hands one step of a larger job a Progress of its own."""

    def __init__(self, progress: Progress | None, total: int) -> None:
        self.progress, self.total, self.done = progress, max(total, 1), 0

    def advance(self, count: int, *, every: int = 1) -> None:
        self.done += count
        if count and self.done % every == 0:
            self._report(self.done)

    def finish(self) -> None:
        self._report(self.total)

    def part(self, size: int) -> Progress:
        """A step of `size` rows starting where the count stands; advance(size) after it."""
        start = self.done
        return lambda done, _total: self._report(start + min(done, size))

    def _report(self, done: int) -> None:
        if self.progress is not None:
            self.progress(min(done, self.total), self.total)


class RowStatus(StrEnum):
    NEW = "new"
    CHANGED = "changed"
    UNCHANGED = "unchanged"
    INVALID = "invalid"

    @property
    def label(self) -> str:
        return {"new": "新規", "changed": "変更", "unchanged": "変更なし", "invalid": "エラー"}[
            self.value
        ]


class MissingRows(StrEnum):
    """What happens to existing records the file does not mention: always chosen, never implied."""

    KEEP = "keep"
    RETIRE = "retire"


@dataclass(frozen=True)
class FieldChange:
    column: str
    before: str
    after: str


@dataclass(frozen=True)
class Normalised:
    """A cell stored as other text than the file gave (①→1, ｶﾅ→カナ, ひらがな→カタカナ, a
    date or number rewritten): nothing changes without being shown (#17)."""

    column: str
    original: str
    stored: str


@dataclass(frozen=True)
class RowPlan:
    row: int
    code: str
    status: RowStatus
    raw: dict[str, str]
    changes: tuple[FieldChange, ...] = ()
    errors: tuple[CellError, ...] = ()
    # (column, text as stored) of a new row, every column of the layout; keyword-only so that
    # the entities' subclasses keep their positional fields.
    fields: tuple[tuple[str, str], ...] = field(default=(), kw_only=True)
    normalised: tuple[Normalised, ...] = field(default=(), kw_only=True)


def normalisations(
    raw: Mapping[str, str], stored: Mapping[str, str], headers: Mapping[str, str]
) -> tuple[Normalised, ...]:
    """The cells of raw (by key) whose stored text differs from the file's, in stored's
    order (raw holds the cells as read, after csv_safe.unneutralise). A blank cell is no
    normalisation: it clears the field or takes the default."""
    return tuple(
        [
            Normalised(headers.get(key, key), given, text)
            for key, text in stored.items()
            if (given := raw.get(key, "")) != "" and given != text and not _same_text(given, text)
        ]
    )


def with_quotes(
    plans: list[RowPlan], unquoted: Mapping[int, frozenset[str]], headers: Mapping[str, str]
) -> list[RowPlan]:
    """The plans with the ' that csv_safe.unneutralise strips on reading (our export's escape
    of = + - @, tab, CR, LF and ') listed among each cell's normalisations: a hand-made
    「'=…」 is stored without it, which the documented inverse requires but must be shown."""
    return [_with_quote(p, unquoted[p.row], headers) if p.row in unquoted else p for p in plans]


def _with_quote(plan: RowPlan, keys: frozenset[str], headers: Mapping[str, str]) -> RowPlan:
    listed = {n.column: n for n in plan.normalised}
    for key in sorted(keys & plan.raw.keys()):  # read-only columns (判定) are not in raw
        column = headers.get(key, key)
        before = listed.get(column, Normalised(column, plan.raw[key], plan.raw[key]))
        listed[column] = replace(before, original=QUOTE + before.original)
    return replace(plan, normalised=tuple(listed.values()))


def with_read_errors(
    plans: Sequence[RowPlan], errors: Mapping[int, Sequence[CellError]]
) -> list[RowPlan]:
    """Plans with the errors found while reading their cells (an over-long cell, say), which
    take the place of the plan's own errors for the same column."""
    return [
        _with_errors(plan, errors[plan.row]) if errors.get(plan.row) else plan for plan in plans
    ]


def _with_errors(plan: RowPlan, found: Sequence[CellError]) -> RowPlan:
    columns = {error.column for error in found}
    others = tuple(error for error in plan.errors if error.column not in columns)
    return replace(plan, status=RowStatus.INVALID, errors=(*found, *others), changes=(), fields=())


def _same_text(given: str, stored: str) -> bool:
    """Equal, or the same ASCII number (a figure written 40 is stored and exported as 40.0;
    full-width digits are a normalisation and stay listed)."""
    if given == stored:
        return True
    try:
        return given.isascii() and float(given) == float(stored)
    except ValueError:
        return False


@dataclass
class ImportPreview:
    """A validated file, nothing written. `raw` rows are kept so that applying can validate
    them again, inside the write transaction, against the data as it is then (it does unless
    the token's kept plans still hold)."""

    entity: str
    filename: str
    sha256: str
    encoding: str
    sheet: str = ""
    header_row: int = 0
    rows: list[RowPlan] = field(default_factory=list)
    file_errors: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # Cells that import as they are but deserve a look (a point far from the brigade's area).
    warnings: list[CellError] = field(default_factory=list)
    options: dict[str, bool] = field(default_factory=dict)  # how the file was read; audited
    swappable_rows: int = 0  # rows whose latitude and longitude look exchanged (water sources)
    # The bulk guard (services/bulk_guard.py): the records of this entity the brigade holds now,
    # and how many of them the file's own rows retire (状態「退団」) or suspend (「停止中」);
    # preview.missing are those MissingRows.RETIRE would retire or delete.
    current: int = 0
    retiring_rows: int = 0
    suspending_rows: int = 0
    limits: bulk_guard.Limits = bulk_guard.DEFAULT  # the brigade's, read with the preview
    # Selects the plans this process kept of a ready preview (services/import_reuse.py): apply
    # uses them when nothing they were made from has changed. Not audited.
    token: str = field(default="", repr=False)

    def retiring(self, missing: MissingRows | None) -> int:
        """How many records the import would retire or delete with this choice."""
        gone = len(self.missing) if missing == MissingRows.RETIRE else 0
        return gone + self.retiring_rows

    def needs_name(self, missing: MissingRows | None) -> bool:
        """Whether the import, with this choice, needs the brigade's name typed."""
        return bulk_guard.needs_name(self.retiring(missing), self.current, self.limits)

    @property
    def counts(self) -> dict[RowStatus, int]:
        found = Counter(row.status for row in self.rows)
        return {status: found.get(status, 0) for status in RowStatus}

    @property
    def errors(self) -> list[CellError]:
        return [error for row in self.rows for error in row.errors]

    @property
    def ready(self) -> bool:
        return not self.file_errors and not self.counts[RowStatus.INVALID] and bool(self.rows)

    def audit_details(self) -> dict[str, Any]:
        """What the audit log keeps of an import: the file's fingerprint and counts, no data."""
        return {
            "filename": self.filename,
            "sha256": self.sha256,
            "encoding": self.encoding,
            "rows": len(self.rows),
            **{status.value: count for status, count in self.counts.items()},
            **self.options,
        }


@dataclass(frozen=True)
class ImportResult:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    retired: int = 0
    unplaced: int = 0  # written without a position (water sources)
    # The automatic backup taken before the change (services/pre_change.py), if one was
    # taken, and the actor's own 団員番号 when the file left him out (he is never retired).
    backup_id: uuid.UUID | None = None
    kept_self: str = ""
    # Whether apply used the preview's validation (services/import_reuse.py) instead of
    # validating every row again.
    reused_preview: bool = False


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_error_preview(entity: str, filename: str, data: bytes, message: str) -> ImportPreview:
    """A preview of a file that could not be read at all."""
    return ImportPreview(entity, filename, sha256(data), "", file_errors=[message])
