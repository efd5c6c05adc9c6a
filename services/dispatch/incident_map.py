"""The incident map (#22): where an incident is, and the nearest usable water around it.

The position comes, in this order of trust, from a leader's pin (手動), from coordinates in the
mail's map link (地図URL), or from the geocoder's first hit for the place text (住所検索, always
approximate and shown with what was searched). It is sealed on the incident like the place.

The geocoder is asked when a leader opens the incident (`locate`) or presses 「位置を調べる」
(`locate(again=True)`): never inside the intake's transaction, never while a transaction is
open, and once per incident unless asked again (a claim on `position_checked_at` that two
leaders opening the page together cannot both win). Each call goes to the external-service log
without the address (integrations.geocoder)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import update

from config import get_settings
from core.actor import Actor
from integrations.geocoder import GeocodeHit, Geocoder, GeocoderError
from models.base import utcnow
from models.dispatch import Incident
from models.water import WaterSourcePublic
from services import geo, water_sources
from services.base import Tx, transaction
from services.dispatch.incidents import EDIT, VIEW, _get, add_entry, unseal
from services.errors import ValidationError
from services.traffic_log import external_call_recorder
from services.water_sources.model import USABLE, NearbySource, Registry

SOURCE_LABELS = {"manual": "手動", "map_url": "地図URL", "geocoder": "住所検索"}
# What came of the geocoder's last lookup, for the page to explain an incident without a point.
LOOKUP_MESSAGES = {
    "found": "",
    "not_found": "住所検索で発生場所が見つかりませんでした。地図で位置を指定してください。",
    "failed": "住所検索に接続できませんでした。しばらくして「位置を調べる」を押すか、"
    "地図で位置を指定してください。",
    "off": "住所検索は設定されていません（閉域網）。地図で位置を指定してください。",
    "no_place": "発生場所が記載されていないため、位置を調べられません。",
}
K_RANGE = (1, 50)
RADIUS_RANGE_M = (10, 5_000)


@dataclass(frozen=True)
class IncidentPosition:
    latitude: float | None
    longitude: float | None
    source: str  # "manual", "map_url", "geocoder", "" (none)
    approximate: bool  # a geocoder hit: the place text's best match, not the spot itself
    query: str  # what was searched (geocoder)
    title: str  # what the geocoder matched
    lookup: str  # LOOKUP_MESSAGES key of the last lookup, "" if none yet
    checked_at: datetime | None

    @property
    def known(self) -> bool:
        return self.latitude is not None and self.longitude is not None

    @property
    def source_label(self) -> str:
        return SOURCE_LABELS.get(self.source, "")

    @property
    def message(self) -> str:
        """Why there is no point, in Japanese ("" when there is one or nothing was tried)."""
        return "" if self.known else LOOKUP_MESSAGES.get(self.lookup, "")


@dataclass(frozen=True)
class NearestWater:
    position: IncidentPosition
    sources: list[NearbySource]  # nearest first
    k: int
    radius_m: int
    # where a map without the incident's point opens: the brigade's area (water map settings)
    area_center: tuple[float, float] | None = None


# -- reading -----------------------------------------------------------------------------------


def get_position(actor: Actor, incident_id: uuid.UUID) -> IncidentPosition:
    with transaction(actor, VIEW, action="incident.position", read_only=True) as tx:
        return position_of(tx, _get(tx, incident_id))


def nearest_water(
    actor: Actor, incident_id: uuid.UUID, *, k: int = 5, radius_m: int = 500
) -> NearestWater:
    """The k nearest usable (使用可) sources within radius_m of the incident, nearest first."""
    errors = {}
    if not K_RANGE[0] <= k <= K_RANGE[1]:
        errors["件数"] = f"件数は{K_RANGE[0]}〜{K_RANGE[1]}で指定してください。"
    if not RADIUS_RANGE_M[0] <= radius_m <= RADIUS_RANGE_M[1]:
        errors["半径"] = f"半径は{RADIUS_RANGE_M[0]}〜{RADIUS_RANGE_M[1]}mで指定してください。"
    if errors:
        raise ValidationError(errors)
    with transaction(actor, VIEW, action="incident.nearest_water", read_only=True) as tx:
        position = position_of(tx, _get(tx, incident_id))
        registry = water_sources.registry_in(tx)
    return nearest_in(registry, position, k, radius_m)


def nearest_in(
    registry: Registry, position: IncidentPosition, k: int, radius_m: int
) -> NearestWater:
    """The k nearest usable sources of a registry already read, around a position."""
    if not position.known:
        return NearestWater(position, [], k, radius_m, registry.settings.area_center)
    hits = usable_within(registry.sources, position.latitude, position.longitude, k, radius_m)
    return NearestWater(
        position,
        [
            NearbySource(hit.item, hit.distance_m, registry.settings.radius_for(hit.item.unit))
            for hit in hits
        ],
        k,
        radius_m,
        registry.settings.area_center,
    )


def usable_within(
    sources: Sequence[WaterSourcePublic], latitude: float, longitude: float, k: int, radius_m: float
) -> list[geo.Hit[WaterSourcePublic]]:
    """The k usable placed sources nearest the point within radius_m (inclusive), nearest first."""
    usable = [s for s in sources if s.status == USABLE]
    return geo.covering(usable, latitude, longitude, radius_m)[:k]


# -- writing -----------------------------------------------------------------------------------


def pin_position(
    actor: Actor, incident_id: uuid.UUID, *, latitude: float, longitude: float
) -> IncidentPosition:
    """A leader's point: overrides the map link and the geocoder from now on."""
    if not geo.in_japan(latitude, longitude):
        raise ValidationError({"位置": "日本国内の位置を指定してください。"})
    with transaction(actor, EDIT, action="incident.pin_position") as tx:
        row = _get(tx, incident_id)
        before = row.position_source
        _store(tx, row, "manual", {"latitude": latitude, "longitude": longitude})
        add_entry(tx, row, "position", "発生地点を手動で指定しました。")
        tx.audit(
            "incident.pin_position",
            target_type="incident",
            target_id=row.id,
            details={"number": row.number, "before": SOURCE_LABELS.get(before, "")},
        )
        position = position_of(tx, row)
        tx.commit()
        return position


def locate(
    actor: Actor, incident_id: uuid.UUID, *, again: bool = False, geocoder: Geocoder | None = None
) -> IncidentPosition:
    """Fill in the position a leader has not pinned: from the mail's map link, else (once, or
    again when asked) from the geocoder. `geocoder` defaults to HIKESHI_GEOCODER_URL's."""
    with transaction(actor, EDIT, action="incident.locate") as tx:
        row = _get(tx, incident_id)
        if row.position_source == "manual":
            return position_of(tx, row)
        point = geo.coordinates_in_url(unseal(tx, row, "map_url"))
        if point is not None:
            if row.position_source != "map_url" or _point(tx, row) != point:
                _store(tx, row, "map_url", {"latitude": point[0], "longitude": point[1]})
                _audit_locate(tx, row, "")
                tx.commit()
            return position_of(tx, row)
        if row.position_checked_at is not None and not again:
            return position_of(tx, row)
        place = unseal(tx, row, "place")
        url = get_settings().geocoder_url.strip() if geocoder is None else geocoder.url
        if not place or not url:
            row.position_lookup = "no_place" if not place else "off"
            row.position_checked_at = utcnow()
            _audit_locate(tx, row, row.position_lookup)
            tx.commit()
            return position_of(tx, row)
        if not _claim(tx, row, again):  # another leader's page is asking right now
            position = position_of(tx, row)
            tx.rollback()
            return position
        tx.commit()
    hit, lookup = _ask(actor, place, geocoder, url)
    with transaction(actor, EDIT, action="incident.locate") as tx:
        row = _get(tx, incident_id)
        if row.position_source in ("manual", "map_url"):
            return position_of(tx, row)  # pinned, or a map link arrived, while we asked
        if hit is not None:
            values = {"latitude": hit.latitude, "longitude": hit.longitude}
            _store(tx, row, "geocoder", {**values, "query": place, "title": hit.title})
        elif lookup == "not_found":
            _store(tx, row, "", None)
        row.position_lookup = lookup
        _audit_locate(tx, row, lookup)
        position = position_of(tx, row)
        tx.commit()
        return position


# -- helpers -----------------------------------------------------------------------------------


def position_of(tx: Tx, row: Incident) -> IncidentPosition:
    values = json.loads(unseal(tx, row, "position")) if row.position_enc else {}
    return IncidentPosition(
        latitude=values.get("latitude"),
        longitude=values.get("longitude"),
        source=row.position_source if values else "",
        approximate=row.position_source == "geocoder" and bool(values),
        query=values.get("query", ""),
        title=values.get("title", ""),
        lookup=row.position_lookup,
        checked_at=row.position_checked_at,
    )


def _point(tx: Tx, row: Incident) -> tuple[float, float] | None:
    position = position_of(tx, row)
    return (position.latitude, position.longitude) if position.known else None


def _store(tx: Tx, row: Incident, source: str, values: dict | None) -> None:
    text = json.dumps(values, ensure_ascii=False) if values else ""
    row.position_enc = (
        tx.cipher.encrypt(text, field="incident.position", row_id=row.id) if text else ""
    )
    row.position_source = source if values else ""
    row.updated_at = utcnow()
    tx.session.add(row)


def _claim(tx: Tx, row: Incident, again: bool) -> bool:
    """Mark the lookup as started; False when someone else's claim came first."""
    statement = update(Incident).where(Incident.id == row.id, Incident.tenant_id == tx.tenant_id)
    if not again:
        statement = statement.where(Incident.position_checked_at.is_(None))
    claimed = tx.session.execute(statement.values(position_checked_at=utcnow())).rowcount == 1
    tx.session.expire(row)
    return claimed


def _ask(
    actor: Actor, place: str, geocoder: Geocoder | None, url: str
) -> tuple[GeocodeHit | None, str]:
    """The geocoder's first hit for the place, with no transaction open."""
    own = geocoder is None
    client = geocoder or Geocoder(url, external_call_recorder(actor))
    try:
        hit = client.search(place)
    except GeocoderError:
        return None, "failed"
    finally:
        if own:
            client.close()
    return hit, "found" if hit is not None else "not_found"


def _audit_locate(tx: Tx, row: Incident, lookup: str) -> None:
    """No point and no address in the audit record: both are sealed on the incident."""
    tx.audit(
        "incident.locate",
        target_type="incident",
        target_id=row.id,
        details={
            "number": row.number,
            "source": SOURCE_LABELS.get(row.position_source, ""),
            "lookup": lookup,
        },
    )
