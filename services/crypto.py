"""Field-level encryption (AES-256-GCM) and blind indexes (HMAC-SHA256) with per-tenant keys.

Stored form: "v1:<key id>:<base64url(nonce || ciphertext+tag)>". The associated data binds each
value to its tenant, table.column and row id, so a value copied elsewhere fails to decrypt.
Tenant keys are wrapped by a master key from the environment ("<master id>:<base64>").
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import operator
import os
import secrets
import uuid
from collections.abc import Sequence
from itertools import repeat
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlmodel import Session, select

from config import get_settings
from core.personal import PersonalField, personal_field
from models import TenantKey
from services import plaintext_cache

FORMAT = "v1"
DATA = "data"
INDEX = "index"
# Audit details are hashed into the append-only chain, so they cannot be re-encrypted: they use
# their own key, which data-key rotation leaves alone (master-key rotation re-wraps it).
AUDIT = "audit"
PURPOSES = (DATA, INDEX, AUDIT)


class DecryptionError(Exception):
    """A value is damaged, moved, or its key is gone."""


def _b64e(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _b64d(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def seal(key: bytes | AESGCM, plaintext: bytes, aad: bytes, nonce: bytes | None = None) -> str:
    """AES-256-GCM with a random 96-bit nonce, bound to `aad`: the one AEAD of the project."""
    aead = key if isinstance(key, AESGCM) else AESGCM(key)
    nonce = nonce or os.urandom(12)
    return _b64e(nonce + aead.encrypt(nonce, plaintext, aad))


def unseal(key: bytes | AESGCM, sealed: str, aad: bytes) -> bytes:
    """What seal() sealed with the same key and aad; DecryptionError for anything else."""
    aead = key if isinstance(key, AESGCM) else AESGCM(key)
    try:
        raw = _b64d(sealed)
        return aead.decrypt(raw[:12], raw[12:], aad)
    except (InvalidTag, ValueError) as exc:
        raise DecryptionError("value cannot be decrypted") from exc


def platform_key(master_id: str, purpose: str) -> bytes:
    """A platform-wide key for one purpose, derived (HKDF-SHA256) from a configured master key:
    for what belongs to no brigade yet, such as a LINE login not bound to a member."""
    master = get_settings().master_keys.get(master_id)
    if master is None:
        raise DecryptionError(f"master key {master_id!r} is not configured")
    info = f"hikeshi/platform/{purpose}/v1".encode()
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(master)


def _wrap_aad(tenant_id: uuid.UUID, key_id: str, purpose: str) -> bytes:
    return f"hikeshi-key|{tenant_id}|{key_id}|{purpose}".encode()


def wrap_key(raw: bytes, tenant_id: uuid.UUID, key_id: str, purpose: str) -> str:
    settings = get_settings()
    master_id = settings.active_master_key_id
    master = settings.master_keys[master_id]
    return f"{master_id}:{seal(master, raw, _wrap_aad(tenant_id, key_id, purpose))}"


def unwrap_key(row: TenantKey) -> bytes:
    master_id, _, sealed = row.wrapped.partition(":")
    master = get_settings().master_keys.get(master_id)
    if master is None:
        raise DecryptionError(f"master key {master_id!r} is not configured")
    return unseal(master, sealed, _wrap_aad(row.tenant_id, row.key_id, row.purpose))


def new_tenant_key(tenant_id: uuid.UUID, purpose: str) -> TenantKey:
    """A fresh random key, wrapped by the active master key (the caller adds it)."""
    key_id = f"{purpose[0]}{secrets.token_hex(4)}"
    raw = AESGCM.generate_key(bit_length=256)
    return TenantKey(
        tenant_id=tenant_id,
        key_id=key_id,
        purpose=purpose,
        wrapped=wrap_key(raw, tenant_id, key_id, purpose),
    )


def create_tenant_keys(session: Session, tenant_id: uuid.UUID) -> None:
    session.add_all(new_tenant_key(tenant_id, purpose) for purpose in PURPOSES)


class SealedFields:
    """Two or more encrypted fields of one table that are opened together (a member's)."""

    def __init__(self, fields: Sequence[PersonalField]) -> None:
        self.fields = tuple(fields)
        self.table = fields[0].table
        self.aads = tuple(f.aad for f in fields)
        self.stored = operator.attrgetter(*(f.column for f in fields))  # row -> stored values


class TenantCipher:
    """Encrypts and decrypts one tenant's fields within one unit of work. Unwrapped keys, their
    AES-GCM contexts and the per-column index keys are kept for the unit of work, since a bulk
    import seals tens of thousands of values."""

    def __init__(self, session: Session, tenant_id: uuid.UUID, purpose: str = DATA) -> None:
        self.tenant_id = tenant_id
        rows = session.exec(select(TenantKey).where(TenantKey.tenant_id == tenant_id)).all()
        self._keys = {row.key_id: row for row in rows}
        self._held = tuple(f"{FORMAT}:{key_id}:" for key_id in self._keys)  # stored-value prefixes
        self._raw: dict[str, bytes] = {}
        self._aead: dict[str, AESGCM] = {}
        self._column_keys: dict[str, bytes] = {}
        self._tenant = str(tenant_id)
        self._row: tuple[uuid.UUID | str | None, str] = (None, "")
        self._nonces = memoryview(b"")
        active = [r for r in rows if r.purpose == purpose and r.active]
        index = [r for r in rows if r.purpose == INDEX and r.active]
        self._active_id = active[0].key_id if active else None
        self._index_id = index[0].key_id if index else None

    def _key(self, key_id: str) -> bytes:
        if key_id not in self._raw:
            row = self._keys.get(key_id)
            if row is None:
                raise DecryptionError(f"tenant key {key_id!r} is missing")
            self._raw[key_id] = unwrap_key(row)
        return self._raw[key_id]

    def _context(self, key_id: str) -> AESGCM:
        if key_id not in self._aead:
            self._aead[key_id] = AESGCM(self._key(key_id))
        return self._aead[key_id]

    def _aad(self, field: str, row_id: uuid.UUID | str) -> bytes:
        # A row's fields are sealed one after another: its id is rendered once, not per field.
        if self._row[0] != row_id:
            self._row = (row_id, f"|{row_id}")
        return f"{self._tenant}|{field}{self._row[1]}".encode()

    def encrypt(self, value: str, *, field: str, row_id: uuid.UUID | str) -> str:
        if self._active_id is None:
            raise DecryptionError("tenant has no active data key")
        aad = self._aad(field, row_id)
        sealed = seal(self._context(self._active_id), value.encode(), aad, self._nonce())
        return f"{FORMAT}:{self._active_id}:{sealed}"

    def _nonce(self) -> bytes:
        """A random 96-bit nonce, drawn from the OS generator 256 at a time."""
        if not self._nonces:
            self._nonces = memoryview(os.urandom(12 * 256))
        nonce, self._nonces = bytes(self._nonces[:12]), self._nonces[12:]
        return nonce

    def member_name(self, member: Any) -> str:
        """A member's name in clear, for display and labels (the one place that spells it)."""
        name = personal_field("member", "name")
        return self.decrypt_cached(getattr(member, name.column), field=name.aad, row_id=member.id)

    def decrypt(self, stored: str, *, field: str, row_id: uuid.UUID | str) -> str:
        fmt, key_id, sealed = [*stored.split(":", 2), "", ""][:3]
        if fmt != FORMAT:
            raise DecryptionError("unknown format")
        return unseal(self._context(key_id), sealed, self._aad(field, row_id)).decode()

    def decrypt_cached(self, stored: str, *, field: str, row_id: uuid.UUID | str) -> str:
        """decrypt(), answered from the process's plaintext cache when this exact stored value
        of this tenant's column and row was opened before under a key the tenant still holds
        (services.plaintext_cache says why that is safe)."""
        key = (self.tenant_id, field, row_id, stored)
        if stored.startswith(self._held):
            plain = plaintext_cache.CACHE.get(key)
            if plain is not None:
                return plain
        plain = self.decrypt(stored, field=field, row_id=row_id)
        plaintext_cache.CACHE.put(key, plain)
        return plain

    def open_row_cached(self, row: Any, fields: SealedFields) -> tuple[str, ...]:
        """The given fields of one row (an entity or a selected row) in clear."""
        return self.open_cached(row.id, fields.stored(row), fields)

    def open_cached(
        self, row_id: uuid.UUID, stored: tuple[str, ...], fields: SealedFields
    ) -> tuple[str, ...]:
        """A row's stored values of `fields`, in clear, as one entry of the plaintext cache
        keyed by all of them (services.plaintext_cache says why that is safe): a roster opens
        a member at once."""
        key = (self.tenant_id, fields.table, row_id, stored)
        if all(map(str.startswith, stored, repeat(self._held))):
            plain = plaintext_cache.CACHE.get(key)
            if plain is not None:
                return plain  # type: ignore[return-value]
        plain = tuple(
            self.decrypt(s, field=aad, row_id=row_id)
            for s, aad in zip(stored, fields.aads, strict=True)
        )
        plaintext_cache.CACHE.put(key, plain)
        return plain

    def blind_index(self, value: str, *, field: str) -> str:
        if self._index_id is None:
            raise DecryptionError("tenant has no blind-index key")
        if field not in self._column_keys:
            self._column_keys[field] = HKDF(
                algorithm=hashes.SHA256(),
                length=32,
                salt=None,
                info=f"hikeshi/blind-index/v1/{field}".encode(),
            ).derive(self._key(self._index_id))
        return hmac.new(self._column_keys[field], value.encode(), hashlib.sha256).hexdigest()
