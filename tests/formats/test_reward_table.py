"""The stored 出動報酬 table (formats.reward_table): the presets and arbitrary tables read back
equal; a damaged value is refused naming its field."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.rewards import PRESETS, Band, CategoryRule, HourRounding, RewardTable
from formats.reward_table import from_json, to_json


@pytest.mark.parametrize("table", PRESETS, ids=[t.name for t in PRESETS])
def test_the_presets_read_back_equal(table):
    assert from_json(to_json(table)) == table


names = st.text(max_size=8)
amounts = st.none() | st.integers(-10, 10**6)
bands = st.builds(Band, st.integers(0, 10**4), st.none() | st.integers(0, 10**4), st.integers())
rules = st.builds(
    CategoryRule,
    names,
    st.lists(bands, max_size=3).map(tuple),
    st.booleans(),
    amounts,
    st.sampled_from(HourRounding),
    amounts,
)
tables = st.builds(
    RewardTable,
    names,
    st.lists(rules, max_size=3).map(tuple),
    st.dictionaries(names, names, max_size=3),
    st.none() | names,
    st.booleans(),
    amounts,
    amounts,
    amounts,
)


@settings(max_examples=40, deadline=None)
@given(tables)
def test_any_table_reads_back_equal(table):
    assert from_json(to_json(table)) == table


def _damaged(change) -> str:
    data = json.loads(to_json(PRESETS[0]))
    change(data)
    return json.dumps(data, ensure_ascii=False)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(extra=1), "「表」に不明な項目があります: extra"),
        (lambda d: d.pop("aliases"), "「表」に項目がありません: aliases"),
        (lambda d: d.update(name=3), "「name」は文字列にしてください。"),
        (lambda d: d.update(highest_per_day_only=1), "「highest_per_day_only」は true か false"),
        (lambda d: d.update(day_unit_hours=True), "「day_unit_hours」は整数にしてください。"),
        (lambda d: d.update(day_unit_hours=8.5), "「day_unit_hours」は整数にしてください。"),
        (lambda d: d.update(rules={}), "「rules」は配列にしてください。"),
        (lambda d: d["rules"][1].update(rounding="up"), "「rules[2].rounding」は started か whole"),
        (lambda d: d["rules"][0]["bands"][2].update(amount="8000"), "「rules[1].bands[3].amount」"),
        (lambda d: d["rules"][0]["bands"][0].pop("to_minutes"), "「rules[1].bands[1]」に項目が"),
        (lambda d: d["aliases"].update(火災=None), "「aliases.火災」は文字列にしてください。"),
        (lambda d: d.update(other_category=["その他"]), "「other_category」は文字列に"),
    ],
)
def test_a_damaged_table_is_refused_naming_the_field(change, message):
    with pytest.raises(ValueError, match="出動報酬の表（JSON）が読めません") as refused:
        from_json(_damaged(change))
    assert message in str(refused.value)


@pytest.mark.parametrize("text", ["", "{", "[]", "null", "[" * 100_000])
def test_what_is_no_table_is_refused(text):
    with pytest.raises(ValueError, match="出動報酬の表（JSON）が読めません"):
        from_json(text)
