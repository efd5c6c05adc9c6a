"""Recording the mail-reception and external-service categories of the event log (white paper
12.4.1): what arrived by mail and what we sent to or asked of outside services, never a body,
header, token or personal identifier. Reading and searching the log is services/event_log.py."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from sqlmodel import Session

from core.actor import Actor
from integrations.http import ExternalCall
from models.enums import AuditCategory
from services import audit
from services.db import unit_of_work
from services.errors import ValidationError

PARSE_RESULT = re.compile(r"[a-z][a-z0-9_]{0,39}")
METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"})
# IMAP commands a mailbox poller reports (integrations/mail.py); they carry no status code
IMAP_COMMANDS = frozenset({"LOGIN", "CAPABILITY", "SELECT", "SEARCH", "FETCH", "STORE", "IDLE"})
# a mail handed to the SMTP relay (integrations/mail.py SmtpRelay); status is its reply code
SMTP_COMMANDS = frozenset({"SEND"})
SERVICE = re.compile(r"[a-z][a-z0-9_-]{0,39}")
RETRY_KEY = re.compile(r"[A-Za-z0-9._:-]{0,64}")
ERROR_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.]{0,59}")
# a path segment that identifies someone or something (LINE user/group/room ids, tokens, long
# numbers) is replaced, so an endpoint never carries a personal identifier
ID_SEGMENT = re.compile(r"^(?:[UCR][0-9a-f]{32}|(?=[^/]*\d)[A-Za-z0-9._~-]{16,}|\d{6,})$")


def message_id_hash(message_id: str) -> str:
    return hashlib.sha256(message_id.strip().encode()).hexdigest()[:32] if message_id else ""


def record_mail_event(
    actor: Actor,
    *,
    sender: str,
    subject: str,
    size_bytes: int,
    parse_result: str,
    message_id: str = "",
    session: Session | None = None,
) -> None:
    """One received mail: sender and subject go to the encrypted part, only the size, the
    parse result and a hash of the Message-ID stay readable."""
    errors: dict[str, str] = {}
    if not PARSE_RESULT.fullmatch(parse_result or ""):
        errors["parse_result"] = "解析結果は英小文字の識別子で指定してください。"
    if not isinstance(size_bytes, int) or size_bytes < 0:
        errors["size_bytes"] = "サイズは0以上の整数で指定してください。"
    if errors:
        raise ValidationError(errors)
    digest = message_id_hash(message_id)
    _record(
        actor,
        session,
        category=AuditCategory.MAIL,
        action="mail.receive",
        outcome="success" if parse_result == "ok" else "failure",
        target_type="mail",
        target_id=digest,
        details={"size_bytes": size_bytes, "parse_result": parse_result, "message_id": digest},
        personal={"sender": sender[:320], "subject": subject[:500]},
    )


def external_call_recorder(actor: Actor, **extra: Any) -> Callable[[ExternalCall], None]:
    """What an integrations/ client calls after each request: one external.call event, with
    `extra` (request_id, recipients ...) added to each."""

    def record(call: ExternalCall) -> None:
        record_external_call(
            actor,
            service=call.service,
            endpoint=call.endpoint,
            method=call.method,
            status=call.status,
            latency_ms=call.latency_ms,
            error=call.error,
            **extra,
        )

    return record


def record_external_call(
    actor: Actor,
    *,
    service: str,
    endpoint: str,
    method: str,
    status: int | None,
    latency_ms: float,
    retry_key: str = "",
    attempt: int = 1,
    error: str = "",
    request_id: str = "",
    recipients: int | None = None,
    quota_remaining: int | None = None,
    session: Session | None = None,
) -> None:
    """One call to LINE or another service. Takes no headers or bodies, so no token or message
    text can reach the log; the endpoint keeps only scheme, host and path, identifiers masked.
    error is an exception class name (e.g. "ConnectTimeout"), never its message."""
    method = (method or "").upper()
    errors: dict[str, str] = {}
    if not SERVICE.fullmatch(service or ""):
        errors["service"] = "サービス名は英小文字の識別子で指定してください。"
    if method not in METHODS | IMAP_COMMANDS | SMTP_COMMANDS:
        errors["method"] = "HTTPメソッドまたはIMAP・SMTPコマンドが正しくありません。"
    if status is not None and not 100 <= status <= 599:
        errors["status"] = "ステータスコードが正しくありません。"
    if latency_ms < 0 or attempt < 1:
        errors["latency_ms"] = "所要時間・試行回数が正しくありません。"
    if not RETRY_KEY.fullmatch(retry_key or ""):
        errors["retry_key"] = "リトライキーが正しくありません。"
    if not RETRY_KEY.fullmatch(request_id or ""):
        errors["request_id"] = "リクエストIDが正しくありません。"
    if error and not ERROR_NAME.fullmatch(error):
        errors["error"] = "エラーは例外クラス名で指定してください。"
    if errors:
        raise ValidationError(errors)
    safe = safe_endpoint(endpoint)
    _record(
        actor,
        session,
        category=AuditCategory.EXTERNAL,
        action="external.call",
        outcome="failure" if error or (status is not None and status >= 400) else "success",
        target_type=service,
        target_id=safe[:80],
        details={
            "service": service,
            "endpoint": safe,
            "method": method,
            "status": status,
            "latency_ms": round(float(latency_ms), 1),
            "retry_key": retry_key,
            "attempt": attempt,
            "error": error,
            **({"request_id": request_id} if request_id else {}),
            **({"recipients": recipients} if recipients is not None else {}),
            **({"quota_remaining": quota_remaining} if quota_remaining is not None else {}),
        },
    )


def safe_endpoint(url: str) -> str:
    """scheme://host[:port]/path of url, without user info, query or fragment, ids masked."""
    parts = urlsplit(url or "")
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    path = "/".join(":id" if ID_SEGMENT.match(s) else s for s in parts.path.split("/"))
    return f"{parts.scheme}://{host}{path}" if parts.scheme else path


def _record(actor: Actor, session: Session | None, **kwargs: Any) -> None:
    if session is not None:
        audit.record(session, actor, **kwargs)
        return
    with unit_of_work(audit.chain_id(actor)) as own:
        audit.record(own, actor, **kwargs)
        own.commit()
