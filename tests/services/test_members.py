"""Roster (団員名簿) services: happy path, other tenant, not permitted, bad input, audit trail,
optimistic concurrency, session revocation, search and sort."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from auth import sessions
from auth.actor import Actor
from models import AuditEvent, MemberPublic, MemberUpdate
from models.enums import AuditCategory, Function, Level, MemberStatus
from services import members, roles
from services import validation as v
from services.crypto import AUDIT, TenantCipher
from services.db import unit_of_work
from services.errors import Conflict, NotFound, PermissionDenied, ValidationError
from services.members import MemberFilter
from tests.factories import (
    actor_with,
    admin,
    audit_events,
    last_audit_seq,
    make_member,
    make_tenant,
    member_data,
    open_member_session,
    rank_id,
)

OPERATION = str(AuditCategory.OPERATION)
AUTH = str(AuditCategory.AUTH)


class AuditWatch:
    """The audit events a tenant gains after the watch starts."""

    def __init__(self, engine, tenant_id: uuid.UUID) -> None:
        self.engine, self.tenant_id = engine, tenant_id
        self.start = last_audit_seq(engine, tenant_id)

    def new(self, category: str | None = None) -> list[AuditEvent]:
        return audit_events(self.engine, self.tenant_id, after_seq=self.start, category=category)


@pytest.fixture
def tenant(engine) -> uuid.UUID:
    return make_tenant()


@pytest.fixture
def watch(engine) -> Callable[[uuid.UUID], AuditWatch]:
    return lambda tenant_id: AuditWatch(engine, tenant_id)


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
    new = audit.new()
    assert [(e.category, e.action) for e in new] == [(OPERATION, action)]
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
    actor = actor_with(tenant, {Function.ROSTER: Level.EDIT})
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
    actor = actor_with(tenant, {Function.ROSTER: Level.EDIT})
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
}


def _subject(tenant: uuid.UUID, requirement: Requirement) -> MemberPublic:
    member = make_member(tenant)
    if requirement.suspended_first:
        member = members.suspend_member(admin(tenant), member.id)
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
    assert audit.new(AUTH) == []


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
