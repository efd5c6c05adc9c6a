"""The file readers under the bombs of #16, against a normal 1,000-row file in the same run.

    .venv/bin/python bench/import_bombs.py

For each importer — 団員 (member_csv.parse, the first step of the member import), 消防水利
(tabular.read_table, the first step of the water import) and 復元 (backup.read_zip and the CSV
reading of each file, the first step of a restore) — every file is read twice: once timed, once
under tracemalloc for the peak of memory allocated during the read (zlib and expat allocate
through Python's allocator, so their buffers count). Nothing touches a database: a refused file
never gets past this step, and a normal file's figures are what the bombs are compared with.
The last line is the share of the XLSX pre-scan in reading the normal workbook.

The bombs are built in memory in milliseconds (tests/formats/bombs.py): a 300 MB shared
string, a row of 2,000,000 cells, a part inflating 1,000 to 1, a stream longer than its
header, a declared size of the whole grid, a header of 1,000,000 columns, and for backups a
member inflating 1,000 to 1, a bzip2 member and 100,000 directory entries.
"""

from __future__ import annotations

import io
import sys
import time
import tracemalloc
import uuid
import zipfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from formats import (  # noqa: E402
    backup,
    csv_safe,
    member_csv,
    tabular,
    water_csv,
    workbook,
    zip_limits,
)
from tests.formats import bombs  # noqa: E402

ROWS = 1_000
Reader = Callable[[bytes, str], str]


# -- the files -----------------------------------------------------------------------------------


def member_rows() -> list[list[str]]:
    return [
        [
            f"M{n:05d}",
            f"消防　太郎{n}",
            f"ショウボウ　タロウ{n}",
            "団員",
            "機関員",
            f"第{n % 5 + 1}分団",
            "在籍",
            f"090-{n % 10000:04d}-{n * 7 % 10000:04d}",
            f"member{n}@example.jp",
            f"長野県デモ市中央{n % 40 + 1}丁目{n % 29 + 1}-{n % 9 + 1}",
            "2020-04-01",
            "中型免許あり" if n % 3 else "",
        ]
        for n in range(1, ROWS + 1)
    ]


def water_rows() -> list[list[str]]:
    example = [column.example for column in water_csv.COLUMNS]
    return [[f"H-{n:04d}", *example[1:]] for n in range(1, ROWS + 1)]


def as_xlsx(header: list[str], rows: list[list[str]]) -> bytes:
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.append(header)
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def backup_zip(members: bytes) -> bytes:
    files = {
        backup.ROLES: backup.encode_roles([backup.RoleRow("機関員", "団員")]),
        backup.PERMISSIONS: backup.encode_permissions([]),
        backup.MEMBERS: members,
        backup.WATER_SOURCES: water_csv.encode([]),
        backup.INSPECTIONS: backup.encode_inspections([]),
    }
    manifest = backup.build_manifest(
        files,
        tenant_id=uuid.uuid4(),
        brigade="ベンチ消防団",
        created_at=datetime.now(UTC),
        app_version="bench",
    )
    return backup.write_zip(manifest, files, password=None)


def entries_bomb(count: int = 100_000) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for number in range(count):
            archive.writestr(str(number), b"")
    return out.getvalue()


def member_csv_file() -> bytes:
    return csv_safe.encode(member_csv.HEADER, member_rows())


def table_files(header: list[str], rows: Callable[[], list[list[str]]]) -> dict[str, Callable]:
    return {
        f"normal CSV, {ROWS:,} rows": lambda: csv_safe.encode(header, rows()),
        f"normal XLSX, {ROWS:,} rows": lambda: as_xlsx(header, rows()),
        "shared string of 300 MB": bombs.shared_string_bomb,
        "row of 2,000,000 cells": bombs.wide_row_bomb,
        "part inflating 1000:1": bombs.ratio_bomb,
        "stream longer than header": bombs.lying_header_bomb,
        "declared size A1:XFD1048576": bombs.dimension_bomb,
        "CSV of 1,000,000 columns": bombs.million_column_csv,
    }


FILES: dict[str, dict[str, Callable[[], bytes]]] = {
    "団員": table_files(list(member_csv.HEADER), member_rows),
    "消防水利": table_files([c.header for c in water_csv.COLUMNS], water_rows),
    "復元": {
        f"normal backup, {ROWS:,} members": lambda: backup_zip(member_csv_file()),
        "member inflating 1000:1": lambda: bombs.archive(
            bombs.deflated(backup.MANIFEST, b"{}"),
            bombs.repeated(backup.MEMBERS, b"", b"0" * bombs.MIB, 64, b""),
        ),
        "bzip2 member": lambda: bombs.archive(
            bombs.deflated(backup.MANIFEST, b"{}"),
            bombs.Entry(backup.MEMBERS, b"BZh9", 300 * bombs.MIB, zipfile.ZIP_BZIP2),
        ),
        "100,000 directory entries": entries_bomb,
        "CSV of 1,000,000 columns": lambda: backup_zip(bombs.million_column_csv()),
    },
}


# -- the readers ---------------------------------------------------------------------------------


def read_members(data: bytes, name: str) -> str:
    parsed = member_csv.parse(data, name)
    return f"refused: {parsed.file_errors[0]}" if parsed.file_errors else f"{len(parsed.records)}行"


def read_water(data: bytes, name: str) -> str:
    try:
        return f"{len(tabular.read_table(data, name)[0].rows) - 1}行"
    except tabular.TableError as exc:
        return f"refused: {exc}"


def read_backup(data: bytes, _: str) -> str:
    try:
        found = backup.read_zip(data)
    except backup.BackupError as exc:
        return f"refused: {exc.problems[0]}"
    rows = [tabular.read_csv(content).rows for content in found.files.values()]
    return f"{sum(map(len, rows)) - len(rows)}行"


READERS: dict[str, Reader] = {"団員": read_members, "消防水利": read_water, "復元": read_backup}


# -- measuring -----------------------------------------------------------------------------------


def measure(reader: Reader, data: bytes, name: str) -> tuple[str, float, int]:
    """(outcome, seconds untraced, peak bytes allocated while reading under tracemalloc)."""
    started = time.perf_counter()
    outcome = reader(data, name)
    seconds = time.perf_counter() - started
    tracemalloc.start()
    reader(data, name)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return outcome, seconds, peak


def scan_share(data: bytes) -> float:
    """The pre-scan's time as a share of reading the workbook."""
    started = time.perf_counter()
    tabular.read_table(data, "upload.xlsx")
    whole = time.perf_counter() - started
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        started = time.perf_counter()
        workbook._Scan(tabular.MAX_ROWS).archive(archive)
        return (time.perf_counter() - started) / whole


def main() -> None:
    started = time.perf_counter()
    tabular.read_table(as_xlsx(["a"], [["1"]]), "warm.xlsx")  # openpyxl's import is no read's
    print(f"{'importer':8} {'file':30} {'size':>9} {'time':>8} {'peak':>9} {'×normal':>8}  outcome")
    for importer, reader in READERS.items():
        normal = 0
        for label, make in FILES[importer].items():
            data = make()
            name = "upload.csv" if "CSV" in label else "upload.xlsx"
            outcome, seconds, peak = measure(reader, data, name)
            normal = normal or peak
            print(
                f"{importer:8} {label:30} {len(data) / 1024:7.0f}KB {seconds * 1000:6.0f}ms"
                f" {peak / 1_048_576:7.1f}MB {peak / normal:8.2f}  {outcome[:60]}"
            )
    print("\nthe second wall: the ratio check off, the pre-scan alone")
    zip_limits.MAX_RATIO = 10**9
    for label in ("row of 2,000,000 cells", "part inflating 1000:1", "stream longer than header"):
        data = FILES["団員"][label]()
        outcome, seconds, peak = measure(read_members, data, "upload.xlsx")
        print(
            f"{'団員':8} {label:30} {len(data) / 1024:7.0f}KB {seconds * 1000:6.0f}ms"
            f" {peak / 1_048_576:7.1f}MB {'':8}  {outcome[:60]}"
        )
    share = scan_share(as_xlsx(list(member_csv.HEADER), member_rows()))
    print(f"\npre-scan share of reading the normal XLSX: {share:.0%}")
    print(f"whole run {time.perf_counter() - started:.1f}s")


if __name__ == "__main__":
    main()
