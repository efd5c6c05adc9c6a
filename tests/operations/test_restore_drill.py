"""The restore drill (white paper 12.3.1, issue #23): a restore must never be untested.

In a throw-away PostgreSQL cluster with pgBackRest (WAL archiving, encrypted repository, the
configuration from deploy/pgbackrest): brigades and members made through the services, a full
backup, then a member renamed and a cancelled brigade purged; a point-in-time restore to just
before the change must bring back what the application read then, with every audit chain
intact. The one end-to-end test of the provider backups: it runs on the PostgreSQL pass, and in
CI it fails, never skips, when pgBackRest or the PostgreSQL binaries are missing.
"""

from __future__ import annotations

import base64
import os
import secrets
import time
from collections.abc import Iterator
from datetime import date, datetime

import pytest
from alembic import command
from sqlalchemy import Engine, create_engine, text

import cli
import config
from core.actor import system_actor
from models import MemberUpdate
from models.tenant import PLATFORM_TENANT_ID
from services import members, plaintext_cache
from services.audit_verify import verify_chain
from services.crypto import DecryptionError
from services.db import build_engine, current_engine, set_engine, unit_of_work
from services.keys import (
    CLI_ACTOR,
    adopt_wrapped_keys,
    export_wrapped_keys,
    rotate_master_key,
)
from services.tenant_lifecycle import cancel_brigade, delete_brigade_data
from tests.conftest import alembic_config
from tests.factories import make_member, make_tenant
from tests.operations.cluster import ThrowAwayCluster, missing_tools

pytestmark = pytest.mark.postgres_only


@pytest.fixture
def cluster(engine: Engine) -> Iterator[ThrowAwayCluster]:
    """A migrated throw-away cluster that the application uses until the test ends."""
    if os.environ.get("CI") and not os.environ.get("HIKESHI_TEST_DATABASE_URL"):
        pytest.skip("CI runs the restore drill once, on the PostgreSQL pass")
    missing = missing_tools()
    if missing:
        reason = (
            f"the restore drill needs {', '.join(missing)} (apt-get install postgresql pgbackrest)"
        )
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    made = ThrowAwayCluster()
    shared = current_engine()
    app = None
    try:
        made.create(secrets.token_urlsafe(48))
        command.upgrade(alembic_config(made.url()), "head")
        app = build_engine(made.url(user="hikeshi_app"))
        set_engine(app)
        yield made
    finally:
        set_engine(shared)
        if app is not None:
            app.dispose()
        made.remove()


def server_now(cluster: ThrowAwayCluster) -> datetime:
    owner = create_engine(cluster.url())
    with owner.connect() as conn:
        now = conn.execute(text("SELECT clock_timestamp()")).scalar_one()
    owner.dispose()
    return now


def wait_until_promoted(cluster: ThrowAwayCluster) -> None:
    """pg_ctl returns once connections are accepted, which a cluster in recovery does for
    reads; the drill writes after the restore, so it waits for the promotion."""
    owner = create_engine(cluster.url())
    try:
        for _ in range(600):
            with owner.connect() as conn:
                if not conn.execute(text("SELECT pg_is_in_recovery()")).scalar_one():
                    return
            time.sleep(0.05)
        raise AssertionError("the restored cluster did not leave recovery")
    finally:
        owner.dispose()


def roster(tenant_id) -> dict[str, str]:
    return {m.member_code: m.name for m in members.list_members(system_actor(tenant_id))}


def chains_hold(*tenant_ids) -> None:
    for tenant_id in tenant_ids:
        with unit_of_work(tenant_id) as session:
            result = verify_chain(session, tenant_id)
        assert result.ok, (tenant_id, result.reason, result.first_broken_seq)
        assert result.checked > 0


def master_keys(monkeypatch: pytest.MonkeyPatch, keys: dict[str, bytes], active: str) -> None:
    spec = ",".join(f"{kid}:{base64.urlsafe_b64encode(raw).decode()}" for kid, raw in keys.items())
    monkeypatch.setenv("HIKESHI_MASTER_KEYS", spec)
    monkeypatch.setenv("HIKESHI_ACTIVE_MASTER_KEY", active)
    config.get_settings.cache_clear()


@pytest.fixture
def settings_restored() -> Iterator[None]:
    yield
    config.get_settings.cache_clear()


def test_point_in_time_restore_brings_back_the_data_before_a_change(
    cluster, monkeypatch, settings_restored
):
    """Then crypto-shredding (white paper 8.3.2): once the master key of the time is retired,
    the brigade purged after the backup stays unreadable in the restored copy, while the live
    key table gives the other brigades their data back."""
    kept = make_tenant("存続消防団")
    cancelled = make_tenant("解約消防団")
    renamed = make_member(kept, name="火消　一郎")
    make_member(kept, name="火消　二郎")
    make_member(cancelled, name="退団　花子")
    before = {kept: roster(kept), cancelled: roster(cancelled)}
    with pytest.raises(SystemExit) as done:  # the operator's command, as cron runs it
        cli.main(["provider-backup", "--config", str(cluster.config), "backup", "--type=full"])
    assert done.value.code == 0
    restore_point = server_now(cluster)

    members.update_member(
        system_actor(kept),
        renamed.id,
        data=MemberUpdate(name="改名　三郎"),
        expected_version=renamed.version,
    )
    cancel_brigade(CLI_ACTOR, cancelled, cancelled_on=date.today())
    delete_brigade_data(CLI_ACTOR, cancelled)
    assert roster(kept)[renamed.member_code] == "改名　三郎"
    assert roster(cancelled) == {}
    # After the purge: a new master key, every remaining key re-wrapped with it.
    old = dict(config.get_settings().master_keys)
    new = {"retiring-test": secrets.token_bytes(32)}
    master_keys(monkeypatch, old | new, "retiring-test")
    assert rotate_master_key(CLI_ACTOR).ok
    live_keys = export_wrapped_keys(CLI_ACTOR)
    assert {row["tenant_id"] for row in live_keys} >= {str(kept)}
    assert str(cancelled) not in {row["tenant_id"] for row in live_keys}
    cluster.backrest.check()  # the WAL holding the change is in the repository

    cluster.stop()
    full = cluster.backrest.backups()[-1]
    assert full["type"] == "full"
    cluster.backrest.restore(target_time=restore_point, backup_set=full["label"])
    cluster.start()
    wait_until_promoted(cluster)
    current_engine().dispose()

    assert roster(kept) == before[kept]
    assert roster(cancelled) == before[cancelled]
    chains_hold(kept, cancelled, PLATFORM_TENANT_ID)

    master_keys(monkeypatch, new, "retiring-test")  # the old master key is retired,
    for brigade in (kept, cancelled):  # and the processes restart with the new settings
        plaintext_cache.CACHE.forget(brigade)
    for brigade in (kept, cancelled):
        with pytest.raises(DecryptionError):
            roster(brigade)
    adopted = adopt_wrapped_keys(CLI_ACTOR, live_keys)
    assert adopted.shredded == [cancelled]
    assert not adopted.unreadable
    assert roster(kept) == before[kept]
    with pytest.raises(DecryptionError):
        roster(cancelled)
    master_keys(monkeypatch, old | new, "retiring-test")  # not even with the old key back
    plaintext_cache.CACHE.forget(cancelled)
    with pytest.raises(DecryptionError):
        roster(cancelled)
    chains_hold(kept, cancelled, PLATFORM_TENANT_ID)
    # the restored cluster is open for writes, and the chain goes on from where it was
    make_member(kept, name="復旧　四郎")
    chains_hold(kept)
