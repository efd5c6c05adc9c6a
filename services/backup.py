"""Backup and restore (バックアップ・復元) of one brigade: roles, the permission matrix, the roster,
the water sources and their inspections, in one ZIP (formats/backup.py).

Who may do what, and why:

- create_backup needs CSV出力・バックアップ 閲覧 and 閲覧 of everything the file holds: 団員名簿,
  消防水利, 水利点検 (inspectors' names) and 役職・権限. The file holds personal data decrypted,
  hence the optional AES password.
- inspect_backup and restore_backup need 復元 編集. A restore that changes roles or the matrix, or
  who may edit permissions, needs 役職・権限 管理 as well, as the matrix page would; restoring
  another brigade's backup needs 役職・権限 管理 and the administrator's explicit choice.

A restore replaces the brigade's data in one transaction, everything or nothing: members absent
from the backup are retired, not deleted (accounts, sessions and the audit log refer to them);
water sources absent from it are deleted with their inspections; roles absent from it are
removed after the members are re-linked; the matrix and the inspections are replaced. The
no-lock-out guard of the matrix holds: a backup that would leave no active member with
役職・権限 管理 is refused.
"""

from __future__ import annotations

import re
import tomllib
import unicodedata
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from functools import cache
from typing import Any, TypeVar

from sqlalchemy import delete, update
from sqlmodel import select

from config import ROOT
from core.access import Need, allows
from core.actor import Actor
from core.timefmt import JST, to_jst
from formats import backup as fmt
from formats import member_csv, water_csv
from formats.tabular import CellError, CellValueError, find_header, plain, read_csv, to_date
from models import Member, MemberPublic, MemberRole, Permission, Rank, Role, Tenant
from models.base import utcnow
from models.enums import RANK_NAMES, Function, Level, MemberStatus, SubjectType
from models.water import WaterInspection, WaterSource
from services import member_import, members, water_import, water_rules, water_sources
from services import validation as v
from services.base import Tx, record_denial, scoped, transaction
from services.errors import PermissionDenied, ValidationError
from services.imports import (
    FieldChange,
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
    OWN_UNIT,
    Grant,
    Refused,
    choices,
    grant_of,
    guarded,
    no_lockout,
    permission_admins,
    top_level,
)

F, L = Function, Level
T = TypeVar("T")
ROLES, PERMISSIONS, MEMBERS, WATER, INSPECTIONS = (
    "roles",
    "permissions",
    "members",
    "water_sources",
    "inspections",
)
ENTITIES: dict[str, str] = {
    ROLES: fmt.ROLES,
    PERMISSIONS: fmt.PERMISSIONS,
    MEMBERS: fmt.MEMBERS,
    WATER: fmt.WATER_SOURCES,
    INSPECTIONS: fmt.INSPECTIONS,
}
ENTITY_LABELS = {
    ROLES: "役職",
    PERMISSIONS: "権限の設定",
    MEMBERS: "団員名簿",
    WATER: "消防水利",
    INSPECTIONS: "水利点検の記録",
}
BACKUP_NEEDS = (
    (F.CSV_EXPORT, L.VIEW),
    (F.ROSTER, L.VIEW),
    (F.WATER_SOURCES, L.VIEW),
    (F.INSPECTIONS, L.VIEW),
    (F.PERMISSIONS, L.VIEW),
)
OTHER_BRIGADE = (
    "このバックアップは別の消防団（{brigade}）のものです。この消防団へ復元するには、"
    "別の消防団のバックアップであることを確認して明示的に選択してください。"
)
OTHER_BRIGADE_ADMIN = "別の消防団のバックアップを復元するには、役職・権限の管理権限が必要です。"
CHANGES_PERMISSIONS = (
    "この復元は役職または権限の設定を変更するため、役職・権限の管理権限が必要です。"
)
NOT_READY = "バックアップに誤りがあるため復元できません。プレビューのエラーを確認してください。"
LOCKOUT_PREDICTED = (
    "この復元を行うと、役職・権限を管理できる在籍中の団員がいなくなります。"
    "バックアップの内容を確認してください。"
)
_FILENAME_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


# -- results -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class BackupFile:
    filename: str  # hikeshi-backup-<brigade>-<YYYYmmdd-HHMM JST>.zip, ASCII only
    data: bytes = field(repr=False)
    manifest: fmt.Manifest
    encrypted: bool

    @property
    def sha256(self) -> str:
        return sha256(self.data)


@dataclass
class RestorePreview:
    """A verified backup planned against the brigade's data, nothing written. The file (and its
    password) are kept so that the restore verifies and plans them again in its transaction."""

    sha256: str
    data: bytes = field(repr=False)
    password: str | None = field(default=None, repr=False)
    manifest: fmt.Manifest | None = None
    encrypted: bool = False
    password_required: bool = False  # the file is encrypted and no or a wrong password was given
    other_brigade: bool = False
    plans: dict[str, ImportPreview] = field(default_factory=dict)  # ENTITIES order
    errors: list[str] = field(default_factory=list)

    @property
    def brigade(self) -> str:
        return self.manifest.brigade if self.manifest else ""

    @property
    def created_at_jst(self) -> str:
        return to_jst(self.manifest.created_at) if self.manifest else ""

    @property
    def ready(self) -> bool:
        return (
            self.manifest is not None
            and not self.errors
            and list(self.plans) == list(ENTITIES)
            and all(
                not p.file_errors and not p.counts[RowStatus.INVALID] for p in self.plans.values()
            )
        )


@dataclass(frozen=True)
class RestoreResult:
    """What the restore did. For roles, water sources and inspections `retired` counts rows
    deleted; members are only ever retired."""

    sha256: str
    other_brigade: bool
    roles: ImportResult
    permissions: ImportResult  # per rank or role row of the matrix
    members: ImportResult
    water_sources: ImportResult
    inspections: ImportResult

    def counts(self) -> dict[str, dict[str, int]]:
        return {
            name: getattr(self, name).__dict__.copy()
            for name in (ROLES, PERMISSIONS, MEMBERS, WATER, INSPECTIONS)
        }


# -- creating ----------------------------------------------------------------------------------


def create_backup(actor: Actor, *, password: str | None = None) -> BackupFile:
    """The brigade's data as one ZIP; AES-256 encrypted when a password is given."""
    _require_all(actor, BACKUP_NEEDS, "backup.create")
    if password is not None:
        _check_password(password)
    with transaction(actor, F.CSV_EXPORT, L.VIEW, "backup.create") as tx:
        files = _backup_files(tx)
        manifest = fmt.build_manifest(
            files,
            tenant_id=tx.tenant_id,
            brigade=_brigade_name(tx),
            created_at=utcnow(),
            app_version=app_version(),
        )
        data = fmt.write_zip(manifest, files, password=password)
        backup = BackupFile(_filename(tx.tenant_id, manifest), data, manifest, password is not None)
        tx.audit(
            "backup.create",
            target_type="backup",
            details={
                "filename": backup.filename,
                "sha256": backup.sha256,
                "bytes": len(data),
                "encrypted": backup.encrypted,
                "rows": manifest.rows,
            },
        )
    return backup


def _require_all(actor: Actor, needs: Sequence[tuple[Function, Level]], action: str) -> None:
    for function, level in needs:
        if not allows(actor, Need(function, level)):
            record_denial(actor, function, level, action)
            raise PermissionDenied()


def _check_password(password: str) -> None:
    try:
        fmt.check_password(password)
    except fmt.BackupError as exc:
        raise ValidationError({"password": str(exc)}) from None


def _backup_files(tx: Tx) -> dict[str, bytes]:
    roles = tx.session.exec(scoped(select(Role), tx.actor).order_by(Role.name)).all()
    ranks = {r.id: r for r in tx.session.exec(scoped(select(Rank), tx.actor)).all()}
    return {
        fmt.ROLES: fmt.encode_roles(fmt.RoleRow(r.name, ranks[r.rank_id].name) for r in roles),
        fmt.PERMISSIONS: fmt.encode_permissions(_matrix_rows(tx, ranks, roles)),
        fmt.MEMBERS: member_csv.encode(_current_members(tx)),
        fmt.WATER_SOURCES: water_csv.encode(_current_sources(tx)),
        fmt.INSPECTIONS: fmt.encode_inspections(_inspection_rows(tx)),
    }


def _matrix_rows(tx: Tx, ranks: Mapping[uuid.UUID, Rank], roles: Sequence[Role]) -> list:
    grants = _grants_by_subject(tx)
    subjects = [(fmt.SUBJECT_RANK, r) for r in sorted(ranks.values(), key=lambda r: r.position)]
    subjects += [(fmt.SUBJECT_ROLE, r) for r in roles]
    return [
        fmt.PermissionRow(
            kind,
            subject.name,
            {f: g.label for f, g in grants.get(subject.id, {}).items() if g.level > L.NONE},
        )
        for kind, subject in subjects
    ]


def _grants_by_subject(tx: Tx) -> dict[uuid.UUID, dict[Function, Grant]]:
    found: dict[uuid.UUID, dict[Function, Grant]] = {}
    for row in tx.session.exec(scoped(select(Permission), tx.actor)).all():
        if (grant := grant_of(row)) is not None:
            found.setdefault(row.subject_id, {})[Function(row.function)] = grant
    return found


def _current_members(tx: Tx) -> list[MemberPublic]:
    rows = tx.session.exec(scoped(select(Member), tx.actor).order_by(Member.member_code)).all()
    org = members.load_org(tx)
    return [members.to_public(tx, member, org) for member in rows]


def _current_sources(tx: Tx) -> list[WaterSource]:
    """The stored rows: the water layout holds registry fields only, nothing computed."""
    return list(
        tx.session.exec(scoped(select(WaterSource), tx.actor).order_by(WaterSource.code)).all()
    )


def _inspection_rows(tx: Tx) -> list[fmt.InspectionRow]:
    """Read together with their sources' codes, so that one statement sees both."""
    codes = _member_codes(tx)
    query = select(WaterInspection, WaterSource.code).join(
        WaterSource, WaterSource.id == WaterInspection.water_source_id
    )
    rows = [
        fmt.InspectionRow(
            source_code=source_code,
            inspected_on=row.inspected_on,
            result=row.result,
            inspector_code=codes.get(row.inspector_member_id, ""),
            inspector_name=_inspector_name(tx, row),
            notes=row.notes,
            created_at=row.created_at,
        )
        for row, source_code in tx.session.exec(scoped(query, tx.actor)).all()
    ]
    return sorted(rows, key=lambda r: (r.source_code, r.inspected_on, r.created_at))


def _member_codes(tx: Tx) -> dict[uuid.UUID, str]:
    return dict(tx.session.exec(scoped(select(Member.id, Member.member_code), tx.actor)).all())


def _inspector_name(tx: Tx, row: WaterInspection) -> str:
    if not row.inspector_name_enc:
        return ""
    return tx.cipher.decrypt(
        row.inspector_name_enc, field="water_inspection.inspector_name", row_id=row.id
    )


def _brigade_name(tx: Tx) -> str:
    tenant = tx.session.get(Tenant, tx.tenant_id)
    return tenant.name if tenant else ""


def _filename(tenant_id: uuid.UUID, manifest: fmt.Manifest) -> str:
    """ASCII only (browsers and USB sticks mangle other names): the brigade's name when it has
    letters or digits, else the start of its id."""
    name = _FILENAME_UNSAFE.sub("-", unicodedata.normalize("NFKC", manifest.brigade)).strip("-")
    stamp = manifest.created_at.astimezone(JST).strftime("%Y%m%d-%H%M")
    return f"hikeshi-backup-{name[:40] or str(tenant_id)[:8]}-{stamp}.zip"


@cache
def app_version() -> str:
    try:
        with open(ROOT / "pyproject.toml", "rb") as project:
            return str(tomllib.load(project)["project"]["version"])
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        return "unknown"


# -- inspecting --------------------------------------------------------------------------------


class _DryRun(Exception):
    """Ends the planning transaction of a preview: the roles it staged are rolled back."""

    def __init__(self, plans: dict[str, ImportPreview], admins: int) -> None:
        super().__init__("dry run")
        self.plans, self.admins = plans, admins


def inspect_backup(actor: Actor, *, data: bytes, password: str | None = None) -> RestorePreview:
    """Verify the file and plan every entity against the brigade's data; nothing is written."""
    preview = RestorePreview(sha256(data), data, password)
    if not allows(actor, Need(F.RESTORE, L.EDIT)):
        record_denial(actor, F.RESTORE, L.EDIT, "backup.inspect")
        raise PermissionDenied()
    try:
        backup = fmt.read_zip(data, password=password)
    except fmt.BackupError as exc:
        preview.errors = exc.problems
        preview.password_required = isinstance(exc, fmt.PasswordRequired | fmt.WrongPassword)
        return preview
    preview.manifest, preview.encrypted = backup.manifest, backup.encrypted
    preview.other_brigade = backup.manifest.tenant_id != actor.tenant_id
    try:
        with transaction(actor, F.RESTORE, L.EDIT, "backup.inspect") as tx:
            admins = 0 if actor.is_platform else permission_admins(tx.session, tx.tenant_id)
            raise _DryRun(_stage(tx, backup), admins)
    except _DryRun as dry_run:
        preview.plans = {name: _detached(plan) for name, plan in dry_run.plans.items()}
        preview.errors = _warnings(actor, preview, admins_now=dry_run.admins)
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
    if admins_now and _admins_after(preview.plans) == 0:
        found.append(LOCKOUT_PREDICTED)
    return found


def _changes_permissions(plans: Mapping[str, ImportPreview]) -> bool:
    return any(
        plans[name].missing or any(row.status != RowStatus.UNCHANGED for row in plans[name].rows)
        for name in (ROLES, PERMISSIONS)
        if name in plans
    )


def _admins_after(plans: Mapping[str, ImportPreview]) -> int:
    """Active members of the backup holding 役職・権限 管理 under the backup's matrix: after the
    restore they are the only ones (everyone else is retired)."""
    holders = {
        (plain(row.raw.get("kind", "")), plain(row.raw.get("name", "")))
        for row in plans[PERMISSIONS].rows
        if _grant(F.PERMISSIONS, row.raw.get(str(F.PERMISSIONS), "")) == Grant(L.ADMIN)
    }
    admin_roles = {name for kind, name in holders if kind == fmt.SUBJECT_ROLE}
    admin_ranks = {name for kind, name in holders if kind == fmt.SUBJECT_RANK}
    role_names = {plain(row.raw.get("name", "")) for row in plans[ROLES].rows}
    return sum(
        1
        for row in plans[MEMBERS].rows
        if _active(row.raw.get("status", ""))
        and (
            plain(row.raw.get("rank", "")) in admin_ranks
            or admin_roles & set(member_csv.split_roles(row.raw.get("roles", ""), role_names)[0])
        )
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
    roles = _plan_roles(tx, backup)
    _apply_roles(tx, roles)
    water = _plan_water(tx, backup)
    people = _plan_members(tx, backup)
    return {
        ROLES: roles,
        PERMISSIONS: _plan_permissions(tx, backup, roles),
        MEMBERS: people,
        WATER: water,
        INSPECTIONS: _plan_inspections(tx, backup, people, water),
    }


def _preview(entity: str, backup: fmt.Backup, **values: Any) -> ImportPreview:
    name = ENTITIES[entity]
    return ImportPreview(entity, name, sha256(backup.files[name]), "utf-8-sig", **values)


# roles ------------------------------------------------------------------------------------------


def _plan_roles(tx: Tx, backup: fmt.Backup) -> ImportPreview:
    table = fmt.read_table(backup.files[fmt.ROLES], fmt.ROLE_COLUMNS)
    current = _current_roles(tx)
    seen: set[str] = set()
    rows = []
    for number, raw in table.records:
        name, rank = plain(raw["name"]), plain(raw["rank"])
        errors = _role_errors(number, name, rank, seen)
        seen.add(name)
        rows.append(_role_plan(number, raw, name, rank, current.get(name), errors))
    missing = sorted(set(current) - seen)
    return _preview(
        ROLES,
        backup,
        rows=_with_cell_errors(rows, table.errors),
        missing=missing,
        file_errors=table.problems,
    )


def _current_roles(tx: Tx) -> dict[str, str]:
    ranks = {r.id: r.name for r in tx.session.exec(scoped(select(Rank), tx.actor)).all()}
    return {r.name: ranks[r.rank_id] for r in tx.session.exec(scoped(select(Role), tx.actor)).all()}


def _role_errors(number: int, name: str, rank: str, seen: set[str]) -> list[CellError]:
    name_column, rank_column = (c.header for c in fmt.ROLE_COLUMNS)
    errors = []
    if not name or v.has_control_chars(name) or name in RANK_NAMES:
        errors.append(CellError(number, name_column, "役職名が正しくありません。"))
    elif name in seen:
        errors.append(CellError(number, name_column, f"役職「{name}」が重複しています。"))
    if rank not in RANK_NAMES:
        errors.append(CellError(number, rank_column, "階級が正しくありません。"))
    return errors


def _role_plan(
    number: int, raw: dict[str, str], name: str, rank: str, before: str | None, errors: list
) -> RowPlan:
    if errors:
        return RowPlan(number, name, RowStatus.INVALID, raw, errors=tuple(errors))
    if before is None:
        return RowPlan(number, name, RowStatus.NEW, raw)
    if before != rank:
        change = FieldChange(fmt.ROLE_COLUMNS[1].header, before, rank)
        return RowPlan(number, name, RowStatus.CHANGED, raw, changes=(change,))
    return RowPlan(number, name, RowStatus.UNCHANGED, raw)


def _apply_roles(tx: Tx, plan: ImportPreview) -> None:
    """Create the backup's new roles and map changed ones to their rank; levels come with the
    matrix, never from the defaults of a role's name."""
    ranks = {r.name: r for r in tx.session.exec(scoped(select(Rank), tx.actor)).all()}
    roles = {r.name: r for r in tx.session.exec(scoped(select(Role), tx.actor)).all()}
    for row in plan.rows:
        rank = ranks.get(plain(row.raw["rank"]))
        if row.status == RowStatus.NEW and rank is not None:
            tx.session.add(Role(tenant_id=tx.tenant_id, name=row.code, rank_id=rank.id))
        elif row.status == RowStatus.CHANGED and rank is not None:
            roles[row.code].rank_id = rank.id
            tx.session.add(roles[row.code])
    tx.session.flush()


def _remove_roles(tx: Tx, names: Sequence[str]) -> int:
    """Roles the backup does not have, with their remaining holders' links (members the backup
    does not have, now retired) and their permissions."""
    roles = tx.session.exec(scoped(select(Role), tx.actor).where(Role.name.in_(names))).all()
    ids = [role.id for role in roles]
    holders = tx.session.exec(
        scoped(select(MemberRole.member_id), tx.actor).where(MemberRole.role_id.in_(ids))
    ).all()
    tenant = tx.tenant_id
    tx.session.exec(
        update(Member)
        .where(Member.tenant_id == tenant, Member.id.in_(set(holders)))
        .values(version=Member.version + 1, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    for table in (MemberRole, Permission):
        column = table.role_id if table is MemberRole else table.subject_id
        tx.session.exec(
            delete(table)
            .where(table.tenant_id == tenant, column.in_(ids))
            .execution_options(synchronize_session=False)
        )
    for role in roles:
        tx.session.delete(role)
    tx.session.flush()
    return len(roles)


# permissions ------------------------------------------------------------------------------------


def _plan_permissions(tx: Tx, backup: fmt.Backup, roles: ImportPreview) -> ImportPreview:
    table = fmt.read_table(backup.files[fmt.PERMISSIONS], fmt.PERMISSION_COLUMNS)
    current = _current_matrix(tx)
    new_roles = {row.code for row in roles.rows if row.status == RowStatus.NEW}
    backup_roles = {row.code for row in roles.rows if row.status != RowStatus.INVALID}
    seen: set[tuple[str, str]] = set()
    rows = []
    for number, raw in table.records:
        subject = (plain(raw["kind"]), plain(raw["name"]))
        grants, errors = _row_grants(number, raw)
        errors += _subject_errors(number, subject, backup_roles, seen)
        seen.add(subject)
        status = RowStatus.NEW if subject[1] in new_roles else RowStatus.UNCHANGED
        rows.append(_permission_plan(number, raw, subject, grants, current, errors, status))
    problems = table.problems + _missing_subjects(seen, backup_roles)
    return _preview(
        PERMISSIONS, backup, rows=_with_cell_errors(rows, table.errors), file_errors=problems
    )


def _current_matrix(tx: Tx) -> dict[tuple[str, str], dict[Function, Grant]]:
    grants = _grants_by_subject(tx)
    subjects = [(fmt.SUBJECT_RANK, r) for r in tx.session.exec(scoped(select(Rank), tx.actor))]
    subjects += [(fmt.SUBJECT_ROLE, r) for r in tx.session.exec(scoped(select(Role), tx.actor))]
    return {(kind, s.name): grants.get(s.id, {}) for kind, s in subjects}


def _row_grants(number: int, raw: Mapping[str, str]) -> tuple[dict[Function, Grant], list]:
    grants: dict[Function, Grant] = {}
    errors = []
    for function in Function:
        grant = _grant(function, raw.get(str(function), ""))
        if grant is None:
            offered = "、".join(g.label for g in choices(function))
            message = f"「{plain(raw[str(function)])[:20]}」は設定できません（{offered}）。"
            errors.append(CellError(number, function.label, message))
        else:
            grants[function] = grant
    return grants, errors


def _grant(function: Function, text: str) -> Grant | None:
    cleaned = plain(text)
    if not cleaned:
        return Grant()
    return next((g for g in choices(function) if plain(g.label) == cleaned), None)


def _subject_errors(
    number: int, subject: tuple[str, str], roles: set[str], seen: set[tuple[str, str]]
) -> list[CellError]:
    kind, name = subject
    kind_column, name_column = (c.header for c in fmt.PERMISSION_COLUMNS[:2])
    if kind not in (fmt.SUBJECT_RANK, fmt.SUBJECT_ROLE):
        return [CellError(number, kind_column, "「階級」か「役職」を入力してください。")]
    known = RANK_NAMES if kind == fmt.SUBJECT_RANK else roles
    if name not in known:
        return [CellError(number, name_column, f"{kind}「{name[:40]}」がありません。")]
    if subject in seen:
        return [CellError(number, name_column, f"{kind}「{name}」の行が重複しています。")]
    return []


def _missing_subjects(seen: set[tuple[str, str]], roles: set[str]) -> list[str]:
    wanted = [(fmt.SUBJECT_RANK, n) for n in RANK_NAMES] + [(fmt.SUBJECT_ROLE, n) for n in roles]
    return [
        f"{kind}「{name}」の権限の行がありません。"
        for kind, name in wanted
        if (kind, name) not in seen
    ]


def _permission_plan(
    number: int,
    raw: dict[str, str],
    subject: tuple[str, str],
    grants: dict[Function, Grant],
    current: Mapping[tuple[str, str], dict[Function, Grant]],
    errors: list[CellError],
    status: RowStatus,
) -> RowPlan:
    code = f"{subject[0]}: {subject[1]}"
    if errors:
        return RowPlan(number, code, RowStatus.INVALID, raw, errors=tuple(errors))
    before = current.get(subject, {})
    changes = tuple(
        FieldChange(f.label, before.get(f, Grant()).label, grants[f].label)
        for f in Function
        if before.get(f, Grant()) != grants[f]
    )
    if status == RowStatus.UNCHANGED and changes:
        status = RowStatus.CHANGED
    return RowPlan(number, code, status, raw, changes=changes)


def _write_permissions(tx: Tx, plan: ImportPreview) -> None:
    """The matrix replaced by the backup's: every stored cell deleted, the backup's added."""
    ids = {
        (fmt.SUBJECT_RANK, r.name): r.id for r in tx.session.exec(scoped(select(Rank), tx.actor))
    }
    ids |= {
        (fmt.SUBJECT_ROLE, r.name): r.id for r in tx.session.exec(scoped(select(Role), tx.actor))
    }
    tx.session.exec(delete(Permission).where(Permission.tenant_id == tx.tenant_id))
    for row in plan.rows:
        kind, name = plain(row.raw["kind"]), plain(row.raw["name"])
        subject_type = SubjectType.RANK if kind == fmt.SUBJECT_RANK else SubjectType.ROLE
        grants, _ = _row_grants(row.row, row.raw)
        tx.session.add_all(
            Permission(
                tenant_id=tx.tenant_id,
                subject_type=subject_type,
                subject_id=ids[(kind, name)],
                function=str(function),
                level=int(grant.level),
                scope=OWN_UNIT if grant.own_unit else "",
            )
            for function, grant in grants.items()
            if grant.level > L.NONE
        )
    tx.session.flush()


# members and water sources ----------------------------------------------------------------------


def _plan_members(tx: Tx, backup: fmt.Backup) -> ImportPreview:
    records: list[tuple[int, dict[str, str]]] = []
    if backup.manifest.rows[fmt.MEMBERS]:  # the reader refuses a roster without members
        parsed = member_csv.parse(backup.files[fmt.MEMBERS], fmt.MEMBERS)
        if parsed.file_errors:
            return _preview(MEMBERS, backup, file_errors=parsed.file_errors)
        records = [(row, raw) for row, raw, _ in parsed.records]
    # Planning checks the lengths the reader checked too, so its errors are not added twice.
    rows = member_import.plan_members(tx, records)
    staying = scoped(select(Member.member_code), tx.actor).where(
        Member.status != str(MemberStatus.RETIRED)
    )
    missing = sorted(set(tx.session.exec(staying).all()) - {row.code for row in rows})
    return _preview(MEMBERS, backup, rows=rows, missing=missing)


def _plan_water(tx: Tx, backup: fmt.Backup) -> ImportPreview:
    try:
        sheet = read_csv(backup.files[fmt.WATER_SOURCES])
    except ValueError as exc:
        return _preview(WATER, backup, file_errors=[str(exc)])
    match = find_header(sheet, water_csv.READ_COLUMNS)
    if match is None:
        return _preview(WATER, backup, file_errors=["見出し行が見つかりません。"])
    parsed = water_csv.parse(sheet, match)
    if parsed.file_errors:
        return _preview(WATER, backup, file_errors=parsed.file_errors)
    plans = water_import.plan_water_sources(tx, parsed.records)
    rows = water_import.with_read_errors(plans, parsed.errors)
    current = set(tx.session.exec(scoped(select(WaterSource.code), tx.actor)).all())
    missing = sorted(current - {row.code for row in rows})
    return _preview(WATER, backup, rows=rows, missing=missing)


def _with_cell_errors(rows: list[RowPlan], errors: Sequence[CellError]) -> list[RowPlan]:
    """Rows with the errors found while reading their cells (an over-long cell, say)."""
    by_row: dict[int, list[CellError]] = {}
    for error in errors:
        by_row.setdefault(error.row, []).append(error)
    return [
        replace(row, status=RowStatus.INVALID, errors=(*row.errors, *by_row[row.row]))
        if row.row in by_row
        else row
        for row in rows
    ]


# inspections ------------------------------------------------------------------------------------

InspectionKey = tuple[str, date, str, str, str, str, datetime]


def _plan_inspections(
    tx: Tx, backup: fmt.Backup, people: ImportPreview, water: ImportPreview
) -> ImportPreview:
    table = fmt.read_table(backup.files[fmt.INSPECTIONS], fmt.INSPECTION_COLUMNS)
    sources = {row.code for row in water.rows}
    codes = {row.code for row in people.rows}
    existing = _existing_inspections(tx)
    rows = []
    for number, raw in table.records:
        key, errors = _inspection(number, raw, sources, codes)
        code = f"{plain(raw['source_code'])} {plain(raw['inspected_on'])}"
        if errors or key is None:
            rows.append(RowPlan(number, code, RowStatus.INVALID, raw, errors=tuple(errors)))
        elif existing.get(key, 0) > 0:
            existing[key] -= 1
            rows.append(RowPlan(number, code, RowStatus.UNCHANGED, raw))
        else:
            rows.append(RowPlan(number, code, RowStatus.NEW, raw))
    missing = [
        f"{key[0]} {key[1].isoformat()}" for key, left in existing.items() for _ in range(left)
    ]
    return _preview(
        INSPECTIONS,
        backup,
        rows=_with_cell_errors(rows, table.errors),
        missing=sorted(missing),
        file_errors=table.problems,
    )


def _existing_inspections(tx: Tx) -> dict[InspectionKey, int]:
    codes = _member_codes(tx)
    sources = dict(
        tx.session.exec(scoped(select(WaterSource.id, WaterSource.code), tx.actor)).all()
    )
    found: dict[InspectionKey, int] = {}
    for row in tx.session.exec(scoped(select(WaterInspection), tx.actor)).all():
        key = (
            sources[row.water_source_id],
            row.inspected_on,
            row.result,
            codes.get(row.inspector_member_id, ""),
            _inspector_name(tx, row),
            row.notes,
            row.created_at,
        )
        found[key] = found.get(key, 0) + 1
    return found


def _inspection(
    number: int, raw: Mapping[str, str], sources: set[str], codes: set[str]
) -> tuple[InspectionKey | None, list[CellError]]:
    """The inspection a row describes (as a comparable key), or the errors of its cells."""
    header = {c.key: c.header for c in fmt.INSPECTION_COLUMNS}
    errors: list[CellError] = []

    def check(key: str, ok: bool, message: str) -> None:
        if not ok:
            errors.append(CellError(number, header[key], message))

    source, inspector = plain(raw["source_code"]), plain(raw["inspector_code"])
    on = _parsed(number, header["inspected_on"], to_date, raw["inspected_on"], errors)
    created = _parsed(number, header["created_at"], _aware, raw["created_at"], errors)
    check("source_code", source in sources, f"水利番号「{source[:30]}」が消防水利にありません。")
    check("result", raw["result"] in water_rules.INSPECTION_RESULTS, "点検結果が正しくありません。")
    check(
        "inspector_code",
        not inspector or inspector in codes,
        f"団員番号「{inspector[:20]}」が団員名簿にありません。",
    )
    check(
        "inspector_name",
        not v.has_control_chars(raw["inspector_name"]),
        v.control_chars_message("点検者の氏名"),
    )
    check("notes", "\x00" not in raw["notes"], "点検の記録に使用できない文字が含まれています。")
    if on is not None:
        check("inspected_on", on >= water_sources.EARLIEST_DATE, "点検日が正しくありません。")
    if errors or on is None or created is None:
        return None, errors
    name = v.clean_text(raw["inspector_name"])
    return (source, on, raw["result"], inspector, name, raw["notes"].strip(), created), []


def _parsed(number: int, column: str, read: Callable[[str], Any], text: str, errors: list) -> Any:
    try:
        value = read(text)
    except (CellValueError, ValueError) as exc:
        errors.append(CellError(number, column, str(exc) or "値が正しくありません。"))
        return None
    if value is None:
        errors.append(CellError(number, column, "入力してください。"))
    return value


def _aware(text: str) -> datetime:
    value = datetime.fromisoformat(plain(text))
    if value.tzinfo is None:
        raise ValueError("日時にタイムゾーンがありません。")
    return value.astimezone(UTC)


def _write_inspections(tx: Tx, plan: ImportPreview) -> ImportResult:
    """Every inspection of the brigade replaced by the backup's (its sources are the backup's
    now); inspectors by member code, outsiders' names encrypted again under the new rows."""
    removed = tx.session.exec(
        delete(WaterInspection)
        .where(WaterInspection.tenant_id == tx.tenant_id)
        .execution_options(synchronize_session=False)
    ).rowcount
    sources = {
        c: i for i, c in tx.session.exec(scoped(select(WaterSource.id, WaterSource.code), tx.actor))
    }
    members_by_code = {c: i for i, c in _member_codes(tx).items()}
    known_sources, known_codes = set(sources), set(members_by_code)
    for row in plan.rows:
        key, _ = _inspection(row.row, row.raw, known_sources, known_codes)
        tx.session.add(_inspection_row(tx, key, sources, members_by_code))
    tx.session.flush()
    unchanged = plan.counts[RowStatus.UNCHANGED]
    return ImportResult(
        created=len(plan.rows) - unchanged, unchanged=unchanged, retired=removed - unchanged
    )


def _inspection_row(
    tx: Tx, key: InspectionKey, sources: Mapping[str, uuid.UUID], codes: Mapping[str, uuid.UUID]
) -> WaterInspection:
    source, on, result, inspector, name, notes, created = key
    row = WaterInspection(
        tenant_id=tx.tenant_id,
        water_source_id=sources[source],
        inspected_on=on,
        inspector_member_id=codes[inspector] if inspector else None,
        result=result,
        notes=notes,
        created_at=created,
    )
    if name:
        row.inspector_name_enc = tx.cipher.encrypt(
            name, field="water_inspection.inspector_name", row_id=row.id
        )
    return row


# -- restoring ---------------------------------------------------------------------------------


def restore_backup(
    actor: Actor,
    preview: RestorePreview,
    *,
    allow_other_brigade: bool = False,
    progress: Progress | None = None,
) -> RestoreResult:
    """Replace the brigade's data by the backup's in one transaction, verifying and planning the
    file again inside it; one audit event."""
    with guarded(actor, F.RESTORE, L.EDIT, "backup.restore") as tx:
        backup = _verified(preview)
        other = backup.manifest.tenant_id != tx.tenant_id
        _check_other_brigade(tx, backup.manifest, other, allow_other_brigade)
        editors = _permission_editors(tx)
        with no_lockout(tx):
            plans = _stage(tx, backup)
            _check_plans(tx, plans)
            step = ProgressCounter(progress, sum(_size(p) for p in plans.values()))
            _write_permissions(tx, plans[PERMISSIONS])
            step.advance(_size(plans[ROLES]) + _size(plans[PERMISSIONS]))
            people = _written(
                step,
                plans[MEMBERS],
                lambda report: member_import.write_members(
                    tx, plans[MEMBERS].rows, missing=MissingRows.RETIRE, progress=report
                ),
            )
            _remove_roles(tx, plans[ROLES].missing)
        _check_editors(tx, editors)
        water = _written(
            step,
            plans[WATER],
            lambda report: water_import.write_water_sources(
                tx, plans[WATER].rows, missing=MissingRows.RETIRE, progress=report
            ),
        )
        inspections = _write_inspections(tx, plans[INSPECTIONS])
        step.advance(_size(plans[INSPECTIONS]))
        result = RestoreResult(
            sha256=preview.sha256,
            other_brigade=other,
            roles=_role_result(plans[ROLES]),
            permissions=_counted(plans[PERMISSIONS]),
            members=people,
            water_sources=water,
            inspections=inspections,
        )
        tx.audit("backup.restore", target_type="backup", details=_restore_details(backup, result))
    return result


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
