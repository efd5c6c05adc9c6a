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
from models.enums import Function, Level, MemberStatus
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
def editing(actor: Actor, action: str) -> Iterator[tuple[Tx, EditScope]]:
    """団員名簿 編集, for the whole brigade or narrowed to the actor's own 所属."""
    with guarded(actor, Function.ROSTER, Level.EDIT, action, opens_at=Level.VIEW) as tx:
        scope = current_scope(tx)
        if not scope.allows_editing:
            raise Refused(Function.ROSTER, Level.EDIT)
        yield tx, scope


@contextmanager
def accounts_editing(actor: Actor, action: str) -> Iterator[Tx]:
    """アカウント管理 編集, with the lock-out guard around the change."""
    with guarded(actor, Function.MEMBER_ACCOUNTS, Level.EDIT, action) as tx, no_lockout(tx):
        yield tx


def current_scope(tx: Tx) -> EditScope:
    """Where the actor of this unit of work may edit the roster."""
    if allows(tx.actor, Need(Function.ROSTER, Level.EDIT)):
        return EditScope(whole_brigade=True)
    me = tx.get(Member, tx.actor.member_id) if tx.actor.member_id else None
    if me is None or me.status != MemberStatus.ACTIVE or not me.affiliation:
        return EditScope(whole_brigade=False)
    grant = member_grants(tx.session, me).get(str(Function.ROSTER), Grant())
    return EditScope(whole_brigade=False, unit=me.affiliation if grant.level >= Level.EDIT else "")


def require_scope(scope: EditScope, *affiliations: str) -> None:
    if not all(scope.covers(a) for a in affiliations):
        raise Refused(
            Function.ROSTER,
            Level.EDIT,
            f"自分の所属（{scope.unit}）以外の団員は編集できません。",
        )


def check_rank_and_roles(tx: Tx, member: Member, values: dict) -> None:
    before = permissions_grant(member_grants(tx.session, member))
    after_grants = combined_grants(tx.session, tx.tenant_id, subjects_of(values))
    check_grants_permission_editing(tx, before, permissions_grant(after_grants))


def subjects_of(values: dict) -> list[uuid.UUID]:
    return [values["rank_id"], *values["role_ids"]]


def permissions_grant(grants: dict[str, Grant]) -> Grant:
    return grants.get(str(Function.PERMISSIONS), Grant())
