"""A per-process cache of decrypted personal fields (#19): a 5,000-member roster is 25,000
AES-GCM openings per page run, and a name list in the event log or a picker as many again.

Why it is safe to keep:
- An entry is found only by the exact stored value it was opened from (key id, nonce,
  ciphertext and tag) together with its tenant, column and row: every write seals afresh with a
  new random nonce, so a changed field is a different key and can never be answered with the
  plaintext it had before; a value copied to another row, column or brigade misses too.
- Nothing is shared across brigades: the tenant id is part of every key, and `forget` drops a
  brigade's entries when its keys are destroyed or rotated. TenantCipher consults the cache only
  for a key id the brigade still holds in the database, so a key destroyed by another process
  (the command line) makes the cached plaintext unreachable there too.
- Plaintext lives only in this process's memory (no st.cache_*, no disk), bounded by an LRU.
"""

from __future__ import annotations

import threading
import uuid
from collections import OrderedDict
from collections.abc import Hashable

# An entry is a member's six fields (about 1.6 kB with its key, measured) or one field (about
# 500 bytes): under 50 MB at most, room for a few big brigades' rosters and the names other
# pages show.
LIMIT = 30_000

# (tenant, "table.column" or, for a whole row's fields, "table", row id, stored value(s))
Key = tuple[uuid.UUID, str, Hashable, Hashable]
Plain = str | tuple[str, ...]


class PlaintextCache:
    """Least-recently-used map from (tenant, field, row id, stored value) to the plaintext."""

    def __init__(self, limit: int = LIMIT) -> None:
        self.limit = limit
        self._entries: OrderedDict[Key, Plain] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Key) -> Plain | None:
        with self._lock:
            plain = self._entries.get(key)
            if plain is not None:
                self._entries.move_to_end(key)
            return plain

    def put(self, key: Key, plain: Plain) -> None:
        with self._lock:
            self._entries[key] = plain
            self._entries.move_to_end(key)
            while len(self._entries) > self.limit:
                self._entries.popitem(last=False)

    def forget(self, tenant_id: uuid.UUID) -> int:
        """Drop every entry of one brigade; how many were dropped."""
        with self._lock:
            gone = [k for k in self._entries if k[0] == tenant_id]
            for key in gone:
                del self._entries[key]
            return len(gone)

    def __len__(self) -> int:
        return len(self._entries)


CACHE = PlaintextCache()


def forget(tenant_id: uuid.UUID) -> int:
    return CACHE.forget(tenant_id)
