"""The backup file: one ZIP with the brigade's data as CSV files (each opens in Excel), the mail
sources' settings as one JSON file (their parser profiles are nested and can outgrow a CSV cell),
and a manifest (format, version, brigade, UTC time, and each file's row count, size and SHA-256),
optionally encrypted with AES-256 (WinZip AE-2, via pyzipper) for carrying personal data on
removable media. Reading verifies everything before anything is parsed: size and entry limits
(a ZIP bomb is refused before it is inflated), password, manifest, every file's hash and rows.

The hashes detect a damaged or edited file, not a forged one: whoever can write the ZIP can
rewrite the manifest too. No database access: services/backup.py calls this.
"""

from __future__ import annotations

import hashlib
import io
import json
import uuid
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import pyzipper

from formats import csv_safe, tabular, zip_limits
from formats.tabular import CellError, Column, TableError, find_header, read_csv, records
from models.enums import Function

FORMAT = "hikeshi-backup"
MANIFEST = "manifest.json"
ROLES = "roles.csv"
PERMISSIONS = "permissions.csv"
MEMBERS = "members.csv"
WATER_SOURCES = "water_sources.csv"
INSPECTIONS = "inspections.csv"
MAIL_SOURCES = "mail_sources.json"
INCIDENTS = "incidents.csv"
INCIDENT_ENTRIES = "incident_entries.csv"
CALLOUT_TARGETS = "callout_targets.csv"
CALLOUT_ANSWERS = "callout_answers.csv"
ACTIVITY_REPORTS = "activity_reports.csv"
REPORT_STEPS = "report_steps.csv"
REPORT_SETTINGS = "report_settings.json"
# The files each version holds. Version 2 added dispatch (#20), version 3 the call-out's targets
# and answers (#21), version 4 the 出動報告 with their trails and the report settings (#22);
# older versions are still read and say nothing about what they lack.
_VERSION_1 = (ROLES, PERMISSIONS, MEMBERS, WATER_SOURCES, INSPECTIONS)
_VERSION_2 = (*_VERSION_1, MAIL_SOURCES, INCIDENTS, INCIDENT_ENTRIES)
_VERSION_3 = (*_VERSION_2, CALLOUT_TARGETS, CALLOUT_ANSWERS)
VERSION_FILES = {
    1: _VERSION_1,
    2: _VERSION_2,
    3: _VERSION_3,
    4: (*_VERSION_3, ACTIVITY_REPORTS, REPORT_STEPS, REPORT_SETTINGS),
}
FORMAT_VERSION = max(VERSION_FILES)
DATA_FILES = VERSION_FILES[FORMAT_VERSION]

MAX_BACKUP_BYTES = 100 * 1024 * 1024
# Each file is read by the CSV reader, which refuses one larger than this (#16).
MAX_ENTRY_BYTES = tabular.MAX_FILE_BYTES
MAX_ENTRIES = 16
# The manifest lists a handful of files: a few KB. A larger one is padding or a bomb (#16).
MAX_MANIFEST_BYTES = 64 * 1024
TOO_LARGE_EXPANDED = "展開後のサイズが大きすぎます。"
MANIFEST_TOO_LARGE = (
    "管理情報（manifest.json）が大きすぎます。Hikeshi のバックアップではありません。"
)
# A handful of sources, each with a profile of at most some 60,000 characters.
MAX_SOURCES_BYTES = 4 * 1024 * 1024
SOURCES_TOO_LARGE = f"{MAIL_SOURCES} が大きすぎます（{MAX_SOURCES_BYTES // 1_048_576}MB まで）。"
# A chain of at most 5 steps and a reward table of a few dozen categories: some KB.
MAX_REPORT_SETTINGS_BYTES = 256 * 1024
REPORT_SETTINGS_TOO_LARGE = f"{REPORT_SETTINGS} が大きすぎます（256KB まで）。"
# The JSON entries are parsed whole: each is capped below the CSV files' limit, by its header
# and by the bytes actually read.
_JSON_CAPS = {
    MANIFEST: (MAX_MANIFEST_BYTES, MANIFEST_TOO_LARGE),
    MAIL_SOURCES: (MAX_SOURCES_BYTES, SOURCES_TOO_LARGE),
    REPORT_SETTINGS: (MAX_REPORT_SETTINGS_BYTES, REPORT_SETTINGS_TOO_LARGE),
}
MAX_UNCOMPRESSED_BYTES = MAX_MANIFEST_BYTES + sum(
    _JSON_CAPS[name][0] if name in _JSON_CAPS else MAX_ENTRY_BYTES for name in DATA_FILES
)
MIN_PASSWORD_CHARS = 12
_ENCRYPTED_FLAG = 0x1
_READ_CHUNK = 1024 * 1024


class BackupError(ValueError):
    """The backup cannot be used; `problems` are Japanese sentences, each shown to the user."""

    def __init__(self, *problems: str) -> None:
        super().__init__(" ".join(problems))
        self.problems = list(problems)


class PasswordRequired(BackupError):
    def __init__(self) -> None:
        super().__init__(
            "このバックアップはパスワードで保護されています。パスワードを入力してください。"
        )


class WrongPassword(BackupError):
    def __init__(self) -> None:
        super().__init__("パスワードが違います。")


# -- manifest ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class FileEntry:
    name: str
    rows: int
    sha256: str
    bytes: int


@dataclass(frozen=True)
class Manifest:
    tenant_id: uuid.UUID
    brigade: str
    created_at: datetime  # UTC
    app_version: str
    files: tuple[FileEntry, ...]
    format: str = FORMAT
    format_version: int = FORMAT_VERSION

    @property
    def data_files(self) -> tuple[str, ...]:
        return VERSION_FILES[self.format_version]

    def entry(self, name: str) -> FileEntry | None:
        return next((entry for entry in self.files if entry.name == name), None)

    @property
    def rows(self) -> dict[str, int]:
        return {entry.name: entry.rows for entry in self.files}

    def to_json(self) -> bytes:
        document = {
            "format": self.format,
            "format_version": self.format_version,
            "tenant_id": str(self.tenant_id),
            "brigade": self.brigade,
            "created_at": self.created_at.isoformat(),
            "app_version": self.app_version,
            "files": [asdict(entry) for entry in self.files],
        }
        return json.dumps(document, ensure_ascii=False, indent=2).encode("utf-8")

    @classmethod
    def from_json(cls, data: bytes) -> Manifest:
        if len(data) > MAX_MANIFEST_BYTES:
            raise BackupError(MANIFEST_TOO_LARGE)
        try:
            document = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
            # deep nesting ([[[[…) is no manifest either; json gives up by recursion
            raise BackupError("管理情報（manifest.json）が読めません。") from None
        if not isinstance(document, dict) or document.get("format") != FORMAT:
            raise BackupError("Hikeshi のバックアップファイルではありません。")
        version = document.get("format_version")
        if type(version) is not int or version not in VERSION_FILES:  # JSON true is no 1
            readable = "、".join(str(v) for v in VERSION_FILES)
            raise BackupError(
                f"このバックアップの形式（版 {version!s:.10}）には"
                f"対応していません（対応している版: {readable}）。"
            )
        try:
            return cls(
                tenant_id=uuid.UUID(document["tenant_id"]),
                brigade=str(document["brigade"]),
                created_at=_utc(document["created_at"]),
                app_version=str(document.get("app_version", "")),
                files=tuple(_entry(item) for item in document["files"]),
                format_version=version,
            )
        except (KeyError, TypeError, ValueError, AttributeError):
            raise BackupError("管理情報（manifest.json）の内容が正しくありません。") from None


def _entry(item: dict[str, Any]) -> FileEntry:
    entry = FileEntry(str(item["name"]), int(item["rows"]), str(item["sha256"]), int(item["bytes"]))
    if entry.rows < 0 or entry.bytes < 0:
        raise ValueError("negative count")
    return entry


def _utc(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        raise ValueError("naive time")
    return value


def count_rows(data: bytes) -> int:
    """Data rows of a CSV file as written by csv_safe.encode (UTF-8): non-blank rows below the
    header, counted one at a time (a file of any shape holds one row in memory); -1 when the
    file is no such CSV."""
    try:
        rows = tabular.csv_rows(data.decode("utf-8").removeprefix(csv_safe.BOM))
        next(rows, None)  # the header
        return sum(1 for row in rows if any(cell.strip() for cell in row))
    except (UnicodeDecodeError, TableError):
        return -1


def count_records(data: bytes) -> int:
    """Records of a JSON file as written by encode_mail_sources (the items of its list) or by
    encode_settings (one object, one record); -1 when the file is no such JSON."""
    try:
        document = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return -1
    if isinstance(document, dict):
        return 1
    return len(document) if isinstance(document, list) else -1


def _rows(name: str, data: bytes) -> int:
    """Only the capped JSON files are parsed whole; anything else is counted as CSV, a row at a
    time."""
    return count_records(data) if name in _JSON_CAPS else count_rows(data)


# -- writing -----------------------------------------------------------------------------------


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_CHARS:
        raise BackupError(f"パスワードは{MIN_PASSWORD_CHARS}文字以上にしてください。")


def build_manifest(
    files: Mapping[str, bytes],
    *,
    tenant_id: uuid.UUID,
    brigade: str,
    created_at: datetime,
    app_version: str,
    format_version: int = FORMAT_VERSION,
) -> Manifest:
    return Manifest(
        tenant_id=tenant_id,
        brigade=brigade,
        created_at=created_at,
        app_version=app_version,
        files=tuple(
            FileEntry(name, _rows(name, data), _sha256(data), len(data))
            for name, data in files.items()
        ),
        format_version=format_version,
    )


def write_zip(manifest: Manifest, files: Mapping[str, bytes], *, password: str | None) -> bytes:
    """The ZIP: the manifest first, then the files; every entry AES-256 encrypted when a
    password is given."""
    if password is not None:
        check_password(password)
    out = io.BytesIO()
    options: dict[str, Any] = {"compression": pyzipper.ZIP_DEFLATED}
    if password is not None:
        options["encryption"] = pyzipper.WZ_AES
    with pyzipper.AESZipFile(out, "w", **options) as archive:
        if password is not None:
            archive.setpassword(password.encode("utf-8"))
            archive.setencryption(pyzipper.WZ_AES, nbits=256)
        archive.writestr(MANIFEST, manifest.to_json())
        for name, data in files.items():
            archive.writestr(name, data)
    return out.getvalue()


# -- reading -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Backup:
    """A verified backup: the manifest and each listed file's bytes."""

    manifest: Manifest
    files: dict[str, bytes] = field(repr=False)
    encrypted: bool


def read_zip(data: bytes, *, password: str | None = None) -> Backup:
    """Open, decrypt and verify a backup; BackupError (with every problem found) otherwise."""
    if len(data) > MAX_BACKUP_BYTES:
        raise BackupError(f"ファイルが大きすぎます（{MAX_BACKUP_BYTES // 1_048_576}MB まで）。")
    if problem := zip_limits.count_problem(data, MAX_ENTRIES):
        raise BackupError(problem)
    try:
        with pyzipper.AESZipFile(io.BytesIO(data)) as archive:
            infos = _checked_entries(archive.infolist())
            encrypted = _encryption(infos)
            if encrypted:
                if not password:
                    raise PasswordRequired()
                archive.setpassword(password.encode("utf-8"))
            contents = _read_entries(archive, infos)
    except BackupError:
        raise
    except (pyzipper.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError, ValueError):
        # damaged: bad headers or CRC, a cut stream, a seek before the start (ValueError)
        raise BackupError(
            "ZIPファイルとして読めません（壊れているか、途中までしか保存されていません）。"
        ) from None
    manifest = Manifest.from_json(contents.pop(MANIFEST))
    verify(manifest, contents)
    return Backup(manifest, contents, encrypted)


def _checked_entries(infos: list[pyzipper.ZipInfo]) -> list[pyzipper.ZipInfo]:
    if any("/" in info.filename or "\\" in info.filename or info.is_dir() for info in infos):
        raise BackupError("ZIPにフォルダが含まれています。バックアップの形式ではありません。")
    for info in infos:
        if info.filename in _JSON_CAPS and info.file_size > _JSON_CAPS[info.filename][0]:
            raise BackupError(_JSON_CAPS[info.filename][1])
    problem = zip_limits.entry_problem(
        infos, max_entry_bytes=MAX_ENTRY_BYTES, max_total_bytes=MAX_UNCOMPRESSED_BYTES
    )
    if problem:
        raise BackupError(problem)
    if MANIFEST not in (info.filename for info in infos):
        raise BackupError(
            "管理情報（manifest.json）がありません。Hikeshi のバックアップではありません。"
        )
    return infos


def _encryption(infos: Sequence[pyzipper.ZipInfo]) -> bool:
    flags = {bool(info.flag_bits & _ENCRYPTED_FLAG) for info in infos}
    if len(flags) > 1:
        raise BackupError("暗号化されたファイルとされていないファイルが混在しています。")
    return flags == {True}


def _read_entries(
    archive: pyzipper.AESZipFile, infos: Sequence[pyzipper.ZipInfo]
) -> dict[str, bytes]:
    """Each entry inflated in chunks, stopped as soon as the total passes the limit, whatever
    sizes the headers claim."""
    contents: dict[str, bytes] = {}
    budget = MAX_UNCOMPRESSED_BYTES
    for info in sorted(infos, key=lambda i: i.filename != MANIFEST):  # the small one first
        chunks: list[bytes] = []
        limit, too_large = _JSON_CAPS.get(info.filename, (None, ""))
        try:
            with archive.open(info) as stream:
                while chunk := stream.read(min(_READ_CHUNK, budget + 1)):
                    budget -= len(chunk)
                    if budget < 0:
                        raise BackupError(TOO_LARGE_EXPANDED)
                    chunks.append(chunk)
                    if limit is not None and sum(map(len, chunks)) > limit:
                        raise BackupError(too_large)  # whatever its header claims
        except RuntimeError as exc:
            if "password" in str(exc).lower():
                raise WrongPassword() from None
            raise
        contents[info.filename] = b"".join(chunks)
    return contents


def verify(manifest: Manifest, contents: Mapping[str, bytes]) -> None:
    """Every data file of the manifest's version listed, present and as the manifest describes
    it; nothing else."""
    problems: list[str] = []
    listed = [entry.name for entry in manifest.files]
    expected = manifest.data_files
    for name in expected:
        if name not in listed:
            problems.append(f"管理情報に {name} が記載されていません。")
    for name in sorted(set(listed) - set(expected)):
        problems.append(f"管理情報に不明なファイル {name} が記載されています。")
    for name in sorted(set(contents) - set(listed)):
        problems.append(f"管理情報に記載のないファイル {name} が含まれています。")
    for entry in manifest.files:
        if entry.name in contents:
            problems += _file_problems(entry, contents[entry.name])
        elif entry.name in expected:
            problems.append(f"{entry.name} がありません。")
    if problems:
        raise BackupError(*problems)


def _file_problems(entry: FileEntry, data: bytes) -> list[str]:
    if len(data) != entry.bytes or _sha256(data) != entry.sha256:
        return [
            f"{entry.name} の内容が作成時と一致しません（SHA-256 不一致）。編集されたか壊れています。"
        ]
    if _rows(entry.name, data) != entry.rows:
        return [f"{entry.name} の行数が管理情報と一致しません。"]
    return []


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- layouts of the files this module owns -----------------------------------------------------


def later_functions_missing(data: bytes) -> list[Function]:
    """The LATER_FUNCTIONS a permissions file has no column for (made before they existed)."""
    try:
        header = next(iter(tabular.csv_rows(data.decode("utf-8").removeprefix(csv_safe.BOM))), [])
    except (UnicodeDecodeError, tabular.TableError):
        return []
    names = {tabular.plain(name) for name in header}
    return [f for f in Function if f in LATER_FUNCTIONS and f.label not in names]


ROLE_COLUMNS = (
    Column("name", "役職名", required=True, max_length=40),
    Column("rank", "相当する階級", required=True, max_length=20),
)
SUBJECT_RANK, SUBJECT_ROLE = "階級", "役職"
# Functions added to the matrix after format version 3 (#22): a backup made before holds no
# column for them, and its ranks get their default levels on restore (services/backup/access.py).
LATER_FUNCTIONS = frozenset({Function.REPORTS, Function.APPROVALS})
PERMISSION_COLUMNS = (
    Column("kind", "区分", required=True, max_length=10),
    Column("name", "名称", required=True, max_length=40),
    *(Column(str(f), f.label, required=f not in LATER_FUNCTIONS, max_length=20) for f in Function),
)
INSPECTION_COLUMNS = (
    Column("source_code", "水利番号", required=True, max_length=30),
    Column("inspected_on", "点検日", required=True, max_length=20),
    Column("result", "点検結果", required=True, max_length=20),
    Column("inspector_code", "点検者の団員番号", required=True, max_length=20),
    Column("inspector_name", "点検者（団員以外）", required=True, max_length=50),
    Column("notes", "点検の記録", required=True, max_length=1000),
    Column("created_at", "記録日時（UTC）", required=True, max_length=40),
)


@dataclass(frozen=True)
class RoleRow:
    name: str
    rank: str


@dataclass(frozen=True)
class PermissionRow:
    kind: str  # SUBJECT_RANK or SUBJECT_ROLE
    name: str
    cells: Mapping[Function, str]  # level labels as the matrix page shows them


@dataclass(frozen=True)
class InspectionRow:
    source_code: str
    inspected_on: Any  # a date
    result: str
    inspector_code: str
    inspector_name: str
    notes: str
    created_at: datetime  # UTC


def encode_roles(rows: Iterable[RoleRow]) -> bytes:
    return csv_safe.encode([c.header for c in ROLE_COLUMNS], ([r.name, r.rank] for r in rows))


def encode_permissions(rows: Iterable[PermissionRow]) -> bytes:
    return csv_safe.encode(
        [c.header for c in PERMISSION_COLUMNS],
        ([r.kind, r.name, *(r.cells.get(f, "") for f in Function)] for r in rows),
    )


def encode_inspections(rows: Iterable[InspectionRow]) -> bytes:
    return csv_safe.encode(
        [c.header for c in INSPECTION_COLUMNS],
        (
            [
                r.source_code,
                r.inspected_on.isoformat(),
                r.result,
                r.inspector_code,
                r.inspector_name,
                r.notes,
                r.created_at.isoformat(),
            ]
            for r in rows
        ),
    )


@dataclass(frozen=True)
class Table:
    """The records of one file: (row number, {key: text}), cell errors, and file problems."""

    records: list[tuple[int, dict[str, str]]]
    errors: list[CellError]
    problems: list[str]


def read_table(data: bytes, columns: Sequence[Column]) -> Table:
    try:
        sheet = read_csv(data)
    except TableError as exc:
        return Table([], [], [str(exc)])
    match = find_header(sheet, columns)
    if match is None:
        return Table([], [], ["見出し行が見つかりません。"])
    if match.problems:
        return Table([], [], match.problems)
    found, errors = [], []
    for row, values, cell_errors in records(sheet, match, columns):
        found.append((row, values))
        errors += cell_errors
    return Table(found, errors, [])
