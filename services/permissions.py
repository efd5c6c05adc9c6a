"""The rank × role permission matrix: effective level = the most permissive of rank and roles.

Deny by default: a function without a grant, or one this version does not know, is なし.
役職・権限 has three levels: 閲覧 shows the matrix; 編集 changes cells and roles up to the editor's own
level, except the 役職・権限 column itself; 管理 changes everything. So whoever may grant the right
to edit permissions holds 管理, and no change may leave the brigade without an active member who
does (no lock-out).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy import delete, or_
from sqlmodel import Session, select

from core.access import Need, allows
from core.actor import Actor
from models import Member, MemberRole, Permission, Rank, Role
from models.enums import RANK_NAMES, Function, Level, MemberStatus, SubjectType
from services.base import Tx, record_denial, scoped, transaction
from services.errors import NotFound, PermissionDenied, ValidationError

F, L = Function, Level

# The levels each function offers, lowest first. 管理 only where it adds something.
FUNCTION_LEVELS: dict[Function, tuple[Level, ...]] = {
    F.DASHBOARD: (L.NONE, L.VIEW),
    F.ROSTER: (L.NONE, L.VIEW, L.EDIT),
    F.MEMBER_ACCOUNTS: (L.NONE, L.VIEW, L.EDIT),
    F.PERMISSIONS: (L.NONE, L.VIEW, L.EDIT, L.ADMIN),
    F.WATER_SOURCES: (L.NONE, L.VIEW, L.EDIT),
    F.INSPECTIONS: (L.NONE, L.VIEW, L.EDIT),
    F.CSV_IMPORT: (L.NONE, L.EDIT),
    F.CSV_EXPORT: (L.NONE, L.VIEW),
    F.RESTORE: (L.NONE, L.EDIT),
    F.EVENT_LOGS: (L.NONE, L.VIEW, L.ADMIN),
    F.NOTICES: (L.NONE, L.VIEW, L.EDIT),
    F.SETTINGS: (L.NONE, L.VIEW, L.EDIT),
}
assert set(FUNCTION_LEVELS) == set(Function)
# Functions whose grants may be narrowed to the holder's own 所属 (they act on members).
SCOPED_FUNCTIONS = frozenset({F.ROSTER})
OWN_UNIT = "own_unit"
ADMIN_REQUIRED = "この変更には「役職・権限」の管理権限が必要です。"
LOCKOUT = (
    "この変更を行うと、役職・権限を管理できる在籍中の団員がいなくなります。"
    "先に別の団員へ管理権限を付与してください。"
)


def top_level(function: Function) -> Level:
    return FUNCTION_LEVELS[function][-1]


@dataclass(frozen=True)
class Grant:
    """One cell of the matrix: a level, possibly narrowed to the holder's own 所属."""

    level: Level = L.NONE
    own_unit: bool = False

    @property
    def brigade_level(self) -> Level:
        """What the grant allows for the whole brigade: a narrowed grant is 閲覧 outside 所属."""
        return min(self.level, L.VIEW) if self.own_unit else self.level

    @property
    def label(self) -> str:
        return f"{self.level.label}（自所属）" if self.own_unit else self.level.label


def choices(function: Function) -> tuple[Grant, ...]:
    """The cells the matrix offers for a function, lowest first."""
    grants = [Grant(level) for level in FUNCTION_LEVELS[function]]
    if function in SCOPED_FUNCTIONS:
        grants.insert(-1, Grant(L.EDIT, own_unit=True))
    return tuple(grants)


_EVERYTHING = {f: top_level(f) for f in Function}
_UNIT_LEADER = {
    F.DASHBOARD: L.VIEW,
    F.ROSTER: L.EDIT,
    F.MEMBER_ACCOUNTS: L.EDIT,
    F.PERMISSIONS: L.VIEW,
    F.WATER_SOURCES: L.EDIT,
    F.INSPECTIONS: L.EDIT,
    F.CSV_IMPORT: L.EDIT,
    F.CSV_EXPORT: L.VIEW,
    F.EVENT_LOGS: L.VIEW,
    F.NOTICES: L.EDIT,
    F.SETTINGS: L.VIEW,
}
_SECTION_LEADER = {
    F.DASHBOARD: L.VIEW,
    F.ROSTER: L.VIEW,
    F.WATER_SOURCES: L.VIEW,
    F.INSPECTIONS: L.EDIT,
    F.NOTICES: L.VIEW,
}
_MEMBER = {F.DASHBOARD: L.VIEW, F.WATER_SOURCES: L.VIEW, F.NOTICES: L.VIEW}

DEFAULT_RANK_MATRIX: dict[str, dict[Function, Level]] = {
    "団長": _EVERYTHING,
    "副団長": _EVERYTHING,
    "分団長": _UNIT_LEADER,
    "副分団長": {**_UNIT_LEADER, F.MEMBER_ACCOUNTS: L.VIEW, F.CSV_IMPORT: L.NONE},
    "部長": _SECTION_LEADER,
    "班長": _SECTION_LEADER,
    "団員": _MEMBER,
}
assert tuple(DEFAULT_RANK_MATRIX) == RANK_NAMES

DEFAULT_ROLE_MATRIX: dict[str, dict[Function, Level]] = {
    "庶務": {
        F.ROSTER: L.EDIT,
        F.MEMBER_ACCOUNTS: L.EDIT,
        F.CSV_IMPORT: L.EDIT,
        F.CSV_EXPORT: L.VIEW,
    },
    "会計": {F.ROSTER: L.VIEW, F.CSV_EXPORT: L.VIEW},
    "機関員": {F.WATER_SOURCES: L.VIEW, F.INSPECTIONS: L.EDIT},
}
assert all(
    level in FUNCTION_LEVELS[f]
    for matrix in (*DEFAULT_RANK_MATRIX.values(), *DEFAULT_ROLE_MATRIX.values())
    for f, level in matrix.items()
)


# ---------------------------------------------------------------------------
# Resolution (used by services.signin.sessions on every run, and by the services below)


def seed_ranks(session: Session, tenant_id: uuid.UUID) -> dict[str, Rank]:
    ranks = {
        name: Rank(tenant_id=tenant_id, name=name, position=i + 1)
        for i, name in enumerate(RANK_NAMES)
    }
    session.add_all(ranks.values())
    for name, rank in ranks.items():
        set_levels(session, tenant_id, SubjectType.RANK, rank.id, DEFAULT_RANK_MATRIX[name])
    return ranks


def set_levels(
    session: Session,
    tenant_id: uuid.UUID,
    subject_type: SubjectType,
    subject_id: uuid.UUID,
    levels: dict[Function, Level],
) -> None:
    session.add_all(
        Permission(
            tenant_id=tenant_id,
            subject_type=subject_type,
            subject_id=subject_id,
            function=function,
            level=int(level),
        )
        for function, level in levels.items()
        if level > L.NONE
    )


def grant_of(row: Permission) -> Grant | None:
    """A stored row as a grant: unknown functions are ignored, levels above what the function
    offers count as its top level, and a narrowing counts only where the function has one."""
    try:
        function = Function(row.function)
    except ValueError:
        return None
    level = Level(min(max(row.level, L.NONE), top_level(function)))
    return Grant(level, row.scope == OWN_UNIT and function in SCOPED_FUNCTIONS and level > L.VIEW)


def combine(grants: Iterable[Grant]) -> Grant:
    """The most permissive of several grants, for the whole brigade and for the own 所属."""
    grants = list(grants)
    level = max((g.level for g in grants), default=L.NONE)
    brigade = max((g.brigade_level for g in grants), default=L.NONE)
    return Grant(level, own_unit=level > brigade)


def combined_grants(
    session: Session, tenant_id: uuid.UUID, subject_ids: Iterable[uuid.UUID]
) -> dict[str, Grant]:
    """Per function, the most permissive grant of the subjects, both for the whole brigade and
    for the holder's own 所属."""
    rows = session.exec(
        select(Permission).where(
            Permission.tenant_id == tenant_id, Permission.subject_id.in_(list(subject_ids))
        )
    ).all()
    by_function: dict[str, list[Grant]] = {}
    for row in rows:
        if (grant := grant_of(row)) is not None and grant.level > L.NONE:
            by_function.setdefault(row.function, []).append(grant)
    return {f: combine(grants) for f, grants in by_function.items()}


def effective_levels(
    session: Session, tenant_id: uuid.UUID, rank_id: uuid.UUID, role_ids: Iterable[uuid.UUID]
) -> dict[str, Level]:
    """The levels an Actor carries: valid for the whole brigade, so a grant narrowed to the
    holder's 所属 counts as 閲覧 here (services that honour the narrowing look it up)."""
    grants = combined_grants(session, tenant_id, [rank_id, *role_ids])
    return {f: g.brigade_level for f, g in grants.items() if g.brigade_level > L.NONE}


def member_grants(session: Session, member: Member) -> dict[str, Grant]:
    role_ids = session.exec(
        select(MemberRole.role_id).where(
            MemberRole.tenant_id == member.tenant_id, MemberRole.member_id == member.id
        )
    ).all()
    return combined_grants(session, member.tenant_id, [member.rank_id, *role_ids])


def add_role(
    session: Session,
    tenant_id: uuid.UUID,
    name: str,
    rank: Rank,
    ceiling: dict[str, Level] | None = None,
) -> Role:
    """A role with the default levels of its name, capped at `ceiling` when given."""
    role = Role(tenant_id=tenant_id, name=name, rank_id=rank.id)
    session.add(role)
    levels = {
        f: min(level, ceiling.get(str(f), L.NONE)) if ceiling is not None else level
        for f, level in DEFAULT_ROLE_MATRIX.get(name, {}).items()
    }
    set_levels(session, tenant_id, SubjectType.ROLE, role.id, levels)
    return role


def permission_admins(session: Session, tenant_id: uuid.UUID) -> int:
    """How many active members hold 役職・権限 管理 through their rank or a role."""
    holders = select(Permission.subject_id).where(
        Permission.tenant_id == tenant_id,
        Permission.function == str(F.PERMISSIONS),
        Permission.level >= int(L.ADMIN),
    )
    by_role = select(MemberRole.member_id).where(
        MemberRole.tenant_id == tenant_id, MemberRole.role_id.in_(holders)
    )
    query = select(Member.id).where(
        Member.tenant_id == tenant_id,
        Member.status == str(MemberStatus.ACTIVE),
        or_(Member.rank_id.in_(holders), Member.id.in_(by_role)),
    )
    return len(session.exec(query).all())


# ---------------------------------------------------------------------------
# Guards shared by the services that change who may do what


class Refused(Exception):
    """Raised inside a guarded transaction: it rolls back and is recorded as a denial."""

    def __init__(self, function: Function, level: Level, message: str | None = None) -> None:
        super().__init__(message)
        self.function, self.level, self.message = function, level, message


@contextmanager
def guarded(
    actor: Actor, function: Function, level: Level, action: str, *, opens_at: Level | None = None
) -> Iterator[Tx]:
    """transaction() for calls whose requirement depends on what they touch: it opens at
    `opens_at` (default `level`), and a Refused raised inside is recorded with its own level."""
    if not allows(actor, Need(function, opens_at or level)):
        record_denial(actor, function, level, action)
        raise PermissionDenied()
    try:
        with transaction(actor, Need(function, opens_at or level), action=action) as tx:
            yield tx
    except Refused as refused:
        record_denial(actor, refused.function, refused.level, action)
        raise PermissionDenied(refused.message) from None


@contextmanager
def no_lockout(tx: Tx) -> Iterator[None]:
    """Refuse, when the work is committed, a change that removes the last permission
    administrator."""
    # The command line and the operator are the recovery path: no lock-out guard for them.
    before = 0 if tx.actor.is_platform else permission_admins(tx.session, tx.tenant_id)

    def check() -> None:
        if before and permission_admins(tx.session, tx.tenant_id) == 0:
            raise ValidationError({"lockout": LOCKOUT})

    tx.check_before_commit(check)
    yield


def check_grants_permission_editing(tx: Tx, before: Grant, after: Grant) -> None:
    """Giving or taking the right to edit permissions (through a rank, a role or the matrix)
    needs 役職・権限 管理."""
    crosses = before.level != after.level and max(before.level, after.level) >= L.EDIT
    if crosses and not allows(tx.actor, Need(F.PERMISSIONS, L.ADMIN)):
        raise Refused(F.PERMISSIONS, L.ADMIN, ADMIN_REQUIRED)


def check_ceiling(tx: Tx, function: Function, before: Grant, after: Grant) -> None:
    """Without 管理, an editor changes only cells at or below their own level, and never the
    役職・権限 column."""
    if allows(tx.actor, Need(F.PERMISSIONS, L.ADMIN)):
        return
    own = tx.actor.level(function)
    if function == F.PERMISSIONS or max(before.level, after.level) > own:
        raise Refused(F.PERMISSIONS, L.ADMIN, ADMIN_REQUIRED)


# ---------------------------------------------------------------------------
# The matrix services (役職・権限)


@dataclass(frozen=True)
class MatrixRow:
    subject_type: SubjectType
    subject_id: uuid.UUID
    name: str
    rank_id: uuid.UUID  # the rank itself, or the rank a role is mapped to
    rank_name: str
    members: int  # active members holding this rank or role
    grants: dict[Function, Grant]

    @property
    def is_rank(self) -> bool:
        return self.subject_type == SubjectType.RANK

    @property
    def label(self) -> str:
        if self.is_rank:
            return f"階級: {self.name}"
        return f"役職: {self.name}（{self.rank_name}相当）"


@dataclass(frozen=True)
class CellChange:
    subject_type: SubjectType
    subject_id: uuid.UUID
    function: Function
    grant: Grant


def list_matrix(actor: Actor) -> list[MatrixRow]:
    """The 7 ranks (highest first), then the roles by their rank and name."""
    with transaction(actor, Need(F.PERMISSIONS, L.VIEW), action="permission.list") as tx:
        return _matrix(tx)


def update_matrix(actor: Actor, changes: Sequence[CellChange]) -> int:
    """Apply cell changes in one transaction and one audit event; returns how many changed."""
    with guarded(actor, F.PERMISSIONS, L.EDIT, "permission.update") as tx:
        rows = {(r.subject_type, r.subject_id): r for r in _matrix(tx)}
        targets = [_target(rows, change) for change in changes]
        errors = {
            f"{row.name}:{function.label}": f"{row.name}の「{function.label}」に"
            f"「{grant.label}」は設定できません。"
            for row, function, grant in targets
            if grant not in choices(function)
        }
        if errors:
            raise ValidationError(errors)
        diff: list[dict] = []
        with no_lockout(tx):
            for row, function, grant in targets:
                before = row.grants[function]
                if before == grant:
                    continue
                check_ceiling(tx, function, before, grant)
                _store(tx, row, function, grant)
                row.grants[function] = grant
                diff.append(_diff(row, function, before, grant))
        if diff:
            tx.audit(
                "permission.update",
                target_type="permission",
                details={"changes": diff},
            )
        tx.commit()
        return len(diff)


@dataclass(frozen=True)
class FunctionPreview:
    function: Function
    grant: Grant
    sources: tuple[str, ...]  # the rank / roles giving the grant


@dataclass(frozen=True)
class MemberPreview:
    member_id: uuid.UUID
    member_code: str
    rank_name: str
    role_names: tuple[str, ...]
    status: str
    affiliation: str
    functions: tuple[FunctionPreview, ...]


@dataclass(frozen=True)
class MemberChoice:
    member_id: uuid.UUID
    label: str  # member code and name


def preview_choices(actor: Actor) -> list[MemberChoice]:
    with transaction(actor, Need(F.PERMISSIONS, L.VIEW), action="permission.preview_choices") as tx:
        rows = tx.session.exec(scoped(select(Member), actor).order_by(Member.member_code)).all()
        return [
            MemberChoice(
                m.id,
                f"{m.member_code}　{tx.cipher.member_name(m)}",
            )
            for m in rows
        ]


def preview_member(actor: Actor, member_id: uuid.UUID) -> MemberPreview:
    """What a member may do, function by function, and through which rank or role.
    A member who is not active may do nothing, whatever the matrix says."""
    with transaction(actor, Need(F.PERMISSIONS, L.VIEW), action="permission.preview") as tx:
        member = tx.get(Member, member_id)
        if member is None:
            raise NotFound("団員が見つかりません。")
        role_ids = set(
            tx.session.exec(
                scoped(select(MemberRole.role_id), actor).where(MemberRole.member_id == member.id)
            ).all()
        )
        matrix = _matrix(tx)
        holders = [r for r in matrix if r.subject_id == member.rank_id]
        holders += [r for r in matrix if r.subject_id in role_ids]
        active = member.status == MemberStatus.ACTIVE
        functions = tuple(
            FunctionPreview(
                function,
                combine(h.grants[function] for h in holders) if active else Grant(),
                tuple(h.name for h in holders if active and h.grants[function].level > L.NONE),
            )
            for function in Function
        )
        return MemberPreview(
            member_id=member.id,
            member_code=member.member_code,
            rank_name=holders[0].name,
            role_names=tuple(h.name for h in holders[1:]),
            status=member.status,
            affiliation=member.affiliation,
            functions=functions,
        )


def _matrix(tx: Tx) -> list[MatrixRow]:
    ranks = tx.session.exec(scoped(select(Rank), tx.actor).order_by(Rank.position)).all()
    rank_by_id = {r.id: r for r in ranks}
    roles = tx.session.exec(scoped(select(Role), tx.actor)).all()
    roles = sorted(roles, key=lambda r: (rank_by_id[r.rank_id].position, r.name))
    grants: dict[uuid.UUID, dict[Function, Grant]] = {}
    for row in tx.session.exec(scoped(select(Permission), tx.actor)).all():
        if (grant := grant_of(row)) is not None:
            grants.setdefault(row.subject_id, {})[Function(row.function)] = grant
    counts = _holder_counts(tx)

    def make(kind: SubjectType, subject: Rank | Role, rank: Rank) -> MatrixRow:
        own = grants.get(subject.id, {})
        return MatrixRow(
            subject_type=kind,
            subject_id=subject.id,
            name=subject.name,
            rank_id=rank.id,
            rank_name=rank.name,
            members=counts.get(subject.id, 0),
            grants={f: own.get(f, Grant()) for f in Function},
        )

    return [make(SubjectType.RANK, r, r) for r in ranks] + [
        make(SubjectType.ROLE, r, rank_by_id[r.rank_id]) for r in roles
    ]


def _holder_counts(tx: Tx) -> dict[uuid.UUID, int]:
    active = scoped(select(Member.id, Member.rank_id), tx.actor).where(
        Member.status == str(MemberStatus.ACTIVE)
    )
    rows = tx.session.exec(active).all()
    counts: dict[uuid.UUID, int] = {}
    for _, rank_id in rows:
        counts[rank_id] = counts.get(rank_id, 0) + 1
    active_ids = {member_id for member_id, _ in rows}
    for link in tx.session.exec(scoped(select(MemberRole), tx.actor)).all():
        if link.member_id in active_ids:
            counts[link.role_id] = counts.get(link.role_id, 0) + 1
    return counts


def _target(
    rows: dict[tuple[SubjectType, uuid.UUID], MatrixRow], change: CellChange
) -> tuple[MatrixRow, Function, Grant]:
    try:
        key = (SubjectType(change.subject_type), change.subject_id)
        function = Function(change.function)
        grant = Grant(Level(change.grant.level), bool(change.grant.own_unit))
    except (ValueError, AttributeError):
        raise ValidationError({"function": "不明な機能・対象・権限が指定されました。"}) from None
    if key not in rows:
        raise NotFound("階級または役職が見つかりません。")
    return rows[key], function, grant


def _store(tx: Tx, row: MatrixRow, function: Function, grant: Grant) -> None:
    tx.session.exec(
        delete(Permission).where(
            Permission.tenant_id == tx.tenant_id,
            Permission.subject_id == row.subject_id,
            Permission.function == str(function),
        )
    )
    if grant.level > L.NONE:
        tx.session.add(
            Permission(
                tenant_id=tx.tenant_id,
                subject_type=row.subject_type,
                subject_id=row.subject_id,
                function=str(function),
                level=int(grant.level),
                scope=OWN_UNIT if grant.own_unit else "",
            )
        )
    tx.session.flush()


def _diff(row: MatrixRow, function: Function, before: Grant, after: Grant) -> dict:
    return {
        "subject_type": str(row.subject_type),
        "subject_id": str(row.subject_id),
        "subject": row.name,
        "function": str(function),
        "before": _grant_code(before),
        "after": _grant_code(after),
    }


def _grant_code(grant: Grant) -> str:
    return grant.level.name.lower() + (f"/{OWN_UNIT}" if grant.own_unit else "")
