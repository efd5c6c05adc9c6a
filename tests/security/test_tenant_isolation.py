"""Tenant isolation in the database itself (CLD.9.5.1). The PostgreSQL tests bypass the
application's own filter and talk SQL as the application role: only row-level security stands
between brigades there."""

from __future__ import annotations

import threading
import uuid

import pytest
from sqlalchemy import Engine, delete, inspect, text, update
from sqlalchemy.exc import DBAPIError
from sqlmodel import SQLModel

import models
from services.db import UnsafeDatabaseRole, build_engine, check_application_role
from tests.factories import make_member, make_tenant

postgres_only = pytest.mark.postgres_only

TENANT_TABLES = sorted(
    name for name, table in SQLModel.metadata.tables.items() if "tenant_id" in table.c
)
# Keys that find the tenant, so they are unique across brigades by design: a login name, a
# session token's hash, the user id printed on a registration sheet. Only the narrow look-ups of
# services/signin/owners.py ask across brigades, and they answer only with the tenant.
GLOBAL_KEYS = {
    ("local_account", ("login_name",)),
    ("user_session", ("token_hash",)),
    ("line_registration", ("user_id",)),
}


TENANT_POLICY = (
    "(tenant_id = (NULLIF(current_setting('app.tenant_id'::text, true), ''::text))::uuid)"
)


def _skip_unless_postgres(engine: Engine) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("row-level security exists only on PostgreSQL (HIKESHI_TEST_DATABASE_URL)")


@pytest.fixture(scope="module")
def two_tenants(engine):
    a, b = make_tenant(), make_tenant()
    return {a: [make_member(a).id for _ in range(3)], b: [make_member(b).id for _ in range(2)]}


def test_every_tenant_table_is_known():
    assert {"member", "audit_event", "water_source", "permission"} <= set(TENANT_TABLES)
    assert {"local_account", "user_session", "line_registration"} <= set(TENANT_TABLES)


def test_platform_tables_have_no_tenant_column():
    """PLATFORM_TABLES names the tables without tenant_id; it exempts none that has one."""
    tables = SQLModel.metadata.tables
    assert [
        t for t in sorted(models.PLATFORM_TABLES & set(tables)) if "tenant_id" in tables[t].c
    ] == []


def test_unique_keys_include_tenant_id(engine):
    inspector = inspect(engine)
    offenders = []
    for table in TENANT_TABLES:
        uniques = [u["column_names"] for u in inspector.get_unique_constraints(table)]
        uniques += [i["column_names"] for i in inspector.get_indexes(table) if i["unique"]]
        offenders += [(table, tuple(cols)) for cols in uniques if "tenant_id" not in cols]
    assert set(offenders) == GLOBAL_KEYS


@postgres_only
def test_every_tenant_table_has_forced_rls_and_a_policy(owner_engine):
    _skip_unless_postgres(owner_engine)
    with owner_engine.connect() as conn:
        flags = dict(
            (row[0], (row[1], row[2]))
            for row in conn.execute(
                text(
                    "SELECT relname, relrowsecurity, relforcerowsecurity FROM pg_class "
                    "WHERE relnamespace = 'public'::regnamespace AND relkind = 'r'"
                )
            )
        )
        policies = conn.execute(
            text(
                "SELECT tablename, policyname, cmd, roles::text[] AS roles, qual, with_check "
                "FROM pg_policies WHERE schemaname = 'public'"
            )
        ).all()
        owners = dict(
            conn.execute(
                text("SELECT tablename, tableowner FROM pg_tables WHERE schemaname = 'public'")
            ).all()
        )
        tenant_columns = {
            r[0]
            for r in conn.execute(
                text(
                    "SELECT table_name FROM information_schema.columns "
                    "WHERE table_schema = 'public' AND column_name = 'tenant_id'"
                )
            )
        }
    assert set(TENANT_TABLES) <= tenant_columns
    isolated = {
        p.tablename
        for p in policies
        if (p.policyname, p.cmd, p.roles) == ("tenant_isolation", "ALL", ["public"])
        and p.qual == p.with_check == TENANT_POLICY
    }
    unprotected = [
        t for t in sorted(tenant_columns) if flags.get(t) != (True, True) or t not in isolated
    ]
    assert unprotected == []
    # Policies are permissive: any other would widen what the application sees. The only ones
    # allowed let the owner read (the sign-in look-ups run as the owner, services/signin/owners.py).
    widening = [
        (p.tablename, p.policyname)
        for p in policies
        if p.policyname != "tenant_isolation"
        and (p.cmd, p.roles) != ("SELECT", [owners[p.tablename]])
    ]
    assert widening == []


@postgres_only
def test_application_role_sees_only_its_tenant(engine, two_tenants):
    _skip_unless_postgres(engine)
    (a, _), (b, _) = two_tenants.items()
    with engine.connect() as conn, conn.begin():
        conn.execute(text("SELECT set_config('app.tenant_id', :t, true)"), {"t": str(a)})
        seen = {r[0] for r in conn.execute(text("SELECT tenant_id FROM member"))}
        assert seen == {a}
        assert (
            conn.execute(
                text("SELECT count(*) FROM member WHERE tenant_id = :b"), {"b": b}
            ).scalar_one()
            == 0
        )
        updated = conn.execute(
            text("UPDATE member SET affiliation = 'x' WHERE tenant_id = :b"), {"b": b}
        ).rowcount
        assert updated == 0
        deleted = conn.execute(
            text("DELETE FROM member_role WHERE tenant_id = :b"), {"b": b}
        ).rowcount
        assert deleted == 0


@postgres_only
@pytest.mark.parametrize(
    "statement",
    [
        "INSERT INTO rank (id, tenant_id, name, position) VALUES (:id, :b, '侵入', 99)",
        "UPDATE member SET tenant_id = :b WHERE id = :victim",
    ],
    ids=["insert-into-other-tenant", "move-row-to-other-tenant"],
)
def test_cross_tenant_writes_are_refused(engine, two_tenants, statement):
    _skip_unless_postgres(engine)
    (a, a_ids), (b, _) = two_tenants.items()
    with engine.connect() as conn:
        trans = conn.begin()
        conn.execute(text("SELECT set_config('app.tenant_id', :t, true)"), {"t": str(a)})
        with pytest.raises(DBAPIError, match="row-level security"):
            conn.execute(text(statement), {"id": uuid.uuid4(), "b": b, "victim": a_ids[0]})
        trans.rollback()


@postgres_only
def test_no_tenant_set_means_no_rows_and_no_error(engine, two_tenants):
    _skip_unless_postgres(engine)
    with engine.connect() as conn, conn.begin():
        for table in TENANT_TABLES:
            assert conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one() == 0, table


@postgres_only
def test_tenant_setting_never_leaks_between_pooled_transactions(app_database_url, two_tenants):
    engine = build_engine(app_database_url, pool_size=2, max_overflow=0)
    _skip_unless_postgres(engine)
    tenants = list(two_tenants)
    failures: list[str] = []

    def worker(index: int) -> None:
        for i in range(30):
            tenant = tenants[(index + i) % 2]
            with engine.connect() as conn:
                trans = conn.begin()
                before = conn.execute(text("SELECT current_setting('app.tenant_id', true)"))
                if before.scalar_one() not in (None, ""):
                    failures.append(f"leaked setting at start: {index}/{i}")
                conn.execute(
                    text("SELECT set_config('app.tenant_id', :t, true)"), {"t": str(tenant)}
                )
                seen = {r[0] for r in conn.execute(text("SELECT tenant_id FROM member"))}
                if seen != {tenant}:
                    failures.append(f"saw {seen} acting for {tenant}")
                if i % 3 == 0:
                    with pytest.raises(DBAPIError):
                        conn.execute(text("SELECT 1/0"))
                trans.rollback() if i % 2 or i % 3 == 0 else trans.commit()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with engine.connect() as conn, conn.begin():
        assert conn.execute(text("SELECT count(*) FROM member")).scalar_one() == 0
    engine.dispose()
    assert failures == []


@postgres_only
def test_app_refuses_to_run_as_owner_or_superuser(owner_engine):
    _skip_unless_postgres(owner_engine)
    with pytest.raises(UnsafeDatabaseRole, match=r"superuser|owns"):
        check_application_role(owner_engine)


def test_application_role_is_accepted(engine):
    check_application_role(engine)


AUDIT = models.AuditEvent.__table__
AUDIT_CHANGES = {
    "update": lambda t: update(AUDIT).where(AUDIT.c.tenant_id == t).values(action="x"),
    "delete": lambda t: delete(AUDIT).where(AUDIT.c.tenant_id == t),
}


@pytest.mark.parametrize("change", sorted(AUDIT_CHANGES))
@pytest.mark.parametrize("who", ["application", "owner"])
def test_audit_rows_cannot_be_changed_or_deleted(engine, owner_engine, two_tenants, change, who):
    """The application role lacks the privilege; even the owner hits the append-only trigger."""
    tenant = next(iter(two_tenants))
    with (engine if who == "application" else owner_engine).connect() as conn:
        trans = conn.begin()
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT set_config('app.tenant_id', :t, true)"), {"t": str(tenant)})
        with pytest.raises(DBAPIError, match=r"append-only|permission denied"):
            conn.execute(AUDIT_CHANGES[change](tenant))
        trans.rollback()
