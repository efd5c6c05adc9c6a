"""Safe bulk changes (#17): the one rule for how many records an import or a restore may retire
or delete on one click. Above the threshold — by default min(10 rows, 10 % of the brigade's
current records of that entity), each brigade's own on 団設定 — the brigade's name must be
typed; the services refuse otherwise, whatever the page shows. Pure functions: the callers
count, and read the brigade's limits, in their own transaction."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from services.errors import ValidationError

ROWS = 10  # by default at most this many rows without typing the name …
PERCENT = 10  # … and at most this share (%) of the records the brigade holds now
FIELD = "confirm_name"
ROWS_RANGE, PERCENT_RANGE = (1, 1000), (1, 100)


@dataclass(frozen=True)
class Limits:
    """A brigade's limits (団設定; services.brigade_settings.bulk_limits_in reads them)."""

    rows: int = ROWS
    percent: int = PERCENT

    @property
    def text(self) -> str:
        return f"{self.rows}件または{self.percent}%"


DEFAULT = Limits()


def threshold(total: int, limits: Limits = DEFAULT) -> float:
    """How many of `total` current records may go without typing the name (inclusive)."""
    return min(limits.rows, limits.percent / 100 * max(total, 0))


def needs_name(count: int, total: int, limits: Limits = DEFAULT) -> bool:
    """Whether retiring or deleting `count` of `total` records needs the typed name."""
    return count > 0 and count > threshold(total, limits)


def normalized(name: str | None) -> str:
    return unicodedata.normalize("NFKC", name or "").strip()


def name_matches(typed: str | None, brigade: str) -> bool:
    """Whether the typed confirmation is the brigade's name (after NFKC and trimming)."""
    return bool(normalized(typed)) and normalized(typed) == normalized(brigade)


def check(
    count: int,
    total: int,
    *,
    brigade: str,
    confirm_name: str | None,
    what: str,
    limits: Limits = DEFAULT,
) -> None:
    """Refuse (nothing written yet) a bulk change above the threshold unless `confirm_name` is
    the brigade's name after NFKC and trimming. `what` names the change: "退団 120名"."""
    if not needs_name(count, total, limits):
        return
    if name_matches(confirm_name, brigade):
        return
    wrong = "入力された名前が消防団名と一致しません。" if normalized(confirm_name) else ""
    raise ValidationError(
        {
            FIELD: f"{wrong}この登録では{what}になります（{total:,}件中）。"
            f"確認のため消防団名「{brigade}」を入力してください。"
        }
    )
