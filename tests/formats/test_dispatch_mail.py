"""Dispatch mail: decoding every charset a 消防本部 sends (fixtures written byte by byte by
tests/fixtures/dispatch/generate.py), the two example profiles, follow-ups, and the promise that
nothing raises and nothing is replaced without a problem line."""

from __future__ import annotations

import base64
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from formats.dispatch_mail import (
    MAX_BODY_CHARS,
    DecodedMail,
    DecodeStatus,
    MailAttachment,
    canonical_charset,
    decode_cp50220,
    decode_mail,
    encode_cp50220,
)
from formats.dispatch_profile import (
    BRACKET,
    EXAMPLE_PROFILES,
    TERSE,
    FollowUp,
    ParsedDispatch,
    ParserProfile,
    ProfileError,
    parse_dispatch,
    sample_dispatch_mail,
)
from tests.fixtures.dispatch import generate

FIXTURES = Path(generate.__file__).parent


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def decoded(name: str) -> DecodedMail:
    return decode_mail(fixture(name))


def parsed(name: str, profile: ParserProfile) -> ParsedDispatch:
    return parse_dispatch(decoded(name), profile)


def jst(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC) - timedelta(hours=9)


def test_fixtures_are_what_the_generator_writes() -> None:
    names = {path.name for path in FIXTURES.glob("*.eml")}
    assert names == set(generate.FIXTURES)
    for name, build in generate.FIXTURES.items():
        assert fixture(name) == build(), name


# --- Charsets --------------------------------------------------------------------------------------


def test_iso_2022_jp_label_carrying_cp50220_characters_decodes_them() -> None:
    raw = fixture("iso2022jp_cp50220_dispatch.eml")
    assert generate.CIRCLED_ONE in raw and generate.TAKA in raw
    mail = decode_mail(raw)
    assert "目標物　：髙橋商店　東側" in mail.body
    assert "①北側の市道は通行止めです。" in mail.body
    assert "\ufffd" not in mail.body
    assert mail.subject == "【出動指令】建物火災　髙橋商店付近"  # split inside a JIS run
    assert (mail.charset_declared, mail.charset_used) == ("ISO-2022-JP", "CP50220")
    assert mail.decode_status == DecodeStatus.FALLBACK
    assert mail.decode_status.label == "代替文字コードで復号"
    assert mail.problems == (
        "本文の文字コード ISO-2022-JP で復号できず CP50220 で復号しました",
        "件名の文字コード ISO-2022-JP で復号できず CP50220 で復号しました",
    )


def test_headers() -> None:
    mail = decoded("iso2022jp_cp50220_dispatch.eml")
    assert mail.header_from == "shirei@fd.example.lg.jp"
    assert mail.from_name == "〇〇市消防本部"
    assert mail.to == ("dispatch-7f3a@hikeshi.example",)
    assert mail.date == jst(2026, 5, 3, 14, 6, 30)
    assert mail.message_id == "<20260503.0001@fd.example.lg.jp>"
    assert mail.attachments == ()


def test_shift_jis_label_carrying_cp932_characters_decodes_them() -> None:
    mail = decoded("sjis_cp932_dispatch.eml")
    assert "目標 髙田商店前" in mail.body
    assert "①消火栓は東側（～50m）を使用" in mail.body
    assert (mail.charset_declared, mail.charset_used) == ("Shift_JIS", "CP932")
    assert mail.decode_status == DecodeStatus.FALLBACK
    assert mail.problems == ("本文の文字コード Shift_JIS で復号できず CP932 で復号しました",)
    assert mail.subject == "出動指令" and mail.from_name == "〇〇市消防本部"


def test_plain_shift_jis_is_decoded_as_declared() -> None:
    mail = decoded("sjis_map.eml")
    assert (mail.charset_used, mail.decode_status, mail.problems) == ("Shift_JIS", "ok", ())
    assert mail.decode_status.label == "正常"


def test_utf8_base64() -> None:
    mail = decoded("utf8_base64_request.eml")
    assert mail.subject == "【出動要請】建物火災"
    assert mail.body.splitlines()[-1] == "出動分団：第２分団、第４分団"
    assert (mail.charset_used, mail.decode_status, mail.problems) == ("UTF-8", "ok", ())


def test_utf8_quoted_printable_and_q_encoded_subject() -> None:
    mail = decoded("utf8_qp_suppressed.eml")
    assert mail.subject == "【鎮圧】建物火災"
    assert mail.body == (
        "【鎮圧】\n事案番号：０５０３－００１２\n発生場所：〇〇市住吉町３丁目１２番付近\n"
        "１４時５０分に鎮圧しました。\n"
    )
    assert mail.decode_status == DecodeStatus.OK


def test_html_only_mail_becomes_readable_text() -> None:
    mail = decoded("html_only_extinguished.eml")
    assert mail.body.splitlines() == [
        "【鎮火】",
        "事案番号： ０５０３−００１２",
        "発生場所： 〇〇市住吉町３丁目１２番付近",
        "鎮火時刻： １５時４０分",
        "地図はこちら ( https://map.example.jp/fire?id=0503-0012&z=17 ) です。",
    ]
    assert mail.problems == ("HTMLだけのメールのため、HTMLから取り出した文字を本文としました",)
    assert mail.decode_status == DecodeStatus.OK


def test_multipart_with_a_pdf_attachment() -> None:
    mail = decoded("multipart_pdf.eml")
    assert mail.attachments == (MailAttachment("指令書.pdf", "application/pdf", len(generate.PDF)),)
    assert mail.body.startswith("【出動指令】\n事案番号")
    assert "PDF" not in mail.body
    assert (mail.charset_used, mail.decode_status) == ("ISO-2022-JP", "ok")


def test_undecodable_body_is_replaced_and_says_so() -> None:
    mail = decoded("undecodable.eml")
    assert mail.decode_status == DecodeStatus.REPLACED
    assert mail.decode_status.label == "一部復号不能"
    assert mail.body.count("\ufffd") == 4
    assert "災害種別：建物火災" in mail.body and "以上" in mail.body
    assert mail.problems == (
        "本文はどの文字コードでも正しく復号できません。ISO-2022-JP で復号しました。"
        "読めない 4 箇所を「\ufffd」に置き換えました",
    )


def test_one_damaged_byte_in_a_long_text_is_replaced_not_read_in_another_charset() -> None:
    text = "災害種別：建物火災\n発生場所：住吉町３丁目付近\n" * 10
    data = text.encode()
    at = data.index(b"\n") + 1
    damaged = data[:at] + b"\xff" + data[at:]
    raw = b"Content-Type: text/plain; charset=utf-8\r\n\r\n" + damaged
    mail = decode_mail(raw)
    assert mail.decode_status == DecodeStatus.REPLACED
    assert mail.body.replace("\ufffd", "") == text
    assert mail.problems[0] == (
        "本文の文字コード UTF-8 で復号できない箇所があります。読めない 1 箇所を「\ufffd」に置き換えました"
    )
    # the same text under a wrong label is many failures: read in the charset that fits
    mislabelled = b"Content-Type: text/plain; charset=utf-8\r\n\r\n" + text.encode("cp932")
    assert decode_mail(mislabelled).body == text


def test_a_mail_without_a_text_part_is_empty() -> None:
    raw = b"From: a@b.jp\r\nContent-Type: application/pdf\r\n\r\n%PDF-1.4\r\n"
    mail = decode_mail(raw)
    assert (mail.body, mail.decode_status, mail.charset_used) == ("", "empty", None)
    assert mail.decode_status.label == "本文なし"
    assert mail.attachments == (MailAttachment("", "application/pdf", 10),)
    assert "本文がありません" in mail.problems
    assert "Date ヘッダーがありません" in mail.problems


def test_charset_override() -> None:
    raw = fixture("sjis_cp932_dispatch.eml")
    mail = decode_mail(raw, charset_override="windows-31j")
    assert (mail.charset_used, mail.decode_status) == ("CP932", "ok")
    assert mail.problems == ("設定により本文を CP932 として復号しました",)
    unknown = decode_mail(raw, charset_override="x-klingon")
    assert unknown.charset_used == "CP932"
    assert "設定された文字コード x-klingon には対応していないため使いません" in unknown.problems


def test_charset_labels() -> None:
    for label, name in [
        ("ISO-2022-JP", "ISO-2022-JP"),
        ("iso2022_jp", "ISO-2022-JP"),
        ("CP50220", "CP50220"),
        ('"Shift_JIS"', "Shift_JIS"),
        ("Windows-31J", "CP932"),
        ("utf8", "UTF-8"),
    ]:
        assert canonical_charset(label) == name
    assert canonical_charset("rot13") is None  # a label never picks an arbitrary codec
    assert canonical_charset("") is None


def test_8bit_text_without_a_charset_and_a_wrong_latin1_label() -> None:
    utf8 = decode_mail("From: a@b.jp\r\n\r\n災害種別：建物火災\r\n".encode())
    assert (utf8.body, utf8.charset_used) == ("災害種別：建物火災\n", "UTF-8")
    assert utf8.problems[0] == "本文の文字コードの宣言がないため UTF-8 で復号しました"
    # latin-1 decodes any byte, but CP932 bytes come out as C1 controls: not accepted
    latin = b"Content-Type: text/plain; charset=iso-8859-1\r\n\r\n" + "①髙".encode("cp932")
    mail = decode_mail(latin)
    assert (mail.body, mail.charset_used) == ("①髙", "CP932")


def test_unknown_declared_charset() -> None:
    mail = decode_mail("Content-Type: text/plain; charset=x-mac-japanese\r\n\r\n鎮火".encode())
    assert mail.body == "鎮火" and mail.decode_status == DecodeStatus.FALLBACK
    assert mail.problems[0] == "本文の文字コード x-mac-japanese には対応していません"


def b64(charset: str, data: bytes) -> str:
    return f"=?{charset}?B?{base64.b64encode(data).decode()}?="


SPLIT = "【出動】".encode()


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        # a UTF-8 character split across two encoded words
        (f"{b64('UTF-8', SPLIT[:4])} {b64('utf-8', SPLIT[4:])}", "【出動】"),
        ("=?utf-8?q?=E9=8E=AE=E7=81=AB_15:40?=", "鎮火 15:40"),
        (f"Re: {b64('ISO-2022-JP', '鎮火'.encode('iso2022_jp'))} (2)", "Re: 鎮火 (2)"),
        ("=?UTF-8?B?5pel5?= next", "=?UTF-8?B?5pel5?= next"),  # not base64: left as written
    ],
)
def test_rfc2047_subjects(subject: str, expected: str) -> None:
    raw = f"Subject: {subject}\r\n\r\nx".encode()
    assert decode_mail(raw).subject == expected


def test_raw_iso_2022_jp_subject_without_encoded_words() -> None:
    raw = b"Subject: " + "【鎮火】".encode("iso2022_jp") + b"\r\n\r\nx"
    mail = decode_mail(raw)
    assert mail.subject == "【鎮火】"
    assert "件名の文字コードの宣言がないため ISO-2022-JP で復号しました" in mail.problems


def test_decoded_name_with_a_comma_does_not_move_the_address() -> None:
    raw = b"From: =?UTF-8?Q?A=2C_B_=3Cx=40evil.example=3E?= <shirei@fd.example>\r\n\r\nx"
    mail = decode_mail(raw)
    assert mail.header_from == "shirei@fd.example"
    assert mail.from_name == "A, B <x@evil.example>"


def test_bounds_on_body_message_id_and_nul() -> None:
    long_body = ("災害種別：建物火災\n" * 20_000).encode()
    raw = b"Message-ID: <" + b"a" * 400 + b"@x>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
    mail = decode_mail(raw + long_body + b"\x00")
    assert len(mail.body) <= MAX_BODY_CHARS
    assert "本文が大きすぎるため先頭部分のみ扱いました" in mail.problems
    assert mail.message_id is None
    assert "Message-ID が長すぎるか不正なため使いません" in mail.problems
    assert "\x00" not in decode_mail(b"\r\nA\x00B").body


# --- CP50220 ------------------------------------------------------------------------------------------


def test_cp50220_encoder_writes_what_microsoft_writes() -> None:
    # ① is NEC row 13 (JIS 0x2D21); 髙 is written at its NEC-selected place (JIS 0x7C62)
    assert encode_cp50220("①髙") == b"\x1b$B-!|b\x1b(B"
    assert encode_cp50220("ｶﾞ a\n") == b"\x1b$B%,\x1b(B a\n"  # half-width kana widened
    assert encode_cp50220("ﾞ") == b"\x1b$B!+\x1b(B"
    for bad in ("😀", "\ue000", "\x1b"):
        with pytest.raises(UnicodeEncodeError):
            encode_cp50220(bad)


@pytest.mark.parametrize(
    ("data", "text"),
    [
        (b'\x1b$@$"\x1b(J!', "あ!"),  # JIS C 6226 and JIS Roman designations
        (b"\x1b(I1\x1b(B", "ｱ"),  # CP50221 half-width katakana
        (b"a\x0e12\x0fb", "aｱｲb"),  # CP50222 shift out / shift in
        (b'\x1b$B$"\n$"\x1b(B', "あ\nあ"),  # a line end keeps the mode, as in the stdlib
    ],
)
def test_cp50220_decoder(data: bytes, text: str) -> None:
    assert decode_cp50220(data) == text


@pytest.mark.parametrize(
    "data",
    [b"\x1b$(D!!", b"\x1b$B$", b"caf\xc3\xa9", b"\x1b$Bu!\x1b(B", b"\x1b$B$ \x1b(B"],
)
def test_cp50220_decoder_is_strict(data: bytes) -> None:
    with pytest.raises(UnicodeDecodeError):
        decode_cp50220(data)
    assert "\ufffd" in decode_cp50220(data, "replace")


def _cp932_characters() -> list[str]:
    """Double-byte characters CP932 holds one-to-one (〜 U+301C, for one, is read back as ～
    U+FF5E), half-width katakana aside (CP50220 widens them)."""
    chars = []
    for code in range(0x80, 0x10000):
        char = chr(code)
        if 0xD800 <= code <= 0xDFFF or 0xE000 <= code <= 0xF8FF or 0xFF61 <= code <= 0xFF9F:
            continue
        try:
            encoded = char.encode("cp932")
        except UnicodeError:
            continue
        if len(encoded) == 2 and encoded.decode("cp932") == char:
            chars.append(char)
    return chars


@settings(max_examples=150, deadline=None)
@given(st.text(alphabet=st.sampled_from(_cp932_characters()) | st.sampled_from(" aZ09:\n")))
def test_cp50220_round_trip(text: str) -> None:
    assert decode_cp50220(encode_cp50220(text)) == text


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=300))
def test_cp50220_decoder_on_any_bytes(data: bytes) -> None:
    replaced = decode_cp50220(data, "replace")
    try:
        assert decode_cp50220(data) == replaced
    except UnicodeDecodeError:
        assert "\ufffd" in replaced


# --- Example profile 1: 【】 layout ------------------------------------------------------------------


def test_bracket_profile_reads_a_complete_dispatch() -> None:
    result = parsed("iso2022jp_cp50220_dispatch.eml", BRACKET)
    assert result == ParsedDispatch(
        followup=FollowUp.DISPATCH,
        kind="建物火災",
        occurred_at=jst(2026, 5, 3, 14, 5),
        occurred_text="令和８年５月３日　１４時０５分頃",
        place="〇〇市住吉町3丁目12番付近",
        place_approximate=True,
        place_withheld=False,
        landmark="髙橋商店 東側",
        units=("第1分団", "第3分団"),
        unit_words=("第１分団", "第３分団"),
        reference="0503-0012",
        map_url="https://map.example.jp/fire?id=0503-0012",
        missing=(),
        normalised=(
            "発生場所: 全角英数字・記号・空白→半角",
            "覚知時刻: 全角数字→半角",
            "令和8年→2026年",
            "目標物: 全角英数字・記号・空白→半角",
            "事案番号: 全角英数字・記号・空白→半角",
        ),
        problems=(),
    )
    assert not result.needs_review


def test_bracket_profile_with_a_western_date_and_an_attachment() -> None:
    result = parsed("multipart_pdf.eml", BRACKET)
    assert (result.kind, result.landmark) == ("林野火災", "東山配水池")
    assert result.occurred_at == jst(2026, 5, 3, 17, 12)
    assert result.units == ("第4分団", "第5分団")
    assert not result.needs_review


def test_missing_fields_need_review() -> None:
    result = parsed("iso2022jp_missing_fields.eml", BRACKET)
    assert result.followup == FollowUp.DISPATCH
    assert result.missing == ("災害種別", "覚知時刻")
    assert result.needs_review
    assert result.place == "〇〇市本町1丁目地内" and result.place_approximate


def test_undecodable_mail_still_yields_what_it_can() -> None:
    result = parsed("undecodable.eml", BRACKET)
    assert result.kind == "建物火災"
    assert result.missing == ("発生場所", "覚知時刻")


@pytest.mark.parametrize(
    ("name", "followup", "units"),
    [
        ("utf8_base64_request.eml", FollowUp.REQUEST, ("第2分団", "第4分団")),
        ("utf8_qp_suppressed.eml", FollowUp.SUPPRESSED, ()),
        ("html_only_extinguished.eml", FollowUp.EXTINGUISHED, ()),
        ("iso2022jp_false_alarm.eml", FollowUp.FALSE_ALARM, ()),
        ("iso2022jp_cancelled.eml", FollowUp.CANCELLED, ()),
    ],
)
def test_bracket_follow_ups(name: str, followup: FollowUp, units: tuple[str, ...]) -> None:
    result = parsed(name, BRACKET)
    assert result.followup == followup
    assert result.units == units
    assert result.reference is not None and result.reference.startswith("0503-00")
    assert not result.needs_review


def test_follow_up_found_in_the_body_and_precedence() -> None:
    mail = decoded("utf8_qp_suppressed.eml")
    body_only = replace(mail, subject="お知らせ")
    assert parse_dispatch(body_only, BRACKET).followup == FollowUp.SUPPRESSED
    both = replace(mail, subject="【鎮圧】【鎮火】")
    assert parse_dispatch(both, BRACKET).followup == FollowUp.EXTINGUISHED


def test_html_link_gives_the_map_url() -> None:
    result = parsed("html_only_extinguished.eml", BRACKET)
    assert result.map_url == "https://map.example.jp/fire?id=0503-0012&z=17"


# --- Example profile 2: terse layout with vehicle codes -------------------------------------------


def test_terse_profile_reads_a_complete_dispatch() -> None:
    result = parsed("sjis_cp932_dispatch.eml", TERSE)
    assert result == ParsedDispatch(
        followup=FollowUp.DISPATCH,
        kind="建物火災",
        occurred_at=jst(2026, 5, 3, 14, 5),
        occurred_text="05/03 14:05",
        place="住吉町2-14 地内",
        place_approximate=True,
        place_withheld=False,
        landmark="髙田商店前",
        units=("住吉分団", "東分団"),  # 住吉団1 and 住吉団2 are one 分団; 本署1 is not ours
        unit_words=("住吉団1", "住吉団2", "東団1", "本署1"),
        reference="0512",
        map_url=None,
        missing=(),
        normalised=("発生場所: 全角英数字・記号・空白→半角",),
        problems=(),
    )


def test_terse_request_adds_units() -> None:
    result = parsed("sjis_request.eml", TERSE)
    assert result.followup == FollowUp.REQUEST
    assert result.units == ("住吉分団", "西分団")
    assert result.unit_words == ("住吉団3", "西団1")
    assert not result.needs_review


def test_map_mail_after_the_dispatch_names_the_same_incident() -> None:
    dispatch = parsed("sjis_cp932_dispatch.eml", TERSE)
    map_mail = parsed("sjis_map.eml", TERSE)
    assert map_mail.followup == FollowUp.MAP
    assert map_mail.followup.label == "災害地図"
    assert map_mail.map_url == "https://map.example.jp/m?no=0512&z=17"
    assert (map_mail.reference, map_mail.place) == (dispatch.reference, dispatch.place)
    assert not map_mail.needs_review
    no_url = replace(decoded("sjis_map.eml"), body="番号 0512\n")
    assert parse_dispatch(no_url, TERSE).missing == ("地図URL",)


def test_withheld_place_and_a_time_just_before_midnight() -> None:
    result = parsed("utf8_withheld_after_midnight.eml", TERSE)
    assert (result.place, result.place_withheld, result.place_approximate) == (None, True, False)
    # 23:58 in a mail sent at 00:03 on 5/4 is 5/3
    assert result.occurred_at == jst(2026, 5, 3, 23, 58)
    assert result.normalised == ("覚知日: 本文にないためメールの送信日時（日本時間）から判断",)
    assert result.units == ("中央分団",)
    assert not result.needs_review


# --- Dates, times and URLs --------------------------------------------------------------------------

LINE_PROFILE = ParserProfile(
    name="line",
    patterns={
        "time": r"^覚知[:：](?P<value>.+)",
        "date": r"^日付[:：](?P<value>.+)",
        "map_url": r"^地図[:：](?P<value>\S+)",
    },
)


SENT = jst(2026, 5, 3, 14, 10)


def mail_with(body: str, *, date: datetime | None = SENT) -> DecodedMail:
    return DecodedMail(None, "", "", (), date, "", body, None, None, DecodeStatus.OK, (), ())


@pytest.mark.parametrize(
    ("body", "expected", "era"),
    [
        ("覚知：令和元年５月１日　９時３分", jst(2019, 5, 1, 9, 3), "令和元年→2019年"),
        ("覚知：R8.5.3 14:05", jst(2026, 5, 3, 14, 5), "令和8年→2026年"),
        ("覚知：平成31年4月30日 午後2時5分頃", jst(2019, 4, 30, 14, 5), "平成31年→2019年"),
        ("覚知：2026/05/03 午前0時30分", jst(2026, 5, 3, 0, 30), None),
        ("日付：5月3日\n覚知：14時頃", jst(2026, 5, 3, 14, 0), None),
        ("覚知：14時05分", jst(2026, 5, 3, 14, 5), None),
    ],
)
def test_occurred_at(body: str, expected: datetime, era: str | None) -> None:
    result = parse_dispatch(mail_with(body), LINE_PROFILE)
    assert result.occurred_at == expected
    assert (era in result.normalised) if era else not any("年→" in n for n in result.normalised)


def test_a_date_without_a_year_in_a_new_years_mail_is_last_year() -> None:
    result = parse_dispatch(
        mail_with("覚知：12/31 23:50", date=jst(2027, 1, 1, 0, 1)), LINE_PROFILE
    )
    assert result.occurred_at == jst(2026, 12, 31, 23, 50)


@pytest.mark.parametrize(
    ("body", "date"),
    [
        ("覚知：25時10分", SENT),
        ("覚知：令和8年13月1日 10時", SENT),
        ("覚知：10時", None),  # no date anywhere
        ("覚知：頃", SENT),
    ],
)
def test_unreadable_times(body: str, date: datetime | None) -> None:
    result = parse_dispatch(mail_with(body, date=date), LINE_PROFILE)
    assert result.occurred_at is None
    assert result.problems == ("覚知時刻を日時として読めません",)
    assert result.occurred_text == body.removeprefix("覚知：")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("ｈｔｔｐｓ：／／ｍａｐ．ｅｘａｍｐｌｅ．ｊｐ／ａ", "https://map.example.jp/a"),
        ("javascript:alert(1)", None),
        ("file:///etc/passwd", None),
        ("https://", None),
    ],
)
def test_map_url_is_http_only(url: str, expected: str | None) -> None:
    result = parse_dispatch(mail_with(f"地図：{url}"), LINE_PROFILE)
    assert result.map_url == expected
    if expected is None:
        assert result.problems == ("地図URLが http/https のアドレスではないため使いません",)


def test_section_markers() -> None:
    profile = ParserProfile(
        name="s",
        patterns={"kind": r"種別[:：](?P<value>\S+)"},
        section_start="--本文--",
        section_end="--以上--",
    )
    body = "種別：訓練\n--本文--\n種別：建物火災\n--以上--\n種別：その他"
    assert parse_dispatch(mail_with(body), profile).kind == "建物火災"
    result = parse_dispatch(mail_with("種別：救助"), profile)
    assert result.kind == "救助"
    assert result.problems == ("解析範囲の開始の目印が見つからないため、本文全体を解析しました",)


def test_patterns_match_full_width_digits_as_half_width() -> None:
    profile = ParserProfile(name="f", patterns={"reference": r"No\.(?P<value>\d{4})"})
    result = parse_dispatch(mail_with("Ｎｏ.０５１２"), profile)
    assert result.reference == "0512"
    assert result.normalised == ("事案番号: 全角英数字・記号・空白→半角",)


# --- Profiles as data ---------------------------------------------------------------------------------


@pytest.mark.parametrize("profile", EXAMPLE_PROFILES.values(), ids=EXAMPLE_PROFILES)
def test_example_profiles_are_valid_and_survive_json(profile: ParserProfile) -> None:
    assert profile.problems() == []
    assert ParserProfile.from_dict(json.loads(json.dumps(profile.to_dict()))) == profile


def test_from_dict_defaults_and_wrong_shapes() -> None:
    empty = ParserProfile.from_dict({})
    assert (empty.name, empty.patterns, empty.section_start) == ("", {}, None)
    assert empty.withheld_words == ("非公開", "個人情報")
    for bad in ([], {"patterns": []}, {"patterns": {"kind": 1}}, {"followup_words": {"x": []}}):
        with pytest.raises(ProfileError):
            ParserProfile.from_dict(bad)


def test_profile_problems() -> None:
    profile = ParserProfile(
        name="bad",
        patterns={
            "kind": r"種別(",
            "place": r"場所[:：]\S+",
            "landmark": r"目標(?P<value>(\w+)+)",
            "units": "x" * 501,
            "weather": r"(?P<value>晴)",
        },
        vocabulary={"住吉団1": ""},
    )
    problems = profile.problems()
    assert problems[0].startswith("災害種別（kind）のパターンが正規表現として正しくありません")
    assert problems[1:] == [
        "発生場所（place）のパターンに名前付きグループ (?P<value>…) がありません",
        "目標物（landmark）のパターンに入れ子の繰り返し（例: (a+)+）があり、照合が極端に遅くなるおそれがあります",
        "出動隊（units）のパターンが長すぎます（500文字まで）",
        "項目 weather は使えません（使える項目: kind, time, date, place, landmark, units, "
        "reference, map_url）",
        "空の語があります",
    ]
    result = parse_dispatch(mail_with("種別：火災"), profile)
    assert "災害種別のパターンが使えないため読み飛ばしました" in result.problems


# --- The demo's sample mail ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", EXAMPLE_PROFILES)
def test_sample_mail_is_read_completely_by_its_profile(name: str) -> None:
    now = datetime(2026, 5, 3, 5, 7, 42, tzinfo=UTC)
    raw = sample_dispatch_mail(
        to="d@hikeshi.example", sender="s@fd.example.jp", now=now, profile=name
    )
    mail = decode_mail(raw)
    assert mail.header_from == "s@fd.example.jp" and mail.date == now
    result = parse_dispatch(mail, EXAMPLE_PROFILES[name])
    assert result.followup == FollowUp.DISPATCH
    assert result.missing == () and result.problems == ()
    assert result.occurred_at == datetime(2026, 5, 3, 5, 5, tzinfo=UTC)
    assert result.kind and result.place and result.landmark and result.units and result.reference


def test_sample_mail_carries_cp50220_characters() -> None:
    now = datetime(2026, 5, 3, 5, 7, tzinfo=UTC)
    raw = sample_dispatch_mail(to="d@hikeshi.example", sender="s@fd.example.jp", now=now)
    assert b"charset=ISO-2022-JP" in raw and b"-!" in raw and b"|b" in raw
    mail = decode_mail(raw)
    assert "①" in mail.body and mail.charset_used == "CP50220"
    assert parse_dispatch(mail, BRACKET).map_url == "https://map.example.jp/fire?id=0503-1405"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"to": "a@b.jp\r\nBcc: x@y.jp"},
        {"sender": "no-address"},
        {"now": datetime(2026, 5, 3, 14, 7)},
        {"profile": "unknown"},
    ],
)
def test_sample_mail_refuses_bad_arguments(kwargs: dict[str, object]) -> None:
    args = {"to": "d@h.example", "sender": "s@f.example", "now": datetime.now(UTC)} | kwargs
    with pytest.raises(ValueError):
        sample_dispatch_mail(**args)  # type: ignore[arg-type]


# --- Never raises, never hides a replacement ----------------------------------------------------


def check_decoded(raw: bytes, mail: DecodedMail) -> None:
    assert isinstance(mail.decode_status, DecodeStatus)
    texts = (mail.body, mail.subject, mail.from_name)
    assert not any("\x00" in text for text in texts)
    assert len(mail.body) <= MAX_BODY_CHARS
    assert mail.date is None or mail.date.tzinfo == UTC
    # U+FFFD only with the status that says so (or where the mail itself wrote one)
    if any("\ufffd" in text for text in texts) and b"\xef\xbf\xbd" not in raw and b"&#" not in raw:
        assert mail.decode_status == DecodeStatus.REPLACED
        assert any("「\ufffd」に置き換えました" in p for p in mail.problems)
    for profile in EXAMPLE_PROFILES.values():
        result = parse_dispatch(mail, profile)
        assert set(result.units) <= set(profile.vocabulary.values())
        assert result.occurred_at is None or result.occurred_at.tzinfo is not None
        assert result.map_url is None or result.map_url.startswith(("http://", "https://"))


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=3000))
def test_decode_mail_never_raises_on_any_bytes(raw: bytes) -> None:
    check_decoded(raw, decode_mail(raw))


MUTATION = st.tuples(st.integers(0, 10_000), st.integers(0, 3), st.binary(max_size=8))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(sorted(generate.FIXTURES)), st.lists(MUTATION, max_size=6))
def test_decode_mail_never_raises_on_mutated_fixtures(
    name: str, mutations: list[tuple[int, int, bytes]]
) -> None:
    raw = bytearray(fixture(name))
    for position, cut, insert in mutations:
        at = position % (len(raw) + 1)
        raw[at : at + cut] = insert
    check_decoded(bytes(raw), decode_mail(bytes(raw)))


@settings(max_examples=200, deadline=None)
@given(
    st.text(max_size=2000), st.text(max_size=200), st.none() | st.datetimes(timezones=st.just(UTC))
)
def test_parse_dispatch_never_raises(body: str, subject: str, date: datetime | None) -> None:
    mail = DecodedMail(None, "", "", (), date, subject, body, None, None, DecodeStatus.OK, (), ())
    for profile in (*EXAMPLE_PROFILES.values(), LINE_PROFILE):
        result = parse_dispatch(mail, profile)
        assert result.needs_review == bool(result.missing)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=80, deadline=None)
@given(JSON | st.fixed_dictionaries({}, optional={k: JSON for k in BRACKET.to_dict()}))
def test_from_dict_raises_only_profile_error(data: object) -> None:
    try:
        profile = ParserProfile.from_dict(data)
    except ProfileError:
        return
    assert isinstance(profile.problems(), list)


def test_regex_time_is_bounded_by_the_input_cap() -> None:
    body = "災害種別：" + " " * 30_000 + "\n" * 30_000
    result = parse_dispatch(mail_with(body), BRACKET)
    assert result.kind is None
    assert result.problems == ("本文が長いため先頭 20000 文字だけを解析しました",)
