"""The vocabulary pages need (enums and input schemas), so pages never import models."""

from models.enums import (
    FUNCTION_LABELS,
    HYDRANT_KINDS,
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
from models.water import (
    WaterInspectionCreate,
    WaterInspectionPublic,
    WaterSourceCreate,
    WaterSourcePublic,
    WaterSourceUpdate,
)

__all__ = [
    "FUNCTION_LABELS",
    "HYDRANT_KINDS",
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
    "WaterInspectionCreate",
    "WaterInspectionPublic",
    "WaterSourceCreate",
    "WaterSourcePublic",
    "WaterSourceUpdate",
]
