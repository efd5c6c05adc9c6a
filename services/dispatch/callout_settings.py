"""A brigade's call-out rules (出動連絡の設定) and the installation's LINE message quota, for
the administrators who keep an eye on what a call-out will cost."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from sqlmodel import select

from core.actor import Actor
from integrations.line_messaging import MessagingChannel, MessagingClient, MessagingError, Quota
from models import Rank
from services.base import require, scoped, transaction
from services.dispatch import callout, outbox
from services.errors import ValidationError

NO_UNITS = {"all": "全団員を呼び出す", "leaders": "幹部だけを呼び出す"}


@dataclass(frozen=True)
class CalloutRules:
    auto_callout: bool
    reminder_minutes: int
    crew_minimum: int
    leader_rank_position: int
    no_units_target: str
    ranks: tuple[tuple[int, str], ...]  # (position, name), highest first
    version: int


def get_rules(actor: Actor) -> CalloutRules:
    with transaction(actor, callout.VIEW, action="callout_settings.get", read_only=True) as tx:
        row = callout.settings_in(tx)
        ranks = tx.session.exec(scoped(select(Rank), tx.actor).order_by(Rank.position)).all()
        return CalloutRules(
            auto_callout=row.auto_callout,
            reminder_minutes=row.reminder_minutes,
            crew_minimum=row.crew_minimum,
            leader_rank_position=row.leader_rank_position,
            no_units_target=row.no_units_target,
            ranks=tuple((r.position, r.name) for r in ranks),
            version=row.version,
        )


def update_rules(
    actor: Actor,
    *,
    auto_callout: bool,
    reminder_minutes: int,
    crew_minimum: int,
    leader_rank_position: int,
    no_units_target: str,
    expected_version: int,
) -> CalloutRules:
    """Version 0 means no rules saved yet (the defaults)."""
    with transaction(actor, callout.ADMIN, action="callout_settings.update") as tx:
        row = callout.settings_to_change(tx, expected_version)
        errors = {}
        if not 1 <= reminder_minutes <= 60:
            errors["再通知までの時間"] = "再通知までの時間は1〜60分で入力してください。"
        if not 1 <= crew_minimum <= 20:
            errors["必要人数"] = "必要人数は1〜20名で入力してください。"
        positions = set(tx.session.exec(scoped(select(Rank.position), tx.actor)).all())
        if leader_rank_position not in positions:
            errors["幹部とする階級"] = "階級を選んでください。"
        if no_units_target not in NO_UNITS:
            errors["分団の記載がないとき"] = "選択肢から選んでください。"
        if errors:
            raise ValidationError(errors)
        changes = {}
        for name, value in (
            ("auto_callout", auto_callout),
            ("reminder_minutes", reminder_minutes),
            ("crew_minimum", crew_minimum),
            ("leader_rank_position", leader_rank_position),
            ("no_units_target", no_units_target),
        ):
            if getattr(row, name) != value:
                changes[name] = [getattr(row, name), value]
            setattr(row, name, value)
        callout.settings_changed(row)
        tx.audit("callout_settings.update", target_type="callout_settings", details=changes)
        tx.commit()
    return get_rules(actor)


# The page that shows the quota runs again on every click: LINE is asked at most once a
# minute per channel (as the sender's QuotaGuard does), not on every run.
_quotas: dict[MessagingChannel, tuple[float, Quota]] = {}
_quotas_lock = threading.Lock()


def quota(actor: Actor) -> Quota | None:
    """This month's LINE messages used and allowed (the installation's channel); None without
    a channel. A call to LINE is logged in the brigade's 外部サービス log; an answer read less
    than a minute ago is shown again without one."""
    require(actor, callout.ADMIN, action="line.quota")
    if not callout.messaging_enabled():
        return None
    channel = outbox.channel()
    with _quotas_lock:
        at, known = _quotas.get(channel, (0.0, None))
    if known is not None and time.monotonic() - at < outbox.QUOTA_MAX_AGE_SECONDS:
        return known
    try:
        with MessagingClient(channel, outbox.recorder(actor)) as client:
            answer = client.quota()
    except MessagingError as exc:
        raise ValidationError({"LINE": "LINEから送信数を取得できませんでした。"}) from exc
    with _quotas_lock:
        _quotas[channel] = (time.monotonic(), answer)
    return answer
