"""Normalising and checking Japanese input (services/validation.py)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services import validation as v

FULL_WIDTH = str.maketrans("0123456789-", "０１２３４５６７８９－")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("09012345678", "090-1234-5678"),
        ("090-1234-5678", "090-1234-5678"),
        ("０９０－１２３４－５６７８", "090-1234-5678"),  # full-width digits and hyphen
        ("０９０１２３４５６７８", "090-1234-5678"),
        ("080 1234 5678", "080-1234-5678"),
        ("080　1234　5678", "080-1234-5678"),  # full-width spaces
        ("070(1234)5678", "070-1234-5678"),
        ("０７０（１２３４）５６７８", "070-1234-5678"),
        ("090ー1234ー5678", "090-1234-5678"),  # the long-vowel mark typed as a hyphen
        ("090‐1234‐5678", "090-1234-5678"),  # U+2010 hyphen
        ("05012345678", "050-1234-5678"),
        ("  090-1234-5678  ", "090-1234-5678"),
        ("03-1234-5678", "03-1234-5678"),  # landlines keep the caller's grouping
        ("０３－１２３４－５６７８", "03-1234-5678"),
        ("(03) 1234-5678", "03-1234-5678"),
        ("0312345678", "0312345678"),
        ("0263-12-3456", "0263-12-3456"),
        ("0120-123-456", "0120-123-456"),
        ("", ""),
        (None, ""),
    ],
)
def test_normalise_phone(raw, expected):
    assert v.normalise_phone(raw) == expected


@pytest.mark.parametrize(
    "phone",
    [
        "090-1234-5678",
        "080-1234-5678",
        "070-1234-5678",
        "050-1234-5678",
        "0800-123-4567",
        "03-1234-5678",
        "06-1234-5678",
        "0263-12-3456",
        "01564-2-1234",
        "0120-123-456",
        "０３－１２３４－５６７８",
    ],
)
def test_japanese_numbers_are_phones(phone):
    assert v.is_phone(v.normalise_phone(phone))


@pytest.mark.parametrize(
    "phone",
    [
        "",
        "12345",
        "1234567890",  # no leading 0
        "090-1234-567",  # mobile with 10 digits
        "090-1234-56789",  # 12 digits
        "03-1234-56789",  # landline with 11 digits
        "03-123-4567",  # landline with 9 digits
        "010-1-212-555-0100",  # international call prefix
        "00-1234-5678",
        "+81 90-1234-5678",
        "090-1234-567a",
        "0٩0١٢٣٤٥٦٧٨",  # Arabic-Indic digits are digits to str.isdigit, not to a phone
        "٠٩٠١٢٣٤٥٦٧٨",
        "電話番号",
    ],
)
def test_other_strings_are_not_phones(phone):
    assert not v.is_phone(v.normalise_phone(phone))


separators = st.sampled_from(["", "-", " ", "－", "　", "ー", "‐"])


@given(
    prefix=st.sampled_from(["070", "080", "090"]),
    rest=st.text(alphabet="0123456789", min_size=8, max_size=8),
    sep=separators,
    full_width=st.booleans(),
)
def test_any_mobile_number_normalises_to_3_4_4(prefix, rest, sep, full_width):
    raw = f"{prefix}{sep}{rest[:4]}{sep}{rest[4:]}"
    if full_width:
        raw = raw.translate(FULL_WIDTH)
    normalised = v.normalise_phone(raw)
    assert normalised == f"{prefix}-{rest[:4]}-{rest[4:]}"
    assert v.is_phone(normalised)
    assert v.phone_digits(raw) == prefix + rest


@given(
    area=st.sampled_from(["3", "6", "11", "263", "4992"]),
    first=st.sampled_from("23456789"),  # local numbers never start with 0 or 1
    rest=st.text(alphabet="0123456789", min_size=8, max_size=8),
    sep=separators,
)
def test_any_ten_digit_landline_is_a_phone(area, first, rest, sep):
    local = (first + rest)[: 9 - len(area)]
    raw = f"0{area}{sep}{local[:-4]}{sep}{local[-4:]}"
    assert len(v.phone_digits(raw)) == 10
    assert v.is_phone(v.normalise_phone(raw))
    assert not v.is_phone(v.normalise_phone(raw + "1"))


def test_phone_digits():
    assert v.phone_digits("０９０（１２３４）５６７８") == "09012345678"
    assert v.phone_digits(None) == ""


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("しょうぼう　たろう", "ショウボウ　タロウ"),
        ("ショウボウ タロウ", "ショウボウ　タロウ"),  # ASCII space becomes full-width
        ("ｼｮｳﾎﾞｳ ﾀﾛｳ", "ショウボウ　タロウ"),  # half-width katakana, voiced marks joined
        ("ゔぁいおりん", "ヴァイオリン"),
        ("すずき  いちろう", "スズキ　イチロウ"),  # runs of spaces collapse
        ("  たなか  ", "タナカ"),
        ("まりー・あんとわねっと", "マリー・アントワネット"),
        ("", ""),
        (None, ""),
    ],
)
def test_normalise_kana(raw, expected):
    assert v.normalise_kana(raw) == expected
    assert v.is_kana(v.normalise_kana(raw))


def test_to_katakana_leaves_other_characters():
    assert v.to_katakana("たなかTaro田中ー") == "タナカTaro田中ー"


@pytest.mark.parametrize("text", ["Tanaka", "田中", "たなか", "タナカ1", "タナカ@"])
def test_is_kana_rejects_non_katakana(text):
    assert not v.is_kana(text)


@given(st.text(alphabet=st.characters(min_codepoint=0x3041, max_codepoint=0x3096), max_size=30))
def test_any_hiragana_becomes_valid_katakana(text):
    kana = v.normalise_kana(text)
    assert v.is_kana(kana)
    assert len(kana) == len(text)
    assert not any("ぁ" <= c <= "ゖ" for c in kana)


@pytest.mark.parametrize(
    "email",
    [
        "taro@example.jp",
        "taro.yamada+fire@mail.example.co.jp",
        "ｔａｒｏ＠ｅｘａｍｐｌｅ．ｊｐ",  # full-width, normalised by clean()
    ],
)
def test_valid_emails(email):
    assert v.is_email(v.clean(email))


@pytest.mark.parametrize(
    "email",
    [
        "",
        "taro",
        "taro@",
        "@example.jp",
        "taro@example",
        "taro@@example.jp",
        "taro@exa mple.jp",
        "taro yamada@example.jp",
        "taro@example.",
        "a@b." + "c" * 251,  # longer than 254
    ],
)
def test_invalid_emails(email):
    assert not v.is_email(v.clean(email))


def test_clean_text_keeps_what_was_written():
    assert v.clean_text("  髙橋　①子  ") == "髙橋　①子"
    assert v.clean_text("ﾀｶﾊｼ 髙") == "タカハシ 髙"
    assert v.clean_text(None) == ""


def test_clean_normalises_codes():
    assert v.clean(" Ｔ－００１ ") == "T-001"
    assert v.is_code("T-001_a")
    assert not v.is_code("T 001")
    assert not v.is_code("団001")


def test_search_key():
    assert v.search_key("やまだ　はなこ") == v.search_key("ﾔﾏﾀﾞ ﾊﾅｺ") == "ヤマダハナコ"
    assert v.search_key("Ｔ００１") == "t001"
