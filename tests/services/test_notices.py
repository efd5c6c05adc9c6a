"""Platform notices: only the operator publishes or withdraws; every signed-in user reads the
ones not yet over; the banner window opens a week ahead."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest

from core.actor import Actor
from models.tenant import PLATFORM_TENANT_ID
from services import notices
from services.errors import NotFound, PermissionDenied, ValidationError
from tests.factories import PLATFORM, actor_with, admin, audit_events, last_audit_seq

NOW = datetime(2026, 11, 26, 3, 0, tzinfo=UTC)


@pytest.fixture
def publish(engine) -> Iterator[Callable[..., notices.Notice]]:
    """Publish a notice; withdrawn again after the test, since notices reach every brigade (an
    ongoing incident left behind would be a banner on every other test's pages)."""
    published: list[uuid.UUID] = []

    def _publish(**overrides) -> notices.Notice:
        values = {
            "kind": "maintenance",
            "title": f"定期メンテナンス {datetime.now(UTC).timestamp()}",
            "body": "サービスを停止します。",
            "starts_at": NOW + timedelta(days=3),
            "ends_at": NOW + timedelta(days=3, hours=2),
        } | overrides
        notice_id = notices.publish_notice(PLATFORM, **values)
        published.append(notice_id)
        return next(n for n in notices.all_notices(PLATFORM) if n.id == notice_id)

    yield _publish
    withdrawn = {n.id for n in notices.all_notices(PLATFORM) if n.withdrawn}
    for notice_id in set(published) - withdrawn:
        notices.withdraw_notice(PLATFORM, notice_id)


def test_published_notice_is_read_by_every_brigade_user(engine, tenant, publish):
    start = last_audit_seq(engine, PLATFORM_TENANT_ID)
    notice = publish()

    reader = actor_with(tenant, {})
    shown = {n.id: n for n in notices.current_notices(reader, now=NOW)}
    assert shown[notice.id].title == notice.title
    assert shown[notice.id].banner(NOW) and not shown[notice.id].in_progress(NOW)
    (event,) = audit_events(engine, PLATFORM_TENANT_ID, after_seq=start)
    assert event.action == "notice.publish"
    assert json.loads(event.details)["title"] == notice.title


def test_notices_are_shown_until_they_end(engine, tenant, publish):
    reader = admin(tenant)
    later = publish(starts_at=NOW + timedelta(days=30), ends_at=NOW + timedelta(days=30, hours=1))
    over = publish(starts_at=NOW - timedelta(days=2), ends_at=NOW - timedelta(days=1))
    running = publish(kind="incident", starts_at=NOW - timedelta(hours=1), ends_at=None)

    shown = {n.id: n for n in notices.current_notices(reader, now=NOW)}

    assert over.id not in shown
    assert later.id in shown and not shown[later.id].banner(NOW)
    assert shown[running.id].in_progress(NOW) and shown[running.id].banner(NOW)
    assert notices.current_notices(None, now=NOW) == []


def test_withdrawn_notice_disappears(engine, tenant, publish):
    notice = publish()
    notices.withdraw_notice(PLATFORM, notice.id)

    assert notice.id not in {n.id for n in notices.current_notices(admin(tenant), now=NOW)}
    assert next(n for n in notices.all_notices(PLATFORM) if n.id == notice.id).withdrawn
    with pytest.raises(NotFound):
        notices.withdraw_notice(PLATFORM, notice.id)


def test_brigade_users_cannot_publish_or_withdraw(engine, tenant, publish):
    notice = publish()
    start = last_audit_seq(engine, tenant)
    brigade_admin = admin(tenant)
    member = Actor(kind="member", display_name="団員", label="m", tenant_id=tenant)
    for actor in (brigade_admin, member):
        with pytest.raises(PermissionDenied):
            notices.publish_notice(
                actor, kind="update", title="偽のお知らせ", body="", starts_at=NOW, ends_at=None
            )
        with pytest.raises(PermissionDenied):
            notices.withdraw_notice(actor, notice.id)
        with pytest.raises(PermissionDenied):
            notices.all_notices(actor)
    assert "偽のお知らせ" not in {n.title for n in notices.all_notices(PLATFORM)}
    denials = audit_events(engine, tenant, after_seq=start)
    assert {e.action for e in denials} == {"permission_denied"}
    assert len(denials) == 6


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"kind": "party"}, "kind"),
        ({"title": ""}, "title"),
        ({"title": "あ" * 101}, "title"),
        ({"title": "件名\x07"}, "title"),
        ({"body": "あ" * 2001}, "body"),
        ({"ends_at": NOW + timedelta(days=2)}, "ends_at"),
    ],
)
def test_bad_notice_is_refused_with_the_field_named(engine, overrides, field, publish):
    before = len(notices.all_notices(PLATFORM))
    with pytest.raises(ValidationError) as refused:
        publish(**overrides)
    assert field in refused.value.errors
    assert len(notices.all_notices(PLATFORM)) == before
