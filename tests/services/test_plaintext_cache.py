"""The per-process cache of decrypted personal fields (services/plaintext_cache.py, #19): a hit
answers what decrypting would, a changed value is never answered from before, nothing crosses
brigades, the bound holds, and destroying or rotating a brigade's keys empties it."""

from __future__ import annotations

import uuid

import pytest
from sqlmodel import select

from models import Member
from services import keys, members
from services.catalog import MemberUpdate
from services.crypto import DecryptionError, TenantCipher
from services.db import unit_of_work
from services.members.records import MEMBER_FIELDS
from services.plaintext_cache import CACHE, PlaintextCache
from tests.factories import PLATFORM, admin, make_member, make_tenant


def names(tenant_id: uuid.UUID) -> dict[uuid.UUID, str]:
    return {m.id: m.name for m in members.roster_view(admin(tenant_id)).members}


def entries(tenant_id: uuid.UUID) -> int:
    return sum(1 for key in list(CACHE._entries) if key[0] == tenant_id)


def stored_row(tenant_id: uuid.UUID, member_id: uuid.UUID) -> tuple[str, ...]:
    with unit_of_work(tenant_id) as db:
        member = db.exec(select(Member).where(Member.id == member_id)).one()
        return MEMBER_FIELDS.stored(member)


def open_as(tenant_id: uuid.UUID, member_id: uuid.UUID, stored: tuple[str, ...]):
    with unit_of_work(tenant_id) as db:
        return TenantCipher(db, tenant_id).open_cached(member_id, stored, MEMBER_FIELDS)


@pytest.fixture
def counted(monkeypatch) -> list[int]:
    """How many values TenantCipher.decrypt really opens (the real method still runs)."""
    opened = [0]
    real = TenantCipher.decrypt

    def decrypt(self, stored, *, field, row_id):
        opened[0] += 1
        return real(self, stored, field=field, row_id=row_id)

    monkeypatch.setattr(TenantCipher, "decrypt", decrypt)
    return opened


def test_a_second_read_is_answered_from_the_cache(tenant, counted):
    made = [make_member(tenant, name=f"消防　{n}郎") for n in range(3)]
    first = names(tenant)
    opened = counted[0]
    assert opened >= 3 * len(MEMBER_FIELDS.fields)
    assert names(tenant) == first
    assert counted[0] == opened  # nothing decrypted again
    assert {first[m.id] for m in made} == {m.name for m in made}


def test_a_changed_member_is_shown_with_the_new_values(tenant):
    member = make_member(tenant, name="旧姓　花子", phone="090-1111-2222")
    assert names(tenant)[member.id] == "旧姓　花子"
    members.update_member(
        admin(tenant),
        member.id,
        data=MemberUpdate(name="新姓　花子", phone="090-3333-4444"),
        expected_version=member.version,
    )
    (shown,) = [m for m in members.roster_view(admin(tenant)).members if m.id == member.id]
    assert (shown.name, shown.phone) == ("新姓　花子", "090-3333-4444")
    assert members.get_member(admin(tenant), member.id).name == "新姓　花子"


def test_another_brigade_never_reads_a_cached_entry(tenant):
    other = make_tenant()
    member = make_member(tenant, name="甲団　太郎")
    names(tenant)
    stored = stored_row(tenant, member.id)
    assert open_as(tenant, member.id, stored)[0] == "甲団　太郎"  # in the cache
    with pytest.raises(DecryptionError):
        open_as(other, member.id, stored)  # the same row and ciphertexts, another brigade


def test_entries_are_per_brigade_even_for_equal_rows():
    cache, row, a, b = PlaintextCache(), uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    cache.put((a, "member", row, ("v1:k:x",)), ("甲",))
    assert cache.get((b, "member", row, ("v1:k:x",))) is None
    assert cache.get((a, "member", row, ("v1:k:x",))) == ("甲",)


def test_the_cache_is_bounded_and_keeps_the_recently_used():
    cache, tenant_id = PlaintextCache(limit=3), uuid.uuid4()
    key = lambda n: (tenant_id, "member.name", n, f"v1:k:{n}")  # noqa: E731
    for n in range(3):
        cache.put(key(n), f"名{n}")
    assert cache.get(key(0)) == "名0"  # 0 is now the most recently used
    cache.put(key(3), "名3")
    cache.put(key(4), "名4")
    assert len(cache) == 3
    assert [cache.get(key(n)) for n in range(5)] == ["名0", None, None, "名3", "名4"]


def test_forget_drops_one_brigade_only():
    cache, a, b = PlaintextCache(), uuid.uuid4(), uuid.uuid4()
    cache.put((a, "member.name", 1, "v1:k:1"), "甲")
    cache.put((b, "member.name", 1, "v1:k:1"), "乙")
    assert cache.forget(a) == 1
    assert cache.get((a, "member.name", 1, "v1:k:1")) is None
    assert cache.get((b, "member.name", 1, "v1:k:1")) == "乙"


def test_destroying_a_brigades_keys_empties_its_entries(tenant):
    other = make_tenant()
    make_member(tenant)
    make_member(other)
    names(tenant), names(other)
    assert entries(tenant) and entries(other)
    keys.destroy_tenant_keys(PLATFORM, tenant)
    assert entries(tenant) == 0
    assert entries(other)  # another brigade's stay


def test_an_entry_under_a_destroyed_key_is_not_answered(tenant):
    """Another process (the command line) may destroy the keys: this process's entry, still
    there, must not answer once the brigade no longer holds the key."""
    member = make_member(tenant, name="乙団　次郎")
    names(tenant)
    stored = stored_row(tenant, member.id)
    assert open_as(tenant, member.id, stored)[0] == "乙団　次郎"
    keys.destroy_tenant_keys(PLATFORM, tenant)
    key = (tenant, "member", member.id, stored)
    CACHE.put(key, ("乙団　次郎", "", "", "", "", ""))  # as a process that was not told keeps it
    with pytest.raises(DecryptionError):
        open_as(tenant, member.id, stored)
    CACHE.forget(tenant)


def test_rotating_the_data_key_empties_the_entries_and_keeps_the_values(tenant):
    member = make_member(tenant, name="丙団　三郎")
    names(tenant)
    before = stored_row(tenant, member.id)
    report = keys.rotate_tenant_data_key(PLATFORM, tenant)
    assert report.deleted_key_ids
    assert entries(tenant) == 0
    assert stored_row(tenant, member.id) != before
    assert names(tenant)[member.id] == "丙団　三郎"
