"""The one file uploader of the pages, in Japanese with its real size limit.

Streamlit 1.67's dropzone writes its button ("Upload") and its line ("10MB per file • CSV") in
English and offers no way to change them; `max_upload_size` at least makes the limit the real
one (a member CSV's 10 MB, not the server's 200 MB). The English words are replaced in CSS, per
widget (Streamlit gives each keyed widget the class st-key-<key>): the text is hidden and the
Japanese one drawn in its place. The file chooser the button opens is the browser's own."""

from __future__ import annotations

import re

import streamlit as st
from streamlit.runtime.uploaded_file_manager import UploadedFile

MEGABYTE = 1024 * 1024


def limit_text(max_bytes: int, types: list[str]) -> str:
    """「1ファイル 10MB まで（CSV・XLSX）」."""
    size = f"{max_bytes / MEGABYTE:g}MB"
    kinds = "・".join(t.upper() for t in types)
    return f"1ファイル {size} まで" + (f"（{kinds}）" if kinds else "")


def _css(key: str, limit: str) -> str:
    scope = f".st-key-{re.sub(r'[^A-Za-z0-9_-]', '-', key)} [data-testid='stFileUploaderDropzone']"
    return (
        "<style>"
        f"{scope} button {{font-size:0}}"
        f"{scope} button * {{display:none}}"
        f'{scope} button::after {{content:"ファイルを選択";font-size:.9rem}}'
        f"{scope} [data-testid='stFileUploaderDropzoneInstructions'] * {{display:none}}"
        f"{scope} [data-testid='stFileUploaderDropzoneInstructions']::after"
        f' {{content:"{limit}";font-size:.8rem;opacity:.7}}'
        "</style>"
    )


def file_input(label: str, types: list[str], *, key: str, max_bytes: int) -> UploadedFile | None:
    """st.file_uploader with the real limit, and its dropzone's words in Japanese."""
    st.html(_css(key, limit_text(max_bytes, types)))
    return st.file_uploader(
        label,
        type=types,
        key=key,
        max_upload_size=max(1, -(-max_bytes // MEGABYTE)),
        help=limit_text(max_bytes, types)
        + "。ここにファイルをドラッグ＆ドロップすることもできます。",
    )
