"""The Messaging API client against the local fake of LINE's Messaging API, over loopback HTTP."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from integrations.line_messaging import (
    MAX_MESSAGES,
    MAX_RECIPIENTS,
    InvalidSignature,
    MessagingCall,
    MessagingChannel,
    MessagingClient,
    MessagingError,
    Quota,
    new_retry_key,
    parse_events,
    verify_signature,
)
from tests.fakes.line_messaging import FakeMessaging, new_user_id
from tests.fakes.line_server import serve

TEXT = {"type": "text", "text": "火災出動 消防団第1分団"}


def answer_buttons(data: str = "answer=yes") -> dict:
    """A text message with 参加/不参加 quick replies, as the application sends them."""
    items = [
        {"type": "action", "action": {"type": "postback", "label": label, "data": data}}
        for label in ("参加", "不参加")
    ]
    return {"type": "text", "text": "出動できますか", "quickReply": {"items": items}}


FLEX = {
    "type": "flex",
    "altText": "出動指令",
    "contents": {
        "type": "bubble",
        "body": {
            "type": "box",
            "layout": "vertical",
            "contents": [
                {"type": "text", "text": "建物火災", "weight": "bold"},
                {
                    "type": "button",
                    "action": {"type": "postback", "label": "参加", "data": "incident=1"},
                },
            ],
        },
    },
}


@pytest.fixture(scope="module")
def served() -> Iterator[FakeMessaging]:
    # One server for the module: stopping one takes uvicorn 0.2 s.
    with serve(FakeMessaging()) as fake:
        yield fake


@pytest.fixture
def fake(served: FakeMessaging) -> FakeMessaging:
    served.reset()
    return served


@pytest.fixture
def calls() -> list[MessagingCall]:
    return []


def client_for(
    fake: FakeMessaging, calls: list[MessagingCall], *, token: str = "", timeout: float = 5.0
) -> MessagingClient:
    channel = MessagingChannel(token or fake.access_token, fake.channel_secret, fake.base_url)
    return MessagingClient(channel, calls.append, timeout=timeout)


@pytest.fixture
def client(fake: FakeMessaging, calls: list[MessagingCall]) -> Iterator[MessagingClient]:
    with client_for(fake, calls) as made:
        yield made


# --- sending ---------------------------------------------------------------------------------


def test_multicast_reaches_exactly_the_given_users(fake, calls, client):
    members, bystander = [new_user_id() for _ in range(3)], new_user_id()
    key = new_retry_key()

    result = client.multicast(members, [TEXT, FLEX, answer_buttons()], retry_key=key)

    assert (result.status, result.accepted, result.retryable, result.error) == (
        200,
        True,
        False,
        "",
    )
    [delivery] = fake.deliveries
    assert delivery.endpoint == "multicast"
    assert delivery.to == tuple(members)
    assert delivery.retry_key == key
    assert result.request_id == delivery.request_id != ""
    for member in members:
        assert fake.delivered_to(member) == [delivery.messages]
    assert fake.delivered_to(bystander) == []
    assert [message["type"] for message in delivery.messages] == ["text", "flex", "text"]
    assert delivery.messages[1]["contents"] == FLEX["contents"]
    assert delivery.messages[2]["quickReply"] == answer_buttons()["quickReply"]
    assert fake.used == 3
    [call] = calls
    assert call.endpoint == fake.base_url + "/v2/bot/message/multicast"
    assert (call.method, call.status, call.recipients) == ("POST", 200, 3)
    assert (call.request_id, call.retry_key, call.error) == (delivery.request_id, key, "")
    assert call.latency_ms > 0


def test_push_reaches_one_user(fake, calls, client):
    member = new_user_id()

    result = client.push(member, [TEXT], retry_key=new_retry_key())

    assert result.accepted
    assert fake.delivered_to(member) == [[TEXT]]
    assert fake.deliveries[0].endpoint == "push"
    assert (calls[0].endpoint, calls[0].recipients) == (fake.base_url + "/v2/bot/message/push", 1)


@pytest.mark.parametrize(
    ("recipients", "messages"),
    [
        (MAX_RECIPIENTS + 1, 1),
        (0, 1),
        (1, MAX_MESSAGES + 1),
        (1, 0),
    ],
)
def test_oversized_or_empty_multicast_is_refused_before_any_request(
    fake, calls, client, recipients, messages
):
    with pytest.raises(ValueError):
        client.multicast(
            [new_user_id() for _ in range(recipients)],
            [TEXT] * messages,
            retry_key=new_retry_key(),
        )

    assert fake.requests == []
    assert calls == []


def test_the_largest_multicast_is_sent(fake, client):
    members = [new_user_id() for _ in range(MAX_RECIPIENTS)]

    result = client.multicast(members, [TEXT] * MAX_MESSAGES, retry_key=new_retry_key())

    assert result.accepted
    assert fake.deliveries[0].to == tuple(members)
    assert len(fake.deliveries[0].messages) == MAX_MESSAGES


def test_server_error_is_retryable_and_the_same_retry_key_delivers_once(fake, calls, client):
    members, key = [new_user_id(), new_user_id()], new_retry_key()
    fake.fail_next(503)

    failed = client.multicast(members, [TEXT], retry_key=key)

    assert (failed.status, failed.accepted, failed.retryable) == (503, False, True)
    assert fake.deliveries == []

    retried = client.multicast(members, [TEXT], retry_key=key)
    again = client.multicast(members, [TEXT], retry_key=key)

    assert (retried.status, retried.accepted) == (200, True)
    assert (again.status, again.accepted, again.retryable) == (409, True, False)
    assert again.request_id == retried.request_id
    assert len(fake.deliveries) == 1
    assert fake.delivered_to(members[0]) == [[TEXT]]
    assert [call.status for call in calls] == [503, 200, 409]
    assert {call.retry_key for call in calls} == {key}


def test_lost_answer_then_retry_is_accepted_with_the_first_request_id(fake, calls):
    member, key = new_user_id(), new_retry_key()
    fake.lose_response_next(delay=1.0)

    with client_for(fake, calls, timeout=0.5) as client:
        lost = client.push(member, [TEXT], retry_key=key)
        retried = client.push(member, [TEXT], retry_key=key)

    assert (lost.status, lost.accepted, lost.retryable) == (None, False, True)
    assert lost.error == "ReadTimeoutError"
    [delivery] = fake.deliveries
    assert (retried.status, retried.accepted, retried.retryable) == (409, True, False)
    assert retried.request_id == delivery.request_id
    assert fake.delivered_to(member) == [[TEXT]]
    assert (calls[0].status, calls[0].error, calls[0].request_id) == (None, "ReadTimeoutError", "")
    assert 500 <= calls[0].latency_ms < 1000
    # The 409 answer has a request id of its own; the accepted one is the first request's.
    assert calls[1].request_id not in ("", delivery.request_id)


def test_no_server_is_a_retryable_call_without_answer(calls):
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{closed.getsockname()[1]}"
    channel = MessagingChannel("token", "secret", url)

    with MessagingClient(channel, calls.append, timeout=1.0) as client:
        result = client.push(new_user_id(), [TEXT], retry_key=new_retry_key())

    assert (result.status, result.accepted, result.retryable) == (None, False, True)
    assert result.error == calls[0].error == "NewConnectionError"
    assert calls[0].status is None


def test_rate_limit_is_retryable_after_the_given_time(fake, client):
    fake.rate_limit_next(retry_after=7)

    result = client.multicast([new_user_id()], [TEXT], retry_key=new_retry_key())

    assert (result.status, result.accepted, result.retryable) == (429, False, True)
    assert (result.quota_exceeded, result.retry_after) == (False, 7.0)
    assert fake.deliveries == []


def test_monthly_limit_is_not_retryable(fake, client):
    fake.quota_limit = 3
    first = client.multicast([new_user_id(), new_user_id()], [TEXT], retry_key=new_retry_key())

    over = client.multicast([new_user_id(), new_user_id()], [TEXT], retry_key=new_retry_key())
    last = client.push(new_user_id(), [TEXT, TEXT], retry_key=new_retry_key())

    assert first.accepted
    assert (over.status, over.accepted, over.retryable) == (429, False, False)
    assert (over.quota_exceeded, over.retry_after) == (True, None)
    assert last.accepted  # one recipient fits, however many messages it gets
    assert fake.used == 3
    assert len(fake.deliveries) == 2


def test_refused_request_is_neither_accepted_nor_retryable(fake, calls, client):
    too_long = {"type": "text", "text": "火" * 5001}

    result = client.push(new_user_id(), [too_long], retry_key=new_retry_key())

    assert (result.status, result.accepted, result.retryable) == (400, False, False)
    assert fake.deliveries == []
    assert calls[0].status == 400


def test_validation_checks_messages_and_token_and_delivers_nothing(fake, calls, client):
    result = client.validate_multicast([TEXT, FLEX])

    assert (result.status, result.accepted, result.retryable) == (200, True, False)
    assert fake.deliveries == [] and fake.used == 0
    [call] = calls
    assert call.endpoint == fake.base_url + "/v2/bot/message/validate/multicast"
    assert (call.method, call.recipients, call.retry_key) == ("POST", 0, "")
    too_long = {"type": "text", "text": "火" * 5001}
    assert client.validate_multicast([too_long]).status == 400
    fake.fail_next(503)
    assert client.validate_multicast([TEXT]).retryable
    with client_for(fake, calls, token="not-the-token") as wrong:
        assert wrong.validate_multicast([TEXT]).status == 401
    assert [(r.endpoint, r.status) for r in fake.requests] == [
        ("validate", 200),
        ("validate", 400),
        ("validate", 503),
        ("validate", 401),
    ]
    assert fake.deliveries == []


def test_wrong_access_token_is_refused(fake, calls):
    with client_for(fake, calls, token="not-the-token") as client:
        result = client.push(new_user_id(), [TEXT], retry_key=new_retry_key())

    assert (result.status, result.accepted, result.retryable) == (401, False, False)
    assert fake.deliveries == []


def test_retry_key_must_be_a_uuid(fake, client):
    result = client.push(new_user_id(), [TEXT], retry_key="outbox-17")

    assert (result.status, result.accepted, result.retryable) == (400, False, False)
    assert fake.deliveries == []


# --- postback data and reply tokens ------------------------------------------------------------


def test_postback_data_over_300_characters_is_refused_before_sending(fake, calls, client):
    with pytest.raises(ValueError, match="300"):
        client.push(new_user_id(), [answer_buttons("d" * 301)], retry_key=new_retry_key())

    assert fake.requests == []
    assert calls == []
    assert client.push(
        new_user_id(), [answer_buttons("d" * 300)], retry_key=new_retry_key()
    ).accepted


def test_fake_refuses_postback_data_over_300_characters_anywhere(fake):
    """The SDK checks this limit before sending; the fake checks it too, wherever the action
    sits, for a sender that does not go through the SDK."""
    flex = json.loads(json.dumps(FLEX))
    flex["contents"]["body"]["contents"][1]["action"]["data"] = "d" * 301
    body = {"to": new_user_id(), "messages": [TEXT, flex]}

    answer = httpx.post(
        fake.base_url + "/v2/bot/message/push",
        json=body,
        headers={"authorization": f"Bearer {fake.access_token}"},
    )

    assert answer.status_code == 400
    assert answer.json() == {
        "message": "The request body has 1 error(s)",
        "details": [
            {
                "message": "Length must be between 0 and 300",
                "property": "messages[1].contents.body.contents[1].action.data",
            }
        ],
    }
    assert answer.headers["x-line-request-id"]
    assert fake.deliveries == []


def test_reply_token_works_once(fake, calls, client):
    member = new_user_id()
    event = fake.postback_event(member, "answer=yes")

    first = client.reply(event["replyToken"], [TEXT])
    second = client.reply(event["replyToken"], [TEXT])

    assert (first.status, first.accepted) == (200, True)
    assert (second.status, second.accepted, second.retryable) == (400, False, False)
    assert [(d.endpoint, d.to) for d in fake.deliveries] == [("reply", (member,))]
    assert fake.used == 0  # replies are free
    assert [(call.recipients, call.retry_key) for call in calls] == [(1, ""), (1, "")]


def test_unknown_reply_token_is_refused(fake, client):
    result = client.reply("0" * 32, [TEXT])

    assert (result.status, result.accepted) == (400, False)
    assert fake.deliveries == []


# --- quota -------------------------------------------------------------------------------------


def test_quota_unlimited_and_limited(fake, calls, client):
    assert client.quota() == Quota(limit=None, used=0)
    assert client.quota().remaining is None

    client.multicast([new_user_id(), new_user_id()], [TEXT], retry_key=new_retry_key())
    fake.quota_limit = 10
    quota = client.quota()

    assert quota == Quota(limit=10, used=2)
    assert quota.remaining == 8
    reads = [(call.method, call.endpoint, call.recipients) for call in calls[-2:]]
    assert reads == [
        ("GET", fake.base_url + "/v2/bot/message/quota", 0),
        ("GET", fake.base_url + "/v2/bot/message/quota/consumption", 0),
    ]


def test_quota_read_failure_raises(fake, calls):
    with (
        client_for(fake, calls, token="not-the-token") as client,
        pytest.raises(MessagingError, match="quota_http_401") as raised,
    ):
        client.quota()

    assert "not-the-token" not in str(raised.value)
    assert [call.status for call in calls] == [401]


# --- the recorder ------------------------------------------------------------------------------


def test_recorder_gets_every_call_once_and_never_a_secret(fake, calls, client):
    members = [new_user_id(), new_user_id()]
    event = fake.postback_event(members[0], "answer=yes")
    fake.fail_next(500)

    client.multicast(members, [TEXT], retry_key=new_retry_key())
    client.multicast(members, [TEXT], retry_key=new_retry_key())
    client.push(members[1], [TEXT], retry_key=new_retry_key())
    client.reply(event["replyToken"], [TEXT])
    client.quota()

    assert [(call.method, call.status) for call in calls] == [
        ("POST", 500),
        ("POST", 200),
        ("POST", 200),
        ("POST", 200),
        ("GET", 200),
        ("GET", 200),
    ]
    assert [call.recipients for call in calls] == [2, 2, 1, 1, 0, 0]
    assert all(call.request_id and call.latency_ms > 0 for call in calls)
    private = [fake.access_token, fake.channel_secret, event["replyToken"], *members]
    for call in calls:
        assert not any(value in repr(call) for value in private), call
    channel = MessagingChannel(fake.access_token, fake.channel_secret, fake.base_url)
    assert fake.access_token not in repr(channel)
    assert fake.channel_secret not in repr(channel)


def test_one_client_serves_several_threads_at_once(fake, calls, client):
    fake.latency = 0.4
    members = [new_user_id() for _ in range(4)]
    results = {}

    def send(member: str) -> None:
        results[member] = client.push(member, [TEXT], retry_key=new_retry_key())

    threads = [threading.Thread(target=send, args=(member,)) for member in members]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert time.monotonic() - started < 4 * 0.4  # overlapped, not one after another
    assert all(results[member].accepted for member in members)
    assert all(fake.delivered_to(member) == [[TEXT]] for member in members)
    assert len(calls) == 4


# --- webhook -----------------------------------------------------------------------------------


@pytest.fixture
def line() -> FakeMessaging:
    """The webhook side needs no server: LINE's requests are built and signed locally."""
    return FakeMessaging()


def sign(body: bytes, secret: str) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def test_signature_of_a_webhook_from_line_is_valid(line):
    event = line.postback_event(new_user_id(), "answer=yes")
    body, headers = line.webhook([event])

    verify_signature(body, headers["x-line-signature"], line.channel_secret)

    assert parse_events(body) == [event]


def test_tampered_body_fails_the_signature(line):
    body, headers = line.webhook([line.postback_event(new_user_id(), "answer=yes")])
    tampered = body.replace(b"answer=yes", b"answer=no!")

    with pytest.raises(InvalidSignature):
        verify_signature(tampered, headers["x-line-signature"], line.channel_secret)


def test_signature_with_another_secret_fails(line):
    body, _headers = line.webhook([line.follow_event(new_user_id())])

    with pytest.raises(InvalidSignature):
        verify_signature(body, sign(body, "another-secret"), line.channel_secret)


@pytest.mark.parametrize("signature", [None, ""])
def test_missing_signature_fails(line, signature):
    body, _headers = line.webhook([line.unfollow_event(new_user_id())])

    with pytest.raises(InvalidSignature):
        verify_signature(body, signature, line.channel_secret)


def test_body_that_is_not_utf8_fails_even_when_signed(line):
    body = b'{"destination": "\xff", "events": []}'

    with pytest.raises(InvalidSignature):
        verify_signature(body, sign(body, line.channel_secret), line.channel_secret)


def test_events_of_a_webhook_are_kept_as_line_sent_them(line):
    member = new_user_id()
    events = [
        line.follow_event(member),
        line.postback_event(
            member, "answer=yes", event_id="01HZZZZZZZZZZZZZZZZZZZZZZZ", redelivery=True
        ),
        line.unfollow_event(member),
    ]
    body, _headers = line.webhook(events)

    parsed = parse_events(body)

    assert parsed == events
    assert "replyToken" not in parsed[2]
    assert parsed[1]["deliveryContext"] == {"isRedelivery": True}
    assert parsed[1]["webhookEventId"] == "01HZZZZZZZZZZZZZZZZZZZZZZZ"
    assert len(parsed[0]["webhookEventId"]) == 26


def test_verification_call_has_no_events():
    assert parse_events(b'{"destination": "U' + b"0" * 32 + b'", "events": []}') == []


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"[]",
        b'{"destination": "U1"}',
        b'{"events": {}}',
        b'{"events": [1]}',
        b"\xff",
    ],
)
def test_garbage_is_not_a_webhook_body(body):
    with pytest.raises(ValueError):
        parse_events(body)
