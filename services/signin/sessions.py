"""Server-side sessions: a random 256-bit token in an HttpOnly cookie, its SHA-256 in the
database; idle timeout and absolute lifetime; revocation on logout and suspension."""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sqlmodel import Session as DbSession
from sqlmodel import select

from config import get_settings
from core.actor import Actor, ActorKind, RequestContext
from models import LinePendingLogin, LocalAccount, Member, MemberRole, Rank, Role, Session, Tenant
from models.base import utcnow
from models.enums import AuditCategory, MemberStatus, TenantStatus
from models.tenant import PLATFORM_TENANT_ID
from services import audit
from services.crypto import TenantCipher
from services.db import set_tenant, unit_of_work, write_epoch
from services.grants import effective_levels
from services.signin import owners

COOKIE_NAME = "hikeshi_session"
TOUCH_INTERVAL = timedelta(seconds=60)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Principal:
    """Who a session belongs to: a local account, a member, or both."""

    account_id: uuid.UUID | None
    tenant_id: uuid.UUID | None
    member_id: uuid.UUID | None


def open_session(db: DbSession, principal: Principal, request: RequestContext) -> str:
    """Create a session inside the caller's transaction, acting for its tenant (the platform's
    when the principal has none); returns the cookie token."""
    settings = get_settings()
    token = secrets.token_urlsafe(32)
    now = utcnow()
    owners.act_for(db, principal.tenant_id or PLATFORM_TENANT_ID)
    db.add(
        Session(
            token_hash=token_hash(token),
            local_account_id=principal.account_id,
            tenant_id=principal.tenant_id or PLATFORM_TENANT_ID,
            member_id=principal.member_id,
            created_at=now,
            last_seen_at=now,
            expires_at=now + timedelta(hours=settings.session_absolute_hours),
            client_addr=request.client_addr[:64],
            user_agent=request.user_agent[:300],
        )
    )
    db.flush()
    return token


def expiry_reason(row: Session, now: datetime) -> str | None:
    idle = timedelta(minutes=get_settings().session_idle_minutes)
    if row.revoked_at is not None:
        return "revoked"
    if now >= row.expires_at:
        return "absolute_timeout"
    if now - row.last_seen_at >= idle:
        return "idle_timeout"
    return None


def resolve(token: str | None, request: RequestContext | None = None) -> Actor | None:
    """The actor of a valid session, or None. Expired sessions are revoked and logged.

    Every page run resolves its session: it reads in a read-only unit of work, which on SQLite
    takes no write lock and so never waits for another brigade's long write (#19). Only a
    session that must be touched (once a TOUCH_INTERVAL) or ended is read again and written."""
    if not token:
        return None
    request = request or RequestContext()
    now = utcnow()
    with unit_of_work(None, read_only=True) as db:
        row = _session_of(db, token)
        reason = expiry_reason(row, now) if row is not None else "revoked"
        if reason == "revoked":
            return None  # unknown, logged out or revoked: nothing to record
        if not reason and now - row.last_seen_at < TOUCH_INTERVAL:
            actor = _actor_for(db, row, request)
            if actor is not None:
                return _live_until(actor, row)
    return _resolve_writing(token, request, now)


def _live_until(actor: Actor, row: Session) -> Actor:
    ends = ends_at(row)
    return checked(replace(actor, session_ends_at=ends, session_ends_idle=ends < row.expires_at))


def _resolve_writing(token: str, request: RequestContext, now: datetime) -> Actor | None:
    """resolve() for a session to touch, or to end (and log) when it has expired or its
    account or member may no longer sign in."""
    with unit_of_work(None) as db:
        row = _session_of(db, token)
        if row is None:
            return None
        reason = expiry_reason(row, now)
        actor = None if reason else _actor_for(db, row, request)
        if actor is None:
            if row.revoked_at is None:
                row.revoked_at, row.revoke_reason = now, reason or "account_inactive"
                db.add(row)
                audit.record(
                    db,
                    _anonymous(row, request),
                    category=AuditCategory.AUTH,
                    action="session.end",
                    outcome="expired",
                    target_type="session",
                    target_id=row.id,
                    details={"reason": row.revoke_reason},
                )
            db.commit()
            return None
        if now - row.last_seen_at >= TOUCH_INTERVAL:
            row.last_seen_at = now
            db.add(row)
        db.commit()
        return _live_until(actor, row)


def ends_at(row: Session) -> datetime:
    """When the session ends unless used again: idle timeout, or its absolute lifetime."""
    idle = timedelta(minutes=get_settings().session_idle_minutes)
    return min(row.expires_at, row.last_seen_at + idle)


# Why a browser's session cookie no longer signs anyone in, said on the login page.
ENDED = {
    "idle_timeout": "操作のない状態が{minutes}分続いたため、自動的にログアウトしました。"
    "入力中の内容は保存されていません。もう一度ログインしてください。",
    "absolute_timeout": "ログインしてから一定の時間が経ったため、自動的にログアウトしました。"
    "もう一度ログインしてください。",
}


def ended(token: str | None) -> str | None:
    """For a cookie whose session has ended by time (idle or absolute), the Japanese reason;
    None for any other cookie (unknown, logged out, revoked by an administrator: those are not
    told apart to the browser)."""
    if not token:
        return None
    with unit_of_work(None, read_only=True) as db:
        row = _session_of(db, token)
        reason = row.revoke_reason if row is not None else None
    text = ENDED.get(reason or "")
    return text.format(minutes=get_settings().session_idle_minutes) if text else None


def _session_of(db: DbSession, token: str) -> Session | None:
    """The session of a cookie token, read (and from here on acted on) for its own tenant."""
    digest = token_hash(token)
    tenant_id = owners.session_tenant(db, digest)
    if tenant_id is None:
        return None
    set_tenant(db, tenant_id)
    return db.exec(select(Session).where(Session.token_hash == digest)).first()


def checked(actor: Actor) -> Actor:
    """The actor, stamped as confirmed by the database at this moment."""
    return replace(actor, checked=(time.monotonic(), write_epoch()))


def revoke(token: str | None, request: RequestContext) -> bool:
    """Logout: the session stops working at once."""
    if not token:
        return False
    with unit_of_work(None) as db:
        row = _session_of(db, token)
        if row is None or row.revoked_at is not None:
            return False
        row.revoked_at, row.revoke_reason = utcnow(), "logout"
        db.add(row)
        audit.record(
            db,
            _anonymous(row, request),
            category=AuditCategory.AUTH,
            action="logout",
            target_type="session",
            target_id=row.id,
        )
        db.commit()
        return True


def _anonymous(row: Session, request: RequestContext) -> Actor:
    brigade = owners.brigade_of(row.tenant_id)
    return Actor(
        kind=(
            ActorKind.MEMBER
            if brigade
            else ActorKind.OPERATOR
            if row.local_account_id
            else ActorKind.LINE
        ),
        display_name="",
        label="",
        tenant_id=brigade,
        member_id=row.member_id,
        account_id=row.local_account_id,
        session_id=row.id,
        request=request,
    )


def may_sign_in(tenant: Tenant | None, member: Member | None) -> bool:
    """The one rule for signing in to a brigade, by password, LINE or a registration code: the
    brigade is active (not cancelled) and the member belongs to it and is active (a suspended or
    retired member may not; white paper 9.2.6)."""
    return (
        tenant is not None
        and tenant.status == TenantStatus.ACTIVE
        and member is not None
        and member.tenant_id == tenant.id
        and member.status == MemberStatus.ACTIVE
    )


def live_actor(db: DbSession, actor: Actor) -> Actor | None:
    """The actor as the database has it now, inside the caller's transaction: None once its
    session has ended (logout, suspension, timeout) or its member may no longer sign in, and
    with the grants and 所属 of this moment otherwise. An actor without a session (the command
    line, a machine job) is returned as it is. A page drawn before a suspension therefore gets
    nothing from a later service call."""
    if actor.session_id is None or actor.kind not in (ActorKind.MEMBER, ActorKind.OPERATOR):
        return actor
    if actor.kind == ActorKind.OPERATOR:
        set_tenant(db, PLATFORM_TENANT_ID)  # an operator's session is the platform's row
        fresh = _live(db, actor)
        set_tenant(db, actor.tenant_id)
        return fresh
    return _live(db, actor)


def _live(db: DbSession, actor: Actor) -> Actor | None:
    # Three reads of plain columns (nothing enters the identity map, so a later locked read of
    # the same member by the service sees the row as it is then).
    row = db.exec(
        select(
            Session.revoked_at,
            Session.expires_at,
            Session.last_seen_at,
            Session.tenant_id,
            Session.member_id,
            LocalAccount.disabled,
            LocalAccount.is_operator,
            Tenant.status.label("tenant_status"),
            Member.status.label("member_status"),
            Member.rank_id,
            Member.affiliation,
            Rank.name.label("rank_name"),
        )
        .select_from(Session)
        .join(LocalAccount, LocalAccount.id == Session.local_account_id, isouter=True)
        .join(Tenant, Tenant.id == Session.tenant_id, isouter=True)
        .join(Member, Member.id == Session.member_id, isouter=True)
        .join(Rank, Rank.id == Member.rank_id, isouter=True)
        .where(Session.id == actor.session_id)
    ).first()
    if row is None or expiry_reason(row, utcnow()) or row.disabled:
        return None
    if actor.kind == ActorKind.OPERATOR:
        return checked(actor) if row.tenant_id == PLATFORM_TENANT_ID and row.is_operator else None
    if (
        row.tenant_id != actor.tenant_id
        or row.member_id != actor.member_id
        or row.tenant_status != TenantStatus.ACTIVE
        or row.member_status != MemberStatus.ACTIVE
    ):
        return None
    roles = db.exec(
        select(Role.id, Role.name)
        .join(MemberRole, MemberRole.role_id == Role.id)
        .where(MemberRole.tenant_id == row.tenant_id, MemberRole.member_id == row.member_id)
    ).all()
    brigade, unit = effective_levels(db, row.tenant_id, row.rank_id, [r.id for r in roles])
    return replace(
        checked(actor),
        rank_name=row.rank_name or "",
        role_names=tuple(sorted(r.name for r in roles)),
        permissions=brigade,
        unit=row.affiliation,
        unit_permissions=unit,
    )


def _actor_for(db: DbSession, row: Session, request: RequestContext) -> Actor | None:
    account = db.get(LocalAccount, row.local_account_id) if row.local_account_id else None
    if account is not None and account.disabled:
        return None
    if row.tenant_id == PLATFORM_TENANT_ID:
        if account is None:
            return _line_actor(db, row, request)
        if not account.is_operator:
            return None
        return Actor(
            kind=ActorKind.OPERATOR,
            display_name=account.display_name or account.login_name,
            label=account.login_name,
            account_id=account.id,
            session_id=row.id,
            request=request,
        )
    tenant = db.get(Tenant, row.tenant_id)
    member = db.get(Member, row.member_id) if row.member_id else None
    if not may_sign_in(tenant, member):
        return None
    return member_actor(db, tenant, member, account, row.id, request)


def _line_actor(db: DbSession, row: Session, request: RequestContext) -> Actor | None:
    """A LINE login bound to no member yet: it may only enter a code or choose a brigade."""
    pending = db.get(LinePendingLogin, row.id)
    return None if pending is None else line_actor(row.id, pending.stage, request)


def line_actor(session_id: uuid.UUID, stage: str, request: RequestContext) -> Actor:
    """Kind "line_register" or "line_choose"; audit records carry the session id as label."""
    return Actor(
        kind=ActorKind(f"line_{stage}"),
        display_name="LINEユーザー",
        label=f"line-session:{session_id}",
        session_id=session_id,
        request=request,
    )


def member_actor(
    db: DbSession,
    tenant: Tenant,
    member: Member,
    account: LocalAccount | None,
    session_id: uuid.UUID | None,
    request: RequestContext,
) -> Actor:
    rank = db.get(Rank, member.rank_id)
    role_ids = db.exec(
        select(MemberRole.role_id).where(
            MemberRole.tenant_id == tenant.id, MemberRole.member_id == member.id
        )
    ).all()
    roles = db.exec(select(Role).where(Role.id.in_(role_ids))).all() if role_ids else []
    name = TenantCipher(db, tenant.id).member_name(member)
    brigade_levels, unit_levels = effective_levels(db, tenant.id, member.rank_id, role_ids)
    return Actor(
        kind=ActorKind.MEMBER,
        display_name=name,
        label=account.login_name if account else member.member_code,
        tenant_id=tenant.id,
        tenant_name=tenant.name,
        member_id=member.id,
        account_id=account.id if account else None,
        session_id=session_id,
        rank_name=rank.name if rank else "",
        role_names=tuple(sorted(r.name for r in roles)),
        permissions=brigade_levels,
        request=request,
        unit=member.affiliation,
        unit_permissions=unit_levels,
    )
