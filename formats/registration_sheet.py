"""The A4 registration sheet (LINE連携 登録のご案内): self-contained HTML with an inline SVG QR
code and print CSS, handed to a member at a meeting; one sheet, or one file with a page per
member for a 一括発行 (#18). No scripts, no external resources."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from html import escape

import segno

from core.timefmt import to_jst

STYLE = """
@page { size: A4 portrait; margin: 18mm; }
* { box-sizing: border-box; }
body { font-family: "Hiragino Kaku Gothic ProN", "Yu Gothic", "Noto Sans JP", "Meiryo", sans-serif;
  color: #111; margin: 0 auto; max-width: 174mm; line-height: 1.6; }
h1 { font-size: 20pt; margin: 0 0 2mm; border-bottom: 2px solid #c62828; padding-bottom: 2mm; }
.brigade { font-size: 13pt; margin: 0 0 6mm; }
table { border-collapse: collapse; width: 100%; margin: 4mm 0 6mm; }
th, td { border: 1px solid #888; padding: 3mm 4mm; text-align: left; vertical-align: middle; }
th { background: #f3f3f3; width: 34%; font-weight: normal; }
.code { font-family: "DejaVu Sans Mono", "Consolas", monospace; font-size: 18pt;
  letter-spacing: .12em; font-weight: bold; }
.qr { text-align: center; margin: 4mm 0; }
.qr svg { width: 45mm; height: 45mm; }
.url { font-family: monospace; font-size: 9.5pt; word-break: break-all; }
ol { padding-left: 6mm; }
.note { font-size: 9.5pt; border-top: 1px dashed #888; padding-top: 3mm; margin-top: 6mm; }
.sheet { break-after: page; page-break-after: always; break-inside: avoid; }
.sheet:last-of-type { break-after: auto; page-break-after: auto; }
.howto { border: 1px solid #c62828; padding: 3mm 4mm; margin: 0 0 6mm; }
@media print { .noprint { display: none; } }
"""


@dataclass(frozen=True)
class RegistrationSheet:
    """What one member's sheet says."""

    member_name: str
    member_code: str
    user_id: str
    code: str
    url: str
    expires_at: datetime
    affiliation: str = ""


def registration_sheet_html(
    *,
    brigade: str,
    member_name: str,
    member_code: str,
    user_id: str,
    code: str,
    url: str,
    expires_at: datetime,
    affiliation: str = "",
) -> str:
    sheet = RegistrationSheet(member_name, member_code, user_id, code, url, expires_at, affiliation)
    howto = '<p class="noprint">ブラウザの印刷機能で、A4用紙に印刷してください。</p>'
    return _document(f"LINE連携 登録のご案内 - {member_name}", brigade, [sheet], howto)


def registration_sheets_html(brigade: str, sheets: Sequence[RegistrationSheet]) -> str:
    """One file, one A4 page per member, in the order given."""
    howto = (
        '<div class="howto noprint"><p>このファイルには'
        f"{len(sheets)}名分の登録用紙が入っています（1名につきA4用紙1枚）。</p>"
        "<p>ブラウザの印刷機能（Ctrl+P、Macは⌘+P）で、用紙サイズ「A4」・向き「縦」を選んで"
        "印刷してください。この案内は印刷されません。</p></div>"
    )
    return _document(f"LINE連携 登録のご案内（{len(sheets)}名分）", brigade, sheets, howto)


def _document(title: str, brigade: str, sheets: Sequence[RegistrationSheet], howto: str) -> str:
    pages = "\n".join(_sheet(brigade, sheet) for sheet in sheets)
    return f"""<!DOCTYPE html>
<html lang="ja">
<head>
<meta charset="utf-8">
<title>{escape(title)}</title>
<style>{STYLE}</style>
</head>
<body>
{howto}
{pages}
</body>
</html>
"""


def _sheet(brigade: str, sheet: RegistrationSheet) -> str:
    qr = segno.make(sheet.url, error="m").svg_inline(border=2, omitsize=True)
    e = escape
    unit = f"（{e(sheet.affiliation)}）" if sheet.affiliation else ""
    return f"""<section class="sheet">
<h1>LINE連携 登録のご案内</h1>
<p class="brigade">{e(brigade)}{unit}</p>
<p>{e(sheet.member_name)} 様（団員番号 {e(sheet.member_code)}）</p>
<p>団のシステム「火消し」を、お手持ちのLINEアカウントでご利用いただくための登録用紙です。\
次の手順で登録してください。</p>
<ol>
  <li>下のQRコードをスマートフォンで読み取るか、URLを開きます。</li>
  <li>「LINEでログイン」を行い、LINEの画面で許可します。</li>
  <li>表示された画面で、ユーザIDと登録コードを入力します。</li>
</ol>
<div class="qr">{qr}</div>
<table>
  <tr><th>URL</th><td class="url">{e(sheet.url)}</td></tr>
  <tr><th>ユーザID</th><td class="code">{e(sheet.user_id)}</td></tr>
  <tr><th>登録コード</th><td class="code">{e(sheet.code)}</td></tr>
  <tr><th>有効期限</th><td>{e(to_jst(sheet.expires_at))}（日本時間）</td></tr>
</table>
<p class="note">登録コードは一度だけ使えます。他の人に見せたり渡したりしないでください。\
有効期限が切れたとき、入力を続けて間違えたとき、この用紙をなくしたときは、\
団の管理者に再発行を依頼してください。登録が済んだら、この用紙は細かく破って処分してください。</p>
</section>"""
