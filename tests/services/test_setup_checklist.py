"""はじめの設定 (#18): each step ticks from the brigade's own data, never from another
brigade's; only the brigade's administrators get the list, and only the steps whose page they
may open and do."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import event

from core.actor import Actor
from models.enums import Function, Level
from services import brigade_settings, members, roles, setup_checklist, tenants
from services.errors import PermissionDenied
from services.setup_checklist import Step
from tests.dispatch_factories import make_source as make_mail_source
from tests.factories import (
    PASSWORD,
    PLATFORM,
    actor_with,
    admin,
    link_line,
    make_member,
    rank_id,
)
from tests.fakes.line_server import configured
from tests.report_factories import actor_of
from tests.water_factories import make_source as make_water_source

LINE_ENV = {"HIKESHI_LINE_CHANNEL_ID": "1650000000", "HIKESHI_LINE_CHANNEL_SECRET": "s" * 32}
NO_LINE = {"HIKESHI_LINE_CHANNEL_ID": "", "HIKESHI_LINE_CHANNEL_SECRET": ""}
ALL_STEPS = ["区域の中心", "団員", "分団", "消防水利", "役職", "LINE連携", "出動指令メールの受信元"]


def new_brigade() -> tuple[uuid.UUID, Actor]:
    """A brigade as the operator makes it (seeded ranks, its first administrator, no 所属)."""
    tenant_id = tenants.create_brigade(
        PLATFORM,
        name=f"設定消防団{uuid.uuid4().hex[:8]}",
        municipality="テスト市",
        admin_code="A-1",
        admin_name="初代　団長",
        admin_login=f"setup-{uuid.uuid4().hex[:10]}",
        admin_password=PASSWORD,
    )
    (chief,) = members.list_members(admin(tenant_id))
    return tenant_id, actor_of(tenant_id, chief.id)


def steps(actor: Actor) -> dict[str, Step]:
    with configured(LINE_ENV):
        return {s.label: s for s in setup_checklist.checklist(actor).steps}


def set_area_centre(tenant_id: uuid.UUID) -> None:
    brigade_settings.update_water_map_settings(
        admin(tenant_id),
        coverage_radius_m=120,
        area_center_lat=35.0,
        area_center_lon=139.0,
        area_radius_km=8,
        expected_version=0,
    )


def set_up_everything(tenant_id: uuid.UUID) -> None:
    set_area_centre(tenant_id)
    member = make_member(tenant_id, affiliation="第2分団 第1部")
    roles.create_role(admin(tenant_id), name="庶務", rank_id=rank_id(tenant_id, "団員"))
    make_water_source(tenant_id)
    link_line(tenant_id, member.id, f"U{uuid.uuid4().hex}")
    make_mail_source(tenant_id)


def test_a_new_brigade_has_every_step_open(engine):
    _, chief = new_brigade()
    found = steps(chief)
    assert list(found) == ALL_STEPS
    assert not any(s.done for s in found.values())
    assert found["団員"].found == "在籍 1名"  # the administrator alone
    assert [s.page for s in found.values()] == [
        "brigade-settings",
        "roster",
        "roster",
        "water-map",
        "permissions",
        "accounts",
        "mail-sources",
    ]
    assert [s.label for s in found.values() if not s.required] == [
        "役職",
        "LINE連携",
        "出動指令メールの受信元",
    ]
    assert setup_checklist.checklist(chief).required_open


def test_each_step_ticks_when_its_data_exists(engine):
    tenant_id, chief = new_brigade()

    set_area_centre(tenant_id)
    assert steps(chief)["区域の中心"].done
    assert steps(chief)["区域の中心"].found == "35.00000, 139.00000（半径 8 km）"

    make_member(tenant_id, affiliation="")
    after = steps(chief)
    assert after["団員"].done and after["団員"].found == "在籍 2名"
    assert not after["分団"].done  # nobody has a 所属 yet
    make_member(tenant_id, affiliation="第10分団")
    make_member(tenant_id, affiliation="第2分団 第1部")
    assert steps(chief)["分団"].done
    assert steps(chief)["分団"].found == "2件（第2分団・第10分団）"

    roles.create_role(admin(tenant_id), name="会計", rank_id=rank_id(tenant_id, "副分団長"))
    assert steps(chief)["役職"].found == "1件（会計）"

    make_water_source(tenant_id)
    assert steps(chief)["消防水利"].done and steps(chief)["消防水利"].found == "1件"

    linked = make_member(tenant_id)
    link_line(tenant_id, linked.id, f"U{uuid.uuid4().hex}")
    assert steps(chief)["LINE連携"].found == "1名が連携済み"

    make_mail_source(tenant_id)
    final = setup_checklist.checklist(chief)
    assert all(s.done for s in final.steps) and not final.open_steps


def test_what_is_not_in_use_does_not_tick(engine):
    """A saved radius without a centre, a retired member and their 所属 and LINE link, and a
    switched-off mail source are not setup done."""
    tenant_id, chief = new_brigade()
    brigade_settings.update_water_map_settings(
        admin(tenant_id), coverage_radius_m=100, expected_version=0
    )
    gone = make_member(tenant_id, affiliation="第3分団")
    link_line(tenant_id, gone.id, f"U{uuid.uuid4().hex}")
    members.retire_member(admin(tenant_id), gone.id)
    make_mail_source(tenant_id, active=False)
    found = steps(chief)
    for label in ("区域の中心", "団員", "分団", "LINE連携", "出動指令メールの受信元"):
        assert not found[label].done, label
    assert found["LINE連携"].found == ""  # nothing worth saying


def test_only_optional_steps_left_is_not_required_open(engine):
    tenant_id, chief = new_brigade()
    set_area_centre(tenant_id)
    make_member(tenant_id, affiliation="第1分団")
    make_water_source(tenant_id)
    checklist = setup_checklist.checklist(chief)
    assert not checklist.required_open
    assert [s.label for s in checklist.open_steps] == ["役職", "出動指令メールの受信元"]


def test_another_brigades_setup_never_ticks_ours(engine):
    other, _ = new_brigade()
    set_up_everything(other)
    _, chief = new_brigade()
    assert not any(s.done for s in steps(chief).values())
    assert steps(chief)["団員"].found == "在籍 1名"


def test_the_line_step_is_left_out_without_the_installations_line_login(engine):
    _, chief = new_brigade()
    with configured(NO_LINE):
        labels = [s.label for s in setup_checklist.checklist(chief).steps]
    assert "LINE連携" not in labels and len(labels) == len(ALL_STEPS) - 1


@pytest.mark.parametrize(
    ("levels", "expected"),
    [
        ({Function.ROSTER: Level.EDIT}, ["団員", "分団"]),
        ({Function.PERMISSIONS: Level.EDIT}, ["役職"]),
        (
            {
                Function.PERMISSIONS: Level.EDIT,
                Function.WATER_SOURCES: Level.EDIT,
                Function.SETTINGS: Level.VIEW,  # may not change the area
                Function.DISPATCH: Level.EDIT,  # the mail page needs 管理
                Function.MEMBER_ACCOUNTS: Level.VIEW,
            },
            ["消防水利", "役職"],
        ),
        (
            {
                Function.ROSTER: Level.EDIT,
                Function.WATER_SOURCES: Level.VIEW,
                Function.SETTINGS: Level.EDIT,
                Function.MEMBER_ACCOUNTS: Level.EDIT,
                Function.DISPATCH: Level.ADMIN,
            },
            ["区域の中心", "団員", "分団", "LINE連携", "出動指令メールの受信元"],
        ),
    ],
)
def test_only_the_steps_the_actor_may_open_and_do(engine, levels, expected):
    tenant_id, _ = new_brigade()
    actor = actor_with(tenant_id, levels)
    assert setup_checklist.offered(actor)
    assert list(steps(actor)) == expected


@pytest.mark.parametrize(
    "levels",
    [
        {Function.WATER_SOURCES: Level.EDIT, Function.DISPATCH: Level.ADMIN},
        {Function.ROSTER: Level.VIEW, Function.PERMISSIONS: Level.VIEW},
        {},
    ],
)
def test_no_checklist_for_who_administers_neither_roster_nor_permissions(engine, levels):
    tenant_id, _ = new_brigade()
    actor = actor_with(tenant_id, levels)
    assert not setup_checklist.offered(actor)
    with pytest.raises(PermissionDenied):
        setup_checklist.checklist(actor)


def test_a_plain_member_gets_no_checklist(engine):
    tenant_id, _ = new_brigade()
    plain = make_member(tenant_id, rank_id=rank_id(tenant_id, "団員"))
    actor = actor_of(tenant_id, plain.id)
    assert not setup_checklist.offered(actor)
    with pytest.raises(PermissionDenied):
        setup_checklist.checklist(actor)


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


def test_the_number_of_queries_does_not_grow_with_the_brigade(engine):
    small, small_chief = new_brigade()
    large, large_chief = new_brigade()
    for tenant_id in (small, large):
        set_up_everything(tenant_id)
    for n in range(4):
        member = make_member(large, affiliation=f"第{n + 3}分団")
        link_line(large, member.id, f"U{uuid.uuid4().hex}")
        roles.create_role(admin(large), name=f"役職{n}", rank_id=rank_id(large, "団員"))
        make_water_source(large)
        make_mail_source(large)
    steps(small_chief)
    with configured(LINE_ENV):
        few = statements(engine, lambda: setup_checklist.checklist(small_chief))
        assert statements(engine, lambda: setup_checklist.checklist(large_chief)) == few
    assert few <= 8, few
