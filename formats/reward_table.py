"""A brigade's 出動報酬 table (core.rewards.RewardTable) as the JSON stored in
report_settings.reward_table (#22).

Strict both ways: every key is written, and reading refuses a missing or unknown key, a value
of the wrong type (a bool is no number and a number no bool) or an unknown rounding, naming the
field (「rules[2].bands[1].amount」), so a damaged or hand-edited value is never half-read.
Whether the table makes sense (bands that meet, amounts in range) is core.rewards.validate_table's
question, not this module's.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

from core.rewards import Band, CategoryRule, HourRounding, RewardTable

TABLE_KEYS = (
    "name",
    "rules",
    "aliases",
    "other_category",
    "highest_per_day_only",
    "day_unit_hours",
    "turned_back_amount",
    "false_alarm_amount",
)
RULE_KEYS = ("name", "bands", "per_day", "hourly_rate", "rounding", "daily_cap")
BAND_KEYS = ("from_minutes", "to_minutes", "amount")
UNREADABLE = "出動報酬の表（JSON）が読めません"
T = TypeVar("T")


def to_json(table: RewardTable) -> str:
    return json.dumps(
        {
            "name": table.name,
            "rules": [_rule_dict(rule) for rule in table.rules],
            "aliases": dict(table.aliases),
            "other_category": table.other_category,
            "highest_per_day_only": table.highest_per_day_only,
            "day_unit_hours": table.day_unit_hours,
            "turned_back_amount": table.turned_back_amount,
            "false_alarm_amount": table.false_alarm_amount,
        },
        ensure_ascii=False,
    )


def _rule_dict(rule: CategoryRule) -> dict[str, Any]:
    return {
        "name": rule.name,
        "bands": [
            {"from_minutes": b.from_minutes, "to_minutes": b.to_minutes, "amount": b.amount}
            for b in rule.bands
        ],
        "per_day": rule.per_day,
        "hourly_rate": rule.hourly_rate,
        "rounding": rule.rounding.value,
        "daily_cap": rule.daily_cap,
    }


def from_json(text: str) -> RewardTable:
    """The table `to_json` wrote; ValueError (in Japanese, naming the field) otherwise."""
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise ValueError(f"{UNREADABLE}: JSONの形式ではありません。") from exc
    fields = _object(data, "表", TABLE_KEYS)
    aliases = _object(fields["aliases"], "aliases", None)
    return RewardTable(
        name=_text(fields["name"], "name"),
        rules=tuple(
            _rule(item, f"rules[{n}]") for n, item in enumerate(_list(fields["rules"], "rules"), 1)
        ),
        aliases={
            _text(kind, "aliases"): _text(target, f"aliases.{kind}")
            for kind, target in aliases.items()
        },
        other_category=_optional(fields["other_category"], "other_category", _text),
        highest_per_day_only=_bool(fields["highest_per_day_only"], "highest_per_day_only"),
        day_unit_hours=_optional(fields["day_unit_hours"], "day_unit_hours", _int),
        turned_back_amount=_optional(fields["turned_back_amount"], "turned_back_amount", _int),
        false_alarm_amount=_optional(fields["false_alarm_amount"], "false_alarm_amount", _int),
    )


def _rule(data: Any, where: str) -> CategoryRule:
    fields = _object(data, where, RULE_KEYS)
    bands = _list(fields["bands"], f"{where}.bands")
    rounding = fields["rounding"]
    if rounding not in {r.value for r in HourRounding}:
        raise _error(f"{where}.rounding", "は started か whole にしてください。")
    return CategoryRule(
        name=_text(fields["name"], f"{where}.name"),
        bands=tuple(_band(item, f"{where}.bands[{n}]") for n, item in enumerate(bands, 1)),
        per_day=_bool(fields["per_day"], f"{where}.per_day"),
        hourly_rate=_optional(fields["hourly_rate"], f"{where}.hourly_rate", _int),
        rounding=HourRounding(rounding),
        daily_cap=_optional(fields["daily_cap"], f"{where}.daily_cap", _int),
    )


def _band(data: Any, where: str) -> Band:
    fields = _object(data, where, BAND_KEYS)
    return Band(
        from_minutes=_int(fields["from_minutes"], f"{where}.from_minutes"),
        to_minutes=_optional(fields["to_minutes"], f"{where}.to_minutes", _int),
        amount=_int(fields["amount"], f"{where}.amount"),
    )


def _error(where: str, problem: str) -> ValueError:
    return ValueError(f"{UNREADABLE}: 「{where}」{problem}")


def _object(data: Any, where: str, keys: tuple[str, ...] | None) -> dict[str, Any]:
    """A JSON object; with `keys`, exactly those keys."""
    if not isinstance(data, dict):
        raise _error(where, "はオブジェクトにしてください。")
    if keys is not None:
        if unknown := sorted(set(data) - set(keys)):
            raise _error(where, f"に不明な項目があります: {'、'.join(unknown)}")
        if missing := [k for k in keys if k not in data]:
            raise _error(where, f"に項目がありません: {'、'.join(missing)}")
    return data


def _list(data: Any, where: str) -> list[Any]:
    if not isinstance(data, list):
        raise _error(where, "は配列にしてください。")
    return data


def _text(data: Any, where: str) -> str:
    if not isinstance(data, str):
        raise _error(where, "は文字列にしてください。")
    return data


def _int(data: Any, where: str) -> int:
    if isinstance(data, bool) or not isinstance(data, int):
        raise _error(where, "は整数にしてください。")
    return data


def _bool(data: Any, where: str) -> bool:
    if not isinstance(data, bool):
        raise _error(where, "は true か false にしてください。")
    return data


def _optional(data: Any, where: str, read: Callable[[Any, str], T]) -> T | None:
    return None if data is None else read(data, where)
