"""What a water file is checked for beyond each row (services/water_file_checks.py): Japanese
codes compared after NFKC, latitude and longitude exchanged in the whole file and the one-click
swap, points far from the brigade's area, rows without a position."""

from __future__ import annotations

import json
import uuid

import pytest

from models.enums import Function, Level
from services import brigade_settings, water_import
from services.errors import PermissionDenied
from services.imports import MissingRows, RowStatus
from services.water_sources.checks import SWAPPED_HINT
from tests.factories import actor_with, admin, make_tenant
from tests.fixtures.water_files import hydrant, layout_file, stored
from tests.water_factories import ORIGIN, make_source

# Metres per degree of latitude on the sphere services.geo measures with.
KM_PER_DEGREE = 111.19508


@pytest.fixture
def foreign(engine) -> uuid.UUID:
    return make_tenant()


def preview(tenant_id: uuid.UUID, data: bytes, **kwargs):
    return water_import.preview_water_import(
        admin(tenant_id), data=data, filename="water.csv", **kwargs
    )


def set_area(tenant_id: uuid.UUID, centre: tuple[float, float], radius_km: float) -> None:
    brigade_settings.update_water_map_settings(
        admin(tenant_id),
        coverage_radius_m=120,
        area_center_lat=centre[0],
        area_center_lon=centre[1],
        area_radius_km=radius_km,
        expected_version=0,
    )


def swapped(code: str, lat: float, lon: float) -> dict[str, str]:
    """A row of a legacy layout that writes the longitude in the 緯度 column."""
    return hydrant(code, latitude=str(lon), longitude=str(lat))


# -- codes -----------------------------------------------------------------------------------------


def test_japanese_codes_import_and_nfkc_duplicates_are_named_by_row_and_column(tenant):
    found = preview(tenant, layout_file([hydrant("消-1"), hydrant("防-1"), hydrant(" 消-１")]))
    [error] = found.errors
    assert (error.row, error.column) == (4, "水利番号")
    assert "「消-１」は2行目の「消-1」と同じ番号" in error.message
    found = preview(
        tenant, layout_file([hydrant("消-1"), hydrant("防-1"), hydrant("消火栓第12号")])
    )
    assert found.ready
    water_import.apply_water_import(admin(tenant), found, missing=MissingRows.KEEP)
    assert set(stored(tenant)) == {"消-1", "防-1", "消火栓第12号"}


def test_a_full_width_code_updates_the_source_stored_half_width(tenant):
    make_source(tenant, code="消-1", latitude=36.0, longitude=138.0)
    found = preview(tenant, layout_file([hydrant("消－１", memo="更新")]))
    [row] = found.rows
    assert (row.code, row.status) == ("消-1", RowStatus.CHANGED)


@pytest.mark.parametrize(
    ("code", "message"),
    [("消" * 31, "30文字以内"), ("消\u200b1", "使用できない文字"), ("", "入力してください")],
)
def test_codes_too_long_unprintable_or_blank_are_row_errors(tenant, code, message):
    found = preview(tenant, layout_file([hydrant("OK-1"), {**hydrant(code), "memo": "x"}]))
    [error] = found.errors
    assert (error.row, error.column) == (3, "水利番号") and message in error.message


# -- swapped coordinates ---------------------------------------------------------------------------


def test_a_cp932_file_with_swapped_coordinates_is_detected_and_swapped_in_one_step(tenant, watch):
    rows = [swapped(f"消-{n}", 36.0 + n / 1000, 138.0) for n in range(1, 4)]
    data = layout_file(rows, encoding="cp932")
    found = preview(tenant, data)
    assert found.swappable_rows == 3 and not found.ready
    assert {(e.row, e.column, e.message) for e in found.errors} == {
        (n, "緯度", SWAPPED_HINT) for n in (2, 3, 4)
    }
    fixed = preview(tenant, data, swap_coordinates=True)
    assert fixed.ready and fixed.swappable_rows == 0
    assert "緯度と経度を入れ替えて読み込んでいます（3行）。" in fixed.notes
    audit = watch(tenant)
    water_import.apply_water_import(admin(tenant), fixed, missing=MissingRows.KEEP)
    assert stored(tenant)["消-2"]["latitude"] == 36.002
    assert stored(tenant)["消-2"]["longitude"] == 138.0
    [event] = audit.new()
    assert json.loads(event.details)["swap_coordinates"] is True


def test_a_few_swapped_rows_get_the_row_hint_not_the_file_offer(tenant):
    rows = [hydrant("A-1"), hydrant("A-2"), swapped("A-3", 36.0, 138.0)]
    found = preview(tenant, layout_file(rows))
    assert found.swappable_rows == 0
    [error] = found.errors
    assert (error.row, error.column, error.message) == (4, "緯度", SWAPPED_HINT)


def test_points_out_of_range_either_way_keep_the_range_message(tenant):
    found = preview(tenant, layout_file([hydrant("R-1", latitude="95", longitude="95")]))
    [error] = found.errors
    assert error.message == "緯度は -90〜90 の範囲で入力してください。"
    assert found.swappable_rows == 0


def test_a_row_with_one_coordinate_is_a_row_error_not_counted_for_the_swap(tenant):
    rows = [swapped("B-1", 36.0, 138.0), hydrant("B-2", latitude="138.0", longitude="")]
    found = preview(tenant, layout_file(rows))
    assert found.swappable_rows == 1
    assert [(e.row, e.message) for e in found.errors if e.row == 3] == [
        (3, "緯度と経度は両方入力してください（不明なら両方空欄）。")
    ]


# -- far-away points -----------------------------------------------------------------------------


def test_a_point_beyond_the_area_radius_is_a_warning_at_its_edge(tenant):
    set_area(tenant, ORIGIN, 10)
    inside = 36.0 + 9.99 / KM_PER_DEGREE
    outside = 36.0 + 10.01 / KM_PER_DEGREE
    rows = [hydrant("E-1", latitude=f"{inside:.6f}"), hydrant("E-2", latitude=f"{outside:.6f}")]
    found = preview(tenant, layout_file(rows))
    assert found.ready
    [warning] = found.warnings
    assert (warning.row, warning.column) == (3, "緯度")
    assert "約10.0km離れています（区域の半径 10km）" in warning.message


def test_without_a_saved_centre_the_stored_sources_give_it(tenant):
    make_source(tenant, code="HOME-1", latitude=ORIGIN[0], longitude=ORIGIN[1])
    tokyo = hydrant("T-1", latitude="35.681236", longitude="139.767125")
    found = preview(tenant, layout_file([hydrant("N-1"), tokyo]))
    [warning] = found.warnings
    assert warning.row == 3 and "約" in warning.message


def test_no_centre_no_warning_and_another_brigades_sources_do_not_count(tenant, foreign):
    make_source(foreign, code="消-1", latitude=43.0, longitude=141.3)
    found = preview(tenant, layout_file([hydrant("消-1"), hydrant("消-2")]))
    assert found.warnings == []
    assert [row.status for row in found.rows] == [RowStatus.NEW, RowStatus.NEW]


# -- rows without a position -------------------------------------------------------------------


def test_rows_without_coordinates_are_listed_and_imported_unplaced(tenant):
    rows = [hydrant("P-1"), hydrant("P-2", latitude="", longitude=""), hydrant("P-3")]
    rows[2] = {"code": "P-3", "kind": "井戸", "latitude": "", "longitude": ""}
    found = preview(tenant, layout_file(rows))
    assert any(note.startswith("位置なし 2件（3、4行目）") for note in found.notes)
    result = water_import.apply_water_import(admin(tenant), found, missing=MissingRows.KEEP)
    assert (result.created, result.unplaced) == (3, 2)
    assert stored(tenant)["P-2"]["latitude"] is None


# -- permissions ---------------------------------------------------------------------------------


def test_the_swap_needs_csv_import_edit(tenant):
    viewer = actor_with(tenant, {Function.WATER_SOURCES: Level.EDIT})
    with pytest.raises(PermissionDenied):
        water_import.preview_water_import(
            viewer, data=layout_file([hydrant("X-1")]), filename="w.csv", swap_coordinates=True
        )


def test_the_templates_examples_stand_in_the_brigades_area(tenant):
    """Issue #17: the examples lay in Tokyo; where the brigade's area is known they stand in it
    and import without a warning (and without Tokyo's address)."""
    far = preview(tenant, water_import.water_template(admin(tenant)))
    assert far.ready and not far.warnings  # no centre yet: nothing to measure against
    set_area(tenant, (40.68, 141.37), 5)
    found = preview(tenant, water_import.water_template(admin(tenant)))
    assert found.ready and found.warnings == [] and found.counts[RowStatus.NEW] == 2
    water_import.apply_water_import(admin(tenant), found, missing=MissingRows.KEEP)
    rows = stored(tenant)
    assert {(round(r["latitude"], 2), round(r["longitude"], 2)) for r in rows.values()} == {
        (40.68, 141.37)
    }
    assert {r["address"] for r in rows.values()} == {""}
