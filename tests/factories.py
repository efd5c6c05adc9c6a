"""Plain factory helpers for tests."""

from __future__ import annotations

import itertools
import uuid

from sqlalchemy import Engine
from sqlmodel import Session as DbSession
from sqlmodel import select

from core.actor import Actor, ActorKind, RequestContext, system_actor
from models import AuditEvent, MemberCreate, MemberLine
from models.enums import Function, Level
from services import members, tenants
from services.crypto import TenantCipher
from services.db import set_tenant, unit_of_work
from services.signin import line_sessions
from services.signin.sessions import Principal, open_session

_counter = itertools.count(1)
PLATFORM = Actor(kind=ActorKind.SYSTEM, display_name="test-platform", label="test-platform")


def make_tenant(name: str | None = None) -> uuid.UUID:
    return tenants.create_tenant(PLATFORM, name=name or f"テスト消防団{uuid.uuid4().hex[:8]}")


def brigade_name(tenant_id: uuid.UUID) -> str:
    """The brigade's name, as a bulk change above the threshold needs it typed (#17)."""
    return next(t.name for t in tenants.list_tenants(PLATFORM) if t.id == tenant_id)


def admin(tenant_id: uuid.UUID) -> Actor:
    return system_actor(tenant_id, label="test-admin")


def actor_with(tenant_id: uuid.UUID, levels: dict[Function, Level]) -> Actor:
    return Actor(
        kind=ActorKind.MEMBER,
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
        "affiliation": "第1分団",
        "phone": f"090-{n % 10000:04d}-{(n * 7) % 10000:04d}",
        "email": f"member{n}@example.jp",
    }
    values.update(overrides)
    if "rank_id" not in values:  # looked up only when not given: a service call of its own
        values["rank_id"] = rank_id(tenant_id)
    return MemberCreate(**values)


def make_member(tenant_id: uuid.UUID, **overrides: object):
    return members.create_member(admin(tenant_id), data=member_data(tenant_id, **overrides))


def request_context() -> RequestContext:
    """A request with its own id, so a test can find exactly the audit events it caused."""
    return RequestContext(request_id=uuid.uuid4().hex[:16], client_addr="127.0.0.1")


def audit_events(
    engine: Engine,
    tenant_id: uuid.UUID,
    *,
    after_seq: int = 0,
    category: str | None = None,
    request_id: str | None = None,
) -> list[AuditEvent]:
    """The tenant's audit events, oldest first (read under the tenant's row-level security)."""
    with DbSession(engine) as db:
        set_tenant(db, tenant_id)
        query = select(AuditEvent).where(
            AuditEvent.tenant_id == tenant_id, AuditEvent.seq > after_seq
        )
        if category is not None:
            query = query.where(AuditEvent.category == category)
        if request_id is not None:
            query = query.where(AuditEvent.request_id == request_id)
        return list(db.exec(query.order_by(AuditEvent.seq)).all())


def last_audit_seq(engine: Engine, tenant_id: uuid.UUID) -> int:
    events = audit_events(engine, tenant_id)
    return events[-1].seq if events else 0


def open_member_session(tenant_id: uuid.UUID, member_id: uuid.UUID) -> str:
    """A server-side session for a member (as a LINE login would open), returning its token."""
    with unit_of_work(tenant_id) as db:
        returned = open_session(db, Principal(None, tenant_id, member_id), request_context())
        db.commit()
        return returned


def plain_members_hold_nothing(tenant_id: uuid.UUID) -> None:
    """Empty the 団員 rank's row of the matrix, so a test actor holding only what its test is
    about does not meet the ceiling (services.members.ceiling) just because an ordinary member
    may see the dashboard, the water sources and the notices."""
    from services import permissions

    plain = rank_id(tenant_id)
    permissions.update_matrix(
        admin(tenant_id),
        [permissions.CellChange("rank", plain, f, permissions.Grant()) for f in Function],
    )


def give_login(tenant_id: uuid.UUID, member_id: uuid.UUID) -> str:
    """A local login for a member (so the member can sign in, and counts for the lock-out
    guard); returns its login name. The password is PASSWORD."""
    from services.signin import local

    login = f"login-{uuid.uuid4().hex[:10]}"
    local.create_account(
        PLATFORM, login_name=login, password=PASSWORD, tenant_id=tenant_id, member_id=member_id
    )
    return login


PASSWORD = "correct horse battery staple"


def rebuilt_backup(made, changes: dict[str, bytes]) -> bytes:
    """A backup (services.backup.BackupFile) with some files replaced and a manifest that
    matches them, as whoever edits a backup and rebuilds its manifest would make it."""
    from formats import backup as fmt

    contents = fmt.read_zip(made.data).files | changes
    manifest = fmt.build_manifest(
        contents,
        tenant_id=made.manifest.tenant_id,
        brigade=made.manifest.brigade,
        created_at=made.manifest.created_at,
        app_version="test",
    )
    return fmt.write_zip(manifest, contents, password=None)


def link_line(tenant_id: uuid.UUID, member_id: uuid.UUID, sub: str) -> None:
    """Bind a LINE user id to a member directly, as a redeemed registration would."""
    with unit_of_work(tenant_id) as db:
        cipher = TenantCipher(db, tenant_id)
        link = MemberLine(
            tenant_id=tenant_id,
            member_id=member_id,
            sub_enc="",
            sub_bidx=cipher.blind_index(sub, field=line_sessions.SUB_FIELD),
        )
        link.sub_enc = cipher.encrypt(sub, field=line_sessions.SUB_FIELD, row_id=link.id)
        db.add(link)
        db.commit()


def restore(actor: Actor, preview, **kwargs):
    """backup.restore_backup with the brigade's name typed (the bulk guard's confirmation), for
    tests about what a restore does rather than about the guard (tests/services/test_bulk_changes)."""
    from services import backup

    kwargs.setdefault("confirm_name", brigade_name(actor.tenant_id))
    return backup.restore_backup(actor, preview, **kwargs)
