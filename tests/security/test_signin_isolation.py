"""The sign-in tables in the database itself (#16): local_account, user_session and
line_registration are under forced row-level security like every tenant table, and the only
way across brigades is three SECURITY DEFINER look-ups that answer with a tenant id and nothing
else. The tests talk SQL as the application role, bypassing the services."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from models.tenant import PLATFORM_TENANT_ID
from services import registrations
from services.signin import local
from services.signin.sessions import token_hash
from tests.factories import (
    PASSWORD,
    PLATFORM,
    admin,
    give_login,
    make_member,
    make_tenant,
    request_context,
)
from tests.fakes.line_server import LOGIN_CHANNEL_ENV, configured

pytestmark = pytest.mark.postgres_only

SIGNIN_TABLES = ("local_account", "user_session", "line_registration")
LOOKUPS = {
    "signin_session_tenant": "user_session",
    "signin_account_tenant": "local_account",
    "signin_registration_tenant": "line_registration",
}


@dataclass(frozen=True)
class Brigade:
    tenant_id: uuid.UUID
    login_name: str
    token_hash: str
    user_id: str


def _brigade() -> Brigade:
    """A brigade with a password account, an open session and a registration code."""
    tenant = make_tenant()
    login = give_login(tenant, make_member(tenant).id)
    token = local.login(login, PASSWORD, request_context()).token
    with configured(LOGIN_CHANNEL_ENV):
        issued = registrations.issue_registration(admin(tenant), make_member(tenant).id)
    return Brigade(tenant, login, token_hash(token), registrations.normalise(issued.user_id))


@pytest.fixture(scope="module")
def brigades(engine) -> tuple[Brigade, Brigade]:
    if engine.dialect.name != "postgresql":
        pytest.skip("row-level security exists only on PostgreSQL (HIKESHI_TEST_DATABASE_URL)")
    operator = f"op-{uuid.uuid4().hex[:10]}"
    local.create_account(PLATFORM, login_name=operator, password=PASSWORD, is_operator=True)
    assert local.login(operator, PASSWORD, request_context()).token
    return _brigade(), _brigade()


def _act_for(conn, tenant_id: uuid.UUID | None) -> None:
    if tenant_id is not None:
        conn.execute(text("SELECT set_config('app.tenant_id', :t, true)"), {"t": str(tenant_id)})


@pytest.mark.parametrize("table", SIGNIN_TABLES)
def test_rows_exist_for_both_brigades_and_the_platform(owner_engine, brigades, table):
    """What the tests below rely on: every table holds rows of both brigades (and the two
    account tables the platform's), seen here by the owner, a superuser."""
    a, b = brigades
    with owner_engine.connect() as conn:
        owners = {r[0] for r in conn.execute(text(f"SELECT DISTINCT tenant_id FROM {table}"))}
        nulls = conn.execute(text(f"SELECT count(*) FROM {table} WHERE tenant_id IS NULL"))
        assert nulls.scalar_one() == 0
    assert {a.tenant_id, b.tenant_id} <= owners
    if table != "line_registration":
        assert PLATFORM_TENANT_ID in owners


@pytest.mark.parametrize("table", SIGNIN_TABLES)
def test_no_tenant_set_reads_no_signin_rows(engine, brigades, table):
    with engine.connect() as conn, conn.begin():
        assert conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one() == 0


@pytest.mark.parametrize("table", SIGNIN_TABLES)
def test_a_brigade_reads_only_its_own_signin_rows(engine, brigades, table):
    a, _ = brigades
    with engine.connect() as conn, conn.begin():
        _act_for(conn, a.tenant_id)
        seen = {r[0] for r in conn.execute(text(f"SELECT tenant_id FROM {table}"))}
    assert seen == {a.tenant_id}


def test_password_hashes_are_out_of_reach_without_the_tenant(engine, brigades):
    a, b = brigades
    with engine.connect() as conn, conn.begin():
        _act_for(conn, a.tenant_id)
        hashes = conn.execute(
            text("SELECT password_hash FROM local_account WHERE login_name = :n"),
            {"n": b.login_name},
        ).all()
    assert hashes == []


@pytest.mark.parametrize("acting_for", ["nobody", "other brigade"])
def test_another_brigades_lockout_and_sessions_cannot_be_touched(engine, brigades, acting_for):
    a, b = brigades
    for _ in range(2):
        assert local.login(b.login_name, "wrong password!!", request_context()).error
    changes = {
        "reset lockout": (
            "UPDATE local_account SET failed_logins = 0, locked_until = NULL "
            "WHERE login_name = :name"
        ),
        "revoke sessions": "UPDATE user_session SET revoked_at = now() WHERE tenant_id = :b",
        "unlock registration": (
            "UPDATE line_registration SET failed_attempts = 0, locked_at = NULL "
            "WHERE tenant_id = :b"
        ),
        "delete sessions": "DELETE FROM user_session WHERE token_hash = :token",
    }
    with engine.connect() as conn:
        trans = conn.begin()
        _act_for(conn, a.tenant_id if acting_for == "other brigade" else None)
        touched = {
            name: conn.execute(
                text(sql), {"name": b.login_name, "b": b.tenant_id, "token": b.token_hash}
            ).rowcount
            for name, sql in changes.items()
        }
        trans.commit()
    assert touched == dict.fromkeys(changes, 0)
    with engine.connect() as conn, conn.begin():
        _act_for(conn, b.tenant_id)
        failed = conn.execute(
            text("SELECT failed_logins FROM local_account WHERE login_name = :n"),
            {"n": b.login_name},
        ).scalar_one()
    assert failed >= 2


@pytest.mark.parametrize("tenant", ["other brigade", "none"])
def test_an_account_cannot_be_written_for_another_brigade_or_for_none(engine, brigades, tenant):
    """Rows of no brigade must say so (PLATFORM_TENANT_ID): a NULL tenant is refused too."""
    a, b = brigades
    with engine.connect() as conn:
        trans = conn.begin()
        _act_for(conn, a.tenant_id)
        with pytest.raises(DBAPIError, match="row-level security"):
            conn.execute(
                text(
                    "INSERT INTO local_account (id, login_name, password_hash, is_operator, "
                    "tenant_id, display_name, failed_logins, disabled, created_at) VALUES "
                    "(:id, :name, 'x', false, :t, '', 0, false, now())"
                ),
                {
                    "id": uuid.uuid4(),
                    "name": f"intruder-{uuid.uuid4().hex[:8]}",
                    "t": b.tenant_id if tenant == "other brigade" else None,
                },
            )
        trans.rollback()


def test_lookup_functions_answer_with_the_tenant_only(engine, brigades):
    a, b = brigades
    keys = {
        "signin_session_tenant": (a.token_hash, b.token_hash),
        "signin_account_tenant": (a.login_name, b.login_name),
        "signin_registration_tenant": (a.user_id, b.user_id),
    }
    with engine.connect() as conn:
        for function, (key_a, key_b) in keys.items():
            for key, tenant in ((key_a, a.tenant_id), (key_b, b.tenant_id), ("unknown", None)):
                result = conn.execute(text(f"SELECT * FROM {function}(:k)"), {"k": key})
                assert (list(result.keys()), result.all()) == ([function], [(tenant,)])


def test_lookup_functions_are_narrow_definer_functions_for_the_app_role_only(
    owner_engine, app_database_url, brigades
):
    """SECURITY DEFINER with a fixed search_path, owned by the tables' owner, one text argument
    and a uuid result, EXECUTE for the application role alone (not PUBLIC)."""
    app_role = app_database_url.split("://", 1)[1].split("@", 1)[0]
    with owner_engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT p.proname, p.prosecdef, p.proconfig, p.provolatile, "
                "pg_get_function_identity_arguments(p.oid) AS args, "
                "format_type(p.prorettype, NULL) AS result, pg_get_userbyid(p.proowner) AS owner, "
                "ARRAY(SELECT CASE WHEN a.grantee = 0 THEN 'PUBLIC' "
                "ELSE pg_get_userbyid(a.grantee) END FROM aclexplode(p.proacl) a "
                "WHERE a.privilege_type = 'EXECUTE' ORDER BY 1) AS executors "
                "FROM pg_proc p WHERE p.pronamespace = 'public'::regnamespace "
                "AND p.proname LIKE 'signin\\_%'"
            )
        ).all()
        table_owners = dict(
            conn.execute(
                text("SELECT tablename, tableowner FROM pg_tables WHERE schemaname = 'public'")
            ).all()
        )
    assert {row.proname for row in rows} == set(LOOKUPS)
    for row in rows:
        assert row.prosecdef
        owner = table_owners[LOOKUPS[row.proname]]
        assert row.owner == owner
        assert row.proconfig == ["search_path=public, pg_temp"]
        assert (row.args, row.result, row.provolatile) == ("p_key text", "uuid", "s")
        assert set(row.executors) == {owner, app_role}
