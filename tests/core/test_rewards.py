"""The 出動報酬 engine (#22): the issue's municipal examples at their band edges, the per-day
rules, validation messages, and invariants under hypothesis."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.rewards import (
    HIOKI,
    KUMIYAMA,
    MISAWA,
    PRESETS,
    Activity,
    Band,
    CategoryRule,
    HourRounding,
    RewardTable,
    compute_rewards,
    validate_table,
)
from core.timefmt import JST

_keys = itertools.count()


def at(day: int, hour: int = 9, minute: int = 0, month: int = 4) -> datetime:
    return datetime(2025, month, day, hour, minute, tzinfo=JST)


def act(category: str, start: datetime, minutes: int, member: str = "m1", **flags) -> Activity:
    end = start + timedelta(minutes=minutes)
    return Activity(next(_keys), member, category, start, end, **flags)


def pay(table: RewardTable, *activities: Activity) -> list[int]:
    result = compute_rewards(table, activities)
    return [result.amount_for(a.key) for a in activities]


def h(hours: int, minutes: int = 0) -> int:
    return hours * 60 + minutes


# --- 三沢市 -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("minutes", "amount"),
    [
        (0, 2_500),
        (h(3, 59), 2_500),
        (h(4), 5_000),
        (h(7, 44), 5_000),
        (h(7, 45), 8_000),
        (h(20), 8_000),
    ],
)
def test_misawa_disaster_bands_per_call(minutes, amount):
    assert pay(MISAWA, act("災害", at(1), minutes)) == [amount]


def test_misawa_explanations_name_the_band():
    result = compute_rewards(MISAWA, [a := act("災害", at(1), h(4))])
    assert result.for_activity(a.key)[0].explanation == "災害 4時間以上7時間45分未満 5,000円"
    result = compute_rewards(MISAWA, [a := act("火災", at(1), h(3, 59))])
    assert result.for_activity(a.key)[0].explanation == "火災（災害） 4時間未満 2,500円"
    result = compute_rewards(MISAWA, [a := act("風水害", at(1), h(7, 45))])
    assert result.for_activity(a.key)[0].explanation == "風水害（災害） 7時間45分以上 8,000円"


def test_seconds_are_dropped_so_3_59_59_is_under_4_hours():
    start = at(1)
    activity = Activity(
        "s", "m1", "災害", start, start + timedelta(hours=3, minutes=59, seconds=59)
    )
    assert compute_rewards(MISAWA, [activity]).amount_for("s") == 2_500


@pytest.mark.parametrize(("minutes", "amount"), [(h(3, 59), 2_500), (h(4), 3_500), (h(9), 3_500)])
def test_misawa_training_bands(minutes, amount):
    assert pay(MISAWA, act("訓練", at(1), minutes)) == [amount]


def test_misawa_watch_is_paid_once_per_day():
    first, second = act("警戒", at(1, 9), h(2)), act("警戒", at(1, 19), h(3))
    next_day = act("警戒", at(2, 9), h(1))
    result = compute_rewards(MISAWA, [first, second, next_day])
    assert [result.amount_for(a.key) for a in (first, second, next_day)] == [2_500, 0, 2_500]
    assert "同日の警戒は1日分として計算済み" in result.for_activity(second.key)[0].adjustments[0]


def test_misawa_other_activities_fall_under_sonota():
    result = compute_rewards(MISAWA, [a := act("広報", at(1), h(2)), b := act("会議", at(1), 30)])
    assert [result.amount_for(a.key), result.amount_for(b.key)] == [1_000, 1_000]
    assert result.for_activity(a.key)[0].explanation == "広報（その他） 1,000円"


def test_misawa_pays_every_call_of_a_day():
    assert pay(MISAWA, act("災害", at(1, 2), h(1)), act("災害", at(1, 14), h(5))) == [2_500, 5_000]


def test_across_midnight_the_start_day_counts():
    late = act("災害", at(30, 22), h(5))  # 4/30 22:00 → 5/1 03:00
    result = compute_rewards(MISAWA, [late])
    (line,) = result.for_activity(late.key)
    assert (line.day, line.amount) == (date(2025, 4, 30), 5_000)
    assert result.monthly_totals == {("m1", "2025-04"): 5_000}


def test_the_jst_day_decides_not_the_utc_one():
    # 4/2 08:00 JST is 4/1 23:00 UTC: the watch of 4/1 evening is another day.
    evening = act("警戒", at(1, 20), h(1))
    morning = act("警戒", at(2, 8).astimezone(UTC), h(1))
    assert pay(MISAWA, evening, morning) == [2_500, 2_500]


def test_monthly_totals_per_member():
    result = compute_rewards(
        MISAWA,
        [
            act("災害", at(1), h(8)),
            act("訓練", at(5), h(2)),
            act("災害", at(1), h(1), member="m2"),
            act("警戒", at(1, month=5), h(1)),
        ],
    )
    assert result.monthly_totals == {
        ("m1", "2025-04"): 10_500,
        ("m2", "2025-04"): 2_500,
        ("m1", "2025-05"): 2_500,
    }


def test_naive_or_backwards_times_are_refused():
    with pytest.raises(ValueError, match="naive"):
        Activity("x", "m1", "災害", datetime(2025, 4, 1, 9), datetime(2025, 4, 1, 10))
    with pytest.raises(ValueError, match="終了時刻は開始時刻より後"):
        Activity("x", "m1", "災害", at(1, 10), at(1, 9))


def test_a_category_the_table_does_not_know_is_an_error():
    with pytest.raises(ValueError, match="区分「訓練」の出動報酬が定められていません"):
        compute_rewards(HIOKI, [act("訓練", at(1), h(1))])


# --- 久御山町 ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("minutes", "amount"),
    [
        (0, 1_000),
        (30, 1_000),
        (h(1), 1_000),
        (h(1, 1), 2_000),
        (h(3, 59), 4_000),
        (h(7), 7_000),
        (h(7, 1), 8_000),
        (h(8), 8_000),
    ],
)
def test_kumiyama_disaster_per_started_hour(minutes, amount):
    assert pay(KUMIYAMA, act("災害", at(1), minutes)) == [amount]


def test_kumiyama_disaster_explanation_states_the_rounding():
    result = compute_rewards(KUMIYAMA, [a := act("災害", at(1), h(2, 10))])
    assert result.for_activity(a.key)[0].explanation == (
        "災害 3時間分 × 1,000円 = 3,000円（2時間10分・端数切り上げ）"
    )


def test_kumiyama_daily_cap_cuts_the_later_call():
    first, second = act("災害", at(1, 1), h(5)), act("災害", at(1, 13), h(3, 30))
    result = compute_rewards(KUMIYAMA, [first, second])
    assert [result.amount_for(first.key), result.amount_for(second.key)] == [5_000, 3_000]
    assert result.for_activity(second.key)[0].adjustments == (
        "1日の上限8,000円を超える1,000円を減額: 3,000円",
    )
    assert result.monthly_totals == {("m1", "2025-04"): 8_000}


def test_kumiyama_a_call_over_8_hours_continues_as_a_second_day():
    long = act("災害", at(1, 9), h(9, 30))
    result = compute_rewards(KUMIYAMA, [long])
    assert [line.amount for line in result.for_activity(long.key)] == [8_000, 2_000]
    assert "8時間単位の2日目・1時間30分" in result.for_activity(long.key)[1].explanation


@pytest.mark.parametrize(("minutes", "amount"), [(h(4), 2_000), (h(4, 1), 3_500)])
def test_kumiyama_training_up_to_4_hours_includes_4_00(minutes, amount):
    assert pay(KUMIYAMA, act("訓練", at(1), minutes)) == [amount]


def test_kumiyama_training_daily_cap():
    assert pay(KUMIYAMA, act("訓練", at(1, 9), h(2)), act("訓練", at(1, 13), h(2))) == [
        2_000,
        1_500,
    ]


def test_whole_hour_rounding_counts_only_full_hours():
    rule = CategoryRule("災害", hourly_rate=1_000, rounding=HourRounding.WHOLE, daily_cap=8_000)
    table = replace(KUMIYAMA, rules=(rule,))
    assert pay(table, act("災害", at(1), h(1, 59)), act("災害", at(2), 59)) == [1_000, 0]


# --- 日置市 -----------------------------------------------------------------------------------


def test_hioki_pays_only_the_highest_of_a_day():
    publicity, fire = act("広報", at(1, 9), h(2)), act("火災", at(1, 20), h(1))
    result = compute_rewards(HIOKI, [publicity, fire])
    assert [result.amount_for(publicity.key), result.amount_for(fire.key)] == [0, 8_000]
    assert result.for_activity(publicity.key)[0].adjustments == (
        "同日のより高い報酬（災害 8,000円）のみ支給: 0円",
    )


def test_hioki_two_fires_on_one_day_are_one_day():
    assert pay(HIOKI, act("火災", at(1, 2), h(1)), act("火災", at(1, 14), h(2))) == [8_000, 0]


@pytest.mark.parametrize("flag", ["false_alarm", "turned_back"])
def test_hioki_false_alarm_or_turned_back_is_a_flat_5000(flag):
    result = compute_rewards(HIOKI, [a := act("火災", at(1), h(1), **{flag: True})])
    (line,) = result.for_activity(a.key)
    assert line.amount == 5_000
    assert line.explanation in {
        "火災（災害） 誤報 5,000円",
        "火災（災害） 現場到着前の引揚げ 5,000円",
    }


def test_hioki_a_false_alarm_and_a_real_fire_on_one_day_pay_the_fire():
    assert pay(HIOKI, act("火災", at(1, 2), 30, false_alarm=True), act("火災", at(1, 9), h(2))) == [
        0,
        8_000,
    ]


def test_flags_change_nothing_where_the_table_sets_no_flat_amount():
    assert pay(MISAWA, act("火災", at(1), h(5), false_alarm=True)) == [5_000]


@pytest.mark.parametrize(
    ("minutes", "days"), [(h(7, 59), 1), (h(8), 1), (h(8, 1), 2), (h(16), 2), (h(17), 3)]
)
def test_hioki_8_hour_units(minutes, days):
    activity = act("災害", at(1, 9), minutes)
    lines = compute_rewards(HIOKI, [activity]).for_activity(activity.key)
    assert [line.amount for line in lines] == [8_000] * days
    assert sum(line.minutes for line in lines) == minutes


def test_hioki_across_midnight_under_8_hours_is_one_day():
    assert pay(HIOKI, act("災害", at(1, 22), h(7))) == [8_000]


def test_hioki_across_days_counts_from_the_start_not_from_midnight():
    night = act("災害", at(1, 20), h(10))  # 4/1 20:00 → 4/2 06:00: 8 h + 2 h
    result = compute_rewards(HIOKI, [night])
    lines = result.for_activity(night.key)
    assert [(line.day, line.minutes, line.amount) for line in lines] == [
        (date(2025, 4, 1), h(8), 8_000),
        (date(2025, 4, 2), h(2), 8_000),
    ]


def test_hioki_a_continuation_day_stands_apart_from_other_activities():
    night = act("災害", at(1, 20), h(10))
    publicity_same_evening = act("広報", at(1, 9), h(1))
    fire_next_day = act("火災", at(2, 14), h(1))
    assert pay(HIOKI, night, publicity_same_evening, fire_next_day) == [16_000, 0, 8_000]


# --- validation -------------------------------------------------------------------------------


def test_presets_are_valid_and_named():
    assert [t.name for t in PRESETS] == ["三沢市", "久御山町", "日置市"]
    assert all(validate_table(t) == [] for t in PRESETS)


def _with_disaster_bands(*bands: Band) -> RewardTable:
    return replace(MISAWA, rules=(CategoryRule("災害", bands=bands), *MISAWA.rules[1:]))


@pytest.mark.parametrize(
    ("bands", "message"),
    [
        (
            (Band(0, 240, 2_500), Band(200, None, 5_000)),
            "災害 2行目: 前の行と時間帯が重なっています。",
        ),
        (
            (Band(0, 240, 2_500), Band(300, None, 5_000)),
            "災害 2行目: 前の行との間に空きがあります。",
        ),
        (
            (Band(0, 240, 2_500), Band(240, 240, 5_000), Band(240, None, 1)),
            "災害 2行目: 開始と終了が重なっています（終了は開始より後にしてください）。",
        ),
        ((Band(10, None, 2_500),), "災害 1行目: 最初の行は0分から始めてください。"),
        ((Band(0, 240, 2_500),), "災害 1行目: 最後の行は終了なし（以上）にしてください。"),
        (
            (Band(0, None, 2_500), Band(240, None, 5_000)),
            "災害 2行目: 前の行が終了なし（以上）のため、この行は使われません。",
        ),
        ((Band(0, None, -1),), "災害 1行目: 金額は0円以上100,000円以下にしてください。"),
        ((Band(0, None, 100_001),), "災害 1行目: 金額は0円以上100,000円以下にしてください。"),
        ((), "災害: 時間帯の表か時間単価のどちらか一方を設定してください。"),
    ],
)
def test_band_errors_name_category_and_row(bands, message):
    assert message in validate_table(_with_disaster_bands(*bands))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"daily_cap": 500}, "災害: 1日の上限は時間単価以上にしてください。"),
        ({"hourly_rate": 0}, "災害: 時間単価は1円以上100,000円以下にしてください。"),
        ({"per_day": True}, "災害: 1日あたりの金額は時間帯の表でのみ指定できます。"),
        (
            {"bands": (Band(0, None, 1),)},
            "災害: 時間帯の表か時間単価のどちらか一方を設定してください。",
        ),
    ],
)
def test_hourly_rule_errors(changes, message):
    rule = replace(KUMIYAMA.rules[0], **changes)
    assert message in validate_table(replace(KUMIYAMA, rules=(rule, *KUMIYAMA.rules[1:])))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"name": " "}, "名前を入力してください。"),
        ({"rules": ()}, "区分を1つ以上設定してください。"),
        ({"rules": (*HIOKI.rules, HIOKI.rules[1])}, "広報: 同じ区分が2回以上あります。"),
        ({"aliases": {"火災": "消火"}}, "火災: 読み替え先の区分「消火」がありません。"),
        ({"aliases": {"広報": "災害"}}, "広報: 区分と同じ名前は読み替えにできません。"),
        ({"other_category": "その他"}, "その他の活動の区分「その他」がありません。"),
        ({"day_unit_hours": 0}, "日の単位は1時間以上24時間以下にしてください。"),
        ({"false_alarm_amount": -5}, "誤報: 金額は0円以上100,000円以下にしてください。"),
    ],
)
def test_table_errors(changes, message):
    assert message in validate_table(replace(HIOKI, **changes))


def test_an_invalid_table_computes_nothing():
    with pytest.raises(ValueError, match="前の行と時間帯が重なっています"):
        compute_rewards(
            _with_disaster_bands(Band(0, 240, 1), Band(200, None, 2)), [act("災害", at(1), 1)]
        )


# --- invariants -------------------------------------------------------------------------------

_activity_specs = st.lists(
    st.tuples(
        st.sampled_from(["m1", "m2"]),
        st.sampled_from(["災害", "火災", "訓練", "警戒", "広報"]),
        st.integers(0, 4 * 24 * 60),  # start offset in minutes over four days
        st.integers(0, 30 * 60),
        st.booleans(),
        st.booleans(),
    ),
    max_size=8,
)


def _activities(specs) -> list[Activity]:
    base = at(1, 0)
    return [
        Activity(
            i,
            member,
            category,
            base + timedelta(minutes=offset),
            base + timedelta(minutes=offset + minutes),
            turned_back=back,
            false_alarm=false,
        )
        for i, (member, category, offset, minutes, back, false) in enumerate(specs)
    ]


_TABLES = {
    "MISAWA": MISAWA,
    # 久御山町 and 日置市 know only some categories: give them 三沢市's catch-all.
    "KUMIYAMA": replace(
        KUMIYAMA, rules=(*KUMIYAMA.rules, MISAWA.rules[-1]), other_category="その他"
    ),
    "HIOKI": replace(HIOKI, rules=(*HIOKI.rules, MISAWA.rules[-1]), other_category="その他"),
}


@settings(max_examples=60, deadline=None)
@given(specs=_activity_specs, name=st.sampled_from(sorted(_TABLES)))
def test_invariants(specs, name):
    table = _TABLES[name]
    activities = _activities(specs)
    result = compute_rewards(table, activities)
    lines = result.lines
    assert all(0 <= line.amount <= 100_000 for line in lines)
    for activity in activities:
        assert sum(line.minutes for line in result.for_activity(activity.key)) == activity.minutes
    caps = {r.name: r.daily_cap for r in table.rules}
    groups: dict = {}
    for line in lines:
        groups.setdefault((*line.day_key, line.category), []).append(line.amount)
    for (*_, category), amounts in groups.items():
        if caps[category] is not None:
            assert sum(amounts) <= caps[category]
    if table.highest_per_day_only:
        days: dict = {}
        for line in lines:
            days.setdefault(line.day_key, []).append(line.amount)
        assert all(sum(1 for a in amounts if a) <= 1 for amounts in days.values())
    assert sum(result.monthly_totals.values()) == sum(line.amount for line in lines)
    shuffled = compute_rewards(table, list(reversed(activities)))
    assert {a.key: shuffled.amount_for(a.key) for a in activities} == {
        a.key: result.amount_for(a.key) for a in activities
    }


@settings(max_examples=40, deadline=None)
@given(specs=_activity_specs, name=st.sampled_from(["KUMIYAMA", "HIOKI"]))
def test_the_8_hour_unit_changes_nothing_when_nothing_is_split(specs, name):
    table = _TABLES[name]
    activities = [a for a in _activities(specs) if a.minutes <= 8 * 60]
    with_unit = compute_rewards(table, activities)
    without = compute_rewards(replace(table, day_unit_hours=None), activities)
    assert [(line.amount, line.explanation) for line in with_unit.lines] == [
        (line.amount, line.explanation) for line in without.lines
    ]
