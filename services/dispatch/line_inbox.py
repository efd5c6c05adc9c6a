"""The LINE webhook's inbox (white paper 12.4.1): a request's signature is verified before
anything else (a failure is an 認証・認可 event of the platform), and each event is kept once by
its webhookEventId (a redelivered event finds its id taken and is dropped), sealed with a
platform key since no brigade is known yet, until services.dispatch.line_webhook has handled
it; handling claims it in the transaction that records what it meant."""

from __future__ import annotations

import json
import logging
import threading
from concurrent.futures import Future
from datetime import timedelta

from sqlalchemy import delete, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session as DbSession
from sqlmodel import select

from config import get_settings
from core.actor import Actor, ActorKind, RequestContext
from integrations.line_messaging import InvalidSignature, parse_events, verify_signature
from models.base import utcnow
from models.callout import LineWebhookEvent
from models.enums import AuditCategory
from services import audit
from services.crypto import DecryptionError, platform_key, seal, unseal
from services.db import unit_of_work

log = logging.getLogger(__name__)
WEBHOOK_PATH = "/line/webhook"  # the Webhook URL to set on LINE Developers
PURPOSE = "line-webhook"
FORMAT = "lw1"
MAX_EVENT_ID = 64
KEEP_HANDLED = timedelta(days=7)  # LINE redelivers for a while; ids are kept longer than that
Kept = tuple[str, dict]  # (webhookEventId, the event)


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
    """Insert each event unless its id is known; returns those inserted now (by this call)."""
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
    mine = _KEEPER.insert(rows)
    return [(_event_id(e), e) for e in events if _event_id(e) in mine]


class _GroupCommit:
    """Requests that arrive together are kept in one transaction: the first to come writes
    its rows and those of every request waiting, the others wait for that commit (one write
    and one flush to disk for all of them instead of one each). A request is answered 200 only
    once its events are committed, so LINE redelivers whatever a crash lost."""

    def __init__(self) -> None:
        self._turn = threading.Condition()
        self._waiting: list[tuple[list[dict], Future]] = []
        self._writing = False

    def insert(self, rows: list[dict]) -> set[str]:
        """The event ids of `rows` this call inserted (known ids and repeats are not)."""
        mine: Future = Future()
        with self._turn:
            self._waiting.append((rows, mine))
            while self._writing and not mine.done():
                self._turn.wait()
            if mine.done():
                return mine.result()
            self._writing = True
            batch, self._waiting = self._waiting, []
        try:
            self._write(batch)
        finally:
            with self._turn:
                self._writing = False
                self._turn.notify_all()
        return mine.result()

    @staticmethod
    def _write(batch: list[tuple[list[dict], Future]]) -> None:
        owner: dict[str, int] = {}  # an id twice in the batch belongs to its first request
        for n, (rows, _) in enumerate(batch):
            for row in rows:
                owner.setdefault(row["event_id"], n)
        unique = {row["event_id"]: row for rows, _ in reversed(batch) for row in rows}
        try:
            with unit_of_work(None) as db:
                dialect = db.get_bind().dialect.name
                insert = pg_insert if dialect == "postgresql" else sqlite_insert
                statement = (
                    insert(LineWebhookEvent)
                    .values(list(unique.values()))
                    .on_conflict_do_nothing(index_elements=["event_id"])
                    .returning(LineWebhookEvent.event_id)
                )
                inserted = {r[0] for r in db.execute(statement).all()}
                db.commit()
        except BaseException as exc:
            for _, future in batch:
                future.set_exception(exc)
            raise
        for n, (_, future) in enumerate(batch):
            future.set_result({i for i in inserted if owner[i] == n})


_KEEPER = _GroupCommit()


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


def pending(*, older_than_seconds: float = 30) -> list[Kept]:
    """Events kept more than `older_than_seconds` ago and not handled (a stopped process's);
    handled ones are forgotten after KEEP_HANDLED (their ids guard against redelivery until
    then)."""
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
    return [(row.event_id, event) for row in rows if (event := _open(row)) is not None]


def _open(row: LineWebhookEvent) -> dict | None:
    fmt, master_id, sealed = [*(row.event_enc or "").split(":", 2), "", ""][:3]
    try:
        if fmt != FORMAT:
            raise DecryptionError("unknown format")
        return json.loads(unseal(platform_key(master_id, PURPOSE), sealed, _aad(row.event_id)))
    except DecryptionError:
        log.warning("a kept LINE webhook event cannot be opened")
        return None


def claim_alone(event_id: str) -> bool:
    """Mark one event done in a transaction of its own; False when it is done already."""
    with unit_of_work(None) as db:
        claimed = bool(claim_all(db, [event_id]))
        db.commit()
    return claimed


def claim_all(session: DbSession, event_ids: list[str]) -> set[str]:
    """Mark pending events done inside the caller's transaction; returns those marked now.
    Their sealed content (user id, reply token) goes; the ids stay for deduplication."""
    if not event_ids:
        return set()
    statement = (
        update(LineWebhookEvent)
        .where(
            LineWebhookEvent.event_id.in_(set(event_ids)),
            LineWebhookEvent.status == "pending",
        )
        .values(status="done", event_enc=None, handled_at=utcnow())
        .returning(LineWebhookEvent.event_id)
    )
    return {row[0] for row in session.exec(statement).all()}
