"""The one access decision (white paper 9.2.2 / 9.4.1): what a call needs, and whether an actor
holds all of it. Deny by default: no needs, an unknown function or a missing grant all refuse.

Services state their needs through services.base (transaction, guarded, require), which refuse
and record through this function; pages may ask it too, to hide what would be refused anyway.
"""

from __future__ import annotations

import re
import unicodedata
from enum import Enum
from typing import NamedTuple

from core.actor import Actor
from models.enums import Function, Level


class Need(NamedTuple):
    """A brigade function at a level (閲覧 / 編集 / 管理), for the whole brigade or, with
    `unit`, for what lies in that 所属: a grant narrowed to the holder's own 所属 meets such a
    need when the 所属 is the holder's or below it."""

    function: Function
    level: Level = Level.VIEW
    unit: str | None = None


class Platform(Enum):
    """A platform task (brigades, keys, notices): the operator or the command line, acting for
    no brigade."""

    TASK = "platform"


PLATFORM = Platform.TASK


def allows(actor: Actor, *needs: Need | tuple[Function, Level] | Platform) -> bool:
    """Whether the actor holds every need at once."""
    if not needs:
        return False
    for need in needs:
        if need is PLATFORM:
            if not actor.is_platform or actor.tenant_id is not None:
                return False
            continue
        function, level, unit = Need(*need)
        if actor.level(function) >= level:
            continue
        if unit is None or actor.unit_level(function) < level or not in_unit(unit, actor.unit):
            return False
    return True


_UNIT = re.compile(r"^(.*?分団)")


def unit_of(affiliation: str) -> str:
    """The 分団 part of a 所属 (「第1分団 第2部」 and 「第1分団第2部」 → 「第1分団」), else its
    first word (「機能別団員 学生班」 → 「機能別団員」); "" for none. After NFKC, as in_unit."""
    text = unicodedata.normalize("NFKC", affiliation or "").strip()
    if found := _UNIT.match(text):
        return found.group(1)
    return text.split()[0] if text else ""


def in_unit(affiliation: str, unit: str) -> bool:
    """Whether a 所属 is `unit` or lies below it: "第1分団 第2部" is in "第1分団", while
    "第10分団" is not in "第1". Compared after NFKC (full-width digits count as digits)."""
    affiliation = unicodedata.normalize("NFKC", affiliation or "").strip()
    unit = unicodedata.normalize("NFKC", unit or "").strip()
    if not unit or not affiliation.startswith(unit):
        return False
    rest = affiliation[len(unit) :]
    return not (unit[-1].isdigit() and rest[:1].isdigit())
