"""Failed sign-ins counted per login name and per client address, in the database so that every
server process sees the same counts (#16).

- A login name that does not exist is locked after as many failures as a real one, so the
  answer 「ロックしています」 no longer tells which names exist.
- A client address that fails too often in a window is refused before any password is checked
  (no argon2 work for a flood), with its own Japanese message; the refusal is audited once per
  lock, not once per attempt, so a flood does not flood the audit chain.

Keys are HMACs (keyed by the session secret) of the normalised name or the address: the table
holds neither."""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime, timedelta

from sqlmodel import Session as DbSession

from config import get_settings
from models import LoginThrottle

NAME, ADDRESS = "name", "address"


def key(kind: str, value: str) -> str:
    secret = hashlib.sha256(b"hikeshi/login-throttle/v1" + get_settings().session_secret).digest()
    message = f"{kind}:{value.strip().casefold()}".encode()
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def _limits(kind: str) -> tuple[int, timedelta]:
    settings = get_settings()
    window = timedelta(minutes=settings.login_lockout_minutes)
    limit = settings.login_max_failures if kind == NAME else settings.login_address_max_failures
    return limit, window


def _row(db: DbSession, row_key: str) -> LoginThrottle | None:
    return db.get(LoginThrottle, row_key, with_for_update=True)


def locked(db: DbSession, kind: str, value: str, now: datetime) -> LoginThrottle | None:
    """The throttle row if it is locked now (read under a row lock), else None."""
    row = _row(db, key(kind, value))
    return row if row is not None and row.locked_until and row.locked_until > now else None


def failed(db: DbSession, kind: str, value: str, now: datetime) -> bool:
    """Count one failure; True when it locks (the limit was reached in the window)."""
    limit, window = _limits(kind)
    row_key = key(kind, value)
    row = _row(db, row_key)
    if row is None:
        row = LoginThrottle(key=row_key, failures=0, window_started_at=now)
    if now - row.window_started_at >= window:
        row.failures, row.window_started_at = 0, now
    row.failures += 1
    locking = row.failures >= limit
    if locking:
        row.locked_until, row.failures, row.window_started_at = now + window, 0, now
    db.add(row)
    return locking


def first_report(row: LoginThrottle, now: datetime) -> bool:
    """Whether this refusal is the first of the row's current lock (audited once per lock)."""
    if row.reported_at is not None and row.reported_at >= row.window_started_at:
        return False
    row.reported_at = now
    return True


def cleared(db: DbSession, kind: str, value: str) -> None:
    row = _row(db, key(kind, value))
    if row is not None:
        db.delete(row)
