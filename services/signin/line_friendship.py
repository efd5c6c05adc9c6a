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
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from sqlmodel import select

from config import get_settings
from core.access import Need
from core.actor import Actor, RequestContext, machine_actor
from integrations.line_login import LineLoginClient
from models import MemberLine
from models.base import utcnow
from models.callout import FriendStatus
from models.enums import Function, Level
from services.base import scoped, transaction
from services.db import unit_of_work
from services.signin.line_sessions import Link, find_links

# the level every member holds on 災害出動, as for the webhook's follow events
FRIENDSHIP = Need(Function.DISPATCH, Level.VIEW)


def friendship_actor(link: Link, request: RequestContext) -> Actor:
    actor = machine_actor(link.tenant_id, "line-login", [(FRIENDSHIP.function, FRIENDSHIP.level)])
    return replace(actor, request=request)


def refresh_friendship(
    client: LineLoginClient, sub: str, access_token: str, request: RequestContext
) -> None:
    """Ask LINE and record the answer on the account's links. Only when the call-out has a
    Messaging API channel and the account is linked somewhere; a call LINE does not answer
    leaves every status as it was (the failed call is in the external-service log)."""
    if not (get_settings().line_messaging_configured and access_token):
        return
    with unit_of_work(None) as db:
        links = find_links(db, sub)
    if not links:
        return
    asked_at = utcnow()
    friend = client.friendship(access_token)
    if friend is None:
        return
    for link in links:
        _record(link, friend, asked_at, request)


def learned(before: FriendStatus, friend: bool) -> FriendStatus:
    """The status after LINE's answer: "not a friend" keeps the more precise 「ブロック中」."""
    if friend:
        return FriendStatus.FRIEND
    return FriendStatus.BLOCKED if before == FriendStatus.BLOCKED else FriendStatus.NOT_FRIEND


def _record(link: Link, friend: bool, asked_at: datetime, request: RequestContext) -> None:
    actor = friendship_actor(link, request)
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
