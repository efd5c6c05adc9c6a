"""Roster (団員名簿) services: happy path, other tenant, not permitted, bad input, audit trail,
optimistic concurrency, session revocation, search and sort."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from core.access import Need, allows
from core.actor import Actor
from models import AuditEvent, MemberLine, MemberPublic, MemberUpdate
from models.enums import AuditCategory, Function, Level, MemberStatus
from services import members, permissions, roles
from services import validation as v
from services.crypto import AUDIT, TenantCipher
from services.db import unit_of_work
from services.errors import Conflict, NotFound, PermissionDenied, ValidationError
from services.members import MemberFilter
from services.permissions import CellChange, Grant
from services.signin import sessions
from tests.factories import (
    actor_with,
    admin,
    give_login,
    make_member,
    make_tenant,
    member_data,
    open_member_session,
    plain_members_hold_nothing,
    rank_id,
)
from tests.services.conftest import AuditWatch

OPERATION = str(AuditCategory.OPERATION)
AUTH = str(AuditCategory.AUTH)


@pytest.fixture(autouse=True)
def _plain_members_hold_nothing(tenant):
    """The synthetic actors here hold only what each test is about (see the factory)."""
    plain_members_hold_nothing(tenant)


def make_role(tenant_id: uuid.UUID, name: str = "庶務", rank: str = "団員") -> uuid.UUID:
    return roles.create_role(admin(tenant_id), name=name, rank_id=rank_id(tenant_id, rank))


def current(tenant_id: uuid.UUID, member_id: uuid.UUID) -> MemberPublic:
    return members.get_member(admin(tenant_id), member_id)


def personal_values(member: MemberPublic) -> list[str]:
    values = [member.name, member.kana, member.phone, member.email, member.address]
    values.append(v.phone_digits(member.phone))
    return [value for value in values if value]


def decrypted_details(tenant_id: uuid.UUID, event: AuditEvent) -> dict:
    with unit_of_work(tenant_id) as db:
        text = TenantCipher(db, tenant_id, purpose=AUDIT).decrypt(
            event.details_enc, field="audit_event.details", row_id=event.id
        )
    return json.loads(text)


def assert_one_operation_event(
    audit: AuditWatch, action: str, member: MemberPublic, *, personal: bool
) -> AuditEvent:
    """One event for the write: 'auth' for suspension and reactivation, else 'operation'."""
    new = audit.new()
    category = AUTH if action in members.ACCOUNT_ACTIONS else OPERATION
    assert [(e.category, e.action) for e in new] == [(category, action)]
    event = new[0]
    assert event.target_type == "member"
    assert event.target_id == str(member.id)
    for value in personal_values(member):
        assert value not in event.details
    if personal:
        assert event.details_enc
        assert member.name not in event.details_enc
        assert decrypted_details(audit.tenant_id, event)["after"]["name"] == member.name
    return event


# ---------------------------------------------------------------------------
# Happy paths (with exactly the required permission level, not the system admin)
# ---------------------------------------------------------------------------


def test_create_member(tenant, watch):
    role = make_role(tenant)
    audit = watch(tenant)
    # what the 庶務 role gives: an editor may hand out only what he holds himself
    actor = actor_with(tenant, permissions.DEFAULT_ROLE_MATRIX["庶務"])
    data = member_data(
        tenant,
        member_code="Ｔ－１２３",
        name="ｼｮｳﾎﾞｳ 髙橋　①子",
        kana="たかはし　いちこ",
        phone="０９０（１２３４）５６７８",
        email="ichiko@example.jp",
        address="長野県デモ市1-2-3",
        role_ids=[role],
    )
    created = members.create_member(actor, data=data)
    assert created.member_code == "T-123"
    assert created.name == "ショウボウ 髙橋　①子"
    assert created.kana == "タカハシ　イチコ"
    assert created.phone == "090-1234-5678"
    assert created.role_ids == [role]
    assert created.role_names == ["庶務"]
    assert created.rank_name == "団員"
    assert created.status == MemberStatus.ACTIVE
    assert created.version == 1
    assert current(tenant, created.id) == created
    assert_one_operation_event(audit, "member.create", created, personal=True)


def test_list_members(tenant):
    first, second = make_member(tenant), make_member(tenant)
    listed = members.list_members(actor_with(tenant, {Function.ROSTER: Level.VIEW}))
    assert {m.id for m in listed} == {first.id, second.id}
    assert {m.name for m in listed} == {first.name, second.name}


def test_get_member(tenant):
    created = make_member(tenant, name="消防　花子", email="hanako@example.jp")
    got = members.get_member(actor_with(tenant, {Function.ROSTER: Level.VIEW}), created.id)
    assert got == created
    assert (got.name, got.email) == ("消防　花子", "hanako@example.jp")


def test_update_member(tenant, watch):
    role = make_role(tenant)
    member = make_member(tenant)
    audit = watch(tenant)
    # an editor may hand out only what he holds himself: here what 班長 and 庶務 give
    given = (permissions.DEFAULT_RANK_MATRIX["班長"], permissions.DEFAULT_ROLE_MATRIX["庶務"])
    actor = actor_with(tenant, {f: max(g.get(f, Level.NONE) for g in given) for f in Function})
    updated = members.update_member(
        actor,
        member.id,
        data=MemberUpdate(
            name="改名　次郎",
            phone="0312345678",
            rank_id=rank_id(tenant, "班長"),
            role_ids=[role],
        ),
        expected_version=member.version,
    )
    assert updated.name == "改名　次郎"
    assert updated.phone == "0312345678"
    assert updated.rank_name == "班長"
    assert updated.role_names == ["庶務"]
    assert updated.email == member.email  # fields not given stay as they were
    assert updated.version == member.version + 1
    assert current(tenant, member.id) == updated
    event = assert_one_operation_event(audit, "member.update", updated, personal=True)
    for value in personal_values(member):
        assert value not in event.details
    details = json.loads(event.details)
    assert {"name", "phone", "rank_id", "role_ids"} <= set(details["changed"])
    assert "email" not in details["changed"]
    assert decrypted_details(tenant, event)["before"]["name"] == member.name


def test_update_can_remove_roles(tenant):
    role = make_role(tenant)
    member = make_member(tenant, role_ids=[role])
    updated = members.update_member(
        admin(tenant), member.id, data=MemberUpdate(role_ids=[]), expected_version=member.version
    )
    assert updated.role_ids == []
    assert current(tenant, member.id).role_ids == []


@pytest.mark.parametrize(
    ("service", "action", "function", "status"),
    [
        (members.suspend_member, "member.suspend", Function.MEMBER_ACCOUNTS, "suspended"),
        (members.retire_member, "member.retire", Function.ROSTER, "retired"),
    ],
)
def test_suspend_and_retire(tenant, watch, service, action, function, status):
    member = make_member(tenant)
    audit = watch(tenant)
    changed = service(actor_with(tenant, {function: Level.EDIT}), member.id)
    assert changed.status == status
    assert changed.version == member.version + 1
    assert current(tenant, member.id).status == status
    event = assert_one_operation_event(audit, action, changed, personal=False)
    details = json.loads(event.details)
    assert details["before"] == {"status": "active"}
    assert details["after"] == {"status": status}


def test_reactivate_member(tenant, watch):
    member = make_member(tenant)
    members.suspend_member(admin(tenant), member.id)
    audit = watch(tenant)
    actor = actor_with(tenant, {Function.MEMBER_ACCOUNTS: Level.EDIT})
    changed = members.reactivate_member(actor, member.id)
    assert changed.status == MemberStatus.ACTIVE
    assert current(tenant, member.id).status == MemberStatus.ACTIVE
    assert_one_operation_event(audit, "member.reactivate", changed, personal=False)


@pytest.mark.parametrize(
    ("service", "status"),
    [
        (members.suspend_member, MemberStatus.SUSPENDED),
        (members.retire_member, MemberStatus.RETIRED),
    ],
)
def test_changing_to_the_same_status_is_refused(tenant, watch, service, status):
    member = make_member(tenant)
    service(admin(tenant), member.id)
    audit = watch(tenant)
    with pytest.raises(ValidationError) as err:
        service(admin(tenant), member.id)
    assert set(err.value.errors) == {"status"}
    assert current(tenant, member.id).status == status
    assert audit.new() == []


def test_reactivating_an_active_member_is_refused(tenant, watch):
    member = make_member(tenant)
    audit = watch(tenant)
    with pytest.raises(ValidationError) as err:
        members.reactivate_member(admin(tenant), member.id)
    assert set(err.value.errors) == {"status"}
    assert audit.new() == []


# ---------------------------------------------------------------------------
# Another tenant: invisible and unchangeable
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Foreign:
    tenant_id: uuid.UUID
    member: MemberPublic


@pytest.fixture
def foreign(engine) -> Foreign:
    """A member of some other brigade."""
    other = make_tenant()
    return Foreign(other, make_member(other, name="他団　秘密", kana="タダン　ヒミツ"))


ACT_ON_MEMBER: dict[str, Callable[[Actor, uuid.UUID, int], object]] = {
    "get_member": lambda actor, mid, _: members.get_member(actor, mid),
    "update_member": lambda actor, mid, version: members.update_member(
        actor, mid, data=MemberUpdate(affiliation="乗っ取り"), expected_version=version
    ),
    "suspend_member": lambda actor, mid, _: members.suspend_member(actor, mid),
    "reactivate_member": lambda actor, mid, _: members.reactivate_member(actor, mid),
    "retire_member": lambda actor, mid, _: members.retire_member(actor, mid),
    "readmit_member": lambda actor, mid, _: members.readmit_member(actor, mid),
    "bulk_suspend": lambda actor, mid, _: members.bulk_suspend(actor, [mid]),
    "bulk_set_affiliation": lambda actor, mid, _: members.bulk_set_affiliation(
        actor, [mid], affiliation="乗っ取り"
    ),
}


def test_list_members_never_shows_another_tenant(tenant, foreign):
    own = make_member(tenant)
    assert [m.id for m in members.list_members(admin(tenant))] == [own.id]
    for filters in (
        MemberFilter(text="他団"),
        MemberFilter(text=foreign.member.member_code),
        MemberFilter(rank_ids=(foreign.member.rank_id,)),
    ):
        assert members.list_members(admin(tenant), filters) == []
    assert [m.id for m in members.list_members(admin(foreign.tenant_id))] == [foreign.member.id]


@pytest.mark.parametrize("name", sorted(ACT_ON_MEMBER))
def test_another_tenants_member_is_not_found(tenant, foreign, watch, name):
    if name == "reactivate_member":
        members.suspend_member(admin(foreign.tenant_id), foreign.member.id)
    if name == "readmit_member":
        members.retire_member(admin(foreign.tenant_id), foreign.member.id)
    before = current(foreign.tenant_id, foreign.member.id)
    audits = watch(tenant), watch(foreign.tenant_id)
    act, stranger = ACT_ON_MEMBER[name], admin(tenant)
    with pytest.raises(NotFound) as theirs:
        act(stranger, before.id, before.version)
    with pytest.raises(NotFound) as nowhere:
        act(stranger, uuid.uuid4(), before.version)
    assert str(theirs.value) == str(nowhere.value)  # no existence oracle
    assert current(foreign.tenant_id, foreign.member.id) == before
    assert [a.new() for a in audits] == [[], []]


def test_member_codes_are_per_tenant(tenant, foreign, watch):
    audit = watch(foreign.tenant_id)
    own = make_member(tenant, member_code=foreign.member.member_code)
    assert own.member_code == foreign.member.member_code
    assert current(foreign.tenant_id, foreign.member.id) == foreign.member
    assert audit.new() == []


# ---------------------------------------------------------------------------
# Not permitted: one level below the requirement is denied and the denial is audited
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Requirement:
    function: Function
    level: Level
    call: Callable[[Actor, MemberPublic], object]
    suspended_first: bool = False
    retired_first: bool = False


REQUIREMENTS: dict[str, Requirement] = {
    "list_members": Requirement(Function.ROSTER, Level.VIEW, lambda a, m: members.list_members(a)),
    "get_member": Requirement(
        Function.ROSTER, Level.VIEW, lambda a, m: members.get_member(a, m.id)
    ),
    "create_member": Requirement(
        Function.ROSTER,
        Level.EDIT,
        lambda a, m: members.create_member(a, data=member_data(a.tenant_id)),
    ),
    "update_member": Requirement(
        Function.ROSTER,
        Level.EDIT,
        lambda a, m: members.update_member(
            a, m.id, data=MemberUpdate(affiliation="第9分団"), expected_version=m.version
        ),
    ),
    "suspend_member": Requirement(
        Function.MEMBER_ACCOUNTS, Level.EDIT, lambda a, m: members.suspend_member(a, m.id)
    ),
    "reactivate_member": Requirement(
        Function.MEMBER_ACCOUNTS,
        Level.EDIT,
        lambda a, m: members.reactivate_member(a, m.id),
        suspended_first=True,
    ),
    "retire_member": Requirement(
        Function.ROSTER, Level.EDIT, lambda a, m: members.retire_member(a, m.id)
    ),
    "readmit_member": Requirement(
        Function.ROSTER,
        Level.EDIT,
        lambda a, m: members.readmit_member(a, m.id),
        retired_first=True,
    ),
    "bulk_suspend": Requirement(
        Function.MEMBER_ACCOUNTS, Level.EDIT, lambda a, m: members.bulk_suspend(a, [m.id])
    ),
    "bulk_set_affiliation": Requirement(
        Function.ROSTER,
        Level.EDIT,
        lambda a, m: members.bulk_set_affiliation(a, [m.id], affiliation="第9分団"),
    ),
    "rename_affiliation": Requirement(
        Function.ROSTER,
        Level.EDIT,
        lambda a, m: members.rename_affiliation(a, old=m.affiliation, new="第9分団"),
    ),
    "list_affiliations": Requirement(
        Function.ROSTER, Level.VIEW, lambda a, m: members.list_affiliations(a)
    ),
    "line_linked_ids": Requirement(
        Function.ROSTER, Level.VIEW, lambda a, m: members.line_linked_ids(a)
    ),
    "line_reach": Requirement(Function.ROSTER, Level.VIEW, lambda a, m: members.line_reach(a)),
    "edit_scope": Requirement(Function.ROSTER, Level.VIEW, lambda a, m: members.edit_scope(a)),
}


def _subject(tenant: uuid.UUID, requirement: Requirement) -> MemberPublic:
    member = make_member(tenant)
    if requirement.suspended_first:
        member = members.suspend_member(admin(tenant), member.id)
    if requirement.retired_first:
        member = members.retire_member(admin(tenant), member.id)
    return member


def _everything_but(function: Function, level: Level) -> dict[Function, Level]:
    """Full rights everywhere except `function`, so only that function's level decides."""
    return {f: Level.ADMIN for f in Function} | {function: level}


@pytest.mark.parametrize("name", sorted(REQUIREMENTS))
def test_not_permitted(tenant, watch, name):
    requirement = REQUIREMENTS[name]
    member = _subject(tenant, requirement)
    roster = members.list_members(admin(tenant))
    audit = watch(tenant)
    actor = actor_with(tenant, _everything_but(requirement.function, Level(requirement.level - 1)))
    with pytest.raises(PermissionDenied):
        requirement.call(actor, member)
    new = audit.new()
    assert [(e.category, e.action, e.outcome) for e in new] == [
        (AUTH, "permission_denied", "denied")
    ]
    details = json.loads(new[0].details)
    assert details["function"] == str(requirement.function)
    assert details["required"] == requirement.level.name.lower()
    assert members.list_members(admin(tenant)) == roster


@pytest.mark.parametrize("name", sorted(REQUIREMENTS))
def test_required_level_is_enough(tenant, watch, name):
    requirement = REQUIREMENTS[name]
    member = _subject(tenant, requirement)
    audit = watch(tenant)
    requirement.call(actor_with(tenant, {requirement.function: requirement.level}), member)
    # suspension and reactivation are themselves auth events; what must not appear is a denial
    assert "permission_denied" not in [e.action for e in audit.new(AUTH)]


def test_actor_without_tenant_is_denied(engine):
    actor = actor_with(None, {f: Level.ADMIN for f in Function})  # type: ignore[arg-type]
    with pytest.raises(PermissionDenied):
        members.list_members(actor)


# ---------------------------------------------------------------------------
# Bad input: ValidationError naming the field; nothing written, nothing audited
# ---------------------------------------------------------------------------


BAD_INPUT: list[tuple[str, dict[str, object]]] = [
    ("member_code", {"member_code": ""}),
    ("member_code", {"member_code": "   "}),
    ("member_code", {"member_code": "T 001"}),
    ("member_code", {"member_code": "団員001"}),
    ("member_code", {"member_code": "T@001"}),
    ("member_code", {"member_code": "T" * 21}),
    ("name", {"name": ""}),
    ("name", {"name": "　 "}),
    ("name", {"name": "長" * 51}),
    ("kana", {"kana": "Tanaka"}),
    ("kana", {"kana": "田中　太郎"}),
    ("phone", {"phone": "12345"}),
    ("phone", {"phone": "+1 555 123 4567"}),
    ("phone", {"phone": "090-1234-567"}),
    ("phone", {"phone": "03-1234-56789"}),
    ("phone", {"phone": "0٩0١٢٣٤٥٦٧٨"}),
    ("phone", {"phone": "電話なし"}),
    ("email", {"email": "taro@"}),
    ("email", {"email": "taro example.jp"}),
    ("email", {"email": "taro@example"}),
    ("email", {"email": "taro@@example.jp"}),
    ("affiliation", {"affiliation": "第1\x00分団"}),  # PostgreSQL would raise DataError
    ("affiliation", {"affiliation": "第1分団\n第2部"}),
    ("affiliation", {"affiliation": "\x1b[2J第1分団"}),
    ("affiliation", {"affiliation": "所" * 101}),
    ("notes", {"notes": "メモ\x00"}),
    ("notes", {"notes": "ベル\x07"}),
    ("notes", {"notes": "行\u2028区切り"}),
]


@pytest.mark.parametrize(("field", "overrides"), BAD_INPUT)
def test_create_rejects_bad_input(tenant, watch, field, overrides):
    audit = watch(tenant)
    with pytest.raises(ValidationError) as err:
        members.create_member(admin(tenant), data=member_data(tenant, **overrides))
    assert set(err.value.errors) == {field}
    assert members.list_members(admin(tenant)) == []
    assert audit.new() == []


@pytest.mark.parametrize(("field", "overrides"), BAD_INPUT)
def test_update_rejects_bad_input(tenant, watch, field, overrides):
    member = make_member(tenant)
    audit = watch(tenant)
    with pytest.raises(ValidationError) as err:
        members.update_member(
            admin(tenant),
            member.id,
            data=MemberUpdate(**overrides),
            expected_version=member.version,
        )
    assert set(err.value.errors) == {field}
    assert current(tenant, member.id) == member
    assert audit.new() == []


def test_duplicate_member_code_is_rejected(tenant, watch):
    first, second = make_member(tenant), make_member(tenant)
    audit = watch(tenant)
    with pytest.raises(ValidationError) as err:
        make_member(tenant, member_code=first.member_code)
    assert set(err.value.errors) == {"member_code"}
    with pytest.raises(ValidationError) as err:
        members.update_member(
            admin(tenant),
            second.id,
            data=MemberUpdate(member_code=f"  {first.member_code}  "),
            expected_version=second.version,
        )
    assert set(err.value.errors) == {"member_code"}
    assert current(tenant, second.id) == second
    assert audit.new() == []


def test_keeping_ones_own_code_is_not_a_duplicate(tenant):
    member = make_member(tenant)
    updated = members.update_member(
        admin(tenant),
        member.id,
        data=MemberUpdate(member_code=member.member_code, notes="変更"),
        expected_version=member.version,
    )
    assert updated.notes == "変更"


def test_rank_and_role_of_another_tenant_are_rejected(tenant, foreign, watch):
    their_rank = rank_id(foreign.tenant_id)
    their_role = make_role(foreign.tenant_id)
    audit = watch(tenant)
    with pytest.raises(ValidationError) as err:
        make_member(tenant, rank_id=their_rank)
    assert set(err.value.errors) == {"rank_id"}
    with pytest.raises(ValidationError) as err:
        make_member(tenant, role_ids=[their_role])
    assert set(err.value.errors) == {"role_ids"}
    member = make_member(tenant)
    audit = watch(tenant)
    for data, field in (
        (MemberUpdate(rank_id=their_rank), "rank_id"),
        (MemberUpdate(role_ids=[their_role]), "role_ids"),
    ):
        with pytest.raises(ValidationError) as err:
            members.update_member(admin(tenant), member.id, data=data, expected_version=1)
        assert set(err.value.errors) == {field}
    assert current(tenant, member.id) == member
    assert audit.new() == []


def test_all_field_errors_are_reported_together(tenant):
    with pytest.raises(ValidationError) as err:
        make_member(tenant, member_code="", name="", kana="abc", phone="1", email="x")
    assert set(err.value.errors) == {"member_code", "name", "kana", "phone", "email"}
    assert "abc" not in err.value.errors["kana"]


# ---------------------------------------------------------------------------
# Optimistic concurrency
# ---------------------------------------------------------------------------


def test_stale_version_conflicts_and_changes_nothing(tenant, watch):
    member = make_member(tenant)
    first = members.update_member(
        admin(tenant), member.id, data=MemberUpdate(notes="先の更新"), expected_version=1
    )
    audit = watch(tenant)
    for stale in (member.version, first.version + 1):
        with pytest.raises(Conflict):
            members.update_member(
                admin(tenant),
                member.id,
                data=MemberUpdate(name="後の更新", notes="後の更新"),
                expected_version=stale,
            )
    assert current(tenant, member.id) == first
    assert audit.new() == []


# ---------------------------------------------------------------------------
# Suspension and retirement end sessions at once
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("service", [members.suspend_member, members.retire_member])
def test_suspension_revokes_open_sessions(tenant, service):
    member, bystander = make_member(tenant), make_member(tenant)
    tokens = [open_member_session(tenant, member.id) for _ in range(2)]
    kept = open_member_session(tenant, bystander.id)
    assert all(sessions.resolve(token) is not None for token in tokens)
    service(admin(tenant), member.id)
    assert [sessions.resolve(token) for token in tokens] == [None, None]
    still = sessions.resolve(kept)
    assert still is not None and still.member_id == bystander.id


def test_reactivation_does_not_revive_old_sessions(tenant):
    member = make_member(tenant)
    token = open_member_session(tenant, member.id)
    members.suspend_member(admin(tenant), member.id)
    members.reactivate_member(admin(tenant), member.id)
    assert sessions.resolve(token) is None
    fresh = open_member_session(tenant, member.id)
    assert sessions.resolve(fresh) is not None


def test_suspend_records_how_many_sessions_ended(tenant, watch):
    member = make_member(tenant)
    for _ in range(3):
        open_member_session(tenant, member.id)
    audit = watch(tenant)
    members.suspend_member(admin(tenant), member.id)
    (event,) = audit.new()
    assert json.loads(event.details)["sessions_revoked"] == 3


# ---------------------------------------------------------------------------
# Search, filters and sorting
# ---------------------------------------------------------------------------


@pytest.fixture
def roster(tenant) -> dict[str, MemberPublic]:
    clerk = make_role(tenant, "庶務")
    made = {
        "yamada": make_member(
            tenant, name="山田　花子", kana="ヤマダ　ハナコ", affiliation="第1分団 第1部"
        ),
        "takahashi": make_member(
            tenant,
            name="髙橋　一郎",
            kana="タカハシ　イチロウ",
            rank_id=rank_id(tenant, "班長"),
            affiliation="第2分団",
            role_ids=[clerk],
        ),
        "sato": make_member(
            tenant, name="佐藤　次郎", kana="サトウ　ジロウ", affiliation="第2分団 第1部"
        ),
        "abe": make_member(tenant, name="阿部　三郎", kana="", affiliation="団本部"),
    }
    made["sato"] = members.suspend_member(admin(tenant), made["sato"].id)
    return made


def _search(tenant: uuid.UUID, roster: dict[str, MemberPublic], **filters) -> list[str]:
    by_id = {m.id: key for key, m in roster.items()}
    return [by_id[m.id] for m in members.list_members(admin(tenant), MemberFilter(**filters))]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("やまだ", ["yamada"]),  # hiragana finds the katakana reading
        ("ヤマダ", ["yamada"]),
        ("ﾀｶﾊｼ", ["takahashi"]),  # half-width katakana
        ("髙橋", ["takahashi"]),
        ("山田 花子", ["yamada"]),  # spaces are ignored
        ("じろう", ["sato"]),
        ("存在しない", []),
    ],
)
def test_search_by_name_and_reading(tenant, roster, text, expected):
    assert _search(tenant, roster, text=text) == expected


def test_search_by_member_code(tenant, roster):
    code = roster["abe"].member_code
    assert _search(tenant, roster, text=code) == ["abe"]
    assert _search(tenant, roster, text=code.lower()) == ["abe"]


def test_filters(tenant, roster):
    assert _search(tenant, roster, rank_ids=(rank_id(tenant, "班長"),)) == ["takahashi"]
    assert _search(tenant, roster, statuses=("suspended",)) == ["sato"]
    assert _search(tenant, roster, statuses=("active",)) == ["takahashi", "yamada", "abe"]
    assert _search(tenant, roster, affiliation="第2分団") == ["sato", "takahashi"]
    clerk = roster["takahashi"].role_ids[0]
    assert _search(tenant, roster, role_ids=(clerk,)) == ["takahashi"]
    assert _search(tenant, roster, text="たかはし", statuses=("suspended",)) == []


def test_sorted_by_reading_with_unknown_readings_last(tenant, roster):
    assert _search(tenant, roster) == ["sato", "takahashi", "yamada", "abe"]


def test_notes_keep_newlines_and_tabs(tenant):
    member = make_member(tenant, notes="1行目\n\t2行目\r\n3行目")
    assert member.notes == "1行目\n\t2行目\r\n3行目"


def test_control_character_messages_are_japanese(tenant):
    with pytest.raises(ValidationError) as err:
        make_member(tenant, affiliation="第1\x00分団", notes="\x00")
    assert err.value.errors == {
        "affiliation": "所属に使用できない文字（制御文字など）が含まれています。",
        "notes": "備考に使用できない文字（制御文字など）が含まれています。",
    }


# ---------------------------------------------------------------------------
# Retired members: reactivation is refused, readmission is a roster change
# ---------------------------------------------------------------------------


def test_a_retired_member_cannot_be_reactivated(tenant, watch):
    member = members.retire_member(admin(tenant), make_member(tenant).id)
    audit = watch(tenant)
    with pytest.raises(ValidationError) as err:
        members.reactivate_member(
            actor_with(tenant, {Function.MEMBER_ACCOUNTS: Level.EDIT}), member.id
        )
    assert "再入団" in err.value.errors["status"]
    assert current(tenant, member.id).status == MemberStatus.RETIRED
    assert audit.new() == []


def test_readmit_member(tenant, watch):
    member = members.retire_member(admin(tenant), make_member(tenant).id)
    audit = watch(tenant)
    back = members.readmit_member(actor_with(tenant, {Function.ROSTER: Level.EDIT}), member.id)
    assert back.status == MemberStatus.ACTIVE
    assert back.version == member.version + 1
    event = assert_one_operation_event(audit, "member.readmit", back, personal=False)
    assert json.loads(event.details)["before"] == {"status": "retired"}


@pytest.mark.parametrize("suspended", [False, True])
def test_only_retired_members_are_readmitted(tenant, suspended):
    member = make_member(tenant)
    if suspended:
        members.suspend_member(admin(tenant), member.id)
    with pytest.raises(ValidationError) as err:
        members.readmit_member(admin(tenant), member.id)
    assert set(err.value.errors) == {"status"}


def test_readmission_needs_roster_edit_not_account_rights(tenant):
    member = members.retire_member(admin(tenant), make_member(tenant).id)
    with pytest.raises(PermissionDenied):
        members.readmit_member(
            actor_with(tenant, {Function.MEMBER_ACCOUNTS: Level.EDIT, Function.ROSTER: Level.VIEW}),
            member.id,
        )
    assert current(tenant, member.id).status == MemberStatus.RETIRED


# ---------------------------------------------------------------------------
# Bulk actions
# ---------------------------------------------------------------------------


def test_bulk_set_affiliation(tenant, watch):
    a, b = make_member(tenant, affiliation="第1分団"), make_member(tenant, affiliation="第2分団")
    same = make_member(tenant, affiliation="第3分団")
    audit = watch(tenant)
    actor = actor_with(tenant, {Function.ROSTER: Level.EDIT})
    changed = members.bulk_set_affiliation(
        actor, [a.id, b.id, same.id, a.id], affiliation="第３分団"
    )
    assert changed == 2
    after = {m.id: m for m in members.list_members(admin(tenant))}
    assert {after[i].affiliation for i in (a.id, b.id, same.id)} == {"第3分団"}
    assert after[a.id].version == a.version + 1
    assert after[same.id].version == same.version
    events = audit.new()
    assert [(e.action, e.target_id) for e in events] == [
        ("member.update", str(a.id)),
        ("member.update", str(b.id)),
    ]
    assert json.loads(events[1].details)["before"] == {"affiliation": "第2分団"}


def test_bulk_actions_are_all_or_nothing(tenant, foreign, watch):
    own = make_member(tenant)
    audit = watch(tenant)
    for call in (
        lambda ids: members.bulk_set_affiliation(admin(tenant), ids, affiliation="第9分団"),
        lambda ids: members.bulk_suspend(admin(tenant), ids),
    ):
        with pytest.raises(NotFound):
            call([own.id, foreign.member.id])
        with pytest.raises(ValidationError) as err:
            call([])
        assert set(err.value.errors) == {"member_ids"}
    assert current(tenant, own.id) == own
    assert current(foreign.tenant_id, foreign.member.id) == foreign.member
    assert audit.new() == []


@pytest.mark.parametrize("label", ["", "　", "第1\x00分団", "所" * 101])
def test_bulk_set_affiliation_rejects_bad_labels(tenant, label):
    member = make_member(tenant)
    with pytest.raises(ValidationError) as err:
        members.bulk_set_affiliation(admin(tenant), [member.id], affiliation=label)
    assert set(err.value.errors) == {"affiliation"}
    assert current(tenant, member.id) == member


def test_bulk_suspend(tenant, watch):
    active, other = make_member(tenant), make_member(tenant)
    already = members.suspend_member(admin(tenant), make_member(tenant).id)
    retired = members.retire_member(admin(tenant), make_member(tenant).id)
    token = open_member_session(tenant, active.id)
    audit = watch(tenant)
    actor = actor_with(tenant, {Function.MEMBER_ACCOUNTS: Level.EDIT})
    assert members.bulk_suspend(actor, [active.id, other.id, already.id, retired.id]) == 2
    assert current(tenant, retired.id).status == MemberStatus.RETIRED
    assert current(tenant, already.id).version == already.version
    assert {current(tenant, i).status for i in (active.id, other.id)} == {"suspended"}
    assert sessions.resolve(token) is None
    assert [(e.action, e.target_id) for e in audit.new()] == [
        ("member.suspend", str(active.id)),
        ("member.suspend", str(other.id)),
    ]


# ---------------------------------------------------------------------------
# 所属 labels
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("affiliation", "unit", "inside"),
    [
        ("第1分団", "第1分団", True),
        ("第1分団 第2部", "第1分団", True),
        ("第1分団第2部", "第1分団", True),
        ("第１分団", "第1分団", True),
        ("第10分団", "第1分団", False),
        ("第10分団", "第1", False),
        ("第1", "第1分団", False),
        ("", "第1分団", False),
        ("第1分団", "", False),
    ],
)
def test_in_unit(affiliation, unit, inside):
    assert members.in_unit(affiliation, unit) is inside


def test_list_affiliations(tenant, foreign):
    make_member(tenant, affiliation="第2分団")
    make_member(tenant, affiliation="第1分団 第1部")
    gone = make_member(tenant, affiliation="第2分団")
    members.retire_member(admin(tenant), gone.id)
    make_member(tenant, affiliation="")
    listed = members.list_affiliations(actor_with(tenant, {Function.ROSTER: Level.VIEW}))
    assert [(a.label, a.members, a.active) for a in listed] == [
        ("第1分団 第1部", 1, 1),
        ("第2分団", 2, 1),
    ]


def test_rename_affiliation(tenant, foreign, watch):
    exact = make_member(tenant, affiliation="第1分団")
    below = make_member(tenant, affiliation="第1分団 第2部")
    apart = make_member(tenant, affiliation="第10分団")
    members.bulk_set_affiliation(
        admin(foreign.tenant_id), [foreign.member.id], affiliation="第1分団"
    )
    audit = watch(tenant)
    actor = actor_with(tenant, {Function.ROSTER: Level.EDIT})
    assert members.rename_affiliation(actor, old="第1分団", new="第一分団") == 1
    assert current(tenant, exact.id).affiliation == "第一分団"
    assert current(tenant, below.id).affiliation == "第1分団 第2部"
    assert current(tenant, exact.id).version == exact.version + 1
    assert (
        members.rename_affiliation(actor, old="第1分団", new="第一分団", include_sub_units=True)
        == 1
    )
    assert current(tenant, below.id).affiliation == "第一分団 第2部"
    assert current(tenant, apart.id).affiliation == "第10分団"
    assert current(foreign.tenant_id, foreign.member.id).affiliation == "第1分団"
    events = audit.new()
    assert [e.action for e in events] == ["member.affiliation_rename"] * 2
    details = json.loads(events[0].details)
    assert (details["before"], details["after"]) == ("第1分団", "第一分団")
    assert details["member_codes"] == [exact.member_code]


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        ("存在しない分団", "第9分団", "old"),
        ("", "第9分団", "old"),
        ("第1分団", "", "new"),
        ("第1分団", "第9\x00分団", "new"),
        ("第1分団", "所" * 101, "new"),
        ("第1分団", "所" * 99, "new"),  # the sub-label would grow beyond 100
    ],
)
def test_rename_affiliation_rejects_bad_input(tenant, watch, old, new, field):
    make_member(tenant, affiliation="第1分団")
    make_member(tenant, affiliation="第1分団 第2部")
    roster = members.list_members(admin(tenant))
    audit = watch(tenant)
    with pytest.raises(ValidationError) as err:
        members.rename_affiliation(admin(tenant), old=old, new=new, include_sub_units=True)
    assert set(err.value.errors) == {field}
    assert members.list_members(admin(tenant)) == roster
    assert audit.new() == []


def test_another_brigades_labels_are_neither_listed_nor_renamed(tenant, foreign):
    members.bulk_set_affiliation(
        admin(foreign.tenant_id), [foreign.member.id], affiliation="秘密班"
    )
    assert members.list_affiliations(admin(tenant)) == []
    with pytest.raises(ValidationError):
        members.rename_affiliation(admin(tenant), old="秘密班", new="乗っ取り")
    assert current(foreign.tenant_id, foreign.member.id).affiliation == "秘密班"


def test_filter_by_labels_and_line_link(tenant):
    a = make_member(tenant, affiliation="第1分団")
    b = make_member(tenant, affiliation="第1分団 第1部")
    c = make_member(tenant, affiliation="第2分団")
    with unit_of_work(tenant) as db:
        db.add(MemberLine(tenant_id=tenant, member_id=b.id, sub_enc="x", sub_bidx="y"))
        db.commit()
    ids = lambda **f: {m.id for m in members.list_members(admin(tenant), MemberFilter(**f))}  # noqa: E731
    assert ids(affiliations=("第1分団",)) == {a.id}
    assert ids(affiliations=("第1分団", "第2分団")) == {a.id, c.id}
    assert ids(line_linked=True) == {b.id}
    assert ids(line_linked=False) == {a.id, c.id}
    assert members.line_linked_ids(admin(tenant)) == {b.id}
    assert members.line_linked_ids(admin(make_tenant())) == frozenset()
    assert members.line_reach(admin(tenant)) == {b.id: "不明"}  # no follow event yet
    assert members.line_reach(admin(make_tenant())) == {}


# ---------------------------------------------------------------------------
# Editing narrowed to the own 所属
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Narrowed:
    tenant_id: uuid.UUID
    actor: Actor
    inside: MemberPublic
    below: MemberPublic
    outside: MemberPublic


@pytest.fixture
def narrowed(tenant) -> Narrowed:
    """A 班長 whose roster 編集 is narrowed to the own 所属 (第1分団)."""
    hancho = rank_id(tenant, "班長")
    permissions.update_matrix(
        admin(tenant),
        [CellChange("rank", hancho, Function.ROSTER, Grant(Level.EDIT, own_unit=True))],
    )
    leader = make_member(tenant, rank_id=hancho, affiliation="第1分団")
    actor = sessions.resolve(open_member_session(tenant, leader.id))
    assert actor is not None and actor.level(Function.ROSTER) == Level.VIEW
    return Narrowed(
        tenant,
        actor,
        make_member(tenant, affiliation="第1分団"),
        make_member(tenant, affiliation="第1分団 第2部"),
        make_member(tenant, affiliation="第10分団"),
    )


def test_narrowed_editor_sees_everyone_and_edits_inside(narrowed, watch):
    n = narrowed
    scope = members.edit_scope(n.actor)
    assert (scope.whole_brigade, scope.unit) == (False, "第1分団")
    assert {n.inside.id, n.below.id, n.outside.id} <= {m.id for m in members.list_members(n.actor)}
    assert members.get_member(n.actor, n.outside.id).id == n.outside.id
    for target in (n.inside, n.below):
        updated = members.update_member(
            n.actor, target.id, data=MemberUpdate(notes="更新"), expected_version=target.version
        )
        assert updated.notes == "更新"
    created = members.create_member(
        n.actor, data=member_data(n.tenant_id, affiliation="第1分団 第3部")
    )
    assert created.affiliation == "第1分団 第3部"
    assert members.retire_member(n.actor, n.inside.id).status == MemberStatus.RETIRED
    assert members.readmit_member(n.actor, n.inside.id).status == MemberStatus.ACTIVE


@pytest.mark.parametrize(
    "attempt",
    [
        lambda n: members.update_member(
            n.actor, n.outside.id, data=MemberUpdate(notes="x"), expected_version=1
        ),
        lambda n: members.update_member(  # moving a member out of the own 所属
            n.actor, n.inside.id, data=MemberUpdate(affiliation="第2分団"), expected_version=1
        ),
        lambda n: members.create_member(
            n.actor, data=member_data(n.tenant_id, affiliation="第2分団")
        ),
        lambda n: members.retire_member(n.actor, n.outside.id),
        lambda n: members.bulk_set_affiliation(
            n.actor, [n.inside.id, n.outside.id], affiliation="第1分団"
        ),
        lambda n: members.rename_affiliation(n.actor, old="第10分団", new="第1分団 第9部"),
    ],
)
def test_narrowed_editor_is_refused_outside(narrowed, watch, attempt):
    n = narrowed
    roster = members.list_members(admin(n.tenant_id))
    audit = watch(n.tenant_id)
    with pytest.raises(PermissionDenied) as err:
        attempt(n)
    assert "第1分団" in err.value.message
    assert members.list_members(admin(n.tenant_id)) == roster
    (event,) = audit.new()
    assert (event.category, event.action) == (AUTH, "permission_denied")
    assert json.loads(event.details)["required"] == "edit"


def test_narrowed_editor_without_an_own_affiliation_edits_nothing(narrowed):
    n = narrowed
    leader = members.list_members(admin(n.tenant_id), MemberFilter(text=n.actor.label))[0]
    members.update_member(
        admin(n.tenant_id), leader.id, data=MemberUpdate(affiliation=""), expected_version=1
    )
    assert not members.edit_scope(n.actor).allows_editing
    with pytest.raises(PermissionDenied):
        members.update_member(
            n.actor, n.inside.id, data=MemberUpdate(notes="x"), expected_version=1
        )


def test_narrowing_does_not_reach_other_services(narrowed):
    """Elsewhere the narrowed grant is only 閲覧: deny by default."""
    assert not allows(narrowed.actor, Need(Function.ROSTER, Level.EDIT))


# ---------------------------------------------------------------------------
# Giving or taking the right to edit permissions needs 役職・権限 管理
# ---------------------------------------------------------------------------


ROSTER_EDITOR = {Function.ROSTER: Level.EDIT, Function.PERMISSIONS: Level.EDIT}


@pytest.mark.parametrize(
    "attempt",
    [
        lambda t, m: members.update_member(  # promotion to 団長
            actor_with(t, ROSTER_EDITOR),
            m["member"].id,
            data=MemberUpdate(rank_id=rank_id(t, "団長")),
            expected_version=1,
        ),
        lambda t, m: members.update_member(  # demotion of the 団長
            actor_with(t, ROSTER_EDITOR),
            m["chief"].id,
            data=MemberUpdate(rank_id=rank_id(t, "団員")),
            expected_version=1,
        ),
        lambda t, m: members.create_member(
            actor_with(t, ROSTER_EDITOR), data=member_data(t, rank_id=rank_id(t, "副団長"))
        ),
    ],
)
def test_roster_editors_cannot_hand_out_permission_editing(tenant, watch, attempt):
    made = {
        "member": make_member(tenant),
        "chief": make_member(tenant, rank_id=rank_id(tenant, "団長")),
    }
    roster = members.list_members(admin(tenant))
    audit = watch(tenant)
    with pytest.raises(PermissionDenied) as err:
        attempt(tenant, made)
    assert "管理権限" in err.value.message
    assert members.list_members(admin(tenant)) == roster
    (event,) = audit.new()
    assert json.loads(event.details) | {"attempted": ""} == {
        "function": "permissions",
        "required": "admin",
        "attempted": "",
    }


def test_a_roster_editor_cannot_act_on_a_member_above_him(tenant, watch):
    """#15 finding 3: without 管理, a member whose grants exceed the editor's is out of reach
    (edit, rank, retire), and the refusal is recorded."""
    chief = make_member(tenant, rank_id=rank_id(tenant, "団長"))
    editor = actor_with(tenant, ROSTER_EDITOR)
    audit = watch(tenant)
    attempts = [
        lambda: members.update_member(
            editor, chief.id, data=MemberUpdate(phone="0312345678"), expected_version=1
        ),
        lambda: members.retire_member(editor, chief.id),
        lambda: members.bulk_set_affiliation(editor, [chief.id], affiliation="第9分団"),
    ]
    for attempt in attempts:
        with pytest.raises(PermissionDenied) as err:
            attempt()
        assert "権限を持つ団員は操作できません" in err.value.message
    assert current(tenant, chief.id) == chief
    assert [e.action for e in audit.new()] == ["permission_denied"] * 3


def test_permission_administrators_may_promote(tenant):
    member = make_member(tenant)
    actor = actor_with(tenant, ROSTER_EDITOR | {Function.PERMISSIONS: Level.ADMIN})
    promoted = members.update_member(
        actor, member.id, data=MemberUpdate(rank_id=rank_id(tenant, "団長")), expected_version=1
    )
    assert promoted.rank_name == "団長"


# ---------------------------------------------------------------------------
# Lock-out through the roster
# ---------------------------------------------------------------------------


@pytest.fixture
def chiefs(tenant) -> tuple[MemberPublic, Actor, MemberPublic]:
    """The 団長 signed in with a password, and a 副団長 (管理 too) who has no way to sign in."""
    chief = make_member(tenant, rank_id=rank_id(tenant, "団長"))
    give_login(tenant, chief.id)
    deputy = make_member(tenant, rank_id=rank_id(tenant, "副団長"))
    me = sessions.resolve(open_member_session(tenant, chief.id))
    assert me is not None
    return chief, me, deputy


@pytest.mark.parametrize(
    "attempt",
    [
        lambda a, m: members.suspend_member(a, m.id),
        lambda a, m: members.retire_member(a, m.id),
        lambda a, m: members.bulk_suspend(a, [m.id]),
        lambda a, m: members.update_member(
            a, m.id, data=MemberUpdate(rank_id=rank_id(a.tenant_id, "分団長")), expected_version=1
        ),
    ],
)
def test_nobody_suspends_retires_or_demotes_themselves(tenant, chiefs, watch, attempt):
    """#15 finding 5: not even the 団長, and not through a bulk action."""
    chief, me, _ = chiefs
    audit = watch(tenant)
    with pytest.raises(PermissionDenied) as err:
        attempt(me, chief)
    assert "自分自身" in err.value.message
    assert current(tenant, chief.id) == chief
    assert [e.action for e in audit.new()] == ["permission_denied"]


def test_the_lockout_guard_counts_only_administrators_who_can_sign_in(tenant, chiefs):
    """#15 finding 5: a 副団長 with 管理 but no login does not keep the brigade reachable."""
    chief, _, deputy = chiefs
    with pytest.raises(ValidationError) as err:
        members.suspend_member(
            actor_with(
                tenant, {Function.MEMBER_ACCOUNTS: Level.EDIT, Function.PERMISSIONS: Level.ADMIN}
            ),
            chief.id,
        )
    assert set(err.value.errors) == {"lockout"}
    give_login(tenant, deputy.id)
    deputy_actor = sessions.resolve(open_member_session(tenant, deputy.id))
    assert members.suspend_member(deputy_actor, chief.id).status == MemberStatus.SUSPENDED


# ---------------------------------------------------------------------------
# Concurrent edits of the same member: optimistic version check, row locked while compared
# ---------------------------------------------------------------------------


def test_simultaneous_saves_of_the_same_version_conflict(tenant, monkeypatch):
    """Two editors opened version 1. The first save holds the row while the second starts; the
    second must not overwrite it (no lost update), on SQLite and PostgreSQL alike."""
    member = make_member(tenant)
    first_loaded, results = threading.Event(), {}
    validated = members.validated_values

    def slow_validated(tx, raw, member_id=None):
        if threading.current_thread().name == "first":
            first_loaded.set()
            time.sleep(0.5)  # the second editor's save starts meanwhile
        return validated(tx, raw, member_id)

    monkeypatch.setattr(members, "validated_values", slow_validated)

    def save(name: str, notes: str) -> None:
        try:
            results[name] = members.update_member(
                admin(tenant), member.id, data=MemberUpdate(notes=notes), expected_version=1
            )
        except Conflict as exc:
            results[name] = exc

    first = threading.Thread(target=save, args=("first", "先"), name="first")
    second = threading.Thread(target=save, args=("second", "後"), name="second")
    first.start()
    assert first_loaded.wait(10)
    second.start()
    first.join(20)
    second.join(20)
    assert isinstance(results["first"], MemberPublic)
    assert isinstance(results["second"], Conflict)
    saved = current(tenant, member.id)
    assert (saved.notes, saved.version) == ("先", 2)
