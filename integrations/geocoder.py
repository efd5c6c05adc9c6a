"""The incident map's geocoder: an address in, the first point found out.

The default is the GSI address search (国土地理院 住所検索, `.../AddressSearch?q=<address>`); a
closed network points HIKESHI_GEOCODER_URL at an internal service answering the same JSON, a
list of features `{"geometry": {"coordinates": [lon, lat]}, "properties": {"title": ...}}`.

Every request, answered or not, is handed to `record` once (integrations.http.LoggedTransport)
with the configured URL's scheme, host and path only: the address searched is personal data and
never reaches the log.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from urllib.parse import quote, urlsplit

import httpx

from integrations.http import ExternalCall, LoggedTransport, Recorder

SERVICE = "geocoder"
TIMEOUT_S = 5.0
MAX_QUERY_CHARS = 200


class GeocoderError(RuntimeError):
    """No usable answer: no connection, a timeout, an error status or an answer not in the
    expected format. The message is a short English reason for logs, never the address."""


@dataclass(frozen=True)
class GeocodeHit:
    latitude: float
    longitude: float
    title: str  # the address the service matched, as it spells it


class Geocoder:
    def __init__(
        self,
        url: str,
        record: Recorder,
        *,
        timeout_s: float = TIMEOUT_S,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if urlsplit(url).scheme not in ("http", "https"):
            raise ValueError("the geocoder URL must be http(s)")
        self.url = url
        parts = urlsplit(url)
        endpoint = f"{parts.scheme}://{parts.netloc}{parts.path}"

        def without_query(call: ExternalCall) -> None:
            record(replace(call, endpoint=endpoint))

        self._client = httpx.Client(
            transport=LoggedTransport(SERVICE, without_query, transport),
            timeout=timeout_s,
            follow_redirects=False,
        )

    def __enter__(self) -> Geocoder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()

    def search(self, query: str) -> GeocodeHit | None:
        """The first hit for `query`, None when the service found nothing."""
        query = query.strip()[:MAX_QUERY_CHARS]
        if not query:
            return None
        try:
            response = self._client.get(self.url + quote(query, safe=""))
        except httpx.HTTPError as exc:
            raise GeocoderError(type(exc).__name__) from exc
        if response.status_code != 200:
            raise GeocoderError(f"status {response.status_code}")
        try:
            features = response.json()
        except ValueError as exc:
            raise GeocoderError("answer is not JSON") from exc
        if not isinstance(features, list):
            raise GeocoderError("answer is not a list")
        for feature in features:
            hit = _hit(feature)
            if hit is not None:
                return hit
        return None


def _hit(feature: object) -> GeocodeHit | None:
    try:
        lon, lat = feature["geometry"]["coordinates"][:2]  # type: ignore[index]
        title = feature.get("properties", {}).get("title", "")  # type: ignore[union-attr]
        lat, lon = float(lat), float(lon)
    except (KeyError, TypeError, ValueError, AttributeError):
        return None
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        return None
    return GeocodeHit(lat, lon, str(title or "")[:200])
