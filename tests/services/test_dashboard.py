"""ダッシュボード figures: they match what the roster and water-source services report, stay
inside the brigade, follow the viewer's permissions and show nothing personal."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import pytest

from models import MemberLine
from models.enums import Function, Level
from services import dashboard, members, water_sources
from services.dashboard import Count
from services.db import unit_of_work
from services.errors import PermissionDenied
from services.water_sources import WaterSourceFilter
from tests.factories import (
    actor_with,
    admin,
    audit_events,
    last_audit_seq,
    make_member,
    make_tenant,
    rank_id,
)
from tests.water_factories import make_source

TODAY = water_sources.today_jst()


@pytest.fixture
def tenant(engine) -> uuid.UUID:
    return make_tenant()


def viewer(tenant_id: uuid.UUID, **extra: Level) -> object:
    return actor_with(
        tenant_id, {Function.DASHBOARD: Level.VIEW} | {Function(k): v for k, v in extra.items()}
    )


def link_line(tenant_id: uuid.UUID, member_id: uuid.UUID) -> None:
    with unit_of_work(tenant_id) as db:
        db.add(
            MemberLine(
                tenant_id=tenant_id,
                member_id=member_id,
                sub_enc="test",
                sub_bidx=uuid.uuid4().hex,
            )
        )
        db.commit()


@pytest.mark.parametrize(
    ("affiliation", "unit"),
    [
        ("第1分団 第2部", "第1分団"),
        ("第1分団第2部", "第1分団"),  # no space: the same 分団 as in_unit says
        ("第１分団　第２部", "第1分団"),  # full width: NFKC
        ("第10分団", "第10分団"),
        ("団本部", "団本部"),
        ("機能別団員 学生班", "機能別団員"),
        ("", "（未設定）"),
    ],
)
def test_unit_of(affiliation, unit):
    assert dashboard.unit_of(affiliation) == unit


def test_member_figures_match_the_roster(tenant):
    chief = make_member(tenant, rank_id=rank_id(tenant, "団長"), affiliation="団本部")
    a = make_member(tenant, affiliation="第2分団 第1部")
    b = make_member(tenant, affiliation="第2分団", rank_id=rank_id(tenant, "班長"))
    c = make_member(tenant, affiliation="第10分団")
    make_member(tenant, affiliation="")
    gone = make_member(tenant, affiliation="第10分団")
    members.suspend_member(admin(tenant), b.id)
    members.retire_member(admin(tenant), gone.id)
    link_line(tenant, chief.id)
    link_line(tenant, b.id)  # suspended: not counted either way

    stats = dashboard.load(viewer(tenant), today=TODAY).members

    assert stats.by_unit == [
        Count("第2分団", 2),
        Count("第10分団", 1),
        Count("団本部", 1),
        Count("（未設定）", 1),
    ]
    assert stats.by_rank == [
        Count("団長", 1),
        Count("副団長", 0),
        Count("分団長", 0),
        Count("副分団長", 0),
        Count("部長", 0),
        Count("班長", 1),
        Count("団員", 3),
    ]
    assert (stats.active, stats.suspended, stats.retired) == (4, 1, 1)
    assert stats.not_linked == 3  # a, c and the member without 所属
    roster = members.list_members(admin(tenant))
    assert sum(c.count for c in stats.by_rank) == sum(m.status != "retired" for m in roster)
    unlinked = members.list_members(
        admin(tenant), members.MemberFilter(statuses=("active",), line_linked=False)
    )
    assert {m.id for m in unlinked} >= {a.id, c.id}
    assert len(unlinked) == stats.not_linked


def test_water_figures_match_the_registry(tenant):
    hydrant = {"capacity_m3": None, "drop_m": None, "depth_m": None}
    make_source(tenant, kind="消火栓", last_inspected_on=TODAY - timedelta(days=10), **hydrant)
    make_source(tenant, kind="防火水槽", last_inspected_on=TODAY - timedelta(days=400))
    make_source(tenant, kind="防火水槽", status="使用不可", last_inspected_on=None)
    make_source(tenant, kind="プール", status="点検中", last_inspected_on=TODAY)

    water = dashboard.load(viewer(tenant, water_sources=Level.VIEW), today=TODAY).water

    assert water is not None
    assert water.total == 4
    assert water.by_kind == [Count("消火栓", 1), Count("防火水槽", 2), Count("プール", 1)]
    assert water.by_status == [Count("使用可", 2), Count("使用不可", 1), Count("点検中", 1)]
    assert water.overdue == 2
    overdue = water_sources.list_water_sources(
        admin(tenant), WaterSourceFilter(overdue_only=True), today=TODAY
    )
    assert len(overdue) == water.overdue


def test_recent_events_are_newest_first_in_jst_without_personal_data(tenant):
    member = make_member(tenant, name="秘密　花子", email="secret@example.jp")
    members.suspend_member(admin(tenant), member.id)

    events = dashboard.load(viewer(tenant, event_logs=Level.VIEW)).events

    assert events is not None
    assert [e.action for e in events[:2]] == ["member.suspend", "member.create"]
    assert events[0].category == "認証・認可"  # a suspension is an account (auth) event
    assert events[0].target_type == "member"
    assert events[0].occurred_at.count(":") == 2  # JST, to the second
    text = json.dumps([e.__dict__ for e in events], ensure_ascii=False)
    assert "秘密" not in text and "secret@" not in text and member.member_code not in text


def test_recent_events_are_in_japanese_and_name_no_one(tenant):
    """Labels instead of codes (#18); the target is its kind, even for a roster viewer: the
    dashboard shows nothing personal."""
    member = make_member(tenant, member_code="D-0001", name="表示　次郎")
    members.suspend_member(admin(tenant), member.id)

    events = dashboard.load(viewer(tenant, event_logs=Level.VIEW, roster=Level.VIEW)).events

    assert events is not None
    first = events[0]
    assert (first.action_label, first.outcome_label) == ("団員の利用停止", "成功")
    assert first.target == "団員"
    text = json.dumps([e.__dict__ for e in events], ensure_ascii=False)
    assert "表示" not in text and "D-0001" not in text and str(member.id) not in text


def test_recent_events_are_limited(tenant):
    for _ in range(dashboard.RECENT_EVENTS + 3):
        make_member(tenant)
    events = dashboard.load(viewer(tenant, event_logs=Level.VIEW)).events
    assert events is not None and len(events) == dashboard.RECENT_EVENTS


def test_sections_follow_the_viewers_permissions(tenant):
    make_source(tenant)
    data = dashboard.load(viewer(tenant))
    assert data.water is None and data.events is None
    full = dashboard.load(viewer(tenant, water_sources=Level.VIEW, event_logs=Level.VIEW))
    assert full.water is not None and full.events is not None


def test_another_brigade_is_not_counted(tenant):
    other = make_tenant()
    for _ in range(3):
        make_member(other)
    make_source(other)
    make_member(tenant)
    data = dashboard.load(
        viewer(tenant, water_sources=Level.VIEW, event_logs=Level.VIEW), today=TODAY
    )
    assert (data.members.active, data.members.not_linked) == (1, 1)
    assert data.water is not None and data.water.total == 0
    assert data.water.by_kind == []
    assert [e.action for e in data.events] == ["member.create"]


def test_dashboard_needs_view(tenant, engine):
    start = last_audit_seq(engine, tenant)
    with pytest.raises(PermissionDenied):
        dashboard.load(actor_with(tenant, {f: Level.EDIT for f in Function if f != "dashboard"}))
    (event,) = audit_events(engine, tenant, after_seq=start)
    assert json.loads(event.details)["function"] == "dashboard"


def test_an_empty_brigade_has_zero_figures(tenant):
    data = dashboard.load(viewer(tenant, water_sources=Level.VIEW), today=TODAY)
    assert data.members.by_unit == []
    assert all(c.count == 0 for c in data.members.by_rank)
    assert (data.members.active, data.members.not_linked) == (0, 0)
    assert data.water is not None and (data.water.total, data.water.overdue) == (0, 0)
