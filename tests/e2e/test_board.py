"""#22: the 出動中の事案 board open in Chromium shows answers as they arrive, by itself: no
reload, no click (the page's own JavaScript state survives the refreshes)."""

from __future__ import annotations

import pytest
from playwright.sync_api import Browser, expect

from services.catalog import Answer
from services.dispatch import callout, incidents
from services.dispatch.incidents import IncidentInput
from tests.callout_factories import make_brigade
from tests.e2e.conftest import submit_login
from tests.factories import admin, give_login

pytestmark = pytest.mark.e2e


def test_answers_arriving_while_the_board_is_open_appear_without_a_reload(
    base_url: str, browser: Browser
):
    brigade = make_brigade({"第1分団": 3})
    actor = admin(brigade.tenant_id)
    fire = incidents.create_incident(
        actor, IncidentInput(kind="建物火災", place="本町1丁目", units=("第1分団",))
    )
    callout.call_out(actor, fire.id, ("第1分団",))
    context = browser.new_context(viewport={"width": 1024, "height": 768})  # a tablet
    page = context.new_page()
    submit_login(page, base_url, give_login(brigade.tenant_id, next(iter(brigade.leaders))))
    expect(page.get_by_text("ホーム").first).to_be_visible()
    page.goto(f"{base_url}/board")
    expect(page.get_by_text(f"第{fire.number}号 建物火災")).to_be_visible()
    metric = page.locator('[data-testid="stMetric"]')
    expect(metric.filter(has_text="未回答").first).to_contain_text("3名")
    expect(page.get_by_text("不足")).to_be_visible()
    page.evaluate("window.__boardStayed = true")  # gone if the page were reloaded

    for member in sorted(brigade.in_unit("第1分団")):
        callout.answer_by_proxy(actor, fire.id, member, Answer.AVAILABLE, eta_minutes=5)

    expect(metric.filter(has_text="出動可").first).to_contain_text("3名", timeout=20_000)
    expect(metric.filter(has_text="未回答").first).to_contain_text("0名")
    expect(page.get_by_text("充足")).to_be_visible()
    assert page.evaluate("window.__boardStayed") is True
    context.close()
