"""The A4 registration sheet: self-contained, escaped, printable, with a scannable QR code."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import segno

from formats.registration_sheet import (
    RegistrationSheet,
    registration_sheet_html,
    registration_sheets_html,
)

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


# ---------------------------------------------------------------------------
# 一括発行: one file, one A4 page per member


def batch(count: int, **overrides: object) -> list[RegistrationSheet]:
    return [
        RegistrationSheet(
            **{
                "member_name": f"消防 太郎{n}",
                "member_code": f"T-{n:03d}",
                "user_id": f"ABCD-EF{n:02d}",
                "code": f"K7QX-M2PA-9R{n:02d}",
                "url": f"{URL[:-2]}{n:02d}",
                "expires_at": datetime(2026, 12, 10, 14, 59, tzinfo=UTC),
                "affiliation": "第1分団",
                **overrides,
            }
        )
        for n in range(count)
    ]


def test_one_sheet_per_member_with_a_page_break_between():
    sheets = batch(3)

    html = registration_sheets_html("デモ市消防団", sheets)

    assert html.count('<section class="sheet">') == 3
    assert html.count("<html") == 1 and "3名分" in html
    assert ".sheet { break-after: page; page-break-after: always;" in html
    assert ".sheet:last-of-type { break-after: auto;" in html
    for sheet in sheets:
        qr = segno.make(sheet.url, error="m").svg_inline(border=2, omitsize=True)
        assert qr in html
        for text in (sheet.member_name, sheet.member_code, sheet.user_id, sheet.code, sheet.url):
            assert text in html
    assert html.count("2026-12-10 23:59（日本時間）") == 3
    assert html.count("デモ市消防団（第1分団）") == 3
    assert html.index("T-000") < html.index("T-001") < html.index("T-002")


def test_batch_instructions_do_not_print():
    html = registration_sheets_html("デモ市消防団", batch(1))

    assert '<div class="howto noprint">' in html and "A4" in html
    assert "@media print { .noprint { display: none; } }" in html


def test_batch_values_are_escaped():
    html = registration_sheets_html(
        "A&B消防団", batch(2, member_name="<script>x</script>", affiliation='"><b>')
    )

    assert "<script" not in html.lower() and "<b>" not in html
    assert "&lt;script&gt;x&lt;/script&gt;" in html and "A&amp;B消防団" in html
    assert "&quot;&gt;&lt;b&gt;" in html


def test_batch_loads_nothing_and_runs_nothing():
    html = registration_sheets_html("デモ市消防団", batch(2))

    assert "<script" not in html.lower() and "onclick" not in html.lower()
    assert not re.search(r"""(src|href)\s*=\s*["']?https?:""", html)
