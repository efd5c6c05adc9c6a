"""出動中の事案 (services.dispatch.board): every open incident with its tally in one read."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import event

from models.dispatch import Incident
from services.catalog import Answer, Function, IncidentStatus, Level
from services.db import unit_of_work
from services.dispatch import board, callout, incidents
from services.dispatch.incidents import IncidentInput
from services.errors import PermissionDenied
from tests.callout_factories import Brigade, make_brigade
from tests.factories import actor_with, admin

pytestmark = pytest.mark.usefixtures("engine")


def open_incident(brigade: Brigade, kind: str, *units: str) -> uuid.UUID:
    """An incident entered by hand and its 分団 called (with the leaders)."""
    actor = admin(brigade.tenant_id)
    made = incidents.create_incident(
        actor, IncidentInput(kind=kind, place="本町1丁目", units=units)
    )
    callout.call_out(actor, made.id, units)
    return made.id


def answer(brigade: Brigade, incident_id: uuid.UUID, unit: str, *answers: Answer, eta=None):
    members = sorted(brigade.in_unit(unit))
    for member, given in zip(members, answers, strict=False):
        callout.answer_by_proxy(
            admin(brigade.tenant_id), incident_id, member, given, eta_minutes=eta
        )


def close(brigade: Brigade, incident_id: uuid.UUID) -> None:
    actor = admin(brigade.tenant_id)
    for status in (IncidentStatus.EXTINGUISHED, IncidentStatus.CLOSED):
        version = incidents.get_incident(actor, incident_id)[0].version
        incidents.set_status(actor, incident_id, status, expected_version=version)


def mark(incident_id: uuid.UUID, tenant_id: uuid.UUID, **fields: object) -> None:
    with unit_of_work(tenant_id) as db:
        row = db.get(Incident, incident_id)
        for name, value in fields.items():
            setattr(row, name, value)
        db.commit()


def test_every_open_incident_with_its_tally_answers_and_the_silent():
    brigade = make_brigade({"第1分団": 3, "第2分団": 2})
    fire = open_incident(brigade, "建物火災", "第1分団")
    rescue = open_incident(brigade, "救助", "第2分団")
    ended = open_incident(brigade, "車両火災", "第1分団")
    close(brigade, ended)
    answer(brigade, fire, "第1分団", Answer.AVAILABLE, Answer.LATE, eta=15)
    answer(brigade, rescue, "第2分団", Answer.UNAVAILABLE)

    shown = board.board(admin(brigade.tenant_id))

    assert [i.id for i in shown] == [rescue, fire]  # latest 指令 first, the closed one left out
    first = shown[1]
    assert (first.kind, first.place, first.status) == (
        "建物火災",
        "本町1丁目",
        IncidentStatus.RECEIVED,
    )
    (unit,) = first.tally.units  # the leader in 団本部 is not one of the crews
    assert (unit.unit, unit.counts, unit.crew_minimum) == (
        "第1分団",
        {"available": 1, "late": 1, "none": 1},
        3,
    )
    assert unit.short  # two coming of three needed
    assert [line.answer for line in first.answered] == [Answer.AVAILABLE, Answer.LATE]
    for line in first.answered:
        assert board.arrival(line) == line.answered_at + timedelta(minutes=15)
    assert len(first.silent) == 2  # one of 第1分団 and the 分団長
    assert all(line.name for line in first.tally.lines)  # 管理 sees names
    assert shown[0].tally.units[0].counts == {"unavailable": 1, "none": 1}
    assert board.arrival(shown[0].silent[0]) is None


def test_a_full_crew_is_not_short():
    brigade = make_brigade({"第1分団": 3})
    fire = open_incident(brigade, "建物火災", "第1分団")
    answer(brigade, fire, "第1分団", Answer.AVAILABLE, Answer.AVAILABLE, Answer.LATE)
    (shown,) = board.board(admin(brigade.tenant_id))
    assert not shown.tally.units[0].short and shown.tally.units[0].coming == 3


def test_test_call_outs_and_the_self_test_are_not_on_the_board():
    brigade = make_brigade({"第1分団": 1})
    real = open_incident(brigade, "建物火災", "第1分団")
    drill = open_incident(brigade, "【テスト】", "第1分団")
    selftest = open_incident(brigade, "【自己診断】", "第1分団")
    mark(drill, brigade.tenant_id, test=True)
    mark(selftest, brigade.tenant_id, number=incidents.SELFTEST_NUMBER)
    assert [i.id for i in board.board(admin(brigade.tenant_id))] == [real]


def test_the_time_of_the_order_is_the_mails_else_when_received_else_entered():
    brigade = make_brigade({"第1分団": 1})
    fire = open_incident(brigade, "建物火災", "第1分団")
    (shown,) = board.board(admin(brigade.tenant_id))
    entered = shown.ordered_at
    mark(fire, brigade.tenant_id, received_at=entered - timedelta(minutes=2))
    assert board.board(admin(brigade.tenant_id))[0].ordered_at == entered - timedelta(minutes=2)
    mark(fire, brigade.tenant_id, occurred_at=entered - timedelta(minutes=5))
    assert board.board(admin(brigade.tenant_id))[0].ordered_at == entered - timedelta(minutes=5)


def test_names_for_edit_only_and_nothing_without_dispatch():
    brigade = make_brigade({"第1分団": 2})
    open_incident(brigade, "建物火災", "第1分団")
    viewer = actor_with(brigade.tenant_id, {Function.DISPATCH: Level.VIEW})
    (shown,) = board.board(viewer)
    assert shown.place == "本町1丁目" and shown.tally.lines
    assert all(line.name == "" for line in shown.tally.lines)
    editor = actor_with(brigade.tenant_id, {Function.DISPATCH: Level.EDIT})
    assert all(line.name for line in board.board(editor)[0].tally.lines)
    member = actor_with(brigade.tenant_id, {Function.ROSTER: Level.VIEW})
    with pytest.raises(PermissionDenied):
        board.board(member)


def test_another_brigade_sees_nothing():
    brigade = make_brigade({"第1分団": 1})
    other = make_brigade({"第1分団": 1})
    open_incident(brigade, "建物火災", "第1分団")
    assert board.board(admin(other.tenant_id)) == []


def statements(engine, call) -> int:
    count = 0

    def counted(*_args) -> None:
        nonlocal count
        count += 1

    event.listen(engine, "before_cursor_execute", counted)
    try:
        call()
    finally:
        event.remove(engine, "before_cursor_execute", counted)
    return count


def test_the_number_of_queries_does_not_grow_with_the_incidents(engine):
    one, five = make_brigade({"第1分団": 2}), make_brigade({"第1分団": 2})
    open_incident(one, "建物火災", "第1分団")
    for n in range(5):
        fire = open_incident(five, f"建物火災{n}", "第1分団")
        answer(five, fire, "第1分団", Answer.AVAILABLE)
    board.board(admin(one.tenant_id))  # the tenants' keys are read once per process
    board.board(admin(five.tenant_id))
    assert len(board.board(admin(five.tenant_id))) == 5
    assert statements(engine, lambda: board.board(admin(one.tenant_id))) == statements(
        engine, lambda: board.board(admin(five.tenant_id))
    )
