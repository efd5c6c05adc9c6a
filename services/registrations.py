"""ユーザ登録: binding a member to their LINE account with a one-time registration code.

An administrator issues a user id and a code for a member (shown once, printed on a sheet). The
member logs in with LINE and enters both; the LINE user id is then stored for the brigade,
encrypted, with a blind index. Codes are single use, expire, and are kept only as an HMAC under a
key derived from the session secret. Wrong codes lock the registration and end the pending login.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import unicodedata
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import update
from sqlmodel import Session as DbSession
from sqlmodel import select

from config import get_settings
from core.access import Need
from core.actor import Actor, ActorKind
from models import (
    AuditEvent,
    LinePendingLogin,
    LineRegistration,
    LocalAccount,
    Member,
    MemberLine,
    Rank,
    Session,
    Tenant,
)
from models.base import utcnow
from models.callout import FriendStatus
from models.enums import AuditCategory, Function, Level, MemberStatus, TenantStatus
from services import audit
from services.base import Tx, record_denial, scoped, transaction
from services.crypto import TenantCipher
from services.db import unit_of_work
from services.errors import NotConfigured, NotFound, PermissionDenied, Refused, ValidationError
from services.grants import Grant, member_grants
from services.members.ceiling import check_ceiling, is_permission_admin
from services.signin import line, line_sessions, owners, sessions
from services.signin.line_friendship import carry_to_link
from services.signin.sessions import may_sign_in

ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I/L: read aloud and typed from paper
CODE_LENGTH = 12
USER_ID_LENGTH = 8
INPUT_LIMIT = 40
AUTH = AuditCategory.AUTH
CODE_NEEDS_ADMIN = (
    "パスワードでログインする団員や、役職・権限を編集できる団員の登録コードは、"
    "役職・権限の管理権限を持つ人だけが発行できます。"
)
LINE_NOT_CONFIGURED = (
    "LINEログインのチャネルが設定されていないため、登録コードは発行できません"
    "（登録用紙のQRコードを読み取っても、団員はLINEでログインできません）。"
    "運営者にLINEログインの設定（チャネルIDとチャネルシークレット）を依頼してください。"
)

MESSAGES = {
    "invalid": "ユーザIDまたは登録コードが正しくありません。",
    "expired": "この登録コードは有効期限が切れています。団の管理者に再発行を依頼してください。",
    "used": "この登録コードは使用済みです。団の管理者にお問い合わせください。",
    "locked": "登録コードの入力に続けて失敗したため、この登録はロックされました。団の管理者に再発行を依頼してください。",
    "inactive": "この団員は現在LINE連携を登録できません。団の管理者にお問い合わせください。",
    "already_linked": "この団員は既に別のLINEアカウントと連携しています。団の管理者にお問い合わせください。",
    "line_taken": "このLINEアカウントは既にこの団の別の団員と連携しています。団の管理者にお問い合わせください。",
}
STATE_LABELS = {
    "none": "未発行",
    "issued": "発行済み",
    "used": "登録済み",
    "expired": "期限切れ",
    "locked": "ロック中",
}


@dataclass(frozen=True)
class IssuedRegistration:
    """What the administrator hands to the member; the code exists nowhere else in clear."""

    tenant_name: str
    member_id: uuid.UUID
    member_code: str
    member_name: str
    affiliation: str
    user_id: str
    code: str
    expires_at: datetime
    url: str
    reissued: bool


@dataclass(frozen=True)
class AccountStatus:
    member_id: uuid.UUID
    member_code: str
    name: str
    rank_name: str
    status: str
    line_linked: bool
    linked_at: datetime | None
    friend_status: str  # models.callout.FriendStatus of a linked member, "" when not linked
    registration: str  # a key of STATE_LABELS
    user_id: str
    expires_at: datetime | None
    open_sessions: int

    @property
    def status_label(self) -> str:
        return MemberStatus(self.status).label

    @property
    def friend_label(self) -> str:
        """Whether the call-out reaches the member on LINE (follow / unfollow events)."""
        return FriendStatus(self.friend_status).label if self.friend_status else ""

    @property
    def registration_label(self) -> str:
        return STATE_LABELS[self.registration]


@dataclass(frozen=True)
class RedeemResult:
    token: str | None = None
    error: str | None = None  # a key of MESSAGES, or "session_locked"


# ---------------------------------------------------------------------------
# Formats


def normalise(text: str | None) -> str:
    """Upper-case half-width letters and digits only: full-width input, hyphens and spaces go."""
    folded = unicodedata.normalize("NFKC", text or "")[:INPUT_LIMIT].upper()
    return "".join(ch for ch in folded if ch.isascii() and ch.isalnum())


def valid_user_id(user_id: str) -> bool:
    return len(user_id) == USER_ID_LENGTH and all(ch in ALPHABET for ch in user_id)


def grouped(value: str) -> str:
    """ABCD-EFGH-JKMN, as printed."""
    return "-".join(value[i : i + 4] for i in range(0, len(value), 4))


def public_base_url() -> str:
    """Where the sheets send members: the configured public URL (HIKESHI_PUBLIC_BASE_URL)."""
    return get_settings().public_base_url.rstrip("/")


def registration_url(user_id: str) -> str:
    return f"{public_base_url()}/auth/line/login?uid={user_id}"


def require_line_login() -> None:
    """A sheet's QR code leads nowhere without the installation's LINE Login channel."""
    if not line.is_configured():
        raise NotConfigured(LINE_NOT_CONFIGURED)


def _random(length: int) -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(length))


def code_hash(user_id: str, code: str) -> str:
    key = HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=None,
        info=b"hikeshi/registration-code/v1",
    ).derive(get_settings().session_secret)
    return hmac.new(key, f"{user_id}:{code}".encode(), hashlib.sha256).hexdigest()


# ---------------------------------------------------------------------------
# Administrator actions (アカウント管理)


def list_accounts(actor: Actor) -> list[AccountStatus]:
    """Every member with their status, LINE link and registration state."""
    with transaction(
        actor, Need(Function.MEMBER_ACCOUNTS, Level.VIEW), action="account.list", read_only=True
    ) as tx:
        ranks = {r.id: r.name for r in tx.session.exec(scoped(select(Rank), actor)).all()}
        links = {k.member_id: k for k in tx.session.exec(scoped(select(MemberLine), actor)).all()}
        registrations = {
            r.member_id: r for r in tx.session.exec(scoped(select(LineRegistration), actor)).all()
        }
        sessions = Counter(
            tx.session.exec(
                scoped(select(Session.member_id), actor).where(
                    Session.revoked_at.is_(None), Session.expires_at > utcnow()
                )
            ).all()
        )
        members = tx.session.exec(scoped(select(Member), actor).order_by(Member.member_code)).all()
        return [
            AccountStatus(
                member_id=m.id,
                member_code=m.member_code,
                name=tx.cipher.member_name(m),
                rank_name=ranks.get(m.rank_id, ""),
                status=m.status,
                line_linked=m.id in links,
                linked_at=links[m.id].linked_at if m.id in links else None,
                friend_status=links[m.id].friend_status if m.id in links else "",
                registration=state_of(registrations.get(m.id)),
                user_id=grouped(registrations[m.id].user_id) if m.id in registrations else "",
                expires_at=registrations[m.id].expires_at if m.id in registrations else None,
                open_sessions=sessions.get(m.id, 0),
            )
            for m in members
        ]


def issue_registration(actor: Actor, member_id: uuid.UUID) -> IssuedRegistration:
    """A new user id and code (or a new code for the member's user id); the old code dies."""
    with transaction(
        actor, Need(Function.MEMBER_ACCOUNTS, Level.EDIT), action="registration.issue"
    ) as tx:
        require_line_login()
        member = _member(tx, member_id)
        if member.status != MemberStatus.ACTIVE:
            raise ValidationError({"member": "在籍中の団員にのみ登録コードを発行できます。"})
        check_ceiling(tx, member)
        sensitive = _needs_admin_to_register(tx, member)
        if sensitive and not is_permission_admin(tx.actor):
            raise Refused(Function.PERMISSIONS, Level.ADMIN, CODE_NEEDS_ADMIN)
        if _link(tx, member.id) is not None:
            raise ValidationError(
                {"member": "既にLINEと連携済みです。再発行するには先に連携を解除してください。"}
            )
        returned = issue_code(tx, member, _registration(tx, member.id), sensitive=sensitive)
        tx.commit()
        return returned


def issue_code(
    tx: Tx, member: Member, registration: LineRegistration | None, *, sensitive: bool
) -> IssuedRegistration:
    """Give the member a new code (and a user id if they have none), audited; the caller has
    checked that the actor may. Also used by services.registration_batch."""
    reissued = registration is not None
    if registration is None:
        registration = LineRegistration(
            user_id=_new_user_id(tx.session),
            tenant_id=tx.tenant_id,
            member_id=member.id,
            code_hash="",
            expires_at=utcnow(),
        )
    code = _random(CODE_LENGTH)
    registration.code_hash = code_hash(registration.user_id, code)
    registration.issued_at = utcnow()
    registration.expires_at = registration.issued_at + timedelta(
        days=get_settings().registration_code_days
    )
    registration.used_at = registration.locked_at = None
    registration.failed_attempts = 0
    tx.session.add(registration)
    tx.audit(
        "registration.reissue" if reissued else "registration.issue",
        category=AUTH,
        target_type="member",
        target_id=member.id,
        details={
            "member_code": member.member_code,
            "user_id": registration.user_id,
            "expires_at": registration.expires_at,
            "sensitive": sensitive,
        },
    )
    return IssuedRegistration(
        tenant_name=tx.brigade_name,
        member_id=member.id,
        member_code=member.member_code,
        member_name=tx.cipher.member_name(member),
        affiliation=member.affiliation,
        user_id=grouped(registration.user_id),
        code=grouped(code),
        expires_at=registration.expires_at,
        url=registration_url(registration.user_id),
        reissued=reissued,
    )


def unlink_line(actor: Actor, member_id: uuid.UUID) -> int:
    """Remove the member's LINE link and end the sessions it opened; returns how many ended."""
    with transaction(actor, Need(Function.MEMBER_ACCOUNTS, Level.EDIT), action="line.unlink") as tx:
        member = _member(tx, member_id)
        check_ceiling(tx, member)
        link = _link(tx, member.id)
        if link is None:
            raise ValidationError({"member": "この団員はLINEと連携していません。"})
        tx.session.delete(link)
        ended = tx.session.exec(
            update(Session)
            .where(
                Session.tenant_id == tx.tenant_id,
                Session.member_id == member.id,
                Session.local_account_id.is_(None),
                Session.revoked_at.is_(None),
            )
            .values(revoked_at=utcnow(), revoke_reason="line_unlink")
        )
        revoked = ended.rowcount or 0
        tx.audit(
            "line.unlink",
            category=AUTH,
            target_type="member",
            target_id=member.id,
            details={"member_code": member.member_code, "sessions_revoked": revoked},
        )
        tx.commit()
        return revoked


@dataclass(frozen=True)
class CodeNotice:
    """A registration code issued recently, shown on ホーム (#15): to the member it was issued
    for, and to the 管理 holders when it could hand over a password user or a permission
    editor."""

    issued_at: datetime
    member_code: str
    issued_by: str
    for_me: bool


NOTICE_DAYS = 14


def code_notices(actor: Actor) -> list[CodeNotice]:
    """Codes issued in the last NOTICE_DAYS days that the actor should know about, newest
    first. Read from the event log, where every issue is recorded."""
    if actor.tenant_id is None or actor.member_id is None:
        return []
    with unit_of_work(actor.tenant_id, read_only=True) as db:
        live = sessions.live_actor(db, actor)
        if live is None:
            return []
        admin = is_permission_admin(live)  # as the member's grants are now
        rows = db.exec(
            scoped(select(AuditEvent), live)
            .where(
                AuditEvent.action.in_(["registration.issue", "registration.reissue"]),
                AuditEvent.occurred_at >= utcnow() - timedelta(days=NOTICE_DAYS),
            )
            .order_by(AuditEvent.occurred_at.desc())
        ).all()
    found = []
    for row in rows:
        details = json.loads(row.details or "{}")
        for_me = row.target_id == str(actor.member_id)
        if for_me or (admin and details.get("sensitive")):
            found.append(
                CodeNotice(row.occurred_at, details.get("member_code", ""), row.actor_label, for_me)
            )
    return found


def _needs_admin_to_register(tx: Tx, member: Member) -> bool:
    """A code for a member who already signs in with a password, or who may edit permissions,
    would hand that sign-in (or those rights) to whoever redeems it: 管理 decides that."""
    login = tx.session.exec(
        scoped(select(LocalAccount.id), tx.actor).where(LocalAccount.member_id == member.id)
    ).first()
    grant = member_grants(tx.session, member).get(str(Function.PERMISSIONS), Grant())
    return login is not None or grant.level >= Level.EDIT


def _member(tx: Tx, member_id: uuid.UUID) -> Member:
    member = tx.get(Member, member_id)
    if member is None:
        raise NotFound("団員が見つかりません。")
    return member


def _link(tx: Tx, member_id: uuid.UUID) -> MemberLine | None:
    query = scoped(select(MemberLine), tx.actor).where(MemberLine.member_id == member_id)
    return tx.session.exec(query).first()


def _registration(tx: Tx, member_id: uuid.UUID) -> LineRegistration | None:
    query = scoped(select(LineRegistration), tx.actor).where(
        LineRegistration.member_id == member_id
    )
    return tx.session.exec(query).first()


def _new_user_id(db: DbSession) -> str:
    """User ids are global (they find the brigade); a collision in 31^8 is retried."""
    while True:
        candidate = _random(USER_ID_LENGTH)
        if owners.registration_tenant(db, candidate) is None:
            return candidate


def state_of(registration: LineRegistration | None) -> str:
    """The registration's state, a key of STATE_LABELS."""
    if registration is None:
        return "none"
    if registration.used_at is not None:
        return "used"
    if registration.locked_at is not None:
        return "locked"
    if registration.expires_at <= utcnow():
        return "expired"
    return "issued"


# ---------------------------------------------------------------------------
# The member's side: a pending LINE login enters the user id and code


def pending_user_id(actor: Actor) -> str:
    """The user id from the registration sheet's URL, if the login started there."""
    if actor.kind != ActorKind.LINE_REGISTER or actor.session_id is None:
        return ""
    with unit_of_work(None) as db:
        pending = line_sessions.open_pending(db, actor.session_id)
        return grouped(pending.registration_user_id) if pending else ""


def redeem(actor: Actor, *, user_id: str, code: str) -> RedeemResult:
    """Bind the pending LINE login to the member the code was issued for, and swap the pending
    session for the member's session (the new token is returned, the old one stops working)."""
    if actor.kind != ActorKind.LINE_REGISTER or actor.session_id is None:
        record_denial(actor, None, None, "registration.redeem")
        raise PermissionDenied()
    user_id, code = normalise(user_id), normalise(code)
    with unit_of_work(None) as db:
        pending = line_sessions.open_pending(db, actor.session_id)
        if pending is None:
            raise PermissionDenied()
        registration = _registration_by_user_id(db, user_id) if valid_user_id(user_id) else None
        if registration is None:
            returned = _wrong_code(db, actor, pending, None, "unknown_user_id")
            db.commit()
            return returned
        if registration.locked_at is not None:
            returned = _refuse(db, actor, registration, "locked", "registration_locked")
            db.commit()
            return returned
        if not hmac.compare_digest(registration.code_hash, code_hash(user_id, code)):
            returned = _wrong_code(db, actor, pending, registration, "wrong_code")
            db.commit()
            return returned
        if registration.used_at is not None:
            returned = _refuse(db, actor, registration, "used", "code_used")
            db.commit()
            return returned
        if registration.expires_at <= utcnow():
            returned = _refuse(db, actor, registration, "expired", "code_expired")
            db.commit()
            return returned
        returned = _link_member(db, actor, pending, registration)
        db.commit()
        return returned


def _registration_by_user_id(db: DbSession, user_id: str) -> LineRegistration | None:
    """The registration of a sheet's user id, locked, read (and from here on acted on) for its
    brigade."""
    tenant_id = owners.registration_tenant(db, user_id)
    if tenant_id is None:
        return None
    owners.act_for(db, tenant_id)
    query = select(LineRegistration).where(LineRegistration.user_id == user_id)
    return db.exec(query.with_for_update()).first()


def _link_member(
    db: DbSession, actor: Actor, pending: LinePendingLogin, registration: LineRegistration
) -> RedeemResult:
    tenant = db.get(Tenant, registration.tenant_id)
    member = db.get(Member, registration.member_id)
    if not may_sign_in(tenant, member):
        tenant_active = tenant is not None and tenant.status == TenantStatus.ACTIVE
        reason = "account_inactive" if tenant_active and member is not None else "tenant_inactive"
        return _refuse(db, actor, registration, "inactive", reason)
    cipher = TenantCipher(db, tenant.id)
    sub = line_sessions.open_sub(pending)
    bidx = cipher.blind_index(sub, field=line_sessions.SUB_FIELD)
    existing = db.exec(
        select(MemberLine).where(
            MemberLine.tenant_id == tenant.id,
            (MemberLine.member_id == member.id) | (MemberLine.sub_bidx == bidx),
        )
    ).all()
    if any(link.member_id == member.id for link in existing):
        return _refuse(db, actor, registration, "already_linked", "member_already_linked")
    if existing:
        return _refuse(db, actor, registration, "line_taken", "line_account_taken")
    link = MemberLine(tenant_id=tenant.id, member_id=member.id, sub_enc="", sub_bidx=bidx)
    link.sub_enc = cipher.encrypt(sub, field=line_sessions.SUB_FIELD, row_id=link.id)
    db.add(link)
    carry_to_link(db, pending, link, actor.request)
    registration.used_at = utcnow()
    db.add(registration)
    line_sessions.end_pending(db, pending.session_id, "registered")
    _log(db, actor, registration, "registration.redeem", "success")
    _log(db, actor, registration, "line.link", "success")
    linked = line_sessions.Link(tenant.id, tenant.name, member.id, member.member_code, active=True)
    return RedeemResult(token=line_sessions.member_session(db, linked, actor.request, "registered"))


def _wrong_code(
    db: DbSession,
    actor: Actor,
    pending: LinePendingLogin,
    registration: LineRegistration | None,
    reason: str,
) -> RedeemResult:
    limit = get_settings().registration_max_failures
    pending.failed_codes += 1
    db.add(pending)
    error = "invalid"
    if registration is None:
        _log_platform(db, actor, reason, pending.failed_codes)
    else:
        registration.failed_attempts += 1
        if registration.failed_attempts >= limit:
            registration.locked_at = utcnow()
            error = "locked"
        db.add(registration)
        _log(db, actor, registration, "registration.redeem", "failure", reason=reason)
        if error == "locked":
            _log(db, actor, registration, "registration.lock", "success")
    if pending.failed_codes >= limit:
        line_sessions.end_pending(db, pending.session_id, "registration_lockout")
        _log_platform(db, actor, "too_many_failures", pending.failed_codes, "session.lock")
        return RedeemResult(error="session_locked")
    return RedeemResult(error=error)


def _refuse(
    db: DbSession, actor: Actor, registration: LineRegistration, error: str, reason: str
) -> RedeemResult:
    _log(db, actor, registration, "registration.redeem", "failure", reason=reason)
    return RedeemResult(error=error)


def _log(
    db: DbSession,
    actor: Actor,
    registration: LineRegistration,
    action: str,
    outcome: str,
    *,
    reason: str = "",
) -> None:
    details: dict[str, object] = {"user_id": registration.user_id}
    if reason:
        details["reason"] = reason
    if outcome == "failure":
        details["failed_attempts"] = registration.failed_attempts
    audit.record(
        db,
        actor,
        category=AUTH,
        action=action,
        outcome=outcome,
        target_type="member",
        target_id=registration.member_id,
        details=details,
        tenant_id=registration.tenant_id,
    )


def _log_platform(
    db: DbSession,
    actor: Actor,
    reason: str,
    failures: int,
    action: str = "registration.redeem",
) -> None:
    """A failure no brigade can be named for goes to the platform's chain."""
    audit.record(
        db,
        actor,
        category=AUTH,
        action=action,
        outcome="failure",
        target_type="session",
        target_id=actor.session_id or "",
        details={"reason": reason, "session_failures": failures},
    )
