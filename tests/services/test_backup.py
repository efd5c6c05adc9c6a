"""Backup and restore: a brigade restored from its backup is the brigade at the backup moment
(dispatch mail sources and incidents included, credentials excepted); every refused file,
permission or choice writes nothing."""

from __future__ import annotations

import csv
import io
import json
import re
import uuid
import zipfile
from dataclasses import asdict
from datetime import UTC, date, datetime

import pytest

from core.actor import Actor
from formats import backup as fmt
from formats import backup_dispatch as bd
from formats import csv_safe
from models.dispatch import IncidentStatus, MailTransport
from models.enums import AuditCategory, Function, Level, MemberStatus
from models.member import MemberUpdate
from models.water import WaterInspectionCreate, WaterSourceUpdate
from services import backup, members, permissions, roles, water_sources
from services.dispatch import incidents, intake, mail_log
from services.dispatch import sources as mail_sources
from services.errors import PermissionDenied, ValidationError
from services.imports import RowStatus
from services.permissions import CellChange, Grant
from services.signin import sessions
from tests.dispatch_factories import SENDER, body, mail, where
from tests.dispatch_factories import make_source as make_mail_source
from tests.factories import (
    actor_with,
    admin,
    give_login,
    make_member,
    make_tenant,
    open_member_session,
    rank_id,
    rebuilt_backup,
    restore,
)
from tests.water_factories import make_source

PASSWORD = "消防団の秘密のパスワード"
TODAY = date(2025, 4, 1)
IMAP_PASSWORD = "imap-pass-消防本部-2026"
SMTP_NAME, IMAP_NAME = "本町消防本部", "北消防本部"


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
    populate_dispatch(tenant)
    return member_session(tenant, chief.id)


def populate_dispatch(tenant: uuid.UUID) -> None:
    """An SMTP and an IMAP source; a fire from mail with its follow-up, an unreadable mail
    (要確認), an incident by hand moved on."""
    boss = admin(tenant)
    smtp = make_mail_source(tenant, name=SMTP_NAME)
    make_mail_source(
        tenant,
        name=IMAP_NAME,
        transport=MailTransport.IMAP,
        imap_host="imap.example.jp",
        imap_username="brigade",
        imap_password=IMAP_PASSWORD,
    )
    receive(smtp, body(place="=本町1丁目付近"))
    receive(smtp, body(), subject="【鎮圧】建物火災")
    receive(smtp, "読めない本文", subject="お知らせ")
    made = incidents.create_incident(
        boss, incidents.IncidentInput(kind="救助", place="-川原町", units=("第2分団",))
    )
    incidents.set_status(boss, made.id, IncidentStatus.DISPATCHED, expected_version=made.version)


def receive(source: mail_sources.SourceView, text: str, **headers: str) -> intake.Outcome:
    outcome = intake.receive(where(source), mail(source.address, text, **headers))
    assert outcome is not None
    return outcome


def sources_by_name(tenant: uuid.UUID) -> dict[str, mail_sources.SourceView]:
    return {s.name: s for s in mail_sources.list_sources(admin(tenant))}


def edited(view: mail_sources.SourceView, **changes) -> mail_sources.SourceInput:
    """The source as its settings page would send it, with some fields changed."""
    fields = asdict(mail_sources.SourceInput(name=""))
    values = {key: getattr(view, key) for key in fields if hasattr(view, key)}
    return mail_sources.SourceInput(**values | changes)


def dispatch_snapshot(tenant: uuid.UUID, names: set[str] | None = None) -> dict:
    """Sources (addresses aside: a restore keeps each brigade's own), incidents with their
    timelines, as the services show them."""
    boss = admin(tenant)
    shown = [
        {k: v for k, v in asdict(s).items() if k not in ("id", "version", "address")}
        for s in mail_sources.list_sources(boss)
        if names is None or s.name in names
    ]
    board = []
    for listed in incidents.list_incidents(boss):
        view, entries = incidents.get_incident(boss, listed.id)
        kept = {k: v for k, v in asdict(view).items() if k not in ("id", "version")}
        board.append((kept, entries))
    return {"mail_sources": shown, "incidents": sorted(board, key=lambda i: i[0]["number"])}


def mail_links(tenant: uuid.UUID) -> list[tuple]:
    """The メール受信ログ: each mail's status and the incident it is linked to, oldest first."""
    rows = mail_log.list_mail(admin(tenant))
    return [(r.id, r.status, r.incident_number) for r in reversed(rows)]


def snapshot(
    tenant: uuid.UUID, codes: set[str] | None = None, names: set[str] | None = None
) -> dict:
    """What the services show, without ids, versions and times that a restore renews; `codes`
    and `names` narrow the members and mail sources shown."""
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
        "dispatch": dispatch_snapshot(tenant, names),
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
    mutate_dispatch(tenant)


def mutate_dispatch(tenant: uuid.UUID) -> None:
    """Edit a source, add one; move and confirm incidents, add one by hand and one by mail."""
    boss = admin(tenant)
    smtp = sources_by_name(tenant)[SMTP_NAME]
    mail_sources.update_source(
        boss,
        smtp.id,
        edited(smtp, senders=("@other.example.jp", SENDER), followup_window_minutes=60),
        expected_version=smtp.version,
    )
    make_mail_source(tenant, name="新設の本部")
    board = {i.number: i for i in incidents.list_incidents(boss)}
    incidents.set_status(
        boss, board[1].id, IncidentStatus.EXTINGUISHED, expected_version=board[1].version
    )
    incidents.confirm_review(boss, board[2].id, expected_version=board[2].version)
    incidents.create_incident(boss, incidents.IncidentInput(kind="訓練"))
    receive(sources_by_name(tenant)[SMTP_NAME], body(reference="2026-00999", place="港町"))


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
    assert re.fullmatch(r"テスト消防団[0-9a-f]{8}_\d{8}-\d{4}\.zip", made.filename), made.filename
    manifest = made.manifest
    assert (manifest.tenant_id, manifest.format_version) == (tenant, 4)
    assert manifest.rows == {
        fmt.ROLES: 3,
        fmt.PERMISSIONS: 10,
        fmt.MEMBERS: 5,
        fmt.WATER_SOURCES: 3,
        fmt.INSPECTIONS: 2,
        fmt.MAIL_SOURCES: 2,
        fmt.INCIDENTS: 3,
        fmt.INCIDENT_ENTRIES: 8,  # two mails called their members out (one entry each)
        fmt.CALLOUT_TARGETS: 6,  # the three active members, for each of them
        fmt.CALLOUT_ANSWERS: 0,
        fmt.ACTIVITY_REPORTS: 0,
        fmt.REPORT_STEPS: 0,
        fmt.REPORT_SETTINGS: 1,
    }
    with zipfile.ZipFile(io.BytesIO(made.data)) as archive:
        members_csv = archive.read(fmt.MEMBERS).decode("utf-8-sig")
        incidents_csv = archive.read(fmt.INCIDENTS).decode("utf-8-sig")
    assert "'=1+2 は文字" in members_csv  # neutralised for Excel, restored exactly
    # sealed in the database, opened for the file like the roster's personal fields
    assert "'=本町1丁目付近" in incidents_csv and "'-川原町" in incidents_csv
    (event,) = [e for e in audit.new() if e.action == "backup.create"]
    assert details(event)["sha256"] == made.sha256
    assert details(event)["encrypted"] is False
    assert details(event)["rows"] == manifest.rows
    logged = event.details
    assert (
        not any(text in logged for text in ("太郎", "090-", "外部", "本町"))
        and not event.details_enc
    )


def test_backup_needs_every_function_it_holds(tenant, watch):
    audit = watch(tenant)
    levels = dict(backup.BACKUP_NEEDS)
    assert levels[Function.DISPATCH] == Level.ADMIN  # the level that shows a source's settings
    backup.create_backup(actor_with(tenant, levels))
    for function, level in backup.BACKUP_NEEDS:
        with pytest.raises(PermissionDenied):
            backup.create_backup(actor_with(tenant, levels | {function: Level(level - 1)}))
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
    result = restore(chief, preview, progress=lambda d, t: seen.append((d, t)))
    codes = {m["member_code"] for m in before["members"]}
    names = {s["name"] for s in before["dispatch"]["mail_sources"]}
    assert snapshot(tenant, codes, names) == before
    extra = [m for m in members.list_members(admin(tenant)) if m.member_code not in codes]
    assert [(m.member_code, m.status) for m in extra] == [("N-001", MemberStatus.RETIRED)]
    assert extra[0].role_ids == []  # its role was not in the backup and is gone
    assert (result.roles.created, result.roles.retired) == (1, 1)
    assert (result.members.updated, result.members.retired) == (3, 1)
    assert (result.water_sources.created, result.water_sources.retired) == (1, 1)
    assert (result.mail_sources.updated, result.mail_sources.retired) == (1, 1)
    assert (result.incidents.updated, result.incidents.retired) == (2, 2)
    assert (
        seen and seen[-1][0] == seen[-1][1] and [d for d, _ in seen] == sorted(d for d, _ in seen)
    )
    (event,) = [e for e in audit.new() if e.action == "backup.restore"]
    assert details(event)["sha256"] == made.sha256 and details(event)["other_brigade"] is False
    assert details(event)["source_tenant_id"] == str(tenant)
    assert details(event)["counts"]["members"]["retired"] == 1
    assert details(event)["counts"]["incidents"]["retired"] == 2
    logged = event.details
    assert not any(text in logged for text in ("改名", "太郎", "090-", "外部", "良好", "本町"))


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
        restore(chief, wrong)
    right = backup.inspect_backup(chief, data=made.data, password=PASSWORD)
    assert right.ready and right.encrypted
    before = snapshot(tenant)
    restore(chief, right)
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
        restore(chief, preview)
    assert snapshot(tenant) == before
    assert restore_events(engine, tenant, start) == []


def test_a_changed_file_after_the_preview_is_refused(tenant):
    chief = populate(tenant)
    preview = backup.inspect_backup(chief, data=backup.create_backup(chief).data)
    preview.data = backup.create_backup(chief).data  # another file behind the same preview
    with pytest.raises(ValidationError) as err:
        restore(chief, preview)
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
        restore(target_chief, preview)
    assert "別の消防団" in err.value.errors["other_brigade"]
    assert members.list_members(admin(target))[0].member_code == "C-001"
    result = restore(target_chief, preview, allow_other_brigade=True)
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


def test_another_brigades_sources_get_new_addresses_and_wait_for_passwords(tenant):
    """Their credentials are not in the file: the SMTP source gets this brigade's own new
    address, the IMAP source comes back 無効 until its password is entered; the incidents come
    back whole, only their timelines no longer point at mails of a log this brigade lacks."""
    populate(tenant)
    made = backup.create_backup(admin(tenant))
    theirs = sources_by_name(tenant)
    their_board = dispatch_snapshot(tenant)["incidents"]
    target = make_tenant()
    preview = backup.inspect_backup(admin(target), data=made.data)
    notes = preview.plans[backup.MAIL_SOURCES].notes
    assert backup.CREDENTIALS_NOT_IN_BACKUP in notes
    assert backup.NEW_ADDRESS.format(name=SMTP_NAME) in notes
    assert backup.PASSWORD_NEEDED.format(name=IMAP_NAME) in notes
    assert backup.MAIL_LOG_KEPT in preview.notes
    restore(admin(target), preview, allow_other_brigade=True)

    ours = sources_by_name(target)
    smtp, imap = ours[SMTP_NAME], ours[IMAP_NAME]
    assert smtp.address and smtp.address != theirs[SMTP_NAME].address and smtp.active
    assert intake.route(smtp.address) == intake.Route(target, smtp.id)
    assert intake.route(theirs[SMTP_NAME].address) == intake.Route(tenant, theirs[SMTP_NAME].id)
    assert (imap.imap_password_set, imap.active) == (False, False)
    assert (imap.imap_host, imap.imap_username) == ("imap.example.jp", "brigade")
    assert (smtp.senders, smtp.profile) == (theirs[SMTP_NAME].senders, theirs[SMTP_NAME].profile)
    board = dispatch_snapshot(target)["incidents"]
    assert [view for view, _ in board] == [view for view, _ in their_board]
    assert [[(e.summary, e.from_mail) for e in entries] for _, entries in board] == [
        [(e.summary, False) for e in entries] for _, entries in their_board
    ]
    assert mail_log.list_mail(admin(target)) == []  # the log is not restored


def test_a_restore_keeps_each_sources_address_and_unlinks_mails_of_removed_incidents(tenant):
    populate(tenant)
    chief = admin(tenant)
    made = backup.create_backup(chief)
    links = mail_links(tenant)
    mutate(tenant)
    rotated = mail_sources.rotate_address(chief, sources_by_name(tenant)[SMTP_NAME].id)
    added = sources_by_name(tenant)["新設の本部"]
    later_mail = mail_links(tenant)[-1]
    assert later_mail[2] == 5

    restore(chief, backup.inspect_backup(chief, data=made.data))

    restored = sources_by_name(tenant)
    assert restored[SMTP_NAME].address == rotated.address  # the current one, not renewed
    assert restored[IMAP_NAME].imap_password_set and restored[IMAP_NAME].active
    assert not restored["新設の本部"].active  # absent from the backup: 無効, kept for its log
    assert intake.route(added.address) is None
    assert mail_links(tenant) == [*links, (later_mail[0], later_mail[1], None)]
    numbers = [i.number for i in incidents.list_incidents(chief)]
    assert sorted(numbers) == [1, 2, 3]


def test_a_removed_incident_comes_back_with_its_mails_linked_again(tenant):
    populate(tenant)
    chief = admin(tenant)
    full = backup.create_backup(chief)
    before, links = dispatch_snapshot(tenant), mail_links(tenant)
    empty = rebuilt_backup(
        full,
        {
            fmt.INCIDENTS: bd.encode_incidents([]),
            fmt.INCIDENT_ENTRIES: bd.encode_entries([]),
            fmt.CALLOUT_TARGETS: bd.encode_targets([]),
            fmt.CALLOUT_ANSWERS: bd.encode_answers([]),
        },
    )
    restore(chief, backup.inspect_backup(chief, data=empty))
    assert incidents.list_incidents(chief) == []
    assert [number for _, _, number in mail_links(tenant)] == [None] * len(links)

    restore(chief, backup.inspect_backup(chief, data=full.data))
    assert dispatch_snapshot(tenant) == before
    assert mail_links(tenant) == links


def test_a_backup_never_holds_a_receiving_address_or_an_imap_password(tenant):
    populate(tenant)
    smtp = sources_by_name(tenant)[SMTP_NAME]
    token = mail_sources.token_of(smtp.address)
    assert token
    secrets = [token.encode(), IMAP_PASSWORD.encode("utf-8"), smtp.address.encode()]
    for password in (None, PASSWORD):
        made = backup.create_backup(admin(tenant), password=password)
        contents = fmt.read_zip(made.data, password=password).files
        everything = [made.data, made.manifest.to_json(), *contents.values()]
        assert b"imap.example.jp" in contents[fmt.MAIL_SOURCES]  # the scan reads the settings
        assert not [s for s in secrets for data in everything if s in data]


def test_a_version_1_backup_restores_and_leaves_dispatch_as_it_is(tenant, engine):
    """Made before dispatch was backed up, it says nothing about it: the sources and incidents
    of now stay (deleting them all would surprise more than keeping them)."""
    chief = populate(tenant)
    before = snapshot(tenant)
    made = backup.create_backup(chief)
    contents = fmt.read_zip(made.data).files
    old = {name: contents[name] for name in fmt.VERSION_FILES[1]}
    manifest = fmt.build_manifest(
        old,
        tenant_id=tenant,
        brigade=made.manifest.brigade,
        created_at=made.manifest.created_at,
        app_version="0.1.0",
        format_version=1,
    )
    data = fmt.write_zip(manifest, old, password=None)
    mutate(tenant)
    dispatch_now, links_now = dispatch_snapshot(tenant), mail_links(tenant)

    preview = backup.inspect_backup(chief, data=data)
    assert preview.ready, preview.errors
    assert list(preview.plans) == [
        backup.ROLES,
        "permissions",
        backup.MEMBERS,
        "water_sources",
        "inspections",
    ]
    assert backup.NO_DISPATCH.format(version=1) in preview.notes
    result = restore(chief, preview)

    codes = {m["member_code"] for m in before["members"]}
    after = snapshot(tenant, codes)
    assert {k: v for k, v in after.items() if k != "dispatch"} == {
        k: v for k, v in before.items() if k != "dispatch"
    }
    assert after["dispatch"] == dispatch_now and mail_links(tenant) == links_now
    assert set(result.counts()) == set(backup.ENTITIES) - {
        backup.MAIL_SOURCES,
        "incidents",
        "incident_entries",
        "callout_targets",
        "callout_answers",
        "activity_reports",
        "report_steps",
        "report_settings",
    }
    (event,) = restore_events(engine, tenant, 0)
    assert details(event)["format_version"] == 1


def test_other_brigade_needs_permissions_admin(tenant, watch):
    made = backup.create_backup(admin(make_tenant()))
    actor = actor_with(tenant, {Function.RESTORE: Level.EDIT, Function.PERMISSIONS: Level.EDIT})
    preview = backup.inspect_backup(actor, data=made.data)
    assert backup.OTHER_BRIGADE_ADMIN in preview.errors and not preview.ready
    audit = watch(tenant)
    with pytest.raises(PermissionDenied, match="管理権限"):
        restore(actor, preview, allow_other_brigade=True)
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
            restore(actor, preview)
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
        restore(restorer, preview)
    assert snapshot(tenant) == before
    (denial,) = audit.new()
    assert details(denial)["required"] == "admin"
    unchanged = backup.inspect_backup(restorer, data=backup.create_backup(boss).data)
    assert unchanged.ready  # the same matrix: 復元 編集 is enough
    restore(restorer, unchanged)


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
    restore(chief, preview)
    assert members.get_member(admin(tenant), chief_id).status == MemberStatus.ACTIVE


@pytest.mark.parametrize("step", ["write_inspections", "write_entries", "write_answers"])
def test_failure_in_the_middle_leaves_everything_as_it_was(tenant, engine, monkeypatch, step):
    chief = populate(tenant)
    made = backup.create_backup(chief)
    mutate(tenant)
    before = snapshot(tenant)
    preview = backup.inspect_backup(chief, data=made.data)

    def broken(tx, plan):
        raise RuntimeError("disk full")

    monkeypatch.setattr(backup, step, broken)
    with pytest.raises(RuntimeError):
        restore(chief, preview)
    assert snapshot(tenant) == before
    assert restore_events(engine, tenant, 0) == []


def test_restore_never_touches_another_brigade(tenant):
    chief = populate(tenant)
    bystander = make_tenant()
    make_member(bystander, member_code="C-001")
    make_source(bystander, code="W-001")
    roles.create_role(admin(bystander), name="庶務", rank_id=rank_id(bystander))
    populate_dispatch(bystander)
    theirs, their_mail = snapshot(bystander), mail_links(bystander)
    made = backup.create_backup(chief)
    mutate(tenant)
    restore(chief, backup.inspect_backup(chief, data=made.data))
    assert snapshot(bystander) == theirs
    assert mail_links(bystander) == their_mail


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
        restore(restorer, preview)
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
        restore(chief, preview)
    assert snapshot(tenant) == before


def test_backup_holds_only_the_actors_brigade(tenant):
    chief = populate(tenant)
    other = make_tenant()
    make_member(other, member_code="X-001", name="他団　団員")
    make_source(other, code="X-W-1")
    roles.create_role(admin(other), name="他団の係", rank_id=rank_id(other))
    incidents.create_incident(admin(other), incidents.IncidentInput(kind="他団の火災"))
    make_mail_source(other, name="他団の本部")
    contents = fmt.read_zip(backup.create_backup(chief).data).files
    everything = b"".join(contents.values()).decode("utf-8")
    assert not any(text in everything for text in ("X-001", "他団", "X-W-1"))
    assert "救助" in everything  # this brigade's incidents are there


def test_mail_source_changes_need_dispatch_admin(tenant, watch):
    populate(tenant)
    boss = admin(tenant)
    made = backup.create_backup(boss)
    restorer = actor_with(
        tenant,
        {
            Function.RESTORE: Level.EDIT,
            Function.PERMISSIONS: Level.ADMIN,
            Function.DISPATCH: Level.EDIT,
        },
    )
    incidents.create_incident(boss, incidents.IncidentInput(kind="訓練"))
    same_sources = backup.inspect_backup(restorer, data=made.data)
    assert same_sources.ready  # incidents change, as water sources do, with 復元 編集
    smtp = sources_by_name(tenant)[SMTP_NAME]
    mail_sources.update_source(
        boss, smtp.id, edited(smtp, dkim_required=True), expected_version=smtp.version
    )
    preview = backup.inspect_backup(restorer, data=made.data)
    assert preview.errors == [backup.CHANGES_MAIL_SOURCES]
    (row,) = [r for r in preview.plans[backup.MAIL_SOURCES].rows if r.status == RowStatus.CHANGED]
    assert [(c.column, c.before, c.after) for c in row.changes] == [("DKIM必須", "はい", "いいえ")]
    before = snapshot(tenant)
    audit = watch(tenant)
    with pytest.raises(PermissionDenied):
        restore(restorer, preview)
    assert snapshot(tenant) == before
    (denial,) = audit.new()
    assert details(denial)["function"] == "dispatch" and details(denial)["required"] == "admin"


def test_invalid_dispatch_rows_are_reported_by_row_and_column(tenant):
    chief = populate(tenant)
    made = backup.create_backup(chief)
    files = fmt.read_zip(made.data).files
    settings = json.loads(files[fmt.MAIL_SOURCES])
    settings[0]["senders"] = ["not an address"]
    settings[1]["imap_password"] = "smuggled"
    found = files[fmt.INCIDENTS].decode("utf-8-sig")
    found = found.replace("出動中", "燃焼中", 1).replace(SMTP_NAME, "不明な本部", 1)
    timeline = files[fmt.INCIDENT_ENTRIES].decode("utf-8-sig").replace("\r\n1,", "\r\n9,", 1)
    data = rebuilt_backup(
        made,
        {
            fmt.MAIL_SOURCES: json.dumps(settings, ensure_ascii=False).encode(),
            fmt.INCIDENTS: ("\ufeff" + found).encode(),
            fmt.INCIDENT_ENTRIES: ("\ufeff" + timeline).encode(),
        },
    )
    before = snapshot(tenant)
    preview = backup.inspect_backup(chief, data=data)
    assert not preview.ready
    source_errors = sorted(str(e) for e in preview.plans[backup.MAIL_SOURCES].errors)
    assert source_errors == [
        "1行目「送信元」: 送信元の形式が正しくありません: not an address",
        "2行目「imap_password」: この項目は使えません。",
    ]
    incident_errors = [str(e) for e in preview.plans["incidents"].errors]
    assert incident_errors == [
        "2行目「送信元」: 送信元「不明な本部」が出動メール設定にありません。",
        "4行目「状態」: 状態が正しくありません。",
    ]
    (entry_error,) = [str(e) for e in preview.plans["incident_entries"].errors]
    assert entry_error == "2行目「番号」: 番号 9 の事案が災害出動の事案にありません。"
    with pytest.raises(ValidationError):
        restore(chief, preview)
    assert snapshot(tenant) == before


def test_backup_made_before_report_grants(tenant):
    """A permissions file without the 出動報告 columns (made before #22) restores: its ranks get
    the default levels, its roles none, and the preview says so."""
    chief = populate(tenant)
    made = backup.create_backup(chief)
    rows = list(
        csv.reader(io.StringIO(fmt.read_zip(made.data).files[fmt.PERMISSIONS].decode("utf-8-sig")))
    )
    keep = [i for i, name in enumerate(rows[0]) if name not in {"出動報告", "出動報告の承認"}]
    assert len(keep) == len(rows[0]) - 2
    older = csv_safe.encode([rows[0][i] for i in keep], ([r[i] for i in keep] for r in rows[1:]))
    preview = backup.inspect_backup(chief, data=rebuilt_backup(made, {fmt.PERMISSIONS: older}))
    assert preview.ready, preview.errors
    assert any("出動報告」「出動報告の承認" in note for note in preview.notes)
    restore(chief, preview)
    matrix = {row.name: row.grants for row in permissions.list_matrix(chief)}
    assert matrix["団員"][Function.REPORTS] == Grant(Level.VIEW)
    assert matrix["分団長"][Function.APPROVALS] == Grant(Level.EDIT)
    assert matrix["庶務"][Function.REPORTS] == Grant()


def test_backup_file_names_carry_the_brigade_name():
    """<brigade name>_<JST time>.zip; what no file system takes becomes '-'; a name with
    nothing left falls back to ASCII."""
    from services.backup.create import _filename

    tenant_id = uuid.UUID("12345678-1234-5678-1234-567812345678")

    def named(brigade: str) -> str:
        manifest = fmt.Manifest(
            tenant_id=tenant_id,
            brigade=brigade,
            created_at=datetime(2026, 12, 6, 15, 30, tzinfo=UTC),  # 00:30 JST next day
            app_version="test",
            files=(),
        )
        return _filename(tenant_id, manifest)

    assert named("デモ市消防団") == "デモ市消防団_20261207-0030.zip"
    assert named("ＡＢ市 消防団/第1") == "AB市-消防団-第1_20261207-0030.zip"
    assert named('<>:"|?*') == "hikeshi-backup-12345678_20261207-0030.zip"
