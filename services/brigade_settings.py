"""Per-brigade water-map settings: the coverage radius of the standard (per brigade, and per 分団
where it differs) and the brigade's area for the "outside the area" warning."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlmodel import select

from core.access import Need, unit_of
from core.actor import Actor
from models import Member
from models.base import utcnow
from models.enums import Function, Level, MemberStatus
from models.water import BrigadeSettings, WaterSource
from services import bulk_guard, geo
from services.base import Tx, scoped, transaction
from services.errors import Conflict, ValidationError
from services.validation import clean

# 消防水利の基準 第4条: 100 m (商業・工業系), 120 m (その他の用途地域), 140 m (市街地に準ずる地域);
# 80 m and 100 m where the mean annual wind speed is 4 m/s or more.
COVERAGE_RADII_M: tuple[int, ...] = (80, 100, 120, 140)
DEFAULT_RADIUS_M = 120
DEFAULT_AREA_RADIUS_KM = 10.0
TABLE = "brigade_settings"


@dataclass(frozen=True)
class WaterMapSettings:
    coverage_radius_m: int = DEFAULT_RADIUS_M
    unit_coverage_radii: dict[str, int] = field(default_factory=dict)
    area_center: tuple[float, float] | None = None
    area_center_derived: bool = True
    area_radius_km: float = DEFAULT_AREA_RADIUS_KM
    version: int = 0  # 0: no settings saved yet

    def radius_for(self, unit: str) -> int:
        """The 担当分団's distance: its own, else its 分団's (「第1分団 第2部」 → 「第1分団」),
        else the brigade's."""
        radii = self.unit_coverage_radii
        return radii.get(unit, radii.get(unit_of(unit), self.coverage_radius_m))

    def outside_area(self, lat: float | None, lon: float | None) -> bool:
        if lat is None or lon is None or self.area_center is None:
            return False
        distance = geo.haversine_m(lat, lon, *self.area_center)
        return distance > self.area_radius_km * 1000


def get_water_map_settings(actor: Actor) -> WaterMapSettings:
    with transaction(
        actor,
        Need(Function.WATER_SOURCES, Level.VIEW),
        action="brigade_settings.get",
        read_only=True,
    ) as tx:
        return settings_in(tx)


def update_water_map_settings(
    actor: Actor,
    *,
    coverage_radius_m: int,
    unit_coverage_radii: dict[str, int] | None = None,
    area_center_lat: float | None = None,
    area_center_lon: float | None = None,
    area_radius_km: float = DEFAULT_AREA_RADIUS_KM,
    expected_version: int,
) -> WaterMapSettings:
    """Optimistic concurrency as for members: version 0 means "no settings saved yet"."""
    with transaction(
        actor, Need(Function.SETTINGS, Level.EDIT), action="brigade_settings.update"
    ) as tx:
        row = _row_at(tx, expected_version)
        before = settings_in(tx)
        values = _validated(
            coverage_radius_m,
            unit_coverage_radii or {},
            area_center_lat,
            area_center_lon,
            area_radius_km,
        )
        # only 分団 the brigade has (#18); one already saved may stay after it went
        known = units_in(tx) | set(before.unit_coverage_radii)
        if unknown := sorted(set(values["unit_coverage_radii"]) - known):
            raise ValidationError(
                {
                    "unit_coverage_radii": f"分団「{'」「'.join(unknown)}」はありません。"
                    "団員の所属か消防水利の担当分団にある分団を選んでください。"
                }
            )
        for name, value in values.items():
            setattr(row, name, value)
        _save(tx, row)
        after = settings_in(tx)
        tx.audit(
            "brigade_settings.update",
            target_type=TABLE,
            target_id=tx.tenant_id,
            details={"before": _summary(before), "after": _summary(after)},
        )
        tx.commit()
        return after


def _row_at(tx: Tx, expected_version: int) -> BrigadeSettings:
    """The brigade's settings row to change (a new one when none is saved: version 0), if it is
    still at the version the page read; optimistic concurrency as for members."""
    row = tx.session.get(BrigadeSettings, tx.tenant_id)
    if (row.version if row else 0) != expected_version:
        raise Conflict()
    return row or BrigadeSettings(tenant_id=tx.tenant_id, version=0)


def _save(tx: Tx, row: BrigadeSettings) -> None:
    row.version += 1
    row.updated_at = utcnow()
    tx.session.add(row)
    tx.session.flush()


def settings_in(tx: Tx, positions: Sequence[tuple[float, float]] | None = None) -> WaterMapSettings:
    """The tenant's settings inside a transaction. Without a saved centre, the centre is the
    median of the sources' positions (given, or read here)."""
    row = tx.session.get(BrigadeSettings, tx.tenant_id)
    if row is not None and row.area_center_lat is not None and row.area_center_lon is not None:
        centre, derived = (row.area_center_lat, row.area_center_lon), False
    else:
        if positions is None:
            positions = _positions(tx)
        centre, derived = geo.centre(positions), True
    if row is None:
        return WaterMapSettings(area_center=centre)
    return WaterMapSettings(
        coverage_radius_m=row.coverage_radius_m,
        unit_coverage_radii=dict(row.unit_coverage_radii or {}),
        area_center=centre,
        area_center_derived=derived,
        area_radius_km=row.area_radius_km,
        version=row.version,
    )


def bulk_limits_in(tx: Tx) -> bulk_guard.Limits:
    """The brigade's limits for safe bulk changes (団設定), else the defaults."""
    row = tx.session.get(BrigadeSettings, tx.tenant_id)
    if row is None:
        return bulk_guard.DEFAULT
    return bulk_guard.Limits(rows=row.bulk_confirm_rows, percent=row.bulk_confirm_percent)


def update_bulk_limits(
    actor: Actor, *, rows: int, percent: int, expected_version: int
) -> bulk_guard.Limits:
    """Above min(rows, percent % of the records) an import or a restore that retires or deletes
    needs the brigade's name typed. Audited with before and after."""
    errors = {}
    if not bulk_guard.ROWS_RANGE[0] <= rows <= bulk_guard.ROWS_RANGE[1]:
        errors["bulk_confirm_rows"] = "件数は 1〜1,000 で入力してください。"
    if not bulk_guard.PERCENT_RANGE[0] <= percent <= bulk_guard.PERCENT_RANGE[1]:
        errors["bulk_confirm_percent"] = "割合は 1〜100 % で入力してください。"
    if errors:
        raise ValidationError(errors)
    with transaction(
        actor, Need(Function.SETTINGS, Level.EDIT), action="brigade_settings.update"
    ) as tx:
        row = _row_at(tx, expected_version)
        before = bulk_limits_in(tx)
        row.bulk_confirm_rows, row.bulk_confirm_percent = rows, percent
        _save(tx, row)
        tx.audit(
            "brigade_settings.update",
            target_type=TABLE,
            target_id=tx.tenant_id,
            details={
                "before": {"bulk_confirm": before.text},
                "after": {"bulk_confirm": f"{rows}件または{percent}%"},
            },
        )
        tx.commit()
        return bulk_guard.Limits(rows=rows, percent=percent)


@dataclass(frozen=True)
class SettingsPage:
    """What 団設定 shows, read in one transaction at 団設定 閲覧."""

    map: WaterMapSettings
    units: list[str]  # natural order: 第2分団 before 第10分団
    limits: bulk_guard.Limits
    version: int


def settings_page(actor: Actor) -> SettingsPage:
    with transaction(
        actor, Need(Function.SETTINGS, Level.VIEW), action="brigade_settings.get", read_only=True
    ) as tx:
        settings = settings_in(tx)
        return SettingsPage(settings, known_units_in(tx), bulk_limits_in(tx), settings.version)


def known_units_in(tx: Tx) -> list[str]:
    """The brigade's 分団, for choosing one in the settings: units_in, in natural order."""
    return sorted(units_in(tx), key=_natural)


def _natural(unit: str) -> tuple[int, str]:
    number = re.search(r"\d+", unit)
    return (int(number.group()) if number else 1 << 30, unit)


def units_in(tx: Tx) -> set[str]:
    """分団 the brigade has: those of its active members' 所属 (「第1分団 第2部」 → 「第1分団」)
    and its water sources' 担当分団 as written (radius_for matches either)."""
    affiliations = tx.session.exec(
        scoped(select(Member.affiliation), tx.actor).where(Member.status != MemberStatus.RETIRED)
    ).all()
    sources = tx.session.exec(scoped(select(WaterSource.unit), tx.actor).distinct()).all()
    return {u for a in affiliations if (u := unit_of(a))} | {clean(u) for u in sources if u}


def _positions(tx: Tx) -> list[tuple[float, float]]:
    query = scoped(select(WaterSource.latitude, WaterSource.longitude), tx.actor).where(
        WaterSource.latitude.is_not(None), WaterSource.longitude.is_not(None)
    )
    return [(lat, lon) for lat, lon in tx.session.exec(query).all()]


def _validated(
    radius: int,
    unit_radii: dict[str, int],
    lat: float | None,
    lon: float | None,
    area_radius_km: float,
) -> dict:
    errors: dict[str, str] = {}
    choices = "・".join(f"{r}m" for r in COVERAGE_RADII_M)
    if radius not in COVERAGE_RADII_M:
        errors["coverage_radius_m"] = f"基準の距離は {choices} から選んでください。"
    units = {clean(unit): r for unit, r in unit_radii.items()}
    if (
        "" in units
        or len(units) != len(unit_radii)
        or any(len(u) > 100 or "\x00" in u for u in units)
    ):
        errors["unit_coverage_radii"] = (
            "分団名が空、重複、100文字超、または使用できない文字を含みます。"
        )
    elif any(r not in COVERAGE_RADII_M for r in units.values()):
        errors["unit_coverage_radii"] = f"分団ごとの距離も {choices} から選んでください。"
    if (lat is None) != (lon is None):
        errors["area_center"] = "区域の中心は緯度と経度を両方入力してください（空欄なら自動）。"
    elif lat is not None and lon is not None and not geo.in_japan(lat, lon):
        errors["area_center"] = "区域の中心は日本国内の座標を入力してください。"
    if not 0.5 <= area_radius_km <= 100:
        errors["area_radius_km"] = "区域の半径は 0.5〜100 km で入力してください。"
    if errors:
        raise ValidationError(errors)
    return {
        "coverage_radius_m": radius,
        "unit_coverage_radii": units,
        "area_center_lat": lat,
        "area_center_lon": lon,
        "area_radius_km": float(area_radius_km),
    }


def _summary(settings: WaterMapSettings) -> dict:
    return {
        "coverage_radius_m": settings.coverage_radius_m,
        "unit_coverage_radii": settings.unit_coverage_radii,
        "area_center": None if settings.area_center_derived else settings.area_center,
        "area_radius_km": settings.area_radius_km,
    }
