"""団設定 (#18): a page of its own for the coverage distances and the area; per-分団 distances
only for 分団 the brigade has (the service refuses any other)."""

from __future__ import annotations

import pandas as pd
import pytest

from services import brigade_settings, water_sources
from services.errors import ValidationError
from tests.app_pages.conftest import nav_registers, sign_in
from tests.factories import admin, make_member, make_tenant
from tests.water_factories import make_source

PAGE = "app_pages/brigade_settings.py"


def open_page(open_app, token: str):
    at = open_app(token)
    at.switch_page(PAGE).run()
    assert not at.exception, at.exception
    assert [t.value for t in at.title] == ["団設定"]
    return at


def save(tenant, units: dict[str, int], version: int = 0):
    return brigade_settings.update_water_map_settings(
        admin(tenant), coverage_radius_m=120, unit_coverage_radii=units, expected_version=version
    )


def test_only_the_brigades_own_units_can_have_a_distance(engine):
    tenant, other = make_tenant(), make_tenant()
    make_member(tenant, affiliation="第1分団 第2部")
    make_source(tenant, code="W-1", unit="第3分団")
    make_member(other, affiliation="第9分団")  # another brigade's 分団 is not ours
    assert brigade_settings.settings_page(admin(tenant)).units == ["第1分団", "第3分団"]

    with pytest.raises(ValidationError) as refused:
        save(tenant, {"第9分団": 100})
    assert "第9分団" in refused.value.errors["unit_coverage_radii"]
    saved = save(tenant, {"第1分団": 100, "第3分団": 140})
    assert saved.unit_coverage_radii == {"第1分団": 100, "第3分団": 140}


def test_a_saved_unit_may_stay_after_its_members_went(engine):
    tenant = make_tenant()
    make_source(tenant, code="W-1", unit="第3分団")
    first = save(tenant, {"第3分団": 140})
    source = water_sources.list_water_sources(admin(tenant))[0]
    water_sources.delete_water_source(admin(tenant), source.id, expected_version=source.version)
    again = save(tenant, {"第3分団": 100}, version=first.version)  # not refused for that
    assert again.unit_coverage_radii == {"第3分団": 100}


def test_the_page_saves_distances_and_the_area(open_app):
    tenant = make_tenant()
    user = sign_in(tenant)  # 団長 of 第1分団
    at = open_page(open_app, user.token)
    at.session_state["bs_units_0"] = {
        "edited_rows": {},
        "added_rows": [{"分団": "第1分団", "基準距離（m）": 100}],
        "deleted_rows": [],
    }
    at.text_input(key="bs_centre_0").input("40.5, 141.5")
    at.button(key="bs_save").click().run()
    assert not at.exception, at.exception
    assert "団設定を保存しました。" in [s.value for s in at.success]
    settings = brigade_settings.get_water_map_settings(admin(tenant))
    assert settings.unit_coverage_radii == {"第1分団": 100}
    assert settings.area_center == (40.5, 141.5) and not settings.area_center_derived
    grid = at.data_editor[0].value
    assert isinstance(grid, pd.DataFrame) and list(grid["分団"]) == ["第1分団"]


def test_a_rank_without_settings_gets_no_page(open_app):
    tenant = make_tenant()
    sign_in(tenant)
    assert not nav_registers(open_app(sign_in(tenant, "団員").token), PAGE)


def test_the_page_sets_the_bulk_change_limits(open_app):
    tenant = make_tenant()
    at = open_page(open_app, sign_in(tenant).token)
    assert any("いまは 10件または10% です" in c.value for c in at.caption)
    [rows] = [n for n in at.number_input if n.label == "件数"]
    [percent] = [n for n in at.number_input if n.label == "割合（%）"]
    rows.set_value(40)
    percent.set_value(25)
    [submit] = [b for b in at.button if b.label == "確認の基準を保存"]
    submit.click().run()
    assert not at.exception, at.exception
    assert "一括変更の確認の基準を保存しました。" in [s.value for s in at.success]
    limits = brigade_settings.settings_page(admin(tenant)).limits
    assert (limits.rows, limits.percent) == (40, 25)


def test_settings_saved_meanwhile_by_someone_else_conflict(open_app):
    tenant = make_tenant()
    at = open_page(open_app, sign_in(tenant).token)
    save(tenant, {})  # someone else, after the page was read
    at.button(key="bs_save").click().run()
    assert [e.value for e in at.error] == [
        "他の利用者が先に更新しました。画面を再読み込みしてからやり直してください。"
    ]


def test_reading_and_changing_the_settings_need_their_permission(engine):
    from models.enums import Function, Level
    from services.errors import PermissionDenied
    from tests.factories import actor_with

    tenant = make_tenant()
    nobody = actor_with(tenant, {Function.WATER_SOURCES: Level.EDIT})  # no 団設定
    with pytest.raises(PermissionDenied):
        brigade_settings.settings_page(nobody)
    viewer = actor_with(tenant, {Function.SETTINGS: Level.VIEW})
    assert brigade_settings.settings_page(viewer).limits == brigade_settings.bulk_guard.DEFAULT
    with pytest.raises(PermissionDenied):
        brigade_settings.update_water_map_settings(
            viewer, coverage_radius_m=100, expected_version=0
        )


def test_natural_order_of_units(engine):
    tenant = make_tenant()
    for unit in ("第10分団", "第2分団", "機能別団員"):
        make_member(tenant, affiliation=unit)
    assert brigade_settings.settings_page(admin(tenant)).units == [
        "第2分団",
        "第10分団",
        "機能別団員",
    ]
