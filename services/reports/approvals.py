"""The approval chain of 出動報告 (#22): a brigade's steps (e.g. 班長 → 分団長 → 団長), who may
take each, approving and returning for correction — each step audited.

Who takes a step: a holder of 出動報告の承認 whose rank is the step's rank or higher, and, for a
step within the 分団 (「分団内」), of the reporter's 分団 — unless the holder also has 出動報告
管理, who may take a step for any 分団 (an absent 分団長's reports do not wait for ever). Nobody
approves their own report, nor takes two steps of one report. When the chain is changed, a report waiting beyond its new end waits
for the last step."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from enum import StrEnum

from sqlmodel import select

from core.access import allows, unit_of
from core.actor import Actor
from models import ActivityReport, Member, Rank, ReportStep
from models.base import utcnow
from models.enums import Function, Level
from models.report import ReportStatus, StepAction
from services.base import Tx, scoped, transaction
from services.errors import Conflict, NotFound, Refused, ValidationError
from services.reports.settings import ADMIN, APPROVE, settings_changed, settings_in
from services.reports.settings import settings_to_change as _settings_to_change

COMMENT_FIELD = "report_step.comment"
RETURNED_FIELD = "activity_report.returned"
MAX_STEPS = 5
MAX_COMMENT_CHARS = 500
MAX_PENDING = 500
# Per unit of work (session.info): a chain saved in it is read afresh by the next one.
CHAIN_KEY, RANKS_KEY, TRAILS_KEY = "reports.chain", "reports.ranks", "reports.trails"


class StepScope(StrEnum):
    UNIT = "unit"
    BRIGADE = "brigade"

    @property
    def label(self) -> str:
        return {"unit": "分団内", "brigade": "団全体"}[self.value]


@dataclass(frozen=True)
class ChainStep:
    rank: str
    scope: StepScope = StepScope.BRIGADE

    @property
    def label(self) -> str:
        return f"{self.rank}（{self.scope.label}）"


DEFAULT_CHAIN = (ChainStep("分団長", StepScope.UNIT), ChainStep("団長", StepScope.BRIGADE))


@dataclass(frozen=True)
class Chain:
    steps: tuple[ChainStep, ...]
    version: int  # 0: the default, never saved
    ranks: tuple[tuple[int, str], ...]  # the brigade's ranks (position, name), highest first


def chain_in(tx: Tx) -> tuple[ChainStep, ...]:
    """The brigade's chain, read once per unit of work (a list of pending reports asks for
    every row)."""
    if (known := tx.session.info.get(CHAIN_KEY)) is not None:
        return known
    stored = json.loads(settings_in(tx).chain or "[]")
    steps = tuple(ChainStep(s["rank"], StepScope(s["scope"])) for s in stored) or DEFAULT_CHAIN
    tx.session.info[CHAIN_KEY] = steps
    return steps


def waiting_label(chain: tuple[ChainStep, ...], step: int) -> str:
    return f"{chain[min(step, len(chain) - 1)].rank}の承認待ち"


def get_chain(actor: Actor) -> Chain:
    with transaction(actor, ADMIN, action="reports.chain", read_only=True) as tx:
        return Chain(chain_in(tx), settings_in(tx).version, _ranks(tx))


def save_chain(actor: Actor, steps: list[ChainStep], *, expected_version: int) -> Chain:
    """Replace the chain (出動報告 管理): 1 to 5 steps, each at least as senior as the one
    before; Conflict when someone saved the settings first."""
    with transaction(actor, ADMIN, action="reports.chain.save") as tx:
        row = _settings_to_change(tx, expected_version)
        ranks = dict((name, position) for position, name in _ranks(tx))
        errors = chain_errors(steps, ranks)
        if errors:
            raise ValidationError(errors)
        before = [s.label for s in chain_in(tx)]
        row.chain = json.dumps(
            [{"rank": s.rank, "scope": str(s.scope)} for s in steps], ensure_ascii=False
        )
        settings_changed(row)
        tx.audit(
            "reports.chain.save",
            target_type="report_settings",
            details={"chain": [before, [s.label for s in steps]]},
        )
        tx.commit()
    return get_chain(actor)


def chain_errors(steps: list[ChainStep], ranks: dict[str, int]) -> dict[str, str]:
    if not 1 <= len(steps) <= MAX_STEPS:
        return {"承認の段階": f"承認の段階は1〜{MAX_STEPS}段で設定してください。"}
    errors = {}
    for number, step in enumerate(steps, start=1):
        if step.rank not in ranks:
            errors[f"{number}段目"] = f"階級「{step.rank}」がありません。"
        elif number > 1 and steps[number - 2].rank in ranks:
            if ranks[step.rank] > ranks[steps[number - 2].rank]:
                errors[f"{number}段目"] = "前の段と同じか、より上の階級にしてください。"
    return errors


def _ranks(tx: Tx) -> tuple[tuple[int, str], ...]:
    if (known := tx.session.info.get(RANKS_KEY)) is not None:
        return known
    rows = tx.session.exec(scoped(select(Rank), tx.actor).order_by(Rank.position)).all()
    ranks = tuple((r.position, r.name) for r in rows)
    tx.session.info[RANKS_KEY] = ranks
    return ranks


# --- who may take a step ------------------------------------------------------------------------


def _rank_position(tx: Tx, name: str) -> int | None:
    return next((p for p, n in _ranks(tx) if n == name), None)


def may_take(tx: Tx, row: ActivityReport, reporter: Member, *, override: bool = True) -> str | None:
    """None when the actor may take the report's current step, else why not (Japanese).
    `override`: a 出動報告 管理 holder may take a 分団内 step of another 分団."""
    chain = chain_in(tx)
    step = chain[min(row.step, len(chain) - 1)]
    actor = tx.actor
    if not allows(actor, APPROVE):
        return "出動報告の承認の権限がありません。"
    if actor.member_id is not None and actor.member_id == row.member_id:
        return "自分の報告は承認できません。"
    mine, needed = _rank_position(tx, actor.rank_name), _rank_position(tx, step.rank)
    if mine is None or needed is None or mine > needed:
        return f"この段階は「{step.rank}」以上の階級の方が承認します。"
    if (
        step.scope == StepScope.UNIT
        and unit_of(actor.unit) != unit_of(reporter.affiliation)
        and not (override and allows(actor, ADMIN))
    ):
        return f"この段階は{unit_of(reporter.affiliation) or '同じ分団'}の{step.rank}が承認します。"
    if _approved_before(tx, row):
        return "同じ人が2つの段階を承認することはできません。"
    return None


def _approved_before(tx: Tx, row: ActivityReport) -> bool:
    """Whether the actor approved an earlier step of this report since it was last submitted."""
    me = (tx.actor.member_id, tx.actor.label or tx.actor.display_name)
    for step in reversed(_trails(tx, [row.id]).get(row.id, [])):
        if step.action == StepAction.SUBMIT:
            return False
        mine = step.member_id == me[0] if me[0] is not None else step.actor_label == me[1]
        if step.action == StepAction.APPROVE and mine:
            return True
    return False


def _trails(tx: Tx, report_ids: list[uuid.UUID]) -> dict[uuid.UUID, list[ReportStep]]:
    """The steps of reports, oldest first, read in one query and kept for the unit of work (a
    list of pending reports asks for each)."""
    known: dict[uuid.UUID, list[ReportStep]] = tx.session.info.setdefault(TRAILS_KEY, {})
    if missing := [r for r in report_ids if r not in known]:
        for r in missing:
            known[r] = []
        for step in tx.session.exec(
            scoped(select(ReportStep), tx.actor)
            .where(ReportStep.report_id.in_(missing))
            .order_by(ReportStep.at)
        ).all():
            known[step.report_id].append(step)
    return known


def may_read(tx: Tx, row: ActivityReport, reporter: Member) -> bool:
    """An approver sees a report at the step they may take, and those they have acted on."""
    if row.status == ReportStatus.SUBMITTED and may_take(tx, row, reporter) is None:
        return True
    if tx.actor.member_id is None:
        return False
    acted = tx.session.exec(
        scoped(select(ReportStep.id), tx.actor).where(
            ReportStep.report_id == row.id, ReportStep.member_id == tx.actor.member_id
        )
    ).first()
    return acted is not None


def pending_in(tx: Tx, *, overrides: bool = False) -> list[uuid.UUID]:
    """The submitted reports whose current step the actor may take, oldest first: as the
    chain names them, or (`overrides`) only those a 出動報告 管理 holder may take for a 分団
    not their own."""
    rows = tx.session.exec(
        scoped(select(ActivityReport, Member), tx.actor)
        .where(
            ActivityReport.member_id == Member.id,
            ActivityReport.status == ReportStatus.SUBMITTED,
        )
        .order_by(ActivityReport.submitted_at)
    ).all()
    _trails(tx, [r.id for r, _ in rows])
    natural = {r.id for r, m in rows if may_take(tx, r, m, override=False) is None}
    if not overrides:
        found = [r.id for r, _ in rows if r.id in natural]
    else:
        found = [r.id for r, m in rows if r.id not in natural and may_take(tx, r, m) is None]
    return found[:MAX_PENDING]  # the actor's own first: others' reports do not crowd them out


# --- approving and returning ------------------------------------------------------------------


def approve(
    actor: Actor, report_id: uuid.UUID, *, expected_version: int, comment: str = ""
) -> bool:
    """Approve the current step; True when it was the last (the report is 承認済み)."""
    with transaction(actor, APPROVE, action="reports.approve") as tx:
        row, _ = _to_decide(tx, report_id, expected_version, comment)
        add_step(tx, row, StepAction.APPROVE, comment.strip())
        chain = chain_in(tx)
        taken = min(row.step, len(chain) - 1)
        row.step = taken + 1
        final = row.step >= len(chain)
        if final:
            row.status = ReportStatus.APPROVED
            row.approved_at = utcnow()
        touch(tx, row)
        tx.audit(
            "reports.approved",
            target_type="activity_report",
            target_id=str(row.id),
            details={"step": taken + 1, "of": len(chain), "final": final},
        )
        tx.commit()
        return final


def return_report(
    actor: Actor, report_id: uuid.UUID, *, expected_version: int, reason: str
) -> None:
    """Send the report back to its member for correction, with the reason (required)."""
    with transaction(actor, APPROVE, action="reports.return") as tx:
        if not reason.strip():
            raise ValidationError({"差し戻しの理由": "差し戻しの理由を入力してください。"})
        row, _ = _to_decide(tx, report_id, expected_version, reason)
        add_step(tx, row, StepAction.RETURN, reason.strip())
        row.status = ReportStatus.RETURNED
        row.returned_enc = tx.cipher.encrypt(reason.strip(), field=RETURNED_FIELD, row_id=row.id)
        touch(tx, row)
        tx.audit(
            "reports.returned",
            target_type="activity_report",
            target_id=str(row.id),
            details={"step": row.step + 1},
        )
        tx.commit()


def _to_decide(
    tx: Tx, report_id: uuid.UUID, expected_version: int, comment: str
) -> tuple[ActivityReport, Member]:
    row = tx.get(ActivityReport, report_id)
    reporter = tx.get(Member, row.member_id) if row is not None else None
    if row is None or reporter is None:
        raise NotFound()
    if row.version != expected_version:
        raise Conflict()
    if len(comment) > MAX_COMMENT_CHARS:
        raise ValidationError({"コメント": f"{MAX_COMMENT_CHARS}文字以内で入力してください。"})
    if row.status != ReportStatus.SUBMITTED:
        raise ValidationError({"状態": "承認待ちの報告ではありません。"})
    if (why := may_take(tx, row, reporter)) is not None:
        raise Refused(Function.APPROVALS, Level.EDIT, why)
    return row, reporter


def add_step(tx: Tx, row: ActivityReport, action: StepAction, comment: str = "") -> None:
    step = ReportStep(
        tenant_id=tx.tenant_id,
        report_id=row.id,
        step=row.step,
        action=action,
        member_id=tx.actor.member_id,
        actor_label=tx.actor.label or tx.actor.display_name,
    )
    if comment:
        step.comment_enc = tx.cipher.encrypt(comment, field=COMMENT_FIELD, row_id=step.id)
    tx.session.add(step)


def touch(tx: Tx, row: ActivityReport) -> None:
    row.version += 1
    row.updated_at = utcnow()
