"""Who is acting: built from the database on every run, never from client-editable state."""

from __future__ import annotations

import re
import secrets
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum

from models.enums import Function, Level


class ActorKind(StrEnum):
    """Who is acting; stored as the audit record's actor_type."""

    MEMBER = "member"  # a brigade user, signed in
    OPERATOR = "operator"  # the platform operator, signed in
    SYSTEM = "system"  # the command line and seeding: the recovery path
    MACHINE = (
        "machine"  # work no person starts (mail intake, webhooks, jobs): its job's rights only
    )
    LINE = "line"  # a LINE login not yet bound to a member
    LINE_REGISTER = "line_register"  # ... that may only enter a registration code
    LINE_CHOOSE = "line_choose"  # ... that may only choose one of its brigades

    @property
    def is_platform(self) -> bool:
        """The operator and the command line act for the platform, above any one brigade."""
        return self in (ActorKind.OPERATOR, ActorKind.SYSTEM)


@dataclass(frozen=True)
class RequestContext:
    """Groups the audit events of one page action; client details where known."""

    request_id: str = field(default_factory=lambda: secrets.token_hex(8))
    client_addr: str = ""
    user_agent: str = ""


@dataclass(frozen=True)
class Actor:
    kind: ActorKind
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
    # the member's own 所属, and the levels granted only within it (a grant narrowed to 自所属)
    unit: str = ""
    unit_permissions: Mapping[str, Level] = field(default_factory=dict)
    # when the signed-in session ends unless used again (UTC), and whether that is the idle
    # timeout (use extends it) or the absolute lifetime (nothing does)
    session_ends_at: datetime | None = field(default=None, compare=False)
    session_ends_idle: bool = field(default=True, compare=False)
    # when the database last confirmed this actor (monotonic seconds, and the process's write
    # epoch then); see services.base.live
    checked: tuple[float, int] | None = field(default=None, compare=False, repr=False)

    def level(self, function: Function | str) -> Level:
        """The level for the whole brigade."""
        return self.permissions.get(str(function), Level.NONE)

    def unit_level(self, function: Function | str) -> Level:
        """The level within the own 所属 (never below the brigade-wide level)."""
        return max(self.level(function), self.unit_permissions.get(str(function), Level.NONE))

    @property
    def is_operator(self) -> bool:
        return self.kind == ActorKind.OPERATOR

    @property
    def is_platform(self) -> bool:
        return ActorKind(self.kind).is_platform

    def with_request(self, request: RequestContext) -> Actor:
        return replace(self, request=request)


def machine_actor(
    tenant_id: uuid.UUID, job: str, grants: Iterable[tuple[Function, Level]]
) -> Actor:
    """The actor of work no person starts inside one brigade (mail intake, LINE webhooks,
    scheduled jobs): it holds only the grants its job needs, is named `machine:<job>` in the
    audit log, and no sign-in path ever produces one (sessions build members and operators)."""
    if not re.fullmatch(r"[a-z0-9_-]{1,40}", job):
        raise ValueError(f"machine job names are a-z, 0-9, - and _: {job!r}")
    return Actor(
        kind=ActorKind.MACHINE,
        display_name=f"machine:{job}",
        label=f"machine:{job}",
        tenant_id=tenant_id,
        permissions={str(function): level for function, level in grants},
    )


def system_actor(tenant_id: uuid.UUID | None, label: str = "system") -> Actor:
    """Full rights inside one tenant, for command-line tasks such as seeding the demo."""
    return Actor(
        kind=ActorKind.SYSTEM,
        display_name=label,
        tenant_id=tenant_id,
        permissions={str(f): Level.ADMIN for f in Function},
    )
