"""災害出動 page: the list and the 要確認 warning, one incident's facts and timeline, status
changes (the irreversible ones through the dialog), confirming 要確認, entering one by hand, and
who gets the page."""

from __future__ import annotations

import uuid

from streamlit.testing.v1 import AppTest

from core.timefmt import to_jst
from models.enums import Function, SubjectType
from services import permissions
from services.catalog import Answer, IncidentStatus
from services.dispatch import incidents, intake, tally
from services.dispatch.incidents import IncidentInput
from services.grants import Grant
from services.permissions import CellChange
from tests.app_pages.conftest import (
    answer,
    dialog_lines,
    nav_registers,
    page_text,
    run_page_directly,
    sign_in,
)
from tests.dispatch_factories import body, mail, make_source, where
from tests.factories import admin, make_member, make_tenant, rank_id
from tests.water_factories import ORIGIN, north_of_origin
from tests.water_factories import make_source as make_water_source

PAGE = "app_pages/incidents.py"
PICK = "詳細を表示する出動"
MAP = "https://map.example.jp/fire?id=123"


def open_board(open_app, token: str) -> AppTest:
    at = open_app(token)
    at.switch_page(PAGE).run()
    assert not at.exception, at.exception
    assert [t.value for t in at.title] == ["災害出動"]
    return at


def receive(tenant: uuid.UUID, text: str, **headers: str) -> incidents.IncidentView:
    source = make_source(tenant)
    outcome = intake.receive(where(source), mail(source.address, text, **headers))
    assert outcome.incident_id is not None
    return incidents.get_incident(admin(tenant), outcome.incident_id)[0]


def pick(at: AppTest, incident: incidents.IncidentView) -> AppTest:
    at.selectbox(key="inc_pick").select(str(incident.id)).run()
    assert not at.exception, at.exception
    return at


def button(at: AppTest, label: str):
    return next(b for b in at.button if b.label == label)


def status_of(tenant: uuid.UUID, incident: incidents.IncidentView) -> IncidentStatus:
    return incidents.get_incident(admin(tenant), incident.id)[0].status


def test_the_list_shows_incidents_and_puts_a_review_in_front_with_its_reasons(open_app):
    tenant = make_tenant()
    fire = receive(tenant, body(extra=f"地図 {MAP}"))
    unclear = receive(tenant, body(place="", reference="2026-00999"))
    assert unclear.needs_review and not fire.needs_review

    at = open_board(open_app, sign_in(tenant, rank="団員").token)

    assert [m.value for m in at.metric] == ["2件", "1件"]
    assert "要確認の出動が 1件あります" in at.error[0].value
    (warning,) = [w.value for w in at.warning if "要確認" in w.value]
    assert f"第{unclear.number}号" in warning and "発生場所が見つかりません。" in warning
    table = at.dataframe[0].value
    assert list(table["番号"]) == [unclear.number, fire.number]  # newest first
    assert list(table["要確認"]) == ["⚠ 要確認", ""]
    row = table.iloc[1]
    assert row["発生場所"] == "デモ市本町1丁目付近"
    assert row["出動分団"] == "第1分団、第2分団"
    assert row["覚知"] == "2026-12-06 10:05"
    assert row["受信"] == to_jst(fire.received_at) and row["登録"] == to_jst(fire.created_at)


def test_an_incident_shows_its_times_timeline_and_map_link(open_app):
    tenant = make_tenant()
    fire = receive(tenant, body(extra=f"地図 {MAP}"))

    at = pick(open_board(open_app, sign_in(tenant, rank="団員").token), fire)

    text = page_text(at)
    for value in (
        "本町公民館",
        "2026-00123",
        to_jst(fire.mail_date, seconds=True),
        to_jst(fire.received_at, seconds=True),
        to_jst(fire.created_at, seconds=True),
    ):
        assert value in text
    (link,) = at.get("link_button")
    assert link.proto.url == MAP
    timeline = at.dataframe[1].value
    assert list(timeline["状態"]) == ["受信"] and list(timeline["メール"]) == ["✓"]
    # 閲覧 only: no action, no form
    assert not at.button and not at.expander


def test_an_editor_moves_an_incident_and_an_end_asks_first(open_app):
    tenant = make_tenant()
    fire = receive(tenant, body())
    at = pick(open_board(open_app, sign_in(tenant).token), fire)

    button(at, "出動中にする").click().run()
    assert not at.exception, at.exception
    assert at.success[0].value == f"第{fire.number}号を「出動中」にしました。"
    assert status_of(tenant, fire) == IncidentStatus.DISPATCHED

    button(at, "取消にする").click().run()
    assert dialog_lines(at)[0] == f"第{fire.number}号（建物火災）を「取消」にします。"
    assert status_of(tenant, fire) == IncidentStatus.DISPATCHED  # nothing yet
    answer(at, "実行する")
    assert not at.exception, at.exception
    assert status_of(tenant, fire) == IncidentStatus.CANCELLED
    assert [b.label for b in at.button if b.label.endswith("にする")] == ["終了にする"]
    assert "手動で状態を「出動中」→「取消」に変更しました。" in page_text(at)


def test_confirming_a_review_clears_it(open_app):
    tenant = make_tenant()
    unclear = receive(tenant, body(place=""))
    at = pick(open_board(open_app, sign_in(tenant, rank="分団長").token), unclear)

    button(at, "確認済みにする").click().run()

    assert not at.exception, at.exception
    assert not incidents.get_incident(admin(tenant), unclear.id)[0].needs_review
    assert [m.value for m in at.metric] == ["1件", "0件"]
    assert not [w for w in at.warning if "要確認" in w.value]
    assert "要確認を確認済みにしました。" in page_text(at)


def test_entering_an_incident_by_hand(open_app):
    tenant = make_tenant()
    at = open_board(open_app, sign_in(tenant, rank="分団長").token)

    at.text_input(key="inc_new_place").input("本町2丁目")
    at.button(key="FormSubmitter:inc_new-登録する").click().run()
    assert "災害種別を50文字以内で入力してください。" in at.error[0].value
    assert incidents.list_incidents(admin(tenant)) == []

    at.text_input(key="inc_new_kind").input("建物火災")
    at.text_input(key="inc_new_units").input("第1分団、第3分団")
    at.button(key="FormSubmitter:inc_new-登録する").click().run()

    assert not at.exception, at.exception
    (made,) = incidents.list_incidents(admin(tenant))
    assert (made.kind, made.place, made.units) == ("建物火災", "本町2丁目", ("第1分団", "第3分団"))
    assert at.success[0].value == "第1号を登録しました。"
    assert at.selectbox(key="inc_pick").value == str(made.id)
    assert "手入力で登録しました。" in page_text(at)
    assert at.text_input(key="inc_new_kind").value == ""


def test_open_only_hides_closed_incidents(open_app):
    tenant = make_tenant()
    done = incidents.create_incident(admin(tenant), IncidentInput(kind="訓練"))
    for status in (IncidentStatus.EXTINGUISHED, IncidentStatus.CLOSED):
        done = incidents.set_status(admin(tenant), done.id, status, expected_version=done.version)
    fire = incidents.create_incident(admin(tenant), IncidentInput(kind="建物火災"))
    at = open_board(open_app, sign_in(tenant, rank="団員").token)
    assert list(at.dataframe[0].value["番号"]) == [fire.number, done.number]

    at.toggle(key="inc_open_only").set_value(True).run()

    assert list(at.dataframe[0].value["番号"]) == [fire.number]


def test_a_rank_without_dispatch_gets_no_page_and_a_direct_run_refuses(open_app):
    tenant = make_tenant()
    receive(tenant, body())
    permissions.update_matrix(
        admin(tenant),
        [CellChange(SubjectType.RANK, rank_id(tenant, "団員"), Function.DISPATCH, Grant())],
    )
    user = sign_in(tenant, rank="団員")
    assert not nav_registers(open_app(user.token), PAGE)

    direct = run_page_directly(PAGE, user.token)

    assert not direct.exception, direct.exception
    assert [e.value for e in direct.error] == ["この画面を使う権限がありません。"]
    assert not direct.dataframe and "本町" not in page_text(direct)
    assert nav_registers(open_app(sign_in(tenant, rank="班長").token), PAGE)


# ---------------------------------------------------------------------------
# The call-out (#21)


def metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def test_the_tally_and_a_proxy_answer_without_line(open_app):
    tenant = make_tenant()
    leader = sign_in(tenant, rank="分団長")
    crew = make_member(tenant, affiliation="第1分団 第2部")
    fire = receive(tenant, body(units="本町団1"))
    at = pick(open_board(open_app, leader.token), fire)
    text = page_text(at)
    assert "出動連絡と回答状況" in text
    assert "LINE（Messaging API）が設定されていないため、団員には通知されていません" in text
    assert metric(at, "未回答") == "2名" and metric(at, "出動可") == "0名"

    at.selectbox(key="callout_proxy_member").select(str(crew.id))
    at.radio(key="callout_proxy_answer").set_value(Answer.AVAILABLE)
    button(at, "記録する").click().run()
    assert not at.exception, at.exception
    assert metric(at, "出動可") == "1名" and metric(at, "未回答") == "1名"
    (line,) = [
        line for line in tally.tally(admin(tenant), fire.id).lines if line.member_id == crew.id
    ]
    assert line.via == "proxy"


def test_a_viewer_sees_the_tally_but_no_actions(open_app):
    tenant = make_tenant()
    make_member(tenant, affiliation="第1分団")
    fire = receive(tenant, body(units="本町団1"))
    at = pick(open_board(open_app, sign_in(tenant, rank="団員").token), fire)
    assert "出動連絡と回答状況" in page_text(at)
    assert not [b for b in at.button if b.label in ("記録する", "呼び出す")]


def test_the_link_in_a_call_out_opens_its_incident(open_app):
    tenant = make_tenant()
    fire = receive(tenant, body(units="本町団1"))
    token = sign_in(tenant, rank="団員").token
    at = open_app(token)
    at.switch_page(PAGE)
    at.query_params["incident"] = str(fire.id)
    at.run()
    assert not at.exception, at.exception
    assert at.selectbox(key="inc_pick").value == str(fire.id)
    assert "出動連絡と回答状況" in page_text(at)


def test_the_incident_map_lists_the_nearest_usable_water_and_an_editor_pins_the_point(open_app):
    tenant = make_tenant()
    near = make_water_source(tenant, memo="公民館前", **north_of_origin(1))
    make_water_source(tenant, status="使用不可", **north_of_origin(0.5))
    link = f"https://www.google.com/maps/@{ORIGIN[0]},{ORIGIN[1]},17z"
    fire = receive(tenant, body(extra=f"地図 {link}"))

    at = pick(open_board(open_app, sign_in(tenant).token), fire)

    assert f"発生地点: {ORIGIN[0]:.6f}, {ORIGIN[1]:.6f}（地図URL）" in page_text(at)
    (water,) = [d.value for d in at.dataframe if "距離" in d.value.columns]
    assert list(water["番号"]) == [near.code] and list(water["距離"]) == ["111 m"]
    assert list(water["メモ"]) == ["公民館前"] and list(water["容量・口径"]) == ["40 m³"]
    (field,) = [t for t in at.text_input if t.label.startswith("座標を入力")]
    field.input(f"{ORIGIN[0] + 0.01}, {ORIGIN[1]}")
    next(b for b in at.button if b.label == "この座標を発生地点に設定").click().run()
    assert not at.exception, at.exception
    assert "発生地点を手動で指定しました。" in page_text(at)
    assert "（手動）" in page_text(at)
    assert not [d for d in at.dataframe if "距離" in d.value.columns]
    assert "半径 500 m 以内に使用可の水利はありません。" in page_text(at)
