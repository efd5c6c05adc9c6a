"""The member import's shared parts: the layout's fields and limits, the row plan, and what
planning knows of the brigade (its members, ranks, roles and the importer's scope)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from types import SimpleNamespace
from typing import Any

from sqlalchemy import Row
from sqlmodel import select

from core.access import Need, allows
from core.actor import Actor
from core.personal import personal_fields
from formats import member_csv
from formats.member_csv import COLUMNS
from formats.tabular import plain
from models import Member, MemberRole, Permission
from models.enums import Function, Level, MemberStatus
from services import brigade_settings, import_reuse, members
from services.base import Tx, scoped
from services.imports import (
    RowPlan,
)
from services.members import EditScope
from services.permissions import (
    Grant,
    combined_grants,
)

MEMBERS = Member.__table__
MEMBER_ROLES = MemberRole.__table__
ENTITY = "member"
CHUNK = 1000
ENCODINGS = ("utf-8", "cp932")
NOT_READY = "取り込める状態ではありません。エラーを直したファイルで確認し直してください。"
ACCOUNTS_REQUIRED = "「停止中」への変更・解除には「アカウント管理」の編集権限が必要です。"
# services.members' field names → the layout's column keys.
FIELD_COLUMNS = {
    "member_code": "member_code",
    "name": "name",
    "kana": "kana",
    "rank_id": "rank",
    "role_ids": "roles",
    "affiliation": "affiliation",
    "phone": "phone",
    "email": "email",
    "address": "address",
    "joined_on": "joined_on",
    "notes": "notes",
}
TEXT_FIELDS = ("member_code", "name", "kana", "affiliation", "phone", "email", "address", "notes")
MAX_LENGTHS = {column.key: column.max_length for column in COLUMNS}
COLUMN_ORDER = {column.key: index for index, column in enumerate(COLUMNS)}


@dataclass(frozen=True)
class MemberRowPlan(RowPlan):
    """A RowPlan with what writing it needs; valid only in the transaction that planned it."""

    prepared: Prepared | None = field(default=None, compare=False, repr=False)


# ---------------------------------------------------------------------------
# Planning


Fields = dict[str, Any]  # services.members' normalised fields, with "status"
STORED = (
    Member.id,
    Member.member_code,
    Member.rank_id,
    Member.affiliation,
    Member.status,
    Member.joined_on,
    Member.version,
    *(getattr(Member, f.column) for f in personal_fields("member", encrypted=True)),
)


@dataclass
class PlanContext:
    """What planning needs of the tenant, loaded once per transaction (members as plain rows,
    decrypted only when the file names them)."""

    tx: Tx
    scope: EditScope | None  # None: no permission checks (the caller has made them)
    checks_rows: bool  # whether rows need the editor's checks
    ranks: dict[str, uuid.UUID]  # by plain name, highest rank first
    roles: dict[str, uuid.UUID]
    org: members.Org
    existing: dict[str, Row[Any]]  # by 団員番号
    grants: dict[frozenset[uuid.UUID], dict[str, Grant]] = field(default_factory=dict)

    @classmethod
    def load(cls, tx: Tx, *, scope: EditScope | None, lock: bool) -> PlanContext:
        org = members.load_org(tx)
        ranks, roles, _ = org
        query = scoped(select(*STORED), tx.actor)
        rows = tx.session.exec(query.with_for_update() if lock else query).all()
        return cls(
            tx,
            scope,
            scope is not None and not _may_do_everything(tx.actor, scope),
            {plain(r.name): r.id for r in sorted(ranks.values(), key=lambda r: r.position)},
            {plain(r.name): r.id for r in roles.values()},
            org,
            {row.member_code: row for row in rows},
        )

    def fields(self, row: Row[Any]) -> Fields:
        return {
            **members.personal_values(self.tx, row),
            "member_code": row.member_code,
            "rank_id": row.rank_id,
            "role_ids": self.org[2].get(row.id, []),
            "affiliation": row.affiliation,
            "status": MemberStatus(row.status),
            "joined_on": row.joined_on,
        }

    def cells(self, fields: Fields) -> dict[str, str]:
        """Fields as the export writes them (roles sorted as the roster sorts them)."""
        ranks, roles, _ = self.org
        rank = ranks.get(fields["rank_id"])
        joined_on = fields["joined_on"]
        return member_csv.cells(
            SimpleNamespace(
                **{name: fields[name] for name in TEXT_FIELDS},
                rank_name=rank.name if rank is not None else "",
                role_names=sorted(roles[r].name for r in fields["role_ids"] if r in roles),
                status=fields["status"],
                joined_on=joined_on if isinstance(joined_on, date) else None,
            )
        )

    def grants_of(self, subjects: Sequence[uuid.UUID]) -> dict[str, Grant]:
        """What a rank and roles give together (cached per combination)."""
        key = frozenset(subjects)
        if key not in self.grants:
            self.grants[key] = combined_grants(self.tx.session, self.tx.tenant_id, key)
        return self.grants[key]

    def permissions_grant(self, subjects: Sequence[uuid.UUID]) -> Grant:
        return self.grants_of(subjects).get(str(Function.PERMISSIONS), Grant())

    def member_grants(self, row: Row[Any]) -> dict[str, Grant]:
        return self.grants_of([row.rank_id, *self.org[2].get(row.id, [])])

    def stamp(self) -> str:
        """A digest of what planning reads of the brigade (services.import_reuse): every
        member's stored columns, ranks, roles, role links, grants, the limits and the scope."""
        ranks, roles, links = self.org
        grants = self.tx.session.exec(
            scoped(
                select(
                    Permission.subject_type,
                    Permission.subject_id,
                    Permission.function,
                    Permission.level,
                    Permission.scope,
                ),
                self.tx.actor,
            )
        ).all()
        return import_reuse.stamp(
            (tuple(row) for _, row in sorted(self.existing.items())),
            sorted((r.id, sorted(r.model_dump().items())) for r in ranks.values()),
            sorted((r.id, sorted(r.model_dump().items())) for r in roles.values()),
            sorted((member, sorted(ids)) for member, ids in links.items()),
            sorted((tuple(row) for row in grants), key=repr),
            [brigade_settings.bulk_limits_in(self.tx), self.scope, self.checks_rows],
        )

    def bound_to(self, planned: Planned) -> Planned:
        """Plans made in another transaction from the same data (stamp() equal), taken into
        this one: the context their rows share becomes this one, so what writing reads of the
        brigade comes from this transaction. The plans were kept for one use only."""
        shared = {id(p.prepared.context): p.prepared.context for p in planned.rows if p.prepared}
        for context in shared.values():
            vars(context).update(vars(self))
        return planned


def _may_do_everything(actor: Actor, scope: EditScope) -> bool:
    """An editor of the whole brigade who may also grant permissions and suspend."""
    return scope.whole_brigade and allows(
        actor,
        Need(Function.PERMISSIONS, Level.ADMIN),
        Need(Function.MEMBER_ACCOUNTS, Level.EDIT),
    )


@dataclass(frozen=True)
class Prepared:
    context: PlanContext
    code: str
    values: Fields
    current: Row[Any] | None
    before: Fields | None
    changed: bool

    @property
    def before_roles(self) -> list[uuid.UUID]:
        return self.before["role_ids"] if self.before is not None else []

    @property
    def loses_access(self) -> bool:
        return (
            self.before is not None
            and self.before["status"] == MemberStatus.ACTIVE
            and self.values["status"] != MemberStatus.ACTIVE
        )


@dataclass(frozen=True)
class Planned:
    rows: list[MemberRowPlan]
    absent: list[Row[Any]]  # not in the file, not retired, and within the actor's scope
    outside: int  # not in the file and outside the actor's scope
    current: int = 0  # members not retired, in the whole brigade (the bulk guard's base)
    kept_self: str = ""  # the actor's own 団員番号 when the file leaves him out (never retired)
