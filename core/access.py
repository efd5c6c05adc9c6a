"""The one access decision (white paper 9.2.2 / 9.4.1): what a call needs, and whether an actor
holds all of it. Deny by default: no needs, an unknown function or a missing grant all refuse.

Services state their needs through services.base (transaction, guarded, require), which refuse
and record through this function; pages may ask it too, to hide what would be refused anyway.
"""

from __future__ import annotations

from enum import Enum
from typing import NamedTuple

from core.actor import Actor
from models.enums import Function, Level


class Need(NamedTuple):
    """A brigade function at a level (閲覧 / 編集 / 管理)."""

    function: Function
    level: Level = Level.VIEW


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
        function, level = Need(*need)
        if actor.level(function) < level:
            return False
    return True
