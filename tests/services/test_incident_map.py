"""The incident map (#22): the position from the mail's map link, the geocoder (a fake GSI
address search over real HTTP) or a leader's pin, and the nearest usable water within a radius,
checked against brute force."""

from __future__ import annotations

import itertools
import json
from datetime import date
from types import SimpleNamespace

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from core.actor import Actor
from integrations.geocoder import Geocoder
from models.enums import AuditCategory, Function, Level
from services import geo
from services.dispatch import incident_map, incidents, intake
from services.dispatch.incidents import IncidentInput
from services.errors import NotFound, PermissionDenied, ValidationError
from services.traffic_log import external_call_recorder
from tests.dispatch_factories import body, mail, where
from tests.dispatch_factories import make_source as make_dispatch_source
from tests.factories import actor_with, admin, make_tenant
from tests.fakes.geocoder_server import FakeGeocoder
from tests.fakes.line_server import configured, serve
from tests.water_factories import ORIGIN, make_source, north_of_origin

PLACE = "火消市纏町五丁目7番地付近"
HERE = (ORIGIN[0], ORIGIN[1])


@pytest.fixture(scope="module")
def fake():
    with serve(FakeGeocoder()) as server:
        yield server


@pytest.fixture
def gsi(fake):
    fake.places.clear()
    fake.queries.clear()
    fake.status, fake.delay_s, fake.garbage = 200, 0.0, False
    return fake


def geocoder(actor: Actor, fake: FakeGeocoder, timeout_s: float = 5.0) -> Geocoder:
    return Geocoder(fake.url, external_call_recorder(actor), timeout_s=timeout_s)


def by_hand(tenant, place: str = PLACE):
    return incidents.create_incident(admin(tenant), IncidentInput(kind="建物火災", place=place))


def from_mail(tenant, map_url: str):
    source = make_dispatch_source(tenant)
    text = body(place=PLACE) + map_url + "\n"
    outcome = intake.receive(where(source), mail(source.address, text, charset="utf-8"))
    assert outcome.incident_id is not None
    return outcome.incident_id


# -- the position ------------------------------------------------------------------------------


def test_a_map_link_with_coordinates_places_the_incident_without_asking(tenant, gsi):
    incident_id = from_mail(tenant, "https://www.google.com/maps/@36.0012,138.0003,17z")
    position = incident_map.locate(
        admin(tenant), incident_id, geocoder=geocoder(admin(tenant), gsi)
    )
    assert (position.latitude, position.longitude) == (36.0012, 138.0003)
    assert (position.source_label, position.approximate) == ("地図URL", False)
    assert gsi.queries == []
    assert incident_map.get_position(admin(tenant), incident_id) == position


def test_the_geocoder_places_it_once_approximately_and_logs_no_address(engine, tenant, gsi, watch):
    gsi.add(PLACE, 36.0021, 138.0011, "火消市纏町五丁目")
    incident = by_hand(tenant)
    seen = watch(tenant)
    client = geocoder(admin(tenant), gsi)
    position = incident_map.locate(admin(tenant), incident.id, geocoder=client)
    assert (position.latitude, position.longitude) == (36.0021, 138.0011)
    assert (position.source_label, position.approximate) == ("住所検索", True)
    assert (position.query, position.title) == (PLACE, "火消市纏町五丁目")
    assert incident_map.locate(admin(tenant), incident.id, geocoder=client) == position
    assert gsi.queries == [PLACE]  # opened twice, asked once
    incident_map.locate(admin(tenant), incident.id, again=True, geocoder=client)
    assert gsi.queries == [PLACE, PLACE]  # asked again when a leader presses 「位置を調べる」
    calls = seen.new(AuditCategory.EXTERNAL)
    assert [json.loads(e.details)["endpoint"] for e in calls] == [gsi.url.split("?")[0]] * 2
    assert all(json.loads(e.details)["status"] == 200 for e in calls)
    for event in seen.new():
        assert "纏町" not in event.details and "36.0021" not in event.details


@pytest.mark.parametrize(
    ("trouble", "lookup"),
    [({"status": 503}, "failed"), ({"garbage": True}, "failed"), ({}, "not_found")],
)
def test_a_failing_or_empty_answer_leaves_no_point_and_says_why(tenant, gsi, trouble, lookup):
    for name, value in trouble.items():
        setattr(gsi, name, value)
    incident = by_hand(tenant)
    position = incident_map.locate(
        admin(tenant), incident.id, geocoder=geocoder(admin(tenant), gsi)
    )
    assert not position.known and position.lookup == lookup
    assert position.message.startswith("住所検索")
    assert incident_map.nearest_water(admin(tenant), incident.id).sources == []


def test_a_slow_geocoder_times_out_into_a_message(tenant, gsi, engine, watch):
    gsi.delay_s = 0.5
    incident = by_hand(tenant)
    seen = watch(tenant)
    client = geocoder(admin(tenant), gsi, timeout_s=0.1)
    position = incident_map.locate(admin(tenant), incident.id, geocoder=client)
    assert position.lookup == "failed" and "接続できません" in position.message
    (call,) = seen.new(AuditCategory.EXTERNAL)
    assert json.loads(call.details)["error"] == "ReadTimeout"


def test_without_a_geocoder_or_a_place_nothing_is_asked(tenant, gsi):
    with configured({"HIKESHI_GEOCODER_URL": ""}):
        position = incident_map.locate(admin(tenant), by_hand(tenant).id)
    assert position.lookup == "off" and "閉域網" in position.message
    no_place = by_hand(tenant, place="")
    position = incident_map.locate(
        admin(tenant), no_place.id, geocoder=geocoder(admin(tenant), gsi)
    )
    assert position.lookup == "no_place"
    assert gsi.queries == []


def test_the_configured_geocoder_is_used_by_default(tenant, gsi):
    gsi.add(PLACE, 36.003, 138.002)
    with configured({"HIKESHI_GEOCODER_URL": gsi.url}):
        position = incident_map.locate(admin(tenant), by_hand(tenant).id)
    assert position.source == "geocoder" and gsi.queries == [PLACE]


def test_a_pinned_position_overrides_the_link_and_the_geocoder(tenant, gsi, watch):
    incident_id = from_mail(tenant, "https://maps.gsi.go.jp/#16/36.0012/138.0003/")
    seen = watch(tenant)
    pinned = incident_map.pin_position(admin(tenant), incident_id, latitude=36.01, longitude=138.02)
    assert (pinned.latitude, pinned.longitude, pinned.source_label) == (36.01, 138.02, "手動")
    again = incident_map.locate(
        admin(tenant), incident_id, again=True, geocoder=geocoder(admin(tenant), gsi)
    )
    assert again == pinned and gsi.queries == []
    (event,) = [e for e in seen.new() if e.action == "incident.pin_position"]
    assert "36.01" not in event.details
    _, entries = incidents.get_incident(admin(tenant), incident_id)
    assert entries[-1].summary == "発生地点を手動で指定しました。"


def test_pinning_needs_edit_and_a_point_in_japan(tenant):
    incident = by_hand(tenant)
    with pytest.raises(ValidationError):
        incident_map.pin_position(admin(tenant), incident.id, latitude=1.3, longitude=103.8)
    viewer = actor_with(tenant, {Function.DISPATCH: Level.VIEW})
    with pytest.raises(PermissionDenied):
        incident_map.pin_position(viewer, incident.id, latitude=36.0, longitude=138.0)
    with pytest.raises(PermissionDenied):
        incident_map.locate(viewer, incident.id)
    assert not incident_map.get_position(viewer, incident.id).known


def test_another_brigade_neither_reads_nor_moves_the_incident(tenant, gsi):
    incident = by_hand(tenant)
    incident_map.pin_position(admin(tenant), incident.id, latitude=36.0, longitude=138.0)
    stranger = admin(make_tenant())
    for call in (
        lambda: incident_map.pin_position(stranger, incident.id, latitude=35.0, longitude=137.0),
        lambda: incident_map.locate(stranger, incident.id, again=True),
        lambda: incident_map.nearest_water(stranger, incident.id),
    ):
        with pytest.raises(NotFound):
            call()
    position = incident_map.get_position(admin(tenant), incident.id)
    assert (position.latitude, position.longitude) == (36.0, 138.0)


def test_nearest_water_needs_dispatch_view_and_sane_bounds(tenant):
    incident = by_hand(tenant)
    nobody = actor_with(tenant, {Function.ROSTER: Level.VIEW})
    with pytest.raises(PermissionDenied):
        incident_map.nearest_water(nobody, incident.id)
    for bounds in ({"k": 51}, {"radius_m": 9}, {"radius_m": 5_001}):
        with pytest.raises(ValidationError):
            incident_map.nearest_water(admin(tenant), incident.id, **bounds)


def test_a_geocoder_url_without_http_is_refused_at_start():
    from config import ConfigError, load_settings

    with configured({"HIKESHI_GEOCODER_URL": "msearch.gsi.go.jp/x?q="}), pytest.raises(ConfigError):
        load_settings()


# -- the nearest usable water ------------------------------------------------------------------


def test_nearest_water_is_usable_within_the_radius_nearest_first(tenant):
    incident = by_hand(tenant)
    incident_map.pin_position(admin(tenant), incident.id, latitude=HERE[0], longitude=HERE[1])
    far = make_source(tenant, **north_of_origin(6))  # ~667 m
    second = make_source(
        tenant,
        kind="消火栓",
        main_diameter_mm=150,
        capacity_m3=None,
        drop_m=None,
        depth_m=None,
        memo="公民館前",
        **north_of_origin(2),
    )
    first = make_source(tenant, last_inspected_on=date(2020, 1, 1), **north_of_origin(1))
    make_source(tenant, status="使用不可", **north_of_origin(0.5))
    make_source(make_tenant(), **north_of_origin(0.2))  # another brigade's
    found = incident_map.nearest_water(admin(tenant), incident.id)
    assert [n.source.code for n in found.sources] == [first.code, second.code]
    assert [round(n.distance_m) for n in found.sources] == [111, 222]
    assert found.sources[0].source.overdue and found.sources[1].source.memo == "公民館前"
    wider = incident_map.nearest_water(admin(tenant), incident.id, k=5, radius_m=1000)
    assert [n.source.code for n in wider.sources] == [first.code, second.code, far.code]
    one = incident_map.nearest_water(admin(tenant), incident.id, k=1, radius_m=1000)
    assert [n.source.code for n in one.sources] == [first.code]
    with pytest.raises(ValidationError):
        incident_map.nearest_water(admin(tenant), incident.id, k=0)


@st.composite
def scenes(draw):
    count = draw(st.integers(0, 30))
    sources = [
        SimpleNamespace(
            index=i,
            status=draw(st.sampled_from(["使用可", "使用可", "使用不可", "点検中"])),
            latitude=None
            if draw(st.integers(0, 9)) == 0
            else ORIGIN[0] + draw(st.integers(-80, 80)) / 10_000,
            longitude=ORIGIN[1] + draw(st.integers(-80, 80)) / 10_000,
        )
        for i in range(count)
    ]
    return sources, draw(st.integers(1, 8)), draw(st.floats(10, 1_200))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenes())
def test_nearest_usable_within_matches_brute_force(scene):
    sources, k, radius = scene
    distances = {
        s.index: geo.haversine_m(*HERE, s.latitude, s.longitude)
        for s in sources
        if s.latitude is not None
    }
    assume(all(abs(d - radius) > 1e-6 for d in distances.values()))
    # two different spots at (nearly) the same distance may be ordered either way by rounding
    spots = sorted(
        {
            (s.latitude, s.longitude): distances[s.index] for s in sources if s.latitude is not None
        }.values()
    )
    assume(all(b - a > 1e-6 for a, b in itertools.pairwise(spots)))
    expected = sorted(
        (d, i) for i, d in distances.items() if sources[i].status == "使用可" and d <= radius
    )[:k]
    got = incident_map.usable_within(sources, *HERE, k, radius)
    assert [h.item.index for h in got] == [i for _, i in expected]
    assert [h.distance_m for h in got] == pytest.approx([d for d, _ in expected], abs=1e-6)


@pytest.mark.parametrize(
    ("url", "point"),
    [
        ("https://www.google.com/maps/@35.6812,139.7671,17z", (35.6812, 139.7671)),
        ("https://www.google.com/maps/place/x/@35.1,136.9,15z/data=!3m1", (35.1, 136.9)),
        ("https://maps.google.com/?q=35.6812,139.7671", (35.6812, 139.7671)),
        ("https://www.google.com/maps/search/?api=1&query=35.68%2C139.76", (35.68, 139.76)),
        ("https://maps.gsi.go.jp/#16/35.681236/139.767125/&base=std", (35.681236, 139.767125)),
        ("https://map.example.jp/?lat=35.1&lng=136.9", (35.1, 136.9)),
        ("https://map.example.jp/fire?id=123", None),
        ("https://maps.google.com/?q=139.7671,35.6812", None),  # lon, lat: not in Japan
        ("https://maps.google.com/?q=1.29,103.85", None),  # outside Japan
        ("javascript:alert(1)//@35.1,136.9", None),
    ],
)
def test_coordinates_in_a_map_link(url, point):
    assert geo.coordinates_in_url(url) == point
