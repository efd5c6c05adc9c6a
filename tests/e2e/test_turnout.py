"""出動情報 on a phone in Chromium: a signed-out member taps the call-out's LINE link, signs in
through the fake LINE Login, comes back to the incident and sees the place, the map and the
nearest water on a 390 px wide screen without sideways scrolling; the 既読 is recorded."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, expect
from sqlalchemy import Engine
from sqlmodel import select

from models.incident_read import IncidentRead
from services.db import unit_of_work
from services.dispatch import callout, intake
from services.signin import line
from tests.dispatch_factories import body, mail, make_source, where
from tests.e2e.conftest import MAP_FRAME, serve_app
from tests.factories import link_line, make_member, make_tenant
from tests.fakes.line_server import FakeLine, FakeUser, configured, serve
from tests.water_factories import ORIGIN, north_of_origin
from tests.water_factories import make_source as make_water_source

pytestmark = [pytest.mark.e2e, pytest.mark.both_databases]

PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def fake_line() -> Iterator[FakeLine]:
    with serve(FakeLine()) as fake:
        yield fake


@pytest.fixture(scope="module")
def line_app(engine: Engine, fake_line: FakeLine) -> Iterator[str]:
    with serve_app("hikeshi-e2e-turnout-", fake_line.settings_env()) as (url, _log):
        fake_line.redirect_uris = {url + line.CALLBACK_PATH}
        yield url


def reads_of(tenant) -> list[IncidentRead]:
    with unit_of_work(tenant) as db:
        return list(db.exec(select(IncidentRead).where(IncidentRead.tenant_id == tenant)).all())


def test_a_member_opens_the_call_out_link_on_a_phone(browser: Browser, line_app, fake_line):
    tenant = make_tenant()
    fake_line.user = FakeUser(name="LINE 花子")
    member = make_member(tenant)
    link_line(tenant, member.id, fake_line.user.sub)
    water = make_water_source(tenant, memo="公民館前", **north_of_origin(1))
    source = make_source(tenant)
    text = body(extra=f"地図 https://www.google.com/maps/@{ORIGIN[0]},{ORIGIN[1]},17z")
    incident_id = intake.receive(where(source), mail(source.address, text)).incident_id
    with configured({"HIKESHI_PUBLIC_BASE_URL": line_app}):
        link = callout.incident_link(incident_id)

    context = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True, locale="ja-JP")
    page = context.new_page()
    script_errors: list[str] = []  # the map's script failing leaves its frame 0 px high
    page.on("pageerror", lambda error: script_errors.append(str(error)))
    page.goto(link)
    page.get_by_role("link", name="LINEでログイン").click()
    expect(page).to_have_url(re.compile(re.escape(fake_line.base_url)))
    page.get_by_role("button", name="許可する").click()

    expect(page).to_have_url(link)
    expect(page.get_by_role("heading", name="出動情報")).to_be_visible()
    expect(page.get_by_text("デモ市本町1丁目付近")).to_be_visible()
    expect(page.get_by_role("link", name="地図アプリで開く")).to_be_visible()
    expect(page.locator(MAP_FRAME)).to_be_visible()
    expect(page.frame_locator(MAP_FRAME).locator(".leaflet-container")).to_be_attached()
    expect(page.get_by_text(water.code)).to_be_visible()
    expect(page.get_by_text("111 m")).to_be_visible()
    box = page.locator(MAP_FRAME).bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"]
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    assert script_errors == []

    deadline = time.monotonic() + 10
    while not reads_of(tenant) and time.monotonic() < deadline:
        time.sleep(0.1)
    [read] = reads_of(tenant)
    assert read.member_id == member.id and read.incident_id == incident_id
    context.close()
