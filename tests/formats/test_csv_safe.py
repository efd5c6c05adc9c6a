"""CSV escaping: formula cells neutralised by a leading ', exactly undone on import."""

from __future__ import annotations

import csv
import io

import pytest
from hypothesis import given
from hypothesis import strategies as st

from formats import csv_safe
from formats.csv_safe import BOM, decode, encode, neutralise, unneutralise


@pytest.mark.parametrize(
    ("value", "written"),
    [
        ("=1+2", "'=1+2"),
        ("+81-90", "'+81-90"),
        ("-1", "'-1"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tcmd", "'\tcmd"),
        ("\rx", "'\rx"),
        ("\nx", "'\nx"),
        ('=HYPERLINK("http://x")', '\'=HYPERLINK("http://x")'),
        ("'quoted", "''quoted"),
        ("'", "''"),
        ("消防団", "消防団"),
        ("a=b", "a=b"),
        ("", ""),
        (" =x", " =x"),
    ],
)
def test_text_cells(value, written):
    assert neutralise(value) == written
    assert unneutralise(written) == value


@pytest.mark.parametrize(("value", "written"), [(None, ""), (-5, "-5"), (1.5, "1.5"), (0, "0")])
def test_numbers_are_written_as_they_are(value, written):
    assert neutralise(value) == written


@pytest.mark.parametrize("typed", ["'abc", "'", "plain", "''x"])
def test_unneutralise_leaves_cells_it_did_not_escape(typed):
    """A hand-made file's lone apostrophes are kept; only an added ' is stripped."""
    assert unneutralise(typed) == (typed[1:] if typed == "''x" else typed)


@given(st.text())
def test_unneutralise_inverts_neutralise(value):
    assert unneutralise(neutralise(value)) == value


@given(st.text().filter(lambda t: not t.startswith(("=", "+", "-", "@", "\t", "\r", "\n"))))
def test_written_cells_never_start_like_a_formula(value):
    assert not neutralise(value).startswith(("=", "+", "-", "@", "\t", "\r", "\n"))


@given(st.lists(st.lists(st.text(), min_size=3, max_size=3), max_size=5))
def test_encode_decode_is_the_identity(rows):
    header = ["名前", "=式", "備考"]
    data = encode(header, rows)
    assert data.startswith(BOM.encode("utf-8"))
    assert decode(data) == [header, *rows]


def test_file_is_utf8_with_bom_and_crlf():
    data = encode(["a", "b"], [["=x", "日本語\n改行"]])
    assert data.startswith(b"\xef\xbb\xbf")
    text = data.decode("utf-8").removeprefix(BOM)
    assert text.startswith("a,b\r\n")
    assert list(csv.reader(io.StringIO(text))) == [["a", "b"], ["'=x", "日本語\n改行"]]


def test_decode_rejects_other_encodings():
    with pytest.raises(UnicodeDecodeError):
        decode("消防".encode("cp932"))


def test_cp932_problems_name_the_record_not_a_row_of_a_file_never_written():
    header = ["団員番号", "氏名"]
    with pytest.raises(csv_safe.Unencodable) as raised:
        csv_safe.encode(
            header, [["A-1", "消防"], ["A-2", "𠮷田"], ["", "🚒"], ["𠮷", "x"]], encoding="cp932"
        )
    assert raised.value.problems == [
        ("団員番号 A-2", "氏名", "𠮷"),
        ("3件目", "氏名", "🚒"),  # no key: the record's place among the data rows
        ("4件目", "団員番号", "𠮷"),  # a key CP932 cannot show names nothing
    ]
    with pytest.raises(csv_safe.Unencodable) as header_only:
        csv_safe.encode(["𠮷"], [], encoding="cp932")
    assert header_only.value.problems == [(csv_safe.HEADER_RECORD, "𠮷", "𠮷")]
