"""Notices by mail (#23): the operator's notice reaches each chosen brigade's administrators
(役職・権限 管理, active, with an address) through the relay, one mail each, received here by the
real SMTP receiver on a loopback port; every mail is an external-service event without address
or text; nobody else may send, and a brigade not chosen gets nothing."""

from __future__ import annotations

import email
import email.policy
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

import config
from core.timefmt import today_jst
from models.enums import Function, Level
from models.tenant import PLATFORM_TENANT_ID
from services import members, notice_mail, notices, tenant_lifecycle
from services.errors import NotFound, PermissionDenied, ValidationError
from tests.factories import (
    PLATFORM,
    actor_with,
    admin,
    audit_events,
    last_audit_seq,
    make_member,
    make_tenant,
    rank_id,
)
from tests.fakes.mail_relay import Relay, local_relay

START = datetime.now(UTC) + timedelta(days=2)


@pytest.fixture
def relay(monkeypatch) -> Iterator[Relay]:
    with local_relay(monkeypatch) as relay:
        yield relay


@pytest.fixture
def notice(engine) -> Iterator[uuid.UUID]:
    notice_id = notices.publish_notice(
        PLATFORM,
        kind="incident",
        title=f"障害のお知らせ {uuid.uuid4().hex[:6]}",
        body="地図が表示されません。復旧作業中です。",
        starts_at=START,
        ends_at=START + timedelta(hours=3),
    )
    yield notice_id
    if not next(n for n in notices.all_notices(PLATFORM) if n.id == notice_id).withdrawn:
        notices.withdraw_notice(PLATFORM, notice_id)


def address() -> str:
    return f"chief-{uuid.uuid4().hex[:8]}@brigade.example.jp"


@pytest.fixture
def brigades(engine) -> dict[str, object]:
    """Brigades a and b with a 団長 who has an address, a 団長 without one, a suspended 団長, and
    a plain member and a 分団長 with an address; brigade c with a 団長 who has an address."""
    made: dict[str, object] = {}
    for key in ("a", "b", "c"):
        tenant = make_tenant()
        chief = rank_id(tenant, "団長")
        made[key] = tenant
        made[f"{key}_chief"] = address()
        make_member(tenant, rank_id=chief, email=made[f"{key}_chief"])
        if key == "c":
            continue
        make_member(tenant, rank_id=chief, email="")
        suspended = make_member(tenant, rank_id=chief, email=address())
        members.suspend_member(admin(tenant), suspended.id)
        made[f"{key}_plain"] = address()
        make_member(tenant, email=made[f"{key}_plain"])
        # 分団長 may view 役職・権限 but not administer it
        make_member(tenant, rank_id=rank_id(tenant, "分団長"), email=address())
    return made


def test_each_chosen_brigades_administrators_get_one_mail(engine, relay, notice, brigades):
    start = last_audit_seq(engine, PLATFORM_TENANT_ID)
    result = notice_mail.mail_notice(PLATFORM, notice, brigades=[brigades["a"], brigades["b"]])

    assert result == notice_mail.MailResult(brigades=2, sent=2, failed=0, without_address=2)
    assert relay.recipients() == sorted([brigades["a_chief"], brigades["b_chief"]])
    for envelope, raw in relay.mails:  # one administrator per mail: no other address in it
        (to,) = envelope.rcpt_tos
        others = {brigades[k] for k in ("a_chief", "b_chief", "c_chief")} - {to}
        assert not any(o.encode() in raw for o in others)
        mail = email.message_from_bytes(raw, policy=email.policy.default)
        assert mail["To"] == to and mail["From"].addresses[0].username == "ops"
        assert "障害のお知らせ" in mail["Subject"]
        assert "地図が表示されません" in mail.get_content()

    events = audit_events(engine, PLATFORM_TENANT_ID, after_seq=start)
    calls = [e for e in events if e.action == "external.call"]
    assert len(calls) == 2 and {e.outcome for e in calls} == {"success"}
    for call in calls:
        details = json.loads(call.details)
        assert (details["service"], details["method"], details["status"]) == ("smtp", "SEND", 250)
        assert "@" not in call.details and "地図" not in call.details
    (sending,) = [e for e in events if e.action == "notice.mail"]
    assert json.loads(sending.details) | {"title": ""} == {
        "title": "",
        "brigades": 2,
        "sent": 2,
        "failed": 0,
        "without_address": 2,
    }
    (in_brigade,) = [e for e in audit_events(engine, brigades["a"]) if e.action == "notice.mail"]
    assert json.loads(in_brigade.details)["sent"] == 1


def test_a_brigade_not_chosen_gets_nothing(engine, relay, notice, brigades):
    notice_mail.mail_notice(PLATFORM, notice, brigades=[brigades["a"]])
    assert relay.recipients() == [brigades["a_chief"]]
    assert not [e for e in audit_events(engine, brigades["c"]) if e.action == "notice.mail"]


def test_a_cancelled_brigade_gets_nothing(engine, relay, notice, brigades):
    tenant_lifecycle.cancel_brigade(PLATFORM, brigades["c"], cancelled_on=today_jst())
    result = notice_mail.mail_notice(PLATFORM, notice, brigades=[brigades["a"], brigades["c"]])
    assert (result.brigades, relay.recipients()) == (1, [brigades["a_chief"]])


def test_a_refused_address_is_counted_and_the_others_still_go(engine, relay, notice, brigades):
    relay.refuse.add(brigades["a_chief"])
    start = last_audit_seq(engine, PLATFORM_TENANT_ID)
    result = notice_mail.mail_notice(PLATFORM, notice, brigades=[brigades["a"], brigades["b"]])
    assert (result.sent, result.failed) == (1, 1)
    assert relay.recipients() == [brigades["b_chief"]]
    calls = [
        e
        for e in audit_events(engine, PLATFORM_TENANT_ID, after_seq=start)
        if e.action == "external.call"
    ]
    assert sorted(e.outcome for e in calls) == ["failure", "success"]
    (failed,) = [e for e in audit_events(engine, brigades["a"]) if e.action == "notice.mail"]
    assert failed.outcome == "failure"


@pytest.mark.parametrize(
    "who",
    ["brigade_system", "brigade_full_rights"],
)
def test_only_the_operator_sends_notices_by_mail(engine, relay, notice, brigades, who):
    tenant = brigades["a"]
    actor = (
        admin(tenant)
        if who == "brigade_system"
        else actor_with(tenant, {f: Level.ADMIN for f in Function})
    )
    with pytest.raises(PermissionDenied):
        notice_mail.mail_notice(actor, notice, brigades=[tenant])
    assert relay.mails == []


def test_without_a_relay_nothing_is_sent(engine, notice, brigades):
    config.get_settings.cache_clear()
    assert not notice_mail.mail_available()
    with pytest.raises(ValidationError) as refused:
        notice_mail.mail_notice(PLATFORM, notice, brigades=[brigades["a"]])
    assert "HIKESHI_MAIL_RELAY_HOST" in refused.value.errors["mail"]


def test_a_withdrawn_notice_is_not_sent(engine, relay, notice, brigades):
    notices.withdraw_notice(PLATFORM, notice)
    with pytest.raises(NotFound):
        notice_mail.mail_notice(PLATFORM, notice, brigades=[brigades["a"]])
    assert relay.mails == []
