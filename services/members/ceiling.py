"""The ceiling (white paper 9.2.2 / 9.4.1): nobody climbs past what the brigade set.

One place decides, for the roster, アカウント管理, CSV import and restore alike:

- Without 役職・権限 管理, an actor may act on a member (edit, change rank, roles or status, issue
  a registration code, unlink LINE, suspend, retire, readmit) only when that member's grants do
  not exceed the actor's own, and may give only ranks and roles whose grants do not exceed the
  actor's own brigade-wide grants (a grant narrowed to 自所属 counts as 閲覧 there).
- Nobody changes their own status (suspend, retire, readmit), and nobody without 管理 changes
  their own rank or roles; a 管理 holder may, but not so as to lose 役職・権限 管理.

The rules are pure functions of grants, so planning (import, restore) applies them to rows with
its own cached grants, and the services apply them to database rows.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence

from core.access import Need, allows
from core.actor import Actor
from models import Member
from models.enums import Function, Level
from services.base import Tx
from services.errors import Refused
from services.grants import Grant, combined_grants, member_grants

F, L = Function, Level

ABOVE = "自分より大きい権限を持つ団員は操作できません（役職・権限の管理権限が必要です）。"
ASSIGN_ABOVE = "自分の権限を超える階級・役職は付与できません（役職・権限の管理権限が必要です）。"
OWN_STATUS = "自分自身の状態（利用停止・退団・再入団）は変更できません。"
OWN_GRANTS = "自分自身の階級・役職は変更できません（役職・権限の管理権限が必要です）。"
OWN_ADMIN = "自分自身の「役職・権限」の管理権限を外すことはできません。"


def is_permission_admin(actor: Actor) -> bool:
    return allows(actor, Need(F.PERMISSIONS, L.ADMIN))


def exceeds(actor: Actor, grants: Mapping[str, Grant]) -> bool:
    """Whether the grants give more than the actor holds in any function, for the whole
    brigade or within a 所属."""
    return any(
        g.brigade_level > actor.level(f) or g.level > actor.unit_level(f) for f, g in grants.items()
    )


def ceiling_problem(
    actor: Actor,
    *,
    member_id: uuid.UUID | None,
    before: Mapping[str, Grant] | None,
    after: Mapping[str, Grant] | None = None,
    status_changes: bool = False,
) -> tuple[str, str] | None:
    """(field, message) of the first rule a change to a member breaks, or None.

    `before` is the member's grants now (None for a new member); `after` the grants of the
    rank and roles the change gives (None when they do not change)."""
    admin = is_permission_admin(actor)
    own = member_id is not None and member_id == actor.member_id
    if own and status_changes:
        return "status", OWN_STATUS
    if own and after is not None:
        if not admin:
            return "rank", OWN_GRANTS
        if after.get(str(F.PERMISSIONS), Grant()).level < L.ADMIN:
            return "rank", OWN_ADMIN
    if admin:
        return None
    if before is not None and exceeds(actor, before):
        return "member", ABOVE
    if after is not None and exceeds(actor, after):
        return "rank", ASSIGN_ABOVE
    return None


def check_ceiling(
    tx: Tx,
    member: Member | None,
    *,
    subjects: Sequence[uuid.UUID] | None = None,
    status_changes: bool = False,
) -> None:
    """Refuse (recorded as a denial) a change to `member` (None: a new one) that breaks the
    ceiling. `subjects` are the rank and role ids the change gives, when they change."""
    # A permission administrator is never held back by the member's grants: not reading them
    # keeps a bulk change on thousands of members from asking for each one's.
    wanted = member is not None and not is_permission_admin(tx.actor)
    before = member_grants(tx.session, member) if wanted else None
    after = combined_grants(tx.session, tx.tenant_id, subjects) if subjects is not None else None
    problem = ceiling_problem(
        tx.actor,
        member_id=member.id if member is not None else None,
        before=before,
        after=after,
        status_changes=status_changes,
    )
    if problem is not None:
        raise Refused(F.PERMISSIONS, L.ADMIN, problem[1])
