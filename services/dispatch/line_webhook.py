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

import json
import logging
import uuid
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import select

from config import get_settings
from core.actor import Actor, ActorKind, RequestContext, machine_actor, system_actor
from formats import line_callout
from formats.line_callout import REFUSAL_TEXT, Postback, decode_postback
from integrations.line_messaging import (
    InvalidSignature,
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


def receive(body: bytes, signature: str | None, request: RequestContext) -> list[str] | None:
    """The ids of the events kept for handling (new ones only); None for a request that is not
    LINE's (bad signature or body), recorded as an 認証・認可 failure."""
    try:
        verify_signature(body, signature, get_settings().line_messaging_secret)
        events = parse_events(body)
    except (InvalidSignature, ValueError) as exc:
        _record_refusal(type(exc).__name__, request)
        return None
    return keep([e for e in events if _event_id(e)])


def keep(events: list[dict]) -> list[str]:
    """Insert each event unless its id is known; returns the ids inserted now."""
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
        kept = [r[0] for r in db.execute(statement).all()]
        db.commit()
    return kept


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


def handle(event_ids: list[str]) -> int:
    """Handle kept events, each by the one process that claims it; returns how many."""
    handled = 0
    for event_id in event_ids:
        event = _claim(event_id)
        if event is None:
            continue
        try:
            _dispatch(event)
        except Exception:
            log.exception("LINE webhook event could not be handled")
        _done(event_id)
        handled += 1
    return handled


def handle_pending(*, older_than_seconds: float = 30) -> int:
    """Events a stopped process kept but did not handle (or claimed and did not finish)."""
    cutoff = utcnow() - timedelta(seconds=older_than_seconds)
    with unit_of_work(None) as db:
        ids = db.exec(
            select(LineWebhookEvent.event_id).where(
                LineWebhookEvent.status.in_(("pending", "claimed")),
                LineWebhookEvent.received_at < cutoff,
            )
        ).all()
        db.exec(
            delete(LineWebhookEvent).where(
                LineWebhookEvent.status == "done",
                LineWebhookEvent.received_at < utcnow() - KEEP_HANDLED,
            )
        )
        db.commit()
    with unit_of_work(None) as db:  # a claim older than the cutoff is a dead process's
        db.exec(
            update(LineWebhookEvent)
            .where(LineWebhookEvent.event_id.in_(ids), LineWebhookEvent.status == "claimed")
            .values(status="pending")
        )
        db.commit()
    return handle(list(ids))


def _claim(event_id: str) -> dict | None:
    with unit_of_work(None) as db:
        claimed = db.exec(
            update(LineWebhookEvent)
            .where(LineWebhookEvent.event_id == event_id, LineWebhookEvent.status == "pending")
            .values(status="claimed")
        ).rowcount
        row = db.get(LineWebhookEvent, event_id) if claimed else None
        db.commit()
    if row is None or row.event_enc is None:
        return None
    fmt, master_id, sealed = [*row.event_enc.split(":", 2), "", ""][:3]
    try:
        if fmt != FORMAT:
            raise DecryptionError("unknown format")
        raw = unseal(platform_key(master_id, PURPOSE), sealed, _aad(event_id))
    except DecryptionError:
        return None
    return json.loads(raw)


def _done(event_id: str) -> None:
    """Handled: the sealed content (user id, reply token) goes; the id stays for dedup."""
    with unit_of_work(None) as db:
        db.exec(
            update(LineWebhookEvent)
            .where(LineWebhookEvent.event_id == event_id)
            .values(status="done", event_enc=None, handled_at=utcnow())
        )
        db.commit()


def _dispatch(event: dict) -> None:
    kind = event.get("type")
    source = event.get("source") or {}
    user_id = source.get("userId") if isinstance(source, dict) else None
    if kind == "postback" and isinstance(user_id, str):
        data = (event.get("postback") or {}).get("data", "")
        postback = decode_postback(data if isinstance(data, str) else "")
        if postback is not None:
            _postback(postback, user_id, event)
            return
    if kind in ("follow", "unfollow") and isinstance(user_id, str):
        _friendship(user_id, FriendStatus.FRIEND if kind == "follow" else FriendStatus.BLOCKED)
        return
    _log_event(PLATFORM_ACTOR, event, "ignored")


@dataclass(frozen=True)
class Decision:
    outcome: str  # "answer", "eta" or a key of REFUSAL_TEXT
    reply: dict | None


def _postback(postback: Postback, user_id: str, event: dict) -> None:
    try:
        decision = decide(postback, user_id, event)
    except Exception:
        _log_event(PLATFORM_ACTOR, event, "unknown_brigade")
        raise
    token = event.get("replyToken")
    if decision.reply is not None and isinstance(token, str) and token:
        with MessagingClient(
            outbox.channel(), outbox.recorder(webhook_actor(postback.tenant_id))
        ) as client:
            client.reply(token, [decision.reply])


def decide(postback: Postback, user_id: str, event: dict) -> Decision:
    """Record the answer (or the ETA) if the member may give it, and say what to reply."""
    actor = webhook_actor(postback.tenant_id)
    with transaction(actor, callout.VIEW, action="callout.answer") as tx:
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
    if row is None or member.id not in callout.targeted(tx, row.id):
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
