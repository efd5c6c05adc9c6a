"""Local password login (auth/local.py): brigade administrator and platform operator."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta

import argon2
import pytest
from sqlmodel import Session as DbSession
from sqlmodel import select

from config import get_settings, load_settings
from core.access import Need, allows
from core.actor import RequestContext
from models import PLATFORM_TENANT_ID, AuditEvent, LocalAccount, MemberPublic
from models.base import utcnow
from models.enums import Function, Level
from services import members, roles
from services.db import set_tenant
from services.errors import PermissionDenied, ValidationError
from services.permissions import DEFAULT_RANK_MATRIX, DEFAULT_ROLE_MATRIX
from services.signin import local, passwords, sessions
from tests.factories import (
    PLATFORM,
    actor_with,
    admin,
    audit_events,
    make_member,
    make_tenant,
    rank_id,
    request_context,
)

PASSWORD = "correct horse battery staple"
WRONG = "wrong horse battery staple"


@dataclass(frozen=True)
class Account:
    login_name: str
    account_id: uuid.UUID
    tenant_id: uuid.UUID | None = None
    member: MemberPublic | None = None

    @property
    def chain(self) -> uuid.UUID:
        return self.tenant_id or PLATFORM_TENANT_ID


def _login_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def make_brigade_account(rank: str = "分団長", role_ids: tuple[uuid.UUID, ...] = ()) -> Account:
    tenant = make_tenant()
    member = make_member(tenant, rank_id=rank_id(tenant, rank), role_ids=list(role_ids))
    return add_account(tenant, member)


def add_account(tenant: uuid.UUID, member: MemberPublic) -> Account:
    name = _login_name("admin")
    account_id = local.create_account(
        PLATFORM, login_name=name, password=PASSWORD, tenant_id=tenant, member_id=member.id
    )
    return Account(name, account_id, tenant, member)


@pytest.fixture
def brigade_admin(engine) -> Account:
    return make_brigade_account()


@pytest.fixture
def operator(engine) -> Account:
    name = _login_name("operator")
    account_id = local.create_account(
        PLATFORM, login_name=name, password=PASSWORD, is_operator=True, display_name="運営者"
    )
    return Account(name, account_id)


@pytest.fixture
def verify_calls(monkeypatch) -> list[str | None]:
    """Records every argon2 verification (the hash verified against)."""

    class CountingHasher:
        def __init__(self, real) -> None:
            self._real = real

        def verify(self, stored_hash, password):
            calls.append(stored_hash)
            return self._real.verify(stored_hash, password)

        def __getattr__(self, name):
            return getattr(self._real, name)

    calls: list[str | None] = []
    counting = CountingHasher(passwords._hasher())
    monkeypatch.setattr(passwords, "_hasher", lambda: counting)
    return calls


def events(engine, account: Account, request: RequestContext) -> list[AuditEvent]:
    return audit_events(engine, account.chain, request_id=request.request_id)


def actions(engine, account: Account, request: RequestContext) -> list[tuple[str, str, str]]:
    return [(e.category, e.action, e.outcome) for e in events(engine, account, request)]


def account_row(engine, account: Account) -> LocalAccount:
    """The account row, read for its tenant (the sign-in tables are under row-level security)."""
    with DbSession(engine) as db:
        set_tenant(db, account.chain)
        return db.get(LocalAccount, account.account_id)


def set_account(engine, account: Account, **values) -> None:
    with DbSession(engine) as db:
        set_tenant(db, account.chain)
        row = db.get(LocalAccount, account.account_id)
        for name, value in values.items():
            setattr(row, name, value)
        db.add(row)
        db.commit()


# ---------------------------------------------------------------------------
# Success
# ---------------------------------------------------------------------------


def test_brigade_admin_logs_in_with_the_members_permissions(engine, brigade_admin):
    request = request_context()
    result = local.login(brigade_admin.login_name, PASSWORD, request)
    assert result.error is None and result.token
    actor = sessions.resolve(result.token)
    assert actor is not None
    assert actor.kind == "member"
    assert actor.tenant_id == brigade_admin.tenant_id
    assert actor.member_id == brigade_admin.member.id
    assert actor.account_id == brigade_admin.account_id
    assert actor.display_name == brigade_admin.member.name
    assert actor.rank_name == "分団長"
    expected = {str(f): lvl for f, lvl in DEFAULT_RANK_MATRIX["分団長"].items() if lvl}
    assert dict(actor.permissions) == expected
    assert not allows(actor, Need(Function.RESTORE))
    assert [m.id for m in members.list_members(actor)] == [brigade_admin.member.id]
    assert actions(engine, brigade_admin, request) == [("auth", "login.success", "success")]


@pytest.mark.parametrize(
    ("rank", "role_names"),
    [
        ("部長", ("庶務",)),  # the role raises roster and account rights above the rank's
        ("分団長", ("会計",)),  # a weaker role must not lower the rank's roster right
        ("班長", ("会計", "機関員")),
    ],
)
def test_permissions_are_the_most_permissive_of_rank_and_roles(engine, rank, role_names):
    tenant = make_tenant()
    role_ids = [
        roles.create_role(admin(tenant), name=name, rank_id=rank_id(tenant, "団員"))
        for name in role_names
    ]
    member = make_member(tenant, rank_id=rank_id(tenant, rank), role_ids=role_ids)
    account = add_account(tenant, member)
    actor = sessions.resolve(local.login(account.login_name, PASSWORD, request_context()).token)
    assert actor is not None
    assert actor.role_names == tuple(sorted(role_names))
    matrices = [DEFAULT_RANK_MATRIX[rank], *(DEFAULT_ROLE_MATRIX[n] for n in role_names)]
    expected = {
        str(f): level
        for f in Function
        if (level := max(m.get(f, Level.NONE) for m in matrices)) > Level.NONE
    }
    assert dict(actor.permissions) == expected


def test_operator_logs_in(engine, operator):
    request = request_context()
    result = local.login(f"  {operator.login_name} ", PASSWORD, request)
    actor = sessions.resolve(result.token)
    assert actor is not None
    assert (actor.kind, actor.tenant_id, actor.member_id) == ("operator", None, None)
    assert actor.account_id == operator.account_id
    assert actor.display_name == "運営者"
    assert actor.permissions == {}
    assert actions(engine, operator, request) == [("auth", "login.success", "success")]


def test_each_login_gets_a_new_token(brigade_admin):
    first = local.login(brigade_admin.login_name, PASSWORD, request_context()).token
    second = local.login(brigade_admin.login_name, PASSWORD, request_context()).token
    assert first and second and first != second
    assert len(first) >= 43  # 256 bits, URL-safe base64
    assert sessions.resolve(first) is not None and sessions.resolve(second) is not None


# ---------------------------------------------------------------------------
# Failures
# ---------------------------------------------------------------------------


def test_wrong_password(engine, brigade_admin, verify_calls):
    request = request_context()
    result = local.login(brigade_admin.login_name, WRONG, request)
    assert result == local.LoginResult(error="invalid")
    assert len(verify_calls) == 1
    assert account_row(engine, brigade_admin).failed_logins == 1
    assert actions(engine, brigade_admin, request) == [("auth", "login.failure", "failure")]
    assert '"wrong_password"' in events(engine, brigade_admin, request)[0].details


def test_unknown_user_costs_one_verification(engine, verify_calls):
    request = request_context()
    name = _login_name("nobody")
    result = local.login(name, PASSWORD, request)
    assert result == local.LoginResult(error="invalid")
    assert len(verify_calls) == 1
    assert verify_calls[0]  # a real (dummy) hash was verified, not skipped
    platform = Account(name, uuid.uuid4())
    (event,) = events(engine, platform, request)
    assert (event.category, event.action, event.outcome) == ("auth", "login.failure", "failure")
    assert name not in event.details  # a mistyped password may be typed as a login name


def test_unknown_user_and_wrong_password_look_alike(brigade_admin):
    unknown = local.login(_login_name("nobody"), PASSWORD, request_context())
    wrong = local.login(brigade_admin.login_name, WRONG, request_context())
    assert unknown == wrong == local.LoginResult(error="invalid")


def test_lockout_after_max_failures_and_expiry(engine, brigade_admin, monkeypatch):
    settings = get_settings()
    results = [
        local.login(brigade_admin.login_name, WRONG, request_context()).error
        for _ in range(settings.login_max_failures)
    ]
    assert results == ["invalid"] * (settings.login_max_failures - 1) + ["locked"]
    request = request_context()
    assert local.login(brigade_admin.login_name, PASSWORD, request) == local.LoginResult(
        error="locked"
    )
    assert actions(engine, brigade_admin, request) == [("auth", "login.failure", "failure")]

    now = utcnow()
    lockout = timedelta(minutes=settings.login_lockout_minutes)
    monkeypatch.setattr(local, "utcnow", lambda: now + lockout - timedelta(minutes=1))
    assert local.login(brigade_admin.login_name, PASSWORD, request_context()).error == "locked"
    monkeypatch.setattr(local, "utcnow", lambda: now + lockout + timedelta(minutes=1))
    result = local.login(brigade_admin.login_name, PASSWORD, request_context())
    assert result.error is None and sessions.resolve(result.token) is not None
    row = account_row(engine, brigade_admin)
    assert (row.failed_logins, row.locked_until) == (0, None)


def test_lock_in_the_past_has_expired(engine, brigade_admin):
    set_account(engine, brigade_admin, locked_until=utcnow() - timedelta(seconds=1))
    assert local.login(brigade_admin.login_name, PASSWORD, request_context()).token
    set_account(engine, brigade_admin, locked_until=utcnow() + timedelta(minutes=5))
    assert local.login(brigade_admin.login_name, PASSWORD, request_context()).error == "locked"


def test_success_resets_the_failure_count(engine, brigade_admin):
    almost = get_settings().login_max_failures - 1
    for _ in range(2):
        for _ in range(almost):
            assert local.login(brigade_admin.login_name, WRONG, request_context()).error == (
                "invalid"
            )
        assert local.login(brigade_admin.login_name, PASSWORD, request_context()).token


@pytest.mark.parametrize("service", [members.suspend_member, members.retire_member])
def test_inactive_member_cannot_log_in(engine, brigade_admin, service):
    service(admin(brigade_admin.tenant_id), brigade_admin.member.id)
    request = request_context()
    result = local.login(brigade_admin.login_name, PASSWORD, request)
    assert result == local.LoginResult(error="suspended")
    assert actions(engine, brigade_admin, request) == [("auth", "login.failure", "failure")]


def test_disabled_account_cannot_log_in(engine, brigade_admin):
    set_account(engine, brigade_admin, disabled=True)
    assert local.login(brigade_admin.login_name, PASSWORD, request_context()) == (
        local.LoginResult(error="invalid")
    )


# ---------------------------------------------------------------------------
# Logout and the audit trail
# ---------------------------------------------------------------------------


def test_logout(engine, brigade_admin):
    token = local.login(brigade_admin.login_name, PASSWORD, request_context()).token
    request = request_context()
    assert sessions.revoke(token, request) is True
    assert sessions.resolve(token) is None
    assert actions(engine, brigade_admin, request) == [("auth", "logout", "success")]
    again = request_context()
    assert sessions.revoke(token, again) is False
    assert events(engine, brigade_admin, again) == []


@pytest.mark.parametrize("who", ["brigade_admin", "operator"])
def test_audit_records_hold_no_password_or_token(engine, request, who):
    account: Account = request.getfixturevalue(who)
    flow = [request_context() for _ in range(3)]
    assert local.login(account.login_name, WRONG, flow[0]).error == "invalid"
    token = local.login(account.login_name, PASSWORD, flow[1]).token
    assert sessions.revoke(token, flow[2])
    recorded = [events(engine, account, r) for r in flow]
    assert [[e.action for e in found] for found in recorded] == [
        ["login.failure"],
        ["login.success"],
        ["logout"],
    ]
    secrets = (PASSWORD, WRONG, token, sessions.token_hash(token), "horse")
    for event in (e for found in recorded for e in found):
        assert event.category == "auth"
        text = " ".join(str(value) for value in event.model_dump().values())
        assert not [s for s in secrets if s in text]


# ---------------------------------------------------------------------------
# Creating accounts
# ---------------------------------------------------------------------------


def test_only_the_platform_creates_accounts(brigade_admin):
    member_actor = actor_with(brigade_admin.tenant_id, {f: Level.ADMIN for f in Function})
    with pytest.raises(PermissionDenied):
        local.create_account(
            member_actor,
            login_name=_login_name("x"),
            password=PASSWORD,
            tenant_id=brigade_admin.tenant_id,
            member_id=brigade_admin.member.id,
        )


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"password": "short"}, "password"),
        ({"login_name": "  "}, "login_name"),
        ({"login_name": "x" * 81}, "login_name"),
        ({"is_operator": True}, "tenant_id"),
        ({"tenant_id": None}, "tenant_id"),
    ],
)
def test_create_account_rejects_bad_input(brigade_admin, overrides, field):
    values = {
        "login_name": _login_name("new"),
        "password": PASSWORD,
        "tenant_id": brigade_admin.tenant_id,
        "member_id": brigade_admin.member.id,
    } | overrides
    with pytest.raises(ValidationError) as err:
        local.create_account(PLATFORM, **values)
    assert field in err.value.errors


@pytest.mark.parametrize("spelling", ["{}", " {} ", "{}  "])
def test_login_names_are_unique(brigade_admin, spelling):
    with pytest.raises(ValidationError) as err:
        local.create_account(
            PLATFORM,
            login_name=spelling.format(brigade_admin.login_name),
            password=PASSWORD,
            is_operator=True,
        )
    assert set(err.value.errors) == {"login_name"}


def test_password_is_stored_as_argon2id(engine, brigade_admin):
    stored = account_row(engine, brigade_admin).password_hash
    assert stored.startswith("$argon2id$")
    assert PASSWORD not in stored


def test_production_hashes_use_the_rfc_9106_low_memory_parameters(monkeypatch):
    """The suite runs with cheap argon2 (tests/conftest.py); production must not."""
    for name in ("ARGON2_TIME_COST", "ARGON2_MEMORY_KIB", "ARGON2_PARALLELISM"):
        monkeypatch.delenv(f"HIKESHI_{name}", raising=False)
    settings = load_settings()
    monkeypatch.setattr(passwords, "get_settings", lambda: settings)
    passwords._hasher.cache_clear()
    try:
        parameters = argon2.extract_parameters(passwords.hash_password(PASSWORD))
    finally:
        passwords._hasher.cache_clear()
    assert parameters == argon2.profiles.RFC_9106_LOW_MEMORY


def test_a_hash_made_with_other_parameters_verifies_and_asks_for_rehash():
    stronger = argon2.PasswordHasher(time_cost=4, memory_cost=8, parallelism=1)
    stored = stronger.hash(PASSWORD)
    assert passwords.verify_password(stored, PASSWORD)
    assert passwords.needs_rehash(stored)


def test_created_account_is_audited(engine):
    tenant = make_tenant()
    member = make_member(tenant)
    account = add_account(tenant, member)
    with DbSession(engine) as db:
        set_tenant(db, tenant)
        created = db.exec(
            select(AuditEvent).where(
                AuditEvent.tenant_id == tenant, AuditEvent.action == "local_account.create"
            )
        ).all()
    assert [e.target_id for e in created] == [str(account.account_id)]
    assert PASSWORD not in created[0].details


def test_concurrent_wrong_guesses_are_all_counted(engine, brigade_admin):
    """#16: the failure counter was read, incremented and written without a lock, so 24
    simultaneous wrong guesses on PostgreSQL left it at 1 and never locked the account."""
    from concurrent.futures import ThreadPoolExecutor

    limit = get_settings().login_max_failures
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(
            pool.map(
                lambda _: local.login(brigade_admin.login_name, WRONG, request_context()).error,
                range(limit * 3),
            )
        )
    assert answers.count("locked") >= limit * 2  # every guess after the limit-th is refused
    row = account_row(engine, brigade_admin)
    assert row.locked_until is not None


@pytest.mark.parametrize(("persistent", "max_age"), [("", False), ("1", True)])
def test_the_session_cookie_dies_with_the_browser_unless_configured(
    brigade_admin, persistent, max_age
):
    """#16: a shared fire-station PC must not stay signed in after the browser closes."""
    from starlette.applications import Starlette
    from starlette.testclient import TestClient

    import server
    from tests.fakes.line_server import configured

    env = {"HIKESHI_PERSISTENT_SESSIONS": persistent} if persistent else {}
    with configured(env), TestClient(Starlette(routes=server.routes)) as client:
        response = client.post(
            "/auth/login",
            data={"login_name": brigade_admin.login_name, "password": PASSWORD},
            headers={"origin": "http://testserver"},
            follow_redirects=False,
        )
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("hikeshi_session=") and "HttpOnly" in cookie
    assert ("Max-Age=" in cookie) is max_age


# ---------------------------------------------------------------------------
# Throttling per login name and per client address (#16)


def test_an_unknown_name_locks_like_a_real_one(brigade_admin):
    """Only real accounts used to answer 「ロックしています」, so the answer told which login
    names exist; an unknown name now gives the same answers, attempt by attempt."""
    attempts = get_settings().login_max_failures + 2
    real = [
        local.login(brigade_admin.login_name, WRONG, request_context()).error
        for _ in range(attempts)
    ]
    unknown_name = f"nobody-{uuid.uuid4().hex[:8]}"
    unknown = [local.login(unknown_name, WRONG, request_context()).error for _ in range(attempts)]
    assert unknown == real
    assert real[-1] == "locked"


def test_a_flooding_address_is_refused_before_any_password_is_checked(
    engine, brigade_admin, verify_calls
):
    from tests.fakes.line_server import configured

    flood = RequestContext(request_id="flood", client_addr=f"198.51.100.{uuid.uuid4().int % 250}")
    with configured({"HIKESHI_LOGIN_ADDRESS_MAX_FAILURES": "3"}):
        for i in range(3):
            assert local.login(f"guess-{i}-{uuid.uuid4().hex[:6]}", WRONG, flood).error == "invalid"
        verify_calls.clear()
        answers = [local.login(brigade_admin.login_name, PASSWORD, flood).error for _ in range(4)]
        assert answers == ["throttled"] * 4
        assert verify_calls == []  # no argon2 work for a throttled address
        # another address is not affected
        assert local.login(brigade_admin.login_name, PASSWORD, request_context()).token
    with DbSession(engine) as db:
        set_tenant(db, PLATFORM_TENANT_ID)
        throttled = db.exec(
            select(AuditEvent).where(
                AuditEvent.request_id == "flood", AuditEvent.details.contains("address_throttled")
            )
        ).all()
    assert len(throttled) == 1  # audited once per lock, not once per attempt
    assert local.MESSAGES["throttled"].startswith("この端末からのログインの失敗が多すぎる")
