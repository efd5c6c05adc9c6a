"""The one access decision (core.access.allows) and the machine actor it serves."""

from __future__ import annotations

import json
import uuid

import pytest

from core.access import PLATFORM, Need, allows
from core.actor import Actor, ActorKind, machine_actor, system_actor
from models.enums import Function, Level
from services import notices, water_sources
from services.base import require
from services.errors import PermissionDenied
from tests.factories import actor_with, audit_events, last_audit_seq, make_tenant
from tests.water_factories import make_source, source_data

F, L = Function, Level
TENANT = uuid.uuid4()


def test_nothing_needed_is_still_refused():
    assert not allows(system_actor(TENANT))


def test_several_needs_must_all_be_held():
    actor = actor_with(TENANT, {F.ROSTER: L.EDIT, F.MEMBER_ACCOUNTS: L.VIEW})
    assert allows(actor, Need(F.ROSTER, L.EDIT), Need(F.MEMBER_ACCOUNTS))
    assert allows(actor, (F.ROSTER, L.VIEW))
    assert not allows(actor, Need(F.ROSTER, L.EDIT), Need(F.MEMBER_ACCOUNTS, L.EDIT))
    assert not allows(actor, Need(F.ROSTER, L.ADMIN))
    assert not allows(actor, Need(F.WATER_SOURCES))


@pytest.mark.parametrize(
    ("actor", "allowed"),
    [
        (Actor(kind=ActorKind.OPERATOR, display_name="運営"), True),
        (Actor(kind=ActorKind.SYSTEM, display_name="cli"), True),
        (system_actor(TENANT), False),  # acting inside one brigade is not a platform task
        (actor_with(TENANT, {f: L.ADMIN for f in F}), False),
        (machine_actor(TENANT, "mail-intake", [(f, L.ADMIN) for f in F]), False),
        (Actor(kind=ActorKind.LINE, display_name=""), False),
    ],
)
def test_platform_tasks_are_for_the_operator_and_the_command_line_only(actor, allowed):
    assert allows(actor, PLATFORM) is allowed


def test_a_machine_actor_holds_only_its_jobs_grants():
    actor = machine_actor(TENANT, "line_webhook", [(F.ROSTER, L.VIEW)])
    assert actor.kind == ActorKind.MACHINE and actor.label == "machine:line_webhook"
    assert allows(actor, Need(F.ROSTER))
    assert not any(allows(actor, Need(f)) for f in F if f != F.ROSTER)
    assert not actor.is_platform


@pytest.mark.parametrize("job", ["", "mail intake", "メール", "x;drop"])
def test_a_machine_job_name_is_a_plain_identifier(job):
    with pytest.raises(ValueError):
        machine_actor(TENANT, job, [])


def test_a_machine_actor_works_and_is_refused_under_its_own_name(engine):
    tenant = make_tenant()
    source = make_source(tenant)
    reader = machine_actor(tenant, "nearest-water", [(F.WATER_SOURCES, L.VIEW)])
    start = last_audit_seq(engine, tenant)

    assert source.id in {s.id for s in water_sources.list_water_sources(reader)}
    with pytest.raises(PermissionDenied):
        water_sources.create_water_source(reader, data=source_data())

    (denial,) = audit_events(engine, tenant, after_seq=start)
    assert (denial.action, denial.actor_type, denial.actor_label) == (
        "permission_denied",
        "machine",
        "machine:nearest-water",
    )


def test_a_machine_actor_never_passes_a_platform_task(engine):
    tenant = make_tenant()
    with pytest.raises(PermissionDenied):
        notices.all_notices(machine_actor(tenant, "jobs", [(f, L.ADMIN) for f in F]))


def test_require_records_the_first_missing_need(engine):
    tenant = make_tenant()
    actor = actor_with(tenant, {F.ROSTER: L.EDIT})
    start = last_audit_seq(engine, tenant)
    require(actor, Need(F.ROSTER, L.EDIT), action="test.ok")
    with pytest.raises(PermissionDenied):
        require(actor, Need(F.ROSTER, L.EDIT), Need(F.CSV_IMPORT, L.EDIT), action="test.both")
    (denial,) = audit_events(engine, tenant, after_seq=start)
    assert denial.action == "permission_denied"
    assert json.loads(denial.details) == {
        "function": "csv_import",
        "required": "edit",
        "attempted": "test.both",
    }


def test_a_narrowed_grant_meets_a_need_only_within_the_own_unit():
    leader = Actor(
        kind=ActorKind.MEMBER,
        display_name="分団長",
        tenant_id=TENANT,
        permissions={str(F.ROSTER): L.VIEW},
        unit="第1分団",
        unit_permissions={str(F.ROSTER): L.EDIT},
    )
    assert allows(leader, Need(F.ROSTER, L.EDIT, unit="第1分団"))
    assert allows(leader, Need(F.ROSTER, L.EDIT, unit="第１分団 第2部"))  # below it, full width
    assert not allows(leader, Need(F.ROSTER, L.EDIT, unit="第10分団"))
    assert not allows(leader, Need(F.ROSTER, L.EDIT, unit=""))
    assert not allows(leader, Need(F.ROSTER, L.EDIT))  # the whole brigade
    assert allows(leader, Need(F.ROSTER, L.VIEW, unit="第2分団"))  # 閲覧 holds everywhere
    homeless = Actor(**{**leader.__dict__, "unit": ""})
    assert not allows(homeless, Need(F.ROSTER, L.EDIT, unit="第1分団"))
