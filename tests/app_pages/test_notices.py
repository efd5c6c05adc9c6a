"""Notices on the pages: the operator announces, every brigade user sees the banner."""

from __future__ import annotations

import uuid
from datetime import timedelta

from core.timefmt import today_jst
from tests.app_pages.conftest import page_text, sign_in
from tests.app_pages.test_brigades import operator_token, widget
from tests.factories import make_tenant


def test_announced_maintenance_reaches_every_brigade_until_withdrawn(open_app):
    title = f"定期メンテナンス{uuid.uuid4().hex[:6]}"
    operator = open_app(operator_token())
    operator.switch_page("app_pages/notices_admin.py").run()
    widget(operator.text_input, "件名 *").input(title)
    widget(operator.text_area, "本文").input("22時から23時までご利用いただけません。")
    tomorrow = today_jst() + timedelta(days=1)
    widget(operator.date_input, "開始日").set_value(tomorrow)
    widget(operator.date_input, "終了日").set_value(tomorrow + timedelta(days=1))
    widget(operator.button, "告知する").click().run()
    assert not operator.exception
    assert f"「{title}」を告知しました。" in [s.value for s in operator.success]

    for tenant in (make_tenant(), make_tenant()):
        at = open_app(sign_in(tenant).token)
        banners = [i.value for i in at.info if title in i.value]
        assert len(banners) == 1 and "22時から23時まで" in banners[0]
        assert f"【メンテナンス】{title}" in page_text(at)

    operator = open_app(operator_token())
    operator.switch_page("app_pages/notices_admin.py").run()
    choice = next(o for o in widget(operator.selectbox, "取り下げるお知らせ").options if title in o)
    widget(operator.selectbox, "取り下げるお知らせ").set_value(choice)
    widget(operator.button, "取り下げる").click().run()
    assert "お知らせを取り下げました。" in [s.value for s in operator.success]

    at = open_app(sign_in(make_tenant()).token)
    assert title not in page_text(at)


def test_signed_out_visitors_see_no_notices(open_app):
    at = open_app(None)
    assert not at.info and "運営からのお知らせ" not in page_text(at)
