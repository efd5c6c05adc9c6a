"""The 水利マップ's process-wide data (services.water_sources.map_data): one entry per brigade and
version, shared by that brigade's viewers and no other's, a new version after every write, the
same rows as the registry's filters keep, and the filters as a bit set over the browser's rows."""

from __future__ import annotations

import base64
import json
import uuid

import pytest

from models.enums import Function, Level
from models.water import WaterInspectionCreate, WaterSourceUpdate
from services import brigade_settings, water_sources
from services.errors import PermissionDenied
from services.water_sources import WaterSourceFilter, map_data
from tests.factories import actor_with, admin, make_tenant
from tests.water_factories import make_source, north_of_origin

TODAY = water_sources.today_jst()
VIEWER = {Function.WATER_SOURCES: Level.VIEW}


@pytest.fixture
def tenant(engine) -> uuid.UUID:
    tenant = make_tenant()
    make_source(tenant, code="F-1", kind="消火栓", capacity_m3=None, drop_m=None, depth_m=None)
    make_source(tenant, code="F-2", status="使用不可", memo="断水工事中")
    make_source(tenant, code="F-3", unit="第2分団", memo="公園内", last_inspected_on=TODAY)
    make_source(tenant, code="F-4", address="テスト市駅前1-2", last_inspected_on=TODAY)
    make_source(tenant, code="F-5", latitude=None, longitude=None, memo="座標なし")
    return tenant


def browser_codes(data: map_data.WaterMap) -> list[str]:
    return [row[5] for row in json.loads(data.body)["rows"]]


def test_one_entry_per_brigade_and_version_shared_by_its_viewers_only(tenant):
    other = make_tenant()
    make_source(other, code="X-999", memo="よその水利", **north_of_origin(1.0))

    first = map_data.water_map(actor_with(tenant, VIEWER))
    assert map_data.water_map(admin(tenant)) is first  # built once, for every viewer
    foreign = map_data.water_map(admin(other))
    assert foreign is not first and foreign.version != first.version
    assert [r.code for r in first.rows] == ["F-1", "F-2", "F-3", "F-4", "F-5"]
    assert browser_codes(first) == ["F-1", "F-2", "F-3", "F-4"]  # placed ones only
    assert browser_codes(foreign) == ["X-999"]
    assert "よその水利" not in first.body.decode() and "X-999" not in first.body.decode()


def test_every_write_makes_a_new_version(tenant):
    actor = admin(tenant)
    versions = [map_data.water_map(actor).version]
    source = make_source(tenant, code="W-1")
    versions.append(map_data.water_map(actor).version)
    water_sources.record_inspection(
        actor, source.id, data=WaterInspectionCreate(inspected_on=TODAY, result="異常なし")
    )
    versions.append(map_data.water_map(actor).version)
    source = water_sources.get_water_source(actor, source.id)
    water_sources.update_water_source(
        actor, source.id, data=WaterSourceUpdate(memo="変更"), expected_version=source.version
    )
    versions.append(map_data.water_map(actor).version)
    first = next(s for s in water_sources.list_water_sources(actor) if s.code == "F-1")
    water_sources.delete_water_source(actor, first.id, expected_version=first.version)
    versions.append(map_data.water_map(actor).version)
    brigade_settings.update_water_map_settings(actor, coverage_radius_m=100, expected_version=0)
    latest = map_data.water_map(actor)
    versions.append(latest.version)
    assert len(set(versions)) == len(versions)
    assert json.loads(latest.body)["rows"][0][7] == 100  # the new radius reaches the browser
    # only the brigade's latest version is kept
    assert [k for k in map_data._cache if k[0] == tenant] == [
        k for k, v in map_data._cache.items() if v is latest
    ]


def test_a_viewer_who_lost_the_right_gets_nothing_cached(tenant):
    map_data.water_map(admin(tenant))
    with pytest.raises(PermissionDenied):
        map_data.water_map(actor_with(tenant, {Function.WATER_SOURCES: Level.NONE}))


@pytest.mark.parametrize(
    "chosen",
    [
        WaterSourceFilter(),
        WaterSourceFilter(kinds=("消火栓",)),
        WaterSourceFilter(statuses=("使用不可",)),
        WaterSourceFilter(units=("第2分団",)),
        WaterSourceFilter(labels=("公園内", "断水工事中", "座標なし")),
        WaterSourceFilter(overdue_only=True),
        WaterSourceFilter(text="駅前"),
        WaterSourceFilter(text="f-3"),
        WaterSourceFilter(kinds=("防火水槽",), overdue_only=True),
    ],
)
def test_the_map_keeps_what_the_registrys_filters_keep(tenant, chosen):
    data = map_data.water_map(admin(tenant))
    kept = map_data.matching(data, chosen)
    expected = [s.code for s in water_sources.list_water_sources(admin(tenant), chosen)]
    assert [data.rows[i].code for i in kept] == expected

    mask = map_data.shown_mask(data, kept)
    rows = json.loads(data.body)["rows"]
    if mask is None:
        assert len(kept) == len(data.rows)
        return
    bits = base64.b64decode(mask)
    shown = [r[5] for i, r in enumerate(rows) if bits[i >> 3] >> (i & 7) & 1]
    assert shown == [code for code in expected if code != "F-5"]
