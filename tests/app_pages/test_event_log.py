"""イベントログ page: who sees it, filters, pages, the detail (personal part for 管理 only), the
integrity check, and that viewing is logged once per query."""

from __future__ import annotations

import base64
import json
import secrets
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import update
from streamlit.testing.v1 import AppTest

import config
from core.actor import system_actor
from models import Permission
from models.enums import AuditCategory, Function, Level
from services import event_log, permissions, traffic_log
from services.audit_checkpoint import write_checkpoint
from services.catalog import MailStatus
from services.db import unit_of_work
from services.dispatch import intake, mail_log
from services.dispatch.sources import SourceView
from tests import dispatch_factories as dispatch
from tests.app_pages.conftest import nav_registers, page_text, sign_in
from tests.factories import (
    admin,
    audit_events,
    last_audit_seq,
    make_member,
    make_tenant,
    rank_id,
)
from tests.services.test_event_log import record

PAGE = "app_pages/event_log.py"
DETAIL = "詳細を表示するイベント"


def open_log(open_app, token: str) -> AppTest:
    at = open_app(token)
    at.switch_page(PAGE).run()
    assert not at.exception, at.exception
    assert [t.value for t in at.title] == ["イベントログ"]
    return at


def widget(elements, label: str):
    return next(e for e in elements if e.label == label)


def table(at: AppTest):
    return at.dataframe[0].value


def mail(tenant: uuid.UUID, sender: str = "sender@example.jp") -> None:
    traffic_log.record_mail_event(
        system_actor(tenant),
        sender=sender,
        subject="火災出動の件",
        size_bytes=1234,
        parse_result="ok",
        message_id=f"<{uuid.uuid4().hex}@example.jp>",
    )


def test_administrator_sees_the_brigades_events_and_the_view_is_logged_once(open_app, engine):
    tenant, other = make_tenant(), make_tenant()
    user = sign_in(tenant)
    foreign = make_member(other, member_code=f"X{uuid.uuid4().hex[:6]}")
    seq = last_audit_seq(engine, tenant)

    at = open_log(open_app, user.token)

    shown = table(at)
    assert "団員の登録" in set(shown["操作"])  # member.create, in Japanese (#18)
    assert "ログイン" in set(shown["操作"])  # login.success
    assert set(shown["結果"]) == {"成功"}
    assert not {"member.create", "login.success"} & set(shown["操作"])
    assert foreign.member_code not in page_text(at)
    views = [e for e in audit_events(engine, tenant, after_seq=seq) if e.action == "event_log.view"]
    assert len(views) == 1
    at.run()  # a rerun with the same filters and page reads nothing again
    again = audit_events(engine, tenant, after_seq=seq)
    assert [e.action for e in again].count("event_log.view") == 1


def test_rank_without_event_logs_gets_no_page(open_app):
    tenant = make_tenant()
    for rank in ("団員", "部長"):
        user = sign_in(tenant, rank=rank)
        at = open_app(user.token)
        assert not at.exception
        assert not nav_registers(at, PAGE)
    assert nav_registers(open_app(sign_in(tenant, rank="分団長").token), PAGE)


def test_category_and_keyword_filters(open_app):
    tenant = make_tenant()
    user = sign_in(tenant)
    mail(tenant)
    at = open_log(open_app, user.token)

    widget(at.multiselect, "種別").select("メール受信").run()
    assert set(table(at)["種別"]) == {"メール受信"}
    assert set(table(at)["操作"]) == {"メール受信"}

    widget(at.multiselect, "種別").unselect("メール受信").run()
    widget(at.text_input, "キーワード（操作・対象・実行者ラベル・詳細・リクエストID）").input(
        "login."
    ).run()
    assert set(table(at)["操作"]) == {"ログイン"}


def test_pages_forward_and_back(open_app):
    tenant = make_tenant()
    user = sign_in(tenant)
    record(tenant, 70)
    at = open_log(open_app, user.token)
    first = list(table(at)["連番"])
    assert len(first) == event_log.PAGE_SIZE and first == sorted(first, reverse=True)

    widget(at.button, "古い方へ").click().run()
    second = list(table(at)["連番"])
    assert second and max(second) < min(first)
    assert "2ページ目" in page_text(at)

    widget(at.button, "新しい方へ").click().run()
    again = list(table(at)["連番"])  # read afresh: the views since then are on top now
    assert "1ページ目" in page_text(at)
    assert again == sorted(again, reverse=True) and set(first[:40]) <= set(again)


def grant_event_logs_admin(monkeypatch, tenant: uuid.UUID, rank: str) -> None:
    """Give a rank イベントログ 管理. The matrix of services.permissions offers only 閲覧 for this
    function so far, so the test also lets it offer 管理."""
    monkeypatch.setitem(
        permissions.FUNCTION_LEVELS, Function.EVENT_LOGS, (Level.NONE, Level.VIEW, Level.ADMIN)
    )
    with unit_of_work(tenant) as session:
        session.execute(
            update(Permission)
            .where(
                Permission.tenant_id == tenant,
                Permission.subject_id == rank_id(tenant, rank),
                Permission.function == str(Function.EVENT_LOGS),
            )
            .values(level=int(Level.ADMIN))
        )
        session.commit()


def test_detail_shows_jst_and_utc_and_personal_part_only_for_admin(open_app, engine, monkeypatch):
    tenant = make_tenant()
    grant_event_logs_admin(monkeypatch, tenant, "団長")
    mail(tenant, sender="yamada-hidden@example.jp")
    (mail_event,) = audit_events(engine, tenant, category=AuditCategory.MAIL)

    def detail_text(rank: str) -> str:
        at = open_log(open_app, sign_in(tenant, rank=rank).token)
        widget(at.multiselect, "種別").select("メール受信").run()
        label = next(
            o for o in widget(at.selectbox, DETAIL).options if o.startswith(f"{mail_event.seq}　")
        )
        widget(at.selectbox, DETAIL).select(label).run()
        assert not at.exception
        return page_text(at)

    viewer = detail_text("分団長")  # EVENT_LOGS 閲覧
    assert "yamada-hidden" not in viewer
    assert "表示には管理権限が必要です" in viewer
    assert mail_event.occurred_at.isoformat(timespec="microseconds") in viewer
    assert event_log.get_event(admin(tenant), mail_event.seq).event.occurred_jst in viewer

    administrator = detail_text("団長")  # EVENT_LOGS 管理
    assert "yamada-hidden@example.jp" in administrator
    details = [
        json.loads(e.details)
        for e in audit_events(engine, tenant)
        if e.action == "event_log.view_detail"
    ]
    assert {(d["seq"], d["personal_shown"]) for d in details} >= {
        (mail_event.seq, False),
        (mail_event.seq, True),
    }


@pytest.fixture
def checkpoint_keys(tmp_path: Path) -> Iterator[None]:
    seed = secrets.token_bytes(32)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HIKESHI_AUDIT_SIGNING_KEY", base64.urlsafe_b64encode(seed).decode())
        mp.setenv("HIKESHI_AUDIT_VERIFY_KEY", config.verify_key_of(seed))
        mp.setenv("HIKESHI_AUDIT_CHECKPOINT_DIR", str(tmp_path))
        config.get_settings.cache_clear()
        yield
    config.get_settings.cache_clear()


def verify_on_page(open_app, tenant: uuid.UUID, *, checkpoint: bool = False) -> AppTest:
    user = sign_in(tenant)
    if checkpoint:
        assert write_checkpoint(tenant) is not None
    at = open_log(open_app, user.token)
    widget(at.button, "検証する").click().run()
    assert not at.exception
    return at


def test_integrity_check_reports_ok_with_its_checkpoints(open_app, engine, checkpoint_keys):
    tenant = make_tenant()
    at = verify_on_page(open_app, tenant, checkpoint=True)
    assert [s.value for s in at.success][-1].startswith("OK: ")
    assert not [w for w in at.warning if "要確認" in w.value]
    assert "署名済みチェックポイント 1件と照合しました" in page_text(at)
    assert "event_log.verify" in {e.action for e in audit_events(engine, tenant)}


def test_integrity_check_without_a_public_key_warns_instead_of_passing(open_app):
    at = verify_on_page(open_app, make_tenant())
    assert not [s for s in at.success if s.value.startswith("OK")]
    warnings = [w.value for w in at.warning]
    assert warnings[0].startswith("要確認: ") and "不整合は見つかりませんでした" in warnings[0]
    assert any("検証用の公開鍵が設定されていない" in w for w in warnings[1:])


def test_integrity_check_warns_when_no_checkpoint_was_signed(open_app, checkpoint_keys):
    at = verify_on_page(open_app, make_tenant())
    warnings = [w.value for w in at.warning]
    assert warnings[0].startswith("要確認: ")
    assert any("署名済みチェックポイントが一つもありません" in w for w in warnings[1:])


def test_export_is_offered_as_a_download(open_app):
    at = open_log(open_app, sign_in(make_tenant()).token)
    buttons = at.get("download_button")
    assert [b.proto.label for b in buttons] == ["CSVを出力"]


# -- メール受信ログ ---------------------------------------------------------------------------------

MAIL_COLUMNS = [
    "受信日時",
    "送信元設定",
    "状態",
    "Message-ID",
    "Date",
    "サイズ",
    "SHA-256",
    "DKIM",
    "文字コード",
    "解析",
    "事案番号",
    "問題",
]
STRANGER = "stranger@evil.example"
REJECTED = "拒否（送信元が許可リストにない）"


def received_mails(tenant: uuid.UUID) -> SourceView:
    """One accepted dispatch mail and one from a sender off the allow-list."""
    source = dispatch.make_source(tenant)
    for sender in (dispatch.SENDER, STRANGER):
        raw = dispatch.mail(source.address, dispatch.body(), sender=sender)
        intake.receive(dispatch.where(source), raw)
    return source


def show_mail_log(at: AppTest) -> AppTest:
    widget(at.radio, "表示").set_value("メール受信ログ").run()
    assert not at.exception, at.exception
    return at


def open_mail_log(open_app, token: str) -> AppTest:
    return show_mail_log(open_log(open_app, token))


def test_mail_log_lists_each_mail_without_senders_for_viewers(open_app, engine):
    tenant = make_tenant()
    source = received_mails(tenant)
    at = open_log(open_app, sign_in(tenant, rank="分団長").token)  # イベントログ 閲覧
    seq = last_audit_seq(engine, tenant)

    show_mail_log(at)

    shown = table(at)
    assert list(shown.columns) == MAIL_COLUMNS
    assert list(shown["状態"]) == [REJECTED, "受理"]  # newest first
    assert list(shown["送信元設定"]) == [source.name, source.name]
    assert list(shown["事案番号"]) == ["", "第1号"]
    assert list(shown["解析"]) == ["—", "解析済み"]
    assert all(len(digest) == 64 for digest in shown["SHA-256"])
    text = page_text(at)
    assert STRANGER not in text and dispatch.SENDER not in text
    assert "原文を表示するメール" not in [s.label for s in at.selectbox]
    assert "管理権限が必要です" in text
    # the events are not read (and their reading not logged) while the mail log is shown
    assert "event_log.view" not in {e.action for e in audit_events(engine, tenant, after_seq=seq)}


def test_mail_log_filters_by_status_and_period(open_app):
    tenant = make_tenant()
    received_mails(tenant)
    at = open_mail_log(open_app, sign_in(tenant).token)

    widget(at.multiselect, "状態").select(MailStatus.REJECTED_SENDER).run()
    assert list(table(at)["状態"]) == [REJECTED]

    widget(at.selectbox, "期間").select("昨日").run()
    assert not at.dataframe  # ui/tables.show: an empty table is one Japanese line
    assert "条件に合う受信メールはありません。" in page_text(at)


def test_mail_log_shows_senders_and_the_raw_mail_to_admin_only(open_app, engine):
    tenant = make_tenant()
    received_mails(tenant)
    at = open_mail_log(open_app, sign_in(tenant).token)  # 団長: イベントログ 管理
    shown = table(at)
    assert list(shown["差出人（From）"]) == [STRANGER, dispatch.SENDER]
    assert list(shown["件名"]) == ["【出動指令】建物火災"] * 2
    (rejected,) = [m for m in mail_log.list_mail(admin(tenant)) if m.header_from == STRANGER]

    widget(at.selectbox, "原文を表示するメール").select(str(rejected.id)).run()
    assert not at.code and "mail.raw_view" not in {e.action for e in audit_events(engine, tenant)}
    widget(at.button, "原文を表示").click().run()

    assert not at.exception, at.exception
    assert "【災害種別】建物火災" in at.code[0].value
    assert f"差出人: {STRANGER}" in [t.value for t in at.text]
    assert [b.proto.label for b in at.get("download_button")] == ["原文（.eml）をダウンロード"]
    (view,) = [e for e in audit_events(engine, tenant) if e.action == "mail.raw_view"]
    assert json.loads(view.details)["sha256"] == rejected.sha256


# -- Japanese throughout (#18) ---------------------------------------------------------------------


def take_away(tenant: uuid.UUID, rank: str, function: Function) -> None:
    with unit_of_work(tenant) as session:
        session.execute(
            update(Permission)
            .where(
                Permission.tenant_id == tenant,
                Permission.subject_id == rank_id(tenant, rank),
                Permission.function == str(function),
            )
            .values(level=int(Level.NONE))
        )
        session.commit()


def test_targets_are_named_for_a_roster_viewer_and_neutral_without_roster(open_app):
    tenant = make_tenant()
    member = make_member(tenant, member_code="N-0042", name="名簿　見子")
    named = f"団員 {member.member_code}　名簿　見子"

    at = open_log(open_app, sign_in(tenant, rank="団長").token)
    assert named in set(table(at)["対象"])
    assert str(member.id) not in page_text(at)

    take_away(tenant, "分団長", Function.ROSTER)
    at = open_log(open_app, sign_in(tenant, rank="分団長").token)
    shown = table(at)
    assert not at.exception
    assert "団員" in set(shown["対象"])
    assert not [t for t in shown["対象"] if "名簿" in t or member.member_code in t]
    assert named not in page_text(at) and str(member.id) not in page_text(at)


def test_details_are_a_table_of_japanese_items(open_app):
    tenant = make_tenant()
    user = sign_in(tenant)
    member = make_member(tenant, member_code="D-0077")
    at = open_log(open_app, user.token)
    label = next(o for o in widget(at.selectbox, DETAIL).options if o.endswith("　団員の登録"))
    widget(at.selectbox, DETAIL).select(label).run()
    assert not at.exception
    assert not at.json  # no raw JSON
    details = at.dataframe[1].value
    assert list(details.columns) == ["項目", "内容"]
    assert ("団員番号", "D-0077") in set(zip(details["項目"], details["内容"], strict=True))
    assert "団員の登録（操作）" in [h.value for h in at.subheader]
    assert f"対象ID `{member.id}`" in page_text(at)


def test_turning_pages_records_one_view_per_filter_combination(open_app, engine):
    tenant = make_tenant()
    user = sign_in(tenant)
    record(tenant, 2 * event_log.PAGE_SIZE + 5)
    seq = last_audit_seq(engine, tenant)

    def views() -> int:
        new = audit_events(engine, tenant, after_seq=seq)
        return [e.action for e in new].count("event_log.view")

    at = open_log(open_app, user.token)
    for button in ("古い方へ", "古い方へ", "新しい方へ", "最新の状態に更新"):
        widget(at.button, button).click().run()
        assert not at.exception
    assert "1ページ目" in page_text(at)
    assert views() == 1

    widget(at.multiselect, "種別").select("メール受信").run()
    assert views() == 2  # a new filter combination is a new view
    widget(at.multiselect, "種別").unselect("メール受信").run()
    widget(at.button, "古い方へ").click().run()
    assert views() == 2  # back to the first one: already recorded this session
