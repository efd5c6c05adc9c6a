"""出動中の事案 page: the cards of the open incidents with the tally per 分団, the answers with
the expected arrival, the silent, the link to 災害出動, and who gets the page."""

from __future__ import annotations

from datetime import timedelta

from streamlit.testing.v1 import AppTest

from models.enums import Function, SubjectType
from services import permissions
from services.catalog import Answer, IncidentStatus
from services.dispatch import callout, incidents, tally
from services.dispatch.incidents import IncidentInput
from services.grants import Grant
from services.permissions import CellChange
from tests.app_pages.conftest import nav_registers, page_text, run_page_directly, sign_in
from tests.factories import admin, make_member, make_tenant, rank_id
from ui.board_view import clock

PAGE = "app_pages/board.py"


def open_board(open_app, token: str) -> AppTest:
    at = open_app(token)
    at.switch_page(PAGE).run()
    assert not at.exception, at.exception
    assert [t.value for t in at.title] == ["出動中の事案"]
    return at


def metrics(at: AppTest) -> list[tuple[str, str]]:
    return [(m.label, m.value) for m in at.metric]


def test_an_open_incident_shows_its_tally_answers_and_the_silent(open_app):
    tenant = make_tenant()
    leader = sign_in(tenant, rank="分団長")
    crew = [make_member(tenant, affiliation="第1分団 第1部") for _ in range(3)]
    actor = admin(tenant)
    fire = incidents.create_incident(
        actor, IncidentInput(kind="建物火災", place="本町1丁目", units=("第1分団",))
    )
    callout.call_out(actor, fire.id, ("第1分団",))
    callout.answer_by_proxy(actor, fire.id, crew[0].id, Answer.LATE, eta_minutes=10)

    at = open_board(open_app, leader.token)

    text = page_text(at)
    assert f"第{fire.number}号 建物火災" in text and "本町1丁目" in text
    assert "最終更新" in text and "不足" in text and "あと2名" in text
    assert metrics(at)[:4] == [
        ("出動可", "0名"),
        ("遅れて出動", "1名"),
        ("出動不可", "0名"),
        ("未回答", "3名"),  # the 分団長 is of 第1分団
    ]
    (answered,) = at.dataframe[0].value.to_dict("records")
    (line,) = [x for x in tally.tally(actor, fire.id).lines if x.answer]
    assert answered["到着見込み"] == clock(line.answered_at + timedelta(minutes=10))
    assert answered["氏名"] == crew[0].name  # a 分団長 holds 編集
    assert "未回答（3名）" in text and crew[1].member_code in text  # the leader too
    (link,) = at.get("page_link")
    assert (link.proto.page, link.proto.query_string) == ("incidents", f"incident={fire.id}")

    callout.answer_by_proxy(actor, fire.id, crew[1].id, Answer.AVAILABLE)
    callout.answer_by_proxy(actor, fire.id, crew[2].id, Answer.AVAILABLE)
    at.run()
    assert metrics(at)[:4] == [
        ("出動可", "2名"),
        ("遅れて出動", "1名"),
        ("出動不可", "0名"),
        ("未回答", "1名"),
    ]
    assert "充足" in page_text(at)


def test_nothing_open_is_said_plainly(open_app):
    tenant = make_tenant()
    ended = incidents.create_incident(admin(tenant), IncidentInput(kind="建物火災"))
    version = ended.version
    for status in (IncidentStatus.EXTINGUISHED, IncidentStatus.CLOSED):
        version = incidents.set_status(
            admin(tenant), ended.id, status, expected_version=version
        ).version
    at = open_board(open_app, sign_in(tenant, rank="団員").token)
    assert [i.value for i in at.info] == ["出動中の事案はありません。"]


def test_a_viewer_sees_no_names_and_a_member_without_dispatch_gets_no_page(open_app):
    tenant = make_tenant()
    crew = make_member(tenant, affiliation="第1分団")
    fire = incidents.create_incident(admin(tenant), IncidentInput(kind="救助", units=("第1分団",)))
    callout.call_out(admin(tenant), fire.id, ("第1分団",))
    at = open_board(open_app, sign_in(tenant, rank="団員").token)
    text = page_text(at)
    assert crew.member_code in text and crew.name not in text

    permissions.update_matrix(
        admin(tenant),
        [CellChange(SubjectType.RANK, rank_id(tenant, "団員"), Function.DISPATCH, Grant())],
    )
    user = sign_in(tenant, rank="団員")
    assert not nav_registers(open_app(user.token), PAGE)
    direct = run_page_directly(PAGE, user.token)
    assert not direct.exception, direct.exception
    assert [e.value for e in direct.error] == ["この画面を使う権限がありません。"]
    assert "救助" not in page_text(direct)
