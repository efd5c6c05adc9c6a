"""argon2id password hashes; unknown users cost the same work as wrong passwords."""

from __future__ import annotations

from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from config import get_settings

MIN_LENGTH = 12


@cache
def _hasher() -> PasswordHasher:
    """The configured cost (config.Settings.argon2_*); a hash made with other parameters still
    verifies, and needs_rehash reports it so that login can upgrade it."""
    settings = get_settings()
    return PasswordHasher(
        time_cost=settings.argon2_time_cost,
        memory_cost=settings.argon2_memory_kib,
        parallelism=settings.argon2_parallelism,
    )


def hash_password(password: str) -> str:
    return _hasher().hash(password)


@cache
def _dummy_hash() -> str:
    return _hasher().hash("hikeshi-dummy-password-for-timing")


def verify_password(stored_hash: str | None, password: str) -> bool:
    """Always runs one argon2 verification, against a dummy hash when there is no account."""
    try:
        return _hasher().verify(stored_hash or _dummy_hash(), password) and stored_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(stored_hash: str) -> bool:
    return _hasher().check_needs_rehash(stored_hash)


def password_problem(password: str) -> str | None:
    if len(password) < MIN_LENGTH:
        return f"パスワードは{MIN_LENGTH}文字以上にしてください。"
    return None
