"""出動メール設定 page: registering and editing a source, the receiving address and its
re-issue, the profile editor and its test area, errors naming the field, and who gets the page."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from streamlit.testing.v1 import AppTest

from core.timefmt import to_jst
from formats.dispatch_profile import sample_dispatch_mail
from services.catalog import MailTransport
from services.dispatch import callout_settings, incidents, intake, selftest, sources, tally
from tests.app_pages.conftest import (
    answer,
    dialog_lines,
    nav_registers,
    page_text,
    run_page_directly,
    sign_in,
)
from tests.dispatch_factories import SENDER, make_source
from tests.factories import admin, make_tenant

PAGE = "app_pages/mail_sources.py"


def open_settings(open_app, token: str) -> AppTest:
    at = open_app(token)
    at.switch_page(PAGE).run()
    assert not at.exception, at.exception
    assert [t.value for t in at.title] == ["出動メール設定"]
    return at


def button(at: AppTest, label: str):
    return next(b for b in at.button if b.label == label)


def fill_new(at: AppTest, name: str = "〇〇市消防本部") -> AppTest:
    at.text_input(key="ms_name").input(name)
    at.text_area(key="ms_senders").input(f"{SENDER}\n@fd2.example.lg.jp")
    return at


def saved(tenant: uuid.UUID) -> list[sources.SourceView]:
    return sources.list_sources(admin(tenant))


def preview_table(at: AppTest) -> dict[str, str]:
    frame = next(d.value for d in at.dataframe if list(d.value.columns) == ["項目", "読み取った値"])
    return dict(zip(frame["項目"], frame["読み取った値"], strict=True))


def test_registering_a_source_issues_its_receiving_address(open_app):
    tenant = make_tenant()
    at = open_settings(open_app, sign_in(tenant).token)
    assert "出動メールの送信元はまだ登録されていません" in at.info[0].value
    assert at.text_input(key="ms_p_kind").value  # a new source starts from an example

    fill_new(at)
    button(at, "登録する").click().run()

    assert not at.exception, at.exception
    (source,) = saved(tenant)
    assert source.name == "〇〇市消防本部"
    assert source.senders == (SENDER, "@fd2.example.lg.jp")
    assert source.profile == sources.example_profiles()["bracket"]
    assert at.success[0].value == "「〇〇市消防本部」を登録しました。"
    assert at.selectbox(key="ms_pick").value == str(source.id)
    assert at.code[0].value == source.address
    assert intake.route(source.address) == intake.Route(tenant, source.id)
    (sources_table,) = [d.value for d in at.dataframe if "名称" in d.value.columns]
    assert list(sources_table["名称"]) == ["〇〇市消防本部"]


def test_editing_a_source_and_its_vocabulary(open_app):
    tenant = make_tenant()
    source = make_source(tenant)
    at = open_settings(open_app, sign_in(tenant).token)
    at.selectbox(key="ms_pick").select(str(source.id)).run()
    assert at.text_input(key="ms_name").value == source.name

    at.text_input(key="ms_name").input("北消防署")
    at.text_input(key="ms_fw_cancelled").input("取消、出動取消")
    (editor,) = [e for e in at.data_editor if "メールでの表記" in e.value.columns]
    at.session_state[editor.key] = {
        "edited_rows": {},
        "added_rows": [{"メールでの表記": "北団1", "分団": "第3分団"}],
        "deleted_rows": [],
    }
    button(at, "変更を保存").click().run()

    assert not at.exception, at.exception
    (changed,) = saved(tenant)
    assert changed.name == "北消防署" and changed.version == source.version + 1
    assert changed.profile["followup_words"]["cancelled"] == ["取消", "出動取消"]
    assert changed.profile["vocabulary"]["北団1"] == "第3分団"
    assert changed.profile["vocabulary"]["本町団1"] == "第1分団"  # the rows kept
    assert at.success[0].value == "「北消防署」を保存しました。"


def test_a_change_made_meanwhile_is_not_overwritten(open_app):
    tenant = make_tenant()
    source = make_source(tenant)
    at = open_settings(open_app, sign_in(tenant).token)
    at.selectbox(key="ms_pick").select(str(source.id)).run()
    sources.rotate_address(admin(tenant), source.id)

    at.text_input(key="ms_name").input("北消防署")
    button(at, "変更を保存").click().run()

    assert "他の利用者が先に更新しました" in at.error[0].value
    assert saved(tenant)[0].name == source.name


def test_bad_input_names_the_field(open_app):
    tenant = make_tenant()
    at = open_settings(open_app, sign_in(tenant).token)
    at.text_input(key="ms_name").input("〇〇市消防本部")
    button(at, "登録する").click().run()
    assert "受け付ける送信元アドレス（または @ドメイン）を1つ以上入力してください。" in (
        at.error[0].value
    )

    fill_new(at)
    at.text_input(key="ms_p_kind").input("災害種別：(?P<value>.+")
    at.number_input(key="ms_window").set_value(5)
    button(at, "登録する").click().run()

    error = at.error[0].value
    assert "災害種別（kind）のパターンが正規表現として正しくありません" in error
    assert "続報の照合時間は10分から1440分の間で指定してください。" in error
    assert saved(tenant) == []


def test_imap_needs_its_server(open_app):
    tenant = make_tenant()
    at = fill_new(open_settings(open_app, sign_in(tenant).token))
    at.radio(key="ms_transport").set_value(MailTransport.IMAP).run()
    assert at.text_input(key="ms_imap_host").value == ""

    button(at, "登録する").click().run()
    assert "IMAPサーバーとユーザー名を入力してください。" in at.error[0].value

    at.text_input(key="ms_imap_host").input("imap.example.jp")
    at.text_input(key="ms_imap_user").input("fire@example.jp")
    at.text_input(key="ms_imap_password").input("secret-password")
    button(at, "登録する").click().run()

    assert not at.exception, at.exception
    (source,) = saved(tenant)
    assert (source.transport, source.imap_host) == (MailTransport.IMAP, "imap.example.jp")
    assert source.imap_password_set and source.address == ""
    assert not at.code  # no receiving address for a mailbox
    assert "secret-password" not in page_text(at)


def test_the_test_area_shows_what_the_profile_finds_in_an_eml(open_app):
    tenant = make_tenant()
    at = open_settings(open_app, sign_in(tenant).token)
    now = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
    raw = sample_dispatch_mail(to="dispatch@example.jp", sender=SENDER, now=now)

    at.get("file_uploader")[0].upload("sample.eml", raw, "message/rfc822").run()
    button(at, "この解析ルールで試す").click().run()

    assert not at.exception, at.exception
    found = preview_table(at)
    assert found["続報の種類"] == "出動指令"
    assert found["災害種別"] == "建物火災"
    assert found["発生場所"] == "〇〇市住吉町3丁目12番付近"
    assert found["目標物"] == "髙橋商店"  # CP50220 under an ISO-2022-JP label
    assert found["覚知時刻"].endswith("→ 2026-03-01 18:28（日本時間）")
    assert found["出動分団"] == "第1分団、第3分団"
    assert found["地図URL"] == "https://map.example.jp/fire?id=0301-1828"
    assert found["不足項目"] == "なし"
    assert "令和8年→2026年" in found["正規化した内容"]
    assert found["文字コード"] == "ISO-2022-JP（指定）→ CP50220（使用）"
    assert found["復号"] == "代替文字コードで復号"
    assert "・本文の文字コード ISO-2022-JP で復号できず CP50220 で復号しました" in [
        t.value for t in at.text
    ]
    assert saved(tenant) == []  # nothing is saved by a test


def test_the_test_area_reads_a_pasted_body_with_the_profile_as_edited(open_app):
    at = open_settings(open_app, sign_in(make_tenant()).token)
    at.text_area(key="ms_sample_text").input("【鎮火】\n災害種別：車両火災\n場所：本町\n")
    button(at, "この解析ルールで試す").click().run()
    assert not at.exception, at.exception
    button(at, "この解析ルールで試す").click().run()
    found = preview_table(at)
    assert (found["続報の種類"], found["災害種別"]) == ("鎮火", "車両火災")
    assert found["不足項目"] == "事案番号または発生場所"
    assert any("要確認" in w.value for w in at.warning)

    at.text_input(key="ms_p_place").input(r"^場所：(?P<value>\S.*)")
    button(at, "この解析ルールで試す").click().run()
    found = preview_table(at)
    assert (found["発生場所"], found["不足項目"]) == ("本町", "なし")


def test_reissuing_the_address_asks_first_and_the_old_one_stops(open_app):
    tenant = make_tenant()
    source = make_source(tenant)
    at = open_settings(open_app, sign_in(tenant).token)
    at.selectbox(key="ms_pick").select(str(source.id)).run()

    button(at, "アドレスを再発行").click().run()
    lines = dialog_lines(at)
    assert lines[0] == f"「{source.name}」の受信アドレスを再発行します。"
    assert "今のアドレスに届くメールは、この後すべて拒否されます。" in lines
    assert intake.route(source.address) is not None
    answer(at, "実行する")

    assert not at.exception, at.exception
    (rotated,) = saved(tenant)
    assert rotated.address != source.address and intake.route(source.address) is None
    assert at.code[0].value == rotated.address


def test_only_dispatch_admin_gets_the_page_and_a_direct_run_refuses(open_app):
    tenant = make_tenant()
    source = make_source(tenant)
    user = sign_in(tenant, rank="分団長")  # 災害出動 編集
    at = open_app(user.token)
    assert nav_registers(at, "app_pages/incidents.py")
    assert not nav_registers(at, PAGE)

    direct = run_page_directly(PAGE, user.token)

    assert not direct.exception, direct.exception
    assert [e.value for e in direct.error] == ["この画面を使う権限がありません。"]
    assert source.address not in page_text(direct) and not direct.code


def test_call_out_rules_are_saved_and_a_test_goes_to_oneself(open_app):
    tenant = make_tenant()
    chief = sign_in(tenant)
    at = open_settings(open_app, chief.token)
    assert any("LINE（Messaging API）が設定されていない" in w.value for w in at.warning)
    crew = next(n for n in at.number_input if "必要人数" in n.label)
    crew.set_value(4)
    button(at, "保存").click().run()
    assert not at.exception, at.exception
    assert callout_settings.get_rules(admin(tenant)).crew_minimum == 4

    assert at.multiselect(key="callout_test_to").value == [str(chief.member.id)]
    button(at, "テスト送信する").click().run()
    assert not at.exception, at.exception
    (test,) = incidents.list_incidents(admin(tenant))
    assert test.kind.startswith("【テスト】")
    (line,) = tally.tally(admin(tenant), test.id).lines
    assert line.member_id == chief.member.id and not line.notified  # no LINE channel here


def test_the_self_test_runs_at_once_and_a_failure_is_shown_here_and_on_the_dashboard(open_app):
    tenant = make_tenant()
    make_source(tenant, active=False)  # every source stopped: the mail step fails
    chief = sign_in(tenant)
    at = open_settings(open_app, chief.token)
    assert not at.warning or all("自己診断" not in w.value for w in at.warning)

    button(at, "今すぐ自己診断").click().run()

    assert not at.exception, at.exception
    assert "異常が見つかりました" in at.success[0].value
    last_at = selftest.status(admin(tenant)).last_at
    (warning,) = [w.value for w in at.warning if "自己診断" in w.value]
    assert f"（{to_jst(last_at)}）" in warning
    assert "受信メールの解析: 受信設定がすべて停止中" in warning
    at.selectbox(key="selftest_hour_pick").select(5)
    button(at, "実行時刻を保存").click().run()
    assert not at.exception, at.exception
    assert selftest.status(admin(tenant)).hour == 5
    assert "毎日 5時" in [m.value for m in at.metric]

    at.switch_page("app_pages/dashboard.py").run()
    assert [w.value for w in at.warning] == [warning]
    leader = open_app(sign_in(tenant, rank="分団長").token)  # 災害出動 編集: no warning
    assert not leader.exception and not leader.warning
