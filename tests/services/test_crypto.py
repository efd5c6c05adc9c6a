"""Field encryption and blind indexes (services/crypto.py), and what reaches the database file."""

from __future__ import annotations

import base64
import hashlib
import subprocess
import uuid
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from sqlalchemy.engine import make_url
from sqlmodel import select

from models import Member
from services.crypto import DecryptionError, TenantCipher
from services.db import unit_of_work
from services.validation import phone_digits
from tests.factories import make_member, make_tenant

FIELD = "member.name"


def cipher_for(tenant_id: uuid.UUID) -> TenantCipher:
    """The cipher reads the tenant's wrapped keys once; it needs no session afterwards."""
    with unit_of_work(tenant_id) as db:
        return TenantCipher(db, tenant_id)


@pytest.fixture(scope="module")
def tenants(engine) -> tuple[uuid.UUID, uuid.UUID]:
    return make_tenant(), make_tenant()


@pytest.fixture(scope="module")
def cipher(tenants) -> TenantCipher:
    return cipher_for(tenants[0])


@pytest.fixture(scope="module")
def other_cipher(tenants) -> TenantCipher:
    return cipher_for(tenants[1])


ROW = uuid.UUID("12345678-1234-5678-1234-567812345678")


def _split(stored: str) -> tuple[str, str, bytes]:
    fmt, key_id, sealed = stored.split(":", 2)
    return fmt, key_id, base64.urlsafe_b64decode(sealed + "=" * (-len(sealed) % 4))


def _join(fmt: str, key_id: str, raw: bytes) -> str:
    return f"{fmt}:{key_id}:{base64.urlsafe_b64encode(raw).decode().rstrip('=')}"


@given(
    value=st.text(),
    field=st.sampled_from(["member.name", "member.phone", "audit_event.details"]),
    row_id=st.uuids(),
)
@example(value="", field=FIELD, row_id=ROW)
@example(value="髙橋　①子", field=FIELD, row_id=ROW)
@example(value="🚒🔥👩‍🚒 消防団", field=FIELD, row_id=ROW)
@example(value="𠮷野家\u0000\ufeff\u200d", field=FIELD, row_id=ROW)
@example(value="長" * 20_000, field=FIELD, row_id=ROW)
def test_round_trip(cipher, value, field, row_id):
    stored = cipher.encrypt(value, field=field, row_id=row_id)
    assert cipher.decrypt(stored, field=field, row_id=row_id) == value
    assert stored.startswith("v1:")
    if len(value) >= 4:
        assert value not in stored


def test_same_value_encrypts_differently_each_time(cipher):
    first = cipher.encrypt("消防　太郎", field=FIELD, row_id=ROW)
    second = cipher.encrypt("消防　太郎", field=FIELD, row_id=ROW)
    assert first != second
    assert cipher.decrypt(first, field=FIELD, row_id=ROW) == "消防　太郎"


def test_another_cipher_instance_of_the_same_tenant_decrypts(cipher, tenants):
    stored = cipher.encrypt("消防　太郎", field=FIELD, row_id=ROW)
    assert cipher_for(tenants[0]).decrypt(stored, field=FIELD, row_id=ROW) == "消防　太郎"


def test_value_moved_to_another_row_fails(cipher):
    stored = cipher.encrypt("消防　太郎", field=FIELD, row_id=ROW)
    with pytest.raises(DecryptionError):
        cipher.decrypt(stored, field=FIELD, row_id=uuid.uuid4())
    with pytest.raises(DecryptionError):
        cipher.decrypt(stored, field=FIELD, row_id=ROW.hex)


def test_value_moved_to_another_field_fails(cipher):
    stored = cipher.encrypt("090-1234-5678", field="member.phone", row_id=ROW)
    with pytest.raises(DecryptionError):
        cipher.decrypt(stored, field="member.name", row_id=ROW)


def test_value_moved_to_another_tenant_fails(cipher, other_cipher):
    stored = cipher.encrypt("消防　太郎", field=FIELD, row_id=ROW)
    with pytest.raises(DecryptionError):
        other_cipher.decrypt(stored, field=FIELD, row_id=ROW)
    # Even under the other tenant's own key id the tenant-bound associated data fails.
    _, their_key, _ = _split(other_cipher.encrypt("x", field=FIELD, row_id=ROW))
    fmt, _, raw = _split(stored)
    with pytest.raises(DecryptionError):
        other_cipher.decrypt(_join(fmt, their_key, raw), field=FIELD, row_id=ROW)


@given(data=st.data())
def test_any_flipped_bit_fails(cipher, data):
    value = data.draw(st.text(max_size=40))
    stored = cipher.encrypt(value, field=FIELD, row_id=ROW)
    fmt, key_id, raw = _split(stored)
    position = data.draw(st.integers(0, len(raw) - 1))
    bit = data.draw(st.integers(0, 7))
    damaged = bytearray(raw)
    damaged[position] ^= 1 << bit
    with pytest.raises(DecryptionError):
        cipher.decrypt(_join(fmt, key_id, bytes(damaged)), field=FIELD, row_id=ROW)


@pytest.mark.parametrize(
    "damage",
    [
        lambda s: s[:-1],
        lambda s: s[:-2],
        lambda s: s[:-3],
        lambda s: s[: s.rindex(":") + 5],
        lambda s: s[: s.rindex(":") + 1],
        lambda s: s + "A",
        lambda s: s.replace("v1:", "v2:", 1),
        lambda s: s.replace("v1:", "", 1),
        lambda s: s[: s.rindex(":")] + ":!!!!",
        lambda s: "v1:nokey:" + s.split(":", 2)[2],
        lambda s: "",
        lambda s: "plain text",
    ],
)
def test_damaged_values_raise_decryption_error(cipher, damage):
    stored = cipher.encrypt("消防　太郎 090-1234-5678", field=FIELD, row_id=ROW)
    with pytest.raises(DecryptionError):
        cipher.decrypt(damage(stored), field=FIELD, row_id=ROW)


def test_blind_index_is_deterministic_per_tenant(cipher, other_cipher, tenants):
    digits = "09012345678"
    index = cipher.blind_index(digits, field="member.phone")
    assert index == cipher.blind_index(digits, field="member.phone")
    assert index == cipher_for(tenants[0]).blind_index(digits, field="member.phone")
    assert len(index) == 64
    assert index != other_cipher.blind_index(digits, field="member.phone")
    assert index != cipher.blind_index(digits, field="member.line_user_id")
    assert index != cipher.blind_index("09012345679", field="member.phone")
    assert index != hashlib.sha256(digits.encode()).hexdigest()


@given(a=st.text(max_size=30), b=st.text(max_size=30))
def test_blind_index_separates_values(cipher, a, b):
    same = cipher.blind_index(a, field="member.phone") == cipher.blind_index(
        b, field="member.phone"
    )
    assert same == (a == b)


def test_member_phone_blind_index_matches_the_cipher(engine, tenants, cipher):
    member = make_member(tenants[0], phone="０９０－５５５５－０００１")
    with unit_of_work(tenants[0]) as db:
        row = db.exec(select(Member).where(Member.id == member.id)).one()
    assert row.phone_bidx == cipher.blind_index("09055550001", field="member.phone")
    assert cipher.decrypt(row.phone_enc, field="member.phone", row_id=member.id) == member.phone


def test_database_file_holds_no_personal_plaintext(engine, database_url):
    if engine.dialect.name != "sqlite":
        pytest.skip("a raw file read applies to the SQLite database only")
    tenant = make_tenant()
    secrets: list[str] = []
    for n in range(3):
        tag = uuid.uuid4().hex[:6]
        phone = f"080-{int(tag[:4], 16) % 10000:04d}-{n:04d}"
        member = make_member(
            tenant,
            name=f"秘匿{tag}　髙橋{n}",
            kana=f"ヒトク　タカハシ{'ア' * (n + 3)}",
            phone=phone,
            email=f"secret.{tag}@example.jp",
            address=f"長野県デモ市秘密町{tag}",
        )
        secrets += [member.name, member.phone, phone_digits(member.phone), member.email]
        secrets += [member.address, member.name.split("　")[0]]
    database = Path(make_url(database_url).database)
    files = [p for p in database.parent.glob(database.name + "*") if p.is_file()]
    assert database in files
    # read by another process: closing a descriptor of the database here would drop SQLite's
    # locks in this process (see tests/security/test_encryption_at_rest.py's on_disk)
    blob = subprocess.run(["cat", *map(str, files)], capture_output=True, check=True).stdout
    assert b"tenant_key" in blob  # sanity: this is the database we wrote to
    leaked = [s for s in secrets if s.encode() in blob]
    assert leaked == []
