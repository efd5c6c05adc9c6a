"""#15: nobody climbs past what the brigade set. Each finding of the issue as a regression
test, on the default matrix with real sessions (SQLite and PostgreSQL alike)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date

import pytest

from core.actor import Actor
from formats import backup as fmt
from formats import csv_safe, member_csv
from models import MemberPublic, MemberUpdate
from models.enums import Function, Level, MemberStatus
from models.water import WaterInspectionCreate
from services import backup, members, permissions, registrations, roles, water_sources
from services import member_import as mi
from services.errors import PermissionDenied
from services.imports import MissingRows
from services.permissions import CellChange, Grant
from services.signin import sessions
from tests.factories import (
    admin,
    brigade_name,
    give_login,
    make_member,
    make_tenant,
    open_member_session,
    rank_id,
    rebuilt_backup,
    restore,
)
from tests.water_factories import make_source


def signed_in(tenant: uuid.UUID, member: MemberPublic) -> Actor:
    actor = sessions.resolve(open_member_session(tenant, member.id))
    assert actor is not None
    return actor


@dataclass
class Brigade:
    tenant: uuid.UUID
    chief: MemberPublic  # 団長, signs in with a password
    deputy: MemberPublic  # 副団長 (管理 too)
    leader: MemberPublic  # 分団長, 第1分団
    sub_leader: MemberPublic  # 副分団長, 第1分団
    plain: MemberPublic  # 団員, 第1分団
    other: MemberPublic  # 団員, 第2分団


@pytest.fixture
def brigade(engine) -> Brigade:
    tenant = make_tenant()
    chief = make_member(tenant, rank_id=rank_id(tenant, "団長"), affiliation="本部")
    give_login(tenant, chief.id)
    roles.create_role(admin(tenant), name="庶務", rank_id=rank_id(tenant))  # default grants
    return Brigade(
        tenant,
        chief,
        make_member(tenant, rank_id=rank_id(tenant, "副団長"), affiliation="本部"),
        make_member(tenant, rank_id=rank_id(tenant, "分団長"), affiliation="第1分団"),
        make_member(tenant, rank_id=rank_id(tenant, "副分団長"), affiliation="第1分団"),
        make_member(tenant, affiliation="第1分団"),
        make_member(tenant, affiliation="第2分団"),
    )


def shomu(b: Brigade) -> uuid.UUID:
    return next(r.id for r in members.list_roles(admin(b.tenant)) if r.name == "庶務")


def status(b: Brigade, member: MemberPublic) -> MemberStatus:
    return members.get_member(admin(b.tenant), member.id).status


# 1 -------------------------------------------------------------------------------------------


@pytest.mark.usefixtures("line_login_channel")
def test_1_a_unit_leader_cannot_take_over_the_chief_through_a_registration_code(brigade):
    b = brigade
    leader = signed_in(b.tenant, b.leader)
    with pytest.raises(PermissionDenied, match="権限を持つ団員は操作できません"):
        registrations.issue_registration(leader, b.chief.id)
    with pytest.raises(PermissionDenied, match="権限を持つ団員は操作できません"):
        registrations.unlink_line(leader, b.deputy.id)
    assert registrations.issue_registration(leader, b.plain.id).member_id == b.plain.id


@pytest.mark.usefixtures("line_login_channel")
def test_1_a_code_for_a_password_user_or_a_permission_editor_needs_admin(brigade):
    b = brigade
    give_login(b.tenant, b.plain.id)
    leader = signed_in(b.tenant, b.leader)
    with pytest.raises(PermissionDenied, match="管理権限を持つ人だけ"):
        registrations.issue_registration(leader, b.plain.id)
    deputy = signed_in(b.tenant, b.deputy)
    assert registrations.issue_registration(deputy, b.plain.id).member_id == b.plain.id
    assert registrations.issue_registration(deputy, b.chief.id).member_id == b.chief.id


# 2 -------------------------------------------------------------------------------------------


def test_2_nobody_gives_himself_a_role(brigade):
    b = brigade
    for who in (b.sub_leader, b.leader):
        actor = signed_in(b.tenant, who)
        with pytest.raises(PermissionDenied, match="自分自身の階級・役職は変更できません"):
            members.update_member(
                actor, who.id, data=MemberUpdate(role_ids=[shomu(b)]), expected_version=1
            )
    assert members.get_member(admin(b.tenant), b.leader.id).role_ids == []


def test_2_a_narrowed_editor_cannot_hand_out_brigade_wide_rights(brigade):
    b = brigade
    permissions.update_matrix(
        admin(b.tenant),
        [CellChange("rank", rank_id(b.tenant, "分団長"), Function.ROSTER, Grant(Level.EDIT, True))],
    )
    leader = signed_in(b.tenant, b.leader)
    with pytest.raises(PermissionDenied, match="自分の権限を超える"):
        members.update_member(
            leader, b.plain.id, data=MemberUpdate(role_ids=[shomu(b)]), expected_version=1
        )


def test_2_the_same_through_a_csv_row(brigade):
    b = brigade
    leader = signed_in(b.tenant, b.leader)
    cells = member_csv.cells(members.get_member(admin(b.tenant), b.leader.id))
    data = csv_safe.encode(
        [member_csv.HEADERS[k] for k in cells],
        [[("庶務" if k == "roles" else v) for k, v in cells.items()]],
    )
    planned = mi.preview_member_import(leader, data=data, filename="団員.csv")
    assert not planned.ready
    assert [(e.column, e.message) for e in planned.errors] == [
        ("役職", "自分自身の階級・役職は変更できません（役職・権限の管理権限が必要です）。")
    ]


# 3 -------------------------------------------------------------------------------------------


def test_3_a_unit_leader_cannot_retire_or_suspend_an_administrator(brigade):
    b = brigade
    leader = signed_in(b.tenant, b.leader)
    for attempt in (members.retire_member, members.suspend_member):
        with pytest.raises(PermissionDenied):
            attempt(leader, b.deputy.id)
    rows = [member_csv.cells(members.get_member(admin(b.tenant), b.deputy.id))]
    rows[0]["status"] = MemberStatus.RETIRED.label
    data = csv_safe.encode([member_csv.HEADERS[k] for k in rows[0]], [list(rows[0].values())])
    planned = mi.preview_member_import(leader, data=data, filename="団員.csv")
    assert [e.column for e in planned.errors] == ["団員番号"]
    assert status(b, b.deputy) == MemberStatus.ACTIVE


# 4 -------------------------------------------------------------------------------------------


def _edited_roster(made: backup.BackupFile, edit) -> bytes:
    contents = fmt.read_zip(made.data).files
    parsed = member_csv.parse(contents[fmt.MEMBERS], fmt.MEMBERS)
    headers = [member_csv.HEADERS[k] for k in member_csv.HEADERS]
    rows = []
    for _, raw, _ in parsed.records:
        raw = edit(dict(raw))
        rows.append([raw.get(k, "") for k in member_csv.HEADERS])
    return rebuilt_backup(made, {fmt.MEMBERS: csv_safe.encode(headers, rows)})


def test_4_a_restore_applies_the_restorers_scope_and_the_ceiling_row_by_row(brigade):
    b = brigade
    fukubun = rank_id(b.tenant, "副分団長")
    permissions.update_matrix(
        admin(b.tenant),
        [
            CellChange("rank", fukubun, Function.RESTORE, Grant(Level.EDIT)),
            CellChange("rank", fukubun, Function.ROSTER, Grant(Level.EDIT, True)),
        ],
    )
    made = backup.create_backup(admin(b.tenant))

    def edit(raw: dict[str, str]) -> dict[str, str]:
        if raw["member_code"] == b.other.member_code:
            raw["status"] = MemberStatus.SUSPENDED.label  # another unit's member
        if raw["member_code"] == b.chief.member_code:
            raw["name"] = "改ざん　太郎"  # renaming the 団長
        if raw["member_code"] == b.sub_leader.member_code:
            raw["roles"] = "庶務"  # himself
        return raw

    restorer = signed_in(b.tenant, b.sub_leader)
    preview = backup.inspect_backup(restorer, data=_edited_roster(made, edit))
    assert not preview.ready
    errors = {e.row: (e.column, e.message) for e in preview.plans[backup.MEMBERS].errors}
    assert len(errors) == 3
    assert {column for column, _ in errors.values()} == {"所属", "役職"}
    with pytest.raises(Exception):  # noqa: B017 (refused one way or another, nothing written)
        restore(restorer, preview)
    assert status(b, b.other) == MemberStatus.ACTIVE
    assert members.get_member(admin(b.tenant), b.chief.id).name == b.chief.name
    assert members.get_member(admin(b.tenant), b.sub_leader.id).role_ids == []


# 5 -------------------------------------------------------------------------------------------


def test_5_no_bulk_change_retires_the_person_running_it(brigade):
    b = brigade
    chief = signed_in(b.tenant, b.chief)
    rows = [member_csv.cells(b.plain)]
    data = csv_safe.encode([member_csv.HEADERS[k] for k in rows[0]], [list(rows[0].values())])
    planned = mi.preview_member_import(chief, data=data, filename="団員.csv")
    assert b.chief.member_code not in planned.missing
    mi.apply_member_import(
        chief, planned, missing=MissingRows.RETIRE, confirm_name=brigade_name(b.tenant)
    )
    assert status(b, b.chief) == MemberStatus.ACTIVE
    assert status(b, b.deputy) == MemberStatus.RETIRED  # 管理 may retire another 管理 holder


# 7 -------------------------------------------------------------------------------------------


def test_7_the_inspector_picker_shows_names_only_to_roster_viewers(brigade):
    b = brigade
    kikan = rank_id(b.tenant, "団員")
    permissions.update_matrix(
        admin(b.tenant),
        [
            CellChange("rank", kikan, Function.INSPECTIONS, Grant(Level.EDIT)),
            CellChange("rank", kikan, Function.ROSTER, Grant()),
        ],
    )
    inspector = signed_in(b.tenant, b.plain)
    (only,) = water_sources.inspector_choices(inspector)
    assert only.member_id == b.plain.id
    source = make_source(b.tenant)
    with pytest.raises(Exception, match="点検者"):
        water_sources.record_inspection(
            inspector,
            source.id,
            data=WaterInspectionCreate(
                inspected_on=date.today(), result="異常なし", inspector_member_id=b.chief.id
            ),
        )
    leader = signed_in(b.tenant, b.leader)
    assert len(water_sources.inspector_choices(leader)) == 6
