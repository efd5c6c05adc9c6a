"""All tables. Importing this package registers them on SQLModel.metadata."""

from models.account import LocalAccount, Session
from models.audit import AuditChainHead, AuditEvent
from models.member import Member, MemberCreate, MemberPublic, MemberRole, MemberUpdate
from models.org import Permission, Rank, Role
from models.tenant import PLATFORM_TENANT_ID, Tenant, TenantKey
from models.water import WaterSource

# Platform tables carry no tenant_id, or carry one that is looked up before a tenant is known
# (login name, session token hash); every other table is tenant-owned.
PLATFORM_TABLES = frozenset({"tenant", "local_account", "user_session", "alembic_version"})

__all__ = [
    "PLATFORM_TABLES",
    "PLATFORM_TENANT_ID",
    "AuditChainHead",
    "AuditEvent",
    "LocalAccount",
    "Member",
    "MemberCreate",
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
