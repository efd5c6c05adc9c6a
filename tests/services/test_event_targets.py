"""Event targets in words (issue #18): 団員番号 氏名 and 水利番号 for viewers who may read them,
the neutral label for others, another brigade's ids never resolved, and one query per target
type for a page of events however many it shows."""

from __future__ import annotations

import uuid
from dataclasses import replace

from sqlalchemy import event

from core.access import Need
from core.actor import Actor
from models.enums import AuditCategory, Function, Level
from services import event_log
from services.base import transaction
from services.event_log import EventFilter
from services.event_targets import target_names, target_text
from tests.factories import actor_with, make_member, make_tenant
from tests.services.test_event_log import record
from tests.water_factories import make_source

TARGETED = EventFilter(actions=("test.target",))
EVERYTHING = {
    Function.EVENT_LOGS: Level.VIEW,
    Function.ROSTER: Level.VIEW,
    Function.WATER_SOURCES: Level.VIEW,
}


def touch(tenant: uuid.UUID, target_type: str, target_id: uuid.UUID | str) -> None:
    record(tenant, action="test.target", target_type=target_type, target_id=str(target_id))


def targets(actor: Actor) -> list[str]:
    page = event_log.query_events(actor, TARGETED)
    return [e.target_display for e in reversed(page.events)]


def test_a_permitted_viewer_sees_member_code_and_name_and_the_water_code(tenant):
    member = make_member(tenant, member_code="M-0012", name="山田　花子")
    source = make_source(tenant, code="H-0007")
    touch(tenant, "member", member.id)
    touch(tenant, "water_source", source.id)
    shown = targets(actor_with(tenant, EVERYTHING))
    assert shown == ["団員 M-0012　山田　花子", "消防水利 H-0007（防火水槽）"]
    assert str(member.id) not in " ".join(shown)


def test_without_roster_or_water_view_only_the_neutral_label(tenant):
    member = make_member(tenant, name="山田　花子")
    source = make_source(tenant)
    touch(tenant, "member", member.id)
    touch(tenant, "water_source", source.id)
    assert targets(actor_with(tenant, {Function.EVENT_LOGS: Level.VIEW})) == ["団員", "消防水利"]
    roster_only = {Function.EVENT_LOGS: Level.VIEW, Function.ROSTER: Level.VIEW}
    assert targets(actor_with(tenant, roster_only))[1] == "消防水利"


def test_a_grant_narrowed_to_the_own_unit_names_only_its_members(tenant):
    own = make_member(tenant, affiliation="第1分団 第2部", name="所属　内")
    other = make_member(tenant, affiliation="第10分団", name="所属　外")
    touch(tenant, "member", own.id)
    touch(tenant, "member", other.id)
    viewer = replace(
        actor_with(tenant, {Function.EVENT_LOGS: Level.VIEW}),
        unit="第1分団",
        unit_permissions={str(Function.ROSTER): Level.VIEW},
    )
    assert targets(viewer) == [f"団員 {own.member_code}　所属　内", "団員"]


def test_another_brigades_member_or_water_source_never_resolves(tenant):
    other = make_tenant()
    foreign = make_member(other, name="他団　太郎")
    foreign_source = make_source(other)
    touch(tenant, "member", foreign.id)
    touch(tenant, "water_source", foreign_source.id)
    actor = actor_with(tenant, EVERYTHING)
    assert targets(actor) == ["団員", "消防水利"]
    with transaction(actor, Need(Function.EVENT_LOGS), action="test.target") as tx:
        found = target_names(
            tx, {("member", str(foreign.id)), ("water_source", str(foreign_source.id))}
        )
    assert found == {}


def test_unknown_or_malformed_ids_and_other_types(tenant):
    touch(tenant, "member", uuid.uuid4())
    touch(tenant, "member", "not-a-uuid")
    touch(tenant, "audit_event", "12")
    touch(tenant, "brand_new_type", uuid.uuid4())
    assert targets(actor_with(tenant, EVERYTHING)) == [
        "団員",
        "団員 not-a-uuid",
        "イベント 12",
        "brand_new_type",
    ]
    assert target_text("", "") == ""
    assert target_text("line", "https://api.line.me/v2/bot/message/push").startswith(
        "LINEログイン "
    )


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


def test_targets_are_read_in_bulk(engine):
    few, many = make_tenant(), make_tenant()
    touch(few, "member", make_member(few).id)
    touch(few, "water_source", make_source(few).id)
    for _ in range(8):
        touch(many, "member", make_member(many).id)
    for _ in range(5):
        touch(many, "water_source", make_source(many).id)
    readers = [actor_with(t, EVERYTHING) for t in (few, many)]
    for reader in readers:  # the brigades' keys are read once per process
        targets(reader)
    counts = [statements(engine, lambda r=r: targets(r)) for r in readers]
    assert counts[0] == counts[1]
    assert len(targets(readers[1])) == 13


def test_recorded_member_targets_come_from_the_services(tenant, engine):
    """A real service's event (団員の登録) shows its member, not its id."""
    member = make_member(tenant, member_code="R-0001", name="登録　一郎")
    page = event_log.query_events(
        actor_with(tenant, EVERYTHING), EventFilter(actions=("member.create",))
    )
    (created,) = [e for e in page.events if e.target_id == str(member.id)]
    assert created.action_label == "団員の登録"
    assert created.target_display == "団員 R-0001　登録　一郎"
    assert created.category == AuditCategory.OPERATION
