"""Who is acting: built from the database on every run, never from client-editable state."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from models.enums import Function, Level


@dataclass(frozen=True)
class RequestContext:
    """Groups the audit events of one page action; client details where known."""

    request_id: str = field(default_factory=lambda: secrets.token_hex(8))
    client_addr: str = ""
    user_agent: str = ""


@dataclass(frozen=True)
class Actor:
    kind: str  # "member" (a brigade user), "operator" (platform) or "system" (CLI, seeding)
    display_name: str
    label: str = ""  # non-personal identifier for audit records: member code or login name
    tenant_id: uuid.UUID | None = None
    tenant_name: str = ""
    member_id: uuid.UUID | None = None
    account_id: uuid.UUID | None = None
    session_id: uuid.UUID | None = None
    rank_name: str = ""
    role_names: tuple[str, ...] = ()
    permissions: Mapping[str, Level] = field(default_factory=dict)
    request: RequestContext = field(default_factory=RequestContext)

    def level(self, function: Function | str) -> Level:
        return self.permissions.get(str(function), Level.NONE)

    def can(self, function: Function | str, level: Level = Level.VIEW) -> bool:
        return self.level(function) >= level

    @property
    def is_operator(self) -> bool:
        return self.kind == "operator"

    def with_request(self, request: RequestContext) -> Actor:
        return replace(self, request=request)


def system_actor(tenant_id: uuid.UUID | None, label: str = "system") -> Actor:
    """Full rights inside one tenant, for command-line tasks such as seeding the demo."""
    return Actor(
        kind="system",
        display_name=label,
        tenant_id=tenant_id,
        permissions={str(f): Level.ADMIN for f in Function},
    )
