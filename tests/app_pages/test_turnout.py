"""出動情報 (the member's phone page): the call-out's link opens it with the full place, the map
app link and the nearest water; one 既読 per visit however often the page reruns; without an
incident, the open incidents as links; an unknown or malformed id; who gets the page."""

from __future__ import annotations

from sqlmodel import select
from streamlit.testing.v1 import AppTest

from core.timefmt import clock_jst
from models.incident_read import IncidentRead
from services.db import unit_of_work
from services.dispatch import callout, incidents, intake
from tests.app_pages.conftest import nav_registers, page_text, sign_in
from tests.dispatch_factories import body, mail, make_source, where
from tests.factories import admin, make_tenant, plain_members_hold_nothing
from tests.water_factories import ORIGIN, north_of_origin
from tests.water_factories import make_source as make_water_source

PAGE = "app_pages/turnout.py"
PLACE = "デモ市本町1丁目付近"  # as the intake normalised the mail's text


def receive(tenant, text: str):
    source = make_source(tenant)
    outcome = intake.receive(where(source), mail(source.address, text))
    assert outcome.incident_id is not None
    return incidents.get_incident(admin(tenant), outcome.incident_id)[0]


def open_turnout(open_app, token: str, incident: str | None = None) -> AppTest:
    at = open_app(token)
    at.switch_page(PAGE)
    if incident is not None:
        at.query_params["incident"] = incident
    at.run()
    assert not at.exception, at.exception
    assert [t.value for t in at.title] == ["出動情報"]
    return at


def reads_of(tenant) -> list[IncidentRead]:
    with unit_of_work(tenant) as db:
        return list(db.exec(select(IncidentRead).where(IncidentRead.tenant_id == tenant)).all())


def test_the_call_out_link_opens_the_incident_for_the_phone_and_records_one_read(open_app):
    tenant = make_tenant()
    near = make_water_source(tenant, memo="公民館前", last_inspected_on=None, **north_of_origin(1))
    link = f"https://www.google.com/maps/@{ORIGIN[0]},{ORIGIN[1]},17z"
    fire = receive(tenant, body(extra=f"地図 {link}"))
    member = sign_in(tenant, rank="団員")
    assert callout.incident_link(fire.id).endswith(f"/turnout?incident={fire.id}")

    at = open_turnout(open_app, member.token, str(fire.id))
    text = page_text(at)
    assert PLACE in text and "本町公民館" in text and "建物火災" in text
    (button,) = [b for b in at.get("link_button") if b.proto.label == "地図アプリで開く"]
    assert button.proto.url.endswith(f"query={ORIGIN[0]:.6f},{ORIGIN[1]:.6f}")
    assert "111 m" in text and near.code in text and "公民館前" in text
    assert "まだ回答していません" in text
    assert not at.dataframe  # a list, not a table that scrolls sideways on a phone

    at.run()
    at.run()
    [read] = reads_of(tenant)
    assert read.member_id == member.member.id
    assert read.last_read_at == read.first_read_at  # reruns of the same visit count once


def test_without_an_incident_the_open_ones_are_listed_as_links(open_app):
    tenant = make_tenant()
    fire = receive(tenant, body())
    member = sign_in(tenant, rank="団員")
    at = open_turnout(open_app, member.token)
    (link,) = at.get("page_link")
    assert f"第{fire.number}号" in link.proto.label and PLACE in link.proto.label
    assert link.proto.query_string == f"incident={fire.id}"
    assert reads_of(tenant) == []


def test_an_unknown_or_malformed_incident_is_not_found(open_app):
    tenant = make_tenant()
    theirs = receive(make_tenant(), body())
    member = sign_in(tenant, rank="団員")
    for incident in ("not-a-uuid", str(theirs.id)):
        at = open_turnout(open_app, member.token, incident)
        assert [e.value for e in at.error] == ["対象が見つかりません。"]
    assert reads_of(tenant) == []


def test_members_get_the_page_and_those_without_dispatch_view_do_not(open_app):
    tenant = make_tenant()
    member = sign_in(tenant, rank="団員")
    assert nav_registers(open_app(member.token), PAGE)
    plain_members_hold_nothing(tenant)
    assert not nav_registers(open_app(member.token), PAGE)


def test_a_leader_sees_who_has_read_it_on_the_incident_page(open_app):
    tenant = make_tenant()
    fire = receive(tenant, body(units="本町団1"))
    member = sign_in(tenant, rank="団員")
    callout.call_out(admin(tenant), fire.id, ("第1分団",))
    open_turnout(open_app, member.token, str(fire.id))
    [read] = reads_of(tenant)

    at = open_app(sign_in(tenant).token)
    at.switch_page("app_pages/incidents.py")
    at.query_params["incident"] = str(fire.id)
    at.run()
    (lines,) = [d.value for d in at.dataframe if "既読" in d.value.columns]
    row = lines[lines["団員番号"] == member.member.member_code].iloc[0]
    assert row["既読"] == f"既読 {clock_jst(read.first_read_at)}"
