"""Enumerations shared by models, services and pages."""

from __future__ import annotations

from enum import IntEnum, StrEnum

RANK_NAMES: tuple[str, ...] = ("団長", "副団長", "分団長", "副分団長", "部長", "班長", "団員")


class Level(IntEnum):
    NONE = 0
    VIEW = 1
    EDIT = 2
    ADMIN = 3

    @property
    def label(self) -> str:
        return LEVEL_LABELS[self]


LEVEL_LABELS = {Level.NONE: "なし", Level.VIEW: "閲覧", Level.EDIT: "編集", Level.ADMIN: "管理"}


class Function(StrEnum):
    DASHBOARD = "dashboard"
    ROSTER = "roster"
    MEMBER_ACCOUNTS = "member_accounts"
    PERMISSIONS = "permissions"
    WATER_SOURCES = "water_sources"
    INSPECTIONS = "inspections"
    CSV_IMPORT = "csv_import"
    CSV_EXPORT = "csv_export"
    RESTORE = "restore"
    EVENT_LOGS = "event_logs"
    NOTICES = "notices"
    SETTINGS = "settings"
    DISPATCH = "dispatch"
    REPORTS = "reports"
    APPROVALS = "approvals"

    @property
    def label(self) -> str:
        return FUNCTION_LABELS[self]


FUNCTION_LABELS = {
    Function.DASHBOARD: "ダッシュボード",
    Function.ROSTER: "団員名簿",
    Function.MEMBER_ACCOUNTS: "アカウント管理",
    Function.PERMISSIONS: "役職・権限",
    Function.WATER_SOURCES: "消防水利",
    Function.INSPECTIONS: "水利点検",
    Function.CSV_IMPORT: "CSV一括登録",
    Function.CSV_EXPORT: "CSV出力・バックアップ",
    Function.RESTORE: "復元",
    Function.EVENT_LOGS: "イベントログ",
    Function.NOTICES: "お知らせ",
    Function.SETTINGS: "団設定",
    Function.DISPATCH: "災害出動",
    Function.REPORTS: "出動報告",
    Function.APPROVALS: "出動報告の承認",
}


class MemberStatus(StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"
    RETIRED = "retired"

    @property
    def label(self) -> str:
        return {"active": "在籍", "suspended": "停止中", "retired": "退団"}[self.value]


class TenantStatus(StrEnum):
    ACTIVE = "active"
    CANCELLED = "cancelled"
    DELETED = "deleted"  # cancelled, and its data deleted; the event log is kept
    PLATFORM = "platform"


class SubjectType(StrEnum):
    RANK = "rank"
    ROLE = "role"


class AuditCategory(StrEnum):
    OPERATION = "operation"
    MAIL = "mail"
    AUTH = "auth"
    EXTERNAL = "external"

    @property
    def label(self) -> str:
        return {
            "operation": "操作",
            "mail": "メール受信",
            "auth": "認証・認可",
            "external": "外部サービス",
        }[self.value]


WATER_SOURCE_KINDS: tuple[str, ...] = (
    "消火栓",
    "私設消火栓",
    "防火水槽",
    "プール",
    "河川・溝",
    "濠・池",
    "海・湖",
    "井戸",
    "下水道",
    "その他",
)
HYDRANT_KINDS = frozenset({"消火栓", "私設消火栓"})
WATER_SOURCE_STATUSES: tuple[str, ...] = ("使用可", "使用不可", "点検中")
OWNERSHIPS = {"public": "公設", "private": "私設", "designated": "指定水利"}


class Answer(StrEnum):
    """出動可否: what a member answered, by LINE button or through a leader (代理入力)."""

    AVAILABLE = "available"
    LATE = "late"
    UNAVAILABLE = "unavailable"

    @property
    def label(self) -> str:
        return ANSWER_LABELS[self]

    @property
    def coming(self) -> bool:
        return self != Answer.UNAVAILABLE


ANSWER_LABELS = {
    Answer.AVAILABLE: "出動可",
    Answer.LATE: "遅れて出動",
    Answer.UNAVAILABLE: "出動不可",
}
ETA_CHOICES = (5, 10, 15, 30)  # 到着見込み（分）, the quick reply's buttons
