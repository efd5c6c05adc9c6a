"""Safe bulk changes (#17): the typed brigade name above min(10 rows, 10 %), the automatic
pre-change backup (kept 35 days, at most KEEP per brigade, sealed, one brigade's only), 元に戻す
through the normal restore, and the acting member never retired by an import."""

from __future__ import annotations

import json
import uuid
from datetime import date, timedelta

import pytest
from sqlmodel import select

from core.actor import Actor
from formats import csv_safe, member_csv
from models import PreChangeBackup, Tenant
from models.base import utcnow
from models.enums import Function, Level, MemberStatus
from models.water import WaterInspection, WaterInspectionCreate
from services import backup, bulk_guard, pre_change, water_import, water_sources
from services import member_import as mi
from services.db import unit_of_work
from services.errors import Conflict, NotFound, PermissionDenied, ValidationError
from services.imports import MissingRows
from services.signin import sessions
from tests.factories import (
    actor_with,
    admin,
    make_member,
    make_tenant,
    open_member_session,
    rank_id,
)
from tests.fixtures.water_files import hydrant, layout_file, stored
from tests.water_factories import make_source

KEYS = tuple(column.key for column in member_csv.COLUMNS)


def csv_file(codes: list[str]) -> bytes:
    headers = [member_csv.HEADERS[key] for key in KEYS]
    rows = [{"member_code": c, "name": f"消防　{c}", "rank": "団員"} for c in codes]
    return csv_safe.encode(headers, [[r.get(key, "") for key in KEYS] for r in rows])


def brigade_name(tenant_id: uuid.UUID) -> str:
    with unit_of_work(None) as db:
        tenant = db.get(Tenant, tenant_id)
        assert tenant is not None
        return tenant.name


def codes(count: int) -> list[str]:
    return [f"M{n:04d}" for n in range(count)]


def roster_of(tenant_id: uuid.UUID, count: int) -> list[str]:
    """A brigade with `count` active members, made by one import (no backup: nothing retired)."""
    made = codes(count)
    found = mi.preview_member_import(admin(tenant_id), data=csv_file(made), filename="a.csv")
    mi.apply_member_import(admin(tenant_id), found, missing=MissingRows.KEEP)
    return made


def statuses(tenant_id: uuid.UUID) -> dict[str, MemberStatus]:
    from services import members

    return {m.member_code: m.status for m in members.list_members(admin(tenant_id))}


def stored_backups(tenant_id: uuid.UUID) -> list[PreChangeBackup]:
    with unit_of_work(tenant_id) as db:
        query = select(PreChangeBackup).where(PreChangeBackup.tenant_id == tenant_id)
        return list(db.exec(query).all())


def keep_only(tenant_id: uuid.UUID, kept: list[str], actor: Actor | None = None, **kwargs):
    actor = actor or admin(tenant_id)
    found = mi.preview_member_import(actor, data=csv_file(kept), filename="分団.csv")
    return found, lambda **more: mi.apply_member_import(
        actor, found, missing=MissingRows.RETIRE, **kwargs, **more
    )


# -- the threshold -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("count", "total", "needed"),
    [
        (0, 0, False),
        (9, 144, False),
        (10, 144, False),  # 10 rows: allowed
        (11, 144, True),
        (10, 100, False),  # 10 rows and 10 % at once
        (11, 100, True),
        (3, 30, False),  # 10 % of 30 is 3: allowed
        (4, 30, True),
        (1, 5, True),  # 10 % of 5 is half a row: any retirement needs the name
    ],
)
def test_the_threshold_is_the_smaller_of_ten_rows_and_ten_percent(count, total, needed):
    assert bulk_guard.needs_name(count, total) is needed


def test_the_name_is_compared_after_nfkc_and_trimming():
    bulk_guard.check(20, 100, brigade="テスト消防団A", confirm_name="  ﾃｽﾄ消防団Ａ ", what="x")
    with pytest.raises(ValidationError) as refused:
        bulk_guard.check(20, 100, brigade="テスト消防団A", confirm_name="テスト消防団", what="x")
    assert "一致しません" in refused.value.errors["confirm_name"]


def test_ten_of_a_hundred_and_ten_needs_no_name_eleven_does(tenant):
    made = roster_of(tenant, 110)
    found, apply = keep_only(tenant, made[11:])
    assert (found.retiring(MissingRows.RETIRE), found.current) == (11, 110)
    assert found.needs_name(MissingRows.RETIRE) and not found.needs_name(MissingRows.KEEP)
    with pytest.raises(ValidationError) as refused:
        apply()
    assert "退団 11名" in refused.value.errors["confirm_name"]
    assert brigade_name(tenant) in refused.value.errors["confirm_name"]

    found, apply = keep_only(tenant, made[10:])
    assert not found.needs_name(MissingRows.RETIRE)
    assert apply().retired == 10


def test_ten_percent_of_a_small_brigade(tenant):
    made = roster_of(tenant, 30)
    _, apply = keep_only(tenant, made[4:])
    with pytest.raises(ValidationError):
        apply()
    _, apply = keep_only(tenant, made[3:])
    assert apply().retired == 3


# -- refused: nothing written ------------------------------------------------------------------


@pytest.mark.parametrize("typed", [None, "", "よその消防団"])
def test_a_missing_or_wrong_name_writes_nothing(tenant, watch, typed):
    made = roster_of(tenant, 144)
    audit = watch(tenant)
    _, apply = keep_only(tenant, made[:29])
    with pytest.raises(ValidationError):
        apply(confirm_name=typed)
    assert set(statuses(tenant).values()) == {MemberStatus.ACTIVE}
    assert stored_backups(tenant) == []
    assert [e.action for e in audit.new()] == []


def test_the_typed_name_lets_the_retirement_through_after_a_backup(tenant, watch):
    made = roster_of(tenant, 144)
    audit = watch(tenant)
    _, apply = keep_only(tenant, made[:29])
    result = apply(confirm_name=f" {brigade_name(tenant)} ")
    assert result.retired == 115 and result.backup_id is not None
    [entry] = pre_change.list_backups(admin(tenant))
    assert entry.id == result.backup_id
    assert entry.reason == "CSV一括登録（団員）: 退団 115名"
    assert entry.actor_label == "test-admin" and entry.bytes > 0
    actions = [e.action for e in audit.new()]
    assert actions == ["backup.pre_change", "member.import"]
    assert json.loads(audit.new()[1].details)["pre_change_backup"] == str(entry.id)


def test_the_backup_is_stored_sealed(tenant):
    made = roster_of(tenant, 5)
    keep_only(tenant, made[:4])[1](confirm_name=brigade_name(tenant))
    [row] = stored_backups(tenant)
    assert row.data_enc.startswith("v1:") and "UEsDB" not in row.data_enc  # not the ZIP's base64


def test_a_small_retirement_needs_no_name_but_is_backed_up(tenant):
    made = roster_of(tenant, 200)
    result = keep_only(tenant, made[1:])[1]()
    assert result.retired == 1 and result.backup_id is not None


def test_keeping_missing_rows_takes_no_backup(tenant):
    made = roster_of(tenant, 20)
    found = mi.preview_member_import(admin(tenant), data=csv_file(made[:1]), filename="a.csv")
    result = mi.apply_member_import(admin(tenant), found, missing=MissingRows.KEEP)
    assert result.backup_id is None and stored_backups(tenant) == []


# -- the acting member --------------------------------------------------------------------------


def test_the_acting_member_is_never_retired_and_is_told_so(tenant):
    chief = make_member(tenant, member_code="C0001", rank_id=rank_id(tenant, "団長"))
    made = roster_of(tenant, 3)
    actor = sessions.resolve(open_member_session(tenant, chief.id))
    assert actor is not None
    found, apply = keep_only(tenant, made[:1], actor=actor)
    assert "C0001" not in found.missing
    assert any("あなた自身（団員番号 C0001）" in note for note in found.notes)
    result = apply(confirm_name=brigade_name(tenant))
    assert result.kept_self == "C0001" and result.retired == 2
    assert statuses(tenant)["C0001"] == MemberStatus.ACTIVE


# -- 元に戻す --------------------------------------------------------------------------------------


def undo(actor: Actor, backup_id: uuid.UUID):
    found = backup.inspect_backup(actor, data=pre_change.backup_data(actor, backup_id))
    assert found.ready and not found.other_brigade, found.errors
    return pre_change.undo(actor, backup_id)


def test_undo_brings_the_retired_members_back(tenant, watch):
    made = roster_of(tenant, 144)
    result = keep_only(tenant, made[:29])[1](confirm_name=brigade_name(tenant))
    assert list(statuses(tenant).values()).count(MemberStatus.ACTIVE) == 29
    audit = watch(tenant)
    undo(admin(tenant), result.backup_id)
    assert set(statuses(tenant).values()) == {MemberStatus.ACTIVE}
    assert len(statuses(tenant)) == 144
    events = {e.action: e for e in audit.new()}
    assert "backup.pre_change_open" in events
    assert json.loads(events["backup.restore"].details)["undoing"] == str(result.backup_id)


def test_undo_brings_deleted_water_sources_back_with_their_inspections(tenant):
    for n in range(12):
        make_source(tenant, code=f"W-{n:02d}")
    gone = make_source(tenant, code="GONE-1")
    water_sources.record_inspection(
        admin(tenant),
        gone.id,
        data=WaterInspectionCreate(inspected_on=date(2024, 5, 1), result="異常なし"),
    )
    found = water_import.preview_water_import(
        admin(tenant), data=layout_file([hydrant("W-00")]), filename="w.csv"
    )
    assert found.needs_name(MissingRows.RETIRE) and found.current == 13
    with pytest.raises(ValidationError) as refused:
        water_import.apply_water_import(admin(tenant), found, missing=MissingRows.RETIRE)
    assert "削除（廃止） 12件" in refused.value.errors["confirm_name"]
    assert len(stored(tenant)) == 13
    result = water_import.apply_water_import(
        admin(tenant), found, missing=MissingRows.RETIRE, confirm_name=brigade_name(tenant)
    )
    assert result.retired == 12 and set(stored(tenant)) == {"W-00"}
    [entry] = pre_change.list_backups(admin(tenant))
    assert entry.reason == "CSV一括登録（消防水利）: 削除（廃止） 12件"
    undo(admin(tenant), entry.id)
    assert len(stored(tenant)) == 13
    with unit_of_work(tenant) as db:
        query = select(WaterInspection).where(WaterInspection.tenant_id == tenant)
        assert len(db.exec(query).all()) == 1


def test_undoing_a_change_can_itself_be_undone(tenant):
    made = roster_of(tenant, 20)
    first = keep_only(tenant, made[:18])[1]()
    assert first.retired == 2
    add = mi.preview_member_import(admin(tenant), data=csv_file(["NEW1"]), filename="n.csv")
    mi.apply_member_import(admin(tenant), add, missing=MissingRows.KEEP)
    undo(admin(tenant), first.backup_id)  # NEW1 is not in that backup: retired, backed up first
    assert statuses(tenant)["NEW1"] == MemberStatus.RETIRED
    newest = pre_change.list_backups(admin(tenant))[0]
    assert newest.reason.startswith("元に戻す（") and "退団・利用停止・削除 1件" in newest.reason


# -- retention, bounds, isolation, permission --------------------------------------------------


def test_backups_are_purged_after_35_days(tenant):
    made = roster_of(tenant, 20)
    keep_only(tenant, made[:19])[1]()
    pre_change.purge_expired(utcnow() + timedelta(days=34))
    assert len(stored_backups(tenant)) == 1
    assert pre_change.purge_expired(utcnow() + timedelta(days=35, minutes=1)) >= 1
    assert stored_backups(tenant) == []


def test_at_most_keep_backups_per_brigade(tenant, monkeypatch):
    monkeypatch.setattr(pre_change, "KEEP", 2)
    made = roster_of(tenant, 200)
    for n in range(3):
        keep_only(tenant, made[: 199 - n])[1]()
    kept = pre_change.list_backups(admin(tenant))
    assert [e.reason for e in kept] == [
        "CSV一括登録（団員）: 退団 1名",
        "CSV一括登録（団員）: 退団 1名",
    ]
    assert len(stored_backups(tenant)) == 2


def test_another_brigade_sees_none_of_them(tenant):
    made = roster_of(tenant, 20)
    result = keep_only(tenant, made[:19])[1]()
    other = make_tenant()
    assert pre_change.list_backups(admin(other)) == []
    with pytest.raises(NotFound):
        pre_change.backup_data(admin(other), result.backup_id)


def test_listing_and_opening_need_restore_editing(tenant):
    made = roster_of(tenant, 20)
    result = keep_only(tenant, made[:19])[1]()
    viewer = actor_with(tenant, {Function.RESTORE: Level.VIEW, Function.CSV_IMPORT: Level.EDIT})
    with pytest.raises(PermissionDenied):
        pre_change.list_backups(viewer)
    with pytest.raises(PermissionDenied):
        pre_change.backup_data(viewer, result.backup_id)
    editor = actor_with(tenant, {Function.RESTORE: Level.EDIT})
    assert [e.id for e in pre_change.list_backups(editor)] == [result.backup_id]


def test_suspending_through_the_file_is_backed_up_too(tenant):
    made = roster_of(tenant, 20)
    headers = [member_csv.HEADERS[key] for key in KEYS]
    rows = [
        {
            "member_code": c,
            "name": f"消防　{c}",
            "rank": "団員",
            "status": "停止中" if i == 0 else "",
        }
        for i, c in enumerate(made)
    ]
    data = csv_safe.encode(headers, [[r.get(key, "") for key in KEYS] for r in rows])
    found = mi.preview_member_import(admin(tenant), data=data, filename="a.csv")
    assert found.ready, [str(e) for e in found.errors]
    result = mi.apply_member_import(admin(tenant), found, missing=MissingRows.KEEP)
    assert result.updated == 1 and result.backup_id is not None
    [entry] = pre_change.list_backups(admin(tenant))
    assert entry.reason == "CSV一括登録（団員）: 利用停止 1名"


# -- restores ----------------------------------------------------------------------------------


def test_a_restore_retiring_more_than_the_threshold_needs_the_name(tenant, watch):
    """The service, not only the page, asks for the name when a restore retires many."""
    made = roster_of(tenant, 12)
    old = backup.create_backup(admin(tenant)).data  # 12 members
    add = mi.preview_member_import(admin(tenant), data=csv_file(codes(30)[12:]), filename="n.csv")
    mi.apply_member_import(admin(tenant), add, missing=MissingRows.KEEP)  # 30 members now
    found = backup.inspect_backup(admin(tenant), data=old)
    assert found.ready and found.plans[backup.MEMBERS].retiring(MissingRows.RETIRE) == 18
    audit = watch(tenant)
    for typed in (None, "別の消防団"):
        with pytest.raises(ValidationError) as refused:
            backup.restore_backup(admin(tenant), found, confirm_name=typed)
        assert "退団 18名" in refused.value.errors["confirm_name"]
    assert list(statuses(tenant).values()).count(MemberStatus.ACTIVE) == 30
    assert stored_backups(tenant) == [] and audit.new() == []
    backup.restore_backup(admin(tenant), found, confirm_name=f" {brigade_name(tenant)} ")
    active = [c for c, s in statuses(tenant).items() if s == MemberStatus.ACTIVE]
    assert sorted(active) == sorted(made)
    [entry] = pre_change.list_backups(admin(tenant))
    assert entry.reason.endswith("退団・利用停止・削除 18件")
    # 「元に戻す」 returns to a state the brigade had; its dialog is the confirmation
    undo(admin(tenant), entry.id)
    assert list(statuses(tenant).values()).count(MemberStatus.ACTIVE) == 30


def test_a_restore_that_only_suspends_is_backed_up_first(tenant):
    made = roster_of(tenant, 5)
    suspend = mi.preview_member_import(
        admin(tenant),
        data=csv_safe.encode(
            [member_csv.HEADERS[k] for k in ("member_code", "name", "rank", "status")],
            [[made[0], f"消防　{made[0]}", "団員", "停止中"]],
        ),
        filename="s.csv",
    )
    mi.apply_member_import(admin(tenant), suspend, missing=MissingRows.KEEP)
    suspended = backup.create_backup(admin(tenant)).data
    [entry] = pre_change.list_backups(admin(tenant))
    pre_change.undo(admin(tenant), entry.id)  # the member is active again
    assert statuses(tenant)[made[0]] == MemberStatus.ACTIVE
    found = backup.inspect_backup(admin(tenant), data=suspended)
    assert found.plans[backup.MEMBERS].suspending_rows == 1
    before = len(pre_change.list_backups(admin(tenant)))
    backup.restore_backup(admin(tenant), found)  # one of five: no name needed
    assert statuses(tenant)[made[0]] == MemberStatus.SUSPENDED
    newest = pre_change.list_backups(admin(tenant))
    assert len(newest) == before + 1 and newest[0].reason.endswith("退団・利用停止・削除 1件")


# -- each brigade's own limits (団設定) ----------------------------------------------------------


def test_a_brigade_sets_its_own_limits_and_another_keeps_the_defaults(tenant, engine):
    from services import brigade_settings

    other = make_tenant()
    limits = brigade_settings.update_bulk_limits(
        admin(tenant), rows=30, percent=50, expected_version=0
    )
    assert limits.text == "30件または50%"
    made = roster_of(tenant, 100)
    found, apply = keep_only(tenant, made[:75])  # 25 of 100: within 30 and 50 %
    assert not found.needs_name(MissingRows.RETIRE) and found.limits == limits
    assert apply().retired == 25

    theirs = roster_of(other, 100)
    found, apply = keep_only(other, theirs[:75])  # the defaults: above 10 rows
    assert found.needs_name(MissingRows.RETIRE)
    with pytest.raises(ValidationError) as refused:
        apply()
    assert "退団 25名" in refused.value.errors["confirm_name"]


@pytest.mark.parametrize(("rows", "percent"), [(0, 10), (1001, 10), (10, 0), (10, 101)])
def test_limits_out_of_range_are_refused(tenant, rows, percent):
    from services import brigade_settings

    with pytest.raises(ValidationError):
        brigade_settings.update_bulk_limits(
            admin(tenant), rows=rows, percent=percent, expected_version=0
        )


def test_changing_the_limits_needs_settings_editing_and_is_audited(tenant, watch):
    from services import brigade_settings

    viewer = actor_with(tenant, {Function.SETTINGS: Level.VIEW})
    with pytest.raises(PermissionDenied):
        brigade_settings.update_bulk_limits(viewer, rows=20, percent=20, expected_version=0)
    audit = watch(tenant)
    brigade_settings.update_bulk_limits(admin(tenant), rows=20, percent=20, expected_version=0)
    [event] = [e for e in audit.new() if e.action == "brigade_settings.update"]
    assert json.loads(event.details)["after"] == {"bulk_confirm": "20件または20%"}


def test_a_restore_previewed_before_members_joined_is_refused_not_left_without_undo(tenant):
    """The preview retired nobody, so no backup would be taken; members joined since would be
    retired without a way back: the restore is refused, to be previewed again."""
    made = roster_of(tenant, 3)
    found = backup.inspect_backup(admin(tenant), data=backup.create_backup(admin(tenant)).data)
    assert not any(p.missing for p in found.plans.values())
    add = mi.preview_member_import(admin(tenant), data=csv_file(["LATE1"]), filename="n.csv")
    mi.apply_member_import(admin(tenant), add, missing=MissingRows.KEEP)

    with pytest.raises(Conflict):
        backup.restore_backup(admin(tenant), found, confirm_name=brigade_name(tenant))
    assert statuses(tenant)["LATE1"] == MemberStatus.ACTIVE and stored_backups(tenant) == []
    assert all(statuses(tenant)[code] == MemberStatus.ACTIVE for code in made)


def test_undoing_skips_the_typed_name_only_for_that_backup_itself(tenant):
    made = roster_of(tenant, 30)
    result = keep_only(tenant, made[:5])[1](confirm_name=brigade_name(tenant))
    other = backup.inspect_backup(admin(tenant), data=backup.create_backup(admin(tenant)).data)
    with pytest.raises(ValidationError):  # any other file, however named as an undo
        backup.restore_backup(admin(tenant), other, undoing=result.backup_id)
    with pytest.raises(ValidationError):
        backup.restore_backup(admin(tenant), other, undoing=uuid.uuid4())
