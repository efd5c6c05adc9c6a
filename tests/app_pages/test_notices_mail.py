"""お知らせ管理 sends a notice by mail too (#23): the operator ticks 「メールでも送る」, each
brigade's administrators get it through the local relay, and the page says how many went."""

from __future__ import annotations

import email
import email.policy
import uuid
from datetime import timedelta

from core.timefmt import today_jst
from services import notices
from tests.app_pages.test_brigades import operator_token, widget
from tests.factories import PLATFORM, make_member, make_tenant, rank_id
from tests.fakes.mail_relay import local_relay


def test_a_notice_published_with_mail_reaches_the_administrators(open_app, monkeypatch):
    tenant = make_tenant()
    chief = f"chief-{uuid.uuid4().hex[:8]}@brigade.example.jp"
    make_member(tenant, rank_id=rank_id(tenant, "団長"), email=chief)
    title = f"障害のお知らせ{uuid.uuid4().hex[:6]}"
    with local_relay(monkeypatch) as relay:
        operator = open_app(operator_token())
        operator.switch_page("app_pages/notices_admin.py").run()
        widget(operator.text_input, "件名 *").input(title)
        widget(operator.date_input, "終了日").set_value(today_jst() + timedelta(days=1))
        widget(operator.checkbox, "メールでも送る").check()
        widget(operator.button, "告知する").click().run()
        assert not operator.exception
        assert f"「{title}」を告知しました。" in [s.value for s in operator.success]
        (counts,) = [i.value for i in operator.info if i.value.startswith("メール:")]
        assert "通を送信しました" in counts and "失敗" not in counts
        to_chief = [raw for envelope, raw in relay.mails if envelope.rcpt_tos == (chief,)]
        (raw,) = to_chief
        assert title in email.message_from_bytes(raw, policy=email.policy.default)["Subject"]
    for notice in notices.all_notices(PLATFORM):
        if notice.title == title:
            notices.withdraw_notice(PLATFORM, notice.id)


def test_without_a_relay_mail_is_not_offered(open_app):
    operator = open_app(operator_token())
    operator.switch_page("app_pages/notices_admin.py").run()
    assert widget(operator.checkbox, "メールでも送る").disabled
