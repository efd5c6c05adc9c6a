"""The 出動報酬 engine (#22): a brigade's reward rule table and what it pays for each activity.

Pure: no database, no Streamlit. The report forms, the approval chain and the monthly export
build on it later; the table editor shows `validate_table`'s messages.

How an activity is paid (the interpretations, each a field of the table where municipalities
differ):

- Length: whole minutes from start to end (seconds dropped), so 3:59 is in the "under 4 h" band
  and 4:00 in the next. A band runs from `from_minutes` (inclusive) to `to_minutes` (exclusive,
  or open). A rule written 「4時間まで」 (久御山町) is the band 0–241 minutes.
- Pay day: an activity belongs to the JST calendar day it starts on, also when it runs past
  midnight. Only the N-hour unit splits it (next point).
- N-hour units (`day_unit_hours`, 日置市 8 h, 久御山町 8 h): an activity longer than N hours is
  cut from its start into N-hour pieces, the last one shorter; each piece is a pay day of its
  own, priced by the table for its own length. Midnight does not cut. 日置市's 訓令 (第3条第3項:
  「8時間をもって1日とし、8時間未満の端数があるときは、その端数は1日とする」) thus pays 8 h 01 min as
  two days; with its flat day amount both days get ¥8,000. The first piece shares its calendar
  day with the member's other activities that day (for "per day" amounts, daily caps and
  "highest per day only"); a later piece is a day only of that activity: it neither absorbs nor
  is absorbed by another activity. The N-hour rule applies to one activity, not to the sum of a
  day's activities.
- Turned back before arrival / false alarm (日置市 ¥5,000): a flagged activity is paid that flat
  amount instead of its time-based amount, when the table sets one; otherwise the flag changes
  nothing.
- Hourly rates (久御山町 「1時間までを1,000円とし、1時間を超えるごとに1,000円を加算」): `STARTED`
  counts each started hour (at least one), `WHOLE` only full hours; per activity, then capped.
- "Per day" bands (警戒 ¥2,500/day): the member's minutes in that category on that pay day are
  added up, the band of the sum is paid once, on the day's first activity; the others show 0.
- Daily cap: the member's amounts in one category on one pay day, in start order, are cut so
  their sum stays within the cap.
- "Highest per day only" (日置市): of a member's pay lines on one pay day, the highest is paid
  (the earliest on a tie), the others 0 with the reason.
- A category not in the table: its sub-kind mapping (火災 → 災害) decides, then the table's
  catch-all category (三沢市 その他), else it is an error.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from enum import StrEnum

from core.timefmt import JST

DISASTER = "災害"
DISASTER_KINDS: tuple[str, ...] = ("火災", "風水害", "震災", "捜索")
DISASTER_ALIASES: Mapping[str, str] = {kind: DISASTER for kind in DISASTER_KINDS}
MAX_AMOUNT = 100_000  # yen for one pay line; a sanity bound for the editor, not a legal limit
MAX_MINUTES = 7 * 24 * 60


class HourRounding(StrEnum):
    STARTED = "started"
    WHOLE = "whole"

    @property
    def label(self) -> str:
        return {HourRounding.STARTED: "端数切り上げ", HourRounding.WHOLE: "端数切り捨て"}[self]


@dataclass(frozen=True)
class Band:
    from_minutes: int
    to_minutes: int | None  # exclusive; None = open ("以上")
    amount: int

    def holds(self, minutes: int) -> bool:
        return self.from_minutes <= minutes and (
            self.to_minutes is None or minutes < self.to_minutes
        )

    @property
    def label(self) -> str:
        if self.from_minutes == 0 and self.to_minutes is None:
            return ""
        if self.from_minutes == 0:
            return f"{duration_label(self.to_minutes or 0)}未満"
        low = f"{duration_label(self.from_minutes)}以上"
        return low if self.to_minutes is None else f"{low}{duration_label(self.to_minutes)}未満"


@dataclass(frozen=True)
class CategoryRule:
    """One category: either hour bands or an hourly rate; optionally a cap per day."""

    name: str
    bands: tuple[Band, ...] = ()
    per_day: bool = False  # bands only: paid once per pay day, by the day's total minutes
    hourly_rate: int | None = None
    rounding: HourRounding = HourRounding.STARTED
    daily_cap: int | None = None

    def band_for(self, minutes: int) -> Band:
        return next(b for b in self.bands if b.holds(minutes))

    def hours_for(self, minutes: int) -> int:
        if self.rounding is HourRounding.STARTED:
            return max(1, math.ceil(minutes / 60))
        return minutes // 60


@dataclass(frozen=True)
class RewardTable:
    """A brigade's 出動報酬 rules (#22); the presets below are examples to start from."""

    name: str
    rules: tuple[CategoryRule, ...]
    aliases: Mapping[str, str] = field(default_factory=lambda: dict(DISASTER_ALIASES))
    other_category: str | None = None  # catch-all for categories the table does not name
    highest_per_day_only: bool = False
    day_unit_hours: int | None = None
    turned_back_amount: int | None = None
    false_alarm_amount: int | None = None

    def rule_for(self, category: str) -> CategoryRule:
        by_name = {r.name: r for r in self.rules}
        name = self.aliases.get(category, category)
        if name in by_name:
            return by_name[name]
        if self.other_category in by_name:
            return by_name[self.other_category]
        raise ValueError(f"区分「{category}」の出動報酬が定められていません。")

    @property
    def categories(self) -> tuple[str, ...]:
        """What a report form may offer: each category, then each sub-kind."""
        return tuple(r.name for r in self.rules) + tuple(self.aliases)


@dataclass(frozen=True)
class Activity:
    key: Hashable  # the report's id
    member: Hashable
    category: str
    start: datetime
    end: datetime
    turned_back: bool = False
    false_alarm: bool = False

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("naive datetime: pass timezone-aware times")
        if self.end < self.start:
            raise ValueError("終了時刻は開始時刻より後にしてください。")

    @property
    def minutes(self) -> int:
        return int((self.end - self.start).total_seconds()) // 60


@dataclass(frozen=True)
class PayLine:
    """One pay day of one activity (several when the N-hour unit splits it)."""

    activity: Activity
    day: date  # JST
    unit: int  # 0 unless the N-hour unit split the activity
    start: datetime
    minutes: int
    category: str  # the table's category the activity was paid under
    base_amount: int
    amount: int
    explanation: str
    adjustments: tuple[str, ...] = ()
    flat: bool = False

    @property
    def day_key(self) -> tuple[Hashable, ...]:
        if self.unit == 0:
            return (self.activity.member, self.day)
        return (self.activity.member, self.day, self.activity.key, self.unit)

    def adjusted(self, amount: int, reason: str) -> PayLine:
        return replace(self, amount=amount, adjustments=(*self.adjustments, reason))


@dataclass(frozen=True)
class RewardResult:
    lines: tuple[PayLine, ...]

    def for_activity(self, key: Hashable) -> tuple[PayLine, ...]:
        return tuple(line for line in self.lines if line.activity.key == key)

    def amount_for(self, key: Hashable) -> int:
        return sum(line.amount for line in self.for_activity(key))

    @property
    def monthly_totals(self) -> dict[tuple[Hashable, str], int]:
        """(member, "YYYY-MM" of the JST pay day) → yen."""
        totals: dict[tuple[Hashable, str], int] = defaultdict(int)
        for line in self.lines:
            totals[(line.activity.member, f"{line.day:%Y-%m}")] += line.amount
        return dict(totals)


def duration_label(minutes: int) -> str:
    hours, rest = divmod(minutes, 60)
    if not hours:
        return f"{rest}分"
    return f"{hours}時間{rest}分" if rest else f"{hours}時間"


def yen(amount: int) -> str:
    return f"{amount:,}円"


# --- validation ---------------------------------------------------------------------------


def validate_table(table: RewardTable) -> list[str]:
    """Every problem, in Japanese, naming the category and band row (1-based)."""
    errors: list[str] = []
    if not table.name.strip():
        errors.append("名前を入力してください。")
    names = [r.name for r in table.rules]
    if not table.rules:
        errors.append("区分を1つ以上設定してください。")
    for rule in table.rules:
        errors.extend(_rule_errors(rule))
    for name in sorted({n for n in names if names.count(n) > 1}):
        errors.append(f"{name}: 同じ区分が2回以上あります。")
    for alias, target in table.aliases.items():
        if alias in names:
            errors.append(f"{alias}: 区分と同じ名前は読み替えにできません。")
        if target not in names:
            errors.append(f"{alias}: 読み替え先の区分「{target}」がありません。")
    if table.other_category is not None and table.other_category not in names:
        errors.append(f"その他の活動の区分「{table.other_category}」がありません。")
    if table.day_unit_hours is not None and not 1 <= table.day_unit_hours <= 24:
        errors.append("日の単位は1時間以上24時間以下にしてください。")
    for label, amount in (
        ("現場到着前の引揚げ", table.turned_back_amount),
        ("誤報", table.false_alarm_amount),
    ):
        if amount is not None and not 0 <= amount <= MAX_AMOUNT:
            errors.append(f"{label}: 金額は0円以上{yen(MAX_AMOUNT)}以下にしてください。")
    return errors


def _rule_errors(rule: CategoryRule) -> list[str]:
    name = rule.name.strip() or "（区分名なし）"
    errors = [] if rule.name.strip() else ["区分名を入力してください。"]
    if bool(rule.bands) == (rule.hourly_rate is not None):
        errors.append(f"{name}: 時間帯の表か時間単価のどちらか一方を設定してください。")
    if rule.hourly_rate is not None:
        if rule.per_day:
            errors.append(f"{name}: 1日あたりの金額は時間帯の表でのみ指定できます。")
        if not 0 < rule.hourly_rate <= MAX_AMOUNT:
            errors.append(f"{name}: 時間単価は1円以上{yen(MAX_AMOUNT)}以下にしてください。")
        if rule.daily_cap is not None and rule.daily_cap < rule.hourly_rate:
            errors.append(f"{name}: 1日の上限は時間単価以上にしてください。")
    if rule.daily_cap is not None and not 0 < rule.daily_cap <= MAX_AMOUNT:
        errors.append(f"{name}: 1日の上限は1円以上{yen(MAX_AMOUNT)}以下にしてください。")
    errors.extend(_band_errors(name, rule.bands))
    return errors


def _band_errors(name: str, bands: tuple[Band, ...]) -> list[str]:
    errors: list[str] = []
    previous: Band | None = None
    for row, band in enumerate(bands, start=1):
        where = f"{name} {row}行目"
        if not 0 <= band.amount <= MAX_AMOUNT:
            errors.append(f"{where}: 金額は0円以上{yen(MAX_AMOUNT)}以下にしてください。")
        if band.from_minutes < 0 or band.from_minutes > MAX_MINUTES:
            errors.append(f"{where}: 開始は0分以上にしてください。")
        if band.to_minutes is not None and band.to_minutes <= band.from_minutes:
            errors.append(
                f"{where}: 開始と終了が重なっています（終了は開始より後にしてください）。"
            )
        if previous is None and band.from_minutes != 0:
            errors.append(f"{where}: 最初の行は0分から始めてください。")
        if previous is not None:
            if previous.to_minutes is None:
                errors.append(f"{where}: 前の行が終了なし（以上）のため、この行は使われません。")
            elif band.from_minutes < previous.to_minutes:
                errors.append(f"{where}: 前の行と時間帯が重なっています。")
            elif band.from_minutes > previous.to_minutes:
                errors.append(f"{where}: 前の行との間に空きがあります。")
        previous = band
    if previous is not None and previous.to_minutes is not None:
        errors.append(f"{name} {len(bands)}行目: 最後の行は終了なし（以上）にしてください。")
    return errors


# --- computation --------------------------------------------------------------------------


def compute_rewards(table: RewardTable, activities: Iterable[Activity]) -> RewardResult:
    """The pay lines of all activities (any members, any months) under one table."""
    errors = validate_table(table)
    if errors:
        raise ValueError("出動報酬の表に誤りがあります: " + " ".join(errors))
    ordered = sorted(activities, key=lambda a: (a.start, a.end, str(a.member), str(a.key)))
    lines = [line for activity in ordered for line in _base_lines(table, activity)]
    lines = _merge_per_day(table, lines)
    lines = _apply_daily_caps(table, lines)
    if table.highest_per_day_only:
        lines = _keep_highest_per_day(lines)
    return RewardResult(tuple(lines))


def _base_lines(table: RewardTable, activity: Activity) -> list[PayLine]:
    rule = table.rule_for(activity.category)
    shown = rule.name if activity.category == rule.name else f"{activity.category}（{rule.name}）"
    flat = _flat_amount(table, activity)
    if flat is not None:
        label, amount = flat
        return [
            PayLine(
                activity=activity,
                day=activity.start.astimezone(JST).date(),
                unit=0,
                start=activity.start,
                minutes=activity.minutes,
                category=rule.name,
                base_amount=amount,
                amount=amount,
                explanation=f"{shown} {label} {yen(amount)}",
                flat=True,
            )
        ]
    lines = []
    for unit, (start, minutes) in enumerate(_pieces(table, activity)):
        amount, text = _price(rule, minutes)
        if unit or minutes != activity.minutes:
            text += f"（{table.day_unit_hours}時間単位の{unit + 1}日目・{duration_label(minutes)}）"
        lines.append(
            PayLine(
                activity=activity,
                day=start.astimezone(JST).date(),
                unit=unit,
                start=start,
                minutes=minutes,
                category=rule.name,
                base_amount=amount,
                amount=amount,
                explanation=f"{shown} {text}",
            )
        )
    return lines


def _flat_amount(table: RewardTable, activity: Activity) -> tuple[str, int] | None:
    if activity.false_alarm and table.false_alarm_amount is not None:
        return "誤報", table.false_alarm_amount
    if activity.turned_back and table.turned_back_amount is not None:
        return "現場到着前の引揚げ", table.turned_back_amount
    return None


def _pieces(table: RewardTable, activity: Activity) -> list[tuple[datetime, int]]:
    total = activity.minutes
    unit = (table.day_unit_hours or 0) * 60
    if not unit or total <= unit:
        return [(activity.start, total)]
    return [
        (activity.start + timedelta(minutes=offset), min(unit, total - offset))
        for offset in range(0, total, unit)
    ]


def _price(rule: CategoryRule, minutes: int) -> tuple[int, str]:
    if rule.hourly_rate is not None:
        hours = rule.hours_for(minutes)
        amount = hours * rule.hourly_rate
        return amount, (
            f"{hours}時間分 × {yen(rule.hourly_rate)} = {yen(amount)}"
            f"（{duration_label(minutes)}・{rule.rounding.label}）"
        )
    band = rule.band_for(minutes)
    parts = ["1日" if rule.per_day else "", band.label, yen(band.amount)]
    return band.amount, " ".join(p for p in parts if p)


def _groups(lines: list[PayLine]) -> dict[tuple[Hashable, ...], list[int]]:
    groups: dict[tuple[Hashable, ...], list[int]] = defaultdict(list)
    for index, line in enumerate(lines):
        groups[(*line.day_key, line.category)].append(index)
    return groups


def _merge_per_day(table: RewardTable, lines: list[PayLine]) -> list[PayLine]:
    rules = {r.name: r for r in table.rules}
    for indexes in _groups(lines).values():
        rule = rules[lines[indexes[0]].category]
        timed = [i for i in indexes if not lines[i].flat]
        if not rule.per_day or len(timed) < 2:
            continue
        total = sum(lines[i].minutes for i in timed)
        amount, text = _price(rule, total)
        first, *rest = timed
        lines[first] = lines[first].adjusted(
            amount, f"同日の{rule.name}の合計{duration_label(total)}で1日分: {text}"
        )
        for i in rest:
            lines[i] = lines[i].adjusted(0, f"同日の{rule.name}は1日分として計算済み: 0円")
    return lines


def _apply_daily_caps(table: RewardTable, lines: list[PayLine]) -> list[PayLine]:
    rules = {r.name: r for r in table.rules}
    for indexes in _groups(lines).values():
        cap = rules[lines[indexes[0]].category].daily_cap
        if cap is None:
            continue
        paid = 0
        for i in indexes:
            allowed = max(0, min(lines[i].amount, cap - paid))
            if allowed < lines[i].amount:
                cut = lines[i].amount - allowed
                lines[i] = lines[i].adjusted(
                    allowed, f"1日の上限{yen(cap)}を超える{yen(cut)}を減額: {yen(allowed)}"
                )
            paid += allowed
    return lines


def _keep_highest_per_day(lines: list[PayLine]) -> list[PayLine]:
    by_day: dict[tuple[Hashable, ...], list[int]] = defaultdict(list)
    for index, line in enumerate(lines):
        by_day[line.day_key].append(index)
    for indexes in by_day.values():
        best = max(indexes, key=lambda i: (lines[i].amount, -i))
        kept = lines[best]
        for i in indexes:
            if i != best and lines[i].amount:
                lines[i] = lines[i].adjusted(
                    0, f"同日のより高い報酬（{kept.category} {yen(kept.amount)}）のみ支給: 0円"
                )
    return lines


# --- presets ------------------------------------------------------------------------------

_UNDER_4H = 240
_DAY = 7 * 60 + 45  # the national standard's day of 災害 duty

MISAWA = RewardTable(
    name="三沢市",
    rules=(
        CategoryRule(
            DISASTER,
            bands=(
                Band(0, _UNDER_4H, 2_500),
                Band(_UNDER_4H, _DAY, 5_000),
                Band(_DAY, None, 8_000),
            ),
        ),
        CategoryRule("訓練", bands=(Band(0, _UNDER_4H, 2_500), Band(_UNDER_4H, None, 3_500))),
        CategoryRule("警戒", bands=(Band(0, None, 2_500),), per_day=True),
        CategoryRule("その他", bands=(Band(0, None, 1_000),)),
    ),
    other_category="その他",
)
"""三沢市: 災害 and 訓練 per call by hours, 警戒 per day; 広報, 会議, 研修 … fall under その他."""

_UP_TO_4H = 241  # 「4時間まで」 includes 4:00

KUMIYAMA = RewardTable(
    name="久御山町",
    rules=(
        CategoryRule(DISASTER, hourly_rate=1_000, rounding=HourRounding.STARTED, daily_cap=8_000),
        CategoryRule(
            "警戒",
            bands=(Band(0, _UP_TO_4H, 2_000), Band(_UP_TO_4H, None, 3_500)),
            daily_cap=3_500,
        ),
        CategoryRule(
            "訓練",
            bands=(Band(0, _UP_TO_4H, 2_000), Band(_UP_TO_4H, None, 3_500)),
            daily_cap=3_500,
        ),
    ),
    day_unit_hours=8,
)
"""久御山町 (出動報酬に関する要綱, 2022, 第2条): 災害 1,000 yen per started hour, at most 8,000 a
day; 警戒 and 訓練 2,000 yen up to 4 h, 3,500 over 4 h, at most 3,500 a day; about 8 h is a day,
and longer duty is paid by the hour in further days (第2項), hence the 8-hour unit."""

HIOKI = RewardTable(
    name="日置市",
    rules=(
        CategoryRule(DISASTER, bands=(Band(0, None, 8_000),), per_day=True),
        CategoryRule("広報", bands=(Band(0, None, 2_000),), per_day=True),
    ),
    highest_per_day_only=True,
    day_unit_hours=8,
    turned_back_amount=5_000,
    false_alarm_amount=5_000,
)
"""日置市 (規程 令和4年消防本部訓令第1号 第3条): the day's highest amount only; over 8 h or
across days in 8-hour units, a remainder counting as a day; 5,000 yen when turned back before
arrival or a false alarm; 広報 in the fire season 2,000 yen. The 災害 day amount of the 規則 is
not in the issue: the national standard of 8,000 yen a day stands in for it."""

PRESETS: tuple[RewardTable, ...] = (MISAWA, KUMIYAMA, HIOKI)
