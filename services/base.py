"""What every service call goes through: tenant scoping, the permission check, one transaction,
and the audit record written inside it."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from functools import cached_property
from typing import Any, TypeVar

from sqlalchemy import false
from sqlmodel import Session
from sqlmodel.sql.expression import Select, SelectOfScalar

from core.access import PLATFORM, Need, Platform, allows
from core.actor import Actor
from models import Tenant
from models.enums import AuditCategory, Function, Level
from services import audit
from services.crypto import TenantCipher
from services.db import unit_of_work, write_epoch
from services.errors import PermissionDenied, Refused
from services.signin.sessions import live_actor

S = TypeVar("S", Select, SelectOfScalar)


def scoped(statement: S, actor: Actor) -> S:
    """Restrict a SELECT to the actor's tenant, for every entity it reads. Deny by default."""
    if actor.tenant_id is None:
        return statement.where(false())
    for description in statement.column_descriptions:
        entity = description.get("entity")
        if entity is None or not hasattr(entity, "tenant_id"):
            raise TypeError(f"cannot scope {description.get('name')!r}: no tenant_id")
        statement = statement.where(entity.tenant_id == actor.tenant_id)
    return statement


class Tx:
    """One unit of work for one actor."""

    def __init__(self, session: Session, actor: Actor) -> None:
        self.session = session
        self.actor = actor
        self._checks: list[Callable[[], None]] = []

    def check_before_commit(self, check: Callable[[], None]) -> None:
        """Run `check` (which raises to refuse) when the work is committed, after every change."""
        self._checks.append(check)

    def commit(self) -> None:
        """Keep the work: the registered checks run first. Without this, nothing is kept."""
        self.session.flush()
        for check in self._checks:
            check()
        self.session.commit()

    def rollback(self) -> None:
        """Discard the work (a dry run), and say so: the block then ends without error."""
        self.session.rollback()

    @property
    def tenant_id(self) -> uuid.UUID:
        if self.actor.tenant_id is None:
            raise PermissionDenied()
        return self.actor.tenant_id

    @property
    def brigade_name(self) -> str:
        """The brigade's name as it is in this unit of work ("" for none)."""
        tenant = self.session.get(Tenant, self.tenant_id)
        return tenant.name if tenant is not None else ""

    @cached_property
    def cipher(self) -> TenantCipher:
        return TenantCipher(self.session, self.tenant_id)

    def get(self, model: type, row_id: Any) -> Any:
        """A tenant row by id, or None; another tenant's row is indistinguishable from none."""
        row = self.session.get(model, row_id)
        if row is None or getattr(row, "tenant_id", None) != self.actor.tenant_id:
            return None
        return row

    def audit(self, action: str, **kwargs: Any) -> None:
        kwargs.setdefault("category", AuditCategory.OPERATION)
        audit.record(self.session, self.actor, action=action, **kwargs)


def require(actor: Actor, *needs: Need | tuple[Function, Level] | Platform, action: str) -> Actor:
    """Refuse, and record the refusal, unless the actor holds every need (core.access.allows)
    as the database has the actor now (a signed-in actor's session must still be live).
    Returns that current actor."""
    fresh = actor
    if not _just_checked(actor):
        with unit_of_work(actor.tenant_id, read_only=True) as session:
            fresh = live_actor(session, actor)
    _check(actor, fresh, needs, action)
    return fresh


# An actor the database confirmed less than this long ago, with no write committed in this
# process since, is not read again: a page run makes many service calls right after resolving
# its actor. A deferred call (a download pressed later), any write here (a suspension, a
# logout, a changed grant) or a second's wait reads it again; a change made by another server
# process is seen within that second.
JUST_CHECKED_SECONDS = 1.0


def _just_checked(actor: Actor) -> bool:
    if actor.session_id is None:
        return True  # no session to check (the command line, a machine job, a test actor)
    if actor.checked is None:
        return False
    at, epoch = actor.checked
    return epoch == write_epoch() and time.monotonic() - at < JUST_CHECKED_SECONDS


def _check(actor: Actor, fresh: Actor | None, needs: tuple, action: str) -> None:
    if fresh is not None and allows(fresh, *needs):
        return
    current = fresh or replace(actor, permissions={}, unit_permissions={})
    missing = next((n for n in needs if n is not PLATFORM and not allows(current, n)), None)
    function, level, _ = Need(*missing) if missing is not None else (None, None, None)
    record_denial(actor, function, level, action)
    raise PermissionDenied()


def record_denial(
    actor: Actor, function: Function | None, level: Level | None, action: str
) -> None:
    """A denial is an auth event in its own transaction, since the denied one rolls back."""
    with unit_of_work(actor.tenant_id, independent=True) as session:
        audit.record(
            session,
            actor,
            category=AuditCategory.AUTH,
            action="permission_denied",
            outcome="denied",
            details={
                "function": str(function or ""),
                "required": level.name.lower() if level is not None else "",
                "attempted": action,
            },
        )
        session.commit()


@contextmanager
def transaction(
    actor: Actor, *needs: Need | tuple[Function, Level], action: str, read_only: bool = False
) -> Iterator[Tx]:
    """Check every need through the gate, against the actor as the database has it now, in one
    transaction scoped to the actor's tenant. Nothing is kept unless the block calls
    ``tx.commit()``. A PermissionDenied raised inside (a rule on what the call touches) is
    recorded too; refusals are recorded after the transaction has closed. ``read_only``: see
    services.db.unit_of_work (a hot read, such as a board refreshing every few seconds)."""
    first = Need(*needs[0])
    fresh: Actor | None = None
    if actor.tenant_id is None:
        _check(actor, actor, needs, action)
        record_denial(actor, first.function, first.level, action)
        raise PermissionDenied()
    try:
        with unit_of_work(actor.tenant_id, read_only=read_only) as session:
            fresh = actor if _just_checked(actor) else live_actor(session, actor)
            if fresh is not None and allows(fresh, *needs):
                yield Tx(session, fresh)
                return
    except Refused as refused:
        record_denial(actor, refused.function, refused.level, action)
        raise
    except PermissionDenied:
        record_denial(actor, first.function, first.level, action)
        raise
    _check(actor, fresh, needs, action)
