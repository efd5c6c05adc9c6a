"""Who may edit which members: the editing scope (the whole brigade or the own 所属) and the
checks on rank, roles and permission grants that the roster, import and restore share."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from core.access import Need, allows
from core.actor import Actor
from models import (
    Member,
)
from models.enums import Function, Level
from services.base import Tx
from services.members.model import EditScope
from services.permissions import (
    Grant,
    Refused,
    check_grants_permission_editing,
    combined_grants,
    guarded,
    member_grants,
    no_lockout,
)

# ---------------------------------------------------------------------------
# Permission contexts


@contextmanager
def editing(actor: Actor, action: str) -> Iterator[Tx]:
    """団員名簿 編集, for the whole brigade or narrowed to the actor's own 所属 (each change then
    states the 所属 it touches through require_scope)."""
    with guarded(actor, Function.ROSTER, Level.EDIT, action, opens_at=Level.VIEW) as tx:
        if not current_scope(tx).allows_editing:
            raise Refused(Function.ROSTER, Level.EDIT)
        yield tx


@contextmanager
def accounts_editing(actor: Actor, action: str) -> Iterator[Tx]:
    """アカウント管理 編集, with the lock-out guard around the change."""
    with guarded(actor, Function.MEMBER_ACCOUNTS, Level.EDIT, action) as tx, no_lockout(tx):
        yield tx


def current_scope(tx: Tx) -> EditScope:
    """Where the actor of this unit of work may edit the roster, as the gate decides it."""
    actor = tx.actor
    if allows(actor, Need(Function.ROSTER, Level.EDIT)):
        return EditScope(whole_brigade=True)
    if actor.unit and allows(actor, Need(Function.ROSTER, Level.EDIT, unit=actor.unit)):
        return EditScope(whole_brigade=False, unit=actor.unit)
    return EditScope(whole_brigade=False)


def require_scope(tx: Tx, *affiliations: str) -> None:
    """団員名簿 編集 for every 所属 given (the whole brigade, or each within the own 所属)."""
    if not allows(tx.actor, *(Need(Function.ROSTER, Level.EDIT, unit=a) for a in affiliations)):
        raise Refused(
            Function.ROSTER,
            Level.EDIT,
            f"自分の所属（{tx.actor.unit}）以外の団員は編集できません。",
        )


def check_rank_and_roles(tx: Tx, member: Member, values: dict) -> None:
    before = permissions_grant(member_grants(tx.session, member))
    after_grants = combined_grants(tx.session, tx.tenant_id, subjects_of(values))
    check_grants_permission_editing(tx, before, permissions_grant(after_grants))


def subjects_of(values: dict) -> list[uuid.UUID]:
    return [values["rank_id"], *values["role_ids"]]


def permissions_grant(grants: dict[str, Grant]) -> Grant:
    return grants.get(str(Function.PERMISSIONS), Grant())
