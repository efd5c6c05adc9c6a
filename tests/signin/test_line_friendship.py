"""The friendship status asked at each LINE login (#21): our real routes against the fake LINE
Login server, the answer stored on the account's links in every brigade, the call-out following
it, and a LINE that fails never stopping the login."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
import pytest
from sqlmodel import SQLModel, select
from starlette.applications import Starlette
from starlette.testclient import TestClient

import server
from integrations import line_login
from models import PLATFORM_TENANT_ID, AuditEvent, LinePendingLogin, MemberLine
from models.base import utcnow
from models.callout import FriendStatus
from models.enums import AuditCategory
from services import registrations
from services.db import build_engine, unit_of_work
from services.dispatch import intake, outbox
from services.signin import line, sessions
from services.signin.line_friendship import learned
from tests.callout_factories import Brigade, make_brigade, messaging
from tests.dispatch_factories import SENDER, body, mail, make_source, where
from tests.factories import admin, audit_events, last_audit_seq, link_line, make_member, make_tenant
from tests.fakes.line_messaging import FakeMessaging
from tests.fakes.line_server import FakeLine, FakeUser, callback_target, configured, new_sub, serve

# the call-out's Messaging API channel: only whether it is set matters to the login
MESSAGING = {"HIKESHI_LINE_MESSAGING_TOKEN": "t" * 20, "HIKESHI_LINE_MESSAGING_SECRET": "s" * 20}


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeLine]:
    with serve(FakeLine()) as running:
        yield running


@pytest.fixture
def line_env(engine, fake: FakeLine) -> Iterator[FakeLine]:
    with configured({**fake.settings_env(), **MESSAGING}):
        fake.redirect_uris = {line.callback_url()}
        fake.user = FakeUser()
        fake.friendship_requests.clear()
        fake.friendship_status, fake.friendship_delay = None, 0.0
        yield fake


@pytest.fixture
def client(line_env) -> Iterator[TestClient]:
    with TestClient(Starlette(routes=server.routes)) as test_client:
        yield test_client


@dataclass
class SignIn:
    authorize_url: str
    response: httpx.Response


def sign_in(client: TestClient, fake: FakeLine, *, add_friend: bool = False) -> SignIn:
    client.cookies.clear()
    started = client.get("/auth/line/login", follow_redirects=False)
    authorize_url = started.headers["location"]
    target = callback_target(fake.approve(authorize_url, add_friend=add_friend))
    return SignIn(authorize_url, client.get(target, follow_redirects=False))


def status_of(tenant_id: uuid.UUID, member_id: uuid.UUID) -> tuple[str, datetime | None]:
    with unit_of_work(tenant_id) as db:
        row = db.exec(select(MemberLine).where(MemberLine.member_id == member_id)).one()
        return row.friend_status, row.friend_status_at


def set_status(tenant_id: uuid.UUID, member_id: uuid.UUID, status: str, at: datetime) -> None:
    with unit_of_work(tenant_id) as db:
        row = db.exec(select(MemberLine).where(MemberLine.member_id == member_id)).one()
        row.friend_status, row.friend_status_at = status, at
        db.add(row)
        db.commit()


def friend_label(tenant_id: uuid.UUID, member_id: uuid.UUID) -> str:
    accounts = registrations.list_accounts(admin(tenant_id))
    return next(a.friend_label for a in accounts if a.member_id == member_id)


def friendship_calls(events: list[AuditEvent]) -> list[dict]:
    calls = [json.loads(e.details) for e in events if e.action == "external.call"]
    return [c for c in calls if c["endpoint"].endswith("/friendship/v1/status")]


def assert_no_token(token: str, *event_lists: list[AuditEvent]) -> None:
    assert token
    for events in event_lists:
        for event in events:
            assert token not in event.details and token not in event.target_id


# ---------------------------------------------------------------------------
# What LINE answers, recorded


def test_a_friend_is_recorded_in_every_brigade_the_account_is_linked_in(client, line_env, engine):
    line_env.user.friend = True
    first, second = make_tenant(), make_tenant()
    mine_1, mine_2, someone_else = make_member(first), make_member(second), make_member(second)
    link_line(first, mine_1.id, line_env.user.sub)
    link_line(second, mine_2.id, line_env.user.sub)
    link_line(second, someone_else.id, new_sub())
    since = {t: last_audit_seq(engine, t) for t in (first, second, PLATFORM_TENANT_ID)}

    done = sign_in(client, line_env)

    assert done.response.headers["location"] == "/"  # to 消防団の選択: linked in two brigades
    assert sessions.resolve(client.cookies.get(sessions.COOKIE_NAME)).kind == "line_choose"
    for tenant, member in ((first, mine_1), (second, mine_2)):
        status, at = status_of(tenant, member.id)
        assert status == FriendStatus.FRIEND and at is not None
        assert friend_label(tenant, member.id) == "友だち"
    assert status_of(second, someone_else.id) == (FriendStatus.UNKNOWN, None)
    events = {t: audit_events(engine, t, after_seq=s) for t, s in since.items()}
    (changed,) = [e for e in events[second] if e.action == "line.friendship"]
    assert (changed.category, changed.actor_label) == (
        str(AuditCategory.OPERATION),
        "machine:line-login",
    )
    assert changed.target_id == str(mine_2.id)
    assert json.loads(changed.details) == {
        "before": "unknown",
        "after": "friend",
        "source": "login",
    }
    (call,) = friendship_calls(events[PLATFORM_TENANT_ID])  # the platform's chain only
    assert (call["method"], call["status"], call["service"]) == ("GET", 200, "line")
    assert not friendship_calls(events[first]) and not friendship_calls(events[second])
    assert_no_token(line_env.friendship_requests[-1], *events.values())


def test_not_a_friend_gets_no_call_out_until_added_at_sign_in(client, line_env):
    brigade = make_brigade({"第1分団": 2})
    member, other = sorted(brigade.in_unit("第1分団"))
    line_env.user = FakeUser(sub=brigade.sub_of(member))
    with messaging() as fake_messaging:
        first = sign_in(client, line_env)

        assert httpx.URL(first.authorize_url).params["bot_prompt"] == "aggressive"
        assert status_of(brigade.tenant_id, member)[0] == FriendStatus.NOT_FRIEND
        assert friend_label(brigade.tenant_id, member) == "未追加またはブロック"
        assert called_out(brigade, fake_messaging, "first-1") == {brigade.sub_of(other)}

        sign_in(client, line_env, add_friend=True)  # 友だち追加 on LINE's screen this time

        assert friend_label(brigade.tenant_id, member) == "友だち"
        assert brigade.sub_of(member) in called_out(brigade, fake_messaging, "next-1")


def called_out(brigade: Brigade, fake_messaging: FakeMessaging, reference: str) -> set[str]:
    """The LINE user ids a dispatch mail for 第1分団 reaches (its leader, always called, aside)."""
    source = make_source(brigade.tenant_id)
    text = body(units="本町団1", reference=reference)
    intake.receive(where(source), mail(source.address, text), envelope_from=SENDER)
    fake_messaging.deliveries.clear()
    outbox.send_tenant(brigade.tenant_id, outbox.QuotaGuard(), now=utcnow())
    sent = {u for d in fake_messaging.deliveries if d.endpoint == "multicast" for u in d.to}
    return sent - {brigade.sub_of(leader) for leader in brigade.leaders}


def test_a_status_learned_after_the_question_is_not_overwritten(client, line_env):
    """A follow event handled while LINE was being asked is newer than LINE's answer."""
    tenant = make_tenant()
    member = make_member(tenant)
    link_line(tenant, member.id, line_env.user.sub)
    newer = utcnow() + timedelta(minutes=5)
    set_status(tenant, member.id, FriendStatus.FRIEND, newer)

    sign_in(client, line_env)  # LINE answers "not a friend"

    assert line_env.friendship_requests
    assert status_of(tenant, member.id) == (FriendStatus.FRIEND, newer)


@pytest.mark.parametrize(
    ("before", "friend", "after"),
    [
        (FriendStatus.UNKNOWN, False, FriendStatus.NOT_FRIEND),
        (FriendStatus.FRIEND, False, FriendStatus.NOT_FRIEND),
        (FriendStatus.BLOCKED, False, FriendStatus.BLOCKED),  # the unfollow event said more
        (FriendStatus.BLOCKED, True, FriendStatus.FRIEND),
        (FriendStatus.NOT_FRIEND, True, FriendStatus.FRIEND),
    ],
)
def test_what_an_answer_makes_of_a_status(before, friend, after):
    assert learned(before, friend) == after
    assert after.reachable == (after == FriendStatus.FRIEND)


# ---------------------------------------------------------------------------
# A LINE that fails never stops the login


@pytest.mark.parametrize("failure", ["server_error", "refused", "timeout"])
def test_a_failed_question_keeps_the_status_and_the_login(
    client, line_env, engine, monkeypatch, failure
):
    tenant = make_tenant()
    member = make_member(tenant)
    link_line(tenant, member.id, line_env.user.sub)
    known = utcnow() - timedelta(days=1)
    set_status(tenant, member.id, FriendStatus.FRIEND, known)  # LINE would now say "not"
    if failure == "timeout":
        monkeypatch.setattr(line_login, "FRIENDSHIP_TIMEOUT_SECONDS", 0.2)
        line_env.friendship_delay = 1.0
    else:
        line_env.friendship_status = 500 if failure == "server_error" else 403
    since = last_audit_seq(engine, PLATFORM_TENANT_ID)

    done = sign_in(client, line_env)

    assert done.response.headers["location"] == "/"
    actor = sessions.resolve(client.cookies.get(sessions.COOKIE_NAME))
    assert (actor.tenant_id, actor.member_id) == (tenant, member.id)
    assert status_of(tenant, member.id) == (FriendStatus.FRIEND, known)
    platform = audit_events(engine, PLATFORM_TENANT_ID, after_seq=since)
    (call,) = friendship_calls(platform)
    if failure == "timeout":
        assert (call["status"], call["error"]) == (None, "ReadTimeout")
    else:
        assert (call["status"], call["error"]) == (line_env.friendship_status, "")
    (event,) = [e for e in platform if e.action == "external.call" and "friendship" in e.details]
    assert event.outcome == "failure"
    assert_no_token(line_env.friendship_requests[-1], platform, audit_events(engine, tenant))


def test_the_fake_refuses_an_access_token_it_did_not_issue(line_env):
    assert line.client().friendship("forged-token") is None
    assert line_env.friendship_requests == ["forged-token"]


# ---------------------------------------------------------------------------
# When nothing is asked


def test_nothing_is_asked_without_the_call_out_channel(client, line_env):
    tenant = make_tenant()
    member = make_member(tenant)
    link_line(tenant, member.id, line_env.user.sub)
    with configured({"HIKESHI_LINE_MESSAGING_TOKEN": "", "HIKESHI_LINE_MESSAGING_SECRET": ""}):
        done = sign_in(client, line_env)
        assert "bot_prompt" not in httpx.URL(done.authorize_url).params
        assert line_env.friendship_requests == []
        assert status_of(tenant, member.id) == (FriendStatus.UNKNOWN, None)

        line_env.user = FakeUser()  # linked nowhere yet
        sign_in(client, line_env)
    assert line_env.friendship_requests == []
    assert pending_answer(client) == (None, None)


# ---------------------------------------------------------------------------
# A member registering: the first login is asked, the link starts with its answer


def pending_answer(client: TestClient) -> tuple[bool | None, datetime | None]:
    session_id = sessions.resolve(client.cookies.get(sessions.COOKIE_NAME)).session_id
    with unit_of_work(None) as db:
        pending = db.get(LinePendingLogin, session_id)
        return pending.friend, pending.friend_at


def register(client: TestClient, tenant_id: uuid.UUID, member_id: uuid.UUID) -> None:
    issued = registrations.issue_registration(admin(tenant_id), member_id)
    response = client.post(
        "/auth/line/register",
        data={"user_id": issued.user_id, "code": issued.code},
        headers={"origin": "http://testserver"},
        follow_redirects=False,
    )
    assert response.headers["location"] == "/"
    actor = sessions.resolve(client.cookies.get(sessions.COOKIE_NAME))
    assert (actor.kind, actor.tenant_id, actor.member_id) == ("member", tenant_id, member_id)


def assert_stored_nowhere(owner_url: str, token: str) -> None:
    """No row of any table holds the access token (read as the owner, past row-level security)."""
    assert token
    owner = build_engine(owner_url)
    try:
        with owner.connect() as conn:
            for table in SQLModel.metadata.sorted_tables:
                for row in conn.execute(table.select()):
                    assert token not in repr(tuple(row)), table.name
    finally:
        owner.dispose()


@pytest.mark.parametrize(("friend", "label"), [(True, "友だち"), (False, "未追加またはブロック")])
def test_a_new_member_starts_with_the_first_logins_answer(
    client, line_env, engine, database_url, friend, label
):
    tenant = make_tenant()
    member = make_member(tenant)
    line_env.user.friend = friend
    before = utcnow()

    done = sign_in(client, line_env)

    assert done.response.headers["location"] == "/"
    assert len(line_env.friendship_requests) == 1  # asked though linked nowhere yet
    known, asked_at = pending_answer(client)
    assert known is friend and before <= asked_at <= utcnow()
    since = last_audit_seq(engine, tenant)

    register(client, tenant, member.id)

    assert status_of(tenant, member.id) == (
        FriendStatus(learned(FriendStatus.UNKNOWN, friend)),
        asked_at,
    )
    assert friend_label(tenant, member.id) == label
    events = audit_events(engine, tenant, after_seq=since)
    (changed,) = [e for e in events if e.action == "line.friendship"]
    (linked,) = [e for e in events if e.action == "line.link"]
    assert changed.request_id == linked.request_id  # the registration's transaction
    assert (changed.actor_label, changed.target_id) == ("machine:line-login", str(member.id))
    assert json.loads(changed.details) == {
        "before": "unknown",
        "after": "friend" if friend else "not_friend",
        "source": "login",
    }
    assert_stored_nowhere(database_url, line_env.friendship_requests[-1])


def test_a_failed_question_registers_the_member_as_unknown(client, line_env, engine):
    tenant = make_tenant()
    member = make_member(tenant)
    line_env.user.friend = True
    line_env.friendship_status = 500
    since = last_audit_seq(engine, tenant)

    sign_in(client, line_env)
    assert pending_answer(client) == (None, None)
    register(client, tenant, member.id)

    assert line_env.friendship_requests
    assert status_of(tenant, member.id) == (FriendStatus.UNKNOWN, None)
    assert friend_label(tenant, member.id) == "不明"
    events = audit_events(engine, tenant, after_seq=since)
    assert [e.action for e in events if e.action in ("line.link", "line.friendship")] == [
        "line.link"
    ]
