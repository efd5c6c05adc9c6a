"""Planning and writing the roles and the permission matrix of a backup."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sqlalchemy import delete, update
from sqlmodel import select

from formats import backup as fmt
from formats.tabular import CellError, plain
from models import Member, MemberRole, Permission, Rank, Role
from models.base import utcnow
from models.enums import RANK_NAMES, Function, SubjectType
from services import validation as v
from services.backup.create import grants_by_subject
from services.backup.model import PERMISSIONS, ROLES, L, preview_of, with_cell_errors
from services.base import Tx, scoped
from services.grants import DEFAULT_RANK_MATRIX
from services.imports import (
    FieldChange,
    ImportPreview,
    RowPlan,
    RowStatus,
)
from services.permissions import (
    OWN_UNIT,
    Grant,
    choices,
)


def plan_roles(tx: Tx, backup: fmt.Backup) -> ImportPreview:
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
    return preview_of(
        ROLES,
        backup,
        rows=with_cell_errors(rows, table.errors),
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


def apply_roles(tx: Tx, plan: ImportPreview) -> None:
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


def remove_roles(tx: Tx, names: Sequence[str]) -> int:
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


def plan_permissions(tx: Tx, backup: fmt.Backup, roles: ImportPreview) -> ImportPreview:
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
    return preview_of(
        PERMISSIONS, backup, rows=with_cell_errors(rows, table.errors), file_errors=problems
    )


def _current_matrix(tx: Tx) -> dict[tuple[str, str], dict[Function, Grant]]:
    grants = grants_by_subject(tx)
    subjects = [(fmt.SUBJECT_RANK, r) for r in tx.session.exec(scoped(select(Rank), tx.actor))]
    subjects += [(fmt.SUBJECT_ROLE, r) for r in tx.session.exec(scoped(select(Role), tx.actor))]
    return {(kind, s.name): grants.get(s.id, {}) for kind, s in subjects}


def _row_grants(number: int, raw: Mapping[str, str]) -> tuple[dict[Function, Grant], list]:
    grants: dict[Function, Grant] = {}
    errors = []
    for function in Function:
        if str(function) not in raw:  # a function newer than the backup (fmt.LATER_FUNCTIONS)
            grants[function] = _default_grant(plain(raw["kind"]), plain(raw["name"]), function)
            continue
        grant = parse_grant(function, raw.get(str(function), ""))
        if grant is None:
            offered = "、".join(g.label for g in choices(function))
            message = f"「{plain(raw[str(function)])[:20]}」は設定できません（{offered}）。"
            errors.append(CellError(number, function.label, message))
        else:
            grants[function] = grant
    return grants, errors


def _default_grant(kind: str, name: str, function: Function) -> Grant:
    """What a rank holds of a function its backup predates: the rank's default, as the
    migration that added the function gave existing brigades; a role holds nothing of it."""
    if kind != fmt.SUBJECT_RANK:
        return Grant()
    return Grant(DEFAULT_RANK_MATRIX.get(name, {}).get(function, L.NONE))


def parse_grant(function: Function, text: str) -> Grant | None:
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


def write_permissions(tx: Tx, plan: ImportPreview) -> None:
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
