"""イベントログ (white paper 12.4.1, 12.4.4, 18.1.3): the audit log's four categories read back for
permitted administrators, and the recorders of the two categories other services feed.

Reading needs EVENT_LOGS 閲覧; the personal part of an event (details_enc: names, mail senders,
before/after personal fields) is decrypted only for EVENT_LOGS 管理, one event at a time. Every
detail, export and integrity check is itself an operation event; a list is recorded once per
session and filter (the page says whether a view is new, `is_new_view`; #18: page turns flooded
the log), with any free text the viewer typed in the encrypted part.

Pages run newest first by keyset on (occurred_at, seq) within the tenant: a page is the events
strictly older than the last one shown, so events arriving meanwhile never shift or repeat rows.
Free text is matched in SQL on the non-personal columns only; nothing is decrypted to filter.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import Connection, func, text, tuple_
from sqlmodel import Session, select

from core.access import Need, allows
from core.actor import Actor
from core.timefmt import JST, to_jst
from formats import event_log_csv
from models import AuditEvent, Member
from models.base import utcnow
from models.enums import AuditCategory, Function, Level
from services import audit_verify, event_labels, event_search, event_targets
from services.audit import PERSONAL_PART
from services.base import Tx, scoped, transaction
from services.crypto import AUDIT, DecryptionError, TenantCipher
from services.errors import NotFound, ValidationError

PAGE_SIZE = 50
MAX_PAGE_SIZE = 200
MAX_TEXT = 100
MAX_EXPORT = 100_000
EXPORT_BATCH = 1000
CATEGORIES = tuple(str(c) for c in AuditCategory)


@dataclass(frozen=True)
class EventFilter:
    start: datetime | None = None  # UTC, inclusive
    end: datetime | None = None  # UTC, exclusive
    categories: tuple[str, ...] = ()
    actor_id: str = ""
    actions: tuple[str, ...] = ()
    target_type: str = ""
    target_id: str = ""
    text: str = ""

    def summary(self) -> dict[str, Any]:
        """What the view record keeps: everything but the free text, of which only its length."""
        values = asdict(self)
        values["text"] = len(self.text)
        return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in values.items()}


@dataclass(frozen=True)
class Cursor:
    """The last event of a page; the next page starts strictly after it (older)."""

    occurred_at: datetime
    seq: int


@dataclass(frozen=True)
class EventRow:
    seq: int
    occurred_at: datetime
    category: str
    action: str
    outcome: str
    actor_type: str
    actor_id: str
    actor_label: str
    actor_name: str  # the member's name for viewers, "" when not a member
    target_type: str
    target_id: str
    request_id: str
    client_addr: str
    user_agent: str
    details: dict[str, Any]
    has_personal: bool
    target_name: str = ""  # 団員番号 氏名 or 水利番号 where the viewer may see it (event_targets)

    @property
    def occurred_jst(self) -> str:
        return to_jst(self.occurred_at, seconds=True)

    @property
    def occurred_utc(self) -> str:
        return self.occurred_at.astimezone(UTC).isoformat(timespec="microseconds")

    @property
    def category_label(self) -> str:
        return event_labels.category_label(self.category)

    @property
    def action_label(self) -> str:
        return event_labels.action_label(self.action)

    @property
    def outcome_label(self) -> str:
        return event_labels.outcome_label(self.outcome)

    @property
    def target_display(self) -> str:
        return event_targets.target_text(self.target_type, self.target_id, self.target_name)

    @property
    def detail_rows(self) -> list[tuple[str, str]]:
        return event_labels.detail_rows(self.details)

    @property
    def actor_display(self) -> str:
        return self.actor_name or self.actor_label or self.actor_type_label

    @property
    def actor_type_label(self) -> str:
        return event_labels.actor_type_label(self.actor_type)


@dataclass(frozen=True)
class EventPage:
    events: list[EventRow]
    next_cursor: Cursor | None  # None: nothing older matches


@dataclass(frozen=True)
class EventDetail:
    event: EventRow
    personal: dict[str, Any] | None  # decrypted personal part, for EVENT_LOGS 管理 only
    personal_hidden: bool  # the event has a personal part this viewer may not see

    @property
    def personal_rows(self) -> list[tuple[str, str]]:
        return event_labels.detail_rows(self.personal or {})


@dataclass(frozen=True)
class EventExport:
    data: bytes
    rows: int
    truncated: bool  # more than MAX_EXPORT events matched


@dataclass(frozen=True)
class IntegrityReport:
    ok: bool
    checked: int
    first_seq: int  # 0 when nothing was checked
    last_seq: int
    purged_through: int
    checkpoints_checked: int | None  # None: no public key configured
    first_broken_seq: int | None = None
    reason: str = ""
    broken_event: EventRow | None = None
    warnings: tuple[str, ...] = ()  # what could not be checked: not a pass


@dataclass(frozen=True)
class ActorOption:
    actor_id: str
    label: str


# --- periods in JST ------------------------------------------------------------------------

QUICK_RANGES = ("今日", "昨日", "直近7日間", "直近30日間", "今月", "先月", "今年", "すべて")


def jst_today(now: datetime | None = None) -> date:
    return (now or utcnow()).astimezone(JST).date()


def quick_range(name: str, *, now: datetime | None = None) -> tuple[date | None, date | None]:
    """The JST dates (first, last, both inclusive) of a quick range; (None, None) for すべて."""
    today = jst_today(now)
    first_of_month = today.replace(day=1)
    ranges = {
        "今日": (today, today),
        "昨日": (today - timedelta(days=1), today - timedelta(days=1)),
        "直近7日間": (today - timedelta(days=6), today),
        "直近30日間": (today - timedelta(days=29), today),
        "今月": (first_of_month, today),
        "先月": (
            (first_of_month - timedelta(days=1)).replace(day=1),
            first_of_month - timedelta(1),
        ),
        "今年": (today.replace(month=1, day=1), today),
        "すべて": (None, None),
    }
    if name not in ranges:
        raise ValidationError({"period": f"期間「{name}」は選べません。"})
    return ranges[name]


def jst_period(first: date | None, last: date | None) -> tuple[datetime | None, datetime | None]:
    """UTC [start, end) of the JST days first..last inclusive."""

    def midnight(day: date) -> datetime:
        return datetime.combine(day, time(0), JST).astimezone(UTC)

    return (
        midnight(first) if first else None,
        midnight(last + timedelta(days=1)) if last else None,
    )


# --- reading ---------------------------------------------------------------------------------


def query_events(
    actor: Actor,
    filters: EventFilter | None = None,
    *,
    cursor: Cursor | None = None,
    page_size: int = PAGE_SIZE,
    record_view: bool = True,
) -> EventPage:
    """One page of the tenant's events, newest first, strictly older than cursor. The view is
    recorded unless record_view is False: a page turn or reread of a view already recorded
    (is_new_view), so browsing does not flood the log it reads."""
    filters = _validated(filters or EventFilter())
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise ValidationError({"page_size": f"1〜{MAX_PAGE_SIZE}件で指定してください。"})
    # A page turn records nothing: it takes no write lock either (#19).
    need = Need(Function.EVENT_LOGS, Level.VIEW)
    with transaction(actor, need, action="event_log.view", read_only=not record_view) as tx:
        prefer_index_order(tx.session)
        rows = _page(tx, filters, cursor, page_size + 1)
        more = len(rows) > page_size
        rows = rows[:page_size]
        events = _rows(tx, rows)
        if record_view:
            tx.audit(
                "event_log.view",
                details={
                    "filters": filters.summary(),
                    "after_seq": cursor.seq if cursor else None,
                    "shown": len(events),
                },
                personal={"text": filters.text} if filters.text else None,
            )
        tx.commit()
    last = rows[-1] if rows else None
    return EventPage(events, Cursor(last.occurred_at, last.seq) if more and last else None)


def is_new_view(viewed: Iterable[EventFilter], filters: EventFilter) -> bool:
    """Whether reading the log with these filters is a view to record (white paper 12.4.4): the
    first read of a filter combination in a session is; turning its pages, rereading it and
    coming back to it are not. Filters differing only in the keyword's spaces are one view."""
    return _normalised(filters) not in {_normalised(f) for f in viewed}


def _normalised(filters: EventFilter) -> EventFilter:
    return EventFilter(**{**asdict(filters), "text": (filters.text or "").strip()})


def get_event(actor: Actor, seq: int) -> EventDetail:
    """One event with its before/after; the personal part decrypted for EVENT_LOGS 管理."""
    with transaction(
        actor, Need(Function.EVENT_LOGS, Level.VIEW), action="event_log.view_detail"
    ) as tx:
        row = tx.session.exec(
            scoped(select(AuditEvent), actor).where(AuditEvent.seq == seq)
        ).first()
        if row is None:
            raise NotFound("イベントが見つかりません。")
        event = _rows(tx, [row])[0]
        personal = None
        may_see = allows(actor, Need(Function.EVENT_LOGS, Level.ADMIN))
        if row.details_enc and may_see:
            personal = _decrypt_personal(tx, row)
        tx.audit(
            "event_log.view_detail",
            target_type="audit_event",
            target_id=str(seq),
            details={"seq": seq, "personal_shown": personal is not None},
        )
        tx.commit()
    return EventDetail(event, personal, bool(row.details_enc) and not may_see)


def export_events(actor: Actor, filters: EventFilter | None = None) -> EventExport:
    """The filtered events as CSV (newest first, at most MAX_EXPORT), without personal data."""
    filters = _validated(filters or EventFilter())
    with transaction(actor, Need(Function.EVENT_LOGS, Level.VIEW), action="event_log.export") as tx:
        prefer_index_order(tx.session)
        events = list(_all(tx, filters, MAX_EXPORT + 1))
        truncated = len(events) > MAX_EXPORT
        events = events[:MAX_EXPORT]
        data = event_log_csv.encode(events)
        tx.audit(
            "event_log.export",
            details={"filters": filters.summary(), "rows": len(events), "truncated": truncated},
            personal={"text": filters.text} if filters.text else None,
        )
        tx.commit()
    return EventExport(data, len(events), truncated)


def verify_integrity(
    actor: Actor, *, start: datetime | None = None, end: datetime | None = None
) -> IntegrityReport:
    """Verify the brigade's chain, or the events of [start, end), and name the first break."""
    with transaction(actor, Need(Function.EVENT_LOGS, Level.VIEW), action="event_log.verify") as tx:
        if start is None and end is None:
            report = _report(tx, audit_verify.verify_chain(tx.session, tx.tenant_id), 1)
        elif (bounds := _seq_bounds(tx, start, end)) is None:
            report = IntegrityReport(True, 0, 0, 0, 0, None)
        else:
            result = audit_verify.verify_chain(
                tx.session, tx.tenant_id, from_seq=bounds[0], to_seq=bounds[1]
            )
            report = _report(tx, result, bounds[0])
        tx.audit(
            "event_log.verify",
            details={
                "start": start.isoformat() if start else None,
                "end": end.isoformat() if end else None,
                "ok": report.ok,
                "checked": report.checked,
                "first_broken_seq": report.first_broken_seq,
            },
        )
        tx.commit()
    return report


def known_actions(actor: Actor) -> list[str]:
    """The distinct actions of the tenant's log, by skipping through the action index."""
    with transaction(
        actor, Need(Function.EVENT_LOGS, Level.VIEW), action="event_log.actions", read_only=True
    ) as tx:
        rows = tx.session.execute(
            text(
                "WITH RECURSIVE a(action) AS ("
                " SELECT min(action) FROM audit_event WHERE tenant_id = :t"
                " UNION ALL"
                " SELECT (SELECT min(action) FROM audit_event"
                "         WHERE tenant_id = :t AND action > a.action)"
                " FROM a WHERE a.action IS NOT NULL"
                ") SELECT action FROM a WHERE action IS NOT NULL"
            ).bindparams(t=_tenant_param(tx))
        ).all()
    return [row[0] for row in rows]


def actor_options(actor: Actor) -> list[ActorOption]:
    """The brigade's members as the actor filter offers them: member code, and the name where
    the viewer may read it (団員名簿 閲覧)."""
    with transaction(
        actor, Need(Function.EVENT_LOGS, Level.VIEW), action="event_log.actors", read_only=True
    ) as tx:
        # columns, not entities: a big brigade's thousands of ORM objects cost more than the
        # names, which come from the plaintext cache after the first run
        shown = (Member.id, Member.member_code, Member.affiliation, Member.name_enc)
        query = scoped(select(*shown), actor).order_by(Member.member_code)
        members = tx.session.exec(query).all()
        return [
            ActorOption(
                str(m.id),
                f"{m.member_code}　{event_targets.member_name(tx, m)}".strip()
                if event_targets.may_see(tx, m)
                else m.member_code,
            )
            for m in members
        ]


def _tenant_param(tx: Tx) -> Any:
    """The tenant id as the dialect stores it (textual SQL gets no column type to convert)."""
    if tx.session.get_bind().dialect.name == "sqlite":
        return tx.tenant_id.hex
    return tx.tenant_id


def _validated(filters: EventFilter) -> EventFilter:
    errors: dict[str, str] = {}
    text_value = (filters.text or "").strip()
    if len(text_value) > MAX_TEXT or "\x00" in text_value:
        errors["text"] = f"検索語は{MAX_TEXT}文字以内で入力してください。"
    for name in ("start", "end"):
        value = getattr(filters, name)
        if value is not None and value.tzinfo is None:
            errors[name] = "期間の指定が正しくありません。"
    if not errors and filters.start and filters.end and filters.start >= filters.end:
        errors["period"] = "期間の開始が終了より後になっています。"
    if unknown := set(filters.categories) - set(CATEGORIES):
        errors["categories"] = f"種別「{'、'.join(sorted(unknown))}」はありません。"
    for name in ("actor_id", "target_type", "target_id"):
        if len(getattr(filters, name)) > 80:
            errors[name] = "80文字以内で指定してください。"
    if any(len(a) > 60 for a in filters.actions):
        errors["actions"] = "操作名が長すぎます。"
    if errors:
        raise ValidationError(errors)
    return EventFilter(**{**asdict(filters), "text": text_value})


def page_query(query: Any, filters: EventFilter, cursor: Cursor | None, limit: int) -> Any:
    """One keyset page of a scoped SELECT of AuditEvent, every event scanned in index order:
    the filters, strictly older than cursor, newest first (read_page's plain path)."""
    return event_search.newest_first(filtered(query, filters, cursor), limit)


def filtered(query: Any, filters: EventFilter, cursor: Cursor | None) -> Any:
    """A scoped SELECT of AuditEvent narrowed to the filters and to events older than cursor."""
    e = AuditEvent
    if filters.start is not None:
        query = query.where(e.occurred_at >= filters.start)
    if filters.end is not None:
        query = query.where(e.occurred_at < filters.end)
    if filters.categories:
        query = query.where(e.category.in_(filters.categories))
    if filters.actor_id:
        query = query.where(e.actor_id == filters.actor_id)
    if filters.actions:
        query = query.where(e.action.in_(filters.actions))
    if filters.target_type:
        query = query.where(e.target_type == filters.target_type)
    if filters.target_id:
        query = query.where(e.target_id == filters.target_id)
    if filters.text:
        query = query.where(event_search.matches(e, filters.text))
    if cursor is not None:
        query = query.where(tuple_(e.occurred_at, e.seq) < (cursor.occurred_at, cursor.seq))
    return query


def read_page(
    db: Session | Connection, query: Any, filters: EventFilter, cursor: Cursor | None, limit: int
) -> list[Any]:
    """The events (ORM objects on a Session, rows on a Connection) of one keyset page of a
    scoped SELECT of AuditEvent; a keyword is looked up through the search index unless the
    newest events fill the page (services/event_search.py).
    The service's SQL; bench/log_query.py and bench/log_search.py time it."""

    def fetch(statement: Any) -> list[Any]:
        return list(db.exec(statement) if isinstance(db, Session) else db.execute(statement))

    if not filters.text:
        return fetch(page_query(query, filters, cursor, limit))
    structured, e = filtered(query, replace(filters, text=""), cursor), AuditEvent
    for window in event_search.WINDOWS:
        edge = db.execute(event_search.window_edge(structured, window)).first()
        if edge is None:
            return fetch(page_query(query, filters, cursor, limit))
        recent = query.where(tuple_(e.occurred_at, e.seq) >= tuple(edge))
        found = fetch(page_query(recent, filters, cursor, limit))
        if len(found) == limit:
            return found
        if len(found) * event_search.SPARSE < limit:
            break
    dialect = (db.dialect if isinstance(db, Connection) else db.get_bind().dialect).name
    with event_search.sorting(db, dialect):
        return fetch(
            event_search.indexed_page(
                filtered(query, filters, cursor), filters.text, dialect, limit
            )
        )


def prefer_index_order(db: Session | Connection) -> None:
    """For the rest of the transaction, have PostgreSQL read pages in index order rather than
    collect every older row and sort. Its selectivity for a free-text ILIKE is a fixed guess, so
    on a common word it chose the sort and a page took 15-80 ms instead of 1-5 ms
    (bench/log_query.py); every index of the viewer already yields (occurred_at, seq) order."""
    dialect = db.dialect if isinstance(db, Connection) else db.get_bind().dialect
    if dialect.name == "postgresql":
        db.execute(text("SET LOCAL enable_sort = off"))


def _page(tx: Tx, filters: EventFilter, cursor: Cursor | None, limit: int) -> list[AuditEvent]:
    return read_page(tx.session, scoped(select(AuditEvent), tx.actor), filters, cursor, limit)


def _all(tx: Tx, filters: EventFilter, limit: int) -> Iterator[EventRow]:
    cursor, left = None, limit
    while left > 0:
        rows = _page(tx, filters, cursor, min(EXPORT_BATCH, left))
        yield from _rows(tx, rows, names=False)
        if len(rows) < min(EXPORT_BATCH, left):
            return
        left -= len(rows)
        cursor = Cursor(rows[-1].occurred_at, rows[-1].seq)


def _rows(tx: Tx, rows: Iterable[AuditEvent], *, names: bool = True) -> list[EventRow]:
    rows = list(rows)
    resolved = _names(tx, {r.actor_id for r in rows}) if names else {}
    targets = (
        event_targets.target_names(tx, {(r.target_type, r.target_id) for r in rows})
        if names
        else {}
    )
    return [
        EventRow(
            seq=r.seq,
            occurred_at=r.occurred_at,
            category=r.category,
            action=r.action,
            outcome=r.outcome,
            actor_type=r.actor_type,
            actor_id=r.actor_id,
            actor_label=r.actor_label,
            actor_name=resolved.get(r.actor_id, ""),
            target_type=r.target_type,
            target_id=r.target_id,
            request_id=r.request_id,
            client_addr=r.client_addr,
            user_agent=r.user_agent,
            details=_loads(r.details),
            has_personal=bool(r.details_enc),
            target_name=targets.get((r.target_type, r.target_id), ""),
        )
        for r in rows
    ]


def _loads(details: str) -> dict[str, Any]:
    try:
        value = json.loads(details or "{}")
    except ValueError:
        return {"_raw": details}
    return value if isinstance(value, dict) else {"_value": value}


def _names(tx: Tx, actor_ids: set[str]) -> dict[str, str]:
    ids = [uid for a in actor_ids if (uid := event_targets.as_uuid(a)) is not None]
    if not ids:
        return {}
    members = tx.session.exec(scoped(select(Member), tx.actor).where(Member.id.in_(ids))).all()
    # a name only for a viewer who may read it (団員名簿 閲覧); others see the member code,
    # the event's own actor_label
    return {
        str(m.id): event_targets.member_name(tx, m) for m in members if event_targets.may_see(tx, m)
    }


def _decrypt_personal(tx: Tx, row: AuditEvent) -> dict[str, Any]:
    cipher = TenantCipher(tx.session, tx.tenant_id, purpose=AUDIT)
    try:
        plain = cipher.decrypt(row.details_enc, field=PERSONAL_PART.aad, row_id=row.id)
    except DecryptionError:
        return {"_error": "復号できません（鍵が失われています）"}
    return _loads(plain)


def _seq_bounds(tx: Tx, start: datetime | None, end: datetime | None) -> tuple[int, int] | None:
    e = AuditEvent
    query = scoped(select(func.min(e.seq), func.max(e.seq)), tx.actor)
    if start is not None:
        query = query.where(e.occurred_at >= start)
    if end is not None:
        query = query.where(e.occurred_at < end)
    first, last = tx.session.exec(query).one()
    return None if first is None else (first, last)


def _report(tx: Tx, result: audit_verify.VerifyResult, from_seq: int) -> IntegrityReport:
    broken = None
    if result.first_broken_seq is not None:
        row = tx.session.exec(
            scoped(select(AuditEvent), tx.actor)
            .where(AuditEvent.seq == result.first_broken_seq)
            .execution_options(populate_existing=True)
        ).first()
        broken = _rows(tx, [row])[0] if row is not None else None
    return IntegrityReport(
        ok=result.ok,
        checked=result.checked,
        first_seq=max(from_seq, result.purged_through + 1),
        last_seq=result.last_seq,
        purged_through=result.purged_through,
        checkpoints_checked=result.checkpoints_checked,
        first_broken_seq=result.first_broken_seq,
        reason=result.reason,
        broken_event=broken,
        warnings=tuple(w.japanese for w in result.warnings),
    )
