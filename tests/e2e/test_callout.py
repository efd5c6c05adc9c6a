"""#21 done: a dispatch mail to the running app makes the fake LINE receive the call-out for
exactly the right members, their button presses appear on the incident's tally in Chromium,
a reminder goes to the silent ones, and every step is in the logs.

The app runs as `streamlit run server.py` with the fake Messaging API as its channel; the
dispatch worker (SMTP receiver, outbox sender, timers) runs in this process, as `cli.py
mail-intake` would beside the app."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest
from playwright.sync_api import Browser, expect
from sqlalchemy import Engine

from formats.line_callout import Postback
from integrations.mail import free_loopback_port, send_mail
from models.base import utcnow
from models.enums import Answer, AuditCategory
from services.dispatch import line_inbox, outbox
from services.dispatch.worker import MailIntake
from tests.callout_factories import make_brigade
from tests.dispatch_factories import SENDER, body, mail, make_source
from tests.e2e.conftest import serve_app, submit_login
from tests.factories import audit_events, give_login
from tests.fakes.line_messaging import FakeMessaging
from tests.fakes.line_server import configured, serve

pytestmark = [pytest.mark.e2e, pytest.mark.both_databases]


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeMessaging]:
    with serve(FakeMessaging()) as running, configured(running.settings_env()):
        yield running


@pytest.fixture(scope="module")
def app(engine: Engine, fake: FakeMessaging) -> Iterator[str]:
    with (
        serve_app("hikeshi-e2e-callout-", fake.settings_env()) as (url, _log),
        configured({"HIKESHI_PUBLIC_BASE_URL": url}),
    ):
        yield url


def wait_for(condition, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def multicast_to(fake: FakeMessaging, brigade) -> set[str]:
    """This brigade's members messaged (the worker also sends what other tests' brigades left
    waiting in a shared database)."""
    ours = set(brigade.subs.values())
    return {u for d in fake.deliveries if d.endpoint == "multicast" for u in d.to if u in ours}


def test_a_dispatch_mail_calls_out_answers_fill_the_tally_and_the_silent_are_reminded(
    app: str, fake: FakeMessaging, browser: Browser, engine: Engine
):
    brigade = make_brigade({"第1分団": 3, "第2分団": 2})
    leader = next(iter(brigade.leaders))
    login = give_login(brigade.tenant_id, leader)
    source = make_source(brigade.tenant_id)
    port = free_loopback_port()
    worker = MailIntake(port=port, imap=False)
    worker.start()
    try:
        raw = mail(source.address, body(units="本町団1"))
        send_mail(raw, host="127.0.0.1", port=port, mail_from=SENDER, rcpt_tos=[source.address])
        called = brigade.in_unit("第1分団") | brigade.leaders
        expected = {brigade.sub_of(m) for m in called}
        wait_for(lambda: multicast_to(fake, brigade) == expected)
        assert not multicast_to(fake, brigade) & {
            brigade.sub_of(m) for m in brigade.in_unit("第2分団")
        }
        ours = set(brigade.subs.values())
        flex = next(d for d in fake.deliveries if ours & set(d.to)).messages[0]
        link = flex["contents"]["footer"]["contents"][3]["action"]["uri"]
        incident_id = link.rsplit("=", 1)[1]

        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        page = context.new_page()
        submit_login(page, app, login)
        expect(page.get_by_text("ホーム").first).to_be_visible()
        assert link.endswith(f"/turnout?incident={incident_id}")  # the member's phone page
        page.goto(f"{app}/incidents?incident={incident_id}")  # a leader watches the tally
        expect(page.get_by_text("出動連絡と回答状況")).to_be_visible()

        first, second, *silent = sorted(brigade.in_unit("第1分団"))
        for member, answer in ((first, Answer.AVAILABLE), (second, Answer.UNAVAILABLE)):
            data = Postback(brigade.tenant_id, uuid.UUID(incident_id), answer=answer)
            raw_body, headers = fake.webhook(
                [fake.postback_event(brigade.sub_of(member), data.encode())]
            )
            response = httpx.post(app + line_inbox.WEBHOOK_PATH, content=raw_body, headers=headers)
            assert response.status_code == 200
        # the tally refreshes by itself: no reload, no click
        available = page.locator('[data-testid="stMetric"]', has_text="出動可").first
        expect(available).to_contain_text("1名", timeout=30_000)
        unavailable = page.locator('[data-testid="stMetric"]', has_text="出動不可")
        expect(unavailable).to_contain_text("1名")
        wait_for(lambda: len([d for d in fake.deliveries if d.endpoint == "reply"]) == 2)

        fake.deliveries.clear()
        outbox.run_due(outbox.QuotaGuard(), now=utcnow() + timedelta(minutes=4))
        reminded = {
            u for d in fake.deliveries if d.messages[0]["type"] == "flex" for u in d.to if u in ours
        }
        leaders = {brigade.sub_of(m) for m in brigade.leaders}
        assert reminded == {brigade.sub_of(m) for m in silent} | leaders
        context.close()
    finally:
        worker.stop()

    events = audit_events(engine, brigade.tenant_id)
    actions = [e.action for e in events]
    for action in ("mail.receive", "callout.callout", "callout.answer", "callout.reminder"):
        assert action in actions, action
    external = [json.loads(e.details) for e in events if e.category == AuditCategory.EXTERNAL]
    assert any(
        d.get("endpoint", "").endswith("/multicast") and d.get("request_id") for d in external
    )
    assert any(e.action == "line.webhook" for e in events)
    assert any(d.get("endpoint", "").endswith("/reply") for d in external)
