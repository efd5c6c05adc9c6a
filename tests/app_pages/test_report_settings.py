"""出動報告の設定 (#22): a preset loaded, saved and shown in plain Japanese; an invalid band
refused with the engine's message; a 試算 under the table as edited; no page without 管理."""

from __future__ import annotations

from datetime import time

from streamlit.testing.v1 import AppTest

from core.rewards import HIOKI, KUMIYAMA, MISAWA
from services.reports import rewards
from tests.app_pages.conftest import nav_registers, page_text, sign_in
from tests.factories import admin, make_tenant

PAGE = "app_pages/report_settings.py"


def open_page(open_app, token: str) -> AppTest:
    at = open_app(token)
    at.switch_page(PAGE).run()
    assert not at.exception, at.exception
    assert [t.value for t in at.title] == ["出動報告の設定"]
    assert not at.warning, [w.value for w in at.warning]
    return at


def press(at: AppTest, label: str) -> AppTest:
    next(b for b in at.button if b.label == label).click().run()
    assert not at.exception, at.exception
    return at


def test_a_preset_is_loaded_saved_and_shown(open_app):
    tenant = make_tenant()
    at = open_page(open_app, sign_in(tenant).token)
    assert "出動報酬の表はまだ保存されていません。" in at.info[0].value

    at.selectbox(key="rt_source").select("ひな形: 日置市").run()
    press(press(at, "読み込む"), "出動報酬の表を保存")
    assert at.success[0].value == "出動報酬の表「日置市」を保存しました。"
    assert rewards.get_reward_table(admin(tenant)) == (HIOKI, 1)
    summary = page_text(at)
    for line in (
        "災害: 8,000円（1日ごと）",
        "同じ日に複数の活動があるときは、最も高い報酬のみ支給",
        "8時間を超える活動は8時間ごとに1日として計算",
        "誤報: 5,000円",
        "読み替え: 火災・風水害・震災・捜索 → 災害",
    ):
        assert line in summary

    at.selectbox(key="rt_source").select("ひな形: 久御山町").run()
    press(press(at, "読み込む"), "出動報酬の表を保存")
    assert rewards.get_reward_table(admin(tenant)) == (KUMIYAMA, 2)
    assert "災害: 1時間 1,000円（端数切り上げ）・1日の上限 8,000円" in page_text(at)


def test_an_invalid_band_shows_the_message_and_saves_nothing(open_app):
    tenant = make_tenant()
    at = open_page(open_app, sign_in(tenant).token)  # the first preset (三沢市) is loaded
    at.session_state["rt_bands"] = {
        "edited_rows": {1: {"開始（時間:分）": "3:00"}, 3: {"終了（時間:分）": "4時間"}},
        "added_rows": [],
        "deleted_rows": [],
    }
    press(at.run(), "出動報酬の表を保存")
    assert (
        "時間帯 4行目: 開始と終了は「4:00」のように時間:分で入力してください。" in at.error[0].value
    )

    at.session_state["rt_bands"] = {
        "edited_rows": {1: {"開始（時間:分）": "3:00"}},
        "added_rows": [],
        "deleted_rows": [],
    }
    press(at.run(), "出動報酬の表を保存")
    assert "災害 2行目: 前の行と時間帯が重なっています。" in at.error[0].value
    assert "災害 1行目" not in at.error[0].value
    assert rewards.get_reward_table(admin(tenant)) == (None, 0)


def test_the_saved_table_loads_unchanged_and_a_trial_shows_the_amount(open_app):
    tenant = make_tenant()
    rewards.save_reward_table(admin(tenant), MISAWA, expected_version=0)
    at = open_page(open_app, sign_in(tenant).token)
    assert "災害: 4時間未満 2,500円 / 4時間以上7時間45分未満 5,000円" in page_text(at)

    at.selectbox(key="rt_trial_category").select("火災")
    at.time_input(key="rt_trial_start").set_value(time(22, 0))
    at.time_input(key="rt_trial_end").set_value(time(5, 45))
    press(at, "試算する")
    assert at.success[0].value == "7時間45分の活動: 合計 8,000円"
    assert "火災（災害） 7時間45分以上 8,000円" in page_text(at)

    press(at, "出動報酬の表を保存")  # nothing edited: the same table, the next version
    assert rewards.get_reward_table(admin(tenant)) == (MISAWA, 2)


def test_a_plain_member_gets_no_page(open_app):
    tenant = make_tenant()
    at = open_app(sign_in(tenant, rank="団員").token)
    assert not nav_registers(at, PAGE)


def test_the_approval_chain_is_shown_and_saved(open_app):
    from services.reports import approvals
    from services.reports.approvals import ChainStep, StepScope

    tenant = make_tenant()
    at = open_page(open_app, sign_in(tenant).token)
    text = page_text(at)
    assert "分団長（分団内）　→　団長（団全体）" in text and "既定の順番" in text
    press(at, "承認の順番を保存")  # the default, kept as it is shown
    assert "承認の順番を保存しました" in at.success[0].value
    assert approvals.get_chain(admin(tenant)).version == 1
    approvals.save_chain(
        admin(tenant),
        [ChainStep("班長", StepScope.UNIT), ChainStep("分団長", StepScope.UNIT), ChainStep("団長")],
        expected_version=1,
    )
    at = open_page(open_app, sign_in(tenant).token)
    assert "班長（分団内）　→　分団長（分団内）　→　団長（団全体）" in page_text(at)
