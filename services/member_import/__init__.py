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

import dataclasses
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from sqlmodel import select

from core.access import Need, allows
from core.actor import Actor
from formats import member_csv
from models import Member
from models.base import utcnow
from models.enums import Function, Level, MemberStatus
from services import brigade_settings, bulk_guard, import_reuse, members, pre_change
from services.base import Tx, scoped
from services.errors import ValidationError
from services.imports import (
    ImportPreview,
    ImportResult,
    MissingRows,
    Progress,
    ProgressCounter,
    RowPlan,
    sha256,
    with_quotes,
)
from services.member_import.model import (
    ACCOUNTS_REQUIRED,
    CHUNK,
    ENCODINGS,
    ENTITY,
    FIELD_COLUMNS,
    NOT_READY,
    TEXT_FIELDS,
    MemberRowPlan,
    PlanContext,
    Planned,
)
from services.member_import.planning import absent_members, plan_rows, without_prepared
from services.member_import.writing import (
    insert_members,
    prepared_for,
    retire_members,
    update_members,
)
from services.members import EditScope
from services.permissions import Refused, guarded, no_lockout

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
            details={
                "count": len(rows),
                "encoding": encoding,
                "personal_fields": list(member_csv.PERSONAL_COLUMNS),
            },
        )
        tx.commit()
        return data


def preview_member_import(actor: Actor, *, data: bytes, filename: str) -> ImportPreview:
    """Read and validate an upload against the roster as it is; nothing is written."""
    with _importing(actor, "member.import_preview", read_only=True) as (tx, scope):
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
        context = PlanContext.load(tx, scope=scope, lock=False)
        records = [(row, raw) for row, raw, _ in parsed.records]
        planned = plan_rows(tx, records, scope=scope, context=context)
        shown = [without_prepared(plan) for plan in planned.rows]
        preview.rows = with_quotes(shown, parsed.unquoted, member_csv.HEADERS)
        preview.missing = [m.member_code for m in planned.absent]
        preview.current = planned.current
        preview.retiring_rows, preview.suspending_rows = status_changes(planned.rows)
        preview.limits = brigade_settings.bulk_limits_in(tx)
        if planned.kept_self:
            preview.notes.append(
                f"あなた自身（団員番号 {planned.kept_self}）はファイルにありませんが、"
                "この登録で退団にはなりません。"
            )
        if others := planned.outside - bool(planned.kept_self):
            preview.notes.append(
                f"ファイルにない団員のうち{others}名（所属外、または自分より権限の大きい団員）は"
                "変更されません。"
            )
        if preview.ready:
            preview.token = import_reuse.keep(tx.actor, ENTITY, records, context.stamp(), planned)
        return preview


def apply_member_import(
    actor: Actor,
    preview: ImportPreview,
    *,
    missing: MissingRows,
    confirm_name: str | None = None,
    progress: Progress | None = None,
) -> ImportResult:
    """Write a previewed file in one transaction: its rows are planned again against the
    roster as it is now, permissions included; any invalid row writes nothing. The preview's
    own plans are used instead when services.import_reuse finds that neither the rows nor
    anything planning read of the brigade has changed since (#19).

    Safe bulk changes (#17): retiring more members than services/bulk_guard.py allows needs
    `confirm_name`, the brigade's name; an import that retires or suspends anyone first takes
    an automatic backup (services/pre_change.py) in the same transaction, before writing; the
    acting member is never retired by it."""
    if preview.entity != ENTITY:
        raise ValueError(f"a {preview.entity!r} preview is not a member import")
    missing = MissingRows(missing)
    if not preview.ready:
        raise ValidationError({"file": NOT_READY})
    with _importing(actor, "member.import") as (tx, scope), no_lockout(tx):
        records = [(plan.row, plan.raw) for plan in preview.rows]
        context = PlanContext.load(tx, scope=scope, lock=True)
        planned = _kept_plans(tx, preview, records, context)
        reused = planned is not None
        if planned is None:
            planned = plan_rows(
                tx, records, scope=scope, progress=_stage(progress, 0), context=context
            )
        elif progress is not None:
            progress(len(records), 2 * len(records))
        errors = {f"{e.row}:{e.column}": e.message for plan in planned.rows for e in plan.errors}
        if errors:
            raise ValidationError(errors)
        retiring, suspending = status_changes(planned.rows)
        if missing == MissingRows.RETIRE:
            retiring += len(planned.absent)
        bulk_guard.check(
            retiring,
            planned.current,
            brigade=tx.brigade_name,
            confirm_name=confirm_name,
            what=f"退団 {retiring:,}名",
            limits=brigade_settings.bulk_limits_in(tx),
        )
        backup = None
        if retiring or suspending:
            changes = [f"退団 {retiring:,}名"] * bool(retiring)
            changes += [f"利用停止 {suspending:,}名"] * bool(suspending)
            backup = pre_change.take(tx, f"CSV一括登録（団員）: {'、'.join(changes)}")
        result = write_members(tx, planned.rows, missing=missing, progress=_stage(progress, 1))
        result = dataclasses.replace(
            result,
            backup_id=backup.id if backup else None,
            kept_self=planned.kept_self,
            reused_preview=reused,
        )
        tx.audit(
            "member.import",
            target_type=members.TABLE,
            details={
                **preview.audit_details(),
                "missing_rows": str(missing),
                "validated": "preview" if reused else "apply",
                "created": result.created,
                "updated": result.updated,
                "retired": result.retired,
                **({"pre_change_backup": str(result.backup_id)} if result.backup_id else {}),
            },
        )
        tx.commit()
        return result


def status_changes(rows: Sequence[RowPlan]) -> tuple[int, int]:
    """(retiring, suspending): rows of the file that set an existing member's 状態 to 退団, or
    to 停止中 (利用停止)."""
    retiring = suspending = 0
    for plan in rows:
        prepared = getattr(plan, "prepared", None)
        if prepared is None or prepared.before is None:
            continue
        was, now = prepared.before["status"], prepared.values["status"]
        if was != now and now == MemberStatus.RETIRED:
            retiring += 1
        elif was != now and now == MemberStatus.SUSPENDED:
            suspending += 1
    return retiring, suspending


def _kept_plans(
    tx: Tx, preview: ImportPreview, records: list[tuple[int, dict[str, str]]], context: PlanContext
) -> Planned | None:
    """The preview's plans, taken into this transaction, if they still hold (import_reuse)."""
    kept = import_reuse.take(preview.token, tx.actor, ENTITY)
    plans = kept.plans_if(records, context.stamp()) if kept is not None else None
    return context.bound_to(plans) if plans is not None else None


@contextmanager
def _importing(
    actor: Actor, action: str, *, read_only: bool = False
) -> Iterator[tuple[Tx, EditScope]]:
    """CSV一括登録 編集 and 団員名簿 編集 (for the brigade, or narrowed to the own 所属); a
    preview reads only (no write lock on SQLite while 5,000 rows are checked)."""
    with guarded(actor, Function.CSV_IMPORT, Level.EDIT, action, read_only=read_only) as tx:
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


def plan_members(
    tx: Tx, records: Sequence[tuple[int, dict[str, str]]], *, checked: bool = False
) -> Planned:
    """Each record (row number, {column key: text}) as new, changed, unchanged or invalid,
    against the tenant's roster; the rows are locked until the transaction ends. `checked`
    applies the actor's own editing scope and the per-row checks of an import (a restore
    does); otherwise only the ceiling applies (the caller has checked the rest)."""
    scope = members.current_scope(tx) if checked else None
    return plan_rows(tx, records, scope=scope, lock=True)


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
    prepared = [prepared_for(tx, plan) for plan in plans]
    context = prepared[0].context if prepared else PlanContext.load(tx, scope=None, lock=True)
    new = [p for p in prepared if p.current is None]
    changed = [p for p in prepared if p.current is not None and p.changed]
    absent = absent_members(context, {p.code for p in prepared})[0]
    # absent_members already leaves the actor out (nobody changes his own status): said again
    # here, since no import or restore may ever retire the person running it (#17).
    own = tx.actor.member_id
    retire = (
        [m for m in absent if m.id != own] if MissingRows(missing) == MissingRows.RETIRE else []
    )
    ticker = ProgressCounter(progress, len(prepared) + len(retire))
    ticker.advance(len(prepared) - len(new) - len(changed))
    now = utcnow()
    insert_members(tx, new, now, ticker)
    update_members(tx, changed, now, ticker)
    retire_members(tx, [m.id for m in retire], now, ticker)
    leaving = [p.current.id for p in changed if p.loses_access]
    members.revoke_sessions(tx, leaving + [m.id for m in retire], "member.import")
    ticker.finish()
    return ImportResult(
        created=len(new),
        updated=len(changed),
        unchanged=len(prepared) - len(new) - len(changed),
        retired=len(retire),
    )


# The largest member file an upload may be (the reader refuses larger ones).
MAX_FILE_BYTES = member_csv.MAX_FILE_BYTES

__all__ = [
    "ACCOUNTS_REQUIRED",
    "CHUNK",
    "ENCODINGS",
    "ENTITY",
    "FIELD_COLUMNS",
    "MAX_FILE_BYTES",
    "NOT_READY",
    "TEXT_FIELDS",
    "MemberRowPlan",
    "apply_member_import",
    "export_members_csv",
    "member_template",
    "plan_members",
    "preview_member_import",
    "write_members",
]
