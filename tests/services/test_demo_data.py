"""Tests for the deterministic demo data generator (services/demo_data/)."""

from __future__ import annotations

import ast
import datetime
import math
import re
import sys
from collections import Counter
from pathlib import Path

import pytest

from models.enums import HYDRANT_KINDS, WATER_SOURCE_KINDS
from services import demo_data
from services.demo_data import (
    DEMO_BRIGADE,
    DEMO_EMAIL_DOMAINS,
    DEMO_ROLES,
    DEMO_UNIT_SECTIONS,
    DEMO_UNITS,
    RANKS,
    DemoMember,
    DemoWaterSource,
    generate_members,
    generate_water_sources,
)

TODAY = datetime.date(2026, 11, 26)
SEEDS = (demo_data.DEFAULT_SEED, 1, 42)

KATAKANA_NAME = re.compile(r"^[ァ-ヶー]+\u3000[ァ-ヶー]+$")
PHONE = re.compile(r"^0[789]0-\d{4}-\d{4}$")
EMAIL = re.compile(r"^[a-z0-9._-]+@([a-z0-9.-]+)$")
SECTION = re.compile(r"^(第\d分団) 第(\d)部$")
WATER_CODE = re.compile(r"^[A-Z]{1,2}-\d{4}$")


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    radius_km = 6371.0088
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    d_phi = phi2 - phi1
    d_lambda = math.radians(lon2 - lon1)
    a = math.sin(d_phi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(d_lambda / 2) ** 2
    return 2 * radius_km * math.asin(math.sqrt(a))


def unit_of(affiliation: str) -> str | None:
    """The 分団 of an affiliation label, or None for 団本部."""
    if affiliation == "団本部":
        return None
    return affiliation.split(" ")[0]


@pytest.fixture(scope="module")
def members() -> list[DemoMember]:
    return generate_members(today=TODAY)


@pytest.fixture(scope="module")
def sources() -> list[DemoWaterSource]:
    return generate_water_sources(today=TODAY)


# ---------------------------------------------------------------------------
# Module hygiene
# ---------------------------------------------------------------------------


def test_module_imports_only_the_standard_library_and_the_vocabulary() -> None:
    """Every file of the demo_data package: the standard library, the vocabulary in models, and
    the package's own parts."""
    package = Path(demo_data.__file__).parent
    trees = [ast.parse(path.read_text(encoding="utf-8")) for path in package.glob("*.py")]
    imported: set[str] = set()
    own = {f"services.demo_data.{path.stem}" for path in package.glob("*.py")}
    for node in (node for tree in trees for node in ast.walk(tree)):
        if isinstance(node, ast.ImportFrom) and node.module in own:
            continue
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "relative imports are not allowed"
            imported.add((node.module or "").split(".")[0])
    assert imported <= set(sys.stdlib_module_names) | {"__future__", "models"}


def test_constants() -> None:
    assert RANKS == ("団長", "副団長", "分団長", "副分団長", "部長", "班長", "団員")
    assert tuple(f"第{n}分団" for n in range(1, 7)) == DEMO_UNITS
    assert set(DEMO_UNIT_SECTIONS) == set(DEMO_UNITS)
    assert all(2 <= sections <= 3 for sections in DEMO_UNIT_SECTIONS.values())
    assert all(rank in RANKS for rank in DEMO_ROLES.values())
    assert DEMO_BRIGADE["center"] == (36.4020, 138.2490)
    assert len(WATER_SOURCE_KINDS) == 10
    assert set(HYDRANT_KINDS) == {"消火栓", "私設消火栓"}


# ---------------------------------------------------------------------------
# Members
# ---------------------------------------------------------------------------


def test_members_are_deterministic() -> None:
    assert generate_members(today=TODAY) == generate_members(today=TODAY)
    assert generate_members(seed=7, today=TODAY) == generate_members(seed=7, today=TODAY)
    assert generate_members(seed=7, today=TODAY) != generate_members(seed=8, today=TODAY)


@pytest.mark.parametrize("count", [150, 60, 90, 300])
def test_member_count(count: int) -> None:
    assert len(generate_members(count=count, today=TODAY)) == count


def test_member_count_too_small_is_rejected() -> None:
    minimum = demo_data.minimum_member_count()
    assert len(generate_members(count=minimum, today=TODAY)) == minimum
    with pytest.raises(ValueError):
        generate_members(count=minimum - 1, today=TODAY)


@pytest.mark.parametrize("seed", SEEDS)
def test_member_fields_are_unique(seed: int) -> None:
    roster = generate_members(seed=seed, today=TODAY)
    for field in ("member_code", "name", "phone", "email"):
        values = [getattr(m, field) for m in roster]
        assert len(values) == len(set(values)), field
    assert [m.member_code for m in roster] == [f"M{i:04d}" for i in range(1, len(roster) + 1)]


@pytest.mark.parametrize("seed", SEEDS)
def test_member_field_formats(seed: int) -> None:
    roster = generate_members(seed=seed, today=TODAY)
    for m in roster:
        family, given = m.name.split("\u3000")
        assert family and given and " " not in m.name
        assert KATAKANA_NAME.match(m.kana), m.kana
        assert PHONE.match(m.phone), m.phone
        match = EMAIL.match(m.email)
        assert match, m.email
        assert match.group(1) in DEMO_EMAIL_DOMAINS
        assert m.email.isascii()
        assert m.rank in RANKS
        assert m.status in ("active", "suspended", "retired")
        assert datetime.date(1990, 1, 1) <= m.joined_on <= TODAY - datetime.timedelta(days=30)


def test_member_names_include_variant_characters(members: list[DemoMember]) -> None:
    assert any(ch in m.name for m in members for ch in "髙﨑𠮷濵")


@pytest.mark.parametrize("seed", SEEDS)
def test_rank_structure(seed: int) -> None:
    roster = generate_members(seed=seed, today=TODAY)
    ranks = Counter(m.rank for m in roster)
    assert ranks["団長"] == 1
    assert ranks["副団長"] == 2
    assert ranks["分団長"] == len(DEMO_UNITS)
    assert ranks["副分団長"] == len(DEMO_UNITS)
    assert ranks["団員"] > len(roster) // 2

    top = [m for m in roster if m.rank in ("団長", "副団長")]
    assert all(m.affiliation == "団本部" for m in top)

    for unit in DEMO_UNITS:
        in_unit = [m for m in roster if unit_of(m.affiliation) == unit]
        unit_ranks = Counter(m.rank for m in in_unit)
        assert unit_ranks["分団長"] == 1, unit
        assert unit_ranks["副分団長"] == 1, unit
        assert 2 <= unit_ranks["部長"] <= 3, unit
        assert 2 <= unit_ranks["班長"] <= 6, unit
        assert unit_ranks["団長"] == unit_ranks["副団長"] == 0


@pytest.mark.parametrize("seed", SEEDS)
def test_affiliations(seed: int) -> None:
    for m in generate_members(seed=seed, today=TODAY):
        if m.affiliation == "団本部" or m.affiliation in DEMO_UNITS:
            continue
        match = SECTION.match(m.affiliation)
        assert match, m.affiliation
        unit, section = match.group(1), int(match.group(2))
        assert unit in DEMO_UNITS
        assert 1 <= section <= DEMO_UNIT_SECTIONS[unit]


@pytest.mark.parametrize("seed", SEEDS)
def test_roles(seed: int) -> None:
    roster = generate_members(seed=seed, today=TODAY)
    for m in roster:
        assert all(role in DEMO_ROLES for role in m.roles), m.roles
        assert len(m.roles) == len(set(m.roles))

    def holders(role: str) -> list[DemoMember]:
        return [m for m in roster if role in m.roles]

    assert [m.affiliation for m in holders("会計")] == ["団本部"]
    assert [m.affiliation for m in holders("庶務")] == ["団本部"]
    assert all(m.rank == "副団長" for m in holders("方面隊長"))

    operators = Counter(unit_of(m.affiliation) for m in holders("機関員"))
    assert set(operators) == set(DEMO_UNITS)
    assert all(1 <= n <= 3 for n in operators.values())

    functional = holders("機能別団員")
    assert 3 <= len(functional) <= 10
    assert all(m.rank == "団員" and m.notes.startswith("機能別団員（") for m in functional)
    notes = {m.notes for m in functional}
    assert {"機能別団員（郵便局）", "機能別団員（大学生）", "機能別団員（OB）"} <= notes


def test_statuses(members: list[DemoMember]) -> None:
    statuses = Counter(m.status for m in members)
    assert statuses["suspended"] == 5
    assert statuses["retired"] == 5
    assert statuses["active"] == len(members) - 10
    inactive = [m for m in members if m.status != "active"]
    assert all(m.rank == "団員" and m.roles == () and m.notes for m in inactive)


def test_leaders_joined_earlier_than_members(members: list[DemoMember]) -> None:
    chief = next(m for m in members if m.rank == "団長")
    regular = sorted(m.joined_on for m in members if m.rank == "団員")
    assert chief.joined_on < regular[len(regular) // 2]


def test_members_depend_on_today() -> None:
    later = datetime.date(2030, 4, 1)
    roster = generate_members(today=later)
    assert max(m.joined_on for m in roster) <= later - datetime.timedelta(days=30)


# ---------------------------------------------------------------------------
# Water sources
# ---------------------------------------------------------------------------


def test_water_sources_are_deterministic() -> None:
    assert generate_water_sources(today=TODAY) == generate_water_sources(today=TODAY)
    assert generate_water_sources(seed=3, today=TODAY) != generate_water_sources(
        seed=4, today=TODAY
    )


@pytest.mark.parametrize("count", [400, 0, 1, 37, 1000])
def test_water_source_count(count: int) -> None:
    assert len(generate_water_sources(count=count, today=TODAY)) == count


@pytest.mark.parametrize("seed", SEEDS)
def test_water_source_codes_are_unique(seed: int) -> None:
    codes = [s.code for s in generate_water_sources(seed=seed, today=TODAY)]
    assert len(codes) == len(set(codes))
    assert all(WATER_CODE.match(code) for code in codes)


def test_hydrant_and_cistern_code_prefixes(sources: list[DemoWaterSource]) -> None:
    assert all(s.code.startswith("H-") for s in sources if s.kind == "消火栓")
    assert all(s.code.startswith("T-") for s in sources if s.kind == "防火水槽")
    assert any(s.code == "H-0001" for s in sources)


def test_kind_mix(sources: list[DemoWaterSource]) -> None:
    kinds = Counter(s.kind for s in sources)
    assert set(kinds) <= set(WATER_SOURCE_KINDS)
    assert kinds["海・湖"] == 0
    share = {kind: n / len(sources) for kind, n in kinds.items()}
    assert 0.55 <= share["消火栓"] <= 0.65
    assert 0.05 <= share["私設消火栓"] <= 0.11
    assert 0.15 <= share["防火水槽"] <= 0.21
    for kind in ("プール", "河川・溝", "濠・池", "井戸", "その他"):
        assert 0 < share[kind] <= 0.06, kind
    assert share.get("下水道", 0) <= 0.01


@pytest.mark.parametrize("seed", SEEDS)
def test_kind_specific_fields(seed: int) -> None:
    for s in generate_water_sources(seed=seed, today=TODAY):
        assert s.kind in WATER_SOURCE_KINDS
        if s.kind in HYDRANT_KINDS:
            assert s.main_diameter_mm in (75, 100, 150, 200)
            assert s.hydrant_type in ("地上式", "地下式")
            assert s.capacity_m3 is None
            assert s.drop_m is None and s.depth_m is None
        else:
            assert s.main_diameter_mm is None, s
            assert s.hydrant_type is None, s
        if s.kind == "防火水槽":
            assert s.capacity_m3 is not None and 20 <= s.capacity_m3 <= 100
        if s.kind == "プール":
            assert s.capacity_m3 is not None and 200 <= s.capacity_m3 <= 500
        if s.kind in ("防火水槽", "プール", "河川・溝", "濠・池", "井戸"):
            assert s.drop_m is not None and s.drop_m > 0
            assert s.depth_m is not None and s.depth_m > 0


def test_most_cisterns_hold_at_least_40_m3(sources: list[DemoWaterSource]) -> None:
    capacities = [s.capacity_m3 for s in sources if s.kind == "防火水槽"]
    assert capacities
    assert sum(1 for c in capacities if c is not None and c >= 40) > 0.7 * len(capacities)


@pytest.mark.parametrize("seed", SEEDS)
def test_coordinates_near_center(seed: int) -> None:
    lat0, lon0 = DEMO_BRIGADE["center"]
    for s in generate_water_sources(seed=seed, today=TODAY):
        assert haversine_km(lat0, lon0, s.latitude, s.longitude) <= 5.0, s
        assert round(s.latitude, 6) == s.latitude
        assert round(s.longitude, 6) == s.longitude


def test_units_own_separate_areas(sources: list[DemoWaterSource]) -> None:
    assert {s.unit for s in sources} == set(DEMO_UNITS)
    lat0, lon0 = DEMO_BRIGADE["center"]
    central = [s for s in sources if s.unit == "第1分団"]
    outer = [s for s in sources if s.unit != "第1分団"]
    assert max(haversine_km(lat0, lon0, s.latitude, s.longitude) for s in central) < min(
        haversine_km(lat0, lon0, s.latitude, s.longitude) for s in outer
    )
    # The unit north of the centre lies north of the one to the south.
    north = [s.latitude for s in sources if s.unit == "第2分団"]
    south = [s.latitude for s in sources if s.unit == "第5分団"]
    assert sum(north) / len(north) > sum(south) / len(south)


def test_other_fields(sources: list[DemoWaterSource]) -> None:
    for s in sources:
        assert s.ownership in ("public", "private", "designated")
        assert s.status in ("使用可", "使用不可", "点検中")
        assert s.address.startswith("デモ市")
        assert isinstance(s.memo, str)
    statuses = Counter(s.status for s in sources)
    assert statuses["使用可"] > 0.8 * len(sources)
    assert statuses["使用不可"] > 0
    assert all(s.ownership == "public" for s in sources if s.kind == "消火栓")
    assert all(s.ownership == "private" for s in sources if s.kind == "私設消火栓")
    assert sum(1 for s in sources if s.memo == "") > len(sources) / 3


def test_some_sources_are_overdue(sources: list[DemoWaterSource]) -> None:
    overdue = [
        s
        for s in sources
        if s.last_inspected_on is None or (TODAY - s.last_inspected_on).days > 365
    ]
    assert 0 < len(overdue) < len(sources) / 2
    assert any(s.last_inspected_on is None for s in sources)
    dates = [s.last_inspected_on for s in sources if s.last_inspected_on is not None]
    assert all(d <= TODAY for d in dates)
