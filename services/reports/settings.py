"""A brigade's report settings row (models.report.ReportSettings): the approval chain and the
reward table live in it, each edited by 出動報告 管理 with the row's version as the guard."""

from __future__ import annotations

from core.access import Need
from models import ReportSettings
from models.base import utcnow
from models.enums import Function, Level
from services.base import Tx
from services.errors import Conflict

OWN = Need(Function.REPORTS, Level.VIEW)  # one's own reports
OTHERS = Need(Function.REPORTS, Level.EDIT)  # others' reports: entered for them, all listed
ADMIN = Need(Function.REPORTS, Level.ADMIN)  # the reward table, the chain, the export
APPROVE = Need(Function.APPROVALS, Level.EDIT)


def settings_in(tx: Tx) -> ReportSettings:
    """The brigade's row, or the defaults (version 0) when none was saved."""
    row = tx.session.get(ReportSettings, tx.tenant_id)
    return row or ReportSettings(tenant_id=tx.tenant_id, version=0)


def settings_to_change(tx: Tx, expected_version: int) -> ReportSettings:
    """The row for a change: Conflict unless it is still at `expected_version` (0: none saved
    yet, and then it is created)."""
    row = tx.session.get(ReportSettings, tx.tenant_id, with_for_update=True)
    if (row.version if row else 0) != expected_version:
        raise Conflict()
    if row is None:
        row = ReportSettings(tenant_id=tx.tenant_id, version=0)
        tx.session.add(row)
        tx.session.flush()
    return row


def settings_changed(row: ReportSettings) -> None:
    row.version += 1
    row.updated_at = utcnow()
