"""Municipal open data and column mappings, without a database: recognising the standard
layout, translating its rows into our keys, and reading any other sheet through a mapping."""

from __future__ import annotations

import pytest

from formats import opendata
from formats.opendata import ColumnMapping
from formats.tabular import Sheet, find_header

HEADER = [
    "全国地方公共団体コード",
    "ＩＤ",
    "地方公共団体名",
    "種　別",
    "所在地＿連結表記",
    "所在地_都道府県",
    "所在地_市区町村",
    "所在地_町字",
    "所在地_番地以下",
    "建物名等（方書）",
    "緯度",
    "経度",
    "口径",
    "備考",
]


def sheet(rows: list[list[str]], name: str = "") -> Sheet:
    return Sheet(name=name, rows=rows, encoding="cp932")


def od(**cells: str) -> list[str]:
    keys = [c.key for c in opendata.COLUMNS]
    return [cells.get(key, "") for key in keys]


def test_the_standard_header_is_found_below_title_rows():
    found = sheet([["消防水利施設一覧"], [], HEADER, od(id="1", kind="消火栓")])
    match = find_header(found, opendata.COLUMNS)
    assert match is not None and match.row_index == 2
    assert (match.missing, match.unknown, match.duplicated) == ([], [], [])


def test_rows_are_translated_into_our_keys():
    found = sheet(
        [
            HEADER,
            od(
                id="００１２",
                kind="公設消火栓",
                address="本町1-2",
                diameter="φ150",
                remarks="交差点",
            ),
            od(
                id="13",
                kind="防火水そう",
                prefecture="テスト県",
                city="テスト市",
                town="栄町",
                block="3",
                building="市民会館",
            ),
        ]
    )
    parsed = opendata.parse(found, find_header(found, opendata.COLUMNS))
    assert (parsed.layout, parsed.header_row, parsed.file_errors) == ("opendata", 1, [])
    [(first_row, first), (second_row, second)] = parsed.records
    assert (first_row, second_row) == (2, 3)
    assert first == {
        "code": "0012",
        "kind": "公設消火栓",
        "latitude": "",
        "longitude": "",
        "main_diameter_mm": "φ150",
        "memo": "交差点",
        "address": "本町1-2",
    }
    assert second["address"] == "テスト県テスト市栄町3　市民会館"
    assert parsed.headers["code"] == "ＩＤ" and parsed.headers["address"] == "所在地＿連結表記"


@pytest.mark.parametrize(
    ("cells", "expected"),
    [
        ({"address": "本町1", "building": "市民会館"}, "本町1　市民会館"),
        ({"address": "本町1 市民会館", "building": "市民会館"}, "本町1 市民会館"),
        ({"address": "", "city": "市", "town": "町", "block": "1"}, "市町1"),
        ({"building": "倉庫"}, "倉庫"),
        ({}, ""),
    ],
)
def test_address(cells, expected):
    assert opendata.address(cells) == expected


def test_extra_columns_are_noted_not_read():
    found = sheet([[*HEADER, "設置年度"], [*od(id="1", kind="井戸"), "1990"]])
    parsed = opendata.parse(found, find_header(found, opendata.COLUMNS))
    assert any("「設置年度」" in note for note in parsed.notes)
    assert "1990" not in parsed.records[0][1].values()


# -- column mapping ----------------------------------------------------------------------------

LEDGER = [
    ["水利台帳"],
    [],
    ["番号", "種類", "町", "番地", "緯度", "経度", "メモ1", "メモ2", "不要"],
    ["A-1", "水そう", "本町", "1", "36.1", "138.1", "北側", "鍵あり", "x"],
    ["A-2", "消火栓", "栄町", "", "", "", "", "", ""],
]
MAPPING = ColumnMapping(
    columns={
        "番号": "code",
        "種類": "kind",
        "町": "address",
        "番地": "address",
        "緯度": "latitude",
        "経度": "longitude",
        "メモ１": "memo",
        "メモ2": "memo",
    },
    sheet="台帳",
    kinds={"水そう": "防火水槽"},
)


def test_a_mapping_finds_its_sheet_and_header_and_joins_columns():
    parsed = opendata.apply_mapping([sheet([["表紙"]], "表紙"), sheet(LEDGER, "台帳")], MAPPING)
    assert (parsed.layout, parsed.sheet, parsed.header_row) == ("mapping", "台帳", 3)
    assert parsed.file_errors == []
    assert parsed.notes == ["対応付けのない列は読み込みません: 「不要」"]
    [(row, first), (_, second)] = parsed.records
    assert row == 4
    assert first == {
        "code": "A-1",
        "kind": "防火水槽",
        "address": "本町1",
        "latitude": "36.1",
        "longitude": "138.1",
        "memo": "北側　鍵あり",
    }
    assert second["kind"] == "消火栓" and second["address"] == "栄町" and second["memo"] == ""
    assert parsed.headers["address"] == "町" and parsed.headers["memo"] == "メモ1"


@pytest.mark.parametrize(
    ("mapping", "expected"),
    [
        (ColumnMapping({"a": "code", "b": "kind"}), []),
        (ColumnMapping({"a": "code"}), ["「種別」にする列を選んでください。"]),
        (
            ColumnMapping({"a": "code", "b": "kind", "c": "colour"}),
            ["「colour」は割り当て先にありません。"],
        ),
        (
            ColumnMapping({"a": "code", "b": "kind", "c": "latitude", "d": "latitude"}),
            ["「緯度」に複数の列が割り当てられています。"],
        ),
        (
            ColumnMapping({"a": "code", "b": "kind"}, kinds={"x": "噴水"}),
            ["種別の読み替え「x」→「噴水」: 種別を選択肢から選んでください。"],
        ),
        (
            ColumnMapping({"a": "code", "b": "kind"}, header_row=0),
            ["見出しの行は1〜30行目で指定してください。"],
        ),
    ],
)
def test_mapping_problems(mapping, expected):
    assert mapping.problems() == expected


def test_mapping_json_round_trip_and_equality():
    again = ColumnMapping.from_json(MAPPING.to_json())
    assert again == MAPPING and hash(again) == hash(MAPPING)
    assert ColumnMapping.from_json({"columns": {"a": "code"}, "sheet": 2}).sheet == 2


@pytest.mark.parametrize(
    ("mapping", "message"),
    [
        (ColumnMapping({"番号": "code", "種類": "kind"}, sheet=5), "シート「5」がありません。"),
        (
            ColumnMapping({"番号": "code", "種類": "kind", "色": "memo"}, sheet=0),
            "3行目に列「色」が見つかりません（対応付けを見直してください）。",
        ),
        (ColumnMapping({"番号": "code"}, sheet=0), "「種別」にする列を選んでください。"),
    ],
)
def test_a_mapping_that_does_not_fit_is_a_file_error(mapping, message):
    parsed = opendata.apply_mapping([sheet(LEDGER)], mapping)
    assert message in parsed.file_errors and parsed.records == []
