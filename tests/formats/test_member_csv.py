"""The member CSV layout: headers and aliases, template, export escaping and encodings, and the
reading of uploads (what encode writes, parse reads back cell for cell)."""

from __future__ import annotations

import codecs
import csv
import io
from datetime import date
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from openpyxl import Workbook

from formats import csv_safe, member_csv
from formats.member_csv import COLUMNS, HEADER, ParsedTable
from formats.tabular import CellValueError
from models.enums import MemberStatus

KEYS = tuple(column.key for column in COLUMNS)


def member(**overrides: object) -> SimpleNamespace:
    values: dict[str, object] = {
        "member_code": "A-1",
        "name": "消防　太郎",
        "kana": "ショウボウ　タロウ",
        "rank_name": "団員",
        "role_names": ["機関員", "庶務"],
        "affiliation": "第1分団",
        "status": MemberStatus.SUSPENDED,
        "phone": "090-1234-5678",
        "email": "taro@example.jp",
        "address": "デモ市1-2-3",
        "joined_on": date(2020, 4, 1),
        "notes": "中型免許",
    }
    values.update(overrides)
    return SimpleNamespace(**values)


def csv_text(*lines: str) -> bytes:
    return ("\r\n".join(lines) + "\r\n").encode()


def only_record(parsed: ParsedTable) -> dict[str, str]:
    assert parsed.file_errors == []
    (record,) = parsed.records
    return record[1]


# ---------------------------------------------------------------------------
# Layout, template and export


def test_template_is_the_header_and_an_example_row_in_utf8_with_bom():
    data = member_csv.template()
    assert data.startswith(codecs.BOM_UTF8)
    assert data.decode("utf-8-sig").splitlines()[0] == ",".join(HEADER)
    parsed = member_csv.parse(data, "template.csv")
    assert parsed.encoding == "utf-8-sig"
    assert only_record(parsed) == {c.key: c.example for c in COLUMNS}
    assert all(only_record(parsed)[key] for key in ("member_code", "name", "rank", "status"))


def test_export_writes_each_column_as_text():
    data = member_csv.encode([member()])
    assert data.decode("utf-8-sig").splitlines() == [
        ",".join(HEADER),
        "A-1,消防　太郎,ショウボウ　タロウ,団員,機関員、庶務,第1分団,停止中,090-1234-5678,"
        "taro@example.jp,デモ市1-2-3,2020-04-01,中型免許",
    ]


@pytest.mark.parametrize("trigger", csv_safe.FORMULA_STARTS)
def test_export_neutralises_every_formula_trigger_and_parse_restores_it(trigger):
    text = f'{trigger}HYPERLINK("http://example.com")'
    exported = member(name=text, notes=text, address=text, affiliation=text)
    data = member_csv.encode([exported])
    written = list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))
    row = dict(zip(HEADER, written[1], strict=True))
    for header in ("氏名", "備考", "住所", "所属"):
        assert row[header] == "'" + text
    record = only_record(member_csv.parse(data, "m.csv"))
    assert {record[k] for k in ("name", "notes", "address", "affiliation")} == {text}


def test_cp932_export_reports_characters_it_cannot_hold_with_row_and_column():
    rows = [member(), member(member_code="A-2", notes="出動🚒", name="髙橋　①")]
    with pytest.raises(csv_safe.Unencodable) as err:
        member_csv.encode(rows, encoding="cp932")
    assert err.value.problems == [("団員番号 A-2", "備考", "🚒")]
    assert "団員番号 A-2の「備考」" in str(err.value)


def test_cp932_export_reads_back_identically():
    exported = member(name="髙橋　①子", notes="㈱デモ～", kana="タカハシ")
    parsed = member_csv.parse(member_csv.encode([exported], encoding="cp932"), "m.csv")
    assert parsed.encoding == "cp932"
    assert only_record(parsed) == member_csv.cells(exported)


TRICKY = ["=", "+", "-", "@", "\t", "\r", "\n", '"', ",", "'", "髙", "①", "㈱", "～", "ｱ"]
# Text a CSV file can carry: no control characters other than tab and line ends, no private
# use (the decoder refuses both), no surrogates. For CP932, only what it holds one to one.
LOSSY_IN_CP932 = "¢£¬‖−〜"  # encoded as ￠￡￢∥－～, so they would not come back
any_text = st.text(
    st.characters(blacklist_categories=("Cs", "Co", "Cc")) | st.sampled_from([*TRICKY, "😀"]),
    max_size=30,
)
cp932_text = st.text(
    st.characters(
        codec="cp932", blacklist_categories=("Cs", "Co", "Cc"), blacklist_characters=LOSSY_IN_CP932
    )
    | st.sampled_from(TRICKY),
    max_size=30,
)


def assert_round_trip(encoding: str, **cells: str) -> None:
    exported = member(**cells)
    parsed = member_csv.parse(member_csv.encode([exported], encoding=encoding), "m.csv")
    assert only_record(parsed) == member_csv.cells(exported)


@settings(max_examples=60)
@given(name=any_text, notes=any_text, address=any_text, affiliation=any_text)
def test_what_encode_writes_parse_reads_back_in_utf8(name, notes, address, affiliation):
    assert_round_trip("utf-8", name=name, notes=notes, address=address, affiliation=affiliation)


@settings(max_examples=60)
@given(name=cp932_text, notes=cp932_text, address=cp932_text, affiliation=cp932_text)
def test_what_encode_writes_parse_reads_back_in_cp932(name, notes, address, affiliation):
    assert_round_trip("cp932", name=name, notes=notes, address=address, affiliation=affiliation)


# ---------------------------------------------------------------------------
# Headers


@pytest.mark.parametrize(
    "header",
    [
        "code,name,kana,rank,roles,affiliation,status,phone,email,address,joined_on,notes",
        "団員コード,氏名,フリガナ,階級,役職,所属,状態,電話,メール,住所,入団日,メモ",
        "Member Code,NAME,Kana,Rank,Roles,Affiliation,Status,Phone,E-mail,Address,Joined_On,Notes",
        "団員番号＊,氏　名,ふりがな,階級※,役職,所属,状態,電話番号,メールアドレス,住所,入団日,備考",
    ],
)
def test_english_aliases_and_spelling_variants_name_the_same_columns(header):
    record = only_record(member_csv.parse(csv_text(header, ",".join(KEYS)), "m.csv"))
    assert record == {key: key for key in KEYS}


def test_a_title_row_above_the_header_is_skipped():
    data = csv_text("団員名簿（令和6年度）,,", "団員番号,氏名,階級", "A1,消防　太郎,団員")
    parsed = member_csv.parse(data, "m.csv")
    assert parsed.header_row == 2
    assert parsed.records[0][0] == 3
    assert parsed.records[0][1] == {"member_code": "A1", "name": "消防　太郎", "rank": "団員"}


@pytest.mark.parametrize(
    ("header", "problem"),
    [
        ("団員番号,氏名,階級,血液型", "列「血液型」はこの形式にない列です。"),
        ("団員番号,氏名,役職", "必須の列「階級」がありません。"),
        ("団員番号,氏名,階級,name", "列「氏名」が複数あります。"),
        ("番号,名前?,区分", member_csv.NO_HEADER),
    ],
)
def test_header_problems_are_file_errors(header, problem):
    parsed = member_csv.parse(csv_text(header, "A1,消防　太郎,団員,x"), "m.csv")
    assert problem in parsed.file_errors
    assert parsed.records == []


def test_the_workbook_sheet_holding_the_roster_is_chosen():
    book = Workbook()
    book.active.title = "説明"
    book.active.append(["このシートは説明です"])
    roster = book.create_sheet("名簿")
    roster.append(["団員名簿"])
    roster.append(["団員番号", "氏名", "階級", "入団日"])
    roster.append(["A1", "消防　太郎", "団員", date(2020, 4, 1)])
    out = io.BytesIO()
    book.save(out)
    parsed = member_csv.parse(out.getvalue(), "roster.xlsx")
    assert (parsed.sheet, parsed.header_row, parsed.encoding) == ("名簿", 2, "xlsx")
    assert only_record(parsed) == {
        "member_code": "A1",
        "name": "消防　太郎",
        "rank": "団員",
        "joined_on": "2020-04-01",
    }


# ---------------------------------------------------------------------------
# Limits and undecodable files


def test_an_over_long_cell_is_an_error_of_its_row_not_truncated():
    parsed = member_csv.parse(csv_text("団員番号,氏名,階級", f"A1,{'長' * 51},団員"), "m.csv")
    ((_, values, errors),) = parsed.records
    assert values["name"] == "長" * 51
    assert [str(e) for e in errors] == ["2行目「氏名」: 50文字以内にしてください。"]


def test_too_many_rows_is_a_file_error(monkeypatch):
    monkeypatch.setattr(member_csv, "MAX_ROWS", 2)
    lines = ["団員番号,氏名,階級", *(f"A{i},消防　太郎,団員" for i in range(3))]
    parsed = member_csv.parse(csv_text(*lines), "m.csv")
    assert parsed.file_errors == ["行数が多すぎます（3行）。2行以下に分けてください。"]
    assert member_csv.parse(csv_text(*lines[:3]), "m.csv").file_errors == []


def test_an_oversize_file_is_refused(monkeypatch):
    monkeypatch.setattr(member_csv, "MAX_FILE_BYTES", 1024 * 1024)
    data = csv_text("団員番号,氏名,階級", *(f"A{i},{'x' * 40},団員" for i in range(30_000)))
    (problem,) = member_csv.parse(data, "m.csv").file_errors
    assert "ファイルが大きすぎます" in problem


def test_a_header_without_rows_is_a_file_error():
    assert member_csv.parse(csv_text("団員番号,氏名,階級"), "m.csv").file_errors == [
        "団員の行がありません。"
    ]


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (b"\xef\xbb\xbf\xe5\x9b\xa3\xe5\x93\xa1,A\x00B\r\n", "NUL"),
        (
            "団員番号,氏名,階級\r\nA1,".encode() + b"\xff\xfe\xfa" + ",団員\r\n".encode(),
            "判別できません",
        ),
        (
            codecs.BOM_UTF8 + "団員番号,氏名,階級\r\nA1,".encode() + b"\x82\xa0,x\r\n",
            "UTF-8（BOM付き）",
        ),
        ("団員番号,氏名,階級".encode("utf-16"), "UTF-16"),
    ],
)
def test_invalid_bytes_are_refused_never_guessed(data, says):
    parsed = member_csv.parse(data, "m.csv")
    assert parsed.records == []
    (problem,) = parsed.file_errors
    assert says in problem


# ---------------------------------------------------------------------------
# Cell readers


@pytest.mark.parametrize(
    ("text", "status"),
    [
        ("在籍", MemberStatus.ACTIVE),
        ("停止中", MemberStatus.SUSPENDED),
        ("停止", MemberStatus.SUSPENDED),
        (" 退団 ", MemberStatus.RETIRED),
        ("Retired", MemberStatus.RETIRED),
        ("", None),
    ],
)
def test_status_labels(text, status):
    assert member_csv.status_of(text) == status


def test_an_unknown_status_names_the_choices():
    with pytest.raises(CellValueError, match="「在籍、停止中、退団」のいずれか"):
        member_csv.status_of("休団")


@pytest.mark.parametrize(
    ("text", "found", "unknown"),
    [
        ("機関員、庶務", ["機関員", "庶務"], []),
        ("機関員,庶務;機関員", ["機関員", "庶務"], []),
        ("指揮/通信、庶務", ["指揮/通信", "庶務"], []),  # a known name holding a separator
        ("指揮/庶務", ["庶務"], ["指揮"]),
        ("ＡＢＣ班", ["ABC班"], []),  # compared after NFKC
        ("、 ,", [], []),
        ("会計", [], ["会計"]),
    ],
)
def test_roles_are_split_on_separators_but_known_names_stay_whole(text, found, unknown):
    known = {"機関員", "庶務", "指揮/通信", "ABC班"}
    assert member_csv.split_roles(text, known) == (found, unknown)
