"""The 水利マップ's data, read once per brigade and version and shared by every session of this
process (#19): the rows as plain tuples built from columns, the JSON the browser draws from
(sent gzip-compressed, once per version), and what the page filters and searches on.

The cache key is the tenant id, the registry's stamp (count, latest change and version sum of
its sources, and the settings' version) and today's date (overdue depends on it): what a
viewer sees depends on nothing else, since every holder of 消防水利 閲覧 sees all of the
brigade's sources. The gate is passed on every call before the cache is read, so a viewer who
lost the right gets nothing, cached or not."""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import threading
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import NamedTuple

from sqlalchemy import func
from sqlmodel import select

from core.access import Need
from core.actor import Actor
from core.timefmt import today_jst
from models.enums import WATER_SOURCE_KINDS, WATER_SOURCE_STATUSES, Function, Level
from models.water import WaterSource
from services import water_rules
from services.base import Tx, scoped, transaction
from services.brigade_settings import WaterMapSettings, settings_in
from services.water_sources import filter_sources
from services.water_sources.model import WaterSourceFilter

DATA_ROUTE = "/api/water-map"  # web/water_map_data.py serves it
CACHED_VERSIONS = 16  # at most this many (brigade, version) entries per process
OTHER_KIND = WATER_SOURCE_KINDS.index("その他")
UNUSABLE = WATER_SOURCE_STATUSES.index("使用不可")
_COLUMNS = (
    WaterSource.id,
    WaterSource.code,
    WaterSource.kind,
    WaterSource.status,
    WaterSource.unit,
    WaterSource.memo,
    WaterSource.address,
    WaterSource.latitude,
    WaterSource.longitude,
    WaterSource.last_inspected_on,
    WaterSource.inspection_interval_days,
)


class MapRow(NamedTuple):
    """What the map, its filters and the nearest-source search need of one source."""

    id: uuid.UUID
    code: str
    kind: str
    status: str
    unit: str
    memo: str
    address: str
    latitude: float | None
    longitude: float | None
    overdue: bool


@dataclass(frozen=True)
class WaterMap:
    """One brigade's registry at one version, as the map shows it. `rows` sorted by code;
    `placed` the indices of the rows with a position, in the order of the browser's rows."""

    version: str
    settings: WaterMapSettings
    rows: tuple[MapRow, ...]
    placed: tuple[int, ...]
    units: tuple[str, ...]
    labels: tuple[str, ...]
    body: bytes  # the JSON the browser draws from
    gzipped: bytes

    def by_code(self, code: str) -> MapRow | None:
        return next((row for row in self.rows if row.code == code), None)


_cache: OrderedDict[tuple, WaterMap] = OrderedDict()
_lock = threading.Lock()


def water_map(actor: Actor, *, today: date | None = None) -> WaterMap:
    """The actor's brigade's map data at its current version (消防水利 閲覧)."""
    today = today or today_jst()
    with transaction(
        actor, Need(Function.WATER_SOURCES, Level.VIEW), action="water_source.map", read_only=True
    ) as tx:
        key = (tx.tenant_id, _stamp(tx), today)
        with _lock:
            if (cached := _cache.get(key)) is not None:
                _cache.move_to_end(key)
                return cached
        built = _build(tx, key, today)
    with _lock:
        for old in [k for k in _cache if k[0] == key[0]]:  # a brigade's older versions go
            del _cache[old]
        _cache[key] = built
        while len(_cache) > CACHED_VERSIONS:
            _cache.popitem(last=False)
    return built


def _stamp(tx: Tx) -> tuple:
    count, latest, versions = tx.session.exec(
        scoped(
            select(
                func.count(WaterSource.id),
                func.max(WaterSource.updated_at),
                func.sum(WaterSource.version),
            ),
            tx.actor,
        )
    ).one()
    return (count, str(latest), versions, settings_in(tx, positions=[]).version)


def _build(tx: Tx, key: tuple, today: date) -> WaterMap:
    columns = tx.session.exec(scoped(select(*_COLUMNS), tx.actor).order_by(WaterSource.code))
    rows = tuple(
        MapRow(
            ident,
            code,
            kind,
            status,
            unit,
            memo,
            address,
            lat,
            lon,
            water_rules.is_overdue(inspected, interval, today),
        )
        for ident, code, kind, status, unit, memo, address, lat, lon, inspected, interval in columns
    )
    placed = tuple(
        i for i, r in enumerate(rows) if r.latitude is not None and r.longitude is not None
    )
    settings = settings_in(tx, [(rows[i].latitude, rows[i].longitude) for i in placed])
    version = hashlib.blake2b(repr(key).encode(), digest_size=12).hexdigest()
    body = _browser_json(rows, placed, settings)
    return WaterMap(
        version=version,
        settings=settings,
        rows=rows,
        placed=placed,
        units=tuple(sorted({r.unit for r in rows if r.unit})),
        labels=tuple(sorted({r.memo for r in rows if r.memo})),
        body=body,
        gzipped=gzip.compress(body, compresslevel=6, mtime=0),
    )


def _browser_json(
    rows: Sequence[MapRow], placed: Sequence[int], settings: WaterMapSettings
) -> bytes:
    """The placed sources as one array of short arrays: [latitude, longitude, kind index,
    status index, overdue 0/1, code, memo, coverage radius in metres]."""
    kinds = {kind: i for i, kind in enumerate(WATER_SOURCE_KINDS)}
    statuses = {status: i for i, status in enumerate(WATER_SOURCE_STATUSES)}
    radius = {unit: settings.radius_for(unit) for unit in {r.unit for r in rows}}
    data = {
        "kinds": list(WATER_SOURCE_KINDS),
        "statuses": list(WATER_SOURCE_STATUSES),
        "rows": [
            [
                round(r.latitude, 6),
                round(r.longitude, 6),
                kinds.get(r.kind, OTHER_KIND),
                statuses.get(r.status, UNUSABLE),
                1 if r.overdue else 0,
                r.code,
                r.memo,
                radius[r.unit],
            ]
            for r in (rows[i] for i in placed)
        ],
    }
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()


def matching(data: WaterMap, filters: WaterSourceFilter) -> list[int]:
    """Indices of the rows the filters keep, by the registry's own rules (filter_sources)."""
    if not (filters.kinds or filters.statuses or filters.units or filters.labels) and not (
        filters.text.strip() or filters.overdue_only
    ):
        return list(range(len(data.rows)))
    kept = {id(r) for r in filter_sources(data.rows, filters)}
    return [i for i, r in enumerate(data.rows) if id(r) in kept]


def shown_mask(data: WaterMap, kept: Sequence[int]) -> str | None:
    """The browser's rows the filters keep as a bit set (bit i of byte i // 8 for row i),
    base64: a few kilobytes at 20,000 sources, so a filter change never resends the data.
    None when every row is kept."""
    if len(kept) == len(data.rows):
        return None
    keep = set(kept)
    bits = bytearray((len(data.placed) + 7) // 8)
    for position, index in enumerate(data.placed):
        if index in keep:
            bits[position >> 3] |= 1 << (position & 7)
    return base64.b64encode(bytes(bits)).decode()
