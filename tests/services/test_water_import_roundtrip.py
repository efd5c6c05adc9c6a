"""Export → import is the identity: hypothesis-generated sources (Japanese text, emoji, cells
starting with = + - @ or ', quotes, commas and line breaks inside fields, exact floats) come back
identical, in UTF-8 with a BOM and, where the text is representable, in CP932. The same rows
import identically from UTF-8, UTF-8 with a BOM and CP932."""

from __future__ import annotations

import string
from datetime import date
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from models.enums import OWNERSHIPS, WATER_SOURCE_KINDS, WATER_SOURCE_STATUSES
from models.water import WaterSourceCreate
from services import water_import, water_sources
from services.imports import MissingRows, RowStatus
from tests.factories import admin, make_tenant
from tests.fixtures.water_files import layout_file, stored

TODAY = water_sources.today_jst()
TRICKY = "=+-@'\",;、。　 " + string.ascii_letters[:6] + string.digits[:4]
JAPANESE = "消防水利本町栄髙①㈱～ｶﾀｶﾅあいうえお漢字"
EMOJI = "🚒🔥💧"
LINE_BREAKS = "\n\r\t"


def _cp932_safe(char: str) -> bool:
    try:
        return char.encode("cp932").decode("cp932") == char
    except UnicodeError:
        return False


def _unicode(multiline: bool) -> st.SearchStrategy[str]:
    wide = st.characters(blacklist_categories=("Cc", "Cs", "Co", "Zl", "Zp"))
    fixed = st.sampled_from(TRICKY + JAPANESE + EMOJI + (LINE_BREAKS if multiline else ""))
    return st.text(st.one_of(fixed, wide), max_size=30)


def _cp932(multiline: bool) -> st.SearchStrategy[str]:
    chars = [c for c in TRICKY + JAPANESE + (LINE_BREAKS if multiline else "") if _cp932_safe(c)]
    return st.text(st.sampled_from(chars), max_size=30)


def _maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(st.none(), strategy)


def _positive(high: float) -> st.SearchStrategy[float]:
    return st.floats(min_value=0, max_value=high, exclude_min=True)


@st.composite
def water_source(draw: st.DrawFn, text: Any) -> dict[str, Any]:
    kind = draw(st.sampled_from(WATER_SOURCE_KINDS))
    hydrant = kind in ("消火栓", "私設消火栓")
    placed = draw(st.booleans())
    values = {
        "code": draw(st.from_regex(r"[A-Za-z0-9_-]{1,12}", fullmatch=True)),
        "kind": kind,
        "ownership": draw(st.sampled_from(sorted(OWNERSHIPS))),
        "latitude": draw(st.floats(20.0, 46.0)) if placed else None,
        "longitude": draw(st.floats(122.0, 154.5)) if placed else None,
        "address": draw(text(False)),
        "unit": draw(text(False)),
        "supply_m3_per_min": draw(_maybe(_positive(1_000))),
        "supply_minutes": draw(_maybe(st.integers(1, 100_000))),
        "grade_override": draw(st.sampled_from((None, "基準", "参考"))),
        "grade_override_reason": draw(text(False)),
        "status": draw(st.sampled_from(WATER_SOURCE_STATUSES)),
        "memo": draw(text(True)),
        "last_inspected_on": draw(_maybe(st.dates(date(1950, 1, 1), TODAY))),
        "inspection_interval_days": draw(st.integers(1, 3_650)),
    }
    if hydrant:
        values["main_diameter_mm"] = draw(_maybe(st.integers(25, 3_000)))
        values["hydrant_type"] = draw(st.sampled_from((None, "地上式", "地下式")))
    else:
        values["capacity_m3"] = draw(_maybe(_positive(1_000_000)))
        values["drop_m"] = draw(_maybe(st.floats(0, 100)))
        values["depth_m"] = draw(_maybe(_positive(100)))
    return values


def _sources(text: Any) -> st.SearchStrategy[list[dict[str, Any]]]:
    return st.lists(
        water_source(text), min_size=1, max_size=4, unique_by=lambda s: s["code"].casefold()
    )


def _round_trip(sources: list[dict[str, Any]], encoding: str) -> None:
    origin, copy = make_tenant(), make_tenant()
    water_sources.add_water_sources(admin(origin), [WaterSourceCreate(**s) for s in sources])
    data = water_import.export_water_csv(admin(origin), encoding=encoding)
    found = water_import.preview_water_import(admin(copy), data=data, filename="w.csv")
    assert found.ready, (found.file_errors, found.errors)
    water_import.apply_water_import(admin(copy), found, missing=MissingRows.KEEP)
    assert stored(copy) == stored(origin)
    again = water_import.preview_water_import(admin(origin), data=data, filename="w.csv")
    assert {row.status for row in again.rows} == {RowStatus.UNCHANGED}


ROUND_TRIP = settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@ROUND_TRIP
@given(sources=_sources(_unicode))
def test_round_trip_utf8_with_bom(engine, sources):
    _round_trip(sources, "utf-8")


@ROUND_TRIP
@given(sources=_sources(_cp932))
def test_round_trip_cp932(engine, sources):
    _round_trip(sources, "cp932")


ROWS = [
    {
        "code": "ENC-1",
        "kind": "防火水そう",
        "address": "髙橋町①番地　㈱消防ビル",
        "unit": "第１分団",
        "memo": 'ｶﾀｶﾅ～メモ\r\n2行目, "引用"',
        "capacity_m3": "４０",
    },
    {"code": "ENC-2", "kind": "公設消火栓", "memo": "=SUM(A1)", "main_diameter_mm": "φ75"},
]


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "cp932"])
def test_encodings_import_identically(tenant, encoding):
    reference = water_import.preview_water_import(
        admin(tenant), data=layout_file(ROWS, encoding="utf-8-sig"), filename="w.csv"
    )
    found = water_import.preview_water_import(
        admin(tenant), data=layout_file(ROWS, encoding=encoding), filename="w.csv"
    )
    assert found.ready
    assert [(r.row, r.code, r.status, r.raw) for r in found.rows] == [
        (r.row, r.code, r.status, r.raw) for r in reference.rows
    ]
    water_import.apply_water_import(admin(tenant), found, missing=MissingRows.KEEP)
    first = stored(tenant)["ENC-1"]
    assert first["address"] == "髙橋町①番地　㈱消防ビル"
    assert first["memo"] == 'ｶﾀｶﾅ～メモ\r\n2行目, "引用"'
    assert (first["unit"], first["capacity_m3"], first["kind"]) == ("第1分団", 40.0, "防火水槽")
    assert stored(tenant)["ENC-2"]["memo"] == "=SUM(A1)"
