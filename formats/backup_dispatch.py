"""The dispatch files of a backup: the mail sources' settings as JSON, the incidents and their
timelines as CSV (format version 2, #20), and the call-out's targets and answers as CSV (format
version 3, #21). The receiving address's token and the IMAP password are credentials: no layout
here has a place for them, so no backup can carry them."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from formats import csv_safe
from formats.backup import MAIL_SOURCES, Table
from formats.dispatch_mail import MAX_HEADER_CHARS
from formats.dispatch_profile import MAX_URL_CHARS, MAX_VALUE_CHARS
from formats.tabular import MAX_CELL_CHARS, CellError, Column, plain
from models.enums import ANSWER_LABELS, Answer

YES, NO = "はい", "いいえ"
# Each written key of a source, its Japanese label and the JSON type its value must have.
SOURCE_FIELDS: dict[str, tuple[str, type]] = {
    "name": ("名称", str),
    "transport": ("受信方法", str),
    "senders": ("送信元", list),
    "dkim_required": ("DKIM必須", bool),
    "charset_override": ("文字コード指定", str),
    "profile": ("解析ルール", dict),
    "followup_window_minutes": ("続報の照合時間（分）", int),
    "raw_retention_days": ("原文の保存日数", int),
    "imap_host": ("IMAPサーバー", str),
    "imap_port": ("IMAPポート", int),
    "imap_ssl": ("IMAP SSL/TLS", bool),
    "imap_username": ("IMAPユーザー名", str),
    "imap_folder": ("IMAPフォルダ", str),
    "active": ("有効", bool),
}
SOURCE_LABEL = "送信元の設定"

TIME_LENGTH = 40
INCIDENT_COLUMNS = (
    Column("number", "番号", required=True, max_length=10),
    Column("status", "状態", required=True, max_length=10),
    Column("needs_review", "要確認", required=True, max_length=5),
    Column("review_reasons", "要確認の理由", required=True, max_length=MAX_CELL_CHARS),
    Column("kind", "災害種別", required=True, max_length=50),
    Column("reference", "指令番号", required=True, max_length=100),
    Column("units", "出動分団", required=True, max_length=MAX_CELL_CHARS),
    Column("place", "発生場所", required=True, max_length=MAX_VALUE_CHARS),
    Column("place_approximate", "発生場所は概略", required=True, max_length=5),
    Column("landmark", "目標物", required=True, max_length=MAX_VALUE_CHARS),
    Column("map_url", "地図URL", required=True, max_length=MAX_URL_CHARS),
    Column("subject", "件名", required=True, max_length=MAX_HEADER_CHARS),
    Column("source", "送信元", required=True, max_length=100),
    Column("occurred_at", "覚知（UTC）", required=True, max_length=TIME_LENGTH),
    Column("mail_date", "メールのDate（UTC）", required=True, max_length=TIME_LENGTH),
    Column("received_at", "受信（UTC）", required=True, max_length=TIME_LENGTH),
    Column("created_at", "登録（UTC）", required=True, max_length=TIME_LENGTH),
    Column("updated_at", "更新（UTC）", required=True, max_length=TIME_LENGTH),
    Column("closed_at", "終了（UTC）", required=True, max_length=TIME_LENGTH),
)
ENTRY_COLUMNS = (
    Column("incident_number", "番号", required=True, max_length=10),
    Column("at", "日時（UTC）", required=True, max_length=TIME_LENGTH),
    Column("kind", "種類", required=True, max_length=20),
    Column("summary", "内容", required=True, max_length=500),
    Column("status", "状態", required=True, max_length=10),
    Column("mail_id", "受信メールID", required=True, max_length=40),
    Column("actor_label", "記録者", required=True, max_length=100),
)

# The call-out (#21): an incident is named by its number and registration time, as a restore
# matches incidents; a member by the member code.
_CALLED = (
    Column("incident_number", "番号", required=True, max_length=10),
    Column("incident_created_at", "事案の登録（UTC）", required=True, max_length=TIME_LENGTH),
    Column("member_code", "団員番号", required=True, max_length=20),
)
TARGET_COLUMNS = (
    *_CALLED,
    Column("unit", "分団", required=True, max_length=100),
    Column("leader", "幹部", required=True, max_length=5),
    Column("notified", "LINEで通知", required=True, max_length=5),
    Column("reminded_at", "再通知（UTC）", required=True, max_length=TIME_LENGTH),
    Column("created_at", "呼び出し（UTC）", required=True, max_length=TIME_LENGTH),
)
ANSWER_COLUMNS = (
    *_CALLED,
    Column("answer", "出動可否", required=True, max_length=10),
    Column("eta_minutes", "到着見込み（分）", required=True, max_length=3),
    Column("via", "回答方法", required=True, max_length=10),
    Column("actor_label", "入力者", required=True, max_length=100),
    Column("at", "日時（UTC）", required=True, max_length=TIME_LENGTH),
)
# CalloutAnswer.via as the file shows it: the member on LINE, or a leader for them (代理入力)
VIA_LABELS = {"line": "本人（LINE）", "proxy": "代理入力"}
MAX_ETA_MINUTES = 240  # as 代理入力 accepts
_ANSWERS = {label: answer for answer, label in ANSWER_LABELS.items()}
_VIAS = {label: via for via, label in VIA_LABELS.items()}


# -- mail sources --------------------------------------------------------------------------------


def encode_mail_sources(sources: Iterable[Mapping[str, Any]]) -> bytes:
    """The sources' settings as one JSON list; only the keys of SOURCE_FIELDS are written."""
    document = [{key: source[key] for key in SOURCE_FIELDS} for source in sources]
    return json.dumps(document, ensure_ascii=False, indent=2).encode("utf-8")


def read_mail_sources(data: bytes) -> Table:
    """Each source as (its place in the file, 1 for the first; {key: the value as JSON text}),
    with an error for each key missing, unknown or of the wrong type."""
    try:
        document = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return Table([], [], [f"{MAIL_SOURCES} が読めません。"])
    if not isinstance(document, list):
        return Table([], [], [f"{MAIL_SOURCES} の形式が正しくありません。"])
    found: list[tuple[int, dict[str, str]]] = []
    errors: list[CellError] = []
    for number, item in enumerate(document, start=1):
        if not isinstance(item, dict):
            found.append((number, {}))
            errors.append(CellError(number, SOURCE_LABEL, "形式が正しくありません。"))
            continue
        found.append((number, {k: json.dumps(v, ensure_ascii=False) for k, v in item.items()}))
        errors += _source_errors(number, item)
    return Table(found, errors, [])


def _source_errors(number: int, item: Mapping[str, Any]) -> list[CellError]:
    errors = [
        CellError(number, str(key)[:40], "この項目は使えません。")
        for key in item
        if key not in SOURCE_FIELDS
    ]
    for key, (label, kind) in SOURCE_FIELDS.items():
        if key not in item:
            errors.append(CellError(number, label, "項目がありません。"))
        elif not _typed(item[key], kind):
            errors.append(CellError(number, label, "値の種類が正しくありません。"))
    return errors


def _typed(value: Any, kind: type) -> bool:
    if kind is list:
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    return type(value) is kind  # strict: JSON true is no number, 1 no flag


def source_values(raw: Mapping[str, str]) -> dict[str, Any]:
    """The values of a source read without errors by read_mail_sources."""
    return {key: json.loads(raw[key]) for key in SOURCE_FIELDS}


# -- incidents and their timelines ----------------------------------------------------------------


@dataclass(frozen=True)
class IncidentRow:
    number: int
    status: str  # the status's label, as the 災害出動 page shows it
    needs_review: bool
    review_reasons: tuple[str, ...]
    kind: str
    reference: str
    units: tuple[str, ...]
    place: str
    place_approximate: bool
    landmark: str
    map_url: str
    subject: str
    source: str  # the mail source's name; "" for an incident entered by hand
    occurred_at: datetime | None
    mail_date: datetime | None
    received_at: datetime | None
    created_at: datetime
    updated_at: datetime
    closed_at: datetime | None


@dataclass(frozen=True)
class EntryRow:
    incident_number: int
    at: datetime
    kind: str
    summary: str
    status: str  # the incident's status label after the entry; "" when none was noted
    mail_id: uuid.UUID | None  # the received mail it came from, in the backed-up brigade's log
    actor_label: str


def encode_incidents(rows: Iterable[IncidentRow]) -> bytes:
    return csv_safe.encode(
        [c.header for c in INCIDENT_COLUMNS],
        (
            [
                r.number,
                r.status,
                _flag(r.needs_review),
                _list(r.review_reasons),
                r.kind,
                r.reference,
                _list(r.units),
                r.place,
                _flag(r.place_approximate),
                r.landmark,
                r.map_url,
                r.subject,
                r.source,
                *(_time(t) for t in (r.occurred_at, r.mail_date, r.received_at)),
                *(_time(t) for t in (r.created_at, r.updated_at, r.closed_at)),
            ]
            for r in rows
        ),
    )


def encode_entries(rows: Iterable[EntryRow]) -> bytes:
    return csv_safe.encode(
        [c.header for c in ENTRY_COLUMNS],
        (
            [
                r.incident_number,
                _time(r.at),
                r.kind,
                r.summary,
                r.status,
                str(r.mail_id or ""),
                r.actor_label,
            ]
            for r in rows
        ),
    )


class _Cells:
    """Reads one row's cells into values, collecting an error per cell that is not one."""

    def __init__(self, number: int, raw: Mapping[str, str], columns: Iterable[Column]) -> None:
        self.number, self.raw = number, raw
        self.headers = {c.key: c.header for c in columns}
        self.errors: list[CellError] = []

    def read(self, key: str, parse: Callable[[str], Any], message: str) -> Any:
        try:
            return parse(self.raw[key])
        except (ValueError, KeyError, RecursionError):  # RecursionError: [[[[… in a list cell
            self.errors.append(CellError(self.number, self.headers[key], message))
            return None

    def text(self, key: str) -> str:
        """The cell as written; NUL, which no database column can hold, is an error."""
        return self.read(key, _no_nul, "使用できない文字が含まれています。") or ""

    def time(self, key: str, *, required: bool = False) -> datetime | None:
        if required and not self.raw[key].strip():
            self.errors.append(CellError(self.number, self.headers[key], "入力してください。"))
            return None
        return self.read(key, _aware, "日時（タイムゾーン付き）が正しくありません。")


def parse_incident(
    number: int, raw: Mapping[str, str]
) -> tuple[IncidentRow | None, list[CellError]]:
    """The incident a row describes, or the errors of its cells."""
    cells = _Cells(number, raw, INCIDENT_COLUMNS)
    values = {
        "number": cells.read("number", _positive, "1以上の整数にしてください。"),
        "status": cells.text("status"),
        "needs_review": cells.read("needs_review", _bool, f"「{YES}」か「{NO}」にしてください。"),
        "review_reasons": cells.read("review_reasons", _strings, "文字列のリストにしてください。"),
        "units": cells.read("units", _strings, "文字列のリストにしてください。"),
        "place_approximate": cells.read(
            "place_approximate", _bool, f"「{YES}」か「{NO}」にしてください。"
        ),
        **{
            key: cells.text(key)
            for key in ("kind", "reference", "place", "landmark", "map_url", "subject", "source")
        },
        **{key: cells.time(key) for key in ("occurred_at", "mail_date", "received_at")},
        **{key: cells.time(key, required=True) for key in ("created_at", "updated_at")},
        "closed_at": cells.time("closed_at"),
    }
    if cells.errors:
        return None, cells.errors
    return IncidentRow(**values), []


def parse_entry(number: int, raw: Mapping[str, str]) -> tuple[EntryRow | None, list[CellError]]:
    """The timeline entry a row describes, or the errors of its cells."""
    cells = _Cells(number, raw, ENTRY_COLUMNS)
    values = {
        "incident_number": cells.read("incident_number", _positive, "番号が正しくありません。"),
        "at": cells.time("at", required=True),
        "kind": cells.text("kind"),
        "summary": cells.text("summary"),
        "status": cells.text("status"),
        "mail_id": cells.read("mail_id", _optional_id, "受信メールIDが正しくありません。"),
        "actor_label": cells.text("actor_label"),
    }
    if cells.errors:
        return None, cells.errors
    return EntryRow(**values), []


# -- the call-out's targets and answers -----------------------------------------------------------


@dataclass(frozen=True)
class TargetRow:
    incident_number: int
    incident_created_at: datetime
    member_code: str
    unit: str  # the 分団 they were called for
    leader: bool
    notified: bool  # reached on LINE
    reminded_at: datetime | None
    created_at: datetime


@dataclass(frozen=True)
class AnswerRow:
    incident_number: int
    incident_created_at: datetime
    member_code: str
    answer: Answer
    eta_minutes: int | None
    via: str  # a key of VIA_LABELS
    actor_label: str
    at: datetime


def encode_targets(rows: Iterable[TargetRow]) -> bytes:
    return csv_safe.encode(
        [c.header for c in TARGET_COLUMNS],
        (
            [
                r.incident_number,
                _time(r.incident_created_at),
                r.member_code,
                r.unit,
                _flag(r.leader),
                _flag(r.notified),
                _time(r.reminded_at),
                _time(r.created_at),
            ]
            for r in rows
        ),
    )


def encode_answers(rows: Iterable[AnswerRow]) -> bytes:
    return csv_safe.encode(
        [c.header for c in ANSWER_COLUMNS],
        (
            [
                r.incident_number,
                _time(r.incident_created_at),
                r.member_code,
                r.answer.label,
                "" if r.eta_minutes is None else r.eta_minutes,
                VIA_LABELS[r.via],
                r.actor_label,
                _time(r.at),
            ]
            for r in rows
        ),
    )


def parse_target(number: int, raw: Mapping[str, str]) -> tuple[TargetRow | None, list[CellError]]:
    """The call-out target a row describes, or the errors of its cells."""
    cells = _Cells(number, raw, TARGET_COLUMNS)
    values = {
        **_called(cells),
        "unit": cells.text("unit"),
        **{
            key: cells.read(key, _bool, f"「{YES}」か「{NO}」にしてください。")
            for key in ("leader", "notified")
        },
        "reminded_at": cells.time("reminded_at"),
        "created_at": cells.time("created_at", required=True),
    }
    if cells.errors:
        return None, cells.errors
    return TargetRow(**values), []


def parse_answer(number: int, raw: Mapping[str, str]) -> tuple[AnswerRow | None, list[CellError]]:
    """The answer a row describes, or the errors of its cells."""
    cells = _Cells(number, raw, ANSWER_COLUMNS)
    values = {
        **_called(cells),
        "answer": cells.read("answer", _label_of(_ANSWERS), _choose(_ANSWERS)),
        "eta_minutes": cells.read(
            "eta_minutes", _minutes, f"空欄か、1〜{MAX_ETA_MINUTES}の整数にしてください。"
        ),
        "via": cells.read("via", _label_of(_VIAS), _choose(_VIAS)),
        "actor_label": cells.text("actor_label"),
        "at": cells.time("at", required=True),
    }
    if cells.errors:
        return None, cells.errors
    return AnswerRow(**values), []


def _called(cells: _Cells) -> dict[str, Any]:
    return {
        "incident_number": cells.read("incident_number", _positive, "番号が正しくありません。"),
        "incident_created_at": cells.time("incident_created_at", required=True),
        "member_code": cells.read("member_code", _code, "団員番号が正しくありません。"),
    }


def _label_of(choices: Mapping[str, Any]) -> Callable[[str], Any]:
    return lambda text: choices[text.strip()]


def _choose(choices: Mapping[str, Any]) -> str:
    return f"{'・'.join(f'「{label}」' for label in choices)}のいずれかにしてください。"


def _minutes(text: str) -> int | None:
    if not text.strip():
        return None
    value = _positive(text)
    if value > MAX_ETA_MINUTES:
        raise ValueError("too long")
    return value


def _code(text: str) -> str:
    code = plain(text)
    if not code or "\x00" in code:
        raise ValueError("no code")
    return code


def _flag(value: bool) -> str:
    return YES if value else NO


def _list(values: Iterable[str]) -> str:
    return json.dumps(list(values), ensure_ascii=False)


def _time(value: datetime | None) -> str:
    return value.isoformat() if value else ""


def _no_nul(text: str) -> str:
    if "\x00" in text:
        raise ValueError("NUL")
    return text


def _positive(text: str) -> int:
    value = int(text.strip())
    if value < 1:
        raise ValueError("not positive")
    return value


def _optional_id(text: str) -> uuid.UUID | None:
    return uuid.UUID(text.strip()) if text.strip() else None


def _bool(text: str) -> bool:
    return {YES: True, NO: False}[text.strip()]


def _strings(text: str) -> tuple[str, ...]:
    value = json.loads(text)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError("not a list of strings")
    if any("\x00" in v for v in value):
        raise ValueError("NUL")
    return tuple(value)


def _aware(text: str) -> datetime | None:
    if not text.strip():
        return None
    value = datetime.fromisoformat(text.strip())
    if value.tzinfo is None:
        raise ValueError("naive time")
    return value.astimezone(UTC)
