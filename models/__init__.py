"""All tables. Importing this package registers them on SQLModel.metadata."""

from models.account import LocalAccount, LoginThrottle, Session
from models.audit import AuditChainHead, AuditCheckpoint, AuditEvent, AuditPurgeGuard
from models.import_mapping import ImportMapping
from models.line import LineAuthRequest, LinePendingLogin, LineRegistration, MemberLine
from models.member import Member, MemberCreate, MemberPublic, MemberRole, MemberUpdate
from models.notice import MaintenanceNotice
from models.org import Permission, Rank, Role
from models.tenant import PLATFORM_TENANT_ID, Tenant, TenantKey
from models.water import WaterSource

# Platform tables carry no tenant_id, or carry one that is looked up before a tenant is known
# (login name, session token hash, LINE login state, registration user id); every other table is
# tenant-owned.
PLATFORM_TABLES = frozenset(
    {
        "tenant",
        "local_account",
        "user_session",
        "alembic_version",
        "line_auth_request",
        "line_pending_login",
        "line_registration",
        "maintenance_notice",
    }
)

__all__ = [
    "PLATFORM_TABLES",
    "PLATFORM_TENANT_ID",
    "AuditChainHead",
    "AuditCheckpoint",
    "AuditEvent",
    "AuditPurgeGuard",
    "ImportMapping",
    "LineAuthRequest",
    "LinePendingLogin",
    "LineRegistration",
    "LocalAccount",
    "LoginThrottle",
    "MaintenanceNotice",
    "Member",
    "MemberCreate",
    "MemberLine",
    "MemberPublic",
    "MemberRole",
    "MemberUpdate",
    "Permission",
    "Rank",
    "Role",
    "Session",
    "Tenant",
    "TenantKey",
    "WaterSource",
]
