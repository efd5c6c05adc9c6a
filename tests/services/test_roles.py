"""Roles (役職): list, create, rename, remap to a rank, delete (refused while held, or with the
holders moved to another role). Happy path, other brigade, not permitted, bad input."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable

import pytest
from sqlmodel import select

from core.access import Need, allows
from core.actor import Actor
from models import MemberUpdate, Permission
from models.enums import AuditCategory, Function, Level
from services import members, permissions, roles
from services.db import unit_of_work
from services.errors import NotFound, PermissionDenied, ValidationError
from services.permissions import CellChange, Grant
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


def editor(tenant_id: uuid.UUID) -> Actor:
    return actor_with(tenant_id, {Function.PERMISSIONS: Level.EDIT})


def make_role(tenant_id: uuid.UUID, name: str = "ポンプ係", rank: str = "団員") -> uuid.UUID:
    return roles.create_role(admin(tenant_id), name=name, rank_id=rank_id(tenant_id, rank))


def info(tenant_id: uuid.UUID, role_id: uuid.UUID) -> roles.RoleInfo | None:
    return next((r for r in roles.list_roles(admin(tenant_id)) if r.id == role_id), None)


def permission_rows(tenant_id: uuid.UUID, subject_id: uuid.UUID) -> list[Permission]:
    with unit_of_work(tenant_id) as db:
        return list(
            db.exec(
                select(Permission).where(
                    Permission.tenant_id == tenant_id, Permission.subject_id == subject_id
                )
            ).all()
        )


def operations(engine, tenant_id: uuid.UUID, start: int) -> list[tuple[str, dict]]:
    return [
        (e.action, json.loads(e.details))
        for e in audit_events(engine, tenant_id, after_seq=start, category=OPERATION)
    ]


# ---------------------------------------------------------------------------
# Happy paths


def test_create_and_list_roles(tenant, engine):
    start = last_audit_seq(engine, tenant)
    clerk = roles.create_role(editor(tenant), name=" 庶務 ", rank_id=rank_id(tenant, "部長"))
    pump = roles.create_role(editor(tenant), name="ﾎﾟﾝﾌﾟ係", rank_id=rank_id(tenant))
    make_member(tenant, role_ids=[clerk])
    listed = roles.list_roles(actor_with(tenant, {Function.PERMISSIONS: Level.VIEW}))
    assert [(r.id, r.name, r.rank_name, r.members) for r in listed] == [
        (clerk, "庶務", "部長", 1),
        (pump, "ポンプ係", "団員", 0),
    ]
    assert [a for a, _ in operations(engine, tenant, start)] == [
        "role.create",
        "role.create",
        "member.create",
    ]


def test_a_new_role_with_a_known_name_gets_its_defaults_capped_at_the_creator(tenant):
    capped = roles.create_role(
        actor_with(tenant, {Function.PERMISSIONS: Level.EDIT, Function.ROSTER: Level.VIEW}),
        name="庶務",
        rank_id=rank_id(tenant),
    )
    grants = {r.subject_id: r.grants for r in permissions.list_matrix(admin(tenant))}[capped]
    assert grants[Function.ROSTER] == Grant(Level.VIEW)
    assert grants[Function.MEMBER_ACCOUNTS] == Grant()
    other = make_tenant()
    full = make_role(other, "庶務")
    grants = {r.subject_id: r.grants for r in permissions.list_matrix(admin(other))}[full]
    assert grants[Function.MEMBER_ACCOUNTS] == Grant(Level.EDIT)


def test_rename_role(tenant, engine):
    role = make_role(tenant)
    start = last_audit_seq(engine, tenant)
    roles.rename_role(editor(tenant), role, name="機関員")
    assert info(tenant, role).name == "機関員"
    roles.rename_role(editor(tenant), role, name="機関員")  # its own name is no duplicate
    assert operations(engine, tenant, start)[0] == (
        "role.rename",
        {"before": {"name": "ポンプ係"}, "after": {"name": "機関員"}},
    )


def test_remap_role(tenant, engine):
    role = make_role(tenant)
    start = last_audit_seq(engine, tenant)
    roles.remap_role(editor(tenant), role, rank_id=rank_id(tenant, "副分団長"))
    assert info(tenant, role).rank_name == "副分団長"
    action, details = operations(engine, tenant, start)[0]
    assert action == "role.remap"
    assert (details["before"], details["after"]) == ({"rank": "団員"}, {"rank": "副分団長"})


def test_delete_an_unheld_role_deletes_its_permissions(tenant, engine):
    role = make_role(tenant, "庶務")
    assert permission_rows(tenant, role)
    start = last_audit_seq(engine, tenant)
    assert roles.delete_role(admin(tenant), role) == 0
    assert info(tenant, role) is None
    assert permission_rows(tenant, role) == []
    action, details = operations(engine, tenant, start)[0]
    assert action == "role.delete"
    assert details["name"] == "庶務" and details["members"] == 0
    assert details["permissions"]["roster"] == "edit"


def test_deleting_a_held_role_is_refused_with_the_number_of_holders(tenant, engine):
    role = make_role(tenant)
    for _ in range(3):
        make_member(tenant, role_ids=[role])
    permissions.update_matrix(
        admin(tenant), [CellChange("role", role, Function.NOTICES, Grant(Level.VIEW))]
    )
    start = last_audit_seq(engine, tenant)
    with pytest.raises(ValidationError) as err:
        roles.delete_role(actor_with(tenant, {f: Level.EDIT for f in Function}), role)
    message = err.value.errors["reassign_to"]
    assert "3名" in message and "ポンプ係" in message
    assert info(tenant, role).members == 3
    assert [r.function for r in permission_rows(tenant, role)] == ["notices"]
    assert operations(engine, tenant, start) == []


def test_deleting_with_a_successor_moves_the_holders(tenant, engine):
    old, new = make_role(tenant, "ポンプ係"), make_role(tenant, "機関員")
    moved = make_member(tenant, role_ids=[old])
    both = make_member(tenant, role_ids=[old, new])
    start = last_audit_seq(engine, tenant)
    assert roles.delete_role(editor(tenant), old, reassign_to=new) == 2
    after = {m.id: m for m in members.list_members(admin(tenant))}
    assert after[moved.id].role_names == ["機関員"]
    assert after[both.id].role_names == ["機関員"]
    assert after[moved.id].version == moved.version + 1  # a stale edit form now conflicts
    assert info(tenant, new).members == 2
    assert permission_rows(tenant, old) == []
    (action, details), *_ = operations(engine, tenant, start)
    assert action == "role.delete"
    assert (details["members"], details["reassigned_to"]) == (2, "機関員")


def test_members_of_a_deleted_role_lose_its_rights_on_the_next_run(tenant):
    clerk = make_role(tenant, "庶務")
    member = make_member(tenant, role_ids=[clerk])
    token = open_member_session(tenant, member.id)
    assert allows(sessions.resolve(token), Need(Function.ROSTER, Level.EDIT))
    members.update_member(
        admin(tenant), member.id, data=MemberUpdate(role_ids=[]), expected_version=member.version
    )
    roles.delete_role(admin(tenant), clerk)
    assert not allows(sessions.resolve(token), Need(Function.ROSTER))


# ---------------------------------------------------------------------------
# Guards: ceiling and lock-out


def test_deleting_a_role_above_the_editors_level_needs_admin(tenant, engine):
    clerk = make_role(tenant, "庶務")  # roster 編集, accounts 編集, …
    start = last_audit_seq(engine, tenant)
    with pytest.raises(PermissionDenied):
        roles.delete_role(editor(tenant), clerk)
    assert info(tenant, clerk) is not None
    (event,) = audit_events(engine, tenant, after_seq=start)
    assert json.loads(event.details)["required"] == "admin"


def test_deleting_the_role_of_the_last_administrator_is_refused(tenant):
    keeper = make_role(tenant, "システム係")
    permissions.update_matrix(
        admin(tenant),
        [CellChange("role", keeper, Function.PERMISSIONS, Grant(Level.ADMIN))],
    )
    holder = make_member(tenant, role_ids=[keeper])
    give_login(tenant, holder.id)
    spare = make_role(tenant, "予備係")
    actor = sessions.resolve(open_member_session(tenant, holder.id))
    with pytest.raises(ValidationError) as err:
        roles.delete_role(actor, keeper, reassign_to=spare)
    assert set(err.value.errors) == {"lockout"}
    assert info(tenant, keeper).members == 1


# ---------------------------------------------------------------------------
# Another brigade


def test_roles_of_another_brigade_are_invisible(tenant):
    make_role(make_tenant(), "他団の係")
    assert roles.list_roles(admin(tenant)) == []


ACT_ON_ROLE: dict[str, Callable[[Actor, uuid.UUID, uuid.UUID], object]] = {
    "rename_role": lambda a, role, rank: roles.rename_role(a, role, name="乗っ取り"),
    "remap_role": lambda a, role, rank: roles.remap_role(a, role, rank_id=rank),
    "delete_role": lambda a, role, rank: roles.delete_role(a, role),
}


@pytest.mark.parametrize("name", sorted(ACT_ON_ROLE))
def test_another_brigades_role_is_not_found(tenant, engine, name):
    other = make_tenant()
    theirs = make_role(other, "他団の係")
    before = roles.list_roles(admin(other))
    start = last_audit_seq(engine, other)
    with pytest.raises(NotFound) as found:
        ACT_ON_ROLE[name](admin(tenant), theirs, rank_id(tenant))
    with pytest.raises(NotFound) as nowhere:
        ACT_ON_ROLE[name](admin(tenant), uuid.uuid4(), rank_id(tenant))
    assert str(found.value) == str(nowhere.value)
    assert roles.list_roles(admin(other)) == before
    assert audit_events(engine, other, after_seq=start) == []


def test_ranks_and_successors_of_another_brigade_are_rejected(tenant):
    other = make_tenant()
    role = make_role(tenant)
    make_member(tenant, role_ids=[role])
    with pytest.raises(ValidationError) as err:
        roles.create_role(admin(tenant), name="越境係", rank_id=rank_id(other))
    assert set(err.value.errors) == {"rank_id"}
    with pytest.raises(ValidationError) as err:
        roles.remap_role(admin(tenant), role, rank_id=rank_id(other))
    assert set(err.value.errors) == {"rank_id"}
    with pytest.raises(ValidationError) as err:
        roles.delete_role(admin(tenant), role, reassign_to=make_role(other, "他団の係"))
    assert set(err.value.errors) == {"reassign_to"}
    assert info(tenant, role).members == 1


# ---------------------------------------------------------------------------
# Not permitted


REQUIREMENTS: dict[str, tuple[Level, Callable[[Actor, uuid.UUID], object]]] = {
    "list_roles": (Level.VIEW, lambda a, role: roles.list_roles(a)),
    "create_role": (
        Level.EDIT,
        lambda a, role: roles.create_role(a, name="新係", rank_id=rank_id(a.tenant_id)),
    ),
    "rename_role": (Level.EDIT, lambda a, role: roles.rename_role(a, role, name="新係")),
    "remap_role": (
        Level.EDIT,
        lambda a, role: roles.remap_role(a, role, rank_id=rank_id(a.tenant_id, "班長")),
    ),
    "delete_role": (Level.EDIT, lambda a, role: roles.delete_role(a, role)),
}


@pytest.mark.parametrize("name", sorted(REQUIREMENTS))
def test_not_permitted(tenant, engine, name):
    level, call = REQUIREMENTS[name]
    role = make_role(tenant)
    before = roles.list_roles(admin(tenant))
    start = last_audit_seq(engine, tenant)
    everything_else = {f: Level.EDIT for f in Function} | {Function.PERMISSIONS: level - 1}
    with pytest.raises(PermissionDenied):
        call(actor_with(tenant, everything_else), role)
    assert roles.list_roles(admin(tenant)) == before
    (event,) = audit_events(engine, tenant, after_seq=start)
    assert (event.category, event.action) == (AUTH, "permission_denied")
    assert json.loads(event.details)["required"] == level.name.lower()


# ---------------------------------------------------------------------------
# Bad input


BAD_NAMES = [
    ("", "役職名を40文字以内"),
    ("　 ", "役職名を40文字以内"),
    ("係" * 41, "役職名を40文字以内"),
    ("係\x00", "使用できない文字"),
    ("係\n長", "使用できない文字"),
    ("\x1b[31m係", "使用できない文字"),
    ("団長", "階級名"),
    ("ポンプ係", "既にあります"),
]


@pytest.mark.parametrize(("name", "message"), BAD_NAMES)
def test_create_rejects_bad_names(tenant, engine, name, message):
    make_role(tenant, "ポンプ係")
    before = roles.list_roles(admin(tenant))
    start = last_audit_seq(engine, tenant)
    with pytest.raises(ValidationError) as err:
        roles.create_role(editor(tenant), name=name, rank_id=rank_id(tenant))
    assert message in err.value.errors["name"]
    assert roles.list_roles(admin(tenant)) == before
    assert audit_events(engine, tenant, after_seq=start) == []


@pytest.mark.parametrize(("name", "message"), BAD_NAMES)
def test_rename_rejects_bad_names(tenant, name, message):
    make_role(tenant, "ポンプ係")
    role = make_role(tenant, "機関員")
    with pytest.raises(ValidationError) as err:
        roles.rename_role(editor(tenant), role, name=name)
    assert message in err.value.errors["name"]
    assert info(tenant, role).name == "機関員"


def test_create_requires_a_rank(tenant):
    with pytest.raises(ValidationError) as err:
        roles.create_role(editor(tenant), name="係", rank_id=uuid.uuid4())
    assert set(err.value.errors) == {"rank_id"}


def test_a_role_cannot_succeed_itself(tenant):
    role = make_role(tenant)
    make_member(tenant, role_ids=[role])
    with pytest.raises(ValidationError) as err:
        roles.delete_role(admin(tenant), role, reassign_to=role)
    assert set(err.value.errors) == {"reassign_to"}
