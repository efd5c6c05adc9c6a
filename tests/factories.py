"""Plain factory helpers for tests."""

from __future__ import annotations

import itertools
import uuid

from auth.actor import Actor, system_actor
from models import MemberCreate
from models.enums import Function, Level
from services import members, tenants

_counter = itertools.count(1)
PLATFORM = Actor(kind="system", display_name="test-platform", label="test-platform")


def make_tenant(name: str | None = None) -> uuid.UUID:
    return tenants.create_tenant(PLATFORM, name=name or f"テスト消防団{uuid.uuid4().hex[:8]}")


def admin(tenant_id: uuid.UUID) -> Actor:
    return system_actor(tenant_id, label="test-admin")


def actor_with(tenant_id: uuid.UUID, levels: dict[Function, Level]) -> Actor:
    return Actor(
        kind="member",
        display_name="テスト利用者",
        label="test-user",
        tenant_id=tenant_id,
        permissions={str(f): lvl for f, lvl in levels.items()},
    )


def rank_id(tenant_id: uuid.UUID, name: str = "団員") -> uuid.UUID:
    return next(r.id for r in members.list_ranks(admin(tenant_id)) if r.name == name)


def member_data(tenant_id: uuid.UUID, **overrides: object) -> MemberCreate:
    n = next(_counter)
    values: dict[str, object] = {
        "member_code": f"T{n:05d}",
        "name": f"消防　太郎{n}",
        "kana": "ショウボウ　タロウ",
        "rank_id": rank_id(tenant_id),
        "affiliation": "第1分団",
        "phone": f"090-{n % 10000:04d}-{(n * 7) % 10000:04d}",
        "email": f"member{n}@example.jp",
    }
    values.update(overrides)
    return MemberCreate(**values)


def make_member(tenant_id: uuid.UUID, **overrides: object):
    return members.create_member(admin(tenant_id), data=member_data(tenant_id, **overrides))
