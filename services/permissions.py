"""The rank × role permission matrix: effective level = the most permissive of rank and roles.

Deny by default: a function without a grant, or one this version does not know, is なし.
役職・権限 has three levels: 閲覧 shows the matrix; 編集 changes cells and roles up to the editor's own
level, except the 役職・権限 column itself; 管理 changes everything. So whoever may grant the right
to edit permissions holds 管理, and no change may leave the brigade without an active member who
does (no lock-out).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy import delete, or_
from sqlmodel import Session, select

from core.access import Need, allows
from core.actor import Actor
from models import LocalAccount, Member, MemberLine, MemberRole, Permission, Rank, Role
from models.base import utcnow
from models.enums import Function, Level, MemberStatus, SubjectType
from services.base import Tx, record_denial, scoped, transaction
from services.errors import NotFound, PermissionDenied, Refused, ValidationError
from services.grants import (
    DEFAULT_RANK_MATRIX,
    DEFAULT_ROLE_MATRIX,
    FUNCTION_LEVELS,
    OWN_UNIT,
    SCOPED_FUNCTIONS,
    Grant,
    add_role,
    choices,
    combine,
    combined_grants,
    effective_levels,
    grant_of,
    member_grants,
    seed_ranks,
    set_levels,
    top_level,
)

F, L = Function, Level

ADMIN_REQUIRED = "この変更には「役職・権限」の管理権限が必要です。"
LOCKOUT = (
    "この変更を行うと、役職・権限を管理できる在籍中の団員がいなくなります。"
    "先に別の団員へ管理権限を付与してください。"
)


def permission_admins(session: Session, tenant_id: uuid.UUID) -> int:
    """How many active members hold 役職・権限 管理 through their rank or a role and can
    actually sign in: a usable local login (not disabled, not locked out now) or a linked LINE
    account. A holder who cannot sign in cannot undo a lock-out, so does not count."""
    holders = select(Permission.subject_id).where(
        Permission.tenant_id == tenant_id,
        Permission.function == str(F.PERMISSIONS),
        Permission.level >= int(L.ADMIN),
    )
    by_role = select(MemberRole.member_id).where(
        MemberRole.tenant_id == tenant_id, MemberRole.role_id.in_(holders)
    )
    now = utcnow()
    by_password = select(LocalAccount.member_id).where(
        LocalAccount.tenant_id == tenant_id,
        LocalAccount.member_id.is_not(None),
        LocalAccount.disabled.is_(False),
        or_(LocalAccount.locked_until.is_(None), LocalAccount.locked_until <= now),
    )
    by_line = select(MemberLine.member_id).where(MemberLine.tenant_id == tenant_id)
    query = select(Member.id).where(
        Member.tenant_id == tenant_id,
        Member.status == str(MemberStatus.ACTIVE),
        or_(Member.rank_id.in_(holders), Member.id.in_(by_role)),
        or_(Member.id.in_(by_password), Member.id.in_(by_line)),
    )
    return len(session.exec(query).all())


# ---------------------------------------------------------------------------
# Guards shared by the services that change who may do what


@contextmanager
def guarded(
    actor: Actor,
    function: Function,
    level: Level,
    action: str,
    *,
    opens_at: Level | None = None,
    read_only: bool = False,
) -> Iterator[Tx]:
    """transaction() for calls whose requirement depends on what they touch: it opens at
    `opens_at` (default `level`), and a Refused raised inside is recorded with its own level."""
    if not allows(actor, Need(function, opens_at or level)):
        record_denial(actor, function, level, action)
        raise PermissionDenied()
    need = Need(function, opens_at or level)
    with transaction(actor, need, action=action, read_only=read_only) as tx:
        yield tx


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
    with transaction(
        actor, Need(F.PERMISSIONS, L.VIEW), action="permission.list", read_only=True
    ) as tx:
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
    with transaction(
        actor, Need(F.PERMISSIONS, L.VIEW), action="permission.preview_choices", read_only=True
    ) as tx:
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
    with transaction(
        actor, Need(F.PERMISSIONS, L.VIEW), action="permission.preview", read_only=True
    ) as tx:
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


__all__ = [
    "DEFAULT_RANK_MATRIX",
    "DEFAULT_ROLE_MATRIX",
    "FUNCTION_LEVELS",
    "OWN_UNIT",
    "SCOPED_FUNCTIONS",
    "Grant",
    "Refused",
    "add_role",
    "choices",
    "combine",
    "combined_grants",
    "effective_levels",
    "grant_of",
    "member_grants",
    "seed_ranks",
    "set_levels",
    "top_level",
]
