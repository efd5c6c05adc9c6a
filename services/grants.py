"""The permission matrix as data: what each function offers, the default grants of ranks and
roles, and how a member's rank and roles combine into what the member may do (for the whole
brigade and within the own 所属). No service call and no gate here: services.permissions edits
the matrix, services.signin.sessions builds actors from it."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import insert
from sqlmodel import Session, select

from models import Member, MemberRole, Permission, Rank, Role
from models.base import new_id
from models.enums import RANK_NAMES, Function, Level, SubjectType

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
    # 閲覧: the incident board; 編集: incidents by hand, status; 管理: where dispatch mail comes from
    F.DISPATCH: (L.NONE, L.VIEW, L.EDIT, L.ADMIN),
    # 閲覧: one's own 出動報告; 編集: reports for others (代理入力) and all of them;
    # 管理: the reward table, the approval chain and the monthly export
    F.REPORTS: (L.NONE, L.VIEW, L.EDIT, L.ADMIN),
    # 編集: approve or return reports at the steps of the chain the holder's rank may take
    F.APPROVALS: (L.NONE, L.EDIT),
}
assert set(FUNCTION_LEVELS) == set(Function)
# Functions whose grants may be narrowed to the holder's own 所属 (they act on members).
SCOPED_FUNCTIONS = frozenset({F.ROSTER})
OWN_UNIT = "own_unit"


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
    F.DISPATCH: L.EDIT,
    F.REPORTS: L.EDIT,
    F.APPROVALS: L.EDIT,
}
_SECTION_LEADER = {
    F.DASHBOARD: L.VIEW,
    F.ROSTER: L.VIEW,
    F.WATER_SOURCES: L.VIEW,
    F.INSPECTIONS: L.EDIT,
    F.NOTICES: L.VIEW,
    F.DISPATCH: L.VIEW,
    F.REPORTS: L.VIEW,
    F.APPROVALS: L.EDIT,
}
_MEMBER = {
    F.DASHBOARD: L.VIEW,
    F.WATER_SOURCES: L.VIEW,
    F.NOTICES: L.VIEW,
    F.DISPATCH: L.VIEW,
    F.REPORTS: L.VIEW,
}

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
    "会計": {F.ROSTER: L.VIEW, F.CSV_EXPORT: L.VIEW, F.REPORTS: L.ADMIN},
    "機関員": {F.WATER_SOURCES: L.VIEW, F.INSPECTIONS: L.EDIT},
}
assert all(
    level in FUNCTION_LEVELS[f]
    for matrix in (*DEFAULT_RANK_MATRIX.values(), *DEFAULT_ROLE_MATRIX.values())
    for f, level in matrix.items()
)


# ---------------------------------------------------------------------------
# Resolution (used by services.signin.sessions on every run, and by the services below)


def seed_ranks(session: Session, tenant_id: uuid.UUID) -> dict[str, uuid.UUID]:
    """A new brigade's 7 ranks and their default levels, as two multi-row inserts (no ORM
    objects: every brigade made, tests' included, pays for this). Rank name → id."""
    ranks = {name: new_id() for name in RANK_NAMES}
    session.execute(
        insert(Rank),
        [
            {"id": rank_id, "tenant_id": tenant_id, "name": name, "position": i + 1}
            for i, (name, rank_id) in enumerate(ranks.items())
        ],
    )
    session.execute(
        insert(Permission),
        [
            {
                "id": new_id(),
                "tenant_id": tenant_id,
                "subject_type": str(SubjectType.RANK),
                "subject_id": rank_id,
                "function": str(function),
                "level": int(level),
                "scope": "",
            }
            for name, rank_id in ranks.items()
            for function, level in DEFAULT_RANK_MATRIX[name].items()
            if level > L.NONE
        ],
    )
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
    # columns, not entities: a read for deciding access leaves nothing in the identity map
    rows = session.exec(
        select(Permission.function, Permission.level, Permission.scope).where(
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
) -> tuple[dict[str, Level], dict[str, Level]]:
    """The levels an Actor carries: those valid for the whole brigade (a grant narrowed to the
    holder's 所属 counts as 閲覧 there), and those valid only within the own 所属."""
    grants = combined_grants(session, tenant_id, [rank_id, *role_ids])
    brigade = {f: g.brigade_level for f, g in grants.items() if g.brigade_level > L.NONE}
    unit = {f: g.level for f, g in grants.items() if g.level > g.brigade_level}
    return brigade, unit


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
