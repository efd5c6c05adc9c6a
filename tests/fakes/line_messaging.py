"""A local stand-in for the LINE Messaging API, served over real HTTP on 127.0.0.1 (with
tests.fakes.line_server.serve).

Endpoints as LINE documents them (https://developers.line.biz/en/reference/messaging-api/):
POST /v2/bot/message/multicast, /push and /reply, POST /v2/bot/message/validate/multicast (the
messages checked, sent to nobody), GET /v2/bot/message/quota and /quota/consumption, each with
a Bearer channel access token and an x-line-request-id on every answer. Sends honour
X-Line-Retry-Key (a UUID; a key already accepted answers 409 with x-line-accepted-request-id and
delivers nothing) and the monthly limit (429). Messages may be text or flex, checked for the
limits the application can reach; the detail wording of a 400 is this fake's where LINE does not
publish its own.

Tests make LINE slow (latency), fail (fail_next, rate_limit_next: sends and validations alike)
or accept a message whose answer never arrives in time (lose_response_next), and build the
webhook requests LINE would send to the application, signed with the channel secret.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import re
import secrets
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

MESSAGE_PATH = "/v2/bot/message"
SENDS = ("multicast", "push", "reply")
USER_ID = re.compile(r"U[0-9a-f]{32}")
MAX_RECIPIENTS = 500
MAX_MESSAGES = 5
MAX_TEXT = 5000
MAX_ALT_TEXT = 1500
MAX_POSTBACK_DATA = 300
MAX_QUICK_REPLIES = 13
RATE_LIMITED = "The API rate limit has been exceeded. Try again later."
MONTHLY_LIMIT = "You have reached your monthly limit."
ULID_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_user_id() -> str:
    """A LINE user id: "U" and 32 hex digits."""
    return "U" + secrets.token_hex(16)


def webhook_event_id() -> str:
    """A webhookEventId as LINE makes them: a ULID (48-bit milliseconds, 80 random bits)."""
    value = (int(time.time() * 1000) << 80) | secrets.randbits(80)
    return "".join(ULID_ALPHABET[(value >> shift) & 31] for shift in range(125, -1, -5))


@dataclass(frozen=True)
class Delivery:
    endpoint: str  # "multicast" | "push" | "reply"
    to: tuple[str, ...]
    messages: list[dict]
    retry_key: str
    request_id: str
    at: float


@dataclass(frozen=True)
class Seen:
    endpoint: str  # a send, "validate", "quota" or "consumption"
    status: int
    retry_key: str
    recipients: int


@dataclass(frozen=True)
class _Fault:
    """What the next send request meets: an error answer (status), or a late one (lose_for)."""

    status: int | None = None
    retry_after: int | None = None
    lose_for: float = 0.0


class FakeMessaging:
    def __init__(self, access_token: str | None = None, channel_secret: str | None = None):
        self.access_token = access_token or secrets.token_urlsafe(32)
        self.channel_secret = channel_secret or secrets.token_hex(16)
        self.bot_user_id = new_user_id()  # the webhook's "destination"
        self.base_url = ""
        self._lock = threading.Lock()
        self.reset()
        routes = [Route(f"{MESSAGE_PATH}/{name}", self.send, methods=["POST"]) for name in SENDS]
        routes += [
            Route(f"{MESSAGE_PATH}/validate/multicast", self.validate, methods=["POST"]),
            Route(f"{MESSAGE_PATH}/quota", self.quota, methods=["GET"]),
            Route(f"{MESSAGE_PATH}/quota/consumption", self.consumption, methods=["GET"]),
        ]
        self.app = Starlette(routes=routes)

    # --- what tests configure and read ---------------------------------------------------------

    def settings_env(self) -> dict[str, str]:
        """HIKESHI_* variables pointing the application at this server."""
        return {
            "HIKESHI_LINE_MESSAGING_TOKEN": self.access_token,
            "HIKESHI_LINE_MESSAGING_SECRET": self.channel_secret,
            "HIKESHI_LINE_API_URL": self.base_url,
        }

    def reset(self) -> None:
        """A fresh month and history for the next test, on the same channel and server."""
        with self._lock:
            self.latency = 0.0
            self.quota_limit: int | None = None
            self.used = 0
            self.deliveries: list[Delivery] = []
            self.requests: list[Seen] = []
            self._faults: deque[_Fault] = deque()
            self._accepted_keys: dict[str, str] = {}  # retry key -> request id that delivered
            self._reply_tokens: dict[str, str] = {}  # unused reply token -> user id

    def fail_next(self, status: int = 500, count: int = 1) -> None:
        """The next `count` send (or validate) requests are answered `status` and deliver
        nothing."""
        self._add_faults(_Fault(status=status), count)

    def rate_limit_next(self, count: int = 1, retry_after: int | None = None) -> None:
        """The next `count` send requests meet LINE's rate limit (429) and deliver nothing."""
        self._add_faults(_Fault(status=429, retry_after=retry_after), count)

    def lose_response_next(self, delay: float, count: int = 1) -> None:
        """The next `count` send requests are processed as usual (a message delivered, its retry
        key remembered), but answered only after `delay` seconds: past the client's timeout,
        the sender cannot tell that LINE accepted."""
        self._add_faults(_Fault(lose_for=delay), count)

    def _add_faults(self, fault: _Fault, count: int) -> None:
        with self._lock:
            self._faults.extend([fault] * count)

    def delivered_to(self, user_id: str) -> list[list[dict]]:
        """The message lists that reached this user, oldest first."""
        with self._lock:
            return [delivery.messages for delivery in self.deliveries if user_id in delivery.to]

    # --- webhook requests LINE would send to the application -------------------------------------

    def postback_event(
        self, user_id: str, data: str, *, event_id: str | None = None, redelivery: bool = False
    ) -> dict:
        """A postback (a button pressed) with a fresh reply token this fake accepts once."""
        event = self._event("postback", user_id, event_id=event_id, redelivery=redelivery)
        event["replyToken"] = self._issue_reply_token(user_id)
        event["postback"] = {"data": data}
        return event

    def follow_event(self, user_id: str) -> dict:
        event = self._event("follow", user_id)
        event["replyToken"] = self._issue_reply_token(user_id)
        event["follow"] = {"isUnblocked": False}
        return event

    def unfollow_event(self, user_id: str) -> dict:
        """Blocked by the user: LINE gives no reply token."""
        return self._event("unfollow", user_id)

    def webhook(
        self, events: list[dict], *, destination: str | None = None
    ) -> tuple[bytes, dict[str, str]]:
        """The raw body and headers of LINE's webhook request carrying these events."""
        payload = {"destination": destination or self.bot_user_id, "events": events}
        body = json.dumps(payload, ensure_ascii=False).encode()
        digest = hmac.new(self.channel_secret.encode(), body, hashlib.sha256).digest()
        headers = {
            "content-type": "application/json",
            "x-line-signature": base64.b64encode(digest).decode(),
        }
        return body, headers

    @staticmethod
    def _event(
        kind: str, user_id: str, *, event_id: str | None = None, redelivery: bool = False
    ) -> dict[str, Any]:
        return {
            "type": kind,
            "mode": "active",
            "timestamp": int(time.time() * 1000),
            "source": {"type": "user", "userId": user_id},
            "webhookEventId": event_id or webhook_event_id(),
            "deliveryContext": {"isRedelivery": redelivery},
        }

    def _issue_reply_token(self, user_id: str) -> str:
        token = secrets.token_hex(16)
        with self._lock:
            self._reply_tokens[token] = user_id
        return token

    # --- endpoints ---------------------------------------------------------------------------

    async def send(self, request: Request) -> Response:
        if self.latency:
            await asyncio.sleep(self.latency)
        endpoint = request.url.path.rsplit("/", 1)[-1]
        retry_key = request.headers.get("x-line-retry-key", "")
        body = await request.body()
        with self._lock:
            response, recipients, late = self._send(request, endpoint, retry_key, body)
            self.requests.append(Seen(endpoint, response.status_code, retry_key, recipients))
        if late:
            await asyncio.sleep(late)
        return response

    async def validate(self, request: Request) -> Response:
        """Validate a multicast's messages: checked as a multicast's are, delivered to nobody and
        not counted against the month's messages."""
        if self.latency:
            await asyncio.sleep(self.latency)
        body = await request.body()
        with self._lock:
            response, late = self._validate(request, body)
            self.requests.append(Seen("validate", response.status_code, "", 0))
        if late:
            await asyncio.sleep(late)
        return response

    async def quota(self, request: Request) -> Response:
        if self.latency:
            await asyncio.sleep(self.latency)
        if not self._authorized(request):
            response = _unauthorized()
        elif self.quota_limit is None:
            response = _answer({"type": "none"})
        else:
            response = _answer({"type": "limited", "value": self.quota_limit})
        with self._lock:
            self.requests.append(Seen("quota", response.status_code, "", 0))
        return response

    async def consumption(self, request: Request) -> Response:
        if self.latency:
            await asyncio.sleep(self.latency)
        with self._lock:
            if self._authorized(request):
                response = _answer({"totalUsage": self.used})
            else:
                response = _unauthorized()
            self.requests.append(Seen("consumption", response.status_code, "", 0))
        return response

    def _authorized(self, request: Request) -> bool:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        return scheme == "Bearer" and secrets.compare_digest(token, self.access_token)

    def _send(
        self, request: Request, endpoint: str, retry_key: str, body: bytes
    ) -> tuple[Response, int, float]:
        """One send request under the lock: (answer, recipients addressed, answer delay)."""
        payload = _json_object(body)
        recipients = _recipients(endpoint, payload)
        if not self._authorized(request):
            return _unauthorized(), recipients, 0.0
        fault = self._faults.popleft() if self._faults else _Fault()
        if fault.status is not None:
            return _fault_answer(fault.status, fault.retry_after), recipients, 0.0
        return self._process(endpoint, retry_key, payload), recipients, fault.lose_for

    def _validate(self, request: Request, body: bytes) -> tuple[Response, float]:
        if not self._authorized(request):
            return _unauthorized(), 0.0
        fault = self._faults.popleft() if self._faults else _Fault()
        if fault.status is not None:
            return _fault_answer(fault.status, fault.retry_after), 0.0
        payload = _json_object(body)
        if payload is None:
            return _error(400, "The request body could not be parsed as JSON"), 0.0
        if details := _messages_problems(payload):
            return _invalid(details), fault.lose_for
        return _answer({}), fault.lose_for

    def _process(self, endpoint: str, retry_key: str, payload: dict | None) -> Response:
        if payload is None:
            return _error(400, "The request body could not be parsed as JSON")
        if problem := _retry_key_problem(endpoint, retry_key):
            return _error(400, problem)
        if retry_key in self._accepted_keys:
            return _error(
                409,
                "The retry key is already accepted",
                {"x-line-accepted-request-id": self._accepted_keys[retry_key]},
            )
        if details := _request_problems(endpoint, payload):
            return _invalid(details)
        if endpoint == "reply":
            return self._reply(payload)
        to = (payload["to"],) if endpoint == "push" else tuple(payload["to"])
        if self.quota_limit is not None and self.used + len(to) > self.quota_limit:
            return _error(429, MONTHLY_LIMIT)
        self.used += len(to)
        return self._deliver(endpoint, to, payload["messages"], retry_key)

    def _reply(self, payload: dict) -> Response:
        user_id = self._reply_tokens.pop(payload["replyToken"], None)  # a token works once
        if user_id is None:
            return _error(400, "Invalid reply token")
        return self._deliver("reply", (user_id,), payload["messages"], "")

    def _deliver(self, endpoint: str, to: tuple[str, ...], messages: list, key: str) -> Response:
        request_id = str(uuid.uuid4())
        self.deliveries.append(Delivery(endpoint, to, messages, key, request_id, time.time()))
        if key:
            self._accepted_keys[key] = request_id
        if endpoint == "multicast":
            return _answer({}, request_id=request_id)
        sent = [
            {"id": str(secrets.randbelow(10**18)), "quoteToken": secrets.token_urlsafe(24)}
            for _ in messages
        ]
        return _answer({"sentMessages": sent}, request_id=request_id)


def _json_object(body: bytes) -> dict | None:
    try:
        payload = json.loads(body)
    except ValueError:
        return None
    return payload if isinstance(payload, dict) else None


def _recipients(endpoint: str, payload: dict | None) -> int:
    if endpoint != "multicast":
        return 1
    to = (payload or {}).get("to")
    return len(to) if isinstance(to, list) else 0


def _retry_key_problem(endpoint: str, retry_key: str) -> str:
    if not retry_key:
        return ""
    if endpoint == "reply":  # LINE takes retry keys on push, multicast, narrowcast, broadcast
        return "X-Line-Retry-Key is not supported by this API"
    try:
        uuid.UUID(retry_key)
    except ValueError:
        return "X-Line-Retry-Key must be a UUID"
    return ""


def _request_problems(endpoint: str, payload: dict) -> list[dict[str, str]]:
    return _recipient_problems(endpoint, payload) + _messages_problems(payload)


def _messages_problems(payload: dict) -> list[dict[str, str]]:
    messages = payload.get("messages")
    if not isinstance(messages, list) or not 1 <= len(messages) <= MAX_MESSAGES:
        return [_detail("messages", f"Size must be between 1 and {MAX_MESSAGES}")]
    problems = []
    for index, message in enumerate(messages):
        problems += _message_problems(f"messages[{index}]", message)
    return problems


def _recipient_problems(endpoint: str, payload: dict) -> list[dict[str, str]]:
    if endpoint == "reply":
        token = payload.get("replyToken")
        return (
            [] if isinstance(token, str) and token else [_detail("replyToken", "May not be empty")]
        )
    to = payload.get("to")
    if endpoint == "push":
        return [] if _is_user_id(to) else [_detail("to", "Must be a user ID")]
    if not isinstance(to, list) or not 1 <= len(to) <= MAX_RECIPIENTS:
        return [_detail("to", f"Size must be between 1 and {MAX_RECIPIENTS}")]
    return [
        _detail(f"to[{i}]", "Must be a user ID") for i, u in enumerate(to) if not _is_user_id(u)
    ]


def _is_user_id(value: object) -> bool:
    return isinstance(value, str) and USER_ID.fullmatch(value) is not None


def _message_problems(where: str, message: object) -> list[dict[str, str]]:
    if not isinstance(message, dict):
        return [_detail(where, "Must be a message object")]
    kind = message.get("type")
    if kind == "text":
        problems = _length(f"{where}.text", message.get("text"), MAX_TEXT)
    elif kind == "flex":
        problems = _length(f"{where}.altText", message.get("altText"), MAX_ALT_TEXT)
        if not isinstance(message.get("contents"), dict):
            problems.append(_detail(f"{where}.contents", "Must be a container object"))
    else:
        return [_detail(f"{where}.type", "This fake takes text and flex messages")]
    problems += _quick_reply_problems(where, message.get("quickReply"))
    for path, action in _postback_actions(where, message):
        problems += _length(f"{path}.data", action.get("data"), MAX_POSTBACK_DATA, shortest=0)
    return problems


def _quick_reply_problems(where: str, quick_reply: object) -> list[dict[str, str]]:
    if quick_reply is None:
        return []
    items = quick_reply.get("items") if isinstance(quick_reply, dict) else None
    if isinstance(items, list) and 1 <= len(items) <= MAX_QUICK_REPLIES:
        return []
    return [_detail(f"{where}.quickReply.items", f"Size must be between 1 and {MAX_QUICK_REPLIES}")]


def _length(where: str, value: object, longest: int, *, shortest: int = 1) -> list[dict[str, str]]:
    if not isinstance(value, str):
        return [_detail(where, "Must be specified")]
    if not shortest <= len(value) <= longest:
        return [_detail(where, f"Length must be between {shortest} and {longest}")]
    return []


def _postback_actions(where: str, node: object) -> Iterator[tuple[str, dict]]:
    """Every postback action in a message, wherever it sits (buttons, quick replies, bubbles)."""
    if isinstance(node, dict):
        if node.get("type") == "postback" and "data" in node:
            yield where, node
        for key, value in node.items():
            yield from _postback_actions(f"{where}.{key}", value)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _postback_actions(f"{where}[{index}]", value)


def _detail(where: str, message: str) -> dict[str, str]:
    return {"message": message, "property": where}


def _answer(
    body: dict, status: int = 200, *, request_id: str = "", headers: dict[str, str] | None = None
) -> JSONResponse:
    """Every answer of LINE's carries a request id of its own."""
    headers = {**(headers or {}), "x-line-request-id": request_id or str(uuid.uuid4())}
    return JSONResponse(body, status_code=status, headers=headers)


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return _answer({"message": message}, status, headers=headers)


def _invalid(details: list[dict[str, str]]) -> JSONResponse:
    message = f"The request body has {len(details)} error(s)"
    return _answer({"message": message, "details": details}, 400)


def _unauthorized() -> JSONResponse:
    return _error(
        401,
        "Authentication failed. Confirm that the access token in the authorization header is valid.",
    )


def _fault_answer(status: int, retry_after: int | None) -> JSONResponse:
    if status != 429:
        return _error(status, HTTPStatus(status).phrase)
    headers = {"retry-after": str(retry_after)} if retry_after is not None else None
    return _error(429, RATE_LIMITED, headers)
