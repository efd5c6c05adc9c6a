"""Retention of the event log (white paper 18.1.3): at least one year, purged only up to a signed
checkpoint, never a young event, each run recorded; the database refuses every other delete.

Old events are made by recording with services.audit's clock set back: their times are part of
the hashed content, so the chains are genuine. The purge's own clock is the injected `now`.
"""

from __future__ import annotations

import base64
import json
import os
import random
import secrets
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

import pytest
from alembic import command
from sqlalchemy import Engine, delete, insert, inspect, text
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session, select

import config
from models import AuditCheckpoint, AuditEvent, AuditPurgeGuard
from models.base import utcnow
from models.enums import AuditCategory
from models.tenant import PLATFORM_TENANT_ID
from services import audit, audit_retention, audit_verify, event_log
from services.audit_checkpoint import write_checkpoint
from services.audit_retention import (
    PurgeResult,
    RetentionUnavailable,
    main_purge,
    purge_all,
    purge_expired,
)
from services.audit_verify import (
    LINK_BROKEN,
    PREFIX_UNRECORDED,
    SEQ_MISSING,
    AuditChainBroken,
    main_verify,
    verify_chain,
)
from services.db import build_engine, set_tenant, unit_of_work
from services.event_log import EventFilter
from tests.conftest import _create_postgres_database, _drop_postgres_database, alembic_config
from tests.factories import admin, make_tenant

SEED = secrets.token_bytes(32)
EVENTS = AuditEvent.__table__
DAY = timedelta(days=1)


@pytest.fixture(scope="module", autouse=True)
def signing_key(engine: Engine, tmp_path_factory) -> Iterator[None]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HIKESHI_AUDIT_SIGNING_KEY", base64.urlsafe_b64encode(SEED).decode().rstrip("="))
        mp.setenv("HIKESHI_AUDIT_VERIFY_KEY", config.verify_key_of(SEED))
        mp.setenv("HIKESHI_AUDIT_CHECKPOINT_DIR", str(tmp_path_factory.mktemp("checkpoints")))
        mp.delenv("HIKESHI_LOG_RETENTION_DAYS", raising=False)
        config.get_settings.cache_clear()
        yield
    config.get_settings.cache_clear()


@contextmanager
def settings_env(**values: str | None) -> Iterator[None]:
    with pytest.MonkeyPatch.context() as mp:
        for name, value in values.items():
            if value is None:
                mp.delenv(name, raising=False)
            else:
                mp.setenv(name, value)
        config.get_settings.cache_clear()
        yield
    config.get_settings.cache_clear()


def append(tenant_id: uuid.UUID, when: datetime, count: int) -> None:
    """count events recorded as if the clock read `when`."""
    actor = admin(tenant_id)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(audit, "utcnow", lambda: when)
        with unit_of_work(tenant_id) as session:
            for n in range(count):
                audit.record(
                    session,
                    actor,
                    category=AuditCategory.OPERATION,
                    action="test.aged",
                    target_id=str(n),
                    details={"n": n},
                )
            session.commit()


def build(plan: list[tuple[int, int, bool]], now: datetime) -> uuid.UUID:
    """A brigade whose chain holds, per (age in days, count, checkpoint after), count events of
    that age, signed after the group when asked."""
    tenant_id = make_tenant()
    for age, count, checkpoint in plan:
        append(tenant_id, now - age * DAY, count)
        if checkpoint:
            assert write_checkpoint(tenant_id) is not None
    return tenant_id


def rows(tenant_id: uuid.UUID, engine: Engine) -> list[AuditEvent]:
    with Session(engine) as session:
        set_tenant(session, tenant_id)
        return list(
            session.exec(
                select(AuditEvent).where(AuditEvent.tenant_id == tenant_id).order_by(AuditEvent.seq)
            )
        )


def seqs(tenant_id: uuid.UUID, engine: Engine) -> list[int]:
    return [r.seq for r in rows(tenant_id, engine)]


def verify(tenant_id: uuid.UUID) -> audit_verify.VerifyResult:
    with unit_of_work(tenant_id) as session:
        return verify_chain(session, tenant_id)


# seq 1-5 at 500 days (signed at 5), 6-10 at 400 (signed at 10), 11-13 at 366, 14-17 at 300
# (signed at 17), 18-19 at 10 days (signed at 19)
PLAN = [(500, 5, True), (400, 5, True), (366, 3, False), (300, 4, True), (10, 2, True)]


def test_purge_deletes_old_events_up_to_the_newest_signed_checkpoint(engine):
    now = utcnow()
    tenant_id = build(PLAN, now)

    result = purge_expired(tenant_id, now=now)

    # 11-13 are past the retention too, but no checkpoint after them is older than the cutoff
    assert (result.deleted, result.purged_through, result.event_seq) == (10, 10, 20)
    assert result.cutoff == now - 365 * DAY
    assert seqs(tenant_id, engine) == list(range(11, 21))
    checked = verify(tenant_id)
    assert checked.ok and checked.warnings == (), checked
    assert (checked.purged_through, checked.checked, checked.last_seq) == (10, 10, 20)
    assert checked.checkpoints_checked == 3  # the boundary (10), 17 and 19, files included


def test_purged_events_leave_the_search_index(engine):
    """The free-text search (migrations z006, z008) finds only what is left; on SQLite its FTS5
    rows and rowid map go with the events (a contentless FTS5 row outlives its event unless told)."""
    now = utcnow()
    tenant_id = build(PLAN, now)
    actor = admin(tenant_id)
    search = EventFilter(text="test.aged")

    purge_expired(tenant_id, now=now)

    found = event_log.query_events(actor, search, page_size=200, record_view=False).events
    assert [e.seq for e in found] == list(range(19, 10, -1))
    if engine.dialect.name == "sqlite":
        with engine.connect() as conn:
            mapped = conn.execute(
                text("SELECT count(*) FROM audit_event_search_row WHERE tenant_id = :t"),
                {"t": tenant_id.hex},
            ).scalar_one()
            orphans = conn.execute(
                text(
                    "SELECT count(*) FROM audit_event_search WHERE audit_event_search MATCH "
                    "'\"test.aged\"' AND rowid NOT IN (SELECT id FROM audit_event_search_row)"
                )
            ).scalar_one()
            # z008's pieces: "ag" of test.aged, as b and the hex of its bytes
            piece_orphans = conn.execute(
                text(
                    "SELECT count(*) FROM audit_event_search_gram WHERE audit_event_search_gram "
                    "MATCH 'b6167' AND rowid NOT IN (SELECT id FROM audit_event_search_row)"
                )
            ).scalar_one()
        assert (mapped, orphans, piece_orphans) == (len(seqs(tenant_id, engine)), 0, 0)


def test_each_run_is_recorded_in_the_chain(engine):
    now = utcnow()
    tenant_id = build(PLAN, now)
    purge_expired(tenant_id, now=now)
    again = purge_expired(tenant_id, now=now)
    assert (again.deleted, again.purged_through, again.event_seq) == (0, 10, 21)
    recorded = [r for r in rows(tenant_id, engine) if r.action == "audit.purge"]
    assert [(r.seq, r.category, r.actor_type, r.actor_label) for r in recorded] == [
        (20, AuditCategory.OPERATION, "system", "retention-purge"),
        (21, AuditCategory.OPERATION, "system", "retention-purge"),
    ]
    details = [json.loads(r.details) for r in recorded]
    assert [(d["deleted"], d["purged_through"], d["retention_days"]) for d in details] == [
        (10, 10, 365),
        (0, 10, 365),
    ]
    assert details[0]["cutoff"] == (now - 365 * DAY).isoformat()
    assert verify(tenant_id).ok


def test_the_injected_clock_decides_what_is_old(engine):
    now = utcnow()
    tenant_id = build(PLAN, now)

    earlier = purge_expired(tenant_id, now=now - 120 * DAY)  # cutoff: 485 days ago
    assert (earlier.deleted, earlier.purged_through) == (5, 5)
    assert seqs(tenant_id, engine)[0] == 6

    # a clock running 80 days ahead would put the cutoff 285 days back, before 14-17 (300
    # days); the database's own clock still keeps everything younger than a year
    later = purge_expired(tenant_id, now=now + 80 * DAY)
    assert (later.deleted, later.purged_through) == (5, 10)
    assert later.cutoff < utcnow() - 365 * DAY
    assert seqs(tenant_id, engine)[0] == 11
    assert verify(tenant_id).ok


@pytest.mark.parametrize("seed", range(6))
def test_no_event_younger_than_the_retention_is_ever_purged(engine, seed):
    rng = random.Random(seed)
    now = utcnow()
    ages = sorted((rng.randint(366, 900) for _ in range(rng.randint(2, 6))), reverse=True)
    ages += sorted((rng.randint(0, 364) for _ in range(rng.randint(1, 3))), reverse=True)
    plan = [(age, rng.randint(1, 4), rng.random() < 0.6) for age in ages]
    tenant_id = build(plan, now)
    before = {r.seq: r.occurred_at for r in rows(tenant_id, engine)}
    days = rng.choice([365, 400, 500])
    clock = now - rng.randint(0, 100) * DAY

    result = purge_expired(tenant_id, now=clock, days=days)

    cutoff = result.cutoff
    assert cutoff == clock - days * DAY
    remaining = {r.seq for r in rows(tenant_id, engine)}
    gone = set(before) - remaining
    assert all(before[s] < cutoff for s in gone)
    assert all(s in remaining for s, at in before.items() if at >= cutoff)
    assert gone == set(range(1, result.purged_through + 1))
    with unit_of_work(tenant_id) as session:
        checkpoints = set(
            session.exec(
                select(AuditCheckpoint.seq).where(AuditCheckpoint.tenant_id == tenant_id)
            ).all()
        )
    assert result.purged_through == 0 or result.purged_through in checkpoints
    assert verify(tenant_id).ok


def test_nothing_is_purged_without_a_checkpoint_before_the_cutoff(engine):
    now = utcnow()
    tenant_id = build([(700, 4, False), (10, 2, True)], now)
    result = purge_expired(tenant_id, now=now)
    assert (result.deleted, result.purged_through) == (0, 0)
    assert seqs(tenant_id, engine) == list(range(1, 8))


def test_a_broken_chain_is_not_purged(engine, owner_engine):
    now = utcnow()
    tenant_id = build(PLAN, now)
    with tampering(owner_engine, tenant_id) as session:
        session.execute(
            text("UPDATE audit_event SET action = 'forged' WHERE tenant_id = :t AND seq = 3"),
            {"t": tenant_param(owner_engine, tenant_id)},
        )
    try:
        with pytest.raises(AuditChainBroken) as raised:
            purge_expired(tenant_id, now=now)
        assert raised.value.result.first_broken_seq == 3
        assert seqs(tenant_id, engine) == list(range(1, 20))  # the evidence stays
    finally:
        with tampering(owner_engine, tenant_id) as session:
            session.execute(
                text(
                    "UPDATE audit_event SET action = 'test.aged' WHERE tenant_id = :t AND seq = 3"
                ),
                {"t": tenant_param(owner_engine, tenant_id)},
            )
    assert purge_expired(tenant_id, now=now).deleted == 10


def test_purge_needs_the_public_key_and_not_the_signing_seed(engine, capsys):
    with settings_env(HIKESHI_AUDIT_VERIFY_KEY=None):
        with pytest.raises(RetentionUnavailable):
            purge_expired(make_tenant())
        assert purge_all().available is False
        assert main_purge() == 1
    assert "HIKESHI_AUDIT_VERIFY_KEY" in capsys.readouterr().out
    now = utcnow()
    tenant_id = build(PLAN, now)
    with settings_env(HIKESHI_AUDIT_SIGNING_KEY=None):
        assert purge_expired(tenant_id, now=now).deleted == 10
        assert verify(tenant_id).ok


def test_purge_all_covers_every_chain_and_the_cli_reports(engine, monkeypatch, capsys):
    now = utcnow()
    old, young = build(PLAN, now), build([(10, 3, True)], now)
    chains = [(old, "old"), (young, "young"), (PLATFORM_TENANT_ID, "platform")]
    monkeypatch.setattr(audit_retention, "chains", lambda: chains)

    run = purge_all(now=now)

    assert run.available and run.broken == {}
    by_tenant: dict[uuid.UUID, PurgeResult] = {r.tenant_id: r for r in run.results}
    assert set(by_tenant) == {old, young, PLATFORM_TENANT_ID}
    assert (by_tenant[old].deleted, by_tenant[young].deleted) == (10, 0)
    assert main_purge() == 0
    assert "retention 365 days" in capsys.readouterr().out
    assert main_verify(str(old)) == 0
    assert "seq 10 までは保存期間により削除済み" in capsys.readouterr().out


def test_a_checkpoint_can_be_written_after_a_purge(engine):
    now = utcnow()
    tenant_id = build(PLAN, now)
    purge_expired(tenant_id, now=now)
    append(tenant_id, utcnow(), 2)
    assert write_checkpoint(tenant_id).seq == 22
    assert verify(tenant_id).ok


def test_the_configured_retention_is_used(engine):
    now = utcnow()
    tenant_id = build(PLAN, now)
    with settings_env(HIKESHI_LOG_RETENTION_DAYS="450"):
        result = purge_expired(tenant_id, now=now)
    assert (result.cutoff, result.purged_through) == (now - 450 * DAY, 5)


# --- the verifier tells a purge from a deletion ----------------------------------------------


def tenant_param(engine: Engine, tenant_id: uuid.UUID) -> object:
    return tenant_id.hex if engine.dialect.name == "sqlite" else tenant_id


@contextmanager
def tampering(owner_engine: Engine, tenant_id: uuid.UUID) -> Iterator[Session]:
    """The schema owner with the audit triggers off, committing at the end."""
    postgres = owner_engine.dialect.name == "postgresql"
    with Session(owner_engine) as session:
        set_tenant(session, tenant_id)
        if postgres:
            session.execute(text("ALTER TABLE audit_event DISABLE TRIGGER USER"))
        else:
            triggers = list(
                session.execute(
                    text(
                        "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'audit_event'"
                    )
                )
            )
            for name, _sql in triggers:
                session.execute(text(f"DROP TRIGGER {name}"))
        yield session
        if postgres:
            session.execute(text("ALTER TABLE audit_event ENABLE TRIGGER USER"))
        else:
            for _name, sql in triggers:
                session.execute(text(sql))
        session.commit()


def test_a_prefix_deleted_up_to_a_checkpoint_without_a_purge_record_is_found(engine, owner_engine):
    tenant_id = build(PLAN, utcnow())
    with tampering(owner_engine, tenant_id) as session:
        session.execute(delete(EVENTS).where(EVENTS.c.tenant_id == tenant_id, EVENTS.c.seq <= 10))
    result = verify(tenant_id)
    assert (result.ok, result.first_broken_seq, result.reason) == (False, 1, PREFIX_UNRECORDED)


def test_a_prefix_deleted_off_a_checkpoint_is_found(engine, owner_engine):
    now = utcnow()
    tenant_id = build(PLAN, now)
    purge_expired(tenant_id, now=now)
    with tampering(owner_engine, tenant_id) as session:
        session.execute(delete(EVENTS).where(EVENTS.c.tenant_id == tenant_id, EVENTS.c.seq <= 12))
    result = verify(tenant_id)
    assert (result.ok, result.first_broken_seq, result.reason) == (False, 1, SEQ_MISSING)


def test_the_first_row_after_a_purge_must_link_to_the_checkpoint(engine, owner_engine):
    now = utcnow()
    tenant_id = build(PLAN, now)
    purge_expired(tenant_id, now=now)
    with tampering(owner_engine, tenant_id) as session:
        session.execute(
            text("UPDATE audit_event SET prev_hash = :h WHERE tenant_id = :t AND seq = 11"),
            {"h": "f" * 64, "t": tenant_param(owner_engine, tenant_id)},
        )
    result = verify(tenant_id)
    assert (result.ok, result.first_broken_seq) == (False, 11)
    assert result.reason in (LINK_BROKEN, audit_verify.HASH_MISMATCH)


# --- the database refuses every other delete --------------------------------------------------


@pytest.mark.parametrize("who", ["application", "owner"])
def test_old_rows_cannot_be_deleted_directly(engine, owner_engine, who):
    tenant_id = build([(500, 3, True), (10, 1, True)], utcnow())
    with (engine if who == "application" else owner_engine).connect() as conn:
        trans = conn.begin()
        if conn.dialect.name == "postgresql":
            conn.execute(
                text("SELECT set_config('app.tenant_id', :t, true)"), {"t": str(tenant_id)}
            )
        with pytest.raises(DBAPIError, match=r"append-only|permission denied"):
            conn.execute(delete(EVENTS).where(EVENTS.c.tenant_id == tenant_id, EVENTS.c.seq == 1))
        trans.rollback()
    assert seqs(tenant_id, engine)[0] == 1


def test_a_guard_never_opens_rows_younger_than_a_year(engine):
    """Even a guard covering everything (as a wrong clock would write) leaves young rows alone."""
    if engine.dialect.name != "sqlite":
        pytest.skip("on PostgreSQL the application role cannot write the guard at all")
    tenant_id = build([(10, 3, True)], utcnow())
    with engine.connect() as conn:
        trans = conn.begin()
        conn.execute(
            insert(AuditPurgeGuard.__table__).values(
                tenant_id=tenant_id, boundary_seq=99, cutoff=utcnow() + 1000 * DAY
            )
        )
        with pytest.raises(DBAPIError, match="append-only"):
            conn.execute(delete(EVENTS).where(EVENTS.c.tenant_id == tenant_id))
        trans.rollback()


def _call_purge(
    engine: Engine, tenant_id: uuid.UUID, as_tenant: uuid.UUID, boundary: int, cutoff: datetime
) -> None:
    with engine.connect() as conn:
        trans = conn.begin()
        try:
            conn.execute(
                text("SELECT set_config('app.tenant_id', :t, true)"), {"t": str(as_tenant)}
            )
            conn.execute(
                text("SELECT audit_purge(:tenant, :boundary, :cutoff)"),
                {"tenant": tenant_id, "boundary": boundary, "cutoff": cutoff},
            )
        finally:
            trans.rollback()


def test_the_purge_function_enforces_its_rules(engine):
    if engine.dialect.name != "postgresql":
        pytest.skip("the SECURITY DEFINER function exists only on PostgreSQL")
    now = utcnow()
    tenant_id = build(PLAN, now)
    other = make_tenant()
    cases = {
        "another tenant": (other, 5, now - 365 * DAY, "not the tenant"),
        "a cutoff within a year": (tenant_id, 5, now - 364 * DAY, "within 365 days"),
        "no checkpoint there": (tenant_id, 4, now - 365 * DAY, "no checkpoint"),
        "young rows up to the boundary": (tenant_id, 17, now - 365 * DAY, "not all before"),
    }
    for name, (as_tenant, boundary, cutoff, message) in cases.items():
        with pytest.raises(DBAPIError, match=message):
            _call_purge(engine, tenant_id, as_tenant, boundary, cutoff)
        assert seqs(tenant_id, engine)[0] == 1, name
    with engine.connect() as conn:
        trans = conn.begin()
        conn.execute(text("SELECT set_config('app.tenant_id', :t, true)"), {"t": str(tenant_id)})
        with pytest.raises(DBAPIError, match="permission denied"):
            conn.execute(
                insert(AuditPurgeGuard.__table__).values(
                    tenant_id=tenant_id, boundary_seq=99, cutoff=now
                )
            )
        trans.rollback()


def test_the_application_role_may_only_execute_the_purge_function(owner_engine):
    if owner_engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL privileges")
    with owner_engine.connect() as conn:
        security_definer, owner = conn.execute(
            text(
                "SELECT p.prosecdef, pg_get_userbyid(p.proowner) FROM pg_proc p "
                "WHERE p.proname = 'audit_purge'"
            )
        ).one()
        table_owner = conn.execute(
            text("SELECT tableowner FROM pg_tables WHERE tablename = 'audit_event'")
        ).scalar_one()
        privileges = set(
            conn.execute(
                text(
                    "SELECT privilege_type FROM information_schema.role_table_grants "
                    "WHERE table_name = 'audit_event' AND grantee = 'hikeshi_app'"
                )
            ).scalars()
        )
    assert security_definer and owner == table_owner
    assert privileges == {"SELECT", "INSERT"}


# --- configuration ----------------------------------------------------------------------------


def test_retention_setting_is_at_least_a_year():
    assert config.parse_retention_days("365") == 365
    assert config.parse_retention_days("730") == 730
    for bad in ("364", "0", "-1", "abc", "365.5", ""):
        with pytest.raises(config.ConfigError, match="HIKESHI_LOG_RETENTION_DAYS"):
            config.parse_retention_days(bad)
    with settings_env(HIKESHI_LOG_RETENTION_DAYS=None):
        assert config.get_settings().log_retention_days == 365
    with settings_env(HIKESHI_LOG_RETENTION_DAYS="400"):
        assert config.get_settings().log_retention_days == 400
    with settings_env(HIKESHI_LOG_RETENTION_DAYS="30"), pytest.raises(config.ConfigError):
        config.get_settings()
    with pytest.raises(config.ConfigError):
        purge_expired(make_tenant(), days=364)


# --- the migration ----------------------------------------------------------------------------


def test_migration_e001_downgrades_to_the_plain_append_only_log(tmp_path):
    server = os.environ.get("HIKESHI_TEST_DATABASE_URL")
    if server:
        url, name = _create_postgres_database(server)
    else:
        url, name = f"sqlite:///{tmp_path / 'e001.db'}", ""
    scratch = build_engine(url)
    try:
        cfg = alembic_config(url)
        command.upgrade(cfg, "e001")
        assert "audit_purge_guard" in inspect(scratch).get_table_names()
        assert "audit_purge" in _routines(scratch) or not server
        command.downgrade(cfg, "0003")
        assert "audit_purge_guard" not in inspect(scratch).get_table_names()
        assert "audit_purge" not in _routines(scratch)
        indexes = {i["name"] for i in inspect(scratch).get_indexes("audit_event")}
        assert {i for i in indexes if i.startswith("ix_")} == {"ix_audit_event_tenant_time"}
        with scratch.connect() as conn:
            if server:
                (events,) = conn.execute(
                    text(
                        "SELECT pg_get_triggerdef(oid) FROM pg_trigger "
                        "WHERE tgname = 'audit_event_append_only'"
                    )
                ).one()
                assert "DELETE OR UPDATE" in events
            else:
                sql = conn.execute(
                    text("SELECT sql FROM sqlite_master WHERE name = 'audit_event_no_delete'")
                ).scalar_one()
                assert "WHEN" not in sql
        command.upgrade(cfg, "e001")
        assert "audit_purge_guard" in inspect(scratch).get_table_names()
    finally:
        scratch.dispose()
        if name:
            _drop_postgres_database(server, name)


def _routines(engine: Engine) -> set[str]:
    if engine.dialect.name != "postgresql":
        return set()
    with engine.connect() as conn:
        return set(conn.execute(text("SELECT proname FROM pg_proc")).scalars())
