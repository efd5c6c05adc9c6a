"""CSV一括登録 page, water sources: a CP932 file with latitude and longitude exchanged is offered
the swap in one click, far points are listed as warnings, rows without a position are imported
unplaced and counted."""

from __future__ import annotations

from services import brigade_settings
from tests.app_pages.conftest import page_text, sign_in
from tests.app_pages.test_csv_import import apply_button, metrics, open_import, upload
from tests.factories import admin, make_tenant
from tests.fixtures.water_files import hydrant, layout_file, stored


def test_swapped_coordinates_are_fixed_in_one_click_and_far_or_unplaced_rows_shown(open_app):
    tenant = make_tenant()
    user = sign_in(tenant)
    brigade_settings.update_water_map_settings(
        admin(tenant),
        coverage_radius_m=120,
        area_center_lat=36.0,
        area_center_lon=138.0,
        area_radius_km=10,
        expected_version=0,
    )
    rows = [
        hydrant("消-1", latitude="138.0", longitude="36.001"),
        hydrant("消-2", latitude="138.0", longitude="36.002"),
        hydrant("防-1", latitude="138.0", longitude="36.5"),
        hydrant("防-2", latitude="", longitude=""),
    ]
    at = upload(
        open_import(open_app, user.token, "消防水利"),
        "legacy.csv",
        layout_file(rows, encoding="cp932"),
    )
    assert "緯度と経度が逆になっているようです（3行）。" in page_text(at)
    assert metrics(at)["エラー"] == "3件" and apply_button(at).disabled

    at.button(key="imp_swap_on").click().run()
    assert not at.exception, at.exception
    assert metrics(at)["エラー"] == "0件"
    text = page_text(at)
    assert "緯度と経度を入れ替えて読み込んでいます（3行）。" in text
    assert "位置なし 1件（5行目）" in text
    assert "確認 1件" in text
    warnings = at.dataframe[0].value
    assert (warnings.iloc[0]["行"], warnings.iloc[0]["列"]) == (4, "緯度")

    apply_button(at).click().run()
    assert not at.exception, at.exception
    assert "（うち位置なし 1件）" in page_text(at)
    assert stored(tenant)["消-1"]["latitude"] == 36.001
