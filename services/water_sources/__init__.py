"""Water-source (消防水利) registry and inspections: every call checks the permission, scopes to the
tenant and writes its change and one audit event in the same transaction."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict
from datetime import date
from typing import TypeVar

from sqlmodel import select

from core.access import Need
from core.actor import Actor
from core.timefmt import today_jst
from formats import water_csv
from models.enums import Function, Level
from models.water import (
    WaterInspection,
    WaterSource,
    WaterSourceBase,
    WaterSourceCreate,
    WaterSourcePublic,
    WaterSourceUpdate,
)
from services import geo
from services import validation as v
from services.base import Tx, scoped, transaction
from services.brigade_settings import WaterMapSettings, settings_in
from services.errors import Conflict, ValidationError
from services.water_sources.checks import check_point, validate_fields, validated_values
from services.water_sources.inspections import (
    inspection_personal,
    inspector_choices,
    list_inspections,
    record_inspection,
    seal_inspection,
)
from services.water_sources.model import (
    BASE_FIELDS,
    EARLIEST_DATE,
    EDITABLE_FIELDS,
    HYDRANT_TYPES,
    NOT_FOR_HYDRANTS,
    PUBLIC_COLUMNS,
    TABLE,
    USABLE,
    InspectorOption,
    NearbySource,
    Registry,
    WaterSourceFilter,
    _public,
    _summary,
    load_source,
    save_source,
)

# -- reading -----------------------------------------------------------------------------------


def load_registry(
    actor: Actor, filters: WaterSourceFilter | None = None, *, today: date | None = None
) -> Registry:
    with transaction(
        actor, Need(Function.WATER_SOURCES, Level.VIEW), action="water_source.list", read_only=True
    ) as tx:
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


def registry_in(tx: Tx) -> Registry:
    """The whole registry read inside another service's transaction (the incident map's
    nearest water, gated by that service's own permission)."""
    return _registry(tx, None, None)


def list_water_sources(
    actor: Actor, filters: WaterSourceFilter | None = None, *, today: date | None = None
) -> list[WaterSourcePublic]:
    return load_registry(actor, filters, today=today).sources


def get_water_source(
    actor: Actor, source_id: uuid.UUID, *, today: date | None = None
) -> WaterSourcePublic:
    with transaction(
        actor, Need(Function.WATER_SOURCES, Level.VIEW), action="water_source.get", read_only=True
    ) as tx:
        return _public(load_source(tx, source_id), settings_in(tx), today or today_jst())


S = TypeVar("S")  # a full source or the map's row


def filter_sources(sources: Iterable[S], filters: WaterSourceFilter) -> list[S]:
    """The sources the filters keep: full sources, or the map's rows (map_data.MapRow, which
    have no grade: the map offers no grade filter)."""
    needle = v.clean(filters.text).lower()
    tests: list[Callable[[S], bool]] = []
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
    check_point(latitude, longitude)
    registry = load_registry(actor)
    return nearest_usable_in(registry.sources, registry.settings, latitude, longitude, n)


def sources_covering(actor: Actor, *, latitude: float, longitude: float) -> list[NearbySource]:
    check_point(latitude, longitude)
    registry = load_registry(actor)
    return covering_usable_in(registry.sources, registry.settings, latitude, longitude)


def export_water_sources_csv(
    actor: Actor, filters: WaterSourceFilter | None = None, *, today: date | None = None
) -> bytes:
    """The filtered list of the water map as CSV (UTF-8 with BOM, formula cells neutralised),
    audited as water_source.list_export: what a viewer of the map sees, the list's columns.
    The full export for re-import (water_import.export_water_sources, CSV出力 too) is
    water_source.export."""
    with transaction(
        actor, Need(Function.WATER_SOURCES, Level.VIEW), action="water_source.list_export"
    ) as tx:
        sources = _registry(tx, filters, today).sources
        tx.audit(
            "water_source.list_export",
            target_type=TABLE,
            details={"count": len(sources), "filters": asdict(filters or WaterSourceFilter())},
        )
        tx.commit()
    return water_csv.encode_list(sources)


# -- writing -----------------------------------------------------------------------------------


def create_water_source(actor: Actor, *, data: WaterSourceCreate) -> WaterSourcePublic:
    with transaction(
        actor, Need(Function.WATER_SOURCES, Level.EDIT), action="water_source.create"
    ) as tx:
        values = validated_values(tx, data.model_dump())
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
        tx.commit()
        return after


def update_water_source(
    actor: Actor, source_id: uuid.UUID, *, data: WaterSourceUpdate, expected_version: int
) -> WaterSourcePublic:
    """Optimistic concurrency: a stale expected_version raises Conflict and changes nothing."""
    with transaction(
        actor, Need(Function.WATER_SOURCES, Level.EDIT), action="water_source.update"
    ) as tx:
        source = load_source(tx, source_id)
        if source.version != expected_version:
            raise Conflict()
        before = _summary(source)
        merged = {name: getattr(source, name) for name in BASE_FIELDS}
        merged |= data.model_dump(exclude_unset=True)
        values = validated_values(tx, merged, source_id=source.id)
        for name in EDITABLE_FIELDS:
            setattr(source, name, values[name])
        after = save_source(tx, source)
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
        tx.commit()
        return after


def delete_water_source(actor: Actor, source_id: uuid.UUID, *, expected_version: int) -> None:
    """Removes the source and its inspections; the audit event keeps what it was."""
    with transaction(
        actor, Need(Function.WATER_SOURCES, Level.EDIT), action="water_source.delete"
    ) as tx:
        source = load_source(tx, source_id)
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
        tx.commit()


def add_water_sources(actor: Actor, items: Sequence[WaterSourceBase]) -> int:
    """Register several sources in one transaction: all of them or, on any error, none.
    Errors are keyed "row:field" (rows from 1)."""
    with transaction(
        actor, Need(Function.WATER_SOURCES, Level.EDIT), action="water_source.bulk_create"
    ) as tx:
        taken = set(tx.session.exec(scoped(select(WaterSource.code), actor)).all())
        errors: dict[str, str] = {}
        rows: list[dict] = []
        for number, item in enumerate(items, start=1):
            try:
                values = validated_values(tx, item.model_dump(), taken=taken)
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
        tx.commit()
        return len(rows)


__all__ = [
    "BASE_FIELDS",
    "EARLIEST_DATE",
    "HYDRANT_TYPES",
    "NOT_FOR_HYDRANTS",
    "USABLE",
    "InspectorOption",
    "NearbySource",
    "Registry",
    "WaterSourceFilter",
    "add_water_sources",
    "covering_usable_in",
    "create_water_source",
    "delete_water_source",
    "export_water_sources_csv",
    "filter_sources",
    "get_water_source",
    "inspection_personal",
    "inspector_choices",
    "list_inspections",
    "list_water_sources",
    "load_registry",
    "nearest_usable",
    "nearest_usable_in",
    "record_inspection",
    "seal_inspection",
    "sources_covering",
    "update_water_source",
    "validate_fields",
]
