"""呼び出しルール on 出動メール設定 (errors by row and column, saving, what was normalised), and
the widen form on 災害出動 preselecting the neighbours of a short 分団 (#21)."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from services.dispatch import callout_rules, tally
from services.dispatch.callout_rules import NeighbourRow
from tests.app_pages.conftest import sign_in
from tests.app_pages.test_incidents import open_board, pick, receive
from tests.app_pages.test_mail_sources import button, open_settings
from tests.dispatch_factories import body
from tests.factories import admin, make_member, make_tenant


def enter_rule(at: AppTest, **row: object) -> AppTest:
    at.session_state["callout_rules_table"] = {
        "edited_rows": {},
        "added_rows": [row],
        "deleted_rows": [],
    }
    return button(at, "ルールを保存").click().run()


def test_a_rule_is_refused_by_row_and_column_then_saved(open_app):
    tenant = make_tenant()
    make_member(tenant, affiliation="第2分団 第1部")
    at = open_settings(open_app, sign_in(tenant).token)
    assert "22時〜6時の建物火災は第2分団も呼ぶ" in " ".join(c.value for c in at.caption)

    rule = {"種別に含む語": "建物火災，第２出動", "開始時": 22, "終了時": 6}
    enter_rule(at, **rule, 呼び出す分団=["第9分団"])
    assert not at.exception, at.exception
    assert "1行目「呼び出す分団」: 第9分団 は団員のいる分団ではありません。" in at.error[0].value
    assert callout_rules.get_targeting(admin(tenant)).rules == ()

    enter_rule(at, **rule, 呼び出す分団=["第2分団"])
    assert not at.exception, at.exception
    (saved,) = callout_rules.get_targeting(admin(tenant)).rules
    assert (saved.words, saved.start, saved.end, saved.units) == (
        ("建物火災", "第2出動"),
        22,
        6,
        ("第2分団",),
    )
    notice = at.success[0].value
    assert "呼び出しルール（1件）と隣接分団（0件）を保存しました。" in notice
    assert (
        "1行目「種別に含む語」: 「建物火災、第２出動」を「建物火災、第2出動」として保存しました。"
        in notice
    )
    table = next(e for e in at.data_editor if e.key == "callout_rules_table").value
    assert list(table["種別に含む語"]) == ["建物火災、第2出動"]


def test_the_widen_form_preselects_the_neighbours_of_a_short_unit(open_app):
    tenant = make_tenant()
    leader = sign_in(tenant, rank="分団長")
    make_member(tenant, affiliation="第1分団 第1部")
    neighbour = make_member(tenant, affiliation="第2分団 第1部")
    make_member(tenant, affiliation="第3分団 第1部")
    callout_rules.update_targeting(
        admin(tenant),
        rules=[],
        neighbours=[NeighbourRow("第1分団", ("第2分団",))],
        expected_version=0,
    )
    fire = receive(tenant, body(units="本町団1"))
    at = pick(open_board(open_app, leader.token), fire)

    (pick_units,) = [m for m in at.multiselect if m.label == "分団"]
    assert pick_units.value == ["第2分団"]
    assert any("応援候補" in c.value and "第2分団" in c.value for c in at.caption)
    next(b for b in at.button if b.label == "呼び出す").click().run()
    assert not at.exception, at.exception
    lines = tally.tally(admin(tenant), fire.id).lines
    assert neighbour.id in {line.member_id for line in lines}
    (pick_units,) = [m for m in at.multiselect if m.label == "分団"]
    assert pick_units.value == []  # called now: no longer offered
