"""The A4 registration sheet: self-contained, escaped, printable, with a scannable QR code."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import segno

from formats.registration_sheet import registration_sheet_html

URL = "https://hikeshi.example.jp/auth/line/login?uid=ABCDEFGH"


def sheet(**overrides: object) -> str:
    values: dict[str, object] = {
        "brigade": "デモ市消防団",
        "member_name": "消防 太郎",
        "member_code": "T-001",
        "user_id": "ABCD-EFGH",
        "code": "K7QX-M2PA-9RTD",
        "url": URL,
        "expires_at": datetime(2026, 12, 10, 14, 59, tzinfo=UTC),
    }
    values.update(overrides)
    return registration_sheet_html(**values)


def test_sheet_carries_everything_the_member_needs():
    html = sheet()

    for text in ("デモ市消防団", "消防 太郎", "T-001", "ABCD-EFGH", "K7QX-M2PA-9RTD", URL):
        assert text in html
    assert "2026-12-10 23:59（日本時間）" in html
    assert "@page { size: A4 portrait" in html
    assert '<html lang="ja">' in html


def test_qr_code_is_inline_svg_of_the_url():
    html = sheet()

    expected = segno.make(URL, error="m").svg_inline(border=2, omitsize=True)
    assert expected in html


def test_sheet_loads_nothing_and_runs_nothing():
    html = sheet()

    assert "<script" not in html.lower() and "onclick" not in html.lower()
    assert not re.search(r"""(src|href)\s*=\s*["']?https?:""", html)
    assert "@import" not in html and "url(" not in html


def test_values_are_escaped():
    html = sheet(member_name="<img src=x onerror=alert(1)>", brigade="A&B消防団")

    assert "<img" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html and "A&amp;B消防団" in html
