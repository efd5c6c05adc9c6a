"""The event log as CSV for download: one row per event, times in JST and in UTC, no personal
data (the actor is its label, the encrypted part is left out), cells escaped by csv_safe."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from formats import csv_safe

COLUMNS: tuple[tuple[str, Callable[[Any], Any]], ...] = (
    ("日時(JST)", lambda e: e.occurred_jst),
    ("日時(UTC)", lambda e: e.occurred_utc),
    ("連番", lambda e: e.seq),
    ("種別", lambda e: e.category_label),
    ("操作", lambda e: e.action),
    ("結果", lambda e: e.outcome),
    ("実行者種別", lambda e: e.actor_type),
    ("実行者ID", lambda e: e.actor_id),
    ("実行者", lambda e: e.actor_label),
    ("対象種別", lambda e: e.target_type),
    ("対象ID", lambda e: e.target_id),
    ("リクエストID", lambda e: e.request_id),
    ("接続元", lambda e: e.client_addr),
    ("ユーザーエージェント", lambda e: e.user_agent),
    ("詳細", lambda e: json.dumps(e.details, ensure_ascii=False, sort_keys=True, default=str)),
    ("個人情報部分", lambda e: "あり（暗号化・出力対象外）" if e.has_personal else ""),
)
HEADER = tuple(name for name, _ in COLUMNS)


def encode(events: Iterable[Any]) -> bytes:
    return csv_safe.encode(HEADER, ([get(e) for _, get in COLUMNS] for e in events))
