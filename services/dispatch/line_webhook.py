"""LINE webhooks (white paper 12.4.1): verified, kept, answered 200, then handled.

The route (server.py) hands the raw body here. Its X-Line-Signature is checked before
anything else (a failure is an 認証・認可 event of the platform); each event is then kept once
by its webhookEventId (a redelivered event finds its id taken and is dropped), sealed with a
platform key since no brigade is known yet, and handled after the answer: a postback from an
answer button records 出動可否 for the member LINE names, if that member was called for the
incident and it is still open, and a reply confirms it; follow / unfollow record whether the
official account can reach the member. Each handled event is an external-service event of the
brigade it concerned."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session as DbSession
from sqlmodel import select

from config import get_settings
from core.actor import Actor, ActorKind, RequestContext, machine_actor, system_actor
from formats import line_callout
from formats.line_callout import REFUSAL_TEXT, Postback, decode_postback
from integrations.line_messaging import (
    InvalidSignature,
    MessagingCall,
    MessagingChannel,
    MessagingClient,
    parse_events,
    verify_signature,
)
from models import Member, MemberLine
from models.base import utcnow
from models.callout import FriendStatus, LineWebhookEvent
from models.dispatch import Incident, IncidentStatus
from models.enums import Answer, AuditCategory, Function, Level, MemberStatus
from services import audit
from services.base import Tx, scoped, transaction
from services.crypto import DecryptionError, platform_key, seal, unseal
from services.db import unit_of_work
from services.dispatch import callout, outbox
from services.signin.line_sessions import SUB_FIELD, find_links

log = logging.getLogger(__name__)
WEBHOOK_PATH = "/line/webhook"  # the Webhook URL to set on LINE Developers
PURPOSE = "line-webhook"
FORMAT = "lw1"
MAX_EVENT_ID = 64
KEEP_HANDLED = timedelta(days=7)  # LINE redelivers for a while; ids are kept longer than that
PLATFORM_ACTOR = system_actor(None, label="line-webhook")


def webhook_actor(tenant_id: uuid.UUID) -> Actor:
    """Records a member's own answer: 災害出動 閲覧, the level every member holds."""
    return machine_actor(tenant_id, "line-webhook", [(Function.DISPATCH, Level.VIEW)])


# ---------------------------------------------------------------------------
# Receiving


def receive(body: bytes, signature: str | None, request: RequestContext) -> list[Kept] | None:
    """The events kept for handling (new ones only); None for a request that is not LINE's
    (bad signature or body), recorded as an 認証・認可 failure."""
    try:
        verify_signature(body, signature, get_settings().line_messaging_secret)
        events = parse_events(body)
    except (InvalidSignature, ValueError) as exc:
        _record_refusal(type(exc).__name__, request)
        return None
    return keep([e for e in events if _event_id(e)])


def keep(events: list[dict]) -> list[Kept]:
    """Insert each event unless its id is known; returns those inserted now."""
    if not events:
        return []
    master_id = get_settings().active_master_key_id
    key = platform_key(master_id, PURPOSE)
    rows = [
        {
            "event_id": _event_id(e),
            "received_at": utcnow(),
            "status": "pending",
            "event_enc": f"{FORMAT}:{master_id}:"
            + seal(key, json.dumps(e).encode(), _aad(_event_id(e))),
        }
        for e in events
    ]
    with unit_of_work(None) as db:
        dialect = db.get_bind().dialect.name
        insert = pg_insert if dialect == "postgresql" else sqlite_insert
        statement = (
            insert(LineWebhookEvent)
            .values(rows)
            .on_conflict_do_nothing(index_elements=["event_id"])
            .returning(LineWebhookEvent.event_id)
        )
        kept = {r[0] for r in db.execute(statement).all()}
        db.commit()
    return [(_event_id(e), e) for e in events if _event_id(e) in kept]


def _event_id(event: dict) -> str:
    value = event.get("webhookEventId") if isinstance(event, dict) else None
    return value if isinstance(value, str) and 0 < len(value) <= MAX_EVENT_ID else ""


def _aad(event_id: str) -> bytes:
    return f"line_webhook_event.event|{event_id}".encode()


def _record_refusal(reason: str, request: RequestContext) -> None:
    with unit_of_work(None) as db:
        audit.record(
            db,
            Actor(kind=ActorKind.LINE, display_name="", label="line-webhook", request=request),
            category=AuditCategory.AUTH,
            action="line.webhook_refused",
            outcome="failure",
            details={"reason": reason},
        )
        db.commit()


# ---------------------------------------------------------------------------
# Handling

Kept = tuple[str, dict]  # (webhookEventId, the event)
# Events are handled on threads of their own, never on the server's shared pool: a burst of
# button presses must not keep the webhook (or any page) from answering.
HANDLERS = ThreadPoolExecutor(max_workers=2, thread_name_prefix="line-webhook")


# Replies wait on LINE (tens of milliseconds each): they go out from threads of their own, so
# the handlers go on to the next answer meanwhile.
REPLIES = ThreadPoolExecutor(max_workers=8, thread_name_prefix="line-reply")


async def handle_after_answer(events: list[Kept]) -> None:
    """The webhook route's background task: handle on the handler threads, then wait for the
    replies without holding a thread."""
    if events:
        replies = await asyncio.get_running_loop().run_in_executor(HANDLERS, _handle, events)
        await asyncio.gather(*(asyncio.wrap_future(r) for r in replies))


def handle(events: list[Kept]) -> int:
    """Handle kept events (and wait for their replies); returns how many were handled."""
    replies = _handle(events)
    for reply in replies:
        reply.result()
    return len(replies)


def _handle(events: list[Kept]) -> list[Future]:
    """Each event is marked done in the transaction that handles it, so a second process (or a
    redelivery) finds nothing left to do. One future per event handled: its reply."""
    replies = []
    for event_id, event in events:
        try:
            reply = _dispatch(event_id, event)
        except Exception:
            log.exception("LINE webhook event could not be handled; the sweep retries it")
            continue
        if reply is not None:
            replies.append(reply)
    return replies


def handle_pending(*, older_than_seconds: float = 30) -> int:
    """Events a stopped process kept but did not handle; handled ones are forgotten after
    KEEP_HANDLED (their ids guard against redelivery until then)."""
    cutoff = utcnow() - timedelta(seconds=older_than_seconds)
    with unit_of_work(None) as db:
        rows = db.exec(
            select(LineWebhookEvent).where(
                LineWebhookEvent.status == "pending", LineWebhookEvent.received_at < cutoff
            )
        ).all()
        db.exec(
            delete(LineWebhookEvent).where(
                LineWebhookEvent.status == "done",
                LineWebhookEvent.received_at < utcnow() - KEEP_HANDLED,
            )
        )
        db.commit()
    return handle([(row.event_id, event) for row in rows if (event := _open(row)) is not None])


def _open(row: LineWebhookEvent) -> dict | None:
    fmt, master_id, sealed = [*(row.event_enc or "").split(":", 2), "", ""][:3]
    try:
        if fmt != FORMAT:
            raise DecryptionError("unknown format")
        return json.loads(unseal(platform_key(master_id, PURPOSE), sealed, _aad(row.event_id)))
    except DecryptionError:
        log.warning("a kept LINE webhook event cannot be opened")
        return None


def claim(session: DbSession, event_id: str) -> bool:
    """Mark the event done inside the caller's transaction; False when it is done already.
    Its sealed content (user id, reply token) goes; the id stays for deduplication."""
    return bool(
        session.exec(
            update(LineWebhookEvent)
            .where(LineWebhookEvent.event_id == event_id, LineWebhookEvent.status == "pending")
            .values(status="done", event_enc=None, handled_at=utcnow())
        ).rowcount
    )


def _claim_alone(event_id: str) -> bool:
    with unit_of_work(None) as db:
        claimed = claim(db, event_id)
        db.commit()
    return claimed


def _done_future() -> Future:
    future: Future = Future()
    future.set_result(None)
    return future


def _dispatch(event_id: str, event: dict) -> Future | None:
    """The reply's future once handled; None when there was nothing (left) to do."""
    kind = event.get("type")
    source = event.get("source") or {}
    user_id = source.get("userId") if isinstance(source, dict) else None
    if kind == "postback" and isinstance(user_id, str):
        data = (event.get("postback") or {}).get("data", "")
        postback = decode_postback(data if isinstance(data, str) else "")
        if postback is not None:
            return _postback(event_id, postback, user_id, event)
    if not _claim_alone(event_id):
        return None
    if kind in ("follow", "unfollow") and isinstance(user_id, str):
        _friendship(user_id, FriendStatus.FRIEND if kind == "follow" else FriendStatus.BLOCKED)
    else:
        _log_event(PLATFORM_ACTOR, event, "ignored")
    return _done_future()


@dataclass(frozen=True)
class Decision:
    outcome: str  # "answer", "eta" or a key of REFUSAL_TEXT
    reply: dict | None


def _postback(event_id: str, postback: Postback, user_id: str, event: dict) -> Future | None:
    try:
        decision = decide(event_id, postback, user_id, event)
    except DecryptionError:  # a brigade that does not exist (or has no keys left)
        if not _claim_alone(event_id):
            return None
        _log_event(PLATFORM_ACTOR, event, "unknown_brigade")
        return _done_future()
    if decision is None:
        return None  # handled already (another process, or a redelivery)
    token = event.get("replyToken")
    if decision.reply is None or not isinstance(token, str) or not token:
        return _done_future()
    return REPLIES.submit(_reply, postback.tenant_id, token, decision.reply)


_replying = threading.local()  # the brigade whose log records the reply being sent
_clients: dict[MessagingChannel, MessagingClient] = {}
_clients_lock = threading.Lock()


def _reply(tenant_id: uuid.UUID, token: str, message: dict) -> None:
    _replying.actor = webhook_actor(tenant_id)
    _reply_client().reply(token, [message])


def _reply_client() -> MessagingClient:
    """One client per channel for all replies (building one costs more than a reply)."""
    channel = outbox.channel()
    with _clients_lock:
        if channel not in _clients:
            _clients[channel] = MessagingClient(channel, _record_reply)
        return _clients[channel]


def _record_reply(call: MessagingCall) -> None:
    outbox.recorder(_replying.actor)(call)


def decide(event_id: str, postback: Postback, user_id: str, event: dict) -> Decision | None:
    """Record the answer (or the ETA) if the member may give it, and say what to reply; None
    when the event was handled already."""
    actor = webhook_actor(postback.tenant_id)
    with transaction(actor, callout.VIEW, action="callout.answer") as tx:
        if not claim(tx.session, event_id):
            return None
        decision = _decide(tx, postback, user_id)
        _log_event(actor, event, decision.outcome, session=tx)
        tx.commit()
        return decision


def _decide(tx: Tx, postback: Postback, user_id: str) -> Decision:
    bidx = tx.cipher.blind_index(user_id, field=SUB_FIELD)
    link = tx.session.exec(
        scoped(select(MemberLine), tx.actor).where(MemberLine.sub_bidx == bidx)
    ).first()
    member = tx.get(Member, link.member_id) if link else None
    if member is None or member.status != MemberStatus.ACTIVE:
        return _refuse("not_member")
    row = tx.get(Incident, postback.incident_id)
    if row is None or not callout.is_target(tx, row.id, member.id):
        return _refuse("not_target")
    if IncidentStatus(row.status) not in callout.CALLABLE:
        return _refuse("closed")
    title = f"第{row.number}号 {row.kind}".strip()
    if postback.answer is not None:
        callout.add_answer(tx, row, member, postback.answer, eta_minutes=None, via="line")
        reply = line_callout.answer_reply(title, postback.answer)
        if postback.answer.coming:
            reply = line_callout.with_eta_question(reply, row.tenant_id, row.id)
        return Decision("answer", reply)
    latest = callout.latest_answers(tx, row.id).get(member.id)
    if latest is None or not Answer(latest.answer).coming:
        return _refuse("no_answer")
    callout.add_answer(
        tx, row, member, Answer(latest.answer), eta_minutes=postback.eta_minutes, via="line"
    )
    return Decision("eta", line_callout.eta_reply(title, postback.eta_minutes or 0))


def _refuse(reason: str) -> Decision:
    return Decision(reason, line_callout.text_message(REFUSAL_TEXT[reason]))


def _friendship(user_id: str, status: FriendStatus) -> None:
    """Follow / unfollow for every brigade this LINE account is linked in."""
    with unit_of_work(None) as db:
        links = find_links(db, user_id)
    for link in links:
        actor = webhook_actor(link.tenant_id)
        with transaction(actor, callout.VIEW, action="line.friendship") as tx:
            row = tx.session.exec(
                scoped(select(MemberLine), tx.actor).where(MemberLine.member_id == link.member_id)
            ).first()
            if row is not None:
                row.friend_status, row.friend_status_at = status, utcnow()
                _log_event(
                    actor,
                    {"type": "follow" if status == FriendStatus.FRIEND else "unfollow"},
                    status.value,
                    session=tx,
                    member=link.member_code,
                )
                tx.commit()
    if not links:
        _log_event(PLATFORM_ACTOR, {"type": "follow"}, "unknown_user")


def _log_event(
    actor: Actor, event: dict, outcome: str, *, session: Tx | None = None, member: str = ""
) -> None:
    """One handled webhook event in the external-service log: its type and what became of it,
    never the user id, reply token or postback data."""
    kind = event.get("type") if isinstance(event.get("type"), str) else "unknown"
    details = {
        "service": "line-messaging",
        "event_type": kind[:30],
        "result": outcome,
        "redelivery": bool((event.get("deliveryContext") or {}).get("isRedelivery")),
    }
    if member:
        details["member"] = member
    if session is not None:
        session.audit("line.webhook", category=AuditCategory.EXTERNAL, details=details)
        return
    with unit_of_work(audit.chain_id(actor)) as db:
        audit.record(
            db, actor, category=AuditCategory.EXTERNAL, action="line.webhook", details=details
        )
        db.commit()
