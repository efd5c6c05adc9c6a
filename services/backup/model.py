"""What a backup holds and what inspecting and restoring it report: the entities, their
labels, the permissions a backup needs, the messages, and the result types."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, TypeVar

from core.timefmt import to_jst
from formats import backup as fmt
from models.enums import Function, Level
from services.imports import (
    ImportPreview,
    ImportResult,
    RowStatus,
    sha256,
)

F, L = Function, Level


F, L = Function, Level
T = TypeVar("T")
ROLES, PERMISSIONS, MEMBERS, WATER, INSPECTIONS = (
    "roles",
    "permissions",
    "members",
    "water_sources",
    "inspections",
)
ENTITIES: dict[str, str] = {
    ROLES: fmt.ROLES,
    PERMISSIONS: fmt.PERMISSIONS,
    MEMBERS: fmt.MEMBERS,
    WATER: fmt.WATER_SOURCES,
    INSPECTIONS: fmt.INSPECTIONS,
}
ENTITY_LABELS = {
    ROLES: "役職",
    PERMISSIONS: "権限の設定",
    MEMBERS: "団員名簿",
    WATER: "消防水利",
    INSPECTIONS: "水利点検の記録",
}
BACKUP_NEEDS = (
    (F.CSV_EXPORT, L.VIEW),
    (F.ROSTER, L.VIEW),
    (F.WATER_SOURCES, L.VIEW),
    (F.INSPECTIONS, L.VIEW),
    (F.PERMISSIONS, L.VIEW),
)
OTHER_BRIGADE = (
    "このバックアップは別の消防団（{brigade}）のものです。この消防団へ復元するには、"
    "別の消防団のバックアップであることを確認して明示的に選択してください。"
)
OTHER_BRIGADE_ADMIN = "別の消防団のバックアップを復元するには、役職・権限の管理権限が必要です。"
CHANGES_PERMISSIONS = (
    "この復元は役職または権限の設定を変更するため、役職・権限の管理権限が必要です。"
)
NOT_READY = "バックアップに誤りがあるため復元できません。プレビューのエラーを確認してください。"
LOCKOUT_PREDICTED = (
    "この復元を行うと、役職・権限を管理できる在籍中の団員がいなくなります。"
    "バックアップの内容を確認してください。"
)
FILENAME_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


# -- results -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class BackupFile:
    filename: str  # hikeshi-backup-<brigade>-<YYYYmmdd-HHMM JST>.zip, ASCII only
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
            and list(self.plans) == list(ENTITIES)
            and all(
                not p.file_errors and not p.counts[RowStatus.INVALID] for p in self.plans.values()
            )
        )


@dataclass(frozen=True)
class RestoreResult:
    """What the restore did. For roles, water sources and inspections `retired` counts rows
    deleted; members are only ever retired."""

    sha256: str
    other_brigade: bool
    roles: ImportResult
    permissions: ImportResult  # per rank or role row of the matrix
    members: ImportResult
    water_sources: ImportResult
    inspections: ImportResult

    def counts(self) -> dict[str, dict[str, int]]:
        return {
            name: getattr(self, name).__dict__.copy()
            for name in (ROLES, PERMISSIONS, MEMBERS, WATER, INSPECTIONS)
        }


def preview_of(entity: str, backup: fmt.Backup, **values: Any) -> ImportPreview:
    name = ENTITIES[entity]
    return ImportPreview(entity, name, sha256(backup.files[name]), "utf-8-sig", **values)


# roles ------------------------------------------------------------------------------------------
