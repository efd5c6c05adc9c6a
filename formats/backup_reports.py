"""The 出動報告 files of a backup (format version 4, #22): one row per report, one per step of
its approval trail, and the brigade's report settings (the approval chain and the reward table)
as JSON, since the table is nested.

A report is known by its key (its id in the backed-up brigade), a member by the member code, an
incident by its number and registration time (as a restore matches incidents), a water
inspection by its source's code, its day and the time it was recorded (as inspections.csv has
them). Times in UTC, like every time in a backup."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from formats import csv_safe
from formats.backup import REPORT_SETTINGS
from formats.backup_dispatch import (
    NO,
    TIME_LENGTH,
    YES,
    _bool,
    _Cells,
    _code,
    _flag,
    _positive,
    _time,
)
from formats.reward_table import from_json, to_json
from formats.tabular import CellError, Column, plain, to_date

REPORT_COLUMNS = (
    Column("key", "報告ID", required=True, max_length=40),
    Column("member_code", "団員番号", required=True, max_length=20),
    Column("incident_number", "事案の番号", required=True, max_length=10),
    Column("incident_created_at", "事案の登録（UTC）", required=True, max_length=TIME_LENGTH),
    Column("source_code", "点検した水利番号", required=True, max_length=30),
    Column("inspected_on", "点検日", required=True, max_length=20),
    Column("inspection_created_at", "点検の記録日時（UTC）", required=True, max_length=40),
    Column("category", "区分", required=True, max_length=20),
    Column("activity", "活動内容", required=True, max_length=500),
    Column("started_at", "開始（UTC）", required=True, max_length=TIME_LENGTH),
    Column("ended_at", "終了（UTC）", required=True, max_length=TIME_LENGTH),
    Column("turned_back", "到着前に引き揚げ", required=True, max_length=5),
    Column("false_alarm", "誤報", required=True, max_length=5),
    Column("status", "状態", required=True, max_length=10),
    Column("step", "承認の段階", required=True, max_length=2),
    Column("returned", "差し戻しの理由", required=True, max_length=500),
    Column("entered_by", "入力者", required=True, max_length=100),
    Column("created_at", "作成（UTC）", required=True, max_length=TIME_LENGTH),
    Column("updated_at", "更新（UTC）", required=True, max_length=TIME_LENGTH),
    Column("submitted_at", "提出（UTC）", required=True, max_length=TIME_LENGTH),
    Column("approved_at", "承認（UTC）", required=True, max_length=TIME_LENGTH),
)
STEP_COLUMNS = (
    Column("report", "報告ID", required=True, max_length=40),
    Column("step", "承認の段階", required=True, max_length=2),
    Column("action", "操作", required=True, max_length=10),
    Column("member_code", "操作した団員の団員番号", required=True, max_length=20),
    Column("actor_label", "操作した人", required=True, max_length=100),
    Column("comment", "コメント", required=True, max_length=500),
    Column("at", "日時（UTC）", required=True, max_length=TIME_LENGTH),
)
MAX_STEP = 9
SETTINGS_KEYS = ("chain", "reward_table")
CHAIN_LABEL, TABLE_LABEL = "承認の段階", "出動報酬の表"


@dataclass(frozen=True)
class ReportRow:
    key: uuid.UUID
    member_code: str
    incident_number: int | None
    incident_created_at: datetime | None
    source_code: str  # "" when the report was not made from a water inspection
    inspected_on: date | None
    inspection_created_at: datetime | None
    category: str
    activity: str
    started_at: datetime | None
    ended_at: datetime | None
    turned_back: bool
    false_alarm: bool
    status: str  # the status's label, as the 出動報告 page shows it (checked by the restore)
    step: int
    returned: str
    entered_by: str
    created_at: datetime
    updated_at: datetime
    submitted_at: datetime | None
    approved_at: datetime | None

    @property
    def incident(self) -> tuple[int, datetime] | None:
        if self.incident_number is None or self.incident_created_at is None:
            return None
        return (self.incident_number, self.incident_created_at)

    @property
    def inspection(self) -> tuple[str, date, datetime] | None:
        if not self.source_code or self.inspected_on is None:
            return None
        assert self.inspection_created_at is not None  # parse_report requires all three
        return (self.source_code, self.inspected_on, self.inspection_created_at)


@dataclass(frozen=True)
class StepRow:
    report: uuid.UUID
    step: int
    action: str  # the action's label (提出, 承認 …; checked by the restore)
    member_code: str  # "" when no member acted (an operator, a machine)
    actor_label: str
    comment: str
    at: datetime


def encode_reports(rows: Iterable[ReportRow]) -> bytes:
    return csv_safe.encode(
        [c.header for c in REPORT_COLUMNS],
        (
            [
                str(r.key),
                r.member_code,
                "" if r.incident_number is None else r.incident_number,
                _time(r.incident_created_at),
                r.source_code,
                r.inspected_on.isoformat() if r.inspected_on else "",
                _time(r.inspection_created_at),
                r.category,
                r.activity,
                _time(r.started_at),
                _time(r.ended_at),
                _flag(r.turned_back),
                _flag(r.false_alarm),
                r.status,
                r.step,
                r.returned,
                r.entered_by,
                *(_time(t) for t in (r.created_at, r.updated_at, r.submitted_at, r.approved_at)),
            ]
            for r in rows
        ),
    )


def encode_steps(rows: Iterable[StepRow]) -> bytes:
    return csv_safe.encode(
        [c.header for c in STEP_COLUMNS],
        (
            [
                str(r.report),
                r.step,
                r.action,
                r.member_code,
                r.actor_label,
                r.comment,
                _time(r.at),
            ]
            for r in rows
        ),
    )


def parse_report(number: int, raw: Mapping[str, str]) -> tuple[ReportRow | None, list[CellError]]:
    """The report a row describes, or the errors of its cells."""
    cells = _Cells(number, raw, REPORT_COLUMNS)
    flag = f"「{YES}」か「{NO}」にしてください。"
    values = {
        "key": cells.read("key", _key, "報告IDが正しくありません。"),
        "member_code": cells.read("member_code", _code, "団員番号が正しくありません。"),
        **_incident(cells),
        **_inspection(cells),
        **{key: cells.text(key) for key in ("category", "activity", "returned", "entered_by")},
        **{key: cells.time(key) for key in ("started_at", "ended_at")},
        **{key: cells.read(key, _bool, flag) for key in ("turned_back", "false_alarm")},
        "status": cells.text("status").strip(),
        "step": cells.read("step", _step, f"0〜{MAX_STEP}の整数にしてください。"),
        **{key: cells.time(key, required=True) for key in ("created_at", "updated_at")},
        **{key: cells.time(key) for key in ("submitted_at", "approved_at")},
    }
    if cells.errors:
        return None, cells.errors
    return ReportRow(**values), []


def _incident(cells: _Cells) -> dict[str, Any]:
    """Both cells or neither: an activity without an incident leaves them empty."""
    number = cells.read("incident_number", _optional_positive, "番号が正しくありません。")
    created = cells.time("incident_created_at", required=number is not None)
    if number is None and created is not None:
        cells.errors.append(CellError(cells.number, cells.headers["incident_number"], _BOTH))
    return {"incident_number": number, "incident_created_at": created}


def _inspection(cells: _Cells) -> dict[str, Any]:
    """All three cells or none: a report not made from a water inspection leaves them empty."""
    source = plain(cells.text("source_code"))
    on = cells.read("inspected_on", to_date, "点検日が正しくありません。")
    created = cells.time("inspection_created_at")
    if any((source, on, created)) and not all((source, on, created)):
        cells.errors.append(CellError(cells.number, cells.headers["source_code"], _ALL_THREE))
    return {"source_code": source, "inspected_on": on, "inspection_created_at": created}


_BOTH = "事案の番号と登録日時は両方とも入力するか、両方とも空欄にしてください。"
_ALL_THREE = (
    "点検した水利番号・点検日・点検の記録日時は、すべて入力するか、すべて空欄にしてください。"
)


def parse_step(number: int, raw: Mapping[str, str]) -> tuple[StepRow | None, list[CellError]]:
    """The step of an approval trail a row describes, or the errors of its cells."""
    cells = _Cells(number, raw, STEP_COLUMNS)
    values = {
        "report": cells.read("report", _key, "報告IDが正しくありません。"),
        "step": cells.read("step", _step, f"0〜{MAX_STEP}の整数にしてください。"),
        "action": cells.text("action").strip(),
        "member_code": plain(cells.text("member_code")),
        "actor_label": cells.text("actor_label"),
        "comment": cells.text("comment"),
        "at": cells.time("at", required=True),
    }
    if cells.errors:
        return None, cells.errors
    return StepRow(**values), []


def _key(text: str) -> uuid.UUID:
    return uuid.UUID(text.strip())


def _step(text: str) -> int:
    value = int(text.strip())
    if not 0 <= value <= MAX_STEP:
        raise ValueError("out of range")
    return value


def _optional_positive(text: str) -> int | None:
    return _positive(text) if text.strip() else None


# -- the settings ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReportSettingsFile:
    """The settings as stored: the chain's JSON list ("[]": the default chain) and the reward
    table's JSON ("": none saved), or the problems that kept them from being read."""

    chain: str
    reward_table: str
    errors: tuple[CellError, ...] = ()


def encode_settings(chain: str, reward_table: str) -> bytes:
    document = {
        "chain": json.loads(chain or "[]"),
        "reward_table": json.loads(reward_table) if reward_table else None,
    }
    return json.dumps(document, ensure_ascii=False, indent=2).encode("utf-8")


def read_settings(data: bytes) -> ReportSettingsFile:
    """The chain checked for its shape (each step a rank and a scope, both text: the ranks and
    scopes themselves are the restore's to check) and the reward table read strictly by
    formats/reward_table.py; errors name the entry, as a row of 1."""
    try:
        document = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return ReportSettingsFile("", "", (CellError(1, CHAIN_LABEL, _UNREADABLE),))
    if not isinstance(document, dict) or set(document) != set(SETTINGS_KEYS):
        return ReportSettingsFile("", "", (CellError(1, CHAIN_LABEL, _SHAPE),))
    errors = []
    chain = document["chain"]
    if not _chain_shaped(chain):
        errors.append(CellError(1, CHAIN_LABEL, "承認の段階の形式が正しくありません。"))
    table = ""
    if document["reward_table"] is not None:
        try:
            table = to_json(from_json(json.dumps(document["reward_table"], ensure_ascii=False)))
        except ValueError as exc:
            errors.append(CellError(1, TABLE_LABEL, str(exc)))
    return ReportSettingsFile(json.dumps(chain, ensure_ascii=False), table, tuple(errors))


_UNREADABLE = f"{REPORT_SETTINGS} が読めません。"
_SHAPE = f"{REPORT_SETTINGS} の形式が正しくありません（chain と reward_table の2項目）。"


def _chain_shaped(chain: Any) -> bool:
    return isinstance(chain, list) and all(
        isinstance(step, dict)
        and set(step) == {"rank", "scope"}
        and all(isinstance(value, str) for value in step.values())
        for step in chain
    )
