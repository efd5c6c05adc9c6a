"""出動報告 (#22): what each member did, entered by the member (or by a leader for them) and then
sent up the brigade's approval chain (services/reports/approvals.py).

- When an incident ends (終了), each member whose latest answer was 出動可 or 遅れて出動 is asked
  for a report: a row waiting for its times, and a LINE message linking to the page.
- A member enters start, end, category and what was done, then submits; a returned report
  (差し戻し) is corrected and submitted again. Activities without an incident (訓練, 警戒, 広報 …,
  and a water inspection already recorded) are entered the same way.
- 出動報告 閲覧 covers one's own reports, 編集 everyone's (代理入力, the lists)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlmodel import select

from config import get_settings
from core import rewards
from core.access import allows
from core.actor import Actor
from core.timefmt import JST
from formats import line_callout
from models import ActivityReport, Member, ReportStep
from models.base import utcnow
from models.callout import CalloutKind
from models.dispatch import Incident, IncidentStatus
from models.enums import Answer, MemberStatus
from models.report import ReportStatus, StepAction
from services.base import Tx, scoped, transaction
from services.errors import Conflict, NotFound, Refused, ValidationError
from services.reports import approvals
from services.reports import rewards as reward_rules
from services.reports.settings import APPROVE, OTHERS, OWN

ACTIVITY_FIELD = "activity_report.activity"
MAX_ACTIVITY_CHARS = 500
INSPECTION_CATEGORY = "警防調査"
# What a report form offers when the brigade has no reward table yet (the categories).
DEFAULT_CATEGORIES = (
    *rewards.DISASTER_KINDS,
    rewards.DISASTER,
    "警戒",
    "訓練",
    "広報",
    INSPECTION_CATEGORY,
    "会議",
    "研修",
)
EDITABLE = (ReportStatus.REQUESTED, ReportStatus.RETURNED)
FUTURE_SLACK = timedelta(minutes=10)  # a phone clock a little ahead is not an error


@dataclass(frozen=True)
class StepView:
    step: int
    action: StepAction
    actor_label: str
    comment: str
    at: datetime


@dataclass(frozen=True)
class ReportView:
    id: uuid.UUID
    member_id: uuid.UUID
    member_code: str
    member_name: str
    affiliation: str
    incident_id: uuid.UUID | None
    incident_number: int | None
    incident_kind: str
    category: str
    activity: str
    started_at: datetime | None
    ended_at: datetime | None
    turned_back: bool
    false_alarm: bool
    status: ReportStatus
    step: int
    waiting_for: str  # 「分団長の承認待ち」 while submitted
    returned_reason: str
    entered_by: str
    version: int
    steps: tuple[StepView, ...] = ()

    @property
    def minutes(self) -> int | None:
        if self.started_at is None or self.ended_at is None:
            return None
        return int((self.ended_at - self.started_at).total_seconds()) // 60

    @property
    def editable(self) -> bool:
        return self.status in EDITABLE


@dataclass(frozen=True)
class ReportInput:
    category: str
    activity: str
    started_at: datetime | None
    ended_at: datetime | None
    turned_back: bool = False
    false_alarm: bool = False


def report_link(*, incident_id: uuid.UUID | None = None) -> str:
    base = f"{get_settings().public_base_url.rstrip('/')}/reports"
    return f"{base}?incident={incident_id}" if incident_id else base


# --- asked for when an incident ends ------------------------------------------------------------


def request_for_incident(tx: Tx, row: Incident, before: IncidentStatus) -> list[uuid.UUID]:
    """Ask every member who was coming (latest answer 出動可 / 遅れて出動) for a report, once.
    Called by services.dispatch.incidents.move when the incident reaches 終了; a test incident
    is never reported. Returns the members asked."""
    from services.dispatch import callout  # the call-out builds on incidents, which calls here

    if row.test:
        return []
    coming = [m for m, a in callout.latest_answers(tx, row.id).items() if Answer(a.answer).coming]
    asked = set(
        tx.session.exec(
            scoped(select(ActivityReport.member_id), tx.actor).where(
                ActivityReport.incident_id == row.id
            )
        ).all()
    )
    new = [m for m in coming if m not in asked]
    start = row.occurred_at or row.received_at or row.created_at
    for member_id in new:
        tx.session.add(
            ActivityReport(
                tenant_id=tx.tenant_id,
                member_id=member_id,
                incident_id=row.id,
                category=incident_category(row.kind),
                started_at=start,
                ended_at=row.closed_at,
                turned_back=before == IncidentStatus.CANCELLED,
                false_alarm=before == IncidentStatus.FALSE_ALARM,
                entered_by=tx.actor.label or tx.actor.display_name,
            )
        )
    if new:
        tx.audit(
            "reports.requested",
            target_type="incident",
            target_id=str(row.id),
            details={"number": row.number, "members": len(new)},
        )
        _ask(tx, row, new)
    return new


def _ask(tx: Tx, row: Incident, member_ids: list[uuid.UUID]) -> None:
    """One LINE wave to those asked whom LINE reaches (the page lists the others' requests)."""
    from services.dispatch import callout

    reachable = callout.reachable_ids(tx, member_ids)
    recipients = [m for m in member_ids if m in reachable]
    if recipients:
        message = line_callout.report_request_message(
            callout.content_of(tx, row), report_link(incident_id=row.id)
        )
        callout.queue_wave(tx, row, CalloutKind.REPORT_REQUEST, recipients, [message])


def incident_category(kind: str) -> str:
    """The category a turn-out is reported under first (the member may change it): a 火災 kind
    is 火災, a 捜索 or 救助 is 捜索, a storm or flood 風水害, an earthquake 震災, else 災害."""
    for needle, category in (
        ("火", "火災"),
        ("捜索", "捜索"),
        ("救助", "捜索"),
        ("水", "風水害"),
        ("風", "風水害"),
        ("地震", "震災"),
    ):
        if needle in (kind or ""):
            return category
    return rewards.DISASTER


# --- reading ---------------------------------------------------------------------------------


def my_reports(actor: Actor) -> list[ReportView]:
    """The signed-in member's own reports, those still to do first."""
    with transaction(actor, OWN, action="reports.mine", read_only=True) as tx:
        if tx.actor.member_id is None:
            return []
        rows = _query(tx).where(ActivityReport.member_id == tx.actor.member_id)
        return _sorted(_views(tx, rows))


def list_reports(
    actor: Actor, *, month: date | None = None, status: ReportStatus | None = None
) -> list[ReportView]:
    """Every member's reports (出動報告 編集), of one JST month by start when `month` is given
    (reports without times yet are listed under no month)."""
    with transaction(actor, OTHERS, action="reports.list", read_only=True) as tx:
        rows = _query(tx)
        if month is not None:
            start, end = month_bounds(month)
            rows = rows.where(ActivityReport.started_at >= start, ActivityReport.started_at < end)
        if status is not None:
            rows = rows.where(ActivityReport.status == status)
        return _sorted(_views(tx, rows))


def get_report(actor: Actor, report_id: uuid.UUID) -> ReportView:
    """One report with its steps: one's own, or anyone's for 出動報告 編集 or for an approver who
    may take its current step."""
    with transaction(actor, OWN, action="reports.get", read_only=True) as tx:
        row = _readable(tx, report_id)
        (view,) = _views(tx, _query(tx).where(ActivityReport.id == row.id), steps=True)
        return view


def pending_approval(actor: Actor, *, overrides: bool = False) -> list[ReportView]:
    """The reports waiting for a step the actor may take (出動報告の承認), oldest first, with
    their trails (approvals.pending_in says which)."""
    with transaction(actor, APPROVE, action="reports.pending", read_only=True) as tx:
        ids = approvals.pending_in(tx, overrides=overrides)
        views = {
            v.id: v for v in _views(tx, _query(tx).where(ActivityReport.id.in_(ids)), steps=True)
        }
        return [views[i] for i in ids]


def categories(actor: Actor) -> tuple[str, ...]:
    """What the form offers: the reward table's categories and sub-kinds, else the defaults."""
    with transaction(actor, OWN, action="reports.categories", read_only=True) as tx:
        return _categories(tx)


def month_bounds(month: date) -> tuple[datetime, datetime]:
    """The JST month holding `month`, as UTC-comparable aware datetimes."""
    first = datetime(month.year, month.month, 1, tzinfo=JST)
    following = datetime(month.year + month.month // 12, month.month % 12 + 1, 1, tzinfo=JST)
    return first, following


# --- entering and submitting ------------------------------------------------------------------


def save_report(
    actor: Actor,
    report_id: uuid.UUID | None,
    data: ReportInput,
    *,
    member_id: uuid.UUID | None = None,
    submit: bool = False,
    expected_version: int = 0,
) -> ReportView:
    """Create (report_id None: an activity without an incident, for `member_id` or oneself) or
    correct a report still with its member (未提出 / 差し戻し); `submit` sends it to the chain's
    first step. Another member's report needs 出動報告 編集."""
    with transaction(actor, OWN, action="reports.save") as tx:
        if report_id is None:
            row = new_row(tx, member_id)
        else:
            row = _writable(tx, report_id, expected_version)
        _fill(tx, row, data, submit=submit)
        before = row.status
        if submit:
            _submit(tx, row)
        tx.audit(
            "reports.submitted" if submit else "reports.saved",
            target_type="activity_report",
            target_id=str(row.id),
            details={
                "member_code": _member(tx, row.member_id).member_code,
                "category": row.category,
                "status": [before, row.status],
                "for_other": row.member_id != tx.actor.member_id,
            },
        )
        tx.commit()
        report = row.id
    return get_report(actor, report)


def decline_report(actor: Actor, report_id: uuid.UUID, *, expected_version: int) -> None:
    """A member asked for a report who did not take part after all: 報告なし (not paid)."""
    with transaction(actor, OWN, action="reports.decline") as tx:
        row = _writable(tx, report_id, expected_version)
        if row.status != ReportStatus.REQUESTED or row.incident_id is None:
            raise ValidationError(
                {"状態": "出動のあとに依頼された未提出の報告だけを「報告なし」にできます。"}
            )
        row.status = ReportStatus.DECLINED
        _touch(tx, row)
        approvals.add_step(tx, row, StepAction.DECLINE)
        tx.audit("reports.declined", target_type="activity_report", target_id=str(row.id))
        tx.commit()


# --- helpers shared with approvals and the export ------------------------------------------------


def _touch(tx: Tx, row: ActivityReport) -> None:
    approvals.touch(tx, row)
    row.entered_by = tx.actor.label or tx.actor.display_name


def _query(tx: Tx):
    return scoped(select(ActivityReport, Member), tx.actor).where(
        ActivityReport.member_id == Member.id
    )


def _views(tx: Tx, query, *, steps: bool = False) -> list[ReportView]:
    pairs = tx.session.exec(query).all()
    incident_ids = {r.incident_id for r, _ in pairs if r.incident_id}
    incidents = {
        i.id: i
        for i in tx.session.exec(
            scoped(select(Incident), tx.actor).where(Incident.id.in_(incident_ids))
        ).all()
    }
    chain = approvals.chain_in(tx)
    trail: dict[uuid.UUID, list[StepView]] = {}
    if steps and pairs:
        for s in tx.session.exec(
            scoped(select(ReportStep), tx.actor)
            .where(ReportStep.report_id.in_([r.id for r, _ in pairs]))
            .order_by(ReportStep.at)
        ).all():
            comment = (
                tx.cipher.decrypt(s.comment_enc, field=approvals.COMMENT_FIELD, row_id=s.id)
                if s.comment_enc
                else ""
            )
            trail.setdefault(s.report_id, []).append(
                StepView(s.step, StepAction(s.action), s.actor_label, comment, s.at)
            )
    return [_view(tx, r, m, incidents.get(r.incident_id), chain, trail) for r, m in pairs]


def _view(tx: Tx, r: ActivityReport, m: Member, incident, chain, trail) -> ReportView:
    status = ReportStatus(r.status)
    return ReportView(
        id=r.id,
        member_id=m.id,
        member_code=m.member_code,
        member_name=tx.cipher.member_name(m),
        affiliation=m.affiliation,
        incident_id=r.incident_id,
        incident_number=incident.number if incident else None,
        incident_kind=incident.kind if incident else "",
        category=r.category,
        activity=_open(tx, r.activity_enc, ACTIVITY_FIELD, r.id),
        started_at=r.started_at,
        ended_at=r.ended_at,
        turned_back=r.turned_back,
        false_alarm=r.false_alarm,
        status=status,
        step=r.step,
        waiting_for=approvals.waiting_label(chain, r.step)
        if status == ReportStatus.SUBMITTED
        else "",
        returned_reason=_open(tx, r.returned_enc, approvals.RETURNED_FIELD, r.id),
        entered_by=r.entered_by,
        version=r.version,
        steps=tuple(trail.get(r.id, ())),
    )


def _open(tx: Tx, stored: str, field: str, row_id: uuid.UUID) -> str:
    return tx.cipher.decrypt(stored, field=field, row_id=row_id) if stored else ""


_ORDER = {
    ReportStatus.RETURNED: 0,
    ReportStatus.REQUESTED: 1,
    ReportStatus.SUBMITTED: 2,
    ReportStatus.APPROVED: 3,
    ReportStatus.DECLINED: 4,
}


def _sorted(views: list[ReportView]) -> list[ReportView]:
    """To do first, then newest first."""
    newest = sorted(views, key=lambda v: v.started_at or datetime.max.replace(tzinfo=JST))
    return sorted(reversed(newest), key=lambda v: _ORDER[v.status])


def _member(tx: Tx, member_id: uuid.UUID) -> Member:
    member = tx.get(Member, member_id)
    if member is None:
        raise NotFound()
    return member


def _readable(tx: Tx, report_id: uuid.UUID) -> ActivityReport:
    row = tx.get(ActivityReport, report_id)
    if row is None:
        raise NotFound()
    if row.member_id == tx.actor.member_id or allows(tx.actor, OTHERS):
        return row
    if approvals.may_read(tx, row, _member(tx, row.member_id)):
        return row
    raise NotFound()  # another member's report: as if there were none


def _writable(tx: Tx, report_id: uuid.UUID, expected_version: int) -> ActivityReport:
    row = tx.get(ActivityReport, report_id)
    if row is None:
        raise NotFound()
    if row.member_id != tx.actor.member_id and not allows(tx.actor, OTHERS):
        raise Refused(OTHERS.function, OTHERS.level, "他の団員の報告は入力できません。")
    if row.version != expected_version:
        raise Conflict()
    if row.status not in EDITABLE:
        raise ValidationError(
            {"状態": f"「{ReportStatus(row.status).label}」の報告は変更できません。"}
        )
    return row


def new_row(tx: Tx, member_id: uuid.UUID | None) -> ActivityReport:
    member_id = member_id or tx.actor.member_id
    if member_id is None:
        raise ValidationError({"団員": "報告する団員を選んでください。"})
    if member_id != tx.actor.member_id and not allows(tx.actor, OTHERS):
        raise Refused(OTHERS.function, OTHERS.level, "他の団員の報告は入力できません。")
    member = _member(tx, member_id)
    if member.status != MemberStatus.ACTIVE:
        raise ValidationError({"団員": "在籍中の団員ではありません。"})
    row = ActivityReport(tenant_id=tx.tenant_id, member_id=member.id)
    tx.session.add(row)
    return row


def _fill(tx: Tx, row: ActivityReport, data: ReportInput, *, submit: bool) -> None:
    errors = input_errors(data, _categories(tx), needs_times=submit)
    if errors:
        raise ValidationError(errors)
    row.category = data.category
    row.started_at, row.ended_at = data.started_at, data.ended_at
    row.turned_back, row.false_alarm = data.turned_back, data.false_alarm
    row.activity_enc = (
        tx.cipher.encrypt(data.activity.strip(), field=ACTIVITY_FIELD, row_id=row.id)
        if data.activity.strip()
        else ""
    )
    _touch(tx, row)


def input_errors(
    data: ReportInput, offered: tuple[str, ...], *, needs_times: bool
) -> dict[str, str]:
    errors = {}
    if data.category not in offered:
        errors["区分"] = f"区分は次から選んでください: {'、'.join(offered)}"
    if len(data.activity) > MAX_ACTIVITY_CHARS:
        errors["活動内容"] = f"活動内容は{MAX_ACTIVITY_CHARS}文字以内で入力してください。"
    start, end = data.started_at, data.ended_at
    if needs_times and (start is None or end is None):
        errors["時刻"] = "提出するには開始と終了の日時を入力してください。"
    if start is not None and end is not None:
        if end <= start:
            errors["終了"] = "終了は開始より後の日時にしてください。"
        elif (end - start).total_seconds() // 60 > rewards.MAX_MINUTES:
            errors["終了"] = "1件の活動は7日以内で入力してください。"
    if end is not None and end > utcnow() + FUTURE_SLACK:
        errors["終了"] = "終了がまだ来ていない日時です。"
    return errors


def _submit(tx: Tx, row: ActivityReport) -> None:
    row.status = ReportStatus.SUBMITTED
    row.step = 0
    row.returned_enc = ""
    row.submitted_at = utcnow()
    approvals.add_step(tx, row, StepAction.SUBMIT)


def _categories(tx: Tx) -> tuple[str, ...]:
    """A reward table prices its categories and sub-kinds, and with a catch-all (三沢市 その他)
    any of the usual ones too."""
    table = reward_rules.table_in(tx)
    if table is None:
        return DEFAULT_CATEGORIES
    usual = DEFAULT_CATEGORIES if table.other_category else ()
    return tuple(dict.fromkeys([*table.categories, *usual]))


@dataclass(frozen=True)
class Reporter:
    id: uuid.UUID
    member_code: str
    name: str
    affiliation: str

    @property
    def label(self) -> str:
        return f"{self.member_code} {self.name}（{self.affiliation or '所属なし'}）"


def reporters(actor: Actor) -> list[Reporter]:
    """The active members a leader may enter a report for (出動報告 編集)."""
    with transaction(actor, OTHERS, action="reports.reporters", read_only=True) as tx:
        rows = tx.session.exec(
            scoped(select(Member), tx.actor)
            .where(Member.status == MemberStatus.ACTIVE)
            .order_by(Member.member_code)
        ).all()
        return [
            Reporter(m.id, m.member_code, tx.cipher.member_name(m), m.affiliation) for m in rows
        ]
