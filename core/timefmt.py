"""Times are stored in UTC; this is the one place that renders them in JST for display."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

JST = ZoneInfo("Asia/Tokyo")


def to_jst(value: datetime | None, *, seconds: bool = False) -> str:
    if value is None:
        return ""
    if value.tzinfo is None:
        raise ValueError("naive datetime: store and pass timezone-aware UTC")
    return value.astimezone(JST).strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


def clock_jst(value: datetime | None) -> str:
    """HH:MM in JST, for times of the same day beside their event (既読 12:34)."""
    return to_jst(value)[-5:]


def today_jst() -> date:
    """Today's date in Japan: what deadlines and "today" in the UI mean."""
    return datetime.now(JST).date()
