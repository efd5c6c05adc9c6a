"""The rank × role permission matrix: effective level = the most permissive of rank and roles."""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from sqlmodel import Session, select

from models import Permission, Rank, Role
from models.enums import RANK_NAMES, Function, Level, SubjectType

F, L = Function, Level

_EVERYTHING = {f: L.ADMIN for f in Function}
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


def effective_levels(
    session: Session, tenant_id: uuid.UUID, rank_id: uuid.UUID, role_ids: Iterable[uuid.UUID]
) -> dict[str, Level]:
    subjects = [rank_id, *role_ids]
    rows = session.exec(
        select(Permission).where(
            Permission.tenant_id == tenant_id, Permission.subject_id.in_(subjects)
        )
    ).all()
    known = {str(f) for f in Function}
    levels: dict[str, Level] = {}
    for row in rows:
        if row.function in known:
            levels[row.function] = max(levels.get(row.function, L.NONE), Level(row.level))
    return levels


def add_role(session: Session, tenant_id: uuid.UUID, name: str, rank: Rank) -> Role:
    role = Role(tenant_id=tenant_id, name=name, rank_id=rank.id)
    session.add(role)
    set_levels(session, tenant_id, SubjectType.ROLE, role.id, DEFAULT_ROLE_MATRIX.get(name, {}))
    return role
