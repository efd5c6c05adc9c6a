"""Whatever bytes arrive, the file readers answer with our own error (#16): arbitrary bytes and
mutations of valid files through the CSV reader, the XLSX reader and the backup reader never
raise anything else (RecursionError, MemoryError, KeyError, zipfile.BadZipFile,
UnicodeDecodeError, struct.error, …). Bounded: the file runs in a few seconds."""

from __future__ import annotations

import contextlib
import io
import uuid
import zipfile
from datetime import UTC, datetime
from xml.sax.saxutils import escape, quoteattr

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from formats import backup, backup_dispatch, backup_reports, member_csv, tabular
from tests.formats import bombs
from tests.formats.bombs import SHEET, STRINGS, stored

FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# Each example of these opens a valid workbook all the way through openpyxl.
FUZZ_SHEETS = settings(FUZZ, max_examples=40)
CSV = (
    "\ufeff団員番号,氏名,階級,電話番号,備考\r\n"
    'A1,消防　太郎,団員,090-1234-5678,"改行\r\nあり"\r\n'
    "A2,消防　花子,班長,,'=1+1\r\n"
).encode()
SHEET_XML = bombs.sheet_xml(
    '<row r="1"><c r="A1" t="s"><v>0</v></c><c r="B1" t="inlineStr"><is><t>氏名</t></is></c>'
    '<c r="C1" t="inlineStr"><is><t>階級</t></is></c></row>'
    '<row r="2"><c r="A2"><v>1</v></c><c r="B2" t="inlineStr"><is><t>消防</t></is></c>'
    '<c r="C2" t="b"><v>1</v></c><c r="D2" t="e"><v>#N/A</v></c><c r="E2" t="str"><v>x</v></c>'
    '<c r="F2" t="d"><v>2024-04-01</v></c></row>',
    head='<dimension ref="A1:F2"/>',
)
STRINGS_XML = (
    f'<sst xmlns="{bombs.MAIN}"><si><t>団員番号</t><rPh sb="0" eb="2"><t>ダン</t></rPh></si></sst>'
)
# Stored, not deflated: a mutation then lands in the XML itself, not in a compressed stream.
XLSX = bombs.archive(
    stored("[Content_Types].xml", bombs.CONTENT_TYPES),
    stored("xl/workbook.xml", bombs.WORKBOOK),
    stored("xl/_rels/workbook.xml.rels", bombs.WORKBOOK_RELS),
    stored(SHEET, SHEET_XML),
    stored(STRINGS, STRINGS_XML.encode()),
)


def backup_zip(password: str | None = None) -> bytes:
    files = {
        backup.ROLES: backup.encode_roles([backup.RoleRow("庶務", "分団長")]),
        backup.PERMISSIONS: backup.encode_permissions([]),
        backup.MEMBERS: member_csv.encode([]),
        backup.WATER_SOURCES: "\ufeff水利番号\r\nW-1\r\n".encode(),
        backup.INSPECTIONS: backup.encode_inspections([]),
        backup.MAIL_SOURCES: backup_dispatch.encode_mail_sources([]),
        backup.INCIDENTS: backup_dispatch.encode_incidents([]),
        backup.INCIDENT_ENTRIES: backup_dispatch.encode_entries([]),
        backup.CALLOUT_TARGETS: backup_dispatch.encode_targets([]),
        backup.CALLOUT_ANSWERS: backup_dispatch.encode_answers([]),
        backup.ACTIVITY_REPORTS: backup_reports.encode_reports([]),
        backup.REPORT_STEPS: backup_reports.encode_steps([]),
        backup.REPORT_SETTINGS: backup_reports.encode_settings("[]", ""),
    }
    manifest = backup.build_manifest(
        files,
        tenant_id=uuid.UUID("12345678-1234-5678-1234-567812345678"),
        brigade="テスト消防団",
        created_at=datetime(2025, 4, 1, tzinfo=UTC),
        app_version="0.1.0",
    )
    plain = backup.write_zip(manifest, files, password=password)
    if password is not None:
        return plain
    with zipfile.ZipFile(io.BytesIO(plain)) as archive:  # stored, as XLSX above
        return bombs.archive(*(stored(n, archive.read(n)) for n in archive.namelist()))


BACKUP = backup_zip()
SEALED = backup_zip("correct horse battery")


@st.composite
def mutated(draw: st.DrawFn, original: bytes) -> bytes:
    """The original with a few spans replaced, inserted or removed."""
    data = original
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, len(data)))
        cut = draw(st.integers(0, 16))
        data = data[:at] + draw(st.binary(max_size=16)) + data[at + cut :]
    return data


def read_table(data: bytes, filename: str) -> None:
    with contextlib.suppress(tabular.TableError):
        tabular.read_table(data, filename)


def read_backup(data: bytes, password: str | None = None) -> None:
    with contextlib.suppress(backup.BackupError):
        backup.read_zip(data, password=password)


def test_the_files_mutated_are_valid_to_begin_with():
    assert len(tabular.read_table(CSV, "x.csv")[0].rows) == 3
    assert tabular.read_table(XLSX, "x.xlsx")[0].rows == [
        ["団員番号", "氏名", "階級"],
        ["1", "消防", "True", "#N/A", "x", "2024-04-01"],
    ]
    assert backup.read_zip(BACKUP).manifest.brigade == "テスト消防団"
    assert backup.read_zip(SEALED, password="correct horse battery").encrypted


def test_a_zip_version_no_reader_knows_is_our_error():
    """Found by the fuzz below: zipfile raised NotImplementedError("zip file version 6.4")."""
    data = bytearray(XLSX)
    directory = data.find(b"PK\x01\x02")
    data[4:6] = data[directory + 6 : directory + 8] = (64).to_bytes(2, "little")
    read_table(bytes(data), "x.xlsx")
    read_backup(bytes(data))


@FUZZ
@given(st.binary(max_size=2_000))
def test_arbitrary_bytes_as_csv(data):
    read_table(data, "x.csv")
    member_csv.parse(data, "x.csv")


@FUZZ
@given(mutated(CSV))
def test_mutated_csv(data):
    read_table(data, "x.csv")
    member_csv.parse(data, "x.csv")


@FUZZ
@given(st.binary(max_size=2_000))
def test_arbitrary_bytes_as_xlsx(data):
    read_table(b"PK\x03\x04" + data, "x.xlsx")


@FUZZ
@given(mutated(XLSX))
def test_mutated_xlsx(data):
    read_table(data, "x.xlsx")


@FUZZ
@given(st.text(max_size=300), st.sampled_from([SHEET, STRINGS, "xl/workbook.xml"]))
def test_any_text_in_a_workbook_part(text, part):
    read_table(bombs.workbook(stored(part, text.encode())), "x.xlsx")


XML_TEXT = st.text(st.characters(exclude_categories=("Cs", "Cc")), max_size=12)
REFERENCES = st.one_of(
    st.none(), st.from_regex(r"\$?[A-Za-z]{0,4}\$?[0-9]{0,12}", fullmatch=True), XML_TEXT
)
TYPES = st.sampled_from([None, "s", "n", "b", "e", "str", "inlineStr", "d", "x"])


@st.composite
def cell(draw: st.DrawFn) -> str:
    attributes = {"r": draw(REFERENCES), "t": draw(TYPES), "s": draw(st.none() | XML_TEXT)}
    shown = " ".join(f"{k}={quoteattr(v)}" for k, v in attributes.items() if v is not None)
    value = draw(st.sampled_from(["<v>{}</v>", "<is><t>{}</t></is>", "<f>{}</f>", "{}", ""]))
    return f"<c {shown}>{value.format(escape(draw(XML_TEXT)))}</c>"


@st.composite
def row(draw: st.DrawFn) -> str:
    numbers = st.from_regex(r"[0-9]{1,12}(\.[0-9])?", fullmatch=True) | st.just("9" * 5000)
    number = draw(st.none() | numbers | XML_TEXT)
    shown = f" r={quoteattr(number)}" if number is not None else ""
    return f"<row{shown}>{''.join(draw(st.lists(cell(), max_size=6)))}</row>"


@FUZZ_SHEETS
@given(st.lists(row(), max_size=6), st.none() | XML_TEXT)
def test_any_cells_in_a_sheet(rows, dimension):
    head = f"<dimension ref={quoteattr(dimension)}/>" if dimension is not None else ""
    sheet = stored(SHEET, bombs.sheet_xml("".join(rows), head=head))
    read_table(bombs.workbook(sheet, stored(STRINGS, STRINGS_XML.encode())), "x.xlsx")


@FUZZ
@given(st.binary(max_size=2_000))
def test_arbitrary_bytes_as_backup(data):
    read_backup(b"PK\x03\x04" + data)


@FUZZ
@given(mutated(BACKUP))
def test_mutated_backup(data):
    read_backup(data)


@FUZZ
@given(mutated(SEALED))
def test_mutated_encrypted_backup(data):
    read_backup(data, "correct horse battery")
