"""A local stand-in for the GSI address search (国土地理院 住所検索), served over real HTTP on
127.0.0.1: GET /address-search/AddressSearch?q=<address> answers a JSON list of features
`{"geometry": {"type": "Point", "coordinates": [lon, lat]}, "properties": {"title": ...}}`,
the first being the best match, or [] when nothing matches.

Tests register addresses (FakeGeocoder.places), and inject trouble: an error status
(`status`), a slow answer (`delay_s`), or an answer that is not the expected JSON (`garbage`).
Every query received is kept in `queries`."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

SEARCH_PATH = "/address-search/AddressSearch"


@dataclass
class FakeGeocoder:
    places: dict[str, list[tuple[float, float, str]]] = field(default_factory=dict)
    status: int = 200
    delay_s: float = 0.0
    garbage: bool = False
    queries: list[str] = field(default_factory=list)
    base_url: str = ""

    def __post_init__(self) -> None:
        self.app = Starlette(routes=[Route(SEARCH_PATH, self._search)])

    @property
    def url(self) -> str:
        """What HIKESHI_GEOCODER_URL would be set to."""
        return f"{self.base_url}{SEARCH_PATH}?q="

    def add(self, address: str, latitude: float, longitude: float, title: str = "") -> None:
        self.places.setdefault(address, []).append((latitude, longitude, title or address))

    def _search(self, request: Request) -> Response:
        query = request.query_params.get("q", "")
        self.queries.append(query)
        if self.delay_s:
            time.sleep(self.delay_s)  # a sync endpoint: Starlette runs it in a thread
        if self.status != 200:
            return PlainTextResponse("error", status_code=self.status)
        if self.garbage:
            return PlainTextResponse("<html>maintenance</html>")
        return JSONResponse(
            [
                {
                    "geometry": {"type": "Point", "coordinates": [lon, lat]},
                    "type": "Feature",
                    "properties": {"addressCode": "", "title": title},
                }
                for lat, lon, title in self.places.get(query, [])
            ]
        )
