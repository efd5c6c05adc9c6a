"""出動履歴 page and the dashboard's 出動統計 with AppTest on real services: the list follows
its filters, a picked incident shows its delays and answers at 1/3/5 minutes, a bad period is
a Japanese error, test incidents never show, and both follow the 災害出動 permission."""

from __future__ import annotations

import uuid
from datetime import date, timedelta

import pytest
from streamlit.testing.v1 import AppTest

from core.timefmt import JST
from models.base import utcnow
from models.enums import Answer, Function
from services import permissions
from services.dispatch import history
from services.grants import Grant
from services.permissions import CellChange
from tests.app_pages.conftest import nav_registers, page_text, run_page_directly, sign_in
from tests.factories import admin, make_member, make_tenant, rank_id
from tests.history_factories import (
    add_answer,
    add_mail,
    add_target,
    add_wave,
    at,
    make_incident,
)

PAGE = "app_pages/incident_history.py"
DASHBOARD = "app_pages/dashboard.py"


def open_history(open_app, token: str) -> AppTest:
    at_ = open_app(token)
    at_.switch_page(PAGE).run()
    assert not at_.exception, at_.exception
    assert [t.value for t in at_.title] == ["出動履歴"]
    return at_


def table_with(at_: AppTest, column: str):
    return next(d.value for d in at_.dataframe if column in d.value.columns)


def listed(at_: AppTest) -> list[int]:
    return list(table_with(at_, "未回答")["番号"])


def metrics(at_: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at_.metric}


@pytest.fixture
def brigade(engine) -> tuple[uuid.UUID, uuid.UUID]:
    """A fire from a mail called out and answered, a 林野火災 by hand, an open incident and a
    test call-out; the 分団 of 第2分団 only in the second."""
    tenant = make_tenant()
    fire = make_incident(
        tenant, from_mail=True, mail_date=at(-20), received_at=at(-8), created_at=at(-7)
    )
    add_mail(tenant, fire, received_at=at(-8), mail_date=at(-20))
    add_wave(tenant, fire, created_at=at(-6), sent=(at(0), at(3)), units=("第1分団",))
    members = [make_member(tenant, affiliation="第1分団 第1部").id for _ in range(2)]
    for member in members:
        add_target(tenant, fire, member, unit="第1分団")
    add_answer(tenant, fire, members[0], Answer.AVAILABLE, at(30))
    add_answer(tenant, fire, members[1], Answer.UNAVAILABLE, at(150))
    make_incident(tenant, kind="林野火災", units=("第2分団",), created_at=at(86400))
    make_incident(tenant, kind="林野火災", units=("第2分団",), status="dispatched")
    make_incident(tenant, kind="訓練用の試験", test=True)
    return tenant, fire


def test_history_lists_filters_and_shows_a_timeline(open_app, brigade):
    tenant, fire = brigade
    user = sign_in(tenant)
    at_ = open_history(open_app, user.token)
    rows = history.closed_incidents(admin(tenant)).rows
    assert listed(at_) == [r.number for r in rows] and len(rows) == 2
    assert "訓練用の試験" not in page_text(at_)

    at_.selectbox(key="hist_unit").select("第2分団").run()
    assert listed(at_) == [rows[0].number]
    at_.selectbox(key="hist_unit").set_value(None).run()
    at_.selectbox(key="hist_kind").select("建物火災").run()
    assert listed(at_) == [rows[1].number]

    at_.selectbox(key="hist_pick").select(str(fire)).run()
    assert not at_.exception, at_.exception
    shown = metrics(at_)
    assert shown["受信まで"] == "12秒" and shown["登録まで"] == "1秒"
    assert shown["出動連絡の受付まで"] == "7秒" and shown["最後の受付まで"] == "3秒"
    assert (shown["1分後"], shown["3分後"], shown["5分後"]) == ("1名", "2名", "2名")
    events = table_with(at_, "できごと")
    assert list(events["できごと"])[:4] == ["メール受信", "登録", "出動連絡", "LINE受付（最初）"]
    assert events["日時"].iloc[0] == "2026-03-10 09:59:52"  # JST


def test_a_period_ending_before_it_starts_is_a_japanese_error(open_app, brigade):
    tenant, _ = brigade
    at_ = open_history(open_app, sign_in(tenant).token)
    at_.date_input(key="hist_since").set_value(date(2026, 3, 11)).run()
    at_.date_input(key="hist_until").set_value(date(2026, 3, 10)).run()
    assert not at_.exception
    assert history.BAD_PERIOD in at_.error[0].value
    at_.date_input(key="hist_until").set_value(date(2026, 3, 11)).run()
    assert listed(at_) == [history.closed_incidents(admin(tenant)).rows[0].number]


def test_nothing_ended_yet(open_app):
    tenant = make_tenant()
    at_ = open_history(open_app, sign_in(tenant).token)
    assert [i.value for i in at_.info] == ["条件に合う終わった出動はありません。"]


def test_dashboard_shows_dispatch_statistics(open_app):
    """Incidents of yesterday: inside the default twelve months whenever the test runs."""
    tenant = make_tenant()
    yesterday = utcnow() - timedelta(days=1)
    fire = make_incident(tenant, kind="建物火災", created_at=yesterday)
    make_incident(tenant, kind="林野火災", created_at=yesterday, status="dispatched")
    make_incident(tenant, kind="訓練用の試験", created_at=yesterday, test=True)
    add_wave(tenant, fire, created_at=yesterday, sent=(yesterday,))
    members = [make_member(tenant, affiliation="第1分団 第1部").id for _ in range(2)]
    for member in members:
        add_target(tenant, fire, member, unit="第1分団")
    add_answer(tenant, fire, members[0], Answer.AVAILABLE, yesterday + timedelta(seconds=30))

    at_ = open_app(sign_in(tenant).token)

    assert not at_.exception, at_.exception
    assert "出動統計" in [s.value for s in at_.subheader]
    assert metrics(at_)["出動件数"] == "2件"  # the open one too; the test one not
    assert metrics(at_)["規定人数に達しなかった分団"] == "1件"  # 1 coming, minimum 3
    month = yesterday.astimezone(JST).strftime("%Y-%m")
    months = table_with(at_, "月").set_index("月")
    assert len(months) == 12 and months.index[-1] == month
    assert months.loc[month].to_dict() == {"建物火災": 1, "林野火災": 1}
    answers = table_with(at_, "回答率(%)")
    assert answers.to_dict("records") == [
        {"分団": "第1分団", "回答率(%)": 50.0, "回答": 1, "呼出": 2}
    ]
    assert "訓練用の試験" not in page_text(at_)


def test_without_dispatch_no_history_page_and_no_statistics(open_app, brigade):
    tenant, _ = brigade
    permissions.update_matrix(
        admin(tenant), [CellChange("rank", rank_id(tenant, "団員"), Function.DISPATCH, Grant())]
    )
    user = sign_in(tenant, rank="団員")
    at_ = open_app(user.token)
    assert not at_.exception
    assert not nav_registers(at_, PAGE)
    assert "出動統計" not in [s.value for s in at_.subheader]
    direct = run_page_directly(PAGE, user.token)
    assert [e.value for e in direct.error] == ["この画面を使う権限がありません。"]
