"""Backup and restore (バックアップ・復元) of one brigade: roles, the permission matrix, the roster,
the water sources and their inspections, the dispatch mail sources' settings, the incidents with
their timelines, who was called for each incident and what they answered, and the 出動報告 with
their approval trails and the report settings, in one ZIP (formats/backup.py,
formats/backup_dispatch.py, formats/backup_reports.py).

Who may do what, and why:

- create_backup needs CSV出力・バックアップ 閲覧 and 閲覧 of everything the file holds: 団員名簿,
  消防水利, 水利点検 (inspectors' names), 役職・権限, 災害出動 管理 (the level that shows a mail
  source's settings) and 出動報告 管理 (everyone's reports, the reward table). The file holds
  personal data decrypted, hence the optional AES password; it never holds a receiving address
  or an IMAP password.
- inspect_backup and restore_backup need 復元 編集. A restore that changes roles or the matrix, or
  who may edit permissions, needs 役職・権限 管理 as well, as the matrix page would; one that
  changes the mail sources needs 災害出動 管理, as 出動メール設定 would; one that changes the
  reports, their trails or the report settings needs 出動報告 管理; restoring another
  brigade's backup needs 役職・権限 管理 and the administrator's explicit choice.

A restore replaces the brigade's data in one transaction, everything or nothing: members absent
from the backup are retired, not deleted (accounts, sessions and the audit log refer to them);
water sources absent from it are deleted with their inspections; roles absent from it are
removed after the members are re-linked; the matrix and the inspections are replaced; mail
sources absent from it are made 無効 (the メール受信ログ refers to them), incidents absent from it
are deleted with their timelines and call-outs, and the call-outs' targets and answers are
replaced (services/backup/callouts.py: the waves of LINE messages are not restored). The
メール受信ログ itself is a log, never restored. A backup of format version 1 holds no dispatch
data, and its restore leaves the mail sources and incidents as they are; one of version 2 holds
no call-outs, and its restore leaves those of the incidents it keeps as they are. The reports,
their trails and the report settings are replaced too (services/backup/reports.py); a backup
before version 4 leaves them, relinked to the restored incidents and inspections. The
no-lock-out guard of the matrix holds: a backup that would leave no active member with
役職・権限 管理 is refused.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from typing import Any

from sqlmodel import select

from core.access import Need, allows
from core.actor import Actor
from formats import backup as fmt
from formats import member_csv
from formats.tabular import CellValueError, plain
from models import Member, MemberRole, Permission, PreChangeBackup
from models.enums import MemberStatus
from services import brigade_settings, bulk_guard, member_import, pre_change, water_import
from services.backup.access import (
    apply_roles,
    parse_grant,
    plan_permissions,
    plan_roles,
    remove_roles,
    write_permissions,
)
from services.backup.callouts import plan_answers, plan_targets, write_answers, write_targets
from services.backup.create import app_version, create_backup
from services.backup.incidents import plan_entries, plan_incidents, write_entries, write_incidents
from services.backup.mail_sources import plan_mail_sources, write_mail_sources
from services.backup.model import (
    ANSWERS,
    BACKUP_NEEDS,
    CHANGES_MAIL_SOURCES,
    CHANGES_PERMISSIONS,
    CHANGES_REPORTS,
    CREDENTIALS_NOT_IN_BACKUP,
    ENTITIES,
    ENTITY_LABELS,
    ENTRIES,
    INCIDENTS,
    INSPECTIONS,
    LOCKOUT_PREDICTED,
    MAIL_LOG_KEPT,
    MAIL_SOURCES,
    MEMBERS,
    NEW_ADDRESS,
    NO_CALLOUTS,
    NO_DISPATCH,
    NO_LATER_GRANTS,
    NO_REPORTS,
    NOT_READY,
    OTHER_BRIGADE,
    OTHER_BRIGADE_ADMIN,
    PASSWORD_NEEDED,
    PERMISSIONS,
    REPORT_SETTINGS,
    REPORTS,
    REPORTS_RESTORED,
    ROLES,
    STEPS,
    TARGETS,
    WATER,
    WAVES_NOT_RESTORED,
    BackupFile,
    F,
    L,
    RestorePreview,
    RestoreResult,
    T,
)
from services.backup.records import plan_inspections, plan_members, plan_water, write_inspections
from services.backup.reports import (
    plan_reports,
    plan_settings,
    plan_steps,
    relink,
    set_aside,
    write_reports,
)
from services.base import Tx, require, scoped, transaction
from services.errors import Conflict, ValidationError
from services.imports import (
    ImportPreview,
    ImportResult,
    MissingRows,
    Progress,
    ProgressCounter,
    RowPlan,
    RowStatus,
    sha256,
)
from services.permissions import (
    ADMIN_REQUIRED,
    Grant,
    Refused,
    guarded,
    no_lockout,
    permission_admins,
    top_level,
)

# The largest backup file a restore accepts.
MAX_BACKUP_BYTES = fmt.MAX_BACKUP_BYTES

__all__ = [
    "BACKUP_NEEDS",
    "CHANGES_MAIL_SOURCES",
    "CHANGES_PERMISSIONS",
    "CHANGES_REPORTS",
    "CREDENTIALS_NOT_IN_BACKUP",
    "ENTITIES",
    "ENTITY_LABELS",
    "INCIDENTS",
    "LOCKOUT_PREDICTED",
    "MAIL_LOG_KEPT",
    "MAIL_SOURCES",
    "MAX_BACKUP_BYTES",
    "MEMBERS",
    "NEW_ADDRESS",
    "NO_CALLOUTS",
    "NO_DISPATCH",
    "NO_LATER_GRANTS",
    "NO_REPORTS",
    "OTHER_BRIGADE_ADMIN",
    "PASSWORD_NEEDED",
    "REPORTS_RESTORED",
    "BackupFile",
    "RestorePreview",
    "RestoreResult",
    "app_version",
    "create_backup",
    "inspect_backup",
    "restore_backup",
]


# -- inspecting --------------------------------------------------------------------------------


def inspect_backup(actor: Actor, *, data: bytes, password: str | None = None) -> RestorePreview:
    """Verify the file and plan every entity against the brigade's data; nothing is written."""
    preview = RestorePreview(sha256(data), data, password)
    require(actor, Need(F.RESTORE, L.EDIT), action="backup.inspect")
    try:
        backup = fmt.read_zip(data, password=password)
    except fmt.BackupError as exc:
        preview.errors = exc.problems
        preview.password_required = isinstance(exc, fmt.PasswordRequired | fmt.WrongPassword)
        return preview
    preview.manifest, preview.encrypted = backup.manifest, backup.encrypted
    preview.other_brigade = backup.manifest.tenant_id != actor.tenant_id
    preview.notes = [MAIL_LOG_KEPT]
    version = backup.manifest.format_version
    if not _holds_dispatch(backup):
        preview.notes.append(NO_DISPATCH.format(version=version))
    elif not _holds_callouts(backup):
        preview.notes.append(NO_CALLOUTS.format(version=version))
    else:
        preview.notes.append(WAVES_NOT_RESTORED)
    preview.notes.append(
        REPORTS_RESTORED if _holds_reports(backup) else NO_REPORTS.format(version=version)
    )
    if missing := fmt.later_functions_missing(backup.files[fmt.PERMISSIONS]):
        preview.notes.append(
            NO_LATER_GRANTS.format(functions="」「".join(f.label for f in missing))
        )
    with transaction(actor, Need(F.RESTORE, L.EDIT), action="backup.inspect") as tx:
        admins = 0 if actor.is_platform else permission_admins(tx.session, tx.tenant_id)
        plans = _stage(tx, backup)
        tx.rollback()  # a dry run: the roles it staged for planning are not kept
    preview.plans = {name: _detached(plan) for name, plan in plans.items()}
    preview.errors = _warnings(actor, preview, admins_now=admins)
    return preview


def _detached(plan: ImportPreview) -> ImportPreview:
    """A plan without what only its transaction could use (the page keeps previews)."""
    plan.rows = [RowPlan(p.row, p.code, p.status, p.raw, p.changes, p.errors) for p in plan.rows]
    return plan


def _warnings(actor: Actor, preview: RestorePreview, *, admins_now: int) -> list[str]:
    """What the restore would refuse, said before the administrator presses the button."""
    found = []
    if preview.other_brigade and not allows(actor, Need(F.PERMISSIONS, top_level(F.PERMISSIONS))):
        found.append(OTHER_BRIGADE_ADMIN)
    if _changes_permissions(preview.plans) and not allows(actor, Need(F.PERMISSIONS, L.ADMIN)):
        found.append(CHANGES_PERMISSIONS)
    if _changes(preview.plans, MAIL_SOURCES) and not allows(actor, Need(F.DISPATCH, L.ADMIN)):
        found.append(CHANGES_MAIL_SOURCES)
    if _changes_reports(preview.plans) and not allows(actor, Need(F.REPORTS, L.ADMIN)):
        found.append(CHANGES_REPORTS)
    if admins_now and _admins_after(preview.plans, actor) == 0:
        found.append(LOCKOUT_PREDICTED)
    return found


def _changes_permissions(plans: Mapping[str, ImportPreview]) -> bool:
    return _changes(plans, ROLES) or _changes(plans, PERMISSIONS)


def _changes_reports(plans: Mapping[str, ImportPreview]) -> bool:
    return any(_changes(plans, name) for name in (REPORTS, STEPS, REPORT_SETTINGS))


def _changes(plans: Mapping[str, ImportPreview], name: str) -> bool:
    plan = plans.get(name)
    return plan is not None and bool(
        plan.missing or any(row.status != RowStatus.UNCHANGED for row in plan.rows)
    )


def _admins_after(plans: Mapping[str, ImportPreview], actor: Actor) -> int:
    """Active members of the backup holding 役職・権限 管理 under the backup's matrix: after the
    restore they are the only ones, with the restorer (a restore never retires the person
    running it)."""
    holders = {
        (plain(row.raw.get("kind", "")), plain(row.raw.get("name", "")))
        for row in plans[PERMISSIONS].rows
        if parse_grant(F.PERMISSIONS, row.raw.get(str(F.PERMISSIONS), "")) == Grant(L.ADMIN)
    }
    admin_roles = {name for kind, name in holders if kind == fmt.SUBJECT_ROLE}
    admin_ranks = {name for kind, name in holders if kind == fmt.SUBJECT_RANK}
    role_names = {plain(row.raw.get("name", "")) for row in plans[ROLES].rows}
    rows = [
        (plain(row.raw.get("rank", "")), row.raw.get("roles", ""))
        for row in plans[MEMBERS].rows
        if _active(row.raw.get("status", ""))
    ]
    # The restorer stays with his rank and roles (his own row cannot change them), under the
    # backup's matrix; counted twice if the backup lists him too, which is still "not none".
    if actor.member_id is not None:
        rows.append((plain(actor.rank_name), member_csv.ROLE_SEPARATOR.join(actor.role_names)))
    return sum(
        1
        for rank, roles in rows
        if rank in admin_ranks or admin_roles & set(member_csv.split_roles(roles, role_names)[0])
    )


def _active(status: str) -> bool:
    try:
        return member_csv.status_of(status) in (None, MemberStatus.ACTIVE)
    except CellValueError:
        return False


# -- staging: what a preview and a restore share -----------------------------------------------


def _stage(tx: Tx, backup: fmt.Backup) -> dict[str, ImportPreview]:
    """Plan every entity. The roles are applied first (members and the matrix name them), so the
    plans are what the restore will find; a preview rolls this back."""
    roles = plan_roles(tx, backup)
    apply_roles(tx, roles)
    water = plan_water(tx, backup)
    people = plan_members(tx, backup)
    plans = {
        ROLES: roles,
        PERMISSIONS: plan_permissions(tx, backup, roles),
        MEMBERS: people,
        WATER: water,
        INSPECTIONS: plan_inspections(tx, backup, people, water),
    }
    if _holds_dispatch(backup):
        sources = plan_mail_sources(tx, backup)
        incidents = plan_incidents(tx, backup, sources)
        plans |= {
            MAIL_SOURCES: sources,
            INCIDENTS: incidents,
            ENTRIES: plan_entries(tx, backup, incidents),
        }
    if _holds_callouts(backup):
        targets = plan_targets(tx, backup, plans[INCIDENTS], people)
        plans |= {
            TARGETS: targets,
            ANSWERS: plan_answers(tx, backup, plans[INCIDENTS], people, targets),
        }
    if _holds_reports(backup):
        reports = plan_reports(tx, backup, people, plans[INCIDENTS], plans[INSPECTIONS])
        plans |= {
            REPORTS: reports,
            STEPS: plan_steps(tx, backup, reports, people),
            REPORT_SETTINGS: plan_settings(tx, backup),
        }
    return plans


def _holds_dispatch(backup: fmt.Backup) -> bool:
    """Version 1 backups (made before dispatch) say nothing about it: it is left as it is."""
    return fmt.MAIL_SOURCES in backup.manifest.data_files


def _holds_callouts(backup: fmt.Backup) -> bool:
    """Version 2 backups (made before call-outs were backed up) say nothing about them."""
    return fmt.CALLOUT_TARGETS in backup.manifest.data_files


def _holds_reports(backup: fmt.Backup) -> bool:
    """Backups before version 4 (made before 出動報告 were backed up) say nothing about them."""
    return fmt.ACTIVITY_REPORTS in backup.manifest.data_files


# -- restoring ---------------------------------------------------------------------------------


def restore_backup(
    actor: Actor,
    preview: RestorePreview,
    *,
    allow_other_brigade: bool = False,
    progress: Progress | None = None,
    undoing: uuid.UUID | None = None,
    confirm_name: str | None = None,
) -> RestoreResult:
    """Replace the brigade's data by the backup's in one transaction, verifying and planning the
    file again inside it; one audit event. `undoing` names the pre-change backup restored by
    「元に戻す」 (for the audit record).

    A restore that retires, suspends or deletes anything (the preview's plans list what the
    backup lacks or marks 退団・停止中) first takes an automatic pre-change backup
    (services/pre_change.py), in this transaction before anything is staged or written, so that
    it can itself be undone. Retiring or deleting more members or water sources than
    services/bulk_guard.py allows needs `confirm_name`, the brigade's name — except for
    「元に戻す」, which returns to a state the brigade had and is itself backed up first."""
    with guarded(actor, F.RESTORE, L.EDIT, "backup.restore") as tx:
        backup = _verified(preview)
        other = backup.manifest.tenant_id != tx.tenant_id
        _check_other_brigade(tx, backup.manifest, other, allow_other_brigade)
        taken = None
        if gone := sum(_leaving(plan) for plan in preview.plans.values()):
            what = "元に戻す" if undoing else "復元"
            made = f"{preview.brigade} {preview.created_at_jst} 作成のバックアップ"
            taken = pre_change.take(tx, f"{what}（{made}）: 退団・利用停止・削除 {gone:,}件")
        editors = _permission_editors(tx)
        with no_lockout(tx):
            plans = _stage(tx, backup)
            _check_plans(tx, plans)
            if taken is None and any(_leaving(plan) for plan in plans.values()):
                # the brigade changed since the preview (members joined, say): the restore would
                # now retire some without the backup that makes it undoable — look again
                raise Conflict()
            if undoing is None:
                _check_bulk(tx, plans, confirm_name)
            else:
                _check_undoing(tx, undoing, preview)
            step = ProgressCounter(progress, sum(_size(p) for p in plans.values()))
            write_permissions(tx, plans[PERMISSIONS])
            step.advance(_size(plans[ROLES]) + _size(plans[PERMISSIONS]))
            people = _written(
                step,
                plans[MEMBERS],
                lambda report: member_import.write_members(
                    tx, plans[MEMBERS].rows, missing=MissingRows.RETIRE, progress=report
                ),
            )
            remove_roles(tx, plans[ROLES].missing)
        _check_editors(tx, editors)
        # before inspections and incidents are replaced: reports name them
        aside = set_aside(tx, replaced=_holds_reports(backup))
        water = _written(
            step,
            plans[WATER],
            lambda report: water_import.write_water_sources(
                tx, plans[WATER].rows, missing=MissingRows.RETIRE, progress=report
            ),
        )
        inspections = write_inspections(tx, plans[INSPECTIONS])
        step.advance(_size(plans[INSPECTIONS]))
        dispatch = _write_dispatch(tx, plans) if _holds_dispatch(backup) else {}
        if _holds_reports(backup):
            dispatch |= write_reports(tx, backup, plans, aside)
        else:
            relink(tx, aside)
        step.advance(sum(_size(plans[name]) for name in dispatch))
        result = RestoreResult(
            sha256=preview.sha256,
            other_brigade=other,
            roles=_role_result(plans[ROLES]),
            permissions=_counted(plans[PERMISSIONS]),
            members=people,
            water_sources=water,
            inspections=inspections,
            **dispatch,
        )
        details = _restore_details(backup, result)
        details["pre_change_backup"] = str(taken.id) if taken else ""
        if undoing is not None:
            details["undoing"] = str(undoing)
        tx.audit("backup.restore", target_type="backup", details=details)
        tx.commit()
    return result


def _write_dispatch(tx: Tx, plans: Mapping[str, ImportPreview]) -> dict[str, ImportResult]:
    """In this order: incidents name their sources, timelines and call-outs their incidents."""
    written = {
        MAIL_SOURCES: write_mail_sources(tx, plans[MAIL_SOURCES]),
        INCIDENTS: write_incidents(tx, plans[INCIDENTS]),
        ENTRIES: write_entries(tx, plans[ENTRIES]),
    }
    if TARGETS in plans:
        written[TARGETS] = write_targets(tx, plans[TARGETS])
        written[ANSWERS] = write_answers(tx, plans[ANSWERS])
    return written


def _verified(preview: RestorePreview) -> fmt.Backup:
    try:
        backup = fmt.read_zip(preview.data, password=preview.password)
    except fmt.BackupError as exc:
        raise ValidationError({"backup": " ".join(exc.problems)}) from None
    if sha256(preview.data) != preview.sha256:
        raise ValidationError({"backup": "確認したファイルと内容が異なります。"})
    return backup


def _check_other_brigade(tx: Tx, manifest: fmt.Manifest, other: bool, allowed: bool) -> None:
    if not other:
        return
    if not allowed:
        raise ValidationError({"other_brigade": OTHER_BRIGADE.format(brigade=manifest.brigade)})
    top = top_level(F.PERMISSIONS)
    if not allows(tx.actor, Need(F.PERMISSIONS, top)):
        raise Refused(F.PERMISSIONS, top, OTHER_BRIGADE_ADMIN)


def _check_plans(tx: Tx, plans: dict[str, ImportPreview]) -> None:
    if any(p.file_errors or p.counts[RowStatus.INVALID] for p in plans.values()):
        raise ValidationError({"backup": NOT_READY})
    if _changes_permissions(plans) and not allows(tx.actor, Need(F.PERMISSIONS, L.ADMIN)):
        raise Refused(F.PERMISSIONS, L.ADMIN, CHANGES_PERMISSIONS)
    if _changes(plans, MAIL_SOURCES) and not allows(tx.actor, Need(F.DISPATCH, L.ADMIN)):
        raise Refused(F.DISPATCH, L.ADMIN, CHANGES_MAIL_SOURCES)
    if _changes_reports(plans) and not allows(tx.actor, Need(F.REPORTS, L.ADMIN)):
        raise Refused(F.REPORTS, L.ADMIN, CHANGES_REPORTS)


def _check_undoing(tx: Tx, backup_id: uuid.UUID, preview: RestorePreview) -> None:
    """「元に戻す」 skips the typed name only for the brigade's own pre-change backup itself."""
    row = tx.get(PreChangeBackup, backup_id)
    if row is None or row.sha256 != preview.sha256:
        raise ValidationError({"backup": "元に戻すバックアップが見つかりません。"})


def _leaving(plan: ImportPreview) -> int:
    """Records a plan retires, suspends or deletes: what the pre-change backup is for."""
    return len(plan.missing) + plan.retiring_rows + plan.suspending_rows


def _check_bulk(tx: Tx, plans: Mapping[str, ImportPreview], confirm_name: str | None) -> None:
    """The bulk guard (services/bulk_guard.py) on what the restore retires or deletes."""
    limits = brigade_settings.bulk_limits_in(tx)
    for name, what in ((MEMBERS, "退団 {n:,}名"), (WATER, "消防水利の削除（廃止） {n:,}件")):
        count = plans[name].retiring(MissingRows.RETIRE)
        bulk_guard.check(
            count,
            plans[name].current,
            brigade=tx.brigade_name,
            confirm_name=confirm_name,
            what=what.format(n=count),
            limits=limits,
        )


def _permission_editors(tx: Tx) -> set[uuid.UUID]:
    """Active members who may edit permissions, through their rank or a role."""
    holders = set(
        tx.session.exec(
            scoped(select(Permission.subject_id), tx.actor).where(
                Permission.function == str(F.PERMISSIONS), Permission.level >= int(L.EDIT)
            )
        ).all()
    )
    active = tx.session.exec(
        scoped(select(Member.id, Member.rank_id), tx.actor).where(
            Member.status == str(MemberStatus.ACTIVE)
        )
    ).all()
    by_role = {
        link.member_id
        for link in tx.session.exec(scoped(select(MemberRole), tx.actor)).all()
        if link.role_id in holders
    }
    return {member for member, rank in active if rank in holders or member in by_role}


def _check_editors(tx: Tx, before: set[uuid.UUID]) -> None:
    """Giving or taking the right to edit permissions needs 役職・権限 管理, as on the roster."""
    if _permission_editors(tx) != before and not allows(tx.actor, Need(F.PERMISSIONS, L.ADMIN)):
        raise Refused(F.PERMISSIONS, L.ADMIN, ADMIN_REQUIRED)


def _size(plan: ImportPreview) -> int:
    return len(plan.rows) + len(plan.missing)


def _written(step: ProgressCounter, plan: ImportPreview, write: Callable[[Progress], T]) -> T:
    """write(progress) for one plan, its progress reported as its part of the whole restore."""
    result = write(step.part(_size(plan)))
    step.advance(_size(plan))
    return result


def _role_result(plan: ImportPreview) -> ImportResult:
    counts = plan.counts
    return ImportResult(
        created=counts[RowStatus.NEW],
        updated=counts[RowStatus.CHANGED],
        unchanged=counts[RowStatus.UNCHANGED],
        retired=len(plan.missing),
    )


def _counted(plan: ImportPreview) -> ImportResult:
    counts = plan.counts
    return ImportResult(
        created=counts[RowStatus.NEW],
        updated=counts[RowStatus.CHANGED],
        unchanged=counts[RowStatus.UNCHANGED],
    )


def _restore_details(backup: fmt.Backup, result: RestoreResult) -> dict[str, Any]:
    """The file's fingerprint and what changed, in counts: no personal data."""
    manifest = backup.manifest
    return {
        "sha256": result.sha256,
        "format_version": manifest.format_version,
        "backup_created_at": manifest.created_at.isoformat(),
        "source_tenant_id": str(manifest.tenant_id),
        "source_brigade": manifest.brigade,
        "other_brigade": result.other_brigade,
        "encrypted": backup.encrypted,
        "rows": manifest.rows,
        "counts": result.counts(),
    }
