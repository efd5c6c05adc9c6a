"""Server-side sessions (auth/sessions.py): expiry, revocation, and what the database stores."""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass, replace
from datetime import timedelta

import pytest
from sqlalchemy import text
from sqlmodel import Session as DbSession
from sqlmodel import select

from config import get_settings
from core.access import Need
from core.actor import Actor, RequestContext
from models import PLATFORM_TENANT_ID, AuditEvent, Member, MemberPublic, Tenant
from models import Session as UserSession
from models.base import utcnow
from models.enums import Function, MemberStatus, TenantStatus
from models.member import MemberUpdate
from services import members, water_sources
from services.base import require
from services.db import set_tenant
from services.errors import PermissionDenied
from services.signin import local, owners, sessions
from tests.factories import (
    PLATFORM,
    admin,
    audit_events,
    last_audit_seq,
    make_member,
    make_tenant,
    open_member_session,
    rank_id,
    request_context,
)
from tests.water_factories import make_source
from ui.common import session_end_text, session_expiry_html


@dataclass(frozen=True)
class Open:
    tenant_id: uuid.UUID
    member: MemberPublic
    token: str


@pytest.fixture
def open_(engine) -> Open:
    tenant = make_tenant()
    member = make_member(tenant)
    return Open(tenant, member, open_member_session(tenant, member.id))


def _own_row(db: DbSession, token: str) -> UserSession:
    """The session of a token, read for its tenant (user_session is under row-level security)."""
    digest = sessions.token_hash(token)
    set_tenant(db, owners.session_tenant(db, digest))
    return db.exec(select(UserSession).where(UserSession.token_hash == digest)).one()


def row_for(engine, token: str) -> UserSession:
    with DbSession(engine) as db:
        return _own_row(db, token)


def age(engine, token: str, **values) -> None:
    """Move a session's timestamps, as if time had passed."""
    with DbSession(engine) as db:
        row = _own_row(db, token)
        for name, value in values.items():
            setattr(row, name, value)
        db.add(row)
        db.commit()


def events(engine, tenant_id: uuid.UUID, request: RequestContext) -> list[AuditEvent]:
    return audit_events(engine, tenant_id, request_id=request.request_id)


def idle() -> timedelta:
    return timedelta(minutes=get_settings().session_idle_minutes)


def test_open_session_resolves_to_the_member(open_):
    actor = sessions.resolve(open_.token)
    assert actor is not None
    assert (actor.kind, actor.tenant_id, actor.member_id) == (
        "member",
        open_.tenant_id,
        open_.member.id,
    )
    assert actor.display_name == open_.member.name
    assert actor.session_id is not None


@pytest.mark.parametrize("token", [None, "", "not-a-token", "x" * 43])
def test_missing_or_unknown_token(engine, token):
    assert sessions.resolve(token) is None


def test_idle_timeout(engine, open_):
    age(engine, open_.token, last_seen_at=utcnow() - idle() - timedelta(minutes=1))
    request = request_context()
    assert sessions.resolve(open_.token, request) is None
    row = row_for(engine, open_.token)
    assert row.revoked_at is not None and row.revoke_reason == "idle_timeout"
    (event,) = events(engine, open_.tenant_id, request)
    assert (event.category, event.action, event.outcome) == ("auth", "session.end", "expired")
    assert json.loads(event.details) == {"reason": "idle_timeout"}
    assert event.target_id == str(row.id)
    # Ended for good: coming back later neither revives it nor logs it twice.
    age(engine, open_.token, last_seen_at=utcnow())
    again = request_context()
    assert sessions.resolve(open_.token, again) is None
    assert events(engine, open_.tenant_id, again) == []


def test_activity_within_the_idle_limit_keeps_the_session(engine, open_):
    age(engine, open_.token, last_seen_at=utcnow() - idle() + timedelta(minutes=1))
    assert sessions.resolve(open_.token) is not None
    assert utcnow() - row_for(engine, open_.token).last_seen_at < timedelta(minutes=1)
    assert sessions.resolve(open_.token) is not None


def test_absolute_timeout(engine, open_):
    age(engine, open_.token, expires_at=utcnow() - timedelta(seconds=1), last_seen_at=utcnow())
    request = request_context()
    assert sessions.resolve(open_.token, request) is None
    assert row_for(engine, open_.token).revoke_reason == "absolute_timeout"
    assert [(e.category, e.action) for e in events(engine, open_.tenant_id, request)] == [
        ("auth", "session.end")
    ]


def test_absolute_lifetime_is_set_at_login(engine, open_):
    row = row_for(engine, open_.token)
    lifetime = timedelta(hours=get_settings().session_absolute_hours)
    assert row.expires_at - row.created_at == lifetime


def test_revoke_ends_the_session_at_once(engine, open_):
    assert sessions.resolve(open_.token) is not None
    request = request_context()
    assert sessions.revoke(open_.token, request) is True
    assert sessions.resolve(open_.token) is None
    assert row_for(engine, open_.token).revoke_reason == "logout"
    assert [(e.category, e.action) for e in events(engine, open_.tenant_id, request)] == [
        ("auth", "logout")
    ]


def test_revoke_only_touches_its_own_session(engine, open_):
    other = open_member_session(open_.tenant_id, open_.member.id)
    sessions.revoke(open_.token, request_context())
    assert sessions.resolve(other) is not None


@pytest.mark.parametrize("token", [None, "", "unknown-token"])
def test_revoke_of_nothing(engine, token):
    assert sessions.revoke(token, request_context()) is False


def test_database_stores_only_the_sha256_of_the_token(owner_engine, open_):
    digest = hashlib.sha256(open_.token.encode()).hexdigest()
    with owner_engine.connect() as conn:
        rows = conn.execute(text("SELECT * FROM user_session")).mappings().all()
    mine = [r for r in rows if r["token_hash"] == digest]
    assert len(mine) == 1
    assert not [r for r in rows if any(open_.token in str(value) for value in r.values())]


def test_operator_session_expiry_is_logged_on_the_platform_chain(engine):
    name = f"op-{uuid.uuid4().hex[:10]}"
    password = "correct horse battery staple"
    local.create_account(PLATFORM, login_name=name, password=password, is_operator=True)
    token = local.login(name, password, request_context()).token
    assert sessions.resolve(token) is not None
    age(engine, token, last_seen_at=utcnow() - idle() - timedelta(seconds=1))
    request = request_context()
    assert sessions.resolve(token, request) is None
    assert [(e.category, e.action) for e in events(engine, PLATFORM_TENANT_ID, request)] == [
        ("auth", "session.end")
    ]


def test_may_sign_in_is_one_rule_for_brigade_and_member():
    """Password, LINE and registration-code sign-in all ask services.signin.sessions.may_sign_in."""
    tenant = Tenant(name="t", status=TenantStatus.ACTIVE)
    member = Member(
        tenant_id=tenant.id, member_code="M1", name_enc="", rank_id=tenant.id, status="active"
    )
    assert sessions.may_sign_in(tenant, member)
    for status in (s for s in MemberStatus if s != MemberStatus.ACTIVE):
        member.status = status
        assert not sessions.may_sign_in(tenant, member)
    member.status = MemberStatus.ACTIVE
    tenant.status = TenantStatus.CANCELLED
    assert not sessions.may_sign_in(tenant, member)
    tenant.status = TenantStatus.ACTIVE
    stranger = Member(
        tenant_id=Tenant(name="u").id, member_code="M2", name_enc="", rank_id=tenant.id
    )
    assert not sessions.may_sign_in(tenant, stranger)
    assert not sessions.may_sign_in(None, member) and not sessions.may_sign_in(tenant, None)


# ---------------------------------------------------------------------------
# Every service call asks the database who the actor is now (#15, finding 6)


def _signed_in_chief(tenant_id: uuid.UUID) -> tuple[MemberPublic, Actor]:
    chief = make_member(tenant_id, rank_id=rank_id(tenant_id, "団長"))
    actor = sessions.resolve(open_member_session(tenant_id, chief.id))
    assert actor is not None
    return chief, actor


def test_an_actor_from_before_a_suspension_gets_nothing(engine):
    tenant = make_tenant()
    chief, actor = _signed_in_chief(tenant)
    make_source(tenant)
    assert water_sources.export_water_sources_csv(actor)  # the page was drawn while active
    other_chief, _ = _signed_in_chief(tenant)
    members.suspend_member(admin(tenant), chief.id)
    seq = last_audit_seq(engine, tenant)
    with pytest.raises(PermissionDenied):
        water_sources.export_water_sources_csv(actor)  # the download button, pressed later
    with pytest.raises(PermissionDenied):
        require(actor, Need(Function.WATER_SOURCES), action="water_source.export")
    events = audit_events(engine, tenant, after_seq=seq)
    assert [e.action for e in events] == ["permission_denied", "permission_denied"]
    assert other_chief.id != chief.id


def test_grants_lowered_after_sign_in_apply_to_the_next_call(engine):
    tenant = make_tenant()
    chief, actor = _signed_in_chief(tenant)
    assert members.list_members(actor)
    members.update_member(
        admin(tenant),
        chief.id,
        data=MemberUpdate(rank_id=rank_id(tenant, "団員")),
        expected_version=chief.version,
    )
    with pytest.raises(PermissionDenied):
        members.list_members(actor)


def test_a_logged_out_session_ends_the_actor_at_once(engine):
    tenant = make_tenant()
    _, actor = _signed_in_chief(tenant)
    token = open_member_session(tenant, actor.member_id)
    fresh = sessions.resolve(token)
    assert sessions.revoke(token, request_context())
    with pytest.raises(PermissionDenied):
        members.list_members(fresh)
    assert members.list_members(actor)  # the other session is still live


def test_a_change_made_by_another_process_is_seen_within_a_second(engine, monkeypatch):
    """An actor confirmed a moment ago is not read again on every call of the same page run;
    a change committed by another server process (here: a raw connection, unseen by this
    process's write epoch) reaches the gate within services.base.JUST_CHECKED_SECONDS."""
    from services import base

    tenant = make_tenant()
    _, actor = _signed_in_chief(tenant)
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        placeholder = "%s" if engine.dialect.name == "postgresql" else "?"
        session_id = actor.session_id.hex if engine.dialect.name == "sqlite" else actor.session_id
        if engine.dialect.name == "postgresql":
            cursor.execute("SELECT set_config('app.tenant_id', %s, true)", (str(tenant),))
        cursor.execute(
            f"UPDATE user_session SET revoked_at = expires_at WHERE id = {placeholder}",
            (session_id,),
        )
        raw.commit()
    finally:
        raw.close()
    assert members.list_members(actor)  # within the second: the page run carries on
    later = base.time.monotonic() + base.JUST_CHECKED_SECONDS
    monkeypatch.setattr(base.time, "monotonic", lambda: later)
    with pytest.raises(PermissionDenied):
        members.list_members(actor)


def test_the_actor_knows_when_the_session_ends_and_the_browser_why_it_ended(engine, open_):
    """#18: the sidebar says when an idle session ends; the login page says why it ended."""
    age(engine, open_.token, last_seen_at=utcnow() - timedelta(minutes=5))
    actor = sessions.resolve(open_.token)  # touched: the idle time starts again
    seen = row_for(engine, open_.token).last_seen_at
    assert utcnow() - seen < timedelta(minutes=1)
    assert actor is not None and actor.session_ends_at == seen + idle()
    assert actor.session_ends_idle and "操作のないまま" in session_end_text(actor)
    assert sessions.ended(open_.token) is None  # still open

    age(engine, open_.token, last_seen_at=utcnow() - idle() - timedelta(minutes=1))
    assert sessions.resolve(open_.token) is None
    told = sessions.ended(open_.token)
    assert told is not None and f"{get_settings().session_idle_minutes}分" in told


def test_the_sidebar_s_warning_and_word_of_the_end_are_timed_from_the_run(open_):
    """#18: five minutes before the session ends the sidebar warns, and at the end says it has
    ended (CSS delays counted from the run; tests/e2e/test_browser.py watches them appear). The
    end is rounded up: the word must not come while the next click would still be signed in."""
    actor = sessions.resolve(open_.token)
    assert actor is not None and actor.session_ends_at is not None and actor.session_ends_idle
    html = session_expiry_html(actor, now=actor.session_ends_at - timedelta(seconds=719.2))
    assert "hk-expiry-show 0s linear 420s forwards, hk-expiry-hide 0s linear 720s" in html
    assert "hk-expiry-show 0s linear 720s forwards" in html
    assert "操作のないまま時間が過ぎたため、ログアウトしました。" in html
    assert "続けるには、ページを操作してください。" in html
    past = session_expiry_html(actor, now=actor.session_ends_at + timedelta(minutes=1))
    assert "0s linear 0s forwards, hk-expiry-hide 0s linear 0s" in past
    capped = replace(actor, session_ends_idle=False)
    assert "ログインの有効期限が切れたため" in session_expiry_html(capped)
    assert "ページを操作" not in session_expiry_html(capped)
    assert session_expiry_html(replace(actor, session_ends_at=None)) == ""


def test_the_absolute_lifetime_caps_when_the_session_ends(engine, open_):
    soon = utcnow() + timedelta(minutes=2)
    age(engine, open_.token, expires_at=soon, last_seen_at=utcnow())
    actor = sessions.resolve(open_.token)
    assert actor is not None and actor.session_ends_at == soon and not actor.session_ends_idle
    assert "ログインの有効期限が切れ" in session_end_text(actor)
    age(engine, open_.token, expires_at=utcnow() - timedelta(seconds=1))
    assert sessions.resolve(open_.token) is None
    assert "一定の時間" in (sessions.ended(open_.token) or "")


@pytest.mark.parametrize("token", [None, "", "not-a-token"])
def test_no_reason_for_unknown_or_logged_out_cookies(engine, open_, token):
    assert sessions.ended(token) is None
    sessions.revoke(open_.token, request_context())
    assert sessions.ended(open_.token) is None  # a logout says so itself (?logged_out)
