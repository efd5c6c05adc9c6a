"""水利点検 (#18): the brigade's sources in the order they are due — overdue first — filtered by
担当分団 and how soon; choosing one shows its history and records an inspection."""

from __future__ import annotations

from datetime import timedelta

from services import water_sources
from tests.app_pages.conftest import nav_registers, page_text, sign_in
from tests.factories import admin, make_tenant
from tests.water_factories import make_source

PAGE = "app_pages/inspections.py"


def open_page(open_app, token: str):
    at = open_app(token)
    at.switch_page(PAGE).run()
    assert not at.exception, at.exception
    assert [t.value for t in at.title] == ["水利点検"]
    return at


def brigade():
    tenant = make_tenant()
    today = water_sources.today_jst()
    make_source(tenant, code="LATE", unit="第1分団", last_inspected_on=today - timedelta(days=400))
    make_source(tenant, code="SOON", unit="第2分団", last_inspected_on=today - timedelta(days=350))
    make_source(tenant, code="FINE", unit="第1分団", last_inspected_on=today - timedelta(days=10))
    return tenant


def listed(at) -> list[str]:
    return list(at.dataframe[0].value["水利番号"]) if at.dataframe else []


def test_due_first_and_filtered(open_app):
    tenant = brigade()
    at = open_page(open_app, sign_in(tenant).token)
    assert listed(at) == ["LATE"]  # 期限切れ by default
    assert at.dataframe[0].value["状況"][0].startswith("期限切れ（")

    at.radio(key="insp_due").set_value("30日以内に期限").run()
    assert listed(at) == ["LATE", "SOON"]
    at.radio(key="insp_due").set_value("すべて").run()
    assert listed(at) == ["LATE", "SOON", "FINE"]
    at.multiselect(key="insp_units").set_value(["第1分団"]).run()
    assert listed(at) == ["LATE", "FINE"]


def test_choosing_a_source_records_its_inspection(open_app):
    tenant = brigade()
    at = open_page(open_app, sign_in(tenant).token)
    at.session_state["insp_table_期限切れ_"] = {"selection": {"rows": [0], "columns": []}}
    at.run()
    assert [s.value for s in at.subheader if s.value.startswith("LATE（")]
    assert "点検履歴" in page_text(at)
    [form_button] = [b for b in at.button if b.label == "点検を記録"]
    form_button.click().run()
    assert not at.exception, at.exception
    assert "LATE の点検を記録しました。" in [s.value for s in at.success]
    source = next(s for s in water_sources.list_water_sources(admin(tenant)) if s.code == "LATE")
    assert source.last_inspected_on == water_sources.today_jst() and not source.overdue
    assert listed(at) == []  # nothing overdue any more


def test_a_rank_without_inspections_gets_no_page(open_app):
    tenant = brigade()
    at = open_app(sign_in(tenant, "団員").token)
    assert not nav_registers(at, PAGE)


def test_a_code_is_shown_as_typed_not_as_markdown(open_app):
    tenant = make_tenant()
    make_source(tenant, code="[x](http://a.b)", last_inspected_on=None)
    at = open_page(open_app, sign_in(tenant).token)
    at.session_state["insp_table_期限切れ_"] = {"selection": {"rows": [0], "columns": []}}
    at.run()
    [title] = [s.value for s in at.subheader if "x" in s.value]
    assert title.startswith("\\[x\\]\\(http") and "](" not in title
