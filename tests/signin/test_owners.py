"""Sign-in before a tenant is known (services/signin/owners.py): the look-ups that name a
secret's tenant, the platform's rows under PLATFORM_TENANT_ID, and the migration that moved
rows of no brigade there (v002). Runs on both databases; tests/security/test_signin_isolation.py
holds the PostgreSQL side."""

from __future__ import annotations

import os
import secrets
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta

import pytest
from alembic import command
from sqlalchemy import Engine, create_engine, insert, select, text
from sqlalchemy.engine import make_url

from models import LocalAccount, Session
from models.base import utcnow
from models.tenant import PLATFORM_TENANT_ID
from services import registrations, tenants
from services.db import build_engine, current_engine, normalise_url, set_engine, unit_of_work
from services.errors import PermissionDenied, ValidationError
from services.signin import line_sessions, local, owners, sessions
from services.signin.passwords import hash_password
from tests.conftest import APP_ROLE, _create_postgres_database, alembic_config
from tests.factories import PASSWORD, PLATFORM, admin, make_member, make_tenant, request_context
from tests.fakes.line_server import new_sub


def _operator() -> str:
    name = f"op-{uuid.uuid4().hex[:10]}"
    local.create_account(PLATFORM, login_name=name, password=PASSWORD, is_operator=True)
    return name


@pytest.mark.usefixtures("line_login_channel")
def test_each_secret_names_its_tenant_and_nothing_else(engine):
    tenant = make_tenant()
    member = make_member(tenant)
    login = f"chief-{uuid.uuid4().hex[:8]}"
    local.create_account(
        PLATFORM, login_name=login, password=PASSWORD, tenant_id=tenant, member_id=member.id
    )
    token = local.login(login, PASSWORD, request_context()).token
    issued = registrations.issue_registration(admin(tenant), make_member(tenant).id)
    with unit_of_work(None) as db:
        assert owners.account_tenant(db, login) == tenant
        assert owners.session_tenant(db, sessions.token_hash(token)) == tenant
        user_id = registrations.normalise(issued.user_id)
        assert owners.registration_tenant(db, user_id) == tenant
        assert owners.account_tenant(db, "no-such-login") is None
        assert owners.session_tenant(db, sessions.token_hash("no-such-token")) is None
        assert owners.registration_tenant(db, "ZZZZZZZZ") is None


def test_rows_of_no_brigade_belong_to_the_platform(engine):
    """An operator's account and session, and a LINE login bound to no member, are stored
    under PLATFORM_TENANT_ID (a NULL tenant would be invisible under row-level security)."""
    name = _operator()
    token = local.login(name, PASSWORD, request_context()).token
    line_token = line_sessions.complete_login(new_sub(), "", request_context()).token
    with unit_of_work(None) as db:
        assert owners.account_tenant(db, name) == PLATFORM_TENANT_ID
        assert owners.session_tenant(db, sessions.token_hash(token)) == PLATFORM_TENANT_ID
        assert owners.session_tenant(db, sessions.token_hash(line_token)) == PLATFORM_TENANT_ID
    assert sessions.resolve(line_token).kind == "line_register"


def test_a_signed_in_operator_passes_the_gate_until_logout(engine):
    """The gate re-reads an operator's session, a platform row, for the platform."""
    token = local.login(_operator(), PASSWORD, request_context()).token
    actor = replace(sessions.resolve(token), checked=None)  # not just confirmed: re-read
    assert (actor.kind, actor.tenant_id) == ("operator", None)
    assert isinstance(tenants.list_brigades(actor), list)
    assert sessions.revoke(token, request_context())
    with pytest.raises(PermissionDenied):
        tenants.list_brigades(actor)


def test_an_operators_lockout_is_reset_by_set_password(engine):
    name = _operator()
    for _ in range(5):
        local.login(name, "wrong password!!", request_context())
    assert local.login(name, PASSWORD, request_context()).error == "locked"
    local.set_password(PLATFORM, login_name=name, password="a brand new password 1")
    assert local.login(name, "a brand new password 1", request_context()).token


def test_a_login_name_is_taken_across_brigades(engine):
    """Login names are global: a brigade cannot reuse another's, though it cannot see it."""
    first, second = make_tenant(), make_tenant()
    login = f"shared-{uuid.uuid4().hex[:8]}"
    local.create_account(
        PLATFORM,
        login_name=login,
        password=PASSWORD,
        tenant_id=first,
        member_id=make_member(first).id,
    )
    assert not local.login_name_available(login)
    with pytest.raises(ValidationError) as refused:
        local.create_account(
            PLATFORM,
            login_name=login,
            password=PASSWORD,
            tenant_id=second,
            member_id=make_member(second).id,
        )
    assert "login_name" in refused.value.errors


# ---------------------------------------------------------------------------
# Migration v002 on a database with rows from before it


@pytest.fixture
def before_v002(engine, tmp_path) -> Iterator[tuple[str, str]]:
    """A database of its own at v001: (owner URL, application URL). On PostgreSQL its owner is
    a role of its own that is no superuser, as in production, so row-level security binds the
    owner too and the definer look-ups must still see the rows."""
    server = os.environ.get("HIKESHI_TEST_DATABASE_URL")
    if not server:
        url = f"sqlite:///{tmp_path / 'v002.db'}"
        command.upgrade(alembic_config(url), "v001")
        yield url, url
        return
    role = f"hikeshi_owner_{uuid.uuid4().hex[:8]}"
    admin_engine = create_engine(
        make_url(normalise_url(server)).set(database="postgres"), isolation_level="AUTOCOMMIT"
    )
    with admin_engine.connect() as conn:
        conn.execute(text(f"CREATE ROLE {role} LOGIN NOSUPERUSER NOBYPASSRLS"))
    owner_url, name = _create_postgres_database(server)
    with admin_engine.connect() as conn:
        conn.execute(text(f'ALTER DATABASE "{name}" OWNER TO {role}'))
    owner_url = make_url(owner_url).set(username=role).render_as_string(hide_password=False)
    app_url = make_url(owner_url).set(username=APP_ROLE).render_as_string(hide_password=False)
    command.upgrade(alembic_config(owner_url), "v001")
    try:
        yield owner_url, app_url
    finally:
        with admin_engine.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(text(f"DROP ROLE IF EXISTS {role}"))
        admin_engine.dispose()


def _old_operator(owner: Engine) -> tuple[str, str]:
    """An operator account and an open session as the code before v002 stored them: no tenant."""
    name, token = f"op-{uuid.uuid4().hex[:8]}", secrets.token_urlsafe(32)
    account_id, now = uuid.uuid4(), utcnow()
    with owner.begin() as conn:
        conn.execute(
            insert(LocalAccount.__table__).values(
                id=account_id,
                login_name=name,
                password_hash=hash_password(PASSWORD),
                is_operator=True,
                tenant_id=None,
                display_name="運営者",
                failed_logins=0,
                disabled=False,
                created_at=now,
            )
        )
        conn.execute(
            insert(Session.__table__).values(
                id=uuid.uuid4(),
                token_hash=sessions.token_hash(token),
                local_account_id=account_id,
                tenant_id=None,
                created_at=now,
                last_seen_at=now,
                expires_at=now + timedelta(hours=1),
                revoke_reason="",
                client_addr="",
                user_agent="",
            )
        )
    return name, token


def _tenants_of(owner: Engine, name: str, token: str) -> tuple:
    account, session = LocalAccount.__table__, Session.__table__
    with owner.begin() as conn:
        if owner.dialect.name == "postgresql":  # the owner is bound by row-level security too
            conn.execute(text("SET LOCAL app.tenant_id = '00000000-0000-0000-0000-000000000000'"))
        return (
            conn.execute(select(account.c.tenant_id).where(account.c.login_name == name)).first(),
            conn.execute(
                select(session.c.tenant_id).where(
                    session.c.token_hash == sessions.token_hash(token)
                )
            ).first(),
        )


def test_v002_gives_rows_of_no_brigade_to_the_platform_and_they_still_sign_in(before_v002):
    owner_url, app_url = before_v002
    owner = build_engine(owner_url)
    name, token = _old_operator(owner)
    command.upgrade(alembic_config(owner_url), "heads")
    assert _tenants_of(owner, name, token) == ((PLATFORM_TENANT_ID,), (PLATFORM_TENANT_ID,))
    shared, app = current_engine(), build_engine(app_url)
    set_engine(app)
    try:
        assert sessions.resolve(token).kind == "operator"
        assert local.login(name, PASSWORD, request_context()).token
    finally:
        set_engine(shared)
        app.dispose()
    command.downgrade(alembic_config(owner_url), "v001")
    assert _tenants_of(owner, name, token) == ((None,), (None,))
    owner.dispose()
