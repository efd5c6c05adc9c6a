"""Normalising and checking Japanese input. Messages are Japanese and name the field."""

from __future__ import annotations

import re
import unicodedata

_KANA = re.compile(r"^[\u30A0-\u30FF\u3000 ・ー]*$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_CODE = re.compile(r"^[A-Za-z0-9_-]+$")
_PHONE_SEPARATORS = re.compile(r"[\s\-()（）‐－ー]")


_HALF_WIDTH_KANA = re.compile(r"[\uFF61-\uFF9F]+")
# C0/C1 controls (NUL among them: PostgreSQL refuses it in text), DEL, the Unicode line and
# paragraph separators, and lone surrogates (not encodable as UTF-8).
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
_MULTILINE_ALLOWED = "\t\n\r"


def clean(text: str | None) -> str:
    """NFKC (full-width letters and digits become ASCII), trimmed: for codes, numbers, labels."""
    return unicodedata.normalize("NFKC", text or "").strip()


def clean_text(text: str | None) -> str:
    """Trimmed, half-width kana made full-width, every other character kept as written
    (names keep 髙, ①, and the full-width space)."""
    return _HALF_WIDTH_KANA.sub(
        lambda m: unicodedata.normalize("NFKC", m.group()), text or ""
    ).strip()


def has_control_chars(text: str | None, *, multiline: bool = False) -> bool:
    """Whether text holds a control character; a multi-line field may keep tab, CR and LF."""
    if not text or not _CONTROL.search(text):  # the usual case, without a scan of matches
        return False
    return any(
        not (multiline and found.group() in _MULTILINE_ALLOWED) for found in _CONTROL.finditer(text)
    )


def control_chars_message(label: str) -> str:
    return f"{label}に使用できない文字（制御文字など）が含まれています。"


def to_katakana(text: str) -> str:
    return "".join(chr(ord(c) + 0x60) if "ぁ" <= c <= "ゖ" else c for c in text)


def normalise_kana(text: str | None) -> str:
    kana = to_katakana(clean(text))
    return re.sub(r"\s+", "　", kana)


def is_kana(text: str) -> bool:
    return bool(_KANA.match(text))


def phone_digits(text: str | None) -> str:
    return _PHONE_SEPARATORS.sub("", clean(text))


def normalise_phone(text: str | None) -> str:
    """Japanese numbers: 0 then 9 or 10 digits. Mobiles and 050 are shown as 3-4-4."""
    digits = phone_digits(text)
    if len(digits) == 11 and digits[:3] in {"050", "070", "080", "090"}:
        return f"{digits[:3]}-{digits[3:7]}-{digits[7:]}"
    separated = re.sub(r"[\s()（）‐－ー]+", "-", clean(text)).strip("-")
    return separated


# Mobile (070/080/090), IP (050), M2M (020), FMC (060) and 0800 numbers have 11 digits; landlines
# and the other 0AB0 services (0120, 0570) have 10. "00" starts an international call.
_ELEVEN_DIGIT_PREFIXES = ("020", "050", "060", "070", "080", "090")


def is_phone(text: str) -> bool:
    digits = phone_digits(text)
    if not (digits.isascii() and digits.isdigit()) or not digits.startswith("0"):
        return False
    if digits.startswith("00"):
        return False
    return len(digits) == (11 if digits.startswith(_ELEVEN_DIGIT_PREFIXES) else 10)


def is_email(text: str) -> bool:
    return bool(_EMAIL.match(text)) and len(text) <= 254


def is_code(text: str) -> bool:
    return bool(_CODE.match(text))


def search_key(text: str) -> str:
    """Form used to compare a search term with names and readings."""
    return to_katakana(clean(text)).replace(" ", "").replace("　", "").lower()
