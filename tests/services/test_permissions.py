"""The permission matrix services (役職・権限): listing, updating with audit, the ceiling of 編集
without 管理, the lock-out guard, the preview, and how stored rows resolve."""

from __future__ import annotations

import json
import uuid

import pytest
from sqlmodel import select

from core.access import Need, allows
from core.actor import Actor
from models import Permission
from models.enums import AuditCategory, Function, Level, SubjectType
from services import members, permissions, roles
from services.db import unit_of_work
from services.errors import NotFound, PermissionDenied, ValidationError
from services.permissions import (
    DEFAULT_RANK_MATRIX,
    DEFAULT_ROLE_MATRIX,
    FUNCTION_LEVELS,
    CellChange,
    Grant,
    choices,
)
from services.signin import sessions
from tests.factories import (
    actor_with,
    admin,
    audit_events,
    give_login,
    last_audit_seq,
    make_member,
    make_tenant,
    open_member_session,
    rank_id,
)

OPERATION, AUTH = str(AuditCategory.OPERATION), str(AuditCategory.AUTH)


def viewer(tenant_id: uuid.UUID) -> Actor:
    return actor_with(tenant_id, {Function.PERMISSIONS: Level.VIEW})


def editor(tenant_id: uuid.UUID, **levels: Level) -> Actor:
    granted = {Function.PERMISSIONS: Level.EDIT} | {Function(k): v for k, v in levels.items()}
    return actor_with(tenant_id, granted)


def member_session(tenant_id: uuid.UUID, member_id: uuid.UUID) -> Actor:
    actor = sessions.resolve(open_member_session(tenant_id, member_id))
    assert actor is not None
    return actor


def row(tenant_id: uuid.UUID, name: str) -> permissions.MatrixRow:
    return next(r for r in permissions.list_matrix(admin(tenant_id)) if r.name == name)


def cell(tenant_id: uuid.UUID, name: str, function: Function, grant: Grant) -> CellChange:
    found = row(tenant_id, name)
    return CellChange(found.subject_type, found.subject_id, function, grant)


# ---------------------------------------------------------------------------
# Defaults and resolution


def test_default_matrix_of_a_new_brigade(tenant):
    matrix = permissions.list_matrix(viewer(tenant))
    assert [r.name for r in matrix] == [
        "団長",
        "副団長",
        "分団長",
        "副分団長",
        "部長",
        "班長",
        "団員",
    ]
    for r in matrix:
        expected = {f: Grant(DEFAULT_RANK_MATRIX[r.name].get(f, Level.NONE)) for f in Function}
        assert r.grants == expected, r.name
    chief = matrix[0]
    assert chief.grants[Function.PERMISSIONS] == Grant(Level.ADMIN)
    assert all(chief.grants[f].level == FUNCTION_LEVELS[f][-1] for f in Function)


def test_every_default_level_is_offered_by_its_function():
    for matrix in (*DEFAULT_RANK_MATRIX.values(), *DEFAULT_ROLE_MATRIX.values()):
        for function, level in matrix.items():
            assert Grant(level) in choices(function)


def test_choices_offer_admin_only_where_it_means_something_and_narrowing_only_for_the_roster():
    # 役職・権限 管理 grants without limit; イベントログ 管理 also decrypts personal details;
    # 災害出動 管理 decides where dispatch mail comes from; 出動報告 管理 keeps the reward table,
    # the approval chain and the export
    admin_functions = [f for f in Function if Grant(Level.ADMIN) in choices(f)]
    assert admin_functions == [
        Function.PERMISSIONS,
        Function.EVENT_LOGS,
        Function.DISPATCH,
        Function.REPORTS,
    ]
    narrowed = [f for f in Function if any(g.own_unit for g in choices(f))]
    assert narrowed == [Function.ROSTER]
    assert [g.label for g in choices(Function.ROSTER)] == ["なし", "閲覧", "編集（自所属）", "編集"]


def _insert(tenant_id: uuid.UUID, subject_id: uuid.UUID, function: str, level: int, scope=""):
    with unit_of_work(tenant_id) as db:
        db.add(
            Permission(
                tenant_id=tenant_id,
                subject_type="rank",
                subject_id=subject_id,
                function=function,
                level=level,
                scope=scope,
            )
        )
        db.commit()


def test_unknown_functions_are_none_and_levels_are_capped(tenant):
    """Deny by default: a row for a function this version does not know grants nothing, and a
    level above what the function offers counts as its top level, on every path."""
    member = make_member(tenant)  # 団員: dashboard, water sources, notices
    団員 = rank_id(tenant)
    _insert(tenant, 団員, "launch_missiles", 3)
    _insert(tenant, 団員, str(Function.CSV_EXPORT), 3)
    actor = member_session(tenant, member.id)
    assert "launch_missiles" not in actor.permissions
    assert actor.level("launch_missiles") == Level.NONE
    assert actor.level(Function.CSV_EXPORT) == Level.VIEW
    assert row(tenant, "団員").grants[Function.CSV_EXPORT] == Grant(Level.VIEW)


def test_a_narrowed_grant_counts_as_view_for_the_actor(tenant):
    member = make_member(tenant)
    _insert(tenant, rank_id(tenant), str(Function.ROSTER), int(Level.EDIT), "own_unit")
    actor = member_session(tenant, member.id)
    assert actor.level(Function.ROSTER) == Level.VIEW
    assert row(tenant, "団員").grants[Function.ROSTER] == Grant(Level.EDIT, own_unit=True)


# ---------------------------------------------------------------------------
# list_matrix


def test_list_matrix_shows_roles_after_ranks_with_their_holders(tenant):
    clerk = roles.create_role(admin(tenant), name="庶務", rank_id=rank_id(tenant, "部長"))
    make_member(tenant, role_ids=[clerk])
    retired = make_member(tenant, role_ids=[clerk])
    members.retire_member(admin(tenant), retired.id)
    matrix = permissions.list_matrix(viewer(tenant))
    last = matrix[-1]
    assert (last.subject_type, last.subject_id, last.name) == (SubjectType.ROLE, clerk, "庶務")
    assert (last.rank_name, last.members, last.label) == ("部長", 1, "役職: 庶務（部長相当）")
    assert last.grants[Function.ROSTER] == Grant(Level.EDIT)
    assert (matrix[-2].name, matrix[-2].members) == ("団員", 1)  # the retired one not counted


def test_list_matrix_never_shows_another_brigade(tenant):
    other = make_tenant()
    roles.create_role(admin(other), name="他団の係", rank_id=rank_id(other))
    make_member(other)
    matrix = permissions.list_matrix(viewer(tenant))
    assert "他団の係" not in [r.name for r in matrix]
    assert all(r.members == 0 for r in matrix)
    theirs = {r.subject_id for r in permissions.list_matrix(admin(other))}
    assert not theirs & {r.subject_id for r in matrix}


def test_list_matrix_needs_view(tenant, engine):
    start = last_audit_seq(engine, tenant)
    with pytest.raises(PermissionDenied):
        permissions.list_matrix(actor_with(tenant, {Function.ROSTER: Level.EDIT}))
    events = audit_events(engine, tenant, after_seq=start)
    assert [(e.category, e.action) for e in events] == [(AUTH, "permission_denied")]


# ---------------------------------------------------------------------------
# update_matrix


def test_update_matrix_changes_cells_with_one_audit_event(tenant, engine):
    start = last_audit_seq(engine, tenant)
    changed = permissions.update_matrix(
        admin(tenant),
        [
            cell(tenant, "団員", Function.ROSTER, Grant(Level.VIEW)),
            cell(tenant, "班長", Function.ROSTER, Grant(Level.EDIT, own_unit=True)),
            cell(tenant, "団員", Function.NOTICES, Grant()),
            cell(tenant, "部長", Function.DASHBOARD, Grant(Level.VIEW)),  # unchanged
        ],
    )
    assert changed == 3
    assert row(tenant, "団員").grants[Function.ROSTER] == Grant(Level.VIEW)
    assert row(tenant, "団員").grants[Function.NOTICES] == Grant()
    assert row(tenant, "班長").grants[Function.ROSTER] == Grant(Level.EDIT, own_unit=True)
    events = audit_events(engine, tenant, after_seq=start)
    assert [(e.category, e.action) for e in events] == [(OPERATION, "permission.update")]
    diff = {
        (d["subject"], d["function"]): (d["before"], d["after"])
        for d in json.loads(events[0].details)["changes"]
    }
    assert diff == {
        ("団員", "roster"): ("none", "view"),
        ("班長", "roster"): ("view", "edit/own_unit"),
        ("団員", "notices"): ("view", "none"),
    }


def test_no_change_writes_no_event(tenant, engine):
    start = last_audit_seq(engine, tenant)
    same = cell(tenant, "団員", Function.DASHBOARD, Grant(Level.VIEW))
    assert permissions.update_matrix(admin(tenant), [same]) == 0
    assert audit_events(engine, tenant, after_seq=start) == []


def test_changes_take_effect_on_the_next_resolve(tenant):
    member = make_member(tenant)
    token = open_member_session(tenant, member.id)
    before = sessions.resolve(token)
    assert before is not None and not allows(before, Need(Function.ROSTER))
    permissions.update_matrix(
        admin(tenant), [cell(tenant, "団員", Function.ROSTER, Grant(Level.EDIT))]
    )
    after = sessions.resolve(token)
    assert after is not None and allows(after, Need(Function.ROSTER, Level.EDIT))


@pytest.mark.parametrize(
    ("function", "grant"),
    [
        (Function.DASHBOARD, Grant(Level.EDIT)),  # not offered
        (Function.ROSTER, Grant(Level.ADMIN)),
        (Function.CSV_IMPORT, Grant(Level.VIEW)),
        (Function.WATER_SOURCES, Grant(Level.EDIT, own_unit=True)),  # narrowing only for roster
        (Function.ROSTER, Grant(Level.VIEW, own_unit=True)),
    ],
)
def test_update_matrix_rejects_levels_a_function_does_not_offer(tenant, engine, function, grant):
    before = permissions.list_matrix(admin(tenant))
    start = last_audit_seq(engine, tenant)
    good = cell(tenant, "団員", Function.ROSTER, Grant(Level.VIEW))
    with pytest.raises(ValidationError) as err:
        permissions.update_matrix(admin(tenant), [good, cell(tenant, "団員", function, grant)])
    assert "設定できません" in next(iter(err.value.errors.values()))
    assert permissions.list_matrix(admin(tenant)) == before  # all or nothing
    assert audit_events(engine, tenant, after_seq=start) == []


@pytest.mark.parametrize(
    "bad",
    [
        lambda c: CellChange(c.subject_type, c.subject_id, "launch_missiles", c.grant),
        lambda c: CellChange("group", c.subject_id, c.function, c.grant),
        lambda c: CellChange(c.subject_type, c.subject_id, c.function, Grant(7)),  # type: ignore[arg-type]
        lambda c: CellChange(c.subject_type, c.subject_id, c.function, "edit"),  # type: ignore[arg-type]
    ],
)
def test_update_matrix_rejects_malformed_changes(tenant, bad):
    change = cell(tenant, "団員", Function.ROSTER, Grant(Level.VIEW))
    with pytest.raises(ValidationError):
        permissions.update_matrix(admin(tenant), [bad(change)])
    assert row(tenant, "団員").grants[Function.ROSTER] == Grant()


def test_update_matrix_cannot_touch_another_brigade(tenant, engine):
    other = make_tenant()
    theirs = cell(other, "団員", Function.ROSTER, Grant(Level.EDIT))
    starts = last_audit_seq(engine, tenant), last_audit_seq(engine, other)
    with pytest.raises(NotFound) as found:
        permissions.update_matrix(admin(tenant), [theirs])
    with pytest.raises(NotFound) as nowhere:
        permissions.update_matrix(
            admin(tenant), [CellChange(SubjectType.RANK, uuid.uuid4(), Function.ROSTER, Grant())]
        )
    assert str(found.value) == str(nowhere.value)
    assert row(other, "団員").grants[Function.ROSTER] == Grant()
    assert audit_events(engine, other, after_seq=starts[1]) == []
    assert audit_events(engine, tenant, after_seq=starts[0]) == []


def test_update_matrix_needs_edit(tenant, engine):
    start = last_audit_seq(engine, tenant)
    with pytest.raises(PermissionDenied):
        permissions.update_matrix(
            viewer(tenant), [cell(tenant, "団員", Function.ROSTER, Grant(Level.VIEW))]
        )
    assert row(tenant, "団員").grants[Function.ROSTER] == Grant()
    (event,) = audit_events(engine, tenant, after_seq=start)
    assert json.loads(event.details)["required"] == "edit"


# ---------------------------------------------------------------------------
# The ceiling of 編集 without 管理


def test_editor_may_change_cells_up_to_their_own_level(tenant):
    actor = editor(tenant, roster=Level.EDIT, notices=Level.VIEW)
    changes = [
        cell(tenant, "団員", Function.ROSTER, Grant(Level.EDIT)),
        cell(tenant, "団員", Function.NOTICES, Grant()),
    ]
    assert permissions.update_matrix(actor, changes) == 2


@pytest.mark.parametrize(
    ("name", "function", "grant"),
    [
        ("団員", Function.ROSTER, Grant(Level.EDIT)),  # above the editor's own 閲覧
        ("団長", Function.SETTINGS, Grant(Level.VIEW)),  # lowering a cell above the editor
        ("団員", Function.PERMISSIONS, Grant(Level.VIEW)),  # the 役職・権限 column itself
        ("分団長", Function.PERMISSIONS, Grant()),
    ],
)
def test_editor_without_admin_is_refused_beyond_the_ceiling(tenant, engine, name, function, grant):
    actor = editor(tenant, roster=Level.VIEW)
    before = permissions.list_matrix(admin(tenant))
    start = last_audit_seq(engine, tenant)
    with pytest.raises(PermissionDenied) as err:
        permissions.update_matrix(actor, [cell(tenant, name, function, grant)])
    assert "管理権限" in err.value.message
    assert permissions.list_matrix(admin(tenant)) == before
    (event,) = audit_events(engine, tenant, after_seq=start)
    assert (event.category, event.action) == (AUTH, "permission_denied")
    assert json.loads(event.details)["required"] == "admin"


# ---------------------------------------------------------------------------
# Lock-out


def test_the_last_permission_administrator_cannot_be_removed(tenant, engine):
    chief = make_member(tenant, rank_id=rank_id(tenant, "団長"))
    give_login(tenant, chief.id)
    actor = member_session(tenant, chief.id)
    start = last_audit_seq(engine, tenant)
    for grant in (Grant(Level.EDIT), Grant()):
        with pytest.raises(ValidationError) as err:
            permissions.update_matrix(actor, [cell(tenant, "団長", Function.PERMISSIONS, grant)])
        assert set(err.value.errors) == {"lockout"}
        assert "いなくなります" in err.value.errors["lockout"]
    assert row(tenant, "団長").grants[Function.PERMISSIONS] == Grant(Level.ADMIN)
    assert audit_events(engine, tenant, after_seq=start, category=OPERATION) == []


def test_another_active_administrator_makes_the_change_possible(tenant):
    chief = make_member(tenant, rank_id=rank_id(tenant, "団長"))
    deputy = make_member(tenant, rank_id=rank_id(tenant, "副団長"))
    give_login(tenant, chief.id)
    give_login(tenant, deputy.id)
    members.suspend_member(admin(tenant), deputy.id)
    actor = member_session(tenant, chief.id)
    change = cell(tenant, "団長", Function.PERMISSIONS, Grant(Level.VIEW))
    with pytest.raises(ValidationError):  # a suspended administrator does not count
        permissions.update_matrix(actor, [change])
    members.reactivate_member(admin(tenant), deputy.id)
    assert permissions.update_matrix(actor, [change]) == 1


def test_a_role_can_carry_the_last_administration(tenant):
    keeper = roles.create_role(admin(tenant), name="システム係", rank_id=rank_id(tenant))
    permissions.update_matrix(
        admin(tenant), [cell(tenant, "システム係", Function.PERMISSIONS, Grant(Level.ADMIN))]
    )
    chief = make_member(tenant, rank_id=rank_id(tenant, "団長"))
    give_login(tenant, make_member(tenant, role_ids=[keeper]).id)
    actor = member_session(tenant, chief.id)
    changes = [
        cell(tenant, "団長", Function.PERMISSIONS, Grant()),
        cell(tenant, "副団長", Function.PERMISSIONS, Grant()),
    ]
    assert permissions.update_matrix(actor, changes) == 2
    with pytest.raises(ValidationError):
        permissions.update_matrix(
            _keeper_actor(tenant),
            [cell(tenant, "システム係", Function.PERMISSIONS, Grant(Level.EDIT))],
        )


def _keeper_actor(tenant: uuid.UUID) -> Actor:
    holder = next(m for m in members.list_members(admin(tenant)) if m.role_names == ["システム係"])
    return member_session(tenant, holder.id)


def test_the_platform_is_the_recovery_path(tenant):
    """The command line (system actor) is not held by the lock-out guard."""
    make_member(tenant, rank_id=rank_id(tenant, "団長"))
    change = cell(tenant, "団長", Function.PERMISSIONS, Grant(Level.VIEW))
    assert permissions.update_matrix(admin(tenant), [change]) == 1


# ---------------------------------------------------------------------------
# Preview


def test_preview_member_shows_levels_and_their_sources(tenant):
    clerk = roles.create_role(admin(tenant), name="庶務", rank_id=rank_id(tenant))
    member = make_member(tenant, rank_id=rank_id(tenant, "班長"), role_ids=[clerk])
    preview = permissions.preview_member(viewer(tenant), member.id)
    assert (preview.rank_name, preview.role_names) == ("班長", ("庶務",))
    by_function = {p.function: p for p in preview.functions}
    assert by_function[Function.ROSTER].grant == Grant(Level.EDIT)
    assert by_function[Function.ROSTER].sources == ("班長", "庶務")
    assert by_function[Function.INSPECTIONS].sources == ("班長",)
    assert by_function[Function.SETTINGS].grant == Grant()
    actor = member_session(tenant, member.id)
    assert {str(p.function): p.grant.level for p in preview.functions if p.grant.level} == dict(
        actor.permissions
    )


def test_preview_of_an_inactive_member_grants_nothing(tenant):
    member = make_member(tenant, rank_id=rank_id(tenant, "団長"))
    members.suspend_member(admin(tenant), member.id)
    preview = permissions.preview_member(viewer(tenant), member.id)
    assert all(p.grant == Grant() and p.sources == () for p in preview.functions)


def test_preview_choices_list_the_brigades_members(tenant):
    member = make_member(tenant)
    make_member(make_tenant())
    choices_ = permissions.preview_choices(viewer(tenant))
    assert [(c.member_id, c.label) for c in choices_] == [
        (member.id, f"{member.member_code}　{member.name}")
    ]


def test_preview_of_another_brigades_member_is_not_found(tenant):
    stranger = make_member(make_tenant())
    with pytest.raises(NotFound):
        permissions.preview_member(viewer(tenant), stranger.id)


@pytest.mark.parametrize(
    "call",
    [
        lambda a, m: permissions.preview_member(a, m),
        lambda a, m: permissions.preview_choices(a),
    ],
)
def test_preview_needs_view(tenant, call):
    member = make_member(tenant)
    with pytest.raises(PermissionDenied):
        call(actor_with(tenant, {Function.ROSTER: Level.EDIT}), member.id)


def test_stored_rows_match_the_grid(tenant):
    """A cell set to なし leaves no row behind; a narrowed one is stored with its scope."""
    permissions.update_matrix(
        admin(tenant),
        [
            cell(tenant, "団員", Function.NOTICES, Grant()),
            cell(tenant, "団員", Function.ROSTER, Grant(Level.EDIT, own_unit=True)),
        ],
    )
    with unit_of_work(tenant) as db:
        rows = db.exec(
            select(Permission).where(
                Permission.tenant_id == tenant, Permission.subject_id == rank_id(tenant)
            )
        ).all()
        stored = {(r.function, r.level, r.scope) for r in rows}
    assert stored == {
        ("dashboard", 1, ""),
        ("water_sources", 1, ""),
        ("dispatch", 1, ""),
        ("reports", 1, ""),
        ("roster", 2, "own_unit"),
    }
