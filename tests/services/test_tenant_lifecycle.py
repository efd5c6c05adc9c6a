"""A cancelled brigade: sign-in stops at once, its data is deleted by the 10th business day,
its event log is kept (its personal parts unreadable once the keys are gone)."""

from __future__ import annotations

import json
import uuid
from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, select

import cli
from core.actor import Actor
from models import TenantKey
from models.tenant import PLATFORM_TENANT_ID
from models.water import WaterInspectionCreate
from services import tenant_lifecycle as lifecycle
from services import water_sources
from services.db import unit_of_work
from services.errors import PermissionDenied, ValidationError
from services.signin import local
from tests.factories import (
    PLATFORM,
    admin,
    audit_events,
    last_audit_seq,
    make_member,
    make_tenant,
    request_context,
)
from tests.water_factories import make_source

PASSWORD = "correct horse battery staple"


# -- business days -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cancelled_on", "due"),
    [
        # Fri 25 Dec: Mon 28th, then the year-end closure to 3 Jan, 成人の日 on Mon 11 Jan.
        (date(2026, 12, 25), date(2027, 1, 15)),
        # Wed 28 Apr: 昭和の日, then Fri 30th, Golden Week 3–5 May, weekends.
        (date(2027, 4, 28), date(2027, 5, 18)),
        # An ordinary fortnight: Mon 1 Feb 2027 → Tue 16 Feb (建国記念の日 Thu 11th skipped).
        (date(2027, 2, 1), date(2027, 2, 16)),
    ],
)
def test_deletion_due_counts_ten_business_days(cancelled_on, due):
    assert lifecycle.deletion_due(cancelled_on) == due


@given(st.dates(min_value=date(2020, 1, 1), max_value=date(2035, 12, 31)))
def test_deletion_due_is_the_tenth_business_day(start):
    due = lifecycle.deletion_due(start)
    days = [start + timedelta(days=n) for n in range(1, (due - start).days + 1)]
    assert sum(lifecycle.is_business_day(d) for d in days) == 10
    assert lifecycle.is_business_day(due)


# -- cancellation ------------------------------------------------------------------------------


def brigade_with_data() -> tuple[uuid.UUID, str]:
    tenant = make_tenant()
    chief = make_member(tenant)
    make_member(tenant, role_ids=[])
    source = make_source(tenant)
    water_sources.record_inspection(
        admin(tenant),
        source.id,
        data=WaterInspectionCreate(inspected_on=date(2026, 4, 1), result="異常なし"),
    )
    login_name = f"chief-{uuid.uuid4().hex[:8]}"
    local.create_account(
        PLATFORM, login_name=login_name, password=PASSWORD, tenant_id=tenant, member_id=chief.id
    )
    return tenant, login_name


def test_cancel_stops_sign_in_and_revokes_sessions(engine):
    tenant, login_name = brigade_with_data()
    assert local.login(login_name, PASSWORD, request_context()).token is not None

    due = lifecycle.cancel_brigade(PLATFORM, tenant, cancelled_on=date(2026, 12, 25))

    assert due == date(2027, 1, 15)
    assert local.login(login_name, PASSWORD, request_context()).token is None
    with unit_of_work(tenant) as db:  # the brigade's sessions are visible to it alone
        open_sessions = db.execute(
            select(func.count()).where(
                lifecycle.UserSession.tenant_id == tenant,
                lifecycle.UserSession.revoked_at.is_(None),
            )
        ).scalar_one()
    assert open_sessions == 0
    (event,) = [e for e in audit_events(engine, PLATFORM_TENANT_ID) if e.target_id == str(tenant)][
        -1:
    ]
    assert event.action == "tenant.cancel"
    assert json.loads(event.details)["deletion_due"] == "2027-01-15"
    assert json.loads(event.details)["sessions_revoked"] == 1
    with pytest.raises(ValidationError):
        lifecycle.cancel_brigade(PLATFORM, tenant, cancelled_on=date(2026, 12, 25))


def test_only_the_platform_may_cancel_or_delete(engine):
    tenant, _ = brigade_with_data()
    brigade_admin = admin(tenant)
    stranger = Actor(kind="member", display_name="団員", label="m", tenant_id=tenant)
    for actor in (brigade_admin, stranger):
        with pytest.raises(PermissionDenied):
            lifecycle.cancel_brigade(actor, tenant, cancelled_on=date(2026, 1, 5))
        with pytest.raises(PermissionDenied):
            lifecycle.delete_brigade_data(actor, tenant)
        with pytest.raises(PermissionDenied):
            lifecycle.remaining_rows(actor, tenant)
    assert tenant not in {p.tenant_id for p in lifecycle.pending_deletions(PLATFORM)}
    assert lifecycle.remaining_rows(PLATFORM, tenant)["member"] == 2


def test_active_brigade_data_cannot_be_deleted(engine):
    tenant, _ = brigade_with_data()
    with pytest.raises(ValidationError):
        lifecycle.delete_brigade_data(PLATFORM, tenant)
    assert lifecycle.remaining_rows(PLATFORM, tenant)["water_source"] == 1


# -- deletion ----------------------------------------------------------------------------------


def test_deletion_waits_for_the_cancellation_date(engine):
    tenant, _ = brigade_with_data()
    lifecycle.cancel_brigade(PLATFORM, tenant, cancelled_on=date(2026, 12, 25))

    done = lifecycle.delete_cancelled_data(PLATFORM, today=date(2026, 12, 24))

    assert tenant not in {r.tenant_id for r in done}
    assert lifecycle.remaining_rows(PLATFORM, tenant)["member"] == 2
    assert tenant in {p.tenant_id for p in lifecycle.pending_deletions(PLATFORM)}


def test_deletion_removes_everything_but_the_event_log(engine):
    tenant, login_name = brigade_with_data()
    bystander, bystander_login = brigade_with_data()
    before_bystander = lifecycle.remaining_rows(PLATFORM, bystander)
    lifecycle.cancel_brigade(PLATFORM, tenant, cancelled_on=date(2026, 12, 25))
    log_before = audit_events(engine, tenant)

    done = lifecycle.delete_cancelled_data(PLATFORM, today=date(2026, 12, 25))

    (report,) = [r for r in done if r.tenant_id == tenant]
    assert report.rows_deleted["member"] == 2
    assert report.rows_deleted["water_inspection"] == 1
    assert report.rows_deleted["local_account"] == 1
    assert report.keys_destroyed >= 2
    assert lifecycle.remaining_rows(PLATFORM, tenant) == {}
    with unit_of_work(PLATFORM_TENANT_ID) as db:
        keys_left = db.execute(
            select(func.count()).where(TenantKey.tenant_id == tenant)
        ).scalar_one()
    assert keys_left == 0
    # The log stays for its retention period; only the purge job removes it.
    assert [e.seq for e in audit_events(engine, tenant)] == [e.seq for e in log_before]
    assert tenant not in {p.tenant_id for p in lifecycle.pending_deletions(PLATFORM)}
    # Another brigade keeps everything and can still sign in.
    assert lifecycle.remaining_rows(PLATFORM, bystander) == before_bystander
    assert local.login(bystander_login, PASSWORD, request_context()).token is not None
    assert local.login(login_name, PASSWORD, request_context()).token is None
    platform_event = [
        e for e in audit_events(engine, PLATFORM_TENANT_ID) if e.target_id == str(tenant)
    ][-1]
    assert platform_event.action == "tenant.delete_data"
    details = json.loads(platform_event.details)
    assert details["rows_deleted"]["member"] == 2
    assert details["deletion_due"] == "2027-01-15"


def test_deletion_is_idempotent_and_leaves_no_personal_data_in_its_record(engine):
    tenant, _ = brigade_with_data()
    lifecycle.cancel_brigade(PLATFORM, tenant, cancelled_on=date(2026, 6, 1))
    start = last_audit_seq(engine, PLATFORM_TENANT_ID)
    lifecycle.delete_cancelled_data(PLATFORM, today=date(2026, 6, 2))

    again = lifecycle.delete_cancelled_data(PLATFORM, today=date(2026, 6, 3))

    assert tenant not in {r.tenant_id for r in again}
    events = audit_events(engine, PLATFORM_TENANT_ID, after_seq=start)
    record = [e for e in events if e.action == "tenant.delete_data"]
    assert len(record) == 1
    assert "消防　太郎" not in record[0].details


def test_cli_purge_cancelled_reports_deleted_and_waiting(engine, capsys, monkeypatch):
    deleted, _ = brigade_with_data()
    waiting, _ = brigade_with_data()
    lifecycle.cancel_brigade(PLATFORM, deleted, cancelled_on=date(2026, 1, 5))
    lifecycle.cancel_brigade(PLATFORM, waiting, cancelled_on=date(2099, 1, 5))

    with pytest.raises(SystemExit) as exit_code:
        cli.main(["purge-cancelled"])

    assert exit_code.value.code == 0
    out = capsys.readouterr().out
    assert "削除" in out and "待機" in out and "2099-01-05" in out
    assert lifecycle.remaining_rows(PLATFORM, deleted) == {}
    assert lifecycle.remaining_rows(PLATFORM, waiting)["member"] == 2
