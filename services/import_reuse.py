"""Applying an import without validating every row a second time (#19): the preview keeps its
row plans here, in this process, under a random token it hands back with the preview; applying
with that token takes them back only when nothing they were computed from has changed.

What must be the same, checked inside the apply's own transaction (after its locks):
- the brigade and the actor, with the rights he holds now (the gate is passed again anyway);
- the rows: every row's cells as the preview read them (the file, its sheet, the column
  mapping and the coordinate swap all end up in those cells), kept as a copy and compared with
  the rows of the preview handed to apply, so a preview altered after the fact is validated
  afresh;
- the stamp: a digest of the brigade data the validation read (the stored rows it compares
  with, ranks, roles, their links and grants, the brigade's limits, today's date), read again
  by the same queries. It hashes the stored columns themselves, ciphertexts included, so it
  does not depend on every writer bumping a version number.

Anything else (another process, a restart, an expired or used token, a different stamp) means
the rows are planned again against the data as it is then, as before. The plans are never
taken from the caller: only the token is, and it only selects what this process kept. Kept
plans hold the file's cells in memory for at most KEEP_SECONDS, bounded to KEEP_LIMIT previews,
each used once; they are never written anywhere.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from core.actor import Actor
from core.timefmt import today_jst

KEEP_SECONDS = 30 * 60
KEEP_LIMIT = 8


@dataclass(frozen=True)
class _Kept:
    tenant_id: uuid.UUID
    actor: str
    entity: str
    rows: list[tuple[int, dict[str, str]]]
    stamp: str
    plans: Any
    until: float


_kept: OrderedDict[str, _Kept] = OrderedDict()
_lock = threading.Lock()


def keep(
    actor: Actor, entity: str, records: Iterable[tuple[int, dict[str, str]]], stamp: str, plans: Any
) -> str:
    """Keep a preview's plans; the token to apply them with."""
    token = secrets.token_urlsafe(24)
    assert actor.tenant_id is not None
    kept = _Kept(
        actor.tenant_id,
        actor_key(actor),
        entity,
        [(row, dict(raw)) for row, raw in records],
        stamp,
        plans,
        time.monotonic() + KEEP_SECONDS,
    )
    with _lock:
        _forget_expired()
        _kept[token] = kept
        while len(_kept) > KEEP_LIMIT:
            _kept.popitem(last=False)
    return token


def take(token: str, actor: Actor, entity: str) -> Reusable | None:
    """What was kept under token for this actor's brigade and rights and this entity, removed
    (a token serves once); None when nothing fits."""
    with _lock:
        _forget_expired()
        kept = _kept.pop(token, None) if token else None
    if (
        kept is None
        or kept.tenant_id != actor.tenant_id
        or kept.actor != actor_key(actor)
        or kept.entity != entity
    ):
        return None
    return Reusable(kept)


@dataclass(frozen=True)
class Reusable:
    """Kept plans, handed out only when the rows and the stamp are still what they were."""

    _kept: _Kept

    def plans_if(self, records: Iterable[tuple[int, dict[str, str]]], stamp: str) -> Any | None:
        if self._kept.stamp != stamp or self._kept.rows != list(records):
            return None
        return self._kept.plans


def _forget_expired() -> None:
    now = time.monotonic()
    for token in [t for t, kept in _kept.items() if kept.until <= now]:
        del _kept[token]


def actor_key(actor: Actor) -> str:
    """Who acts and with which rights: a plan checked for one actor is not another's."""
    return _digest(
        [
            str(actor.kind),
            actor.tenant_id,
            actor.member_id,
            actor.account_id,
            actor.unit,
            sorted((str(f), int(level)) for f, level in actor.permissions.items()),
            sorted((str(f), int(level)) for f, level in actor.unit_permissions.items()),
        ]
    )


def stamp(*groups: Iterable[Any]) -> str:
    """A digest of what validation read, group by group (each an iterable of rows or values
    in a stable order), with today's date in Japan (validation compares dates with it)."""
    return _digest([today_jst(), *(_digest(group) for group in groups)])


def _digest(parts: Iterable[Any]) -> str:
    """SHA-256 over the repr of each part: plain values (text, numbers, dates, UUIDs, bytes,
    tuples and rows of them) have one repr for one value."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(repr(part).encode())
        digest.update(b"\n")
    return digest.hexdigest()
