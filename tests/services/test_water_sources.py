"""Water sources (消防水利): the 基準水利 rules, registry, inspections and settings services —
happy path, other tenant, not permitted, bad input, audit trail and optimistic concurrency."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta

import pytest
from sqlalchemy import text

from models import AuditEvent
from models.enums import AuditCategory, Function, Level
from models.water import (
    WaterInspectionCreate,
    WaterSourceBase,
    WaterSourcePublic,
    WaterSourceUpdate,
)
from services import brigade_settings, water_rules, water_sources
from services.crypto import AUDIT, TenantCipher
from services.db import unit_of_work
from services.errors import Conflict, NotFound, PermissionDenied, ValidationError
from services.water_sources import WaterSourceFilter, map_data
from tests.factories import (
    actor_with,
    admin,
    make_member,
    make_tenant,
)
from tests.water_factories import (
    METRES_PER_MILLIDEGREE_LAT,
    ORIGIN,
    make_source,
    north_of_origin,
    source_data,
)

OPERATION = str(AuditCategory.OPERATION)
AUTH = str(AuditCategory.AUTH)
TODAY = water_sources.today_jst()


@pytest.fixture
def foreign(engine) -> uuid.UUID:
    return make_tenant()


def codes(tenant_id: uuid.UUID) -> set[str]:
    return {s.code for s in water_sources.list_water_sources(admin(tenant_id))}


def decrypted_details(tenant_id: uuid.UUID, event: AuditEvent) -> dict:
    with unit_of_work(tenant_id) as db:
        plain = TenantCipher(db, tenant_id, purpose=AUDIT).decrypt(
            event.details_enc, field="audit_event.details", row_id=event.id
        )
    return json.loads(plain)


# -- 基準水利 rules (pure) -----------------------------------------------------------------------


def figures(kind: str = "防火水槽", **values: object) -> WaterSourceBase:
    return WaterSourceBase(code="X-1", kind=kind, **values)


GOOD_INTAKE = {"drop_m": 2.0, "depth_m": 1.0}


@pytest.mark.parametrize(
    ("item", "grade", "reason"),
    [
        (figures("消火栓", main_diameter_mm=150), "基準", "150mm以上"),
        (figures("消火栓", main_diameter_mm=200), "基準", "200mm"),
        (figures("消火栓", main_diameter_mm=149), "参考", "150mm 未満"),
        (figures("私設消火栓", main_diameter_mm=75), "参考", "75mm以上で基準水利"),
        (figures("消火栓", main_diameter_mm=74), "参考", "75mm 未満"),
        (figures("消火栓"), "参考", "口径が不明"),
        (figures(capacity_m3=40, **GOOD_INTAKE), "基準", "40m³以上"),
        (figures(capacity_m3=39.9, **GOOD_INTAKE), "参考", "容量 39.9m³"),
        (figures(**GOOD_INTAKE), "参考", "容量（または毎分の取水量と継続時間）が不明"),
        (
            figures("河川・溝", supply_m3_per_min=1.0, supply_minutes=40, **GOOD_INTAKE),
            "基準",
            "毎分 1m³ を 40分間",
        ),
        (
            figures("河川・溝", supply_m3_per_min=0.9, supply_minutes=60, **GOOD_INTAKE),
            "参考",
            "毎分 0.9m³ × 60分",
        ),
        (
            figures("河川・溝", supply_m3_per_min=2.0, supply_minutes=39, **GOOD_INTAKE),
            "参考",
            "に足りません",
        ),
        (figures("河川・溝", supply_m3_per_min=2.0, **GOOD_INTAKE), "参考", "不明"),
        (figures(capacity_m3=60, drop_m=4.5, depth_m=0.5), "基準", "落差 4.5m（4.5m以下）"),
        (figures(capacity_m3=60, drop_m=4.6, depth_m=0.5), "参考", "4.5m を超えて"),
        (figures(capacity_m3=60, drop_m=1.0, depth_m=0.49), "参考", "0.5m 未満"),
        (figures(capacity_m3=60, depth_m=1.0), "参考", "落差（地盤面から水面まで）が不明"),
        (figures(capacity_m3=60, drop_m=1.0), "参考", "水深が不明"),
        (figures("海・湖", **GOOD_INTAKE), "基準", "水量が十分とみなします"),
        (figures("井戸", capacity_m3=50, drop_m=6.0, depth_m=5.0), "参考", "4.5m を超えて"),
    ],
)
def test_grade_follows_the_standards_thresholds(item, grade, reason):
    result = water_rules.assess(item)
    assert result.grade == grade
    assert any(reason in r for r in result.reasons), result.reasons
    assert not result.overridden


def test_every_failing_figure_has_its_own_reason():
    result = water_rules.assess(figures(capacity_m3=10, drop_m=9, depth_m=0.1))
    assert result.grade == "参考"
    assert len([r for r in result.reasons if "足りません" in r or "超え" in r or "未満" in r]) == 3


@pytest.mark.parametrize(
    ("override", "computed", "expected"), [("基準", "参考", "基準"), ("参考", "基準", "参考")]
)
def test_override_wins_and_is_shown_as_such(override, computed, expected):
    diameter = 100 if computed == "参考" else 150
    item = figures("消火栓", main_diameter_mm=diameter)
    grade = water_rules.grade_of(item, override, "管網の一辺180m以下")
    assert (grade.grade, grade.computed, grade.overridden) == (expected, computed, True)
    assert grade.reasons[0] == f"手動で「{override}水利」に設定（管網の一辺180m以下）"


def test_no_override_means_the_computed_grade():
    item = figures("消火栓", main_diameter_mm=150)
    assert water_rules.grade_of(item, None) == water_rules.assess(item)


@pytest.mark.parametrize(
    ("last", "interval", "overdue"),
    [
        (None, 365, True),
        (TODAY, 365, False),
        (TODAY - timedelta(days=365), 365, False),
        (TODAY - timedelta(days=366), 365, True),
        (TODAY - timedelta(days=31), 30, True),
    ],
)
def test_overdue_after_the_interval(last, interval, overdue):
    assert water_rules.is_overdue(last, interval, TODAY) is overdue


# -- registry: happy paths ----------------------------------------------------------------------


def test_create_water_source(tenant, watch):
    audit = watch(tenant)
    created = make_source(tenant, code="T-0001", memo="公園内", last_inspected_on=TODAY)
    assert created.code == "T-0001"
    assert (created.grade, created.grade_overridden) == ("基準", False)
    assert created.version == 1
    assert created.next_inspection_due == TODAY + timedelta(days=365)
    assert not created.overdue
    [event] = audit.new()
    assert (event.category, event.action, event.target_id) == (
        OPERATION,
        "water_source.create",
        str(created.id),
    )
    details = json.loads(event.details)
    assert details["after"]["memo"] == "公園内"
    assert details["after"]["capacity_m3"] == 40.0


def test_create_normalises_input(tenant):
    created = make_source(tenant, code="Ｔ－１２３", unit=" 第2分団 ", memo="  要連絡  ")
    assert (created.code, created.unit, created.memo) == ("T-123", "第2分団", "要連絡")


def test_list_and_get(tenant):
    a = make_source(tenant, code="B-2")
    b = make_source(tenant, code="A-1")
    assert [s.code for s in water_sources.list_water_sources(admin(tenant))] == ["A-1", "B-2"]
    assert water_sources.get_water_source(admin(tenant), a.id) == a
    assert water_sources.get_water_source(admin(tenant), b.id).code == "A-1"


def test_update_water_source(tenant, watch):
    source = make_source(tenant, kind="消火栓", capacity_m3=None, drop_m=None, depth_m=None)
    assert source.grade == "参考"
    audit = watch(tenant)
    updated = water_sources.update_water_source(
        admin(tenant),
        source.id,
        data=WaterSourceUpdate(main_diameter_mm=150, hydrant_type="地下式", memo="積雪時埋没注意"),
        expected_version=source.version,
    )
    assert (updated.grade, updated.main_diameter_mm, updated.version) == ("基準", 150, 2)
    [event] = audit.new()
    details = json.loads(event.details)
    assert event.action == "water_source.update"
    assert details["changed"] == ["main_diameter_mm", "hydrant_type", "memo"]
    assert details["before"] == {"main_diameter_mm": None, "hydrant_type": None, "memo": ""}
    assert details["after"]["memo"] == "積雪時埋没注意"


def test_update_can_clear_a_figure_and_override_the_grade(tenant):
    source = make_source(tenant)
    updated = water_sources.update_water_source(
        admin(tenant),
        source.id,
        data=WaterSourceUpdate(capacity_m3=None),
        expected_version=source.version,
    )
    assert (updated.capacity_m3, updated.grade) == (None, "参考")
    overridden = water_sources.update_water_source(
        admin(tenant),
        source.id,
        data=WaterSourceUpdate(grade_override="基準", grade_override_reason="水道局確認済"),
        expected_version=updated.version,
    )
    assert (overridden.grade, overridden.computed_grade) == ("基準", "参考")
    assert overridden.grade_overridden
    assert overridden.grade_reasons[0].endswith("（水道局確認済）")


def test_stale_version_conflicts_and_changes_nothing(tenant, watch):
    source = make_source(tenant)
    water_sources.update_water_source(
        admin(tenant), source.id, data=WaterSourceUpdate(memo="一"), expected_version=1
    )
    audit = watch(tenant)
    with pytest.raises(Conflict):
        water_sources.update_water_source(
            admin(tenant), source.id, data=WaterSourceUpdate(memo="二"), expected_version=1
        )
    with pytest.raises(Conflict):
        water_sources.delete_water_source(admin(tenant), source.id, expected_version=1)
    assert water_sources.get_water_source(admin(tenant), source.id).memo == "一"
    assert audit.new() == []


def test_delete_water_source_with_its_inspections(tenant, watch):
    source = make_source(tenant)
    water_sources.record_inspection(
        admin(tenant), source.id, data=WaterInspectionCreate(inspected_on=TODAY, result="異常なし")
    )
    version = water_sources.get_water_source(admin(tenant), source.id).version
    audit = watch(tenant)
    water_sources.delete_water_source(admin(tenant), source.id, expected_version=version)
    assert codes(tenant) == set()
    [event] = audit.new()
    details = json.loads(event.details)
    assert (event.action, details["code"], details["inspections_deleted"]) == (
        "water_source.delete",
        source.code,
        1,
    )
    assert details["before"]["capacity_m3"] == 40.0


def test_add_water_sources_in_one_transaction(tenant, watch):
    audit = watch(tenant)
    items = [source_data(code=f"BULK-{i}") for i in range(3)]
    assert water_sources.add_water_sources(admin(tenant), items) == 3
    assert codes(tenant) == {"BULK-0", "BULK-1", "BULK-2"}
    [event] = audit.new()
    details = json.loads(event.details)
    assert (details["count"], details["after"]["codes"]) == (3, ["BULK-0", "BULK-1", "BULK-2"])


def test_bulk_errors_are_numbered_by_row_and_nothing_is_written(tenant, watch):
    make_source(tenant, code="TAKEN")
    audit = watch(tenant)
    items = [
        source_data(code="NEW-1"),
        source_data(code="TAKEN"),
        source_data(code="NEW-1"),
        source_data(code="NEW-4", kind="温泉"),
        source_data(code="NEW-5", latitude=95.0),
    ]
    with pytest.raises(ValidationError) as raised:
        water_sources.add_water_sources(admin(tenant), items)
    assert set(raised.value.errors) == {"2:code", "3:code", "4:kind", "5:latitude"}
    assert codes(tenant) == {"TAKEN"}
    assert audit.new(OPERATION) == []


def test_filters(tenant):
    make_source(tenant, code="F-1", kind="消火栓", capacity_m3=None, drop_m=None, depth_m=None)
    make_source(tenant, code="F-2", status="使用不可", memo="断水工事中")
    make_source(tenant, code="F-3", unit="第2分団", memo="公園内", last_inspected_on=TODAY)
    make_source(tenant, code="F-4", address="テスト市駅前1-2", last_inspected_on=TODAY)

    def matching(**f: object) -> list[str]:
        chosen = water_sources.list_water_sources(admin(tenant), WaterSourceFilter(**f))
        return [s.code for s in chosen]

    assert matching(kinds=("消火栓",)) == ["F-1"]
    assert matching(statuses=("使用不可",)) == ["F-2"]
    assert matching(units=("第2分団",)) == ["F-3"]
    assert matching(labels=("公園内", "断水工事中")) == ["F-2", "F-3"]
    assert matching(grades=("参考",)) == ["F-1"]
    assert matching(overdue_only=True) == ["F-1", "F-2"]
    assert matching(text="駅前") == ["F-4"]
    assert matching(text="f-3") == ["F-3"]
    assert matching(kinds=("防火水槽",), overdue_only=True) == ["F-2"]


def test_export_csv_neutralises_formulas_and_is_audited(tenant, watch):
    make_source(tenant, code="CSV-1", memo='=HYPERLINK("http://x")')
    make_source(tenant, code="CSV-2", memo="-要連絡", unit="@第3分団")
    audit = watch(tenant)
    data = water_sources.export_water_sources_csv(admin(tenant), WaterSourceFilter(text="csv"))
    assert data.startswith("\ufeff".encode())
    rows = data.decode("utf-8-sig").splitlines()
    assert rows[0].startswith("水利番号,種別,区分,判定")
    assert "'=HYPERLINK" in rows[1]
    assert "'-要連絡" in rows[2] and "'@第3分団" in rows[2]
    assert len(rows) == 3
    [event] = audit.new()
    assert event.action == "water_source.list_export"  # not the full export's name
    assert json.loads(event.details)["count"] == 2


# -- other tenant -----------------------------------------------------------------------------


def test_another_tenants_sources_are_invisible(tenant, foreign):
    make_source(tenant, code="MINE")
    make_source(foreign, code="THEIRS")
    assert codes(tenant) == {"MINE"}
    assert codes(foreign) == {"THEIRS"}


FOREIGN_CALLS: dict[str, Callable[[object, WaterSourcePublic], object]] = {
    "get": lambda a, s: water_sources.get_water_source(a, s.id),
    "update": lambda a, s: water_sources.update_water_source(
        a, s.id, data=WaterSourceUpdate(memo="x"), expected_version=s.version
    ),
    "delete": lambda a, s: water_sources.delete_water_source(a, s.id, expected_version=s.version),
    "inspect": lambda a, s: water_sources.record_inspection(
        a, s.id, data=WaterInspectionCreate(inspected_on=TODAY, result="使用不可")
    ),
    "inspections": lambda a, s: water_sources.list_inspections(a, s.id),
}


@pytest.mark.parametrize("name", sorted(FOREIGN_CALLS))
def test_another_tenants_source_is_not_found(tenant, foreign, watch, name):
    theirs = make_source(foreign)
    audit = watch(foreign)
    with pytest.raises(NotFound):
        FOREIGN_CALLS[name](admin(tenant), theirs)
    assert water_sources.get_water_source(admin(foreign), theirs.id) == theirs
    assert audit.new() == []


def test_codes_are_per_tenant(tenant, foreign):
    make_source(foreign, code="SAME-1")
    assert make_source(tenant, code="SAME-1").code == "SAME-1"
    assert water_sources.add_water_sources(admin(tenant), [source_data(code="SAME-2")]) == 1
    assert water_sources.add_water_sources(admin(foreign), [source_data(code="SAME-2")]) == 1


def test_another_tenants_member_cannot_be_the_inspector(tenant, foreign):
    source = make_source(tenant)
    stranger = make_member(foreign)
    with pytest.raises(ValidationError) as raised:
        water_sources.record_inspection(
            admin(tenant),
            source.id,
            data=WaterInspectionCreate(
                inspected_on=TODAY, result="異常なし", inspector_member_id=stranger.id
            ),
        )
    assert set(raised.value.errors) == {"inspector_member_id"}


def test_inspector_choices_are_the_tenants_active_members(tenant, foreign):
    mine = make_member(tenant)
    make_member(foreign)
    options = water_sources.inspector_choices(admin(tenant))
    assert [o.member_id for o in options] == [mine.id]
    assert options[0].label == f"{mine.member_code}　{mine.name}"


def test_settings_are_per_tenant(tenant, foreign):
    brigade_settings.update_water_map_settings(
        admin(foreign), coverage_radius_m=140, expected_version=0
    )
    assert brigade_settings.get_water_map_settings(admin(tenant)).coverage_radius_m == 120
    assert brigade_settings.get_water_map_settings(admin(foreign)).coverage_radius_m == 140


# -- not permitted -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Requirement:
    function: Function
    level: Level
    call: Callable[[object, WaterSourcePublic], object]


REQUIREMENTS: dict[str, Requirement] = {
    "list_water_sources": Requirement(
        Function.WATER_SOURCES, Level.VIEW, lambda a, s: water_sources.list_water_sources(a)
    ),
    "get_water_source": Requirement(
        Function.WATER_SOURCES, Level.VIEW, lambda a, s: water_sources.get_water_source(a, s.id)
    ),
    "water_map": Requirement(
        Function.WATER_SOURCES, Level.VIEW, lambda a, s: map_data.water_map(a)
    ),
    "list_inspections": Requirement(
        Function.WATER_SOURCES, Level.VIEW, lambda a, s: water_sources.list_inspections(a, s.id)
    ),
    "nearest_usable": Requirement(
        Function.WATER_SOURCES,
        Level.VIEW,
        lambda a, s: water_sources.nearest_usable(a, latitude=36.0, longitude=138.0),
    ),
    "sources_covering": Requirement(
        Function.WATER_SOURCES,
        Level.VIEW,
        lambda a, s: water_sources.sources_covering(a, latitude=36.0, longitude=138.0),
    ),
    "export_water_sources_csv": Requirement(
        Function.WATER_SOURCES, Level.VIEW, lambda a, s: water_sources.export_water_sources_csv(a)
    ),
    "get_water_map_settings": Requirement(
        Function.WATER_SOURCES, Level.VIEW, lambda a, s: brigade_settings.get_water_map_settings(a)
    ),
    "create_water_source": Requirement(
        Function.WATER_SOURCES,
        Level.EDIT,
        lambda a, s: water_sources.create_water_source(a, data=source_data()),
    ),
    "update_water_source": Requirement(
        Function.WATER_SOURCES,
        Level.EDIT,
        lambda a, s: water_sources.update_water_source(
            a, s.id, data=WaterSourceUpdate(memo="変更"), expected_version=s.version
        ),
    ),
    "delete_water_source": Requirement(
        Function.WATER_SOURCES,
        Level.EDIT,
        lambda a, s: water_sources.delete_water_source(a, s.id, expected_version=s.version),
    ),
    "add_water_sources": Requirement(
        Function.WATER_SOURCES,
        Level.EDIT,
        lambda a, s: water_sources.add_water_sources(a, [source_data()]),
    ),
    "record_inspection": Requirement(
        Function.INSPECTIONS,
        Level.EDIT,
        lambda a, s: water_sources.record_inspection(
            a, s.id, data=WaterInspectionCreate(inspected_on=TODAY, result="異常なし")
        ),
    ),
    "inspector_choices": Requirement(
        Function.INSPECTIONS, Level.EDIT, lambda a, s: water_sources.inspector_choices(a)
    ),
    "update_water_map_settings": Requirement(
        Function.SETTINGS,
        Level.EDIT,
        lambda a, s: brigade_settings.update_water_map_settings(
            a, coverage_radius_m=100, expected_version=0
        ),
    ),
}


def _everything_but(function: Function, level: Level) -> dict[Function, Level]:
    return {f: Level.ADMIN for f in Function} | {function: level}


def _state(tenant_id: uuid.UUID) -> tuple:
    sources = water_sources.list_water_sources(admin(tenant_id))
    settings = brigade_settings.get_water_map_settings(admin(tenant_id))
    return (
        sources,
        settings,
        [water_sources.list_inspections(admin(tenant_id), s.id) for s in sources],
    )


@pytest.mark.parametrize("name", sorted(REQUIREMENTS))
def test_not_permitted(tenant, watch, name):
    requirement = REQUIREMENTS[name]
    source = make_source(tenant)
    before = _state(tenant)
    audit = watch(tenant)
    actor = actor_with(tenant, _everything_but(requirement.function, Level(requirement.level - 1)))
    with pytest.raises(PermissionDenied):
        requirement.call(actor, source)
    new = audit.new()
    assert [(e.category, e.action, e.outcome) for e in new] == [
        (AUTH, "permission_denied", "denied")
    ]
    assert json.loads(new[0].details)["function"] == str(requirement.function)
    assert _state(tenant) == before


@pytest.mark.parametrize("name", sorted(REQUIREMENTS))
def test_required_level_is_enough(tenant, watch, name):
    requirement = REQUIREMENTS[name]
    source = make_source(tenant)
    audit = watch(tenant)
    requirement.call(actor_with(tenant, {requirement.function: requirement.level}), source)
    assert audit.new(AUTH) == []


def test_actor_without_tenant_is_denied(engine):
    actor = actor_with(None, {f: Level.ADMIN for f in Function})  # type: ignore[arg-type]
    with pytest.raises(PermissionDenied):
        water_sources.list_water_sources(actor)


# -- bad input ----------------------------------------------------------------------------------

BAD_INPUT: list[tuple[str, dict[str, object]]] = [
    ("code", {"code": ""}),
    ("code", {"code": "水利\u200b1"}),  # a zero-width space: not printable
    ("code", {"code": "X" * 31}),
    ("kind", {"kind": "温泉"}),
    ("ownership", {"ownership": "municipal"}),
    ("status", {"status": "故障"}),
    ("latitude", {"latitude": None}),
    ("latitude", {"latitude": 91.0}),
    ("latitude", {"latitude": float("nan")}),
    ("longitude", {"longitude": 181.0}),
    ("latitude", {"latitude": 138.249, "longitude": 36.402}),
    ("latitude", {"latitude": 3.6402}),
    ("capacity_m3", {"capacity_m3": -1.0}),
    ("capacity_m3", {"capacity_m3": 0.0}),
    ("capacity_m3", {"capacity_m3": float("inf")}),
    ("depth_m", {"depth_m": 0.0}),
    ("drop_m", {"drop_m": -0.1}),
    ("supply_minutes", {"supply_minutes": 0}),
    ("inspection_interval_days", {"inspection_interval_days": 0}),
    ("main_diameter_mm", {"main_diameter_mm": 150}),
    ("hydrant_type", {"hydrant_type": "地上式"}),
    ("capacity_m3", {"kind": "消火栓", "drop_m": None, "depth_m": None}),
    ("drop_m", {"kind": "消火栓", "capacity_m3": None, "depth_m": None}),
    (
        "main_diameter_mm",
        {
            "kind": "消火栓",
            "capacity_m3": None,
            "drop_m": None,
            "depth_m": None,
            "main_diameter_mm": 10,
        },
    ),
    (
        "hydrant_type",
        {
            "kind": "消火栓",
            "capacity_m3": None,
            "drop_m": None,
            "depth_m": None,
            "hydrant_type": "壁式",
        },
    ),
    ("grade_override", {"grade_override": "最優先"}),
    ("grade_override_reason", {"grade_override_reason": "あ" * 201}),
    ("memo", {"memo": "あ" * 501}),
    ("address", {"address": "あ" * 201}),
    ("unit", {"unit": "あ" * 101}),
    ("last_inspected_on", {"last_inspected_on": TODAY + timedelta(days=1)}),
    ("memo", {"memo": "a\x00b"}),
    ("address", {"address": "\x00"}),
    ("grade_override_reason", {"grade_override_reason": "x\x00"}),
]


@pytest.mark.parametrize(("field", "overrides"), BAD_INPUT)
def test_create_rejects_bad_input(tenant, watch, field, overrides):
    audit = watch(tenant)
    with pytest.raises(ValidationError) as raised:
        water_sources.create_water_source(admin(tenant), data=source_data(**overrides))
    assert field in raised.value.errors
    assert all(
        message.endswith("。") or message.endswith("）") for message in raised.value.errors.values()
    )
    assert codes(tenant) == set()
    assert audit.new() == []


@pytest.mark.parametrize(("field", "overrides"), BAD_INPUT[:12])
def test_update_rejects_bad_input(tenant, field, overrides):
    source = make_source(tenant)
    with pytest.raises(ValidationError) as raised:
        water_sources.update_water_source(
            admin(tenant), source.id, data=WaterSourceUpdate(**overrides), expected_version=1
        )
    assert field in raised.value.errors
    assert water_sources.get_water_source(admin(tenant), source.id) == source


def test_duplicate_code_is_rejected_but_keeping_ones_own_is_not(tenant):
    make_source(tenant, code="DUP-1")
    other = make_source(tenant, code="DUP-2")
    with pytest.raises(ValidationError) as raised:
        make_source(tenant, code="DUP-1")
    assert raised.value.errors == {"code": "水利番号「DUP-1」は既に使われています。"}
    kept = water_sources.update_water_source(
        admin(tenant), other.id, data=WaterSourceUpdate(code="DUP-2", memo="x"), expected_version=1
    )
    assert kept.memo == "x"


def test_japanese_codes_are_accepted_and_compared_after_nfkc(tenant):
    created = make_source(tenant, code=" 消-１ ")
    assert created.code == "消-1"
    with pytest.raises(ValidationError) as raised:
        make_source(tenant, code="消－1")
    assert raised.value.errors == {"code": "水利番号「消-1」は既に使われています。"}
    assert make_source(tenant, code="防" * 30).code == "防" * 30


def test_a_source_without_coordinates_is_allowed(tenant):
    created = make_source(tenant, latitude=None, longitude=None)
    assert (created.latitude, created.longitude, created.outside_area) == (None, None, False)


@pytest.mark.parametrize(
    ("field", "changes"),
    [
        ("inspected_on", {"inspected_on": TODAY + timedelta(days=1)}),
        ("inspected_on", {"inspected_on": date(1949, 12, 31)}),
        ("result", {"result": "たぶん大丈夫"}),
        ("inspector_member_id", {"inspector_member_id": uuid.uuid4()}),
        ("inspector_name", {"inspector_name": "あ" * 51}),
        ("notes", {"notes": "あ" * 1001}),
        ("notes", {"notes": "x\x00"}),
        ("inspector_name", {"inspector_name": "\x00"}),
    ],
)
def test_record_inspection_rejects_bad_input(tenant, watch, field, changes):
    source = make_source(tenant)
    audit = watch(tenant)
    data = {"inspected_on": TODAY, "result": "異常なし"} | changes
    with pytest.raises(ValidationError) as raised:
        water_sources.record_inspection(
            admin(tenant), source.id, data=WaterInspectionCreate(**data)
        )
    assert field in raised.value.errors
    assert water_sources.list_inspections(admin(tenant), source.id) == []
    assert audit.new() == []


# -- inspections -------------------------------------------------------------------------------


def test_record_inspection_sets_status_and_last_inspection(tenant, watch, engine):
    source = make_source(tenant, last_inspected_on=TODAY - timedelta(days=400))
    assert source.overdue
    inspector = make_member(tenant)
    audit = watch(tenant)
    recorded = water_sources.record_inspection(
        admin(tenant),
        source.id,
        data=WaterInspectionCreate(
            inspected_on=TODAY,
            result="使用不可",
            inspector_member_id=inspector.id,
            inspector_name="水道局　点検太郎",
            notes="蓋が破損",
        ),
    )
    assert recorded.inspector == f"{inspector.name}・水道局　点検太郎"
    after = water_sources.get_water_source(admin(tenant), source.id)
    assert (after.status, after.last_inspected_on, after.overdue, after.version) == (
        "使用不可",
        TODAY,
        False,
        2,
    )
    [event] = audit.new()
    details = json.loads(event.details)
    assert event.action == "water_source.inspect"
    assert details["before"]["status"] == "使用可"
    assert details["after"] == {"status": "使用不可", "last_inspected_on": str(TODAY)}
    assert "点検太郎" not in event.details and "蓋が破損" not in event.details
    assert decrypted_details(tenant, event) == {
        "inspector_name": "水道局　点検太郎",
        "notes": "蓋が破損",
    }
    with engine.connect() as conn, conn.begin():
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT set_config('app.tenant_id', :t, true)"), {"t": str(tenant)})
        stored = conn.execute(
            text("SELECT inspector_name_enc FROM water_inspection WHERE id = :id"),
            {"id": recorded.id if conn.dialect.name == "postgresql" else recorded.id.hex},
        ).scalar_one()
    assert stored and "点検太郎" not in stored


def test_an_older_inspection_only_joins_the_history(tenant):
    source = make_source(tenant)
    actor = admin(tenant)
    water_sources.record_inspection(
        actor, source.id, data=WaterInspectionCreate(inspected_on=TODAY, result="整備中")
    )
    water_sources.record_inspection(
        actor,
        source.id,
        data=WaterInspectionCreate(inspected_on=TODAY - timedelta(days=30), result="異常なし"),
    )
    after = water_sources.get_water_source(actor, source.id)
    assert (after.status, after.last_inspected_on) == ("点検中", TODAY)
    history = water_sources.list_inspections(actor, source.id)
    assert [(i.inspected_on, i.result) for i in history] == [
        (TODAY, "整備中"),
        (TODAY - timedelta(days=30), "異常なし"),
    ]


def test_inspector_names_only_for_those_who_may_view_inspections(tenant):
    source = make_source(tenant)
    water_sources.record_inspection(
        admin(tenant),
        source.id,
        data=WaterInspectionCreate(
            inspected_on=TODAY, result="異常なし", inspector_name="外部　花子"
        ),
    )
    viewer = actor_with(tenant, {Function.WATER_SOURCES: Level.VIEW})
    inspector = actor_with(
        tenant, {Function.WATER_SOURCES: Level.VIEW, Function.INSPECTIONS: Level.VIEW}
    )
    assert water_sources.list_inspections(viewer, source.id)[0].inspector == ""
    assert water_sources.list_inspections(inspector, source.id)[0].inspector == "外部　花子"


# -- geometry through the services ---------------------------------------------------------------


@pytest.fixture
def line_of_sources(tenant) -> dict[str, WaterSourcePublic]:
    """Sources due north of ORIGIN at 1.0, 1.2, 2.0 and 0.5 thousandths of a degree."""
    return {
        "near": make_source(tenant, code="N-1", **north_of_origin(1.0)),
        "edge": make_source(tenant, code="N-2", unit="第2分団", **north_of_origin(1.2)),
        "far": make_source(tenant, code="N-3", **north_of_origin(2.0)),
        "broken": make_source(tenant, code="N-4", status="使用不可", **north_of_origin(0.5)),
    }


def test_nearest_usable_sources_with_distances(tenant, line_of_sources):
    hits = water_sources.nearest_usable(admin(tenant), latitude=ORIGIN[0], longitude=ORIGIN[1], n=2)
    assert [h.source.code for h in hits] == ["N-1", "N-2"]
    assert hits[0].distance_m == pytest.approx(1.0 * METRES_PER_MILLIDEGREE_LAT, abs=0.01)
    assert hits[1].distance_m == pytest.approx(1.2 * METRES_PER_MILLIDEGREE_LAT, abs=0.01)
    assert [h.covers for h in hits] == [True, False]


def test_coverage_uses_the_radius_of_the_brigade_and_of_the_unit(tenant, line_of_sources):
    point = {"latitude": ORIGIN[0], "longitude": ORIGIN[1]}
    covering = water_sources.sources_covering(admin(tenant), **point)
    assert [h.source.code for h in covering] == ["N-1"]  # 111.2 m ≤ 120 m < 133.4 m
    brigade_settings.update_water_map_settings(
        admin(tenant),
        coverage_radius_m=100,
        unit_coverage_radii={"第2分団": 140},
        expected_version=0,
    )
    covering = water_sources.sources_covering(admin(tenant), **point)
    assert [(h.source.code, h.radius_m) for h in covering] == [("N-2", 140)]


def test_nearest_rejects_impossible_points(tenant):
    with pytest.raises(ValidationError) as raised:
        water_sources.nearest_usable(admin(tenant), latitude=99.0, longitude=138.0)
    assert "latitude" in raised.value.errors


# -- settings ----------------------------------------------------------------------------------


def test_default_settings_centre_is_the_median_of_the_sources(tenant):
    assert brigade_settings.get_water_map_settings(admin(tenant)).area_center is None
    for millidegrees in (0, 1, 2):
        make_source(tenant, **north_of_origin(millidegrees))
    far_away = make_source(tenant, latitude=43.0, longitude=141.3)
    settings = brigade_settings.get_water_map_settings(admin(tenant))
    assert settings.area_center == pytest.approx((ORIGIN[0] + 0.0015, ORIGIN[1]))
    assert (settings.coverage_radius_m, settings.area_center_derived, settings.version) == (
        120,
        True,
        0,
    )
    assert water_sources.get_water_source(admin(tenant), far_away.id).outside_area
    assert not any(
        s.outside_area
        for s in water_sources.list_water_sources(admin(tenant))
        if s.id != far_away.id
    )


def test_update_settings(tenant, watch):
    source = make_source(tenant, **north_of_origin(20))  # 2.2 km north
    audit = watch(tenant)
    settings = brigade_settings.update_water_map_settings(
        admin(tenant),
        coverage_radius_m=140,
        unit_coverage_radii={"第1分団": 100},
        area_center_lat=ORIGIN[0],
        area_center_lon=ORIGIN[1],
        area_radius_km=2.0,
        expected_version=0,
    )
    assert (
        settings.coverage_radius_m,
        settings.radius_for("第1分団"),
        settings.radius_for("x"),
    ) == (
        140,
        100,
        140,
    )
    assert (settings.area_center, settings.area_center_derived, settings.version) == (
        ORIGIN,
        False,
        1,
    )
    assert water_sources.get_water_source(admin(tenant), source.id).outside_area
    [event] = audit.new()
    details = json.loads(event.details)
    assert event.action == "brigade_settings.update"
    assert details["before"]["coverage_radius_m"] == 120
    assert details["after"]["area_radius_km"] == 2.0
    with pytest.raises(Conflict):
        brigade_settings.update_water_map_settings(
            admin(tenant), coverage_radius_m=100, expected_version=0
        )


@pytest.mark.parametrize(
    ("field", "values"),
    [
        ("coverage_radius_m", {"coverage_radius_m": 110}),
        ("unit_coverage_radii", {"unit_coverage_radii": {"第1分団": 90}}),
        ("unit_coverage_radii", {"unit_coverage_radii": {" ": 100}}),
        ("unit_coverage_radii", {"unit_coverage_radii": {"第1\x00分団": 100}}),
        ("area_center", {"area_center_lat": 36.0}),
        ("area_center", {"area_center_lat": 0.0, "area_center_lon": 0.0}),
        ("area_radius_km", {"area_radius_km": 0.1}),
    ],
)
def test_update_settings_rejects_bad_input(tenant, watch, field, values):
    audit = watch(tenant)
    with pytest.raises(ValidationError) as raised:
        brigade_settings.update_water_map_settings(
            admin(tenant), **({"coverage_radius_m": 120} | values), expected_version=0
        )
    assert field in raised.value.errors
    assert brigade_settings.get_water_map_settings(admin(tenant)).version == 0
    assert audit.new() == []
