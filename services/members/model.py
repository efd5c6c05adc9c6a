"""The roster's shared parts: constants, options, filters and the editing scope."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from core.access import in_unit

TABLE = "member"
AFFILIATION_LIMIT = 100
# Free-text fields checked for control characters, and their labels; notes may span lines.
FREE_TEXT_LABELS = {"affiliation": "所属", "notes": "備考"}


@dataclass(frozen=True)
class RankOption:
    id: uuid.UUID
    name: str
    position: int


@dataclass(frozen=True)
class RoleOption:
    id: uuid.UUID
    name: str
    rank_id: uuid.UUID


@dataclass(frozen=True)
class MemberFilter:
    text: str = ""
    rank_ids: tuple[uuid.UUID, ...] = ()
    role_ids: tuple[uuid.UUID, ...] = ()
    statuses: tuple[str, ...] = ()
    affiliation: str = ""  # part of the 所属
    affiliations: tuple[str, ...] = ()  # whole 所属 labels, matched exactly
    line_linked: bool | None = None


@dataclass(frozen=True)
class EditScope:
    """Where the actor may edit the roster: the whole brigade, their own 所属, or nowhere."""

    whole_brigade: bool
    unit: str = ""

    @property
    def allows_editing(self) -> bool:
        return self.whole_brigade or bool(self.unit)

    def covers(self, affiliation: str) -> bool:
        return self.whole_brigade or (bool(self.unit) and in_unit(affiliation, self.unit))


@dataclass(frozen=True)
class AffiliationCount:
    label: str
    members: int  # of any status
    active: int
