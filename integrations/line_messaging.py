"""LINE Messaging API as a client: multicast, push and reply messages, the validation of a
multicast's messages (sent to nobody), the monthly quota, and the webhook's signature check and
event list.

The HTTP work is line-bot-sdk v3's (its MessagingApi over one urllib3 pool per client); messages
are given as LINE's JSON objects and turned into the SDK's models. A call makes one attempt and
reports what came of it as a SendResult: retrying, with the same X-Line-Retry-Key so that LINE
delivers a message once, is the caller's (the outbox's backoff lives in the database).

Every HTTP call, answered or not, is handed to `record` once as a MessagingCall: endpoint, status,
latency, request id, retry key and the number of recipients, never a token, body, user id or
reply token.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

import urllib3
from linebot.v3 import SignatureValidator
from linebot.v3.messaging import (
    ApiClient,
    ApiException,
    ApiResponse,
    Configuration,
    MessagingApi,
    MulticastRequest,
    PushMessageRequest,
    QuotaType,
    ReplyMessageRequest,
    ValidateMessageRequest,
)
from pydantic.v1 import ValidationError

DEFAULT_API_URL = "https://api.line.me"
SERVICE = "line-messaging"
MAX_RECIPIENTS = 500  # multicast
MAX_MESSAGES = 5
MONTHLY_LIMIT_MESSAGE = "You have reached your monthly limit."

MULTICAST_PATH = "/v2/bot/message/multicast"
PUSH_PATH = "/v2/bot/message/push"
REPLY_PATH = "/v2/bot/message/reply"
VALIDATE_MULTICAST_PATH = "/v2/bot/message/validate/multicast"
QUOTA_PATH = "/v2/bot/message/quota"
CONSUMPTION_PATH = "/v2/bot/message/quota/consumption"


@dataclass(frozen=True)
class MessagingChannel:
    access_token: str = field(repr=False)
    channel_secret: str = field(repr=False)
    api_url: str = DEFAULT_API_URL


@dataclass(frozen=True)
class MessagingCall:
    """One HTTP call for the external-service log."""

    endpoint: str  # full URL without query
    method: str
    status: int | None  # None: no answer (timeout, connection error)
    latency_ms: float
    request_id: str  # X-Line-Request-Id of the answer, "" if none
    retry_key: str  # the X-Line-Retry-Key sent, "" if none
    recipients: int  # user ids the request addressed (reply: 1, quota calls: 0)
    error: str  # exception class of a call without answer, "" otherwise


@dataclass(frozen=True)
class SendResult:
    status: int | None
    request_id: str  # on a 409 for an accepted retry key: the earlier request's id
    accepted: bool
    retryable: bool
    quota_exceeded: bool
    retry_after: float | None
    error: str  # exception class of a call without answer, "" otherwise


@dataclass(frozen=True)
class Quota:
    limit: int | None  # None: no limit
    used: int

    @property
    def remaining(self) -> int | None:
        return None if self.limit is None else max(self.limit - self.used, 0)


class MessagingError(Exception):
    """A call that failed where no SendResult can say so; the message is a short code."""


class InvalidSignature(Exception):
    """A webhook request whose X-Line-Signature does not prove it came from LINE."""


Recorder = Callable[[MessagingCall], None]
_Model = TypeVar(
    "_Model", MulticastRequest, PushMessageRequest, ReplyMessageRequest, ValidateMessageRequest
)


@dataclass(frozen=True)
class _Answer:
    """What one call came to; error bodies stay inside this module."""

    status: int | None
    headers: Mapping[str, str]
    body: str
    data: Any
    error: str


def new_retry_key() -> str:
    """A fresh X-Line-Retry-Key (LINE takes a UUID)."""
    return str(uuid.uuid4())


class MessagingClient:
    """One channel's Messaging API; safe to share between a few threads."""

    def __init__(self, channel: MessagingChannel, record: Recorder, *, timeout: float = 10.0):
        self.api_url = channel.api_url.rstrip("/")
        self.record, self.timeout = record, timeout
        configuration = Configuration(host=self.api_url, access_token=channel.access_token)
        # urllib3 would otherwise retry failed connections by itself; one attempt per call keeps
        # every attempt in the log and leaves retrying to the outbox.
        configuration.retries = False
        self._client = ApiClient(configuration)
        self._api = MessagingApi(self._client)

    def __enter__(self) -> MessagingClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()
        # ApiClient.close only stops its thread pool; the open connections are urllib3's.
        self._client.rest_client.pool_manager.clear()

    def multicast(
        self, user_ids: Sequence[str], messages: Sequence[dict], *, retry_key: str
    ) -> SendResult:
        if not 1 <= len(user_ids) <= MAX_RECIPIENTS:
            raise ValueError(f"a multicast goes to 1 to {MAX_RECIPIENTS} users")
        request = _request(MulticastRequest, {"to": list(user_ids)}, messages)
        answer = self._call(
            MULTICAST_PATH,
            "POST",
            lambda **kw: self._api.multicast_with_http_info(request, retry_key, **kw),
            recipients=len(user_ids),
            retry_key=retry_key,
        )
        return _send_result(answer)

    def push(self, user_id: str, messages: Sequence[dict], *, retry_key: str) -> SendResult:
        request = _request(PushMessageRequest, {"to": user_id}, messages)
        answer = self._call(
            PUSH_PATH,
            "POST",
            lambda **kw: self._api.push_message_with_http_info(request, retry_key, **kw),
            recipients=1,
            retry_key=retry_key,
        )
        return _send_result(answer)

    def reply(self, reply_token: str, messages: Sequence[dict]) -> SendResult:
        request = _request(ReplyMessageRequest, {"replyToken": reply_token}, messages)
        answer = self._call(
            REPLY_PATH,
            "POST",
            lambda **kw: self._api.reply_message_with_http_info(request, **kw),
            recipients=1,
        )
        return _send_result(answer)

    def validate_multicast(self, messages: Sequence[dict]) -> SendResult:
        """LINE checks the messages, and the access token, as for a multicast, and sends them to
        nobody (the self-test's way down the whole path without reaching a member)."""
        request = _request(ValidateMessageRequest, {}, messages)
        answer = self._call(
            VALIDATE_MULTICAST_PATH,
            "POST",
            lambda **kw: self._api.validate_multicast_with_http_info(request, **kw),
            recipients=0,
        )
        return _send_result(answer)

    def quota(self) -> Quota:
        """This month's allowance and consumption; MessagingError if either read fails."""
        limit = self._read(QUOTA_PATH, self._api.get_message_quota_with_http_info)
        usage = self._read(CONSUMPTION_PATH, self._api.get_message_quota_consumption_with_http_info)
        return Quota(
            limit=limit.value if limit.type == QuotaType.LIMITED else None,
            used=usage.total_usage,
        )

    def _read(self, path: str, call: Callable[..., ApiResponse]) -> Any:
        try:
            answer = self._call(path, "GET", call, recipients=0)
        except ValueError:  # the SDK could not read a 2xx answer as the object LINE documents
            raise MessagingError("quota_unreadable") from None
        if answer.status is None:
            raise MessagingError(f"quota_no_answer:{answer.error}")
        if answer.status != 200:
            raise MessagingError(f"quota_http_{answer.status}")
        return answer.data

    def _call(
        self,
        path: str,
        method: str,
        call: Callable[..., ApiResponse],
        *,
        recipients: int,
        retry_key: str = "",
    ) -> _Answer:
        started = time.perf_counter()
        try:
            answer = _attempt(call, self.timeout)
        except Exception as exc:  # a fault of ours or of the SDK: logged as a call, then raised
            answer = _Answer(None, {}, "", None, type(exc).__name__)
            raise
        finally:
            self.record(
                MessagingCall(
                    endpoint=self.api_url + path,
                    method=method,
                    status=answer.status,
                    latency_ms=(time.perf_counter() - started) * 1000,
                    request_id=answer.headers.get("x-line-request-id", ""),
                    retry_key=retry_key,
                    recipients=recipients,
                    error=answer.error,
                )
            )
        return answer


def _attempt(call: Callable[..., ApiResponse], timeout: float) -> _Answer:
    """One request; an error status is an answer, a timeout or lost connection is none."""
    try:
        response = call(_request_timeout=timeout)
    except ApiException as exc:
        if not exc.status:  # the SDK's status 0: a TLS failure, nothing was answered
            return _Answer(None, {}, "", None, type(exc).__name__)
        return _Answer(exc.status, exc.headers or {}, exc.body or "", None, "")
    except urllib3.exceptions.HTTPError as exc:
        return _Answer(None, {}, "", None, type(exc).__name__)
    return _Answer(response.status_code, response.headers or {}, "", response.data, "")


def _request(model: type[_Model], fields: dict[str, Any], messages: Sequence[dict]) -> _Model:
    """The SDK's request model, checked before anything is sent (ValueError if invalid)."""
    if not 1 <= len(messages) <= MAX_MESSAGES:
        raise ValueError(f"a request carries 1 to {MAX_MESSAGES} messages")
    try:
        return model.from_dict({**fields, "messages": list(messages)})
    except ValidationError as exc:
        raise ValueError(f"not a valid LINE message: {_where(exc)}") from None
    except (KeyError, TypeError, ValueError):
        # `from None`: the SDK's own errors quote the message object, which must not reach logs.
        raise ValueError("not a valid LINE message object") from None


def _where(exc: ValidationError) -> str:
    """Where a model was refused and why (pydantic v1 messages never quote the value)."""
    model = exc.model.__name__
    return "; ".join(
        f"{model}.{'.'.join(map(str, error['loc']))}: {error['msg']}" for error in exc.errors()
    )


def _send_result(answer: _Answer) -> SendResult:
    status = answer.status
    request_id = answer.headers.get("x-line-request-id", "")
    if status == 409:  # this retry key was accepted before: the message went out then
        request_id = answer.headers.get("x-line-accepted-request-id", "")
    limited = status == 429 and _error_message(answer.body) == MONTHLY_LIMIT_MESSAGE
    return SendResult(
        status=status,
        request_id=request_id,
        accepted=status is not None and (200 <= status < 300 or status == 409),
        retryable=status is None or status >= 500 or (status == 429 and not limited),
        quota_exceeded=limited,
        retry_after=_retry_after(answer.headers) if status == 429 else None,
        error=answer.error,
    )


def _error_message(body: str) -> str:
    """The "message" of a LINE error body, "" if there is none."""
    try:
        data = json.loads(body)
    except ValueError:
        return ""
    return data.get("message", "") if isinstance(data, dict) else ""


def _retry_after(headers: Mapping[str, str]) -> float | None:
    """Retry-After as seconds from now: delta-seconds or an HTTP date (RFC 9110)."""
    value = headers.get("retry-after", "").strip()
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        return max(parsedate_to_datetime(value).timestamp() - time.time(), 0.0)
    except (TypeError, ValueError):
        return None


def verify_signature(body: bytes, signature: str | None, channel_secret: str) -> None:
    """X-Line-Signature = base64(HMAC-SHA256(channel secret, raw body)), compared in constant
    time; InvalidSignature unless it matches."""
    if not signature:
        raise InvalidSignature("missing")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidSignature("not_utf8") from None
    # The SDK's validator hashes text.encode("utf-8"); after a strict decode that is exactly the
    # raw body LINE signed, so its compare_digest check can be used as it is.
    if not SignatureValidator(channel_secret).validate(text, signature):
        raise InvalidSignature("mismatch")


def parse_events(body: bytes) -> list[dict]:
    """The events of a verified webhook body, as LINE sent them (none for LINE's verification
    call); ValueError for anything else."""
    try:
        payload = json.loads(body)
    except ValueError:
        # `from None`: a JSONDecodeError holds the whole body.
        raise ValueError("webhook body is not JSON") from None
    events = payload.get("events") if isinstance(payload, dict) else None
    if not isinstance(events, list) or not all(isinstance(event, dict) for event in events):
        raise ValueError("webhook body has no list of event objects")
    return events
