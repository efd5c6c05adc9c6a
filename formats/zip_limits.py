"""What a ZIP upload (an XLSX workbook, a backup) may hold, checked from its directory before
any entry is inflated (#16). Each check returns a Japanese sentence, or "" when the archive
passes; the readers raise their own error with it.

Reading stays bounded after these checks too: zipfile (and pyzipper, its fork) stops a stored
or deflated entry at the size its directory declares and then checks the CRC, so an entry whose
stream inflates past its header is cut off and refused as damaged, never read on."""

from __future__ import annotations

import zipfile
from collections.abc import Sequence
from typing import Protocol

# zipfile turns every central-directory entry into a ZipInfo (~600 bytes) before anyone sees
# the list: a 17 MB upload of 200,000 empty entries took 116 MB and 1.7 s. Each entry starts
# with this signature, and zipfile refuses one that does not, so counting it in the raw bytes
# bounds the entries before zipfile parses them.
DIRECTORY_ENTRY = b"PK\x01\x02"
# Apache POI's default (ZipSecureFile.MIN_INFLATE_RATIO = 0.01): real workbooks and CSV files
# deflate 3 to 20 times; 100 leaves room for sheets of empty styled cells.
MAX_RATIO = 100
# Below this an entry cannot hurt whatever its ratio, and tiny XML parts compress extremely well.
RATIO_GRACE_BYTES = 1024 * 1024
# bzip2 and LZMA entries are inflated a whole input block at a time, not in bounded chunks:
# 342 bytes of bzip2 became 300 MB in one read of 4 KB. Excel and our backups only deflate.
COMPRESSIONS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)
NAME_SHOWN = 40


class Entry(Protocol):
    """zipfile.ZipInfo, or pyzipper's."""

    filename: str
    file_size: int
    compress_size: int
    compress_type: int


def count_problem(data: bytes, max_entries: int) -> str:
    """Too many directory entries, counted before zipfile builds them."""
    if (count := data.count(DIRECTORY_ENTRY)) > max_entries:
        return f"ZIPに含まれるファイルが多すぎます（{count:,}個、{max_entries:,}個まで）。"
    return ""


def entry_problem(entries: Sequence[Entry], *, max_entry_bytes: int, max_total_bytes: int) -> str:
    """Sizes as the directory declares them, each entry's compression method and ratio, and
    names used twice (a reader would see one entry and the checks the other)."""
    names = [entry.filename for entry in entries]
    if len(set(names)) != len(names):
        return "ZIPに同じ名前のファイルが複数あります。"
    for entry in entries:
        if entry.compress_type not in COMPRESSIONS:
            return f"対応していない圧縮方式のファイル（{shown(entry.filename)}）が含まれています。"
        if entry.file_size > max_entry_bytes:
            return (
                f"展開後のサイズが大きすぎます（{shown(entry.filename)}が "
                f"{megabytes(entry.file_size)}、{megabytes(max_entry_bytes)}まで）。"
            )
        if entry.file_size > RATIO_GRACE_BYTES and entry.file_size > MAX_RATIO * max(
            entry.compress_size, 1
        ):
            return (
                f"圧縮率が異常に高いファイル（{shown(entry.filename)}）が含まれています"
                f"（{MAX_RATIO}倍まで）。ZIP爆弾の疑いがあるため読み込みません。"
            )
    if (total := sum(entry.file_size for entry in entries)) > max_total_bytes:
        return (
            f"展開後のサイズが大きすぎます（合計 {megabytes(total)}、"
            f"{megabytes(max_total_bytes)}まで）。"
        )
    return ""


def shown(name: str) -> str:
    """An entry name for a message: the sender chose it, so its length is bounded."""
    return f"「{name[:NAME_SHOWN]}{'…' if len(name) > NAME_SHOWN else ''}」"


def megabytes(size: int) -> str:
    return f"{size / 1_048_576:,.1f}MB"
