"""The authorization matrix as data.

ACCESS lists, for every function, representative service calls and the level each needs. Every
case sets one subject's row of the real matrix (a rank, or a role held by a 団員 whose rank row
is empty) to exactly one grant, resolves a real member session through services.signin.sessions, and expects
each call of that function to be allowed or denied accordingly, and the page list to follow the
same rule. A grant narrowed to the own 所属 is tried on a member inside and one outside it.

Functions without services yet (CSV import / export, restore, notices) and levels no
service refuses on (点検 閲覧 only shows inspectors' names; 団設定 閲覧) are checked through the
effective level and the page rules only.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

import pytest

from core.access import Need, allows
from core.actor import Actor
from models import MemberCreate, MemberUpdate
from models.enums import RANK_NAMES, Function, Level, SubjectType
from models.water import WaterInspectionCreate
from services import (
    brigade_settings,
    dashboard,
    members,
    permissions,
    registration_batch,
    registrations,
    roles,
    water_sources,
)
from services.dispatch import incidents, mail_log, sources
from services.errors import NotFound, PermissionDenied
from services.permissions import CellChange, Grant, choices
from services.reports import approvals, reports
from services.signin import sessions
from tests.factories import admin, make_member, make_tenant, open_member_session, rank_id
from tests.water_factories import make_source, source_data
from ui.registry import MEMBER_PAGES, specs_for

HOME_UNIT = "第1分団"
OTHER_UNIT = "第2分団"
ROLE = "検証係"
PLAIN = "団員"  # the rank tests.factories.rank_id and make_member default to
_codes = itertools.count(1)


def fresh(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:6]}{next(_codes)}"


@dataclass
class World:
    tenant_id: uuid.UUID
    rank_members: dict[str, uuid.UUID]
    role_member: uuid.UUID
    role_id: uuid.UUID
    spare_role: uuid.UUID
    source_id: uuid.UUID
    ranks: dict[str, uuid.UUID]  # by name, looked up once (no case changes the ranks)

    @property
    def admin(self) -> Actor:
        return admin(self.tenant_id)

    @property
    def plain_rank(self) -> uuid.UUID:
        return self.ranks[PLAIN]

    def target(self, unit: str = HOME_UNIT, **overrides: Any):
        overrides.setdefault("rank_id", self.plain_rank)  # the factory's default, without a lookup
        return make_member(self.tenant_id, affiliation=unit, **overrides)


@dataclass(frozen=True)
class Probe:
    name: str
    level: Level
    call: Callable[[Actor, World, str], object]  # (actor, world, the target member's 所属)
    on_member: bool = False  # acts on one member: narrowing by 所属 applies


def _update(a: Actor, w: World, unit: str) -> object:
    target = w.target(unit)
    return members.update_member(
        a, target.id, data=MemberUpdate(notes="更新"), expected_version=target.version
    )


def _reactivate(a: Actor, w: World, unit: str) -> object:
    target = members.suspend_member(w.admin, w.target(unit).id)
    return members.reactivate_member(a, target.id)


def _readmit(a: Actor, w: World, unit: str) -> object:
    target = members.retire_member(w.admin, w.target(unit).id)
    return members.readmit_member(a, target.id)


def _issue_batch(a: Actor, w: World, unit: str) -> object:
    label = f"{unit} {fresh('班')}"
    member = w.target(label)
    return registration_batch.issue_batch(
        a, units=[label], include_valid=False, expected=[member.id]
    )


def _rename_label(a: Actor, w: World, unit: str) -> object:
    label = f"{unit} {fresh('班')}"
    w.target(label)
    return members.rename_affiliation(a, old=label, new=f"{label}改")


def _settings(a: Actor, w: World, unit: str) -> object:
    version = brigade_settings.get_water_map_settings(w.admin).version
    return brigade_settings.update_water_map_settings(
        a, coverage_radius_m=120, expected_version=version
    )


def _permission_cell(a: Actor, w: World, unit: str) -> object:
    current = next(r for r in permissions.list_matrix(w.admin) if r.subject_id == w.spare_role)
    now = current.grants[Function.PERMISSIONS]
    flipped = Grant(Level.VIEW) if now.level == Level.NONE else Grant()
    change = CellChange(SubjectType.ROLE, w.spare_role, Function.PERMISSIONS, flipped)
    return permissions.update_matrix(a, [change])


def _raw_mail(a: Actor, w: World, unit: str) -> object:
    """Past the gate, a mail that does not exist is simply not found."""
    try:
        return mail_log.raw_mail(a, uuid.uuid4())
    except NotFound:
        return None


F, L = Function, Level
ACCESS: dict[Function, tuple[Probe, ...]] = {
    F.DASHBOARD: (Probe("dashboard.load", L.VIEW, lambda a, w, u: dashboard.load(a)),),
    F.ROSTER: (
        Probe("list_members", L.VIEW, lambda a, w, u: members.list_members(a)),
        Probe("get_member", L.VIEW, lambda a, w, u: members.get_member(a, w.target(u).id), True),
        Probe("list_affiliations", L.VIEW, lambda a, w, u: members.list_affiliations(a)),
        Probe("line_linked_ids", L.VIEW, lambda a, w, u: members.line_linked_ids(a)),
        Probe("line_reach", L.VIEW, lambda a, w, u: members.line_reach(a)),
        Probe(
            "create_member",
            L.EDIT,
            lambda a, w, u: members.create_member(
                a,
                data=MemberCreate(
                    member_code=fresh("C"),
                    name="新入　団員",
                    rank_id=w.plain_rank,
                    affiliation=u,
                ),
            ),
            True,
        ),
        Probe("update_member", L.EDIT, _update, True),
        Probe(
            "retire_member", L.EDIT, lambda a, w, u: members.retire_member(a, w.target(u).id), True
        ),
        Probe("readmit_member", L.EDIT, _readmit, True),
        Probe(
            "bulk_set_affiliation",
            L.EDIT,
            lambda a, w, u: members.bulk_set_affiliation(
                a, [w.target(u).id], affiliation=f"{u} 第9部"
            ),
            True,
        ),
        Probe("rename_affiliation", L.EDIT, _rename_label, True),
    ),
    F.MEMBER_ACCOUNTS: (
        Probe("list_accounts", L.VIEW, lambda a, w, u: registrations.list_accounts(a)),
        Probe("suspend_member", L.EDIT, lambda a, w, u: members.suspend_member(a, w.target().id)),
        Probe("reactivate_member", L.EDIT, _reactivate),
        Probe("bulk_suspend", L.EDIT, lambda a, w, u: members.bulk_suspend(a, [w.target().id])),
        Probe(
            "issue_registration",
            L.EDIT,
            lambda a, w, u: registrations.issue_registration(a, w.target().id),
        ),
        Probe("batch_units", L.EDIT, lambda a, w, u: registration_batch.batch_units(a)),
        Probe("issue_batch", L.EDIT, _issue_batch),
    ),
    F.PERMISSIONS: (
        Probe("list_matrix", L.VIEW, lambda a, w, u: permissions.list_matrix(a)),
        Probe("list_roles", L.VIEW, lambda a, w, u: roles.list_roles(a)),
        Probe("preview_choices", L.VIEW, lambda a, w, u: permissions.preview_choices(a)),
        Probe(
            "preview_member",
            L.VIEW,
            lambda a, w, u: permissions.preview_member(a, w.role_member),
        ),
        Probe(
            "create_role",
            L.EDIT,
            lambda a, w, u: roles.create_role(a, name=fresh("係"), rank_id=w.plain_rank),
        ),
        Probe(
            "rename_role",
            L.EDIT,
            lambda a, w, u: roles.rename_role(a, w.spare_role, name=fresh("予備係")),
        ),
        Probe("update_matrix (役職・権限 column)", L.ADMIN, _permission_cell),
    ),
    F.WATER_SOURCES: (
        Probe("list_water_sources", L.VIEW, lambda a, w, u: water_sources.list_water_sources(a)),
        Probe(
            "get_water_source",
            L.VIEW,
            lambda a, w, u: water_sources.get_water_source(a, w.source_id),
        ),
        Probe(
            "create_water_source",
            L.EDIT,
            lambda a, w, u: water_sources.create_water_source(a, data=source_data()),
        ),
    ),
    F.INSPECTIONS: (
        Probe(
            "record_inspection",
            L.EDIT,
            lambda a, w, u: water_sources.record_inspection(
                a,
                w.source_id,
                data=WaterInspectionCreate(inspected_on=date(2025, 4, 1), result="異常なし"),
            ),
        ),
    ),
    F.SETTINGS: (Probe("update_water_map_settings", L.EDIT, _settings),),
    F.CSV_IMPORT: (),
    F.CSV_EXPORT: (),
    F.RESTORE: (),
    F.EVENT_LOGS: (
        Probe("list_mail", L.VIEW, lambda a, w, u: mail_log.list_mail(a)),
        Probe("raw_mail", L.ADMIN, _raw_mail),
    ),
    F.NOTICES: (),
    F.DISPATCH: (
        Probe("list_incidents", L.VIEW, lambda a, w, u: incidents.list_incidents(a)),
        Probe(
            "create_incident",
            L.EDIT,
            lambda a, w, u: incidents.create_incident(a, incidents.IncidentInput(kind="建物火災")),
        ),
        Probe("list_sources", L.ADMIN, lambda a, w, u: sources.list_sources(a)),
    ),
    F.REPORTS: (
        Probe("my_reports", L.VIEW, lambda a, w, u: reports.my_reports(a)),
        Probe("list_reports", L.EDIT, lambda a, w, u: reports.list_reports(a)),
        Probe("get_chain", L.ADMIN, lambda a, w, u: approvals.get_chain(a)),
    ),
    F.APPROVALS: (Probe("pending_approval", L.EDIT, lambda a, w, u: reports.pending_approval(a)),),
}
assert set(ACCESS) == set(Function)

SUBJECTS = (*(f"rank:{name}" for name in RANK_NAMES), "role")
# ASCII test ids: pytest escapes the rest
_ROMAJI = dict(
    zip(
        RANK_NAMES,
        ("dancho", "fukudancho", "bundancho", "fukubundancho", "bucho", "hancho", "danin"),
        strict=True,
    )
)


def _id(*parts: object) -> str:
    def one(part: object) -> str:
        if isinstance(part, Grant):
            return part.level.name.lower() + ("_own_unit" if part.own_unit else "")
        if isinstance(part, Probe):
            return part.name.split(" ")[0]
        text = str(part)
        return _ROMAJI.get(text.removeprefix("rank:"), text)

    return "-".join(one(p) for p in parts)


WHERE = ("own", "other")


def expected(grant: Grant, probe: Probe, where: str) -> bool:
    """The rule the matrix promises: the whole-brigade level decides, and a grant narrowed to
    the own 所属 also reaches the members inside it."""
    if grant.brigade_level >= probe.level:
        return True
    return probe.on_member and where == "own" and grant.level >= probe.level


def expected_pages(function: Function, grant: Grant) -> set[str]:
    return {
        p.path
        for p in MEMBER_PAGES
        if p.function is None
        or (p.function == function and grant.brigade_level >= p.level and not p.also)
    }


CASES = [
    pytest.param(function, grant, subject, id=_id(function, grant, subject))
    for function in Function
    for grant in choices(function)
    for subject in SUBJECTS
]


@pytest.fixture(scope="module")
def world(engine) -> World:
    tenant = make_tenant()
    ranks = {name: rank_id(tenant, name) for name in RANK_NAMES}
    rank_members = {
        name: make_member(tenant, rank_id=ranks[name], affiliation=HOME_UNIT).id
        for name in RANK_NAMES
    }
    role_id = roles.create_role(admin(tenant), name=ROLE, rank_id=ranks[PLAIN])
    spare = roles.create_role(admin(tenant), name="予備係", rank_id=ranks[PLAIN])
    holder = make_member(tenant, role_ids=[role_id], affiliation=HOME_UNIT, rank_id=ranks[PLAIN]).id
    source = make_source(tenant).id
    return World(tenant, rank_members, holder, role_id, spare, source, ranks)


def set_row(world: World, subject_type: SubjectType, subject_id: uuid.UUID, only: dict) -> None:
    """Give one subject exactly the grants in `only` (every other function なし)."""
    permissions.update_matrix(
        world.admin,
        [CellChange(subject_type, subject_id, f, only.get(f, Grant())) for f in Function],
    )


def actor_holding(world: World, function: Function, grant: Grant, subject: str) -> Actor:
    """A real member session whose permissions come from the matrix rows just written.

    The probes' targets are new 団員, so the 団員 row is emptied first (unless it is the subject):
    what an earlier case left there must not decide this one (the suite runs in any order)."""
    if subject != "rank:団員":
        set_row(world, SubjectType.RANK, world.plain_rank, {})
    if subject == "role":
        set_row(world, SubjectType.ROLE, world.role_id, {function: grant})
        member_id = world.role_member
    else:
        name = subject.removeprefix("rank:")
        set_row(world, SubjectType.RANK, world.ranks[name], {function: grant})
        member_id = world.rank_members[name]
    actor = sessions.resolve(open_member_session(world.tenant_id, member_id))
    assert actor is not None
    return actor


@pytest.mark.parametrize(("function", "grant", "subject"), CASES)
@pytest.mark.usefixtures("line_login_channel")
def test_the_matrix_decides_levels_pages_and_services(world, function, grant, subject):
    """One matrix cell: the actor's levels and pages, then every probe of the function (in and
    outside the own 所属 where a narrowed grant could differ) against expected(). The member
    session is built once per cell; each wrong answer is named."""
    actor = actor_holding(world, function, grant, subject)
    brigade = grant.brigade_level
    assert dict(actor.permissions) == ({str(function): brigade} if brigade else {})
    for other in Function:
        assert allows(actor, Need(other, Level.VIEW)) == (
            other == function and brigade >= Level.VIEW
        )
    assert {p.path for p in specs_for(actor)} == expected_pages(function, grant)
    wrong = []
    for probe in ACCESS[function]:
        for where in WHERE if probe.on_member and grant.own_unit else ("own",):
            try:
                probe.call(actor, world, HOME_UNIT if where == "own" else OTHER_UNIT)
                allowed = True
            except PermissionDenied:
                allowed = False
            if allowed != expected(grant, probe, where):
                wrong.append(f"{probe.name} ({where}): {'allowed' if allowed else 'denied'}")
    assert not wrong


def test_the_table_covers_every_level_that_a_service_checks():
    """Each function with services has a probe at each level above なし it offers (except
    levels no service distinguishes yet, listed here)."""
    unprobed = {(F.INSPECTIONS, L.VIEW), (F.SETTINGS, L.VIEW)}
    for function, probes in ACCESS.items():
        if not probes:
            continue
        levels = {p.level for p in probes}
        offered = {g.level for g in choices(function) if g.level > L.NONE}
        assert offered - levels <= {lvl for f, lvl in unprobed if f == function}
