"""既読 and the member's incident page (#22): the first open inserts and is audited, later opens
move last_read_at only; the page's facts, own answer and nearest water; other brigades, missing
permission and unknown incidents."""

from __future__ import annotations

import uuid
from datetime import date

import pytest
from sqlmodel import select

from core.actor import Actor
from models.enums import Answer
from models.incident_read import IncidentRead
from services import tenant_lifecycle as lifecycle
from services.base import transaction
from services.db import unit_of_work
from services.dispatch import callout, incident_map, incidents, intake, reads, tally
from services.dispatch.incidents import IncidentInput
from services.errors import NotFound, PermissionDenied
from services.signin import sessions
from tests.dispatch_factories import body, mail, where
from tests.dispatch_factories import make_source as make_dispatch_source
from tests.factories import (
    PLATFORM,
    admin,
    make_member,
    make_tenant,
    open_member_session,
    plain_members_hold_nothing,
)
from tests.water_factories import ORIGIN, make_source, north_of_origin

PLACE, LANDMARK = "火消市纏町五丁目7番地付近", "纏町公民館"


def member_actor(tenant: uuid.UUID, **overrides: object) -> Actor:
    """A rank-and-file member signed in (団員 hold 災害出動 閲覧 by default)."""
    member = make_member(tenant, **overrides)
    actor = sessions.resolve(open_member_session(tenant, member.id))
    assert actor is not None and actor.member_id == member.id
    return actor


def new_incident(tenant: uuid.UUID) -> uuid.UUID:
    made = incidents.create_incident(
        admin(tenant),
        IncidentInput(kind="建物火災", place=PLACE, landmark=LANDMARK),
    )
    return made.id


def read_tx(actor: Actor):
    """A transaction past the gate, as the tally's builder holds one."""
    return transaction(actor, callout.VIEW, action="test.read_times", read_only=True)


def stored(tenant: uuid.UUID) -> list[IncidentRead]:
    with unit_of_work(tenant) as db:
        return list(db.exec(select(IncidentRead).where(IncidentRead.tenant_id == tenant)).all())


def test_the_first_open_is_recorded_and_audited_later_ones_move_the_last_time(tenant, watch):
    member = member_actor(tenant)
    incident_id = new_incident(tenant)
    seen = watch(tenant)

    assert reads.mark_read(member, incident_id) is True
    [first] = stored(tenant)
    assert reads.mark_read(member, incident_id) is False
    [again] = stored(tenant)

    assert (again.member_id, again.incident_id) == (member.member_id, incident_id)
    assert again.first_read_at == first.first_read_at == first.last_read_at
    assert again.last_read_at > first.last_read_at
    audited = [e for e in seen.new() if e.action == "incident.read"]
    assert [(e.target_id, e.outcome) for e in audited] == [(str(incident_id), "success")]
    assert PLACE not in audited[0].details


def test_read_times_gives_first_reads_of_these_incidents_only(tenant):
    one, two = member_actor(tenant), member_actor(tenant)
    first, second, unread = new_incident(tenant), new_incident(tenant), new_incident(tenant)
    reads.mark_read(one, first)
    reads.mark_read(two, first)
    reads.mark_read(one, second)
    reads.mark_read(one, first)
    rows = {(r.incident_id, r.member_id): r.first_read_at for r in stored(tenant)}

    with read_tx(one) as tx:
        assert reads.read_times(tx, [first, unread]) == {
            key: at for key, at in rows.items() if key[0] == first
        }
        assert reads.read_times(tx, []) == {}


def test_another_brigades_incident_is_not_found_and_leaves_nothing(tenant):
    other = make_tenant()
    theirs = new_incident(other)
    member = member_actor(tenant)
    with pytest.raises(NotFound):
        reads.mark_read(member, theirs)
    with pytest.raises(NotFound):
        reads.member_view(member, theirs)
    assert stored(tenant) == [] and stored(other) == []
    reads.mark_read(member_actor(other), theirs)
    with read_tx(member) as tx:
        assert reads.read_times(tx, [theirs]) == {}  # their read is not ours to see


def test_an_unknown_incident_is_not_found(tenant):
    member = member_actor(tenant)
    with pytest.raises(NotFound):
        reads.mark_read(member, uuid.uuid4())
    with pytest.raises(NotFound):
        reads.member_view(member, uuid.uuid4())


def test_without_dispatch_view_nothing_is_read_or_shown(tenant):
    incident_id = new_incident(tenant)
    plain_members_hold_nothing(tenant)
    member = member_actor(tenant)
    with pytest.raises(PermissionDenied):
        reads.mark_read(member, incident_id)
    with pytest.raises(PermissionDenied):
        reads.member_view(member, incident_id)
    assert stored(tenant) == []


def test_only_a_member_leaves_a_read(tenant):
    with pytest.raises(PermissionDenied):
        reads.mark_read(admin(tenant), new_incident(tenant))
    assert stored(tenant) == []


def test_the_member_view_shows_the_full_place_own_answer_and_nearest_usable_water(tenant):
    member = member_actor(tenant)
    incident_id = new_incident(tenant)
    callout.call_out(admin(tenant), incident_id, ("第1分団",))
    near = make_source(tenant, **north_of_origin(1))
    far = make_source(
        tenant,
        kind="消火栓",
        main_diameter_mm=150,
        capacity_m3=None,
        drop_m=None,
        depth_m=None,
        **north_of_origin(3),
    )
    make_source(tenant, status="使用不可", **north_of_origin(0.5))
    make_source(tenant, **north_of_origin(10))  # beyond the radius
    incident_map.pin_position(admin(tenant), incident_id, latitude=ORIGIN[0], longitude=ORIGIN[1])

    view = reads.member_view(member, incident_id)
    assert (view.place, view.landmark, view.kind) == (PLACE, LANDMARK, "建物火災")
    assert view.answer is None and view.eta_minutes is None
    assert view.water.position.known
    assert [n.source.code for n in view.water.sources] == [near.code, far.code]
    assert view.water.radius_m == reads.NEAREST_RADIUS_M

    callout.answer_by_proxy(
        admin(tenant), incident_id, member.member_id, Answer.LATE, eta_minutes=9
    )
    callout.answer_by_proxy(
        admin(tenant), incident_id, member.member_id, Answer.AVAILABLE, eta_minutes=6
    )
    view = reads.member_view(member, incident_id)
    assert (view.answer, view.eta_minutes) == (Answer.AVAILABLE, 6)


def test_reads_go_with_the_brigades_data(tenant):
    reads.mark_read(member_actor(tenant), new_incident(tenant))
    lifecycle.cancel_brigade(PLATFORM, tenant, cancelled_on=date(2026, 12, 25))
    lifecycle.delete_brigade_data(PLATFORM, tenant)
    assert stored(tenant) == []
    assert lifecycle.remaining_rows(PLATFORM, tenant) == {}


def test_before_any_leader_opened_it_the_mails_map_link_places_it_without_writing(tenant):
    source = make_dispatch_source(tenant)
    link = f"https://www.google.com/maps/@{ORIGIN[0]},{ORIGIN[1]},17z"
    text = body(extra=f"地図 {link}")
    incident_id = intake.receive(where(source), mail(source.address, text)).incident_id
    near = make_source(tenant, **north_of_origin(1))

    view = reads.member_view(member_actor(tenant), incident_id)
    assert (view.water.position.latitude, view.water.position.longitude) == ORIGIN
    assert [n.source.code for n in view.water.sources] == [near.code]
    assert not incident_map.get_position(admin(tenant), incident_id).known  # nothing stored


def test_the_tally_shows_when_each_called_member_first_opened_it(tenant):
    reader, silent = member_actor(tenant), member_actor(tenant)
    incident_id = new_incident(tenant)
    callout.call_out(admin(tenant), incident_id, ("第1分団",))
    reads.mark_read(reader, incident_id)
    [first] = stored(tenant)
    reads.mark_read(reader, incident_id)

    lines = {line.member_id: line for line in tally.tally(admin(tenant), incident_id).lines}
    assert lines[reader.member_id].read_at == first.first_read_at
    assert lines[silent.member_id].read_at is None
