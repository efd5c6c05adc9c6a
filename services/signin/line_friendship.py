"""Whether the installation's official account reaches a member on LINE, asked at each sign-in.

Follow and unfollow webhook events (services/dispatch/line_webhook.py) tell only of changes made
after the webhook was set up: a member who added the account before stays 「不明」. So after a
verified LINE login, LINE Login's friendship status is asked with the login's access token and
stored on the account's links.

Every brigade the LINE account is linked in is updated, as the follow event does: there is one
official account per installation, so the friendship is a fact about the LINE account, not about
the brigade signed in to. Each brigade's change is its own transaction, by a machine actor of
that brigade, audited in its chain; the call itself is logged in the platform's chain with the
login's other calls, so no brigade learns when a member signs in to another.

A login of an account linked nowhere yet (on its way to the registration code) is asked too, at
the moment the member has just been offered the official account: the answer (never the token)
waits on the pending login, and the link the code makes starts with it (`carry_to_link`).
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import datetime

from sqlalchemy import update
from sqlmodel import Session as DbSession
from sqlmodel import select

from config import get_settings
from core.access import Need
from core.actor import Actor, RequestContext, machine_actor
from integrations.line_login import LineLoginClient
from models import LinePendingLogin, MemberLine
from models.base import utcnow
from models.callout import FriendStatus
from models.enums import AuditCategory, Function, Level
from services import audit
from services.base import scoped, transaction
from services.db import unit_of_work
from services.signin import owners
from services.signin.line_sessions import Link, find_links

# the level every member holds on 災害出動, as for the webhook's follow events
FRIENDSHIP = Need(Function.DISPATCH, Level.VIEW)


def friendship_actor(tenant_id: uuid.UUID, request: RequestContext) -> Actor:
    actor = machine_actor(tenant_id, "line-login", [(FRIENDSHIP.function, FRIENDSHIP.level)])
    return replace(actor, request=request)


def refresh_friendship(
    client: LineLoginClient,
    sub: str,
    access_token: str,
    request: RequestContext,
    pending_session: uuid.UUID | None = None,
) -> None:
    """Ask LINE and record the answer on the account's links and on the login's pending row
    (pending_session, a login bound to no member yet). Only when the call-out has a Messaging
    API channel and the answer has somewhere to go; a call LINE does not answer leaves every
    status as it was (the failed call is in the external-service log)."""
    if not (get_settings().line_messaging_configured and access_token):
        return
    with unit_of_work(None) as db:
        links = find_links(db, sub)
    if not (links or pending_session):
        return
    asked_at = utcnow()
    friend = client.friendship(access_token)
    if friend is None:
        return
    if pending_session is not None:
        _keep_on_pending(pending_session, friend, asked_at)
    for link in links:
        _record(link, friend, asked_at, request)


def _keep_on_pending(session_id: uuid.UUID, friend: bool, asked_at: datetime) -> None:
    with unit_of_work(None) as db:
        owners.act_for_platform(db)
        db.exec(
            update(LinePendingLogin)
            .where(LinePendingLogin.session_id == session_id)
            .values(friend=friend, friend_at=asked_at)
        )
        db.commit()


def carry_to_link(
    db: DbSession, pending: LinePendingLogin, link: MemberLine, request: RequestContext
) -> None:
    """Give a new link the status its pending login was told, audited in the brigade's chain
    in the caller's transaction (the one that makes the link). Nothing was told: 「不明」."""
    if pending.friend is None or pending.friend_at is None:
        return
    before = FriendStatus(link.friend_status)
    after = learned(before, pending.friend)
    link.friend_status, link.friend_status_at = after, pending.friend_at
    db.add(link)
    audit.record(
        db,
        friendship_actor(link.tenant_id, request),
        category=AuditCategory.OPERATION,
        action="line.friendship",
        target_type="member",
        target_id=link.member_id,
        details={"before": before.value, "after": after.value, "source": "login"},
        tenant_id=link.tenant_id,
    )


def learned(before: FriendStatus, friend: bool) -> FriendStatus:
    """The status after LINE's answer: "not a friend" keeps the more precise 「ブロック中」."""
    if friend:
        return FriendStatus.FRIEND
    return FriendStatus.BLOCKED if before == FriendStatus.BLOCKED else FriendStatus.NOT_FRIEND


def _record(link: Link, friend: bool, asked_at: datetime, request: RequestContext) -> None:
    actor = friendship_actor(link.tenant_id, request)
    with transaction(actor, FRIENDSHIP, action="line.friendship") as tx:
        row = tx.session.exec(
            scoped(select(MemberLine), tx.actor)
            .where(MemberLine.member_id == link.member_id)
            .with_for_update()
        ).first()
        if row is None:
            return  # unlinked since
        # a follow / unfollow event that arrived while LINE was being asked is newer
        if row.friend_status_at is not None and row.friend_status_at > asked_at:
            return
        before = FriendStatus(row.friend_status)
        after = learned(before, friend)
        if after == before:
            return
        row.friend_status, row.friend_status_at = after, asked_at
        tx.session.add(row)
        tx.audit(
            "line.friendship",
            target_type="member",
            target_id=link.member_id,
            details={"before": before.value, "after": after.value, "source": "login"},
        )
        tx.commit()
