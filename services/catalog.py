"""The vocabulary pages need (enums and input schemas), so pages never import models."""

from formats.backup import MIN_PASSWORD_CHARS
from formats.csv_safe import Unencodable
from formats.opendata import ColumnMapping
from formats.tabular import ENCODING_LABELS, HEADER_SCAN_ROWS
from models.dispatch import IncidentStatus, MailStatus, MailTransport
from models.enums import (
    ETA_CHOICES,
    FUNCTION_LABELS,
    HYDRANT_KINDS,
    LEVEL_LABELS,
    OWNERSHIPS,
    RANK_NAMES,
    WATER_SOURCE_KINDS,
    WATER_SOURCE_STATUSES,
    Answer,
    AuditCategory,
    Function,
    Level,
    MemberStatus,
)
from models.member import MemberCreate, MemberPublic, MemberUpdate
from models.report import ReportStatus
from models.water import (
    WaterInspectionCreate,
    WaterInspectionPublic,
    WaterSourceCreate,
    WaterSourcePublic,
    WaterSourceUpdate,
)
from services.imports import (
    ImportPreview,
    ImportResult,
    MissingRows,
    Progress,
    RowPlan,
    RowStatus,
)

__all__ = [
    "ENCODING_LABELS",
    "ETA_CHOICES",
    "FUNCTION_LABELS",
    "HEADER_SCAN_ROWS",
    "HYDRANT_KINDS",
    "LEVEL_LABELS",
    "MIN_PASSWORD_CHARS",
    "OWNERSHIPS",
    "RANK_NAMES",
    "WATER_SOURCE_KINDS",
    "WATER_SOURCE_STATUSES",
    "Answer",
    "AuditCategory",
    "ColumnMapping",
    "Function",
    "ImportPreview",
    "ImportResult",
    "IncidentStatus",
    "Level",
    "MailStatus",
    "MailTransport",
    "MemberCreate",
    "MemberPublic",
    "MemberStatus",
    "MemberUpdate",
    "MissingRows",
    "Progress",
    "ReportStatus",
    "RowPlan",
    "RowStatus",
    "Unencodable",
    "WaterInspectionCreate",
    "WaterInspectionPublic",
    "WaterSourceCreate",
    "WaterSourcePublic",
    "WaterSourceUpdate",
]
