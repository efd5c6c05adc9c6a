"""Backup and restore: a brigade restored from its backup is the brigade at the backup moment;
every refused file, permission or choice writes nothing."""

from __future__ import annotations

import io
import json
import uuid
import zipfile
from datetime import date

import pytest

from core.actor import Actor
from formats import backup as fmt
from models.enums import AuditCategory, Function, Level, MemberStatus
from models.member import MemberUpdate
from models.water import WaterInspectionCreate, WaterSourceUpdate
from services import backup, members, permissions, roles, water_sources
from services.errors import PermissionDenied, ValidationError
from services.imports import RowStatus
from services.permissions import CellChange, Grant
from services.signin import sessions
from tests.factories import (
    actor_with,
    admin,
    give_login,
    make_member,
    make_tenant,
    open_member_session,
    rank_id,
    rebuilt_backup,
)
from tests.water_factories import make_source

PASSWORD = "消防団の秘密のパスワード"
TODAY = date(2025, 4, 1)


def member_session(tenant_id: uuid.UUID, member_id: uuid.UUID) -> Actor:
    actor = sessions.resolve(open_member_session(tenant_id, member_id))
    assert actor is not None
    return actor


def populate(tenant: uuid.UUID) -> Actor:
    """Roles, members of every status, sources with inspections; returns the chief's actor."""
    boss = admin(tenant)
    clerk = roles.create_role(boss, name="庶務", rank_id=rank_id(tenant, "分団長"))
    pump = roles.create_role(boss, name="機関員", rank_id=rank_id(tenant))
    roles.create_role(boss, name="会計", rank_id=rank_id(tenant, "副分団長"))
    chief = make_member(tenant, rank_id=rank_id(tenant, "団長"), member_code="C-001")
    operator = make_member(tenant, role_ids=[pump], member_code="M-001", notes="=1+2 は文字")
    make_member(tenant, role_ids=[clerk, pump], member_code="M-002", phone="")
    members.suspend_member(boss, make_member(tenant, member_code="M-003").id)
    members.retire_member(boss, make_member(tenant, member_code="M-004").id)
    cistern = make_source(tenant, code="W-001", memo="-東側")
    make_source(tenant, code="W-002", kind="消火栓", capacity_m3=None, drop_m=None, depth_m=None)
    make_source(tenant, code="W-003", latitude=None, longitude=None)
    for data in (
        WaterInspectionCreate(
            inspected_on=TODAY, result="異常なし", inspector_member_id=operator.id, notes="良好"
        ),
        WaterInspectionCreate(inspected_on=TODAY, result="整備中", inspector_name="外部　業者"),
    ):
        water_sources.record_inspection(boss, cistern.id, data=data)
    cell = next(r for r in permissions.list_matrix(boss) if r.name == "会計")
    permissions.update_matrix(
        boss,
        [CellChange(cell.subject_type, cell.subject_id, Function.INSPECTIONS, Grant(Level.VIEW))],
    )
    return member_session(tenant, chief.id)


def snapshot(tenant: uuid.UUID, codes: set[str] | None = None) -> dict:
    """What the services show, without ids, versions and times that a restore renews."""
    boss = admin(tenant)
    people = [
        m.model_dump(exclude={"id", "rank_id", "role_ids", "version", "updated_at"})
        for m in members.list_members(boss)
        if codes is None or m.member_code in codes
    ]
    sources = water_sources.list_water_sources(boss, today=TODAY)
    return {
        "members": sorted(people, key=lambda m: m["member_code"]),
        "roles": [(r.name, r.rank_name) for r in roles.list_roles(boss)],
        "matrix": [
            (r.subject_type, r.name, r.rank_name, r.grants) for r in permissions.list_matrix(boss)
        ],
        "sources": [s.model_dump(exclude={"id", "version", "updated_at"}) for s in sources],
        "inspections": {
            s.code: [
                i.model_dump(exclude={"id", "water_source_id", "inspector_member_id"})
                for i in water_sources.list_inspections(boss, s.id)
            ]
            for s in sources
        },
    }


def mutate(tenant: uuid.UUID) -> None:
    """Edit, retire, add members; add and delete roles; change the matrix; edit, delete and add
    sources; record an inspection."""
    boss = admin(tenant)
    people = {m.member_code: m for m in members.list_members(boss)}
    changed = people["M-001"]
    members.update_member(
        boss,
        changed.id,
        data=MemberUpdate(name="改名　済み", phone="080-0000-0000", role_ids=[]),
        expected_version=changed.version,
    )
    members.retire_member(boss, people["M-002"].id)
    members.readmit_member(boss, people["M-004"].id)
    extra = roles.create_role(boss, name="新設係", rank_id=rank_id(tenant))
    make_member(tenant, member_code="N-001", role_ids=[extra])
    accountant = next(r for r in roles.list_roles(boss) if r.name == "会計")
    roles.delete_role(boss, accountant.id)
    chief_row = next(r for r in permissions.list_matrix(boss) if r.name == "分団長")
    permissions.update_matrix(
        boss, [CellChange(chief_row.subject_type, chief_row.subject_id, Function.ROSTER, Grant())]
    )
    sources = {s.code: s for s in water_sources.list_water_sources(boss)}
    water_sources.update_water_source(
        boss,
        sources["W-001"].id,
        data=WaterSourceUpdate(memo="変更"),
        expected_version=sources["W-001"].version,
    )
    water_sources.delete_water_source(
        boss, sources["W-002"].id, expected_version=sources["W-002"].version
    )
    added = make_source(tenant, code="W-009")
    water_sources.record_inspection(
        boss, added.id, data=WaterInspectionCreate(inspected_on=TODAY, result="使用不可")
    )


def details(event) -> dict:
    return json.loads(event.details)


def restore_events(engine, tenant: uuid.UUID, after: int) -> list:
    from tests.factories import audit_events

    return [
        e for e in audit_events(engine, tenant, after_seq=after) if e.action == "backup.restore"
    ]


# ---------------------------------------------------------------------------
# Creating a backup


def test_backup_holds_every_file_with_its_manifest(tenant, watch):
    chief = populate(tenant)
    audit = watch(tenant)
    made = backup.create_backup(chief)
    assert made.filename.startswith("hikeshi-backup-") and made.filename.endswith(".zip")
    assert made.filename.isascii()
    manifest = made.manifest
    assert (manifest.tenant_id, manifest.format_version) == (tenant, 1)
    assert manifest.rows == {
        fmt.ROLES: 3,
        fmt.PERMISSIONS: 10,
        fmt.MEMBERS: 5,
        fmt.WATER_SOURCES: 3,
        fmt.INSPECTIONS: 2,
    }
    with zipfile.ZipFile(io.BytesIO(made.data)) as archive:
        members_csv = archive.read(fmt.MEMBERS).decode("utf-8-sig")
    assert "'=1+2 は文字" in members_csv  # neutralised for Excel, restored exactly
    (event,) = [e for e in audit.new() if e.action == "backup.create"]
    assert details(event)["sha256"] == made.sha256
    assert details(event)["encrypted"] is False
    assert details(event)["rows"] == manifest.rows
    logged = event.details
    assert not any(text in logged for text in ("太郎", "090-", "外部")) and not event.details_enc


def test_backup_needs_every_function_it_holds(tenant, watch):
    audit = watch(tenant)
    levels = {f: Level.VIEW for f, _ in backup.BACKUP_NEEDS}
    backup.create_backup(actor_with(tenant, levels))
    for function, _ in backup.BACKUP_NEEDS:
        with pytest.raises(PermissionDenied):
            backup.create_backup(actor_with(tenant, levels | {function: Level.NONE}))
    denials = [details(e)["function"] for e in audit.new(str(AuditCategory.AUTH))]
    assert denials == [str(f) for f, _ in backup.BACKUP_NEEDS]


def test_short_password_is_refused(tenant):
    with pytest.raises(ValidationError) as err:
        backup.create_backup(admin(tenant), password="short")
    assert "12文字以上" in err.value.errors["password"]


# ---------------------------------------------------------------------------
# Restoring


def test_restore_brings_back_the_backup_moment(tenant, engine, watch):
    chief = populate(tenant)
    before = snapshot(tenant)
    made = backup.create_backup(chief)
    mutate(tenant)
    assert snapshot(tenant) != before
    preview = backup.inspect_backup(chief, data=made.data)
    assert preview.ready, (preview.errors, {k: p.errors for k, p in preview.plans.items()})
    audit = watch(tenant)
    seen: list[tuple[int, int]] = []
    result = backup.restore_backup(chief, preview, progress=lambda d, t: seen.append((d, t)))
    codes = {m["member_code"] for m in before["members"]}
    assert snapshot(tenant, codes) == before
    extra = [m for m in members.list_members(admin(tenant)) if m.member_code not in codes]
    assert [(m.member_code, m.status) for m in extra] == [("N-001", MemberStatus.RETIRED)]
    assert extra[0].role_ids == []  # its role was not in the backup and is gone
    assert (result.roles.created, result.roles.retired) == (1, 1)
    assert (result.members.updated, result.members.retired) == (3, 1)
    assert (result.water_sources.created, result.water_sources.retired) == (1, 1)
    assert (
        seen and seen[-1][0] == seen[-1][1] and [d for d, _ in seen] == sorted(d for d, _ in seen)
    )
    (event,) = [e for e in audit.new() if e.action == "backup.restore"]
    assert details(event)["sha256"] == made.sha256 and details(event)["other_brigade"] is False
    assert details(event)["source_tenant_id"] == str(tenant)
    assert details(event)["counts"]["members"]["retired"] == 1
    logged = event.details
    assert not any(text in logged for text in ("改名", "太郎", "090-", "外部", "良好"))


def test_preview_shows_what_would_change_and_writes_nothing(tenant):
    chief = populate(tenant)
    made = backup.create_backup(chief)
    mutate(tenant)
    after_mutation = snapshot(tenant)
    preview = backup.inspect_backup(chief, data=made.data)
    assert snapshot(tenant) == after_mutation  # the staged roles were rolled back
    assert preview.brigade and preview.created_at_jst and not preview.other_brigade
    people = preview.plans["members"]
    changed = next(row for row in people.rows if row.code == "M-001")
    assert changed.status == RowStatus.CHANGED
    assert {c.column for c in changed.changes} >= {"氏名", "電話番号", "役職"}
    assert people.missing == ["N-001"]
    assert preview.plans["roles"].counts[RowStatus.NEW] == 1  # 会計, deleted since
    assert preview.plans["roles"].missing == ["新設係"]
    assert preview.plans["water_sources"].missing == ["W-009"]
    assert preview.plans["permissions"].counts[RowStatus.CHANGED] >= 1
    assert preview.plans["inspections"].counts[RowStatus.UNCHANGED] == 2


def test_password_protected_round_trip(tenant):
    chief = populate(tenant)
    made = backup.create_backup(chief, password=PASSWORD)
    assert made.encrypted and b"C-001" not in made.data
    missing = backup.inspect_backup(chief, data=made.data)
    assert missing.password_required and not missing.ready
    assert "パスワードで保護" in missing.errors[0]
    wrong = backup.inspect_backup(chief, data=made.data, password=PASSWORD + "x")
    assert wrong.password_required and wrong.errors == ["パスワードが違います。"]
    with pytest.raises(ValidationError):
        backup.restore_backup(chief, wrong)
    right = backup.inspect_backup(chief, data=made.data, password=PASSWORD)
    assert right.ready and right.encrypted
    before = snapshot(tenant)
    backup.restore_backup(chief, right)
    assert snapshot(tenant) == before


def _rezip(data: bytes, change) -> bytes:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        entries = {name: archive.read(name) for name in archive.namelist()}
    change(entries)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, content in entries.items():
            archive.writestr(name, content)
    return out.getvalue()


def _tamper(entries):
    entries[fmt.MEMBERS] = entries[fmt.MEMBERS].replace(b"C-001", b"C-999")


def _drop(entries):
    entries.pop(fmt.WATER_SOURCES)


def _extra(entries):
    entries["notes.txt"] = b"hello"


def _future(entries):
    document = json.loads(entries[fmt.MANIFEST])
    document["format_version"] = 99
    entries[fmt.MANIFEST] = json.dumps(document).encode()


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda d: _rezip(d, _tamper), "SHA-256 不一致"),
        (lambda d: _rezip(d, _drop), "water_sources.csv がありません"),
        (lambda d: _rezip(d, _extra), "記載のないファイル notes.txt"),
        (lambda d: _rezip(d, _future), "版 99"),
        (lambda d: d[: len(d) // 2], "ZIPファイルとして読めません"),
    ],
)
def test_damaged_backups_are_refused_and_write_nothing(tenant, engine, damage, message):
    chief = populate(tenant)
    made = backup.create_backup(chief)
    mutate(tenant)
    before = snapshot(tenant)
    from tests.factories import last_audit_seq

    start = last_audit_seq(engine, tenant)
    preview = backup.inspect_backup(chief, data=damage(made.data))
    assert not preview.ready and not preview.plans
    assert any(message in e for e in preview.errors), preview.errors
    with pytest.raises(ValidationError):
        backup.restore_backup(chief, preview)
    assert snapshot(tenant) == before
    assert restore_events(engine, tenant, start) == []


def test_a_changed_file_after_the_preview_is_refused(tenant):
    chief = populate(tenant)
    preview = backup.inspect_backup(chief, data=backup.create_backup(chief).data)
    preview.data = backup.create_backup(chief).data  # another file behind the same preview
    with pytest.raises(ValidationError) as err:
        backup.restore_backup(chief, preview)
    assert "確認したファイル" in err.value.errors["backup"]


def test_other_brigade_is_refused_unless_chosen(tenant, engine):
    source_actor = populate(tenant)
    made = backup.create_backup(source_actor)
    source_before = snapshot(tenant)
    target = make_tenant()
    target_chief = member_session(
        target, make_member(target, rank_id=rank_id(target, "団長"), member_code="C-001").id
    )
    preview = backup.inspect_backup(target_chief, data=made.data)
    assert preview.other_brigade and preview.ready
    with pytest.raises(ValidationError) as err:
        backup.restore_backup(target_chief, preview)
    assert "別の消防団" in err.value.errors["other_brigade"]
    assert members.list_members(admin(target))[0].member_code == "C-001"
    result = backup.restore_backup(target_chief, preview, allow_other_brigade=True)
    assert result.other_brigade
    codes = {m["member_code"] for m in source_before["members"]}
    restored = snapshot(target, codes)
    assert restored["members"] == source_before["members"]
    assert restored["sources"] == source_before["sources"]
    assert restored["matrix"] == source_before["matrix"]
    assert snapshot(tenant) == source_before  # the source brigade is untouched
    (event,) = restore_events(engine, target, 0)
    assert details(event)["other_brigade"] is True
    assert details(event)["source_tenant_id"] == str(tenant)


def test_other_brigade_needs_permissions_admin(tenant, watch):
    made = backup.create_backup(admin(make_tenant()))
    actor = actor_with(tenant, {Function.RESTORE: Level.EDIT, Function.PERMISSIONS: Level.EDIT})
    preview = backup.inspect_backup(actor, data=made.data)
    assert backup.OTHER_BRIGADE_ADMIN in preview.errors and not preview.ready
    audit = watch(tenant)
    with pytest.raises(PermissionDenied, match="管理権限"):
        backup.restore_backup(actor, preview, allow_other_brigade=True)
    (denial,) = audit.new(str(AuditCategory.AUTH))
    assert details(denial)["function"] == "permissions" and details(denial)["required"] == "admin"


@pytest.mark.parametrize("call", ["inspect", "restore"])
def test_not_permitted_without_restore(tenant, watch, call):
    made = backup.create_backup(admin(tenant))
    preview = backup.inspect_backup(admin(tenant), data=made.data)
    actor = actor_with(tenant, {f: Level.ADMIN for f in Function if f != Function.RESTORE})
    audit = watch(tenant)
    with pytest.raises(PermissionDenied):
        if call == "inspect":
            backup.inspect_backup(actor, data=made.data)
        else:
            backup.restore_backup(actor, preview)
    (denial,) = audit.new()
    assert denial.action == "permission_denied" and details(denial)["function"] == "restore"


def test_matrix_changes_need_permissions_admin(tenant, watch):
    boss = admin(tenant)
    made = backup.create_backup(boss)
    row = next(r for r in permissions.list_matrix(boss) if r.name == "団員")
    permissions.update_matrix(
        boss, [CellChange(row.subject_type, row.subject_id, Function.NOTICES, Grant())]
    )
    restorer = actor_with(tenant, {Function.RESTORE: Level.EDIT, Function.PERMISSIONS: Level.EDIT})
    preview = backup.inspect_backup(restorer, data=made.data)
    assert preview.errors == [backup.CHANGES_PERMISSIONS]
    before = snapshot(tenant)
    audit = watch(tenant)
    with pytest.raises(PermissionDenied):
        backup.restore_backup(restorer, preview)
    assert snapshot(tenant) == before
    (denial,) = audit.new()
    assert details(denial)["required"] == "admin"
    unchanged = backup.inspect_backup(restorer, data=backup.create_backup(boss).data)
    assert unchanged.ready  # the same matrix: 復元 編集 is enough
    backup.restore_backup(restorer, unchanged)


def test_a_restore_never_retires_the_restorer(tenant, engine):
    """#15 finding 5: a backup made before the restoring 団長 joined used to retire him and
    lock the brigade out; he stays, and nothing predicts a lock-out."""
    make_member(tenant, member_code="M-001")
    made = backup.create_backup(admin(tenant))
    chief_id = make_member(tenant, rank_id=rank_id(tenant, "団長"), member_code="C-001").id
    give_login(tenant, chief_id)
    chief = member_session(tenant, chief_id)
    preview = backup.inspect_backup(chief, data=made.data)
    assert preview.ready and backup.LOCKOUT_PREDICTED not in preview.errors
    assert preview.plans[backup.MEMBERS].missing == []
    backup.restore_backup(chief, preview)
    assert members.get_member(admin(tenant), chief_id).status == MemberStatus.ACTIVE


def test_failure_in_the_middle_leaves_everything_as_it_was(tenant, engine, monkeypatch):
    chief = populate(tenant)
    made = backup.create_backup(chief)
    mutate(tenant)
    before = snapshot(tenant)
    preview = backup.inspect_backup(chief, data=made.data)

    def broken(tx, plan):
        raise RuntimeError("disk full")

    monkeypatch.setattr(backup, "write_inspections", broken)
    with pytest.raises(RuntimeError):
        backup.restore_backup(chief, preview)
    assert snapshot(tenant) == before
    assert restore_events(engine, tenant, 0) == []


def test_restore_never_touches_another_brigade(tenant):
    chief = populate(tenant)
    bystander = make_tenant()
    make_member(bystander, member_code="C-001")
    make_source(bystander, code="W-001")
    roles.create_role(admin(bystander), name="庶務", rank_id=rank_id(bystander))
    theirs = snapshot(bystander)
    made = backup.create_backup(chief)
    mutate(tenant)
    backup.restore_backup(chief, backup.inspect_backup(chief, data=made.data))
    assert snapshot(bystander) == theirs


def test_taking_permission_editing_through_the_roster_needs_admin(tenant, watch):
    make_member(tenant, rank_id=rank_id(tenant, "団長"), member_code="C-001")
    deputy = make_member(tenant, member_code="M-001")
    made = backup.create_backup(admin(tenant))
    members.update_member(
        admin(tenant),
        deputy.id,
        data=MemberUpdate(rank_id=rank_id(tenant, "副団長")),
        expected_version=deputy.version,
    )
    restorer = actor_with(tenant, {Function.RESTORE: Level.EDIT, Function.PERMISSIONS: Level.EDIT})
    preview = backup.inspect_backup(restorer, data=made.data)
    # the restorer may not edit the roster, and the 副団長 now holds more than he does: the
    # preview names the row, and nothing is written
    assert not preview.ready
    (error,) = preview.plans[backup.MEMBERS].errors
    assert (error.row, error.column) == (3, "所属") and "団員名簿の編集権限" in error.message
    before = snapshot(tenant)
    with pytest.raises((PermissionDenied, ValidationError)):
        backup.restore_backup(restorer, preview)
    assert snapshot(tenant) == before


def test_invalid_rows_are_reported_by_row_and_column(tenant):
    chief = populate(tenant)
    made = backup.create_backup(chief)
    files = fmt.read_zip(made.data).files
    inspections = files[fmt.INSPECTIONS].decode("utf-8-sig").replace("W-001", "W-404", 1)
    data = rebuilt_backup(
        made,
        {
            fmt.ROLES: fmt.encode_roles([fmt.RoleRow("庶務", "隊長"), fmt.RoleRow("団長", "団員")]),
            fmt.PERMISSIONS: files[fmt.PERMISSIONS].replace("閲覧".encode(), "超閲覧".encode(), 1),
            fmt.INSPECTIONS: ("\ufeff" + inspections).encode(),
        },
    )
    before = snapshot(tenant)
    preview = backup.inspect_backup(chief, data=data)
    assert not preview.ready
    assert [str(e) for e in preview.plans["roles"].errors] == [
        "2行目「相当する階級」: 階級が正しくありません。",
        "3行目「役職名」: 役職名が正しくありません。",
    ]
    permission_errors = [str(e) for e in preview.plans["permissions"].errors]
    assert "「超閲覧」は設定できません" in permission_errors[0]
    assert "役職「機関員」がありません。" in permission_errors[-1]  # no longer in roles.csv
    (inspection_error,) = preview.plans["inspections"].errors
    assert (inspection_error.row, inspection_error.column) == (2, "水利番号")
    with pytest.raises(ValidationError):
        backup.restore_backup(chief, preview)
    assert snapshot(tenant) == before


def test_backup_holds_only_the_actors_brigade(tenant):
    chief = populate(tenant)
    other = make_tenant()
    make_member(other, member_code="X-001", name="他団　団員")
    make_source(other, code="X-W-1")
    roles.create_role(admin(other), name="他団の係", rank_id=rank_id(other))
    contents = fmt.read_zip(backup.create_backup(chief).data).files
    everything = b"".join(contents.values()).decode("utf-8")
    assert not any(text in everything for text in ("X-001", "他団", "X-W-1"))
