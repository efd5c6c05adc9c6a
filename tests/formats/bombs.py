"""Hostile uploads built in memory in milliseconds (#16): ZIP entries written by hand, so that a
header may say what the attacker wants, and deflate streams of hundreds of megabytes made of one
compressed block repeated (a full flush resets the compressor, so the block is the same bytes
each time). The tests and bench/import_bombs.py use them.

A bomb carries CRC 0: zipfile checks the CRC only after an entry is fully inflated, too late to
matter, so an attacker need not compute the right one."""

from __future__ import annotations

import struct
import zipfile
import zlib
from dataclasses import dataclass

MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
RELS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
MIB = 1024 * 1024
CONTENT_TYPES = (
    b'<?xml version="1.0" encoding="UTF-8"?>'
    b'<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    b'<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    b'<Default Extension="xml" ContentType="application/xml"/>'
    b'<Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-'
    b'officedocument.spreadsheetml.sheet.main+xml"/>'
    b'<Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-'
    b'officedocument.spreadsheetml.worksheet+xml"/>'
    b'<Override PartName="/xl/sharedStrings.xml" ContentType="application/vnd.openxmlformats-'
    b'officedocument.spreadsheetml.sharedStrings+xml"/>'
    b"</Types>"
)
WORKBOOK = (
    f'<workbook xmlns="{MAIN}" xmlns:r="{RELS}"><sheets>'
    '<sheet name="名簿" sheetId="1" r:id="rId1"/></sheets></workbook>'
).encode()
WORKBOOK_RELS = (
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    f'<Relationship Id="rId1" Type="{RELS}/worksheet" Target="worksheets/sheet1.xml"/>'
    "</Relationships>"
).encode()
SHEET = "xl/worksheets/sheet1.xml"
STRINGS = "xl/sharedStrings.xml"


@dataclass(frozen=True)
class Entry:
    name: str
    data: bytes  # as stored in the archive
    size: int  # what the headers declare
    method: int = zipfile.ZIP_DEFLATED
    crc: int = 0


def stored(name: str, data: bytes) -> Entry:
    return Entry(name, data, len(data), zipfile.ZIP_STORED, zlib.crc32(data))


def deflated(name: str, data: bytes) -> Entry:
    packer = zlib.compressobj(9, zlib.DEFLATED, -15)
    return Entry(name, packer.compress(data) + packer.flush(), len(data), crc=zlib.crc32(data))


def repeated(name: str, head: bytes, piece: bytes, times: int, tail: bytes) -> Entry:
    """head + piece * times + tail, deflated without ever being built."""
    packer = zlib.compressobj(9, zlib.DEFLATED, -15)
    start = packer.compress(head) + packer.flush(zlib.Z_FULL_FLUSH)
    block = packer.compress(piece) + packer.flush(zlib.Z_FULL_FLUSH)
    end = packer.compress(tail) + packer.flush()
    return Entry(name, start + block * times + end, len(head) + len(piece) * times + len(tail))


def archive(*entries: Entry) -> bytes:
    """A ZIP of the entries, each header declaring entry.size."""
    body, directory = bytearray(), bytearray()
    for entry in entries:
        name = entry.name.encode()
        sizes = (entry.crc, len(entry.data), entry.size, len(name))
        directory += (
            struct.pack(
                "<4s6H3L5H2L",
                b"PK\x01\x02",
                20,
                20,
                0x800,
                entry.method,
                0,
                0,
                *sizes,
                0,
                0,
                0,
                0,
                0,
                len(body),
            )
            + name
        )
        body += struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0x800, entry.method, 0, 0, *sizes, 0)
        body += name + entry.data
    end = struct.pack(
        "<4s4H2LH", b"PK\x05\x06", 0, 0, len(entries), len(entries), len(directory), len(body), 0
    )
    return bytes(body + directory + end)


def sheet_xml(rows: str, head: str = "") -> bytes:
    return f'<worksheet xmlns="{MAIN}">{head}<sheetData>{rows}</sheetData></worksheet>'.encode()


def workbook(*parts: Entry, sheet: bytes | None = None) -> bytes:
    """A minimal workbook of one sheet; `parts` replace or add entries."""
    given = {part.name: part for part in parts}
    base = [
        deflated("[Content_Types].xml", CONTENT_TYPES),
        deflated("xl/workbook.xml", WORKBOOK),
        deflated("xl/_rels/workbook.xml.rels", WORKBOOK_RELS),
        deflated(SHEET, sheet if sheet is not None else sheet_xml("")),
        deflated(STRINGS, f'<sst xmlns="{MAIN}"/>'.encode()),
    ]
    names = {entry.name for entry in base}
    return archive(
        *(given.pop(entry.name, entry) for entry in base),
        *(part for name, part in given.items() if name not in names),
    )


def roster_rows(count: int) -> str:
    """A header and `count` member rows as inline strings (no shared-string table needed)."""

    def row(number: int, cells: list[str]) -> str:
        inline = "".join(f'<c t="inlineStr"><is><t>{cell}</t></is></c>' for cell in cells)
        return f'<row r="{number}">{inline}</row>'

    header = row(1, ["団員番号", "氏名", "階級", "電話番号"])
    return header + "".join(
        row(n + 1, [f"A{n:05d}", f"消防　太郎{n}", "団員", f"090-0000-{n % 10000:04d}"])
        for n in range(1, count + 1)
    )


# -- the bombs of the issue, and their relatives ---------------------------------------------------


def shared_string_bomb() -> bytes:
    """One shared string of 300 MB in a ~300 KB workbook."""
    strings = repeated(
        STRINGS, f'<sst xmlns="{MAIN}"><si><t>'.encode(), b"A" * MIB, 300, b"</t></si></sst>"
    )
    return workbook(strings, sheet=sheet_xml('<row r="1"><c t="s"><v>0</v></c></row>'))


def wide_row_bomb(cells: int = 2_000_000) -> bytes:
    """One row of two million valued cells, deflated to ~60 KB."""
    piece = b"<c><v>1</v></c>" * 4096
    head = f'<worksheet xmlns="{MAIN}"><sheetData><row r="1">'.encode()
    return workbook(repeated(SHEET, head, piece, cells // 4096, b"</row></sheetData></worksheet>"))


def ratio_bomb() -> bytes:
    """A part that is 64 MB of nothing, deflated 1,000 to 1."""
    return workbook(repeated("docProps/app.xml", b"<Properties>", b" " * MIB, 63, b"</Properties>"))


def lying_header_bomb() -> bytes:
    """A sheet whose headers declare 4 KB and whose stream inflates to 100 MB."""
    head = f'<worksheet xmlns="{MAIN}"><sheetData>'.encode()
    entry = repeated(SHEET, head, b" " * MIB, 100, b"</sheetData></worksheet>")
    return workbook(Entry(SHEET, entry.data, 4096))


def dimension_bomb() -> bytes:
    """One cell and a declared size of A1:XFD1048576: openpyxl pads the sheet to it, 1,048,576
    rows of 16,384 cells."""
    return workbook(
        sheet=sheet_xml(
            '<row r="1"><c r="A1"><v>1</v></c></row>', head='<dimension ref="A1:XFD1048576"/>'
        )
    )


def million_column_csv(columns: int = 1_000_000) -> bytes:
    """A header of a million unknown columns: 1 MB of commas."""
    return b"," * (columns - 1) + b"\r\n"
