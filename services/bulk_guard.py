"""Safe bulk changes (#17): the one rule for how many records an import or a restore may retire
or delete on one click. Above the threshold — min(10 rows, 10 % of the brigade's current records
of that entity) — the brigade's name must be typed; the services refuse otherwise, whatever the
page shows. Pure functions: the callers count, in their own transaction."""

from __future__ import annotations

import unicodedata

from services.errors import ValidationError

ROWS = 10  # at most this many rows without typing the name …
SHARE = 0.10  # … and at most this share of the records the brigade holds now
FIELD = "confirm_name"


def threshold(total: int) -> float:
    """How many of `total` current records may go without typing the name (inclusive)."""
    return min(ROWS, SHARE * max(total, 0))


def needs_name(count: int, total: int) -> bool:
    """Whether retiring or deleting `count` of `total` records needs the typed name."""
    return count > 0 and count > threshold(total)


def normalized(name: str | None) -> str:
    return unicodedata.normalize("NFKC", name or "").strip()


def name_matches(typed: str | None, brigade: str) -> bool:
    """Whether the typed confirmation is the brigade's name (after NFKC and trimming)."""
    return bool(normalized(typed)) and normalized(typed) == normalized(brigade)


def check(count: int, total: int, *, brigade: str, confirm_name: str | None, what: str) -> None:
    """Refuse (nothing written yet) a bulk change above the threshold unless `confirm_name` is
    the brigade's name after NFKC and trimming. `what` names the change: "退団 120名"."""
    if not needs_name(count, total):
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
