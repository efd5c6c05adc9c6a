"""What a verified LINE user id leads to: a member's session, the brigade choice, or code entry.

Which brigades a LINE user id is linked in is found by computing each active brigade's blind
index of it (one HMAC per brigade). A platform-wide lookup table would be faster but would tie
one person's memberships of different brigades together in one place; per-brigade indexes keep
that unlinkable and die with the brigade's keys. A login bound to no member keeps the LINE user
id encrypted under a platform key derived (HKDF) from the active master key.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import delete, update
from sqlmodel import Session as DbSession
from sqlmodel import select

from config import get_settings
from core.actor import Actor, ActorKind, RequestContext
from core.personal import personal_field
from models import LinePendingLogin, LineRegistration, Member, MemberLine, Session, Tenant
from models.base import utcnow
from models.enums import AuditCategory, TenantStatus
from services import audit
from services.crypto import DecryptionError, TenantCipher, platform_key, seal, unseal
from services.db import set_tenant, unit_of_work
from services.signin import owners
from services.signin.sessions import (
    Principal,
    line_actor,
    may_sign_in,
    open_session,
    token_hash,
)

SUB_FIELD = personal_field("member_line", "sub").aad
PENDING_FORMAT = "p1"


@dataclass(frozen=True)
class LineLoginResult:
    token: str | None = None
    error: str | None = None  # a key of services.signin.line.MESSAGES
    pending_session: uuid.UUID | None = None  # a login bound to no member yet


@dataclass(frozen=True)
class Link:
    tenant_id: uuid.UUID
    tenant_name: str
    member_id: uuid.UUID
    member_code: str
    active: bool


@dataclass(frozen=True)
class BrigadeChoice:
    tenant_id: uuid.UUID
    name: str


def complete_login(sub: str, registration_user_id: str, request: RequestContext) -> LineLoginResult:
    with unit_of_work(None) as db:
        if _open_registration(db, registration_user_id):
            returned = _pending_session(db, sub, "register", registration_user_id, request)
            db.commit()
            return returned
        links = find_links(db, sub)
        usable = [link for link in links if link.active]
        if not links:
            returned = _pending_session(db, sub, "register", registration_user_id, request)
            db.commit()
            return returned
        if not usable:
            for link in links:
                _log_member(db, link, request, "login.failure", reason="account_inactive")
            db.commit()
            return LineLoginResult(error="inactive")
        if len(usable) == 1:
            returned = LineLoginResult(token=member_session(db, usable[0], request))
            db.commit()
            return returned
        returned = _pending_session(db, sub, "choose", "", request)
        db.commit()
        return returned


def _open_registration(db: DbSession, user_id: str) -> bool:
    """Whether a sheet's user id still awaits its code (a used one just logs the member in)."""
    tenant_id = owners.registration_tenant(db, user_id) if user_id else None
    if tenant_id is None:
        return False
    set_tenant(db, tenant_id)
    query = select(LineRegistration.id).where(
        LineRegistration.user_id == user_id, LineRegistration.used_at.is_(None)
    )
    open_ = db.exec(query).first() is not None
    set_tenant(db, None)
    return open_


def find_links(db: DbSession, sub: str) -> list[Link]:
    """The members this LINE user id is linked to, one active brigade at a time."""
    links = []
    tenants = db.exec(select(Tenant).where(Tenant.status == TenantStatus.ACTIVE)).all()
    for tenant in tenants:
        set_tenant(db, tenant.id)
        try:
            bidx = TenantCipher(db, tenant.id).blind_index(sub, field=SUB_FIELD)
        except DecryptionError:
            continue  # a brigade whose keys were destroyed has no members left to log in
        query = select(MemberLine, Member).where(
            MemberLine.tenant_id == tenant.id,
            MemberLine.sub_bidx == bidx,
            Member.id == MemberLine.member_id,
        )
        for _link, member in db.exec(query).all():
            active = may_sign_in(tenant, member)
            links.append(Link(tenant.id, tenant.name, member.id, member.member_code, active))
    set_tenant(db, None)
    return links


def member_session(db: DbSession, link: Link, request: RequestContext, stage: str = "") -> str:
    token = open_session(db, Principal(None, link.tenant_id, link.member_id), request)
    _log_member(db, link, request, "login.success", stage=stage)
    return token


def _pending_session(
    db: DbSession, sub: str, stage: str, registration_user_id: str, request: RequestContext
) -> LineLoginResult:
    token = open_session(db, Principal(None, None, None), request)
    session_id = _session_id_of(db, token)
    db.add(
        LinePendingLogin(
            session_id=session_id,
            stage=stage,
            sub_enc=_seal_sub(sub, session_id),
            registration_user_id=registration_user_id,
        )
    )
    audit.record(
        db,
        line_actor(session_id, stage, request),
        category=AuditCategory.AUTH,
        action="login.success",
        target_type="session",
        target_id=session_id,
        details={"method": "line", "stage": stage},
    )
    return LineLoginResult(token=token, pending_session=session_id)


def _session_id_of(db: DbSession, token: str) -> uuid.UUID:
    db.flush()
    return db.exec(select(Session.id).where(Session.token_hash == token_hash(token))).one()


def open_pending(db: DbSession, session_id: uuid.UUID | None) -> LinePendingLogin | None:
    """The pending LINE login of a session that is still open, locked for this transaction.
    The transaction acts for the platform from here on (a pending session is its row)."""
    owners.act_for_platform(db)
    query = (
        select(LinePendingLogin)
        .join(Session, Session.id == LinePendingLogin.session_id)
        .where(LinePendingLogin.session_id == session_id, Session.revoked_at.is_(None))
    )
    return db.exec(query.with_for_update()).first()


def end_pending(db: DbSession, session_id: uuid.UUID, reason: str) -> None:
    """Revoke a pending LINE session and forget its encrypted LINE user id. The transaction
    acts for the platform from here on."""
    owners.act_for_platform(db)
    db.exec(
        update(Session)
        .where(Session.id == session_id, Session.revoked_at.is_(None))
        .values(revoked_at=utcnow(), revoke_reason=reason)
    )
    db.exec(delete(LinePendingLogin).where(LinePendingLogin.session_id == session_id))


def _log_member(
    db: DbSession,
    link: Link,
    request: RequestContext,
    action: str,
    *,
    reason: str = "",
    stage: str = "",
) -> None:
    actor = Actor(
        kind=ActorKind.MEMBER,
        display_name="",
        label=link.member_code,
        tenant_id=link.tenant_id,
        member_id=link.member_id,
        request=request,
    )
    details = {"method": "line"}
    details.update({k: v for k, v in (("reason", reason), ("stage", stage)) if v})
    audit.record(
        db,
        actor,
        category=AuditCategory.AUTH,
        action=action,
        outcome="success" if action == "login.success" else "failure",
        target_type="member",
        target_id=link.member_id,
        details=details,
    )


# ---------------------------------------------------------------------------
# Choosing the brigade (a LINE account linked in several)


def brigade_choices(actor: Actor) -> list[BrigadeChoice]:
    if actor.kind != ActorKind.LINE_CHOOSE or actor.session_id is None:
        return []
    with unit_of_work(None) as db:
        pending = open_pending(db, actor.session_id)
        if pending is None:
            db.commit()
            return []
        links = find_links(db, open_sub(pending))
    return sorted(
        (BrigadeChoice(link.tenant_id, link.tenant_name) for link in links if link.active),
        key=lambda choice: choice.name,
    )


def choose_brigade(actor: Actor, tenant_id: uuid.UUID) -> LineLoginResult:
    """Exchange the choosing session for a member session in the chosen brigade."""
    if actor.kind != ActorKind.LINE_CHOOSE or actor.session_id is None:
        return LineLoginResult(error="failed")
    with unit_of_work(None) as db:
        pending = open_pending(db, actor.session_id)
        if pending is None:
            db.commit()
            return LineLoginResult(error="expired")
        chosen = [
            link
            for link in find_links(db, open_sub(pending))
            if link.tenant_id == tenant_id and link.active
        ]
        if not chosen:
            return LineLoginResult(error="inactive")
        end_pending(db, actor.session_id, "brigade_chosen")
        returned = LineLoginResult(
            token=member_session(db, chosen[0], actor.request, "brigade_chosen")
        )
        db.commit()
        return returned


# ---------------------------------------------------------------------------
# The pending LINE user id, encrypted under a platform key derived from the master key


PENDING_PURPOSE = "line-pending-sub"


def _pending_aad(session_id: uuid.UUID) -> bytes:
    return f"line_pending_login.sub|{session_id}".encode()


def _seal_sub(sub: str, session_id: uuid.UUID) -> str:
    master_id = get_settings().active_master_key_id
    key = platform_key(master_id, PENDING_PURPOSE)
    return f"{PENDING_FORMAT}:{master_id}:{seal(key, sub.encode(), _pending_aad(session_id))}"


def open_sub(pending: LinePendingLogin) -> str:
    fmt, master_id, sealed = [*pending.sub_enc.split(":", 2), "", ""][:3]
    if fmt != PENDING_FORMAT:
        raise DecryptionError("unknown format")
    key = platform_key(master_id, PENDING_PURPOSE)
    return unseal(key, sealed, _pending_aad(pending.session_id)).decode()
