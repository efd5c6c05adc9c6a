"""ユーザ登録 (services/registrations.py): issuing, reissuing and redeeming registration codes,
linking and unlinking LINE accounts. Each function: happy path, other tenant, not permitted, bad
input; plus the code's life: single use, expiry, lockout."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import pytest
from sqlmodel import Session as DbSession
from sqlmodel import select

from core.actor import Actor
from models import (
    PLATFORM_TENANT_ID,
    LinePendingLogin,
    LineRegistration,
    MemberLine,
    MemberPublic,
)
from models import Session as UserSession
from models.base import utcnow
from models.enums import AuditCategory, Function, Level
from services import members, registrations
from services.crypto import TenantCipher
from services.db import unit_of_work
from services.errors import NotConfigured, NotFound, PermissionDenied, ValidationError
from services.registrations import IssuedRegistration
from services.signin import line_sessions, sessions
from tests.factories import (
    actor_with,
    admin,
    audit_events,
    last_audit_seq,
    make_member,
    make_tenant,
    open_member_session,
    plain_members_hold_nothing,
    request_context,
)
from tests.fakes.line_server import configured, new_sub

AUTH = str(AuditCategory.AUTH)
EDITOR = {Function.MEMBER_ACCOUNTS: Level.EDIT}
VIEWER = {Function.MEMBER_ACCOUNTS: Level.VIEW}
NO_LINE_LOGIN = {"HIKESHI_LINE_CHANNEL_ID": "", "HIKESHI_LINE_CHANNEL_SECRET": ""}
pytestmark = pytest.mark.usefixtures("line_login_channel")


@pytest.fixture(autouse=True)
def _plain_members_hold_nothing(tenant):
    """The synthetic actors here hold only what each test is about (see the factory)."""
    plain_members_hold_nothing(tenant)


@pytest.fixture
def tenant(engine) -> uuid.UUID:
    return make_tenant()


@pytest.fixture
def member(tenant) -> MemberPublic:
    return make_member(tenant)


def editor(tenant_id: uuid.UUID) -> Actor:
    return actor_with(tenant_id, EDITOR)


def pending(sub: str | None = None, uid: str = "") -> Actor:
    """A browser that has logged in with LINE and is bound to no member."""
    result = line_sessions.complete_login(sub or new_sub(), uid, request_context())
    actor = sessions.resolve(result.token, request_context())
    assert actor is not None and actor.kind == "line_register"
    return actor


def issue(tenant_id: uuid.UUID, member_id: uuid.UUID) -> IssuedRegistration:
    return registrations.issue_registration(editor(tenant_id), member_id)


def registration_row(tenant_id: uuid.UUID, member_id: uuid.UUID) -> LineRegistration:
    with unit_of_work(tenant_id) as db:
        return db.exec(
            select(LineRegistration).where(LineRegistration.member_id == member_id)
        ).one()


def registration_row_or_none(tenant_id: uuid.UUID, member_id: uuid.UUID) -> LineRegistration | None:
    with unit_of_work(tenant_id) as db:
        query = select(LineRegistration).where(LineRegistration.member_id == member_id)
        return db.exec(query).first()


def link_row(tenant_id: uuid.UUID, member_id: uuid.UUID) -> MemberLine | None:
    with unit_of_work(tenant_id) as db:
        return db.exec(select(MemberLine).where(MemberLine.member_id == member_id)).first()


def new_auth_events(engine, tenant_id: uuid.UUID, start: int) -> list[tuple[str, str]]:
    return [
        (e.action, e.outcome)
        for e in audit_events(engine, tenant_id, after_seq=start, category=AUTH)
    ]


# ---------------------------------------------------------------------------
# Formats


def test_codes_use_an_unambiguous_alphabet():
    assert not set("01OIL") & set(registrations.ALPHABET)
    issued = {registrations._random(registrations.CODE_LENGTH) for _ in range(200)}
    assert len(issued) == 200
    assert all(len(c) == 12 and set(c) <= set(registrations.ALPHABET) for c in issued)


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("abcd-efgh", "ABCDEFGH"),
        ("ＡＢＣＤ－ＥＦＧＨ", "ABCDEFGH"),
        (" ab cd\tef gh ", "ABCDEFGH"),
        ("", ""),
        (None, ""),
        ("あいう", ""),
    ],
)
def test_normalise_accepts_what_people_type(typed, expected):
    assert registrations.normalise(typed) == expected


# ---------------------------------------------------------------------------
# issue_registration


def test_issue_registration(engine, tenant, member):
    start = last_audit_seq(engine, tenant)

    issued = issue(tenant, member.id)

    user_id, code = registrations.normalise(issued.user_id), registrations.normalise(issued.code)
    assert registrations.valid_user_id(user_id)
    assert len(code) == registrations.CODE_LENGTH and issued.code.count("-") == 2
    assert (issued.member_name, issued.member_code) == (member.name, member.member_code)
    assert issued.url == f"http://localhost:8501/auth/line/login?uid={user_id}"
    assert not issued.reissued
    assert timedelta(days=13, hours=23) < issued.expires_at - utcnow() <= timedelta(days=14)
    row = registration_row(tenant, member.id)
    assert row.user_id == user_id and row.tenant_id == tenant
    assert row.code_hash == registrations.code_hash(user_id, code)
    assert code not in row.code_hash
    events = audit_events(engine, tenant, after_seq=start)
    assert [(e.category, e.action) for e in events] == [(AUTH, "registration.issue")]
    assert code not in events[0].details and issued.code not in events[0].details
    assert json.loads(events[0].details)["user_id"] == user_id


def test_issue_expiry_is_configurable(tenant, member):
    with configured({"HIKESHI_REGISTRATION_CODE_DAYS": "3"}):
        issued = issue(tenant, member.id)

    assert timedelta(days=2, hours=23) < issued.expires_at - utcnow() <= timedelta(days=3)


def test_reissue_keeps_the_user_id_and_kills_the_old_code(engine, tenant, member):
    first = issue(tenant, member.id)
    start = last_audit_seq(engine, tenant)

    second = issue(tenant, member.id)

    assert second.reissued and second.user_id == first.user_id and second.code != first.code
    assert new_auth_events(engine, tenant, start) == [("registration.reissue", "success")]
    stale = registrations.redeem(pending(), user_id=first.user_id, code=first.code)
    assert stale.error == "invalid"
    assert registrations.redeem(pending(), user_id=second.user_id, code=second.code).token


def test_issue_for_another_tenants_member_is_not_found(engine, tenant):
    other = make_tenant()
    plain_members_hold_nothing(other)
    stranger = make_member(other)

    with pytest.raises(NotFound):
        issue(tenant, stranger.id)

    with unit_of_work(other) as db:
        assert (
            db.exec(
                select(LineRegistration).where(LineRegistration.member_id == stranger.id)
            ).first()
            is None
        )


def test_issue_not_permitted(engine, tenant, member):
    start = last_audit_seq(engine, tenant)

    with pytest.raises(PermissionDenied):
        registrations.issue_registration(actor_with(tenant, VIEWER), member.id)

    events = audit_events(engine, tenant, after_seq=start)
    assert [(e.category, e.action, e.outcome) for e in events] == [
        (AUTH, "permission_denied", "denied")
    ]
    assert json.loads(events[0].details)["attempted"] == "registration.issue"


def test_operator_sees_and_issues_nothing_inside_a_brigade(engine, member):
    operator = Actor(kind="operator", display_name="運営", label="operator")
    start = last_audit_seq(engine, PLATFORM_TENANT_ID)

    with pytest.raises(PermissionDenied):
        registrations.issue_registration(operator, member.id)
    with pytest.raises(PermissionDenied):
        registrations.list_accounts(operator)

    events = audit_events(engine, PLATFORM_TENANT_ID, after_seq=start)
    assert [(e.action, e.outcome) for e in events] == [("permission_denied", "denied")] * 2


@pytest.mark.parametrize("status_change", [members.suspend_member, members.retire_member])
def test_issue_refuses_inactive_members(tenant, member, status_change):
    status_change(admin(tenant), member.id)

    with pytest.raises(ValidationError) as error:
        issue(tenant, member.id)

    assert "在籍中" in error.value.errors["member"]


def test_issue_refuses_a_linked_member(tenant, member):
    issued = issue(tenant, member.id)
    registrations.redeem(pending(), user_id=issued.user_id, code=issued.code)

    with pytest.raises(ValidationError) as error:
        issue(tenant, member.id)

    assert "連携済み" in error.value.errors["member"]


def test_issue_unknown_member_is_not_found(tenant):
    with pytest.raises(NotFound):
        issue(tenant, uuid.uuid4())


def test_issue_is_refused_without_a_line_login_channel(engine, tenant, member):
    start = last_audit_seq(engine, tenant)

    with configured(NO_LINE_LOGIN), pytest.raises(NotConfigured) as error:
        issue(tenant, member.id)

    assert error.value.message == registrations.LINE_NOT_CONFIGURED
    assert "LINEログインのチャネルが設定されていない" in error.value.message
    assert registration_row_or_none(tenant, member.id) is None
    assert audit_events(engine, tenant, after_seq=start) == []


def test_issue_without_a_line_login_channel_still_checks_permission_first(engine, tenant, member):
    with configured(NO_LINE_LOGIN), pytest.raises(PermissionDenied):
        registrations.issue_registration(actor_with(tenant, VIEWER), member.id)


def test_without_a_public_url_sheets_point_at_the_port_make_run_serves_on(
    tenant, member, monkeypatch
):
    monkeypatch.delenv("HIKESHI_PUBLIC_BASE_URL")
    with configured({"HIKESHI_PORT": "8502"}):
        issued = issue(tenant, member.id)
    with configured({"HIKESHI_PORT": "8502", "HIKESHI_PUBLIC_BASE_URL": "https://h.example.jp"}):
        configured_url = registrations.public_base_url()

    assert issued.url.startswith("http://localhost:8502/auth/line/login?uid=")
    assert configured_url == "https://h.example.jp"


def test_sheet_url_is_the_configured_public_url(tenant, member):
    with configured({"HIKESHI_PUBLIC_BASE_URL": "https://hikeshi.example.jp/"}):
        issued = issue(tenant, member.id)

    uid = registrations.normalise(issued.user_id)
    assert issued.url == f"https://hikeshi.example.jp/auth/line/login?uid={uid}"


# ---------------------------------------------------------------------------
# redeem


def test_redeem_links_the_member_and_swaps_the_session(engine, tenant, member):
    sub = new_sub()
    issued = issue(tenant, member.id)
    actor = pending(sub)
    start = last_audit_seq(engine, tenant)

    result = registrations.redeem(actor, user_id=issued.user_id, code=issued.code)

    assert result.error is None and result.token
    signed_in = sessions.resolve(result.token)
    assert (signed_in.kind, signed_in.tenant_id, signed_in.member_id) == (
        "member",
        tenant,
        member.id,
    )
    with DbSession(engine) as db:
        assert db.get(LinePendingLogin, actor.session_id) is None
    link = link_row(tenant, member.id)
    assert sub not in link.sub_enc
    with unit_of_work(tenant) as db:
        cipher = TenantCipher(db, tenant)
        assert cipher.decrypt(link.sub_enc, field=line_sessions.SUB_FIELD, row_id=link.id) == sub
        assert link.sub_bidx == cipher.blind_index(sub, field=line_sessions.SUB_FIELD)
    assert registration_row(tenant, member.id).used_at is not None
    events = audit_events(engine, tenant, after_seq=start, category=AUTH)
    assert [(e.action, e.outcome) for e in events] == [
        ("registration.redeem", "success"),
        ("line.link", "success"),
        ("login.success", "success"),
    ]
    assert all(sub not in e.details and issued.code not in e.details for e in events)
    assert registrations.list_accounts(editor(tenant))[0].registration == "used"


def test_pending_session_ends_when_the_code_is_redeemed(tenant, member):
    issued = issue(tenant, member.id)
    actor = pending()
    assert session_open(actor.session_id)

    registrations.redeem(actor, user_id=issued.user_id, code=issued.code)

    assert not session_open(actor.session_id)
    with unit_of_work(PLATFORM_TENANT_ID) as db:  # a pending session
        assert db.get(UserSession, actor.session_id).revoke_reason == "registered"


def test_code_is_single_use(tenant, member):
    issued = issue(tenant, member.id)
    assert registrations.redeem(pending(), user_id=issued.user_id, code=issued.code).token

    again = registrations.redeem(pending(), user_id=issued.user_id, code=issued.code)

    assert again.error == "used" and again.token is None


def test_expired_code_is_refused(engine, tenant, member):
    issued = issue(tenant, member.id)
    with unit_of_work(tenant) as db:
        row = db.exec(select(LineRegistration).where(LineRegistration.member_id == member.id)).one()
        row.expires_at = utcnow() - timedelta(seconds=1)
        db.add(row)
        db.commit()
    start = last_audit_seq(engine, tenant)

    result = registrations.redeem(pending(), user_id=issued.user_id, code=issued.code)

    assert result.error == "expired"
    assert link_row(tenant, member.id) is None
    events = audit_events(engine, tenant, after_seq=start, category=AUTH)
    assert [(e.action, json.loads(e.details)["reason"]) for e in events] == [
        ("registration.redeem", "code_expired")
    ]


def test_wrong_code_is_refused_and_counted(engine, tenant, member):
    issued = issue(tenant, member.id)
    start = last_audit_seq(engine, tenant)

    result = registrations.redeem(pending(), user_id=issued.user_id, code="AAAA-AAAA-AAAA")

    assert result.error == "invalid"
    assert registration_row(tenant, member.id).failed_attempts == 1
    events = audit_events(engine, tenant, after_seq=start, category=AUTH)
    assert [(e.action, e.outcome) for e in events] == [("registration.redeem", "failure")]
    assert json.loads(events[0].details)["reason"] == "wrong_code"


def test_wrong_codes_lock_the_registration(engine, tenant, member):
    issued = issue(tenant, member.id)
    actor = pending()
    start = last_audit_seq(engine, tenant)

    results = [
        registrations.redeem(actor, user_id=issued.user_id, code=f"WRONG{i}") for i in range(4)
    ]
    fifth = registrations.redeem(actor, user_id=issued.user_id, code="WRONG5")

    assert [r.error for r in results] == ["invalid"] * 4
    assert fifth.error == "session_locked"
    assert registration_row(tenant, member.id).locked_at is not None
    assert not session_open(actor.session_id)
    actions = new_auth_events(engine, tenant, start)
    assert actions == [("registration.redeem", "failure")] * 5 + [("registration.lock", "success")]
    right = registrations.redeem(pending(), user_id=issued.user_id, code=issued.code)
    assert right.error == "locked"
    assert registrations.list_accounts(editor(tenant))[0].registration == "locked"


def session_open(session_id: uuid.UUID) -> bool:
    with unit_of_work(PLATFORM_TENANT_ID) as db:  # a pending session
        return db.get(UserSession, session_id).revoked_at is None


def test_reissue_unlocks_a_locked_registration(tenant, member):
    issued = issue(tenant, member.id)
    for attempt in range(5):
        registrations.redeem(pending(), user_id=issued.user_id, code=f"WRONG{attempt}")

    fresh = issue(tenant, member.id)

    assert registrations.redeem(pending(), user_id=fresh.user_id, code=fresh.code).token


def test_wrong_user_ids_lock_the_pending_login(engine, tenant):
    actor = pending()
    start = last_audit_seq(engine, PLATFORM_TENANT_ID)

    results = [registrations.redeem(actor, user_id="ZZZZ-ZZZZ", code="X") for _ in range(5)]

    assert [r.error for r in results] == ["invalid"] * 4 + ["session_locked"]
    with DbSession(engine) as db:
        assert db.get(LinePendingLogin, actor.session_id) is None
    events = audit_events(engine, PLATFORM_TENANT_ID, after_seq=start, category=AUTH)
    reasons = [json.loads(e.details)["reason"] for e in events if e.actor_type == "line_register"]
    assert reasons == ["unknown_user_id"] * 5 + ["too_many_failures"]
    with pytest.raises(PermissionDenied):
        registrations.redeem(actor, user_id="ZZZZ-ZZZZ", code="X")


def test_one_line_account_per_member(tenant, member):
    issued = issue(tenant, member.id)
    assert registrations.redeem(pending(), user_id=issued.user_id, code=issued.code).token
    with unit_of_work(tenant) as db:
        row = db.exec(select(LineRegistration).where(LineRegistration.member_id == member.id)).one()
        code = "BBBBCCCCDDDD"
        row.code_hash = registrations.code_hash(row.user_id, code)
        row.used_at = None
        db.add(row)
        db.commit()

    second = registrations.redeem(pending(), user_id=issued.user_id, code=code)

    assert second.error == "already_linked"


def test_one_member_per_line_account_in_a_brigade(tenant, member):
    sub = new_sub()
    colleague = make_member(tenant)
    first = issue(tenant, member.id)
    assert registrations.redeem(pending(sub), user_id=first.user_id, code=first.code).token

    second = issue(tenant, colleague.id)
    result = registrations.redeem(
        pending(sub, registrations.normalise(second.user_id)),
        user_id=second.user_id,
        code=second.code,
    )

    assert result.error == "line_taken"
    assert link_row(tenant, colleague.id) is None


def test_same_line_account_may_join_another_brigade(tenant, member):
    sub = new_sub()
    other = make_tenant()
    plain_members_hold_nothing(other)
    other_member = make_member(other)
    first = issue(tenant, member.id)
    registrations.redeem(pending(sub), user_id=first.user_id, code=first.code)

    second = issue(other, other_member.id)
    result = registrations.redeem(
        pending(sub, registrations.normalise(second.user_id)),
        user_id=second.user_id,
        code=second.code,
    )

    assert result.token
    assert sessions.resolve(result.token).tenant_id == other
    assert link_row(tenant, member.id) is not None


def test_redeem_for_a_suspended_member_is_refused(tenant, member):
    issued = issue(tenant, member.id)
    members.suspend_member(admin(tenant), member.id)

    result = registrations.redeem(pending(), user_id=issued.user_id, code=issued.code)

    assert result.error == "inactive"
    assert link_row(tenant, member.id) is None


def test_redeem_only_for_pending_line_logins(engine, tenant, member):
    issued = issue(tenant, member.id)
    colleague = make_member(tenant)
    as_member = sessions.resolve(open_member_session(tenant, colleague.id))

    for actor in (as_member, admin(tenant), editor(tenant)):
        with pytest.raises(PermissionDenied):
            registrations.redeem(actor, user_id=issued.user_id, code=issued.code)

    assert link_row(tenant, member.id) is None
    assert registration_row(tenant, member.id).used_at is None


def test_codes_of_another_tenant_link_only_there(tenant, member):
    other = make_tenant()
    plain_members_hold_nothing(other)
    other_member = make_member(other)
    issued = issue(other, other_member.id)

    result = registrations.redeem(pending(), user_id=issued.user_id, code=issued.code)

    assert sessions.resolve(result.token).tenant_id == other
    assert link_row(tenant, member.id) is None
    assert link_row(other, other_member.id) is not None


def test_pending_user_id_comes_from_the_sheet_url(tenant, member):
    issued = issue(tenant, member.id)

    assert registrations.pending_user_id(pending(uid=registrations.normalise(issued.user_id))) == (
        issued.user_id
    )
    assert registrations.pending_user_id(pending()) == ""
    assert registrations.pending_user_id(editor(tenant)) == ""


# ---------------------------------------------------------------------------
# unlink_line


def linked_member(tenant_id: uuid.UUID) -> tuple[MemberPublic, str]:
    member = make_member(tenant_id)
    issued = issue(tenant_id, member.id)
    token = registrations.redeem(pending(), user_id=issued.user_id, code=issued.code).token
    return member, token


def test_unlink_line(engine, tenant):
    member, line_token = linked_member(tenant)
    start = last_audit_seq(engine, tenant)

    revoked = registrations.unlink_line(editor(tenant), member.id)

    assert revoked == 1
    assert link_row(tenant, member.id) is None
    assert sessions.resolve(line_token) is None
    events = audit_events(engine, tenant, after_seq=start)
    assert [(e.category, e.action) for e in events] == [(AUTH, "line.unlink")]
    assert json.loads(events[0].details)["sessions_revoked"] == 1
    assert registrations.issue_registration(editor(tenant), member.id).reissued


def test_unlink_other_tenants_member_is_not_found(tenant):
    other = make_tenant()
    plain_members_hold_nothing(other)
    member, token = linked_member(other)

    with pytest.raises(NotFound):
        registrations.unlink_line(editor(tenant), member.id)

    assert link_row(other, member.id) is not None
    assert sessions.resolve(token) is not None


def test_unlink_not_permitted(engine, tenant):
    member, _token = linked_member(tenant)
    start = last_audit_seq(engine, tenant)

    with pytest.raises(PermissionDenied):
        registrations.unlink_line(actor_with(tenant, VIEWER), member.id)

    assert link_row(tenant, member.id) is not None
    assert new_auth_events(engine, tenant, start) == [("permission_denied", "denied")]


def test_unlink_a_member_without_link_is_bad_input(tenant, member):
    with pytest.raises(ValidationError):
        registrations.unlink_line(editor(tenant), member.id)


# ---------------------------------------------------------------------------
# list_accounts


def test_list_accounts(tenant):
    plain = make_member(tenant)
    issued_member = make_member(tenant)
    issue(tenant, issued_member.id)
    linked, _token = linked_member(tenant)
    suspended = make_member(tenant)
    members.suspend_member(admin(tenant), suspended.id)

    accounts = {a.member_id: a for a in registrations.list_accounts(actor_with(tenant, VIEWER))}

    assert accounts[plain.id].registration == "none" and not accounts[plain.id].line_linked
    assert accounts[issued_member.id].registration == "issued"
    assert accounts[issued_member.id].registration_label == "発行済み"
    assert accounts[linked.id].line_linked and accounts[linked.id].open_sessions == 1
    assert accounts[suspended.id].status_label == "停止中"
    assert accounts[plain.id].name == plain.name and accounts[plain.id].rank_name == "団員"


def test_list_accounts_shows_only_own_tenant(tenant, member):
    other = make_tenant()
    plain_members_hold_nothing(other)
    stranger = make_member(other)

    listed = {a.member_id for a in registrations.list_accounts(actor_with(tenant, VIEWER))}

    assert member.id in listed and stranger.id not in listed


def test_list_accounts_not_permitted(tenant, member):
    with pytest.raises(PermissionDenied):
        registrations.list_accounts(actor_with(tenant, {Function.ROSTER: Level.EDIT}))


def test_redeem_after_logout_is_refused(tenant, member):
    issued = issue(tenant, member.id)
    actor = pending()
    with unit_of_work(PLATFORM_TENANT_ID) as db:  # a pending session
        row = db.get(UserSession, actor.session_id)
        row.revoked_at, row.revoke_reason = utcnow(), "logout"
        db.add(row)
        db.commit()

    with pytest.raises(PermissionDenied):
        registrations.redeem(actor, user_id=issued.user_id, code=issued.code)

    assert link_row(tenant, member.id) is None
