"""Typed errors the services raise; pages turn them into Japanese messages."""

from __future__ import annotations


class ServiceError(Exception):
    message = "処理できませんでした。"

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.message)
        self.message = message or self.message


class NotFound(ServiceError):
    message = "対象が見つかりません。"


class PermissionDenied(ServiceError):
    message = "この操作を行う権限がありません。"


class Refused(PermissionDenied):
    """A rule on what the call touches refuses it (the own 所属, the ceiling): recorded as a
    denial of `function` at `level`, shown with its own message."""

    def __init__(self, function: object, level: object, message: str | None = None) -> None:
        super().__init__(message)
        self.function, self.level = function, level


class Conflict(ServiceError):
    message = "他の利用者が先に更新しました。画面を再読み込みしてからやり直してください。"


class NotConfigured(ServiceError):
    """The installation lacks a setting the call needs (the operator's to give, not the user's
    input)."""

    message = "この機能に必要な設定がされていません。運営者にお問い合わせください。"


class ValidationError(ServiceError):
    """Field-level messages: {field: message}. Row-numbered errors use keys like "3:電話番号"."""

    message = "入力内容に誤りがあります。"

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__(" / ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors
