"""Local password login for the platform operator and a brigade's first administrator."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import update
from sqlmodel import select

from config import get_settings
from core.actor import Actor, ActorKind, RequestContext
from models import LocalAccount, Member, Session, Tenant
from models.base import utcnow
from models.enums import AuditCategory
from models.tenant import PLATFORM_TENANT_ID
from services import audit
from services.db import set_tenant, unit_of_work
from services.errors import PermissionDenied, ValidationError
from services.signin import owners, throttle
from services.signin.passwords import hash_password, needs_rehash, password_problem, verify_password
from services.signin.sessions import Principal, may_sign_in, open_session

MESSAGES = {
    "invalid": "ログイン名またはパスワードが正しくありません。",
    "locked": "ログインに続けて失敗したため、一時的にロックしています。しばらくしてからお試しください。",
    "suspended": "このアカウントは利用停止中です。団の管理者にお問い合わせください。",
    "throttled": "この端末からのログインの失敗が多すぎるため、しばらく受け付けません。"
    "時間をおいてからお試しください。",
}


@dataclass(frozen=True)
class LoginResult:
    token: str | None = None
    error: str | None = None  # a key of MESSAGES


def login(login_name: str, password: str, request: RequestContext) -> LoginResult:
    settings = get_settings()
    now = utcnow()
    address = request.client_addr
    # The password is checked between two short transactions, never inside one: argon2 takes
    # a CPU-second, and on SQLite every transaction holds the database's write lock.
    with unit_of_work(None) as db:
        if address and (held := throttle.locked(db, throttle.ADDRESS, address, now)):
            # refused before any password is checked; audited once per lock, not per attempt
            if throttle.first_report(held, now):
                db.add(held)
                _log(db, None, login_name, request, "login.failure", "address_throttled")
            db.commit()
            return LoginResult(error="throttled")
        account = _account(db, login_name.strip())
        checked_hash = account.password_hash if account else None
    password_ok = verify_password(checked_hash, password)
    with unit_of_work(None) as db:
        account = _account(db, login_name.strip(), lock=True)
        if account is not None and account.password_hash != checked_hash:
            # changed while the password was checked (a reset): check against the new one
            password_ok = verify_password(account.password_hash, password)
        if account is None:
            # an unknown name locks like a real one, so 「ロックしています」 reveals nothing
            name = login_name.strip()
            was_locked = throttle.locked(db, throttle.NAME, name, now) is not None
            locks = was_locked or throttle.failed(db, throttle.NAME, name, now)
            if address and not was_locked:
                throttle.failed(db, throttle.ADDRESS, address, now)
            _log(db, None, login_name, request, "login.failure", "unknown_user")
            db.commit()
            return LoginResult(error="locked" if locks else "invalid")
        if account.locked_until is not None and account.locked_until > now:
            _log(db, account, login_name, request, "login.failure", "locked")
            db.commit()
            return LoginResult(error="locked")
        if not password_ok or account.disabled:
            if address:
                throttle.failed(db, throttle.ADDRESS, address, now)
            account.failed_logins += 1
            reason = "disabled" if password_ok else "wrong_password"
            if account.failed_logins >= settings.login_max_failures:
                account.locked_until = now + timedelta(minutes=settings.login_lockout_minutes)
                account.failed_logins = 0
                reason = "wrong_password_locked"
            db.add(account)
            _log(db, account, login_name, request, "login.failure", reason)
            db.commit()
            return LoginResult(error="locked" if account.locked_until else "invalid")
        if not _member_may_log_in(db, account):
            _log(db, account, login_name, request, "login.failure", "account_inactive")
            db.commit()
            return LoginResult(error="suspended")
        account.failed_logins, account.locked_until = 0, None
        if needs_rehash(account.password_hash):
            account.password_hash = hash_password(password)
        db.add(account)
        principal = Principal(account.id, account.tenant_id, account.member_id)
        token = open_session(db, principal, request)
        _log(db, account, login_name, request, "login.success", "")
        db.commit()
        return LoginResult(token=token)


def _account(db, login_name: str, *, lock: bool = False) -> LocalAccount | None:
    """The account of a login name, read (and from here on acted on) for its own tenant. With
    `lock`, locked for the rest of the transaction, so concurrent wrong guesses are all counted
    (on SQLite the transaction already holds the write lock)."""
    tenant_id = owners.account_tenant(db, login_name)
    if tenant_id is None:
        return None
    set_tenant(db, tenant_id)
    query = select(LocalAccount).where(LocalAccount.login_name == login_name)
    return db.exec(query.with_for_update() if lock else query).first()


def _member_may_log_in(db, account: LocalAccount) -> bool:
    if account.is_operator:
        return account.tenant_id == PLATFORM_TENANT_ID
    if account.member_id is None:
        return False
    return may_sign_in(db.get(Tenant, account.tenant_id), db.get(Member, account.member_id))


def _log(
    db,
    account: LocalAccount | None,
    login_name: str,
    request: RequestContext,
    action: str,
    reason: str,
) -> None:
    tenant_id = account.tenant_id if account else PLATFORM_TENANT_ID
    actor = Actor(
        kind=ActorKind.MEMBER if tenant_id != PLATFORM_TENANT_ID else ActorKind.OPERATOR,
        display_name="",
        label=account.login_name if account else "",
        tenant_id=tenant_id,
        account_id=account.id if account else None,
        member_id=account.member_id if account else None,
        request=request,
    )
    details = {"method": "password"}
    if reason:
        details["reason"] = reason
    if account is None:
        details["login_name_length"] = len(login_name)
    audit.record(
        db,
        actor,
        category=AuditCategory.AUTH,
        action=action,
        outcome="success" if action == "login.success" else "failure",
        target_type="local_account",
        target_id=account.id if account else "",
        details=details,
    )


def login_name_problems(login_name: str, password: str) -> dict[str, str]:
    errors: dict[str, str] = {}
    if not login_name.strip() or len(login_name) > 80:
        errors["login_name"] = "ログイン名を80文字以内で入力してください。"
    if problem := password_problem(password):
        errors["password"] = problem
    return errors


def login_name_available(login_name: str) -> bool:
    with unit_of_work(None, read_only=True) as db:
        return owners.account_tenant(db, login_name.strip()) is None


def create_account(
    actor: Actor,
    *,
    login_name: str,
    password: str,
    is_operator: bool = False,
    tenant_id: uuid.UUID | None = None,
    member_id: uuid.UUID | None = None,
    display_name: str = "",
) -> uuid.UUID:
    """Platform task (operator or command line): a local account for an operator or a
    brigade's first administrator. Only an operator's account keeps a display name: a brigade
    member's name lives, encrypted, on the member (#16: no clear copy here)."""
    if actor.kind not in ("operator", "system"):
        raise PermissionDenied()
    login_name = login_name.strip()  # login() strips, so " admin" must collide with "admin"
    errors = login_name_problems(login_name, password)
    if is_operator == (tenant_id is not None):
        errors["tenant_id"] = "運営者アカウントか団のアカウントかのどちらかを指定してください。"
    with unit_of_work(tenant_id or PLATFORM_TENANT_ID) as db:
        if owners.account_tenant(db, login_name) is not None:
            errors["login_name"] = "このログイン名は既に使われています。"
        if errors:
            raise ValidationError(errors)
        account = LocalAccount(
            login_name=login_name.strip(),
            password_hash=hash_password(password),
            is_operator=is_operator,
            tenant_id=tenant_id or PLATFORM_TENANT_ID,
            member_id=member_id,
            display_name=display_name if is_operator else "",
        )
        db.add(account)
        db.flush()
        audit.record(
            db,
            actor,
            category=AuditCategory.OPERATION,
            action="local_account.create",
            target_type="local_account",
            target_id=account.id,
            details={"login_name": account.login_name, "operator": is_operator},
            tenant_id=tenant_id or PLATFORM_TENANT_ID,
        )
        db.commit()
        return account.id


def set_password(actor: Actor, *, login_name: str, password: str) -> None:
    """Platform task: reset a local account's password, clear its lockout, end its sessions."""
    if actor.kind not in ("operator", "system"):
        raise PermissionDenied()
    if problem := password_problem(password):
        raise ValidationError({"password": problem})
    with unit_of_work(None) as db:
        account = _account(db, login_name)
        if account is None:
            raise ValidationError({"login_name": "そのログイン名のアカウントはありません。"})
        account.password_hash = hash_password(password)
        account.failed_logins, account.locked_until = 0, None
        db.add(account)
        db.exec(
            update(Session)
            .where(Session.local_account_id == account.id, Session.revoked_at.is_(None))
            .values(revoked_at=utcnow(), revoke_reason="password_reset")
        )
        audit.record(
            db,
            actor,
            category=AuditCategory.AUTH,
            action="local_account.password_reset",
            target_type="local_account",
            target_id=account.id,
            details={"login_name": account.login_name},
            tenant_id=account.tenant_id,
        )
        db.commit()
