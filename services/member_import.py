"""Members to and from CSV (white paper 12.3.1): export, template, and the import that previews
first and writes only when the administrator confirms — every row validated, then all rows in one
transaction or none, upserting by 団員番号.

Two levels: the actor-level functions check CSV一括登録 / CSV出力 and 団員名簿, audit once and
report; `plan_members` and `write_members` work inside a caller's transaction without checking
permissions (backup restore calls them), and the actor-level functions use them too.

Planning loads the tenant's ranks, roles, role links and members once (no query per row) and
writes with bulk statements; personal fields are encrypted per row as services.members does.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from types import SimpleNamespace
from typing import Any

from sqlalchemy import Row, bindparam, delete, insert, update
from sqlmodel import select

from core.access import Need, allows
from core.actor import Actor
from formats import member_csv
from formats.member_csv import COLUMNS, HEADERS
from formats.tabular import CellError, CellValueError, plain, to_date
from models import Member, MemberRole
from models.base import new_id, utcnow
from models.enums import Function, Level, MemberStatus
from services import members
from services.base import Tx, scoped
from services.errors import ValidationError
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
from services.members import EditScope
from services.permissions import (
    Grant,
    Refused,
    check_grants_permission_editing,
    combined_grants,
    guarded,
    no_lockout,
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


# ---------------------------------------------------------------------------
# Actor-level functions (pages and the benchmark call these)


def member_template() -> bytes:
    return member_csv.template()


def export_members_csv(actor: Actor, *, encoding: str = "utf-8") -> bytes:
    """Every member of the brigade, whatever the status, sorted by 団員番号. In CP932 a
    character it cannot hold raises csv_safe.Unencodable naming the row and column."""
    if encoding not in ENCODINGS:
        raise ValueError(f"unsupported encoding {encoding!r}")
    with guarded(actor, Function.CSV_EXPORT, Level.VIEW, "member.export") as tx:
        if not allows(actor, Need(Function.ROSTER, Level.VIEW)):
            raise Refused(Function.ROSTER, Level.VIEW)
        rows = tx.session.exec(scoped(select(Member), actor).order_by(Member.member_code)).all()
        org = members.load_org(tx)
        data = member_csv.encode((members.to_public(tx, m, org) for m in rows), encoding=encoding)
        tx.audit(
            "member.export",
            target_type=members.TABLE,
            details={"count": len(rows), "encoding": encoding},
        )
        return data


def preview_member_import(actor: Actor, *, data: bytes, filename: str) -> ImportPreview:
    """Read and validate an upload against the roster as it is; nothing is written."""
    with _importing(actor, "member.import_preview") as (tx, scope):
        parsed = member_csv.parse(data, filename)
        preview = ImportPreview(
            ENTITY,
            filename,
            sha256(data),
            parsed.encoding,
            sheet=parsed.sheet,
            header_row=parsed.header_row,
            file_errors=list(parsed.file_errors),
        )
        if parsed.file_errors:
            return preview
        # Over-long cells are found again by planning (which restore also relies on), so the
        # reader's own length errors are not added a second time.
        planned = _plan(tx, [(row, raw) for row, raw, _ in parsed.records], scope=scope)
        preview.rows = [_without_prepared(plan) for plan in planned.rows]
        preview.missing = [m.member_code for m in planned.absent]
        if planned.outside:
            preview.notes.append(f"ファイルにない所属外の団員{planned.outside}名は変更されません。")
        return preview


def apply_member_import(
    actor: Actor,
    preview: ImportPreview,
    *,
    missing: MissingRows,
    progress: Progress | None = None,
) -> ImportResult:
    """Write a previewed file in one transaction: its rows are planned again against the
    roster as it is now, permissions included; any invalid row writes nothing."""
    if preview.entity != ENTITY:
        raise ValueError(f"a {preview.entity!r} preview is not a member import")
    missing = MissingRows(missing)
    if not preview.ready:
        raise ValidationError({"file": NOT_READY})
    with _importing(actor, "member.import") as (tx, scope), no_lockout(tx):
        records = [(plan.row, plan.raw) for plan in preview.rows]
        planned = _plan(tx, records, scope=scope, lock=True, progress=_stage(progress, 0))
        errors = {f"{e.row}:{e.column}": e.message for plan in planned.rows for e in plan.errors}
        if errors:
            raise ValidationError(errors)
        result = write_members(tx, planned.rows, missing=missing, progress=_stage(progress, 1))
        tx.audit(
            "member.import",
            target_type=members.TABLE,
            details={
                **preview.audit_details(),
                "missing_rows": str(missing),
                "created": result.created,
                "updated": result.updated,
                "retired": result.retired,
            },
        )
        return result


@contextmanager
def _importing(actor: Actor, action: str) -> Iterator[tuple[Tx, EditScope]]:
    """CSV一括登録 編集 and 団員名簿 編集 (for the brigade, or narrowed to the own 所属)."""
    with guarded(actor, Function.CSV_IMPORT, Level.EDIT, action) as tx:
        scope = members.current_scope(tx)
        if not scope.allows_editing:
            raise Refused(Function.ROSTER, Level.EDIT)
        yield tx, scope


def _stage(progress: Progress | None, stage: int, stages: int = 2) -> Progress | None:
    """One stage's progress reported as its share of the whole."""
    if progress is None:
        return None
    return lambda done, total: progress(stage * total + done, stages * total)


# ---------------------------------------------------------------------------
# Transaction-level functions (no permission check: the caller has checked)


@dataclass(frozen=True)
class MemberRowPlan(RowPlan):
    """A RowPlan with what writing it needs; valid only in the transaction that planned it."""

    prepared: _Prepared | None = field(default=None, compare=False, repr=False)


def plan_members(tx: Tx, records: Sequence[tuple[int, dict[str, str]]]) -> list[RowPlan]:
    """Each record (row number, {column key: text}) as new, changed, unchanged or invalid,
    against the tenant's roster; the rows are locked until the transaction ends."""
    return list(_plan(tx, records, scope=None, lock=True).rows)


def write_members(
    tx: Tx,
    plans: Sequence[RowPlan],
    *,
    missing: MissingRows,
    progress: Progress | None = None,
) -> ImportResult:
    """Write what plan_members planned in this transaction, in bulk. Members absent from the
    plans are retired when `missing` says so (their sessions end). No audit record: the caller
    writes one for the whole import."""
    prepared = [_prepared_for(tx, plan) for plan in plans]
    context = prepared[0].context if prepared else _Context.load(tx, scope=None, lock=True)
    new = [p for p in prepared if p.current is None]
    changed = [p for p in prepared if p.current is not None and p.changed]
    absent = _absent(context, {p.code for p in prepared})[0]
    retire = absent if MissingRows(missing) == MissingRows.RETIRE else []
    ticker = ProgressCounter(progress, len(prepared) + len(retire))
    ticker.advance(len(prepared) - len(new) - len(changed))
    now = utcnow()
    _insert(tx, new, now, ticker)
    _update(tx, changed, now, ticker)
    _retire(tx, [m.id for m in retire], now, ticker)
    leaving = [p.current.id for p in changed if p.loses_access]
    members.revoke_sessions(tx, leaving + [m.id for m in retire], "member.import")
    ticker.finish()
    return ImportResult(
        created=len(new),
        updated=len(changed),
        unchanged=len(prepared) - len(new) - len(changed),
        retired=len(retire),
    )


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
    Member.notes,
    Member.version,
    Member.name_enc,
    Member.kana_enc,
    Member.phone_enc,
    Member.email_enc,
    Member.address_enc,
)


@dataclass
class _Context:
    """What planning needs of the tenant, loaded once per transaction (members as plain rows,
    decrypted only when the file names them)."""

    tx: Tx
    scope: EditScope | None  # None: no permission checks (the caller has made them)
    checks_rows: bool  # whether rows need the editor's checks
    ranks: dict[str, uuid.UUID]  # by plain name, highest rank first
    roles: dict[str, uuid.UUID]
    org: members.Org
    existing: dict[str, Row[Any]]  # by 団員番号
    grants: dict[frozenset[uuid.UUID], Grant] = field(default_factory=dict)

    @classmethod
    def load(cls, tx: Tx, *, scope: EditScope | None, lock: bool) -> _Context:
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
            "notes": row.notes,
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

    def permissions_grant(self, subjects: Sequence[uuid.UUID]) -> Grant:
        key = frozenset(subjects)
        if key not in self.grants:
            grants = combined_grants(self.tx.session, self.tx.tenant_id, key)
            self.grants[key] = grants.get(str(Function.PERMISSIONS), Grant())
        return self.grants[key]


def _may_do_everything(actor: Actor, scope: EditScope) -> bool:
    """An editor of the whole brigade who may also grant permissions and suspend."""
    return scope.whole_brigade and allows(
        actor,
        Need(Function.PERMISSIONS, Level.ADMIN),
        Need(Function.MEMBER_ACCOUNTS, Level.EDIT),
    )


@dataclass(frozen=True)
class _Prepared:
    context: _Context
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
class _Planned:
    rows: list[MemberRowPlan]
    absent: list[Row[Any]]  # not in the file, not retired, and within the actor's scope
    outside: int  # not in the file and outside the actor's scope


def _plan(
    tx: Tx,
    records: Sequence[tuple[int, dict[str, str]]],
    *,
    scope: EditScope | None,
    lock: bool = False,
    progress: Progress | None = None,
) -> _Planned:
    context = _Context.load(tx, scope=scope, lock=lock)
    first_row: dict[str, int] = {}
    ticker = ProgressCounter(progress, len(records))
    rows = []
    for row, raw in records:
        rows.append(_plan_row(context, row, raw, first_row))
        ticker.advance(1, every=CHUNK)
    ticker.finish()
    absent, outside = _absent(context, {plan.code for plan in rows})
    return _Planned(rows, absent, outside)


def _plan_row(
    context: _Context, row: int, raw: dict[str, str], first_row: dict[str, int]
) -> MemberRowPlan:
    errors = _length_errors(raw)
    code = plain(raw.get("member_code", ""))
    current = context.existing.get(code)
    before = context.fields(current) if current is not None else None
    values = _values(context, raw, before, errors)
    if code and first_row.setdefault(code, row) != row:
        errors.setdefault(
            "member_code", f"団員番号「{code}」は{first_row[code]}行目と重複しています。"
        )
    changes = _changes(context, before, values) if before is not None else ()
    if not errors and context.checks_rows and (before is None or changes):
        _check_permissions(context, values, before, errors)
    return MemberRowPlan(
        row=row,
        code=code,
        status=_status(before, changes, errors),
        raw=dict(raw),
        changes=changes,
        errors=tuple(_cell_errors(row, errors)),
        prepared=None
        if errors
        else _Prepared(context, code, values, current, before, bool(changes)),
    )


def _length_errors(raw: dict[str, str]) -> dict[str, str]:
    return {
        key: f"{MAX_LENGTHS[key]}文字以内にしてください。"
        for key, text in raw.items()
        if len(text) > MAX_LENGTHS.get(key, len(text))
    }


def _values(
    context: _Context, raw: dict[str, str], before: Fields | None, errors: dict[str, str]
) -> Fields:
    """The member's fields from the row's cells, normalised and checked as services.members
    does; a column the file lacks keeps the current value (a new member's is blank), and a
    blank 状態 keeps the current status (new: 在籍)."""
    fields: Fields = dict(before) if before is not None else {"status": MemberStatus.ACTIVE}
    fields.update({name: raw[name] for name in TEXT_FIELDS if name in raw})
    for key, read in _READERS.items():
        if key in raw and key not in errors:
            try:
                fields.update(read(context, raw[key]))
            except CellValueError as exc:
                errors[key] = str(exc)
    if "rank_id" not in fields and "rank" not in errors:
        errors["rank"] = "階級を入力してください。"
    values = members.normalise_member(fields) | {"status": fields["status"]}
    for name, message in members.member_errors(values).items():
        errors.setdefault(FIELD_COLUMNS[name], message)
    return values


def _read_rank(context: _Context, text: str) -> dict[str, Any]:
    name = plain(text)
    if not name:
        raise CellValueError("階級を入力してください。")
    if name not in context.ranks:
        raise CellValueError(f"階級「{name}」はありません（{'、'.join(context.ranks)}）。")
    return {"rank_id": context.ranks[name]}


def _read_roles(context: _Context, text: str) -> dict[str, Any]:
    names, unknown = member_csv.split_roles(text, context.roles)
    if unknown:
        raise CellValueError(f"役職「{'、'.join(unknown)}」はありません。")
    return {"role_ids": [context.roles[name] for name in names]}


def _read_status(_: _Context, text: str) -> dict[str, Any]:
    status = member_csv.status_of(text)
    return {"status": status} if status is not None else {}


def _read_joined_on(_: _Context, text: str) -> dict[str, Any]:
    return {"joined_on": to_date(text)}


_READERS = {
    "rank": _read_rank,
    "roles": _read_roles,
    "status": _read_status,
    "joined_on": _read_joined_on,
}


def _changes(context: _Context, before: Fields, after: Fields) -> tuple[FieldChange, ...]:
    """The columns whose text changes, compared as the export writes them."""
    if all(_same(name, before[name], after[name]) for name in COMPARED):
        return ()
    old, new = context.cells(before), context.cells(after)
    return tuple(
        FieldChange(HEADERS[key], old[key], new[key]) for key in HEADERS if old[key] != new[key]
    )


COMPARED = (*TEXT_FIELDS, "rank_id", "role_ids", "status", "joined_on")


def _same(name: str, before: Any, after: Any) -> bool:
    return set(before) == set(after) if name == "role_ids" else before == after


def _status(
    before: Fields | None, changes: tuple[FieldChange, ...], errors: dict[str, str]
) -> RowStatus:
    if errors:
        return RowStatus.INVALID
    if before is None:
        return RowStatus.NEW
    return RowStatus.CHANGED if changes else RowStatus.UNCHANGED


def _cell_errors(row: int, errors: dict[str, str]) -> list[CellError]:
    ordered = sorted(errors.items(), key=lambda item: COLUMN_ORDER[item[0]])
    return [CellError(row, HEADERS[key], message) for key, message in ordered]


def _check_permissions(
    context: _Context, values: Fields, before: Fields | None, errors: dict[str, str]
) -> None:
    """What services.members checks on create and update, for a row about to be written:
    the editor's own 所属, granting the right to edit permissions, suspending. Only for rows
    that write something: an unchanged row outside the own 所属 is no error."""
    scope, actor = context.scope, context.tx.actor
    assert scope is not None
    affiliations = [values["affiliation"], *([before["affiliation"]] if before else [])]
    if not all(scope.covers(a) for a in affiliations):
        errors["affiliation"] = f"自分の所属（{scope.unit}）以外の団員は登録・変更できません。"
        return
    subjects = [values["rank_id"], *values["role_ids"]]
    old = [before["rank_id"], *before["role_ids"]] if before is not None else []
    if set(old) != set(subjects):
        previous = context.permissions_grant(old) if old else Grant()
        try:
            check_grants_permission_editing(
                context.tx, previous, context.permissions_grant(subjects)
            )
        except Refused as refused:
            rank_changed = before is None or before["rank_id"] != values["rank_id"]
            errors["rank" if rank_changed else "roles"] = refused.message or ""
    was = before["status"] if before is not None else values["status"]
    suspending = MemberStatus.SUSPENDED in (was, values["status"]) and was != values["status"]
    if suspending and not allows(actor, Need(Function.MEMBER_ACCOUNTS, Level.EDIT)):
        errors["status"] = ACCOUNTS_REQUIRED


def _absent(context: _Context, codes: set[str]) -> tuple[list[Row[Any]], int]:
    """Members the file does not mention and that are not retired: (those within the actor's
    scope, how many outside it)."""
    absent = [
        row
        for code, row in sorted(context.existing.items())
        if code not in codes and row.status != MemberStatus.RETIRED
    ]
    scope = context.scope
    inside = [row for row in absent if scope is None or scope.covers(row.affiliation)]
    return inside, len(absent) - len(inside)


def _without_prepared(plan: MemberRowPlan) -> RowPlan:
    """What a preview keeps: the page holds it between requests, the database rows stay."""
    return RowPlan(plan.row, plan.code, plan.status, plan.raw, plan.changes, plan.errors)


# ---------------------------------------------------------------------------
# Writing


def _prepared_for(tx: Tx, plan: RowPlan) -> _Prepared:
    prepared = getattr(plan, "prepared", None)
    if plan.status == RowStatus.INVALID or prepared is None:
        raise ValueError(f"row {plan.row} is not a valid plan; nothing is written")
    if prepared.context.tx is not tx:
        raise ValueError("plans must come from plan_members in the same transaction")
    return prepared


def _insert(tx: Tx, new: list[_Prepared], now: Any, ticker: ProgressCounter) -> None:
    for start in range(0, len(new), CHUNK):
        rows, links = [], []
        for p in new[start : start + CHUNK]:
            member_id = new_id()
            rows.append(
                {
                    "id": member_id,
                    "tenant_id": tx.tenant_id,
                    "member_code": p.code,
                    "version": 1,
                    "created_at": now,
                    **_columns(tx, member_id, p, now),
                }
            )
            links += _links(tx, member_id, p.values["role_ids"])
        _execute(tx, insert(MEMBERS), rows)
        _execute(tx, insert(MEMBER_ROLES), links)
        ticker.advance(len(rows))


def _update(tx: Tx, changed: list[_Prepared], now: Any, ticker: ProgressCounter) -> None:
    for start in range(0, len(changed), CHUNK):
        chunk = changed[start : start + CHUNK]
        rows = [
            {
                "member_id": p.current.id,
                "version": p.current.version + 1,
                **_columns(tx, p.current.id, p, now),
            }
            for p in chunk
            if p.current is not None
        ]
        _execute(tx, update(MEMBERS).where(MEMBERS.c.id == bindparam("member_id")), rows)
        relinked = [p for p in chunk if set(p.before_roles) != set(p.values["role_ids"])]
        if relinked:
            ids = [p.current.id for p in relinked if p.current is not None]
            tx.session.exec(
                delete(MemberRole)
                .where(MemberRole.tenant_id == tx.tenant_id, MemberRole.member_id.in_(ids))
                .execution_options(synchronize_session=False)
            )
            links = [
                link
                for p in relinked
                if p.current is not None
                for link in _links(tx, p.current.id, p.values["role_ids"])
            ]
            _execute(tx, insert(MEMBER_ROLES), links)
        ticker.advance(len(chunk))


def _retire(tx: Tx, member_ids: list[uuid.UUID], now: Any, ticker: ProgressCounter) -> None:
    for start in range(0, len(member_ids), CHUNK):
        chunk = member_ids[start : start + CHUNK]
        tx.session.exec(
            update(Member)
            .where(Member.tenant_id == tx.tenant_id, Member.id.in_(chunk))
            .values(status=MemberStatus.RETIRED, version=Member.version + 1, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        ticker.advance(len(chunk))


def _execute(tx: Tx, statement: Any, rows: list[dict[str, Any]]) -> None:
    """Core executemany on the unit of work's connection (the ORM adds nothing here)."""
    if rows:
        tx.session.connection().execute(statement, rows)


def _columns(tx: Tx, member_id: uuid.UUID, p: _Prepared, now: Any) -> dict[str, Any]:
    values = p.values
    return {
        "rank_id": values["rank_id"],
        "affiliation": values["affiliation"],
        "status": str(values["status"]),
        "joined_on": values["joined_on"],
        "notes": values["notes"],
        "updated_at": now,
        **members.personal_columns(tx, member_id, values),
    }


def _links(tx: Tx, member_id: uuid.UUID, role_ids: list[uuid.UUID]) -> list[dict[str, Any]]:
    return [
        {"tenant_id": tx.tenant_id, "member_id": member_id, "role_id": role_id}
        for role_id in role_ids
    ]
