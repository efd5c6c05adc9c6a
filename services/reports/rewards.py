"""The brigade's 出動報酬 table (#22): read by every member who reports (the form offers its
categories), changed by 出動報告 管理 with the settings row's version as the guard, and tried
out (試算) on the editor page before it is saved.

The table is stored as JSON on the report settings row (formats.reward_table); what makes a
table valid is core.rewards.validate_table, plus the size bounds here: a category name must fit
the report's category column, and a table is read on every report, so it stays small."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from core.actor import Actor
from core.rewards import Activity, PayLine, RewardTable, compute_rewards, validate_table
from formats.reward_table import from_json, to_json
from services.base import Tx, require, transaction
from services.errors import ValidationError
from services.reports.settings import ADMIN, OWN, settings_changed, settings_in, settings_to_change

MAX_CATEGORIES = 30
MAX_BANDS = 20
MAX_ALIASES = 50
MAX_NAME_CHARS = 20  # models.report.ActivityReport.category
MAX_TABLE_NAME_CHARS = 50
TRIAL = "試算"
OPTIONS = (
    "name",
    "aliases",
    "other_category",
    "highest_per_day_only",
    "day_unit_hours",
    "turned_back_amount",
    "false_alarm_amount",
)


def table_in(tx: Tx) -> RewardTable | None:
    """The saved table, or None when the brigade has not saved one."""
    stored = settings_in(tx).reward_table
    return from_json(stored) if stored else None


def get_reward_table(actor: Actor) -> tuple[RewardTable | None, int]:
    """The saved table (None: none yet) and the settings version to save against."""
    with transaction(actor, OWN, action="reports.reward_table.get", read_only=True) as tx:
        row = settings_in(tx)
        return (from_json(row.reward_table) if row.reward_table else None), row.version


def save_reward_table(actor: Actor, table: RewardTable, *, expected_version: int) -> int:
    """Replace the brigade's table; every problem is reported at once. Returns the new version."""
    with transaction(actor, ADMIN, action="reports.reward_table.save") as tx:
        _check(table)
        row = settings_to_change(tx, expected_version)
        before = from_json(row.reward_table) if row.reward_table else None
        row.reward_table = to_json(table)
        settings_changed(row)
        tx.audit(
            "reports.reward_table.save",
            target_type="report_settings",
            details=changes(before, table),
        )
        tx.commit()
        return row.version


def preview(
    actor: Actor,
    table: RewardTable,
    category: str,
    start: datetime,
    end: datetime,
    *,
    turned_back: bool = False,
    false_alarm: bool = False,
) -> tuple[PayLine, ...]:
    """The pay lines of one trial activity under `table` as edited (not necessarily saved)."""
    require(actor, ADMIN, action="reports.reward_table.preview")
    _check(table)
    if category not in table.categories and table.other_category is None:
        raise ValidationError({"category": f"区分「{category}」は表にありません。"})
    try:
        activity = Activity(TRIAL, TRIAL, category, start, end, turned_back, false_alarm)
    except ValueError as exc:
        raise ValidationError({"end": str(exc)}) from None
    return compute_rewards(table, [activity]).lines


def _check(table: RewardTable) -> None:
    errors = table_problems(table)
    if errors:
        raise ValidationError({str(n): message for n, message in enumerate(errors, start=1)})


def table_problems(table: RewardTable) -> list[str]:
    """What keeps a table from being saved (also a restored one, services/backup/reports.py)."""
    return [*_size_errors(table), *validate_table(table)]


def _size_errors(table: RewardTable) -> list[str]:
    errors = []
    if len(table.name) > MAX_TABLE_NAME_CHARS:
        errors.append(f"名前は{MAX_TABLE_NAME_CHARS}文字までです。")
    if len(table.rules) > MAX_CATEGORIES:
        errors.append(f"区分は{MAX_CATEGORIES}個までです。")
    if len(table.aliases) > MAX_ALIASES:
        errors.append(f"読み替えは{MAX_ALIASES}個までです。")
    names = [r.name for r in table.rules] + list(table.aliases)
    errors.extend(
        f"{name[:MAX_NAME_CHARS]}…: 区分名は{MAX_NAME_CHARS}文字までです。"
        for name in names
        if len(name) > MAX_NAME_CHARS
    )
    errors.extend(
        f"{r.name}: 時間帯は{MAX_BANDS}行までです。"
        for r in table.rules
        if len(r.bands) > MAX_BANDS
    )
    return errors


def changes(before: RewardTable | None, after: RewardTable) -> dict[str, Any]:
    """What a save changed, for the audit log: category names and options, no amounts of
    anyone (the table holds no personal data)."""
    old = {r.name: r for r in before.rules} if before else {}
    new = {r.name: r for r in after.rules}
    options = {
        key: [_option(before, key), _option(after, key)]
        for key in OPTIONS
        if _option(before, key) != _option(after, key)
    }
    return {
        "added": [name for name in new if name not in old],
        "removed": [name for name in old if name not in new],
        "changed": [name for name in new if name in old and old[name] != new[name]],
        "options": options,
    }


def _option(table: RewardTable | None, key: str) -> Any:
    value = getattr(table, key) if table else None
    return dict(value) if isinstance(value, Mapping) else value
