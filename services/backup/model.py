"""What a backup holds and what inspecting and restoring it report: the entities, their
labels, the permissions a backup needs, the messages, and the result types."""

from __future__ import annotations

import re
from collections.abc import Hashable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from core.timefmt import to_jst
from formats import backup as fmt
from formats.tabular import CellError
from models.enums import Function, Level
from services.imports import (
    ImportPreview,
    ImportResult,
    RowPlan,
    RowStatus,
    sha256,
)

F, L = Function, Level
T = TypeVar("T")
ROLES, PERMISSIONS, MEMBERS, WATER, INSPECTIONS = (
    "roles",
    "permissions",
    "members",
    "water_sources",
    "inspections",
)
MAIL_SOURCES, INCIDENTS, ENTRIES = "mail_sources", "incidents", "incident_entries"
TARGETS, ANSWERS = "callout_targets", "callout_answers"
REPORTS, STEPS, REPORT_SETTINGS = "activity_reports", "report_steps", "report_settings"
ENTITIES: dict[str, str] = {
    ROLES: fmt.ROLES,
    PERMISSIONS: fmt.PERMISSIONS,
    MEMBERS: fmt.MEMBERS,
    WATER: fmt.WATER_SOURCES,
    INSPECTIONS: fmt.INSPECTIONS,
    MAIL_SOURCES: fmt.MAIL_SOURCES,
    INCIDENTS: fmt.INCIDENTS,
    ENTRIES: fmt.INCIDENT_ENTRIES,
    TARGETS: fmt.CALLOUT_TARGETS,
    ANSWERS: fmt.CALLOUT_ANSWERS,
    REPORTS: fmt.ACTIVITY_REPORTS,
    STEPS: fmt.REPORT_STEPS,
    REPORT_SETTINGS: fmt.REPORT_SETTINGS,
}
ENTITY_LABELS = {
    ROLES: "役職",
    PERMISSIONS: "権限の設定",
    MEMBERS: "団員名簿",
    WATER: "消防水利",
    INSPECTIONS: "水利点検の記録",
    MAIL_SOURCES: "出動メール設定",
    INCIDENTS: "災害出動の事案",
    ENTRIES: "事案の経過",
    TARGETS: "出動連絡の対象者",
    ANSWERS: "出動可否の回答",
    REPORTS: "出動報告",
    STEPS: "出動報告の承認の記録",
    REPORT_SETTINGS: "承認の段階と出動報酬の表",
}
# 閲覧 of everything the file holds; a mail source's settings are shown to 災害出動 管理 only,
# everyone's reports with the reward table to 出動報告 管理.
BACKUP_NEEDS = (
    (F.CSV_EXPORT, L.VIEW),
    (F.ROSTER, L.VIEW),
    (F.WATER_SOURCES, L.VIEW),
    (F.INSPECTIONS, L.VIEW),
    (F.PERMISSIONS, L.VIEW),
    (F.DISPATCH, L.ADMIN),
    (F.REPORTS, L.ADMIN),
)
OTHER_BRIGADE = (
    "このバックアップは別の消防団（{brigade}）のものです。この消防団へ復元するには、"
    "別の消防団のバックアップであることを確認して明示的に選択してください。"
)
OTHER_BRIGADE_ADMIN = "別の消防団のバックアップを復元するには、役職・権限の管理権限が必要です。"
CHANGES_PERMISSIONS = (
    "この復元は役職または権限の設定を変更するため、役職・権限の管理権限が必要です。"
)
CHANGES_MAIL_SOURCES = "この復元は出動メール設定を変更するため、災害出動の管理権限が必要です。"
CHANGES_REPORTS = (
    "この復元は出動報告または承認の段階・出動報酬の表を変更するため、出動報告の管理権限が必要です。"
)
NOT_READY = "バックアップに誤りがあるため復元できません。プレビューのエラーを確認してください。"
LOCKOUT_PREDICTED = (
    "この復元を行うと、役職・権限を管理できる在籍中の団員がいなくなります。"
    "バックアップの内容を確認してください。"
)
MAIL_LOG_KEPT = (
    "メール受信ログは復元しません（イベントログと同じく、受信の記録としてそのまま残ります）。"
    "削除される事案を参照している受信メールは、記録は残り、事案との関連付けだけが外れます。"
)
NO_DISPATCH = (
    "このバックアップ（形式の版 {version}）には災害出動のデータ（出動メール設定・事案）が"
    "含まれていません。現在の出動メール設定と事案は変更せず、そのまま残ります。"
)
NO_CALLOUTS = (
    "このバックアップ（形式の版 {version}）には出動連絡の対象者と出動可否の回答が含まれていません。"
    "そのまま残る事案（番号と登録日時が同じもの）の対象者と回答は変更せず、新たに復元する事案には"
    "対象者と回答がありません。"
)
NO_REPORTS = (
    "このバックアップ（形式の版 {version}）には出動報告と承認の段階・出動報酬の表が含まれていません。"
    "現在の出動報告と設定は変更せず、そのまま残ります。出動報告が参照している事案や水利点検が"
    "復元で置き換わる場合は、同じもの（事案は番号と登録日時、点検は水利番号・点検日・記録日時が"
    "同じもの）に関連付け直し、なくなるものとは関連付けだけを外します。"
)
REPORTS_RESTORED = (
    "出動報告とその承認の記録、承認の段階、出動報酬の表を復元します。"
    "復元した出動報告について、LINEで報告の依頼を送り直すことはありません。"
)
NO_LATER_GRANTS = (
    "このバックアップには権限「{functions}」の列がありません（この機能より前に作成）。"
    "階級にはそれぞれの既定の権限を設定し、役職には設定しません。"
)
WAVES_NOT_RESTORED = (
    "出動連絡の対象者と出動可否の回答を復元します。LINEで送った連絡と未送信の連絡は復元せず、"
    "改めて送ることもありません。そのまま残る事案（番号と登録日時が同じもの）を除き、"
    "復元した事案の回答状況には送信の記録が表示されません。"
)
CREDENTIALS_NOT_IN_BACKUP = (
    "受信アドレスとIMAPパスワードはバックアップに含まれていません。同じ名前の送信元は、"
    "現在の受信アドレスとパスワードのまま設定だけが戻ります。"
)
NEW_ADDRESS = (
    "「{name}」には新しい受信アドレスを発行します。復元後に出動メール設定で確認し、"
    "消防本部に伝えてください。"
)
PASSWORD_NEEDED = (
    "「{name}」はIMAPパスワードがないため、無効の状態で復元します。復元後に出動メール設定で"
    "パスワードを入力し、有効にしてください。"
)
# What a file name on Windows, macOS or a USB stick cannot hold (and whitespace, which mail
# clients and shells split on).
FILENAME_UNSAFE = re.compile(r'[\\/:*?"<>|\x00-\x1f\x7f\s]+')


# -- results -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class BackupFile:
    filename: str  # <brigade>_<YYYYmmdd-HHMM JST>.zip (hikeshi-backup-<id> without a name)
    data: bytes = field(repr=False)
    manifest: fmt.Manifest
    encrypted: bool

    @property
    def sha256(self) -> str:
        return sha256(self.data)


@dataclass
class RestorePreview:
    """A verified backup planned against the brigade's data, nothing written. The file (and its
    password) are kept so that the restore verifies and plans them again in its transaction."""

    sha256: str
    data: bytes = field(repr=False)
    password: str | None = field(default=None, repr=False)
    manifest: fmt.Manifest | None = None
    encrypted: bool = False
    password_required: bool = False  # the file is encrypted and no or a wrong password was given
    other_brigade: bool = False
    plans: dict[str, ImportPreview] = field(default_factory=dict)  # ENTITIES order
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what the restore leaves as it is

    @property
    def brigade(self) -> str:
        return self.manifest.brigade if self.manifest else ""

    @property
    def created_at_jst(self) -> str:
        return to_jst(self.manifest.created_at) if self.manifest else ""

    @property
    def ready(self) -> bool:
        return (
            self.manifest is not None
            and not self.errors
            and list(self.plans) == restored_entities(self.manifest)
            and all(
                not p.file_errors and not p.counts[RowStatus.INVALID] for p in self.plans.values()
            )
        )


@dataclass(frozen=True)
class RestoreResult:
    """What the restore did. For roles, water sources, inspections, incidents, their entries and
    call-outs `retired` counts rows deleted; members are only ever retired, mail sources made
    無効. The dispatch counts are None when the backup holds no dispatch data (format version 1),
    the call-out counts when it holds no call-outs (versions 1 and 2), the report counts when it
    holds no reports (versions 1 to 3)."""

    sha256: str
    other_brigade: bool
    roles: ImportResult
    permissions: ImportResult  # per rank or role row of the matrix
    members: ImportResult
    water_sources: ImportResult
    inspections: ImportResult
    mail_sources: ImportResult | None = None
    incidents: ImportResult | None = None
    incident_entries: ImportResult | None = None
    callout_targets: ImportResult | None = None
    callout_answers: ImportResult | None = None
    activity_reports: ImportResult | None = None
    report_steps: ImportResult | None = None
    report_settings: ImportResult | None = None

    def counts(self) -> dict[str, dict[str, int]]:
        return {
            name: getattr(self, name).__dict__.copy()
            for name in ENTITIES
            if getattr(self, name) is not None
        }


def restored_entities(manifest: fmt.Manifest) -> list[str]:
    """The entities a backup of this manifest's version holds, in ENTITIES order."""
    return [name for name, file in ENTITIES.items() if file in manifest.data_files]


def counted_row(
    existing: MutableMapping[Hashable, int],
    key: Hashable | None,
    number: int,
    code: str,
    raw: Mapping[str, str],
    errors: Sequence[CellError],
) -> RowPlan:
    """A row of a file of records kept as they are (inspections, timeline entries, answers,
    approval steps): unchanged while the brigade holds as many equal records as the file has
    seen so far, new beyond that. `existing` counts the brigade's records by key and is used up."""
    if errors or key is None:
        return RowPlan(number, code, RowStatus.INVALID, raw, errors=tuple(errors))
    if existing.get(key, 0) > 0:
        existing[key] -= 1
        return RowPlan(number, code, RowStatus.UNCHANGED, raw)
    return RowPlan(number, code, RowStatus.NEW, raw)


def preview_of(entity: str, backup: fmt.Backup, **values: Any) -> ImportPreview:
    name = ENTITIES[entity]
    return ImportPreview(entity, name, sha256(backup.files[name]), "utf-8-sig", **values)


def with_cell_errors(rows: list[RowPlan], errors: Sequence[CellError]) -> list[RowPlan]:
    """Rows with the errors found while reading their cells (an over-long cell, say)."""
    by_row: dict[int, list[CellError]] = {}
    for error in errors:
        by_row.setdefault(error.row, []).append(error)
    return [
        replace(row, status=RowStatus.INVALID, errors=(*row.errors, *by_row[row.row]))
        if row.row in by_row
        else row
        for row in rows
    ]
