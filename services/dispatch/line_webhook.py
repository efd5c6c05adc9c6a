"""LINE webhooks (white paper 12.4.1): the events services.dispatch.line_inbox verified and
kept are handled after the route has answered 200: a postback from an answer button records
出動可否 for the member LINE names, if that member was called for the incident and it is still
open, and a reply confirms it; follow / unfollow record whether the official account can reach
the member. Each handled event is an external-service event of the brigade it concerned."""

from __future__ import annotations

import logging
import threading
import uuid
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass

from sqlmodel import select

from core.actor import Actor, machine_actor, system_actor
from formats import line_callout
from formats.line_callout import REFUSAL_TEXT, Postback, decode_postback
from integrations.line_messaging import (
    MessagingCall,
    MessagingChannel,
    MessagingClient,
)
from models import Member, MemberLine
from models.base import utcnow
from models.callout import CalloutTarget, FriendStatus
from models.dispatch import Incident, IncidentStatus
from models.enums import Answer, AuditCategory, Function, Level, MemberStatus
from services import audit
from services.base import Tx, scoped, transaction
from services.crypto import DecryptionError
from services.db import unit_of_work
from services.dispatch import callout, outbox
from services.dispatch.line_inbox import Kept, claim_all, claim_alone, pending
from services.signin.line_sessions import SUB_FIELD, find_links

log = logging.getLogger(__name__)
PLATFORM_ACTOR = system_actor(None, label="line-webhook")


def webhook_actor(tenant_id: uuid.UUID) -> Actor:
    """Records a member's own answer: 災害出動 閲覧, the level every member holds."""
    return machine_actor(tenant_id, "line-webhook", [(Function.DISPATCH, Level.VIEW)])


# ---------------------------------------------------------------------------
# Handling

# Events are handled on threads of their own, never on the server's shared pool: a burst of
# button presses must not keep the webhook (or any page) from answering.
HANDLERS = ThreadPoolExecutor(max_workers=2, thread_name_prefix="line-webhook")
MAX_BATCH = 200  # events handled together; one brigade's answers share one transaction


# Replies wait on LINE (tens of milliseconds each): they go out from threads of their own, so
# the handlers go on to the next answer meanwhile.
REPLIES = ThreadPoolExecutor(max_workers=8, thread_name_prefix="line-reply")

# Requests leave their events here and a handler thread takes everything waiting at once: under
# a burst, the answers that arrived while the last batch was being written are written together,
# one transaction (and one turn of the brigade's audit chain lock) for all of a brigade's.
_waiting: deque[tuple[list[Kept], Future]] = deque()
_waiting_lock = threading.Lock()


def submit(events: list[Kept]) -> Future | None:
    """Hand kept events to the handler threads and return at once (the webhook answers 200
    without waiting: a request waiting on its connection must not wait for the handling of the
    one before it). The future is done once the events are handled and their replies sent."""
    if not events:
        return None
    done: Future = Future()
    with _waiting_lock:
        _waiting.append((events, done))
        _in_flight.add(done)
    done.add_done_callback(_settled)
    HANDLERS.submit(_drain)
    return done


_in_flight: set[Future] = set()


def _settled(done: Future) -> None:
    with _waiting_lock:
        _in_flight.discard(done)


def wait_idle(timeout: float = 30) -> bool:
    """Wait until every event handed over so far is handled and replied to (tests, shutdown)."""
    with _waiting_lock:
        pending = list(_in_flight)
    return not wait(pending, timeout=timeout).not_done


def _drain() -> None:
    """Handle every event waiting now (nothing when another thread took them first)."""
    with _waiting_lock:
        batch = []
        while _waiting and sum(len(events) for events, _ in batch) < MAX_BATCH:
            batch.append(_waiting.popleft())
    if not batch:
        return
    try:
        replies = _handle([event for events, _ in batch for event in events])
    except Exception as exc:  # _handle logs per event; this is a bug, not a bad event
        for _, done in batch:
            done.set_exception(exc)
        raise
    _when_replied(replies, [done for _, done in batch])


def _when_replied(replies: list[Future], done: list[Future]) -> None:
    """Mark a batch's requests done when the last of its replies has gone."""
    left = [len(replies)]
    lock = threading.Lock()

    def one_more(_reply: Future | None = None) -> None:
        with lock:
            left[0] -= 1
            last = left[0] == 0
        if last:
            for future in done:
                future.set_result(None)

    if not replies:
        left[0] = 1
        one_more()
    for reply in replies:
        reply.add_done_callback(one_more)


def handle(events: list[Kept]) -> int:
    """Handle kept events (and wait for their replies); returns how many were handled."""
    replies = _handle(events)
    for reply in replies:
        reply.result()
    return len(replies)


@dataclass(frozen=True)
class _Press:
    """A button press (postback) of an answer button."""

    event_id: str
    postback: Postback
    user_id: str
    event: dict


def _handle(events: list[Kept]) -> list[Future]:
    """Each event is marked done in the transaction that handles it, so a second process (or a
    redelivery) finds nothing left to do. One brigade's button presses are handled in one
    transaction; should it fail, each is tried again alone, so one bad event spoils no other.
    One future per event handled: its reply."""
    presses: dict[uuid.UUID, list[_Press]] = {}
    others = []
    for event_id, event in events:
        press = _press(event_id, event)
        if press is None:
            others.append((event_id, event))
        else:
            presses.setdefault(press.postback.tenant_id, []).append(press)
    replies = []
    for tenant_id, group in presses.items():
        try:
            decided = list(zip(group, decide_all(tenant_id, group), strict=True))
        except Exception:
            if len(group) > 1:
                log.info("a batch of LINE answers failed; handling them one at a time")
            decided = [(press, _decide_alone(press)) for press in group]
        for press, decision in decided:
            reply = _answered(press, decision)
            if reply is not None:
                replies.append(reply)
    for event_id, event in others:
        reply = _guarded(_dispatch, event_id, event)
        if reply is not None:
            replies.append(reply)
    return replies


def _guarded(handler, *args):
    try:
        return handler(*args)
    except Exception:
        log.exception("LINE webhook event could not be handled; the sweep retries it")
        return None


def handle_pending(*, older_than_seconds: float = 30) -> int:
    """Events a stopped process kept but did not handle (line_inbox.pending)."""
    return handle(pending(older_than_seconds=older_than_seconds))


def _done_future() -> Future:
    future: Future = Future()
    future.set_result(None)
    return future


def _press(event_id: str, event: dict) -> _Press | None:
    source = event.get("source") or {}
    user_id = source.get("userId") if isinstance(source, dict) else None
    if event.get("type") != "postback" or not isinstance(user_id, str):
        return None
    data = (event.get("postback") or {}).get("data", "")
    postback = decode_postback(data if isinstance(data, str) else "")
    return None if postback is None else _Press(event_id, postback, user_id, event)


def _dispatch(event_id: str, event: dict) -> Future | None:
    """An event that is not an answer: follow / unfollow, or one we ignore (logged)."""
    if not claim_alone(event_id):
        return None
    kind = event.get("type")
    source = event.get("source") or {}
    user_id = source.get("userId") if isinstance(source, dict) else None
    if kind in ("follow", "unfollow") and isinstance(user_id, str):
        _friendship(user_id, FriendStatus.FRIEND if kind == "follow" else FriendStatus.BLOCKED)
    else:
        _log_event(PLATFORM_ACTOR, event, "ignored")
    return _done_future()


@dataclass(frozen=True)
class Decision:
    outcome: str  # "answer", "eta" or a key of REFUSAL_TEXT
    reply: dict | None


_UNKNOWN_BRIGADE = Decision("unknown_brigade", None)


def _decide_alone(press: _Press) -> Decision | None:
    try:
        return decide_all(press.postback.tenant_id, [press])[0]
    except DecryptionError:  # a brigade that does not exist (or has no keys left)
        if not claim_alone(press.event_id):
            return None
        _log_event(PLATFORM_ACTOR, press.event, "unknown_brigade")
        return _UNKNOWN_BRIGADE
    except Exception:
        log.exception("LINE webhook event could not be handled; the sweep retries it")
        return None


def _answered(press: _Press, decision: Decision | None) -> Future | None:
    """The reply's future once handled; None when there was nothing (left) to do."""
    if decision is None:
        return None  # handled already (another process, or a redelivery), or failed
    token = press.event.get("replyToken")
    if decision.reply is None or not isinstance(token, str) or not token:
        return _done_future()
    return REPLIES.submit(_reply, press.postback.tenant_id, token, decision.reply)


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


def decide_all(tenant_id: uuid.UUID, presses: list[_Press]) -> list[Decision | None]:
    """One brigade's button presses in one transaction: each answer (or ETA) recorded if the
    member may give it, with what to reply; None for an event handled already. The events are
    claimed, and the members, their links and their targets read, with one statement each for
    the whole batch; the answers and their log entries are written together at commit."""
    actor = webhook_actor(tenant_id)
    with transaction(actor, callout.VIEW, action="callout.answer") as tx:
        claimed = claim_all(tx.session, [press.event_id for press in presses])
        todo = [press for press in presses if press.event_id in claimed]
        members = _members_of(tx, {press.user_id for press in todo})
        called = _called(tx, todo, members)
        # held here for the whole batch (the session's identity map holds rows only weakly)
        rows = {i: tx.get(Incident, i) for i in {press.postback.incident_id for press in todo}}
        decisions: list[Decision | None] = []
        for press in presses:
            if press.event_id not in claimed:
                decisions.append(None)
                continue
            claimed.discard(press.event_id)  # the same event twice in a batch counts once
            member = members.get(press.user_id)
            targeted = member is not None and (press.postback.incident_id, member.id) in called
            row = rows.get(press.postback.incident_id)
            decision = _decide(tx, press.postback, member, row if targeted else None)
            _log_event(actor, press.event, decision.outcome, session=tx)
            decisions.append(decision)
        tx.commit()
        return decisions


def _members_of(tx: Tx, user_ids: set[str]) -> dict[str, Member]:
    """The active members these LINE accounts are linked to in this brigade."""
    if not user_ids:
        return {}
    by_index = {tx.cipher.blind_index(u, field=SUB_FIELD): u for u in user_ids}
    rows = tx.session.exec(
        scoped(select(MemberLine, Member), tx.actor).where(
            MemberLine.sub_bidx.in_(list(by_index)),
            Member.id == MemberLine.member_id,
            Member.status == MemberStatus.ACTIVE,
        )
    ).all()
    return {by_index[link.sub_bidx]: member for link, member in rows}


def _called(
    tx: Tx, presses: list[_Press], members: dict[str, Member]
) -> set[tuple[uuid.UUID, uuid.UUID]]:
    """(incident, member) pairs of these presses that were called out."""
    incident_ids = {press.postback.incident_id for press in presses}
    member_ids = {member.id for member in members.values()}
    if not incident_ids or not member_ids:
        return set()
    rows = tx.session.exec(
        scoped(select(CalloutTarget.incident_id, CalloutTarget.member_id), tx.actor).where(
            CalloutTarget.incident_id.in_(incident_ids), CalloutTarget.member_id.in_(member_ids)
        )
    ).all()
    return {(incident_id, member_id) for incident_id, member_id in rows}


def _decide(tx: Tx, postback: Postback, member: Member | None, row: Incident | None) -> Decision:
    """row: the incident, if it exists and the member was called for it."""
    if member is None:
        return _refuse("not_member")
    if row is None:
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
