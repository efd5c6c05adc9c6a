"""一括発行 (services/registration_batch.py): registration codes for a filtered set of members at
once. The filter (所属, only unlinked, valid codes kept unless asked), the rules of a single code
(LINE Login configured, the ceiling, 管理 for password users), the other brigade, the audit."""

from __future__ import annotations

import json
import uuid

import pytest
from sqlmodel import select

from models import LineRegistration
from models.enums import AuditCategory, Function, Level
from services import members, registration_batch, registrations
from services.db import unit_of_work
from services.errors import Conflict, NotConfigured, PermissionDenied, ValidationError
from tests.factories import (
    actor_with,
    admin,
    give_login,
    link_line,
    make_member,
    make_tenant,
    plain_members_hold_nothing,
    rank_id,
)
from tests.fakes.line_server import configured, new_sub

AUTH = str(AuditCategory.AUTH)
EDITOR = {Function.MEMBER_ACCOUNTS: Level.EDIT}
NO_LINE_LOGIN = {"HIKESHI_LINE_CHANNEL_ID": "", "HIKESHI_LINE_CHANNEL_SECRET": ""}
FIRST, SECOND = "第1分団", "第2分団"

pytestmark = pytest.mark.usefixtures("line_login_channel")


@pytest.fixture(autouse=True)
def _plain_members_hold_nothing(tenant):
    plain_members_hold_nothing(tenant)


def plan(actor, units=(), include_valid=False):
    return registration_batch.plan_batch(actor, units=list(units), include_valid=include_valid)


def issue(actor, units=(), include_valid=False):
    expected = [m.member_id for m in plan(actor, units, include_valid).members]
    return registration_batch.issue_batch(
        actor, units=list(units), include_valid=include_valid, expected=expected
    )


def codes_of(plan_or_issued) -> set[str]:
    rows = getattr(plan_or_issued, "members", plan_or_issued)
    return {row.member_code for row in rows}


def registrations_of(tenant_id: uuid.UUID) -> dict[uuid.UUID, LineRegistration]:
    with unit_of_work(tenant_id) as db:
        query = select(LineRegistration).where(LineRegistration.tenant_id == tenant_id)
        return {r.member_id: r for r in db.exec(query).all()}


def test_issue_batch_for_one_unit(tenant, watch):
    first = [make_member(tenant, affiliation=FIRST) for _ in range(3)]
    make_member(tenant, affiliation=SECOND)
    audit = watch(tenant)

    issued = issue(admin(tenant), [FIRST])

    assert codes_of(issued) == {m.member_code for m in first}
    assert [i.member_code for i in issued] == sorted(m.member_code for m in first)
    assert all(i.affiliation == FIRST and not i.reissued for i in issued)
    assert len({i.user_id for i in issued}) == len({i.code for i in issued}) == 3
    stored = registrations_of(tenant)
    assert set(stored) == {m.id for m in first}
    for item in issued:
        user_id = registrations.normalise(item.user_id)
        assert stored[item.member_id].code_hash == registrations.code_hash(
            user_id, registrations.normalise(item.code)
        )
        assert item.url == f"http://localhost:8501/auth/line/login?uid={user_id}"
    events = audit.new(AUTH)
    assert [e.action for e in events] == ["registration.issue"] * 3 + ["registration.batch_issue"]
    summary = json.loads(events[-1].details)
    assert summary["units"] == [FIRST] and summary["issued"] == 3 and summary["reissued"] == 0
    assert all(i.code not in e.details for i in issued for e in events)


def test_every_unit_when_none_is_chosen(tenant):
    chosen = {make_member(tenant, affiliation=u).member_code for u in (FIRST, SECOND, "")}

    assert codes_of(issue(admin(tenant))) == chosen


def test_batch_units_lists_the_active_members_units(tenant):
    make_member(tenant, affiliation=SECOND)
    make_member(tenant, affiliation="")
    gone = make_member(tenant, affiliation="第9分団")
    members.retire_member(admin(tenant), gone.id)

    assert registration_batch.batch_units(admin(tenant)) == ["", SECOND]


def test_only_unlinked_active_members_get_sheets(tenant):
    waiting = make_member(tenant)
    linked = make_member(tenant)
    link_line(tenant, linked.id, new_sub())
    suspended = make_member(tenant)
    members.suspend_member(admin(tenant), suspended.id)

    found = plan(admin(tenant))

    assert codes_of(found) == {waiting.member_code}
    assert found.linked == 1


def test_valid_codes_are_kept_unless_reissue_is_asked(tenant, watch):
    holder = make_member(tenant)
    first = registrations.issue_registration(admin(tenant), holder.id)
    newcomer = make_member(tenant)

    kept = plan(admin(tenant))
    assert codes_of(kept) == {newcomer.member_code} and kept.valid_kept == 1

    audit = watch(tenant)
    again = issue(admin(tenant), include_valid=True)

    by_member = {i.member_id: i for i in again}
    assert set(by_member) == {holder.id, newcomer.id}
    assert by_member[holder.id].reissued and by_member[holder.id].user_id == first.user_id
    assert by_member[holder.id].code != first.code
    actions = sorted(e.action for e in audit.new(AUTH))
    assert actions == ["registration.batch_issue", "registration.issue", "registration.reissue"]
    stored = registrations_of(tenant)[holder.id]
    assert stored.code_hash != registrations.code_hash(
        registrations.normalise(first.user_id), registrations.normalise(first.code)
    )


def test_expired_and_locked_codes_are_replaced_without_asking(tenant):
    expired, locked = make_member(tenant), make_member(tenant)
    for member in (expired, locked):
        registrations.issue_registration(admin(tenant), member.id)
    with unit_of_work(tenant) as db:
        query = select(LineRegistration).where(LineRegistration.tenant_id == tenant)
        for row in db.exec(query).all():
            if row.member_id == expired.id:
                row.expires_at = row.issued_at
            else:
                row.locked_at = row.issued_at
            db.add(row)
        db.commit()

    issued = issue(admin(tenant))

    assert codes_of(issued) == {expired.member_code, locked.member_code}
    assert all(i.reissued for i in issued)
    assert all(
        r.locked_at is None and r.failed_attempts == 0 for r in registrations_of(tenant).values()
    )


def test_other_brigades_members_are_never_included(tenant):
    mine = make_member(tenant, affiliation=FIRST)
    other = make_tenant()
    stranger = make_member(other, affiliation=FIRST)

    issued = issue(admin(tenant), [FIRST])

    assert codes_of(issued) == {mine.member_code}
    assert registration_batch.batch_units(admin(tenant)) == [FIRST]
    assert stranger.id not in registrations_of(other)


def test_members_above_the_actor_are_left_out_not_refused(tenant, watch):
    editor = actor_with(tenant, EDITOR)
    plain = make_member(tenant)
    # 部長 may see the roster and more: above an actor holding only アカウント管理 編集, yet
    # neither a password user nor a permission editor (the ceiling alone keeps them out)
    leader = make_member(tenant, rank_id=rank_id(tenant, "部長"))
    password_user = make_member(tenant)
    give_login(tenant, password_user.id)
    audit = watch(tenant)

    found = plan(editor)
    issued = issue(editor)

    assert codes_of(found) == codes_of(issued) == {plain.member_code}
    assert found.not_permitted == 2
    assert set(registrations_of(tenant)) == {plain.id}
    events = audit.new(AUTH)
    assert [e.action for e in events] == ["registration.issue", "registration.batch_issue"]
    assert json.loads(events[-1].details)["not_permitted"] == 2
    assert leader.id not in registrations_of(tenant)


def test_a_permission_admin_includes_password_users_marked_sensitive(tenant, watch):
    password_user = make_member(tenant)
    give_login(tenant, password_user.id)
    audit = watch(tenant)

    issue(admin(tenant))

    event = next(e for e in audit.new(AUTH) if e.action == "registration.issue")
    assert json.loads(event.details)["sensitive"] is True


def test_batch_not_permitted(tenant, watch):
    make_member(tenant)
    viewer = actor_with(tenant, {Function.MEMBER_ACCOUNTS: Level.VIEW})
    audit = watch(tenant)

    with pytest.raises(PermissionDenied):
        registration_batch.issue_batch(viewer, units=[], include_valid=False, expected=[])
    with pytest.raises(PermissionDenied):
        plan(viewer)
    with pytest.raises(PermissionDenied):
        registration_batch.batch_units(viewer)

    assert registrations_of(tenant) == {}
    denied = [json.loads(e.details)["attempted"] for e in audit.new(AUTH)]
    assert denied == [
        "registration.batch_issue",
        "registration.batch_plan",
        "registration.batch_units",
    ]


def test_batch_is_refused_without_a_line_login_channel(tenant, watch):
    make_member(tenant)
    audit = watch(tenant)

    with configured(NO_LINE_LOGIN):
        with pytest.raises(NotConfigured) as error:
            registration_batch.issue_batch(
                admin(tenant), units=[], include_valid=False, expected=[]
            )
        with pytest.raises(NotConfigured):
            plan(admin(tenant))

    assert error.value.message == registrations.LINE_NOT_CONFIGURED
    assert registrations_of(tenant) == {} and audit.new() == []


def test_a_changed_roster_issues_nothing(tenant):
    make_member(tenant)
    confirmed = [m.member_id for m in plan(admin(tenant)).members]
    make_member(tenant)

    with pytest.raises(Conflict):
        registration_batch.issue_batch(
            admin(tenant), units=[], include_valid=False, expected=confirmed
        )

    assert registrations_of(tenant) == {}


def test_the_same_count_of_other_members_issues_nothing(tenant):
    """One confirmed member links LINE and another joins: still N, but not the N confirmed."""
    leaving = make_member(tenant)
    make_member(tenant)
    confirmed = [m.member_id for m in plan(admin(tenant)).members]
    link_line(tenant, leaving.id, new_sub())
    make_member(tenant)
    assert plan(admin(tenant)).count == len(confirmed)

    with pytest.raises(Conflict):
        registration_batch.issue_batch(
            admin(tenant), units=[], include_valid=False, expected=confirmed
        )
    assert registrations_of(tenant) == {}


def test_nobody_to_issue_for_is_bad_input(tenant):
    make_member(tenant, affiliation=FIRST)

    with pytest.raises(ValidationError) as error:
        registration_batch.issue_batch(
            admin(tenant), units=["存在しない分団"], include_valid=False, expected=[]
        )

    assert error.value.errors["member"] == registration_batch.NOBODY


def test_too_many_is_bad_input(tenant, monkeypatch):
    for _ in range(3):
        make_member(tenant)
    monkeypatch.setattr(registration_batch, "BATCH_LIMIT", 2)

    with pytest.raises(ValidationError):
        registration_batch.issue_batch(
            admin(tenant),
            units=[],
            include_valid=False,
            expected=[m.member_id for m in plan(admin(tenant)).members],
        )

    assert registrations_of(tenant) == {}
