"""All tables. Importing this package registers them on SQLModel.metadata."""

from models.account import LocalAccount, LoginThrottle, Session
from models.audit import AuditChainHead, AuditCheckpoint, AuditEvent, AuditPurgeGuard
from models.callout import (
    Callout,
    CalloutAnswer,
    CalloutSettings,
    CalloutTarget,
    LineOutbox,
    LineWebhookEvent,
)
from models.dispatch import InboundMail, Incident, IncidentEntry, MailSource
from models.import_mapping import ImportMapping
from models.incident_read import IncidentRead
from models.jobs import JobRun, WorkerHeartbeat
from models.line import LineAuthRequest, LinePendingLogin, LineRegistration, MemberLine
from models.member import Member, MemberCreate, MemberPublic, MemberRole, MemberUpdate
from models.notice import MaintenanceNotice
from models.org import Permission, Rank, Role
from models.pre_change import PreChangeBackup
from models.report import ActivityReport, ReportSettings, ReportStep
from models.tenant import PLATFORM_TENANT_ID, Tenant, TenantKey
from models.water import WaterSource

# Platform tables carry no tenant_id (tests/security/test_tenant_isolation.py holds every table
# with one to forced row-level security, without exceptions). Rows that belong to no brigade but
# live in a tenant table (operators' accounts and sessions, LINE logins not yet bound to a member,
# the platform's audit chain) belong to PLATFORM_TENANT_ID. The sign-in tables, read before a
# tenant is known, are reached through services/signin/owners.py.
PLATFORM_TABLES = frozenset(
    {
        "tenant",
        "alembic_version",
        "line_auth_request",
        "line_pending_login",
        "line_webhook_event",
        "login_throttle",
        "maintenance_notice",
        "job_run",
        "worker_heartbeat",
    }
)

__all__ = [
    "PLATFORM_TABLES",
    "PLATFORM_TENANT_ID",
    "ActivityReport",
    "AuditChainHead",
    "AuditCheckpoint",
    "AuditEvent",
    "AuditPurgeGuard",
    "Callout",
    "CalloutAnswer",
    "CalloutSettings",
    "CalloutTarget",
    "ImportMapping",
    "InboundMail",
    "Incident",
    "IncidentEntry",
    "IncidentRead",
    "JobRun",
    "LineAuthRequest",
    "LineOutbox",
    "LinePendingLogin",
    "LineRegistration",
    "LineWebhookEvent",
    "LocalAccount",
    "LoginThrottle",
    "MailSource",
    "MaintenanceNotice",
    "Member",
    "MemberCreate",
    "MemberLine",
    "MemberPublic",
    "MemberRole",
    "MemberUpdate",
    "Permission",
    "PreChangeBackup",
    "Rank",
    "ReportSettings",
    "ReportStep",
    "Role",
    "Session",
    "Tenant",
    "TenantKey",
    "WaterSource",
    "WorkerHeartbeat",
]
