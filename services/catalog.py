"""The vocabulary pages need (enums and input schemas), so pages never import models."""

from models.enums import (
    FUNCTION_LABELS,
    LEVEL_LABELS,
    OWNERSHIPS,
    RANK_NAMES,
    WATER_SOURCE_KINDS,
    WATER_SOURCE_STATUSES,
    AuditCategory,
    Function,
    Level,
    MemberStatus,
)
from models.member import MemberCreate, MemberPublic, MemberUpdate

__all__ = [
    "FUNCTION_LABELS",
    "LEVEL_LABELS",
    "OWNERSHIPS",
    "RANK_NAMES",
    "WATER_SOURCE_KINDS",
    "WATER_SOURCE_STATUSES",
    "AuditCategory",
    "Function",
    "Level",
    "MemberCreate",
    "MemberPublic",
    "MemberStatus",
    "MemberUpdate",
]
