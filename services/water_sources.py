"""Water-source (消防水利) registry and inspections: every call checks the permission, scopes to the
tenant and writes its change and one audit event in the same transaction."""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import date
from functools import lru_cache
from types import SimpleNamespace
from typing import Any

from sqlalchemy import func
from sqlmodel import select

from core.access import Need, allows
from core.actor import Actor
from core.timefmt import today_jst
from formats import water_csv
from models import Member
from models.base import utcnow
from models.enums import (
    HYDRANT_KINDS,
    OWNERSHIPS,
    WATER_SOURCE_KINDS,
    WATER_SOURCE_STATUSES,
    Function,
    Level,
    MemberStatus,
)
from models.water import (
    WaterInspection,
    WaterInspectionCreate,
    WaterInspectionPublic,
    WaterSource,
    WaterSourceBase,
    WaterSourceCreate,
    WaterSourcePublic,
    WaterSourceUpdate,
)
from services import geo, water_rules
from services import validation as v
from services.base import Tx, scoped, transaction
from services.brigade_settings import WaterMapSettings, settings_in
from services.errors import Conflict, NotFound, ValidationError

TABLE = "water_source"
HYDRANT_TYPES = ("地上式", "地下式")
USABLE = "使用可"
EARLIEST_DATE = date(1950, 1, 1)
BASE_FIELDS = tuple(WaterSourceBase.model_fields)
EDITABLE_FIELDS = tuple(WaterSourceUpdate.model_fields)
# Reading columns rather than entities makes listing 20 000 sources several times faster.
PUBLIC_COLUMNS = tuple(
    getattr(WaterSource, name) for name in (*BASE_FIELDS, "id", "version", "updated_at")
)
# (field, label, lowest, highest, whether the lowest itself is allowed)
NUMBER_RANGES: tuple[tuple[str, str, float, float, bool], ...] = (
    ("capacity_m3", "容量（m³）", 0, 1_000_000, False),
    ("supply_m3_per_min", "毎分の取水量（m³）", 0, 1_000, False),
    ("supply_minutes", "取水の継続時間（分）", 0, 100_000, False),
    ("main_diameter_mm", "配水管の口径（mm）", 25, 3_000, True),
    ("drop_m", "落差（m）", 0, 100, True),
    ("depth_m", "水深（m）", 0, 100, False),
    ("inspection_interval_days", "点検周期（日）", 1, 3_650, True),
)
NOT_FOR_HYDRANTS = {"capacity_m3": "容量", "drop_m": "落差", "depth_m": "水深"}


@dataclass(frozen=True)
class WaterSourceFilter:
    kinds: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()
    units: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()  # メモ values, matched exactly
    grades: tuple[str, ...] = ()
    text: str = ""  # part of the code, address or メモ
    overdue_only: bool = False


@dataclass(frozen=True)
class NearbySource:
    source: WaterSourcePublic
    distance_m: float
    radius_m: int

    @property
    def covers(self) -> bool:
        return self.distance_m <= self.radius_m


@dataclass(frozen=True)
class InspectorOption:
    member_id: uuid.UUID
    label: str


@dataclass(frozen=True)
class Registry:
    """The tenant's sources (filtered) with the settings they were computed under."""

    sources: list[WaterSourcePublic]
    settings: WaterMapSettings


# -- reading -----------------------------------------------------------------------------------


def load_registry(
    actor: Actor, filters: WaterSourceFilter | None = None, *, today: date | None = None
) -> Registry:
    with transaction(actor, Function.WATER_SOURCES, Level.VIEW, "water_source.list") as tx:
        return _registry(tx, filters, today)


def _registry(tx: Tx, filters: WaterSourceFilter | None, today: date | None) -> Registry:
    rows = tx.session.exec(scoped(select(*PUBLIC_COLUMNS), tx.actor)).all()
    positions = [
        (r.latitude, r.longitude)
        for r in rows
        if r.latitude is not None and r.longitude is not None
    ]
    settings = settings_in(tx, positions)
    today = today or today_jst()
    sources = sorted((_public(row, settings, today) for row in rows), key=lambda s: s.code)
    return Registry(filter_sources(sources, filters or WaterSourceFilter()), settings)


def list_water_sources(
    actor: Actor, filters: WaterSourceFilter | None = None, *, today: date | None = None
) -> list[WaterSourcePublic]:
    return load_registry(actor, filters, today=today).sources


def registry_stamp(actor: Actor) -> str:
    """Changes whenever a source, an inspection or the settings change: a cache key."""
    with transaction(actor, Function.WATER_SOURCES, Level.VIEW, "water_source.stamp") as tx:
        count, latest = tx.session.exec(
            scoped(select(func.count(WaterSource.id), func.max(WaterSource.updated_at)), actor)
        ).one()
        settings = settings_in(tx, positions=[])
    return f"{count}:{latest}:{settings.version}"


def get_water_source(
    actor: Actor, source_id: uuid.UUID, *, today: date | None = None
) -> WaterSourcePublic:
    with transaction(actor, Function.WATER_SOURCES, Level.VIEW, "water_source.get") as tx:
        return _public(_load(tx, source_id), settings_in(tx), today or today_jst())


def filter_sources(
    sources: Iterable[WaterSourcePublic], filters: WaterSourceFilter
) -> list[WaterSourcePublic]:
    needle = v.clean(filters.text).lower()
    tests: list[Callable[[WaterSourcePublic], bool]] = []
    for values, name in (
        (filters.kinds, "kind"),
        (filters.statuses, "status"),
        (filters.units, "unit"),
        (filters.labels, "memo"),
        (filters.grades, "grade"),
    ):
        if values:
            tests.append(lambda s, wanted=set(values), name=name: getattr(s, name) in wanted)
    if filters.overdue_only:
        tests.append(lambda s: s.overdue)
    if needle:
        tests.append(
            lambda s: needle in s.code.lower() or needle in s.address or needle in s.memo.lower()
        )
    return [s for s in sources if all(test(s) for test in tests)]


def nearest_usable_in(
    sources: Sequence[WaterSourcePublic],
    settings: WaterMapSettings,
    latitude: float,
    longitude: float,
    n: int = 5,
) -> list[NearbySource]:
    """The n usable (使用可) sources closest to a point, closest first."""
    usable = [s for s in sources if s.status == USABLE]
    return [
        NearbySource(hit.item, hit.distance_m, settings.radius_for(hit.item.unit))
        for hit in geo.nearest(usable, latitude, longitude, n)
    ]


def covering_usable_in(
    sources: Sequence[WaterSourcePublic],
    settings: WaterMapSettings,
    latitude: float,
    longitude: float,
) -> list[NearbySource]:
    """The usable sources whose coverage circle (the standard's radius) contains the point."""
    usable = [s for s in sources if s.status == USABLE]
    return [
        NearbySource(hit.item, hit.distance_m, settings.radius_for(hit.item.unit))
        for hit in geo.covering(usable, latitude, longitude, lambda s: settings.radius_for(s.unit))
    ]


def nearest_usable(
    actor: Actor, *, latitude: float, longitude: float, n: int = 5
) -> list[NearbySource]:
    _check_point(latitude, longitude)
    registry = load_registry(actor)
    return nearest_usable_in(registry.sources, registry.settings, latitude, longitude, n)


def sources_covering(actor: Actor, *, latitude: float, longitude: float) -> list[NearbySource]:
    _check_point(latitude, longitude)
    registry = load_registry(actor)
    return covering_usable_in(registry.sources, registry.settings, latitude, longitude)


def export_water_sources_csv(
    actor: Actor, filters: WaterSourceFilter | None = None, *, today: date | None = None
) -> bytes:
    """The filtered list as CSV (UTF-8 with BOM, formula cells neutralised); the export is
    audited."""
    with transaction(actor, Function.WATER_SOURCES, Level.VIEW, "water_source.export") as tx:
        sources = _registry(tx, filters, today).sources
        tx.audit(
            "water_source.export",
            target_type=TABLE,
            details={"count": len(sources), "filters": asdict(filters or WaterSourceFilter())},
        )
    return water_csv.encode_list(sources)


# -- writing -----------------------------------------------------------------------------------


def create_water_source(actor: Actor, *, data: WaterSourceCreate) -> WaterSourcePublic:
    with transaction(actor, Function.WATER_SOURCES, Level.EDIT, "water_source.create") as tx:
        values = _validated(tx, data.model_dump())
        source = WaterSource(tenant_id=tx.tenant_id, **values)
        tx.session.add(source)
        tx.session.flush()
        after = _public(source, settings_in(tx), today_jst())
        tx.audit(
            "water_source.create",
            target_type=TABLE,
            target_id=source.id,
            details={"code": source.code, "after": _summary(after)},
        )
        return after


def update_water_source(
    actor: Actor, source_id: uuid.UUID, *, data: WaterSourceUpdate, expected_version: int
) -> WaterSourcePublic:
    """Optimistic concurrency: a stale expected_version raises Conflict and changes nothing."""
    with transaction(actor, Function.WATER_SOURCES, Level.EDIT, "water_source.update") as tx:
        source = _load(tx, source_id)
        if source.version != expected_version:
            raise Conflict()
        before = _summary(source)
        merged = {name: getattr(source, name) for name in BASE_FIELDS}
        merged |= data.model_dump(exclude_unset=True)
        values = _validated(tx, merged, source_id=source.id)
        for name in EDITABLE_FIELDS:
            setattr(source, name, values[name])
        after = _save(tx, source)
        now = _summary(after)
        changed = [name for name in BASE_FIELDS if before[name] != now[name]]
        tx.audit(
            "water_source.update",
            target_type=TABLE,
            target_id=source.id,
            details={
                "code": source.code,
                "changed": changed,
                "before": {name: before[name] for name in changed},
                "after": {name: now[name] for name in changed},
            },
        )
        return after


def delete_water_source(actor: Actor, source_id: uuid.UUID, *, expected_version: int) -> None:
    """Removes the source and its inspections; the audit event keeps what it was."""
    with transaction(actor, Function.WATER_SOURCES, Level.EDIT, "water_source.delete") as tx:
        source = _load(tx, source_id)
        if source.version != expected_version:
            raise Conflict()
        inspections = tx.session.exec(
            scoped(select(WaterInspection), actor).where(
                WaterInspection.water_source_id == source.id
            )
        ).all()
        for inspection in inspections:
            tx.session.delete(inspection)
        tx.session.flush()
        before = _summary(source)
        tx.session.delete(source)
        tx.session.flush()
        tx.audit(
            "water_source.delete",
            target_type=TABLE,
            target_id=source_id,
            details={
                "code": before["code"],
                "before": before,
                "inspections_deleted": len(inspections),
            },
        )


def add_water_sources(actor: Actor, items: Sequence[WaterSourceBase]) -> int:
    """Register several sources in one transaction: all of them or, on any error, none.
    Errors are keyed "row:field" (rows from 1)."""
    with transaction(actor, Function.WATER_SOURCES, Level.EDIT, "water_source.bulk_create") as tx:
        taken = set(tx.session.exec(scoped(select(WaterSource.code), actor)).all())
        errors: dict[str, str] = {}
        rows: list[dict] = []
        for number, item in enumerate(items, start=1):
            try:
                values = _validated(tx, item.model_dump(), taken=taken)
            except ValidationError as exc:
                errors |= {f"{number}:{field}": msg for field, msg in exc.errors.items()}
                continue
            taken.add(values["code"])
            rows.append(values)
        if errors:
            raise ValidationError(errors)
        tx.session.add_all(WaterSource(tenant_id=tx.tenant_id, **values) for values in rows)
        tx.session.flush()
        tx.audit(
            "water_source.bulk_create",
            target_type=TABLE,
            details={"count": len(rows), "after": {"codes": [r["code"] for r in rows]}},
        )
        return len(rows)


# -- inspections -------------------------------------------------------------------------------


def record_inspection(
    actor: Actor, source_id: uuid.UUID, *, data: WaterInspectionCreate
) -> WaterInspectionPublic:
    """An inspection on or after the last one sets the source's status and last inspection date;
    an older one is only added to the history."""
    with transaction(actor, Function.INSPECTIONS, Level.EDIT, "water_source.inspect") as tx:
        source = _load(tx, source_id)
        values = _validated_inspection(tx, data)
        inspection = WaterInspection(
            tenant_id=tx.tenant_id,
            water_source_id=source.id,
            inspected_on=values["inspected_on"],
            inspector_member_id=values["inspector_member_id"],
            result=values["result"],
            notes=values["notes"],
        )
        inspection.inspector_name_enc = (
            tx.cipher.encrypt(
                values["inspector_name"],
                field="water_inspection.inspector_name",
                row_id=inspection.id,
            )
            if values["inspector_name"]
            else ""
        )
        tx.session.add(inspection)
        before = {"status": source.status, "last_inspected_on": source.last_inspected_on}
        latest = source.last_inspected_on
        if latest is None or values["inspected_on"] >= latest:
            source.last_inspected_on = values["inspected_on"]
            source.status = water_rules.INSPECTION_RESULTS[values["result"]]
        _save(tx, source)
        tx.audit(
            "water_source.inspect",
            target_type=TABLE,
            target_id=source.id,
            details={
                "code": source.code,
                "inspection_id": str(inspection.id),
                "inspected_on": values["inspected_on"],
                "result": values["result"],
                "inspector_member_id": str(values["inspector_member_id"] or ""),
                "before": before,
                "after": {"status": source.status, "last_inspected_on": source.last_inspected_on},
            },
            personal={"inspector_name": values["inspector_name"], "notes": values["notes"]},
        )
        return _inspection_public(tx, inspection, {})


def list_inspections(actor: Actor, source_id: uuid.UUID) -> list[WaterInspectionPublic]:
    """Newest first. Inspectors' names only for those who may view inspections."""
    with transaction(actor, Function.WATER_SOURCES, Level.VIEW, "water_source.inspections") as tx:
        source = _load(tx, source_id)
        rows = tx.session.exec(
            scoped(select(WaterInspection), actor)
            .where(WaterInspection.water_source_id == source.id)
            .order_by(WaterInspection.inspected_on.desc(), WaterInspection.created_at.desc())
        ).all()
        names: dict[uuid.UUID, str] = {}
        return [_inspection_public(tx, row, names) for row in rows]


def inspector_choices(actor: Actor) -> list[InspectorOption]:
    """Active members, for the inspector picker of whoever records inspections."""
    with transaction(actor, Function.INSPECTIONS, Level.EDIT, "water_source.inspectors") as tx:
        rows = tx.session.exec(
            scoped(select(Member), actor)
            .where(Member.status == MemberStatus.ACTIVE)
            .order_by(Member.member_code)
        ).all()
        return [InspectorOption(m.id, f"{m.member_code}　{_member_name(tx, m)}") for m in rows]


# -- helpers -----------------------------------------------------------------------------------


def _load(tx: Tx, source_id: uuid.UUID) -> WaterSource:
    source = tx.get(WaterSource, source_id)
    if source is None:
        raise NotFound("水利が見つかりません。")
    return source


def _save(tx: Tx, source: WaterSource) -> WaterSourcePublic:
    source.version += 1
    source.updated_at = utcnow()
    tx.session.add(source)
    tx.session.flush()
    return _public(source, settings_in(tx), today_jst())


def _public(row: Any, settings: WaterMapSettings, today: date) -> WaterSourcePublic:
    """From a WaterSource or a row of PUBLIC_COLUMNS."""
    fields = {name: getattr(row, name) for name in BASE_FIELDS}
    grade = _grade(*(fields[name] for name in GRADE_INPUTS))
    return WaterSourcePublic.model_construct(
        PUBLIC_FIELDS_SET,
        **fields,
        id=row.id,
        version=row.version,
        updated_at=row.updated_at,
        grade=grade.grade,
        computed_grade=grade.computed,
        grade_reasons=list(grade.reasons),
        grade_overridden=grade.overridden,
        next_inspection_due=water_rules.next_inspection_due(
            row.last_inspected_on, row.inspection_interval_days
        ),
        overdue=water_rules.is_overdue(row.last_inspected_on, row.inspection_interval_days, today),
        outside_area=settings.outside_area(row.latitude, row.longitude),
    )


PUBLIC_FIELDS_SET = frozenset(WaterSourcePublic.model_fields)
GRADE_INPUTS = (
    "kind",
    "capacity_m3",
    "supply_m3_per_min",
    "supply_minutes",
    "main_diameter_mm",
    "drop_m",
    "depth_m",
    "grade_override",
    "grade_override_reason",
)


@lru_cache(maxsize=4096)
def _grade(*values: Any) -> water_rules.Grade:
    """Sources share few distinct figures, so their grades are computed once per combination."""
    figures = dict(zip(GRADE_INPUTS, values, strict=True))
    override, reason = figures.pop("grade_override"), figures.pop("grade_override_reason")
    return water_rules.grade_of(SimpleNamespace(**figures), override, reason)


def _summary(source: WaterSource | WaterSourcePublic) -> dict:
    return {name: getattr(source, name) for name in BASE_FIELDS}


def _check_point(latitude: float, longitude: float) -> None:
    if not (-90 <= latitude <= 90 and -180 <= longitude <= 180):
        raise ValidationError({"latitude": "緯度は -90〜90、経度は -180〜180 の範囲です。"})


def _validated(
    tx: Tx, raw: dict, source_id: uuid.UUID | None = None, taken: set[str] | None = None
) -> dict:
    values, errors = validate_fields(raw, today=today_jst())
    if "code" not in errors:
        errors = _code_clash_errors(tx, values["code"], source_id, taken) | errors
    if errors:
        raise ValidationError(errors)
    return values


def validate_fields(raw: Mapping[str, Any], *, today: date) -> tuple[dict, dict[str, str]]:
    """The registry fields normalised, and {field: Japanese message} for those that break a rule;
    no database access (whether the code is taken is the caller's question)."""
    values = dict(raw)
    values["code"] = v.clean(raw.get("code"))
    values["kind"] = v.clean(raw.get("kind"))
    values["address"] = v.clean_text(raw.get("address"))
    values["unit"] = v.clean(raw.get("unit"))
    values["memo"] = (raw.get("memo") or "").strip()
    values["grade_override"] = raw.get("grade_override") or None
    values["grade_override_reason"] = v.clean_text(raw.get("grade_override_reason"))
    values["hydrant_type"] = raw.get("hydrant_type") or None
    if values.get("inspection_interval_days") is None:
        values["inspection_interval_days"] = 365
    errors = _code_errors(values["code"])
    errors |= _choice_errors(values)
    errors |= _position_errors(values.get("latitude"), values.get("longitude"))
    errors |= _number_errors(values)
    errors |= _kind_errors(values)
    errors |= _text_errors(values)
    last = values.get("last_inspected_on")
    if last is not None and not EARLIEST_DATE <= last <= today:
        errors["last_inspected_on"] = "最終点検日は1950年以降、今日までの日付で入力してください。"
    return {name: values.get(name) for name in BASE_FIELDS}, errors


def _code_errors(code: str) -> dict:
    if not code:
        return {"code": "水利番号を入力してください。"}
    if len(code) > 30 or not v.is_code(code):
        return {"code": "水利番号は30文字以内の半角英数字・ハイフンで入力してください。"}
    return {}


def _code_clash_errors(
    tx: Tx, code: str, source_id: uuid.UUID | None, taken: set[str] | None
) -> dict:
    if taken is not None:
        clash = code in taken
    else:
        query = scoped(select(WaterSource.id).where(WaterSource.code == code), tx.actor)
        clash = any(found != source_id for found in tx.session.exec(query).all())
    return {"code": f"水利番号「{code}」は既に使われています。"} if clash else {}


def _choice_errors(values: dict) -> dict:
    errors = {}
    if values["kind"] not in WATER_SOURCE_KINDS:
        errors["kind"] = "種別を選択肢から選んでください。"
    if values.get("ownership") not in OWNERSHIPS:
        errors["ownership"] = "公設・私設・指定水利のいずれかを選んでください。"
    if values.get("status") not in WATER_SOURCE_STATUSES:
        errors["status"] = "状態は 使用可・使用不可・点検中 のいずれかです。"
    if values["grade_override"] not in (None, *water_rules.GRADES):
        errors["grade_override"] = "判定の上書きは「基準」か「参考」、または空欄です。"
    if values["hydrant_type"] not in (None, *HYDRANT_TYPES):
        errors["hydrant_type"] = "地上式か地下式を選んでください。"
    return errors


def _position_errors(lat: float | None, lon: float | None) -> dict:
    if lat is None and lon is None:
        return {}
    if lat is None or lon is None:
        return {"latitude": "緯度と経度は両方入力してください（不明なら両方空欄）。"}
    if not (math.isfinite(lat) and -90 <= lat <= 90):
        return {"latitude": "緯度は -90〜90 の範囲で入力してください。"}
    if not (math.isfinite(lon) and -180 <= lon <= 180):
        return {"longitude": "経度は -180〜180 の範囲で入力してください。"}
    if not geo.in_japan(lat, lon):
        return {
            "latitude": "日本国内の座標を入力してください（緯度と経度が逆になっていませんか）。"
        }
    return {}


def _number_errors(values: dict) -> dict:
    errors = {}
    for name, label, low, high, low_allowed in NUMBER_RANGES:
        number = values.get(name)
        if number is None:
            continue
        above = number >= low if low_allowed else number > low
        if not (math.isfinite(number) and above and number <= high):
            bound = "以上" if low_allowed else "より大きく"
            errors[name] = f"{label}は {low:g}{bound}{high:g}以下で入力してください。"
    return errors


def _kind_errors(values: dict) -> dict:
    errors = {}
    if values["kind"] in HYDRANT_KINDS:
        for name, label in NOT_FOR_HYDRANTS.items():
            if values.get(name) is not None:
                errors[name] = f"消火栓には{label}を入力できません。"
    else:
        if values.get("main_diameter_mm") is not None:
            errors["main_diameter_mm"] = "配水管の口径は消火栓のみ入力できます。"
        if values["hydrant_type"] is not None:
            errors["hydrant_type"] = "地上式・地下式は消火栓のみ選べます。"
    return errors


def _text_errors(values: dict) -> dict:
    """Lengths, and no control characters (the メモ may keep tab and line breaks): what the
    registry accepts must also survive a CSV export and import."""
    errors = {}
    for name, label, limit in (
        ("address", "所在地", 200),
        ("unit", "担当分団", 100),
        ("memo", "メモ", 500),
        ("grade_override_reason", "上書きの理由", 200),
    ):
        if len(values[name]) > limit:
            errors[name] = f"{label}は{limit}文字以内で入力してください。"
        elif v.has_control_chars(values[name], multiline=name == "memo"):
            errors[name] = v.control_chars_message(label)
    return errors


def _validated_inspection(tx: Tx, data: WaterInspectionCreate) -> dict:
    values = {
        "inspected_on": data.inspected_on,
        "result": data.result,
        "inspector_member_id": data.inspector_member_id,
        "inspector_name": v.clean_text(data.inspector_name),
        "notes": (data.notes or "").strip(),
    }
    errors = {}
    if not EARLIEST_DATE <= data.inspected_on <= today_jst():
        errors["inspected_on"] = "点検日は1950年以降、今日までの日付で入力してください。"
    if data.result not in water_rules.INSPECTION_RESULTS:
        errors["result"] = "点検結果を選択肢から選んでください。"
    if data.inspector_member_id is not None and tx.get(Member, data.inspector_member_id) is None:
        errors["inspector_member_id"] = "点検者（団員）が見つかりません。"
    for name, label, limit in (
        ("inspector_name", "点検者の氏名", 50),
        ("notes", "点検の記録", 1000),
    ):
        if len(values[name]) > limit:
            errors[name] = f"{label}は{limit}文字以内で入力してください。"
        elif "\x00" in values[name]:
            errors[name] = f"{label}に使用できない文字（NUL）が含まれています。"
    if errors:
        raise ValidationError(errors)
    return values


def _inspection_public(
    tx: Tx, row: WaterInspection, names: dict[uuid.UUID, str]
) -> WaterInspectionPublic:
    inspector = ""
    if allows(tx.actor, Need(Function.INSPECTIONS, Level.VIEW)):
        if row.inspector_member_id is not None:
            if row.inspector_member_id not in names:
                member = tx.get(Member, row.inspector_member_id)
                names[row.inspector_member_id] = _member_name(tx, member) if member else ""
            inspector = names[row.inspector_member_id]
        if row.inspector_name_enc:
            outsider = tx.cipher.decrypt(
                row.inspector_name_enc, field="water_inspection.inspector_name", row_id=row.id
            )
            inspector = "・".join(filter(None, (inspector, outsider)))
    return WaterInspectionPublic(
        id=row.id,
        water_source_id=row.water_source_id,
        inspected_on=row.inspected_on,
        result=row.result,
        inspector_member_id=row.inspector_member_id,
        inspector=inspector,
        notes=row.notes,
        created_at=row.created_at,
    )


def _member_name(tx: Tx, member: Member) -> str:
    return tx.cipher.decrypt(member.name_enc, field="member.name", row_id=member.id)
