"""The unit of work keeps nothing unless committed; nested units join one transaction."""

from __future__ import annotations

import subprocess
import sys
import threading
import uuid

import pytest
from sqlmodel import select

from core.access import Need
from core.actor import RequestContext
from models import Rank, Role, Tenant
from models.enums import Function, Level
from models.tenant import PLATFORM_TENANT_ID
from services import members, tenants
from services.base import transaction
from services.db import ReadOnlyWrite, UncommittedWork, unit_of_work
from services.errors import ValidationError
from services.signin import local, owners, sessions
from tests.factories import (
    PLATFORM,
    admin,
    make_member,
    make_tenant,
    open_member_session,
    rank_id,
)


def _roles_named(tenant_id: uuid.UUID, name: str) -> int:
    with unit_of_work(tenant_id) as session:
        rows = session.exec(select(Role).where(Role.tenant_id == tenant_id, Role.name == name))
        return len(rows.all())


def _add_role(session, tenant_id: uuid.UUID, name: str) -> None:
    rank = session.exec(select(Rank).where(Rank.tenant_id == tenant_id)).first()
    session.add(Role(tenant_id=tenant_id, name=name, rank_id=rank.id))
    session.flush()


def test_writes_without_a_commit_are_refused_and_not_kept(tenant):
    with pytest.raises(UncommittedWork), unit_of_work(tenant) as session:
        _add_role(session, tenant, "未確定")
    assert _roles_named(tenant, "未確定") == 0


def test_a_write_sent_as_sql_text_counts_as_a_write(tenant):
    """The water import hands its bulk insert to the driver on SQLite (#19): such a write must
    be refused uncommitted, and in a read-only unit, as any other."""
    delete = "DELETE FROM water_source WHERE 1 = 0"
    with pytest.raises(UncommittedWork), unit_of_work(tenant) as session:
        session.connection().exec_driver_sql(delete)
    with pytest.raises(ReadOnlyWrite), unit_of_work(tenant, read_only=True) as session:
        session.connection().exec_driver_sql("  " + delete.lower())


def test_an_explicit_rollback_is_a_dry_run(tenant):
    with transaction(admin(tenant), Need(Function.PERMISSIONS, Level.VIEW), action="t") as tx:
        _add_role(tx.session, tenant, "試し")
        tx.rollback()
    assert _roles_named(tenant, "試し") == 0


def test_a_commit_keeps_the_work(tenant):
    with transaction(admin(tenant), Need(Function.PERMISSIONS, Level.VIEW), action="t") as tx:
        _add_role(tx.session, tenant, "確定")
        tx.commit()
    assert _roles_named(tenant, "確定") == 1


def test_a_check_registered_for_the_commit_refuses_it(tenant):
    def refuse() -> None:
        raise ValidationError({"rule": "だめ"})

    with (
        pytest.raises(ValidationError),
        transaction(admin(tenant), Need(Function.PERMISSIONS, Level.VIEW), action="t") as tx,
    ):
        _add_role(tx.session, tenant, "検査")
        tx.check_before_commit(refuse)
        tx.commit()
    assert _roles_named(tenant, "検査") == 0


def test_a_joined_unit_commits_only_with_the_outermost(tenant):
    with pytest.raises(RuntimeError), unit_of_work(tenant) as outer:
        with unit_of_work(tenant) as inner:
            assert inner is outer
            _add_role(inner, tenant, "内側")
            inner.commit()  # only flushes: the outer unit decides
        raise RuntimeError("the outer work fails after the inner one finished")
    assert _roles_named(tenant, "内側") == 0


def test_a_brigade_unit_cannot_join_another_brigade(tenant):
    other = make_tenant()
    with (
        pytest.raises(RuntimeError, match="another brigade"),
        unit_of_work(tenant),
        unit_of_work(other),
    ):
        pass


def test_creating_a_brigade_is_one_transaction(engine, monkeypatch):
    """A failure after the last step leaves neither the brigade, its administrator nor the
    login behind."""
    name = f"原子消防団{uuid.uuid4().hex[:6]}"
    login = f"atomic-{uuid.uuid4().hex[:8]}"
    real = tenants.create_account

    def then_fail(*args, **kwargs):
        real(*args, **kwargs)
        raise RuntimeError("the machine went away")

    monkeypatch.setattr(tenants, "create_account", then_fail)
    with pytest.raises(RuntimeError):
        tenants.create_brigade(
            PLATFORM,
            name=name,
            municipality="",
            admin_code="001",
            admin_name="原子 太郎",
            admin_login=login,
            admin_password="long enough password 1",
        )
    with unit_of_work(PLATFORM_TENANT_ID) as session:
        assert session.exec(select(Tenant).where(Tenant.name == name)).first() is None
        assert owners.account_tenant(session, login) is None  # in no brigade


def test_a_created_brigade_has_an_administrator_who_can_sign_in(engine):
    login = f"first-{uuid.uuid4().hex[:8]}"
    tenant_id = tenants.create_brigade(
        PLATFORM,
        name=f"新設消防団{uuid.uuid4().hex[:6]}",
        municipality="",
        admin_code="001",
        admin_name="新設 花子",
        admin_login=login,
        admin_password="long enough password 1",
    )
    result = local.login(login, "long enough password 1", RequestContext())
    assert result.error is None and result.token
    actor = sessions.resolve(result.token)
    assert actor is not None and actor.tenant_id == tenant_id


def test_the_sqlite_file_is_readable_by_its_owner_only(tmp_path):
    """#16: the SQLite file was created 0644."""
    from sqlalchemy import text

    from services.db import build_engine

    path = tmp_path / "data" / "hikeshi.db"
    engine = build_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (x INTEGER)"))
        conn.execute(text("INSERT INTO t VALUES (1)"))
    engine.dispose()
    files = [p for p in path.parent.iterdir() if p.name.startswith("hikeshi.db")]
    assert path in files
    assert all(p.stat().st_mode & 0o077 == 0 for p in files), [oct(p.stat().st_mode) for p in files]


def test_a_second_engine_on_an_open_file_keeps_its_wal_from_other_processes(tmp_path):
    """A test run failed with "disk I/O error" on connecting: building a second engine on a
    SQLite file this process had open opened and closed the file to set its mode, which drops
    every POSIX lock SQLite held on it here. The next process to close its connection then took
    itself for the last one and deleted the WAL and its index under the open connections."""
    from services.db import build_engine

    path = tmp_path / "hikeshi.db"
    first = build_engine(f"sqlite:///{path}")
    with first.connect() as held:
        held.exec_driver_sql("CREATE TABLE t (x INTEGER)")
        held.exec_driver_sql("INSERT INTO t VALUES (1)")
        held.commit()
        second = build_engine(f"sqlite:///{path}")
        other = (
            "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); "
            "c.execute('SELECT count(*) FROM t').fetchall(); c.close()"
        )
        subprocess.run([sys.executable, "-c", other, str(path)], check=True, timeout=60)
        assert path.with_name("hikeshi.db-wal").exists()
        assert path.with_name("hikeshi.db-shm").exists()
        held.exec_driver_sql("INSERT INTO t VALUES (2)")
        held.commit()
        with second.connect() as conn:
            assert conn.exec_driver_sql("SELECT count(*) FROM t").scalar() == 2
    second.dispose()
    first.dispose()


def test_a_read_only_unit_refuses_to_write_and_keeps_nothing(tenant):
    with (
        pytest.raises(ReadOnlyWrite),
        transaction(
            admin(tenant), Need(Function.PERMISSIONS, Level.VIEW), action="t", read_only=True
        ) as tx,
    ):
        assert tx.session.exec(select(Rank).where(Rank.tenant_id == tenant)).first()
        _add_role(tx.session, tenant, "読み取り専用")
    assert _roles_named(tenant, "読み取り専用") == 0


def test_a_read_only_unit_keeps_no_writer_waiting(tenant):
    """A board re-reading its tally every few seconds must not hold SQLite's write lock (with
    BEGIN IMMEDIATE the writer below would wait for the reader, up to busy_timeout)."""
    wrote = threading.Event()

    def writer() -> None:
        with unit_of_work(tenant) as session:
            _add_role(session, tenant, "読み取り中の書き込み")
            session.commit()
        wrote.set()

    with unit_of_work(tenant, read_only=True) as session:
        assert session.exec(select(Rank).where(Rank.tenant_id == tenant)).first()
        thread = threading.Thread(target=writer)
        thread.start()
        assert wrote.wait(timeout=5), "the writer waited for a read-only unit"
    thread.join()
    assert _roles_named(tenant, "読み取り中の書き込み") == 1


# Another process: one brigade's long write (an import, a restore), holding SQLite's write lock
# until told to commit. Plain sqlite3, as a second server process would hold it.
LONG_WRITE = """
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("PRAGMA busy_timeout=10000")
db.execute("BEGIN IMMEDIATE")
changed = db.execute("UPDATE rank SET name = name WHERE tenant_id = ?", (sys.argv[2],)).rowcount
print(changed, flush=True)
sys.stdin.readline()
db.execute("COMMIT")
"""


def test_a_page_read_is_not_blocked_by_another_process_writing(engine, tenant):
    """#19: a page run (resolving its session, then a service read) while another process holds
    the write lock for another brigade. With BEGIN IMMEDIATE on every transaction the reader
    waited for the writer (up to busy_timeout, 10 s, then failed)."""
    if engine.dialect.name != "sqlite":
        pytest.skip("PostgreSQL readers never wait for writers")
    chief = make_member(tenant, member_code="R1", rank_id=rank_id(tenant, "団長"))
    token = open_member_session(tenant, chief.id)
    assert sessions.resolve(token) is not None  # the session is fresh: no touch due
    other = make_tenant()
    writer = subprocess.Popen(
        [sys.executable, "-c", LONG_WRITE, engine.url.database, other.hex],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    read: list[object] = []
    try:
        assert int(writer.stdout.readline()) > 0  # the other brigade's rows, locked
        page = threading.Thread(
            target=lambda: read.append(members.list_ranks(sessions.resolve(token)))
        )
        page.start()
        page.join(timeout=5)
        assert not page.is_alive(), "the read waited for another process's write"
        assert writer.poll() is None  # the write was still open all along
    finally:
        writer.communicate("commit\n", timeout=15)
    assert writer.returncode == 0
    assert [r.name for r in read[0]][:1] == ["団長"]
