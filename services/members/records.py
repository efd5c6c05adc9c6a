"""Reading and writing one member record: loading, validating, the encrypted personal
columns, roles, status changes with their session revocation, and the public view."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import update
from sqlmodel import select

from core.personal import ENCRYPTED_MEMBER_FIELDS, personal_field, personal_fields, personal_names
from models import (
    Member,
    MemberLine,
    MemberPublic,
    MemberRole,
    Rank,
    Role,
    Session,
)
from models.base import utcnow
from models.enums import AuditCategory, MemberStatus
from services import validation as v
from services.base import Tx, scoped
from services.crypto import SealedFields
from services.errors import NotFound, ValidationError
from services.members.ceiling import check_ceiling
from services.members.model import AFFILIATION_LIMIT, FREE_TEXT_LABELS, TABLE

# ---------------------------------------------------------------------------
# Helpers


# Suspension and reactivation grant or remove access: the white paper's authentication and
# authorisation log (9.2.4, 12.4.1) is where an auditor looks for them.
ACCOUNT_ACTIONS = frozenset({"member.suspend", "member.reactivate"})
MEMBER_FIELDS = SealedFields(personal_fields(TABLE, encrypted=True))
MEMBER_NAMES = tuple(f.name for f in MEMBER_FIELDS.fields)


def set_status(
    tx: Tx, member: Member, status: MemberStatus, action: str, org: Org | None = None
) -> MemberPublic:
    """A bulk change passes the organisation (load_org) read once for all its members."""
    if member.status == status:
        raise ValidationError({"status": f"既に「{status.label}」です。"})
    check_ceiling(tx, member, status_changes=True)
    before = member.status
    member.status = status
    after = save_member(tx, member, org)
    revoked = 0
    if status != MemberStatus.ACTIVE:
        revoked = revoke_sessions(tx, [member.id], action)
    tx.audit(
        action,
        category=AuditCategory.AUTH if action in ACCOUNT_ACTIONS else AuditCategory.OPERATION,
        target_type=TABLE,
        target_id=member.id,
        details={
            "member_code": member.member_code,
            "before": {"status": before},
            "after": {"status": str(status)},
            "sessions_revoked": revoked,
        },
    )
    return after


def revoke_sessions(tx: Tx, member_ids: Sequence[uuid.UUID], reason: str) -> int:
    """End the open sessions of members who lost access; how many were ended."""
    revoked = 0
    for start in range(0, len(member_ids), 500):
        result = tx.session.exec(
            update(Session)
            .where(
                Session.member_id.in_(member_ids[start : start + 500]),
                Session.revoked_at.is_(None),
            )
            .values(revoked_at=utcnow(), revoke_reason=reason)
        )
        revoked += result.rowcount or 0
    return revoked


def load_member(tx: Tx, member_id: uuid.UUID, *, lock: bool = False) -> Member:
    if not lock:
        member = tx.get(Member, member_id)
    else:
        query = scoped(select(Member), tx.actor).where(Member.id == member_id)
        member = tx.session.exec(query.with_for_update()).first()
    if member is None:
        raise NotFound("団員が見つかりません。")
    return member


def load_members(tx: Tx, member_ids: Sequence[uuid.UUID]) -> list[Member]:
    wanted = list(dict.fromkeys(member_ids))
    if not wanted:
        raise ValidationError({"member_ids": "団員を1名以上選択してください。"})
    query = scoped(select(Member), tx.actor).where(Member.id.in_(wanted)).with_for_update()
    found = {m.id: m for m in tx.session.exec(query).all()}
    if len(found) != len(wanted):
        raise NotFound("団員が見つかりません。")
    return [found[i] for i in wanted]


def linked_ids(tx: Tx) -> frozenset[uuid.UUID]:
    return frozenset(tx.session.exec(scoped(select(MemberLine.member_id), tx.actor)).all())


def save_member(tx: Tx, member: Member, org: Org | None = None) -> MemberPublic:
    member.version += 1
    member.updated_at = utcnow()
    tx.session.add(member)
    tx.session.flush()
    return to_public(tx, member, org)


def valid_affiliation(text: str | None, *, field: str = "affiliation") -> str:
    label = v.clean(text)
    if v.has_control_chars(label):
        raise ValidationError({field: v.control_chars_message("所属")})
    if not label or len(label) > AFFILIATION_LIMIT:
        raise ValidationError({field: f"所属を{AFFILIATION_LIMIT}文字以内で入力してください。"})
    return label


def validated_values(tx: Tx, raw: dict, member_id: uuid.UUID | None = None) -> dict:
    values = normalise_member(raw)
    errors = member_errors(values)
    code = values["member_code"]
    if "member_code" not in errors and _code_taken(tx, code, member_id):
        errors["member_code"] = f"団員番号「{code}」は既に使われています。"
    if values["rank_id"] is None or tx.get(Rank, values["rank_id"]) is None:
        errors["rank_id"] = "階級を選択してください。"
    if any(tx.get(Role, role_id) is None for role_id in values["role_ids"]):
        errors["role_ids"] = "役職に存在しないものが含まれています。"
    if errors:
        raise ValidationError(errors)
    return values


def normalise_member(raw: dict, *, notes_as_given: bool = False) -> dict:
    """A member's fields as they are stored: codes and labels NFKC, names trimmed, kana in
    katakana, phone numbers formatted. A form's 備考 is trimmed; a file's is kept as given
    (notes_as_given): whitespace in a cell is data (#17)."""
    notes = raw.get("notes") or ""
    return {
        "member_code": v.clean(raw.get("member_code")),
        "name": v.clean_text(raw.get("name")),
        "kana": v.normalise_kana(raw.get("kana")),
        "phone": v.normalise_phone(raw.get("phone")),
        "email": v.clean(raw.get("email")),
        "address": v.clean_text(raw.get("address")),
        "affiliation": v.clean(raw.get("affiliation")),
        "notes": notes if notes_as_given else notes.strip(),
        "joined_on": raw.get("joined_on"),
        "rank_id": raw.get("rank_id"),
        "role_ids": list(dict.fromkeys(raw.get("role_ids") or [])),
    }


def member_errors(values: dict) -> dict[str, str]:
    """What is wrong with normalised fields, by field, without looking at the database (the
    code's uniqueness and the rank and roles are the caller's to check)."""
    errors: dict[str, str] = {}
    code = values["member_code"]
    if not code:
        errors["member_code"] = "団員番号を入力してください。"
    elif len(code) > 20 or not v.is_code(code):
        errors["member_code"] = "団員番号は20文字以内の半角英数字・ハイフンで入力してください。"
    if not values["name"]:
        errors["name"] = "氏名を入力してください。"
    elif len(values["name"]) > 50:
        errors["name"] = "氏名は50文字以内で入力してください。"
    if values["kana"] and not v.is_kana(values["kana"]):
        errors["kana"] = "ふりがなはカタカナまたはひらがなで入力してください。"
    elif len(values["kana"]) > 100:
        errors["kana"] = "ふりがなは100文字以内で入力してください。"
    if values["phone"] and not v.is_phone(values["phone"]):
        errors["phone"] = "電話番号の形式が正しくありません（例: 090-1234-5678）。"
    if values["email"] and not v.is_email(values["email"]):
        errors["email"] = "メールアドレスの形式が正しくありません。"
    if len(values["address"]) > 200:
        errors["address"] = "住所は200文字以内で入力してください。"
    if len(values["affiliation"]) > AFFILIATION_LIMIT:
        errors["affiliation"] = f"所属は{AFFILIATION_LIMIT}文字以内で入力してください。"
    if len(values["notes"]) > 2000:
        errors["notes"] = "備考は2000文字以内で入力してください。"
    for field, label in FREE_TEXT_LABELS.items():
        if v.has_control_chars(values[field], multiline=field == "notes"):
            errors[field] = v.control_chars_message(label)
    return errors


def _code_taken(tx: Tx, code: str, member_id: uuid.UUID | None) -> bool:
    query = scoped(select(Member.id).where(Member.member_code == code), tx.actor)
    return any(found != member_id for found in tx.session.exec(query).all())


def write_personal(tx: Tx, member: Member, values: dict) -> None:
    for column, stored in personal_columns(tx, member.id, values).items():
        setattr(member, column, stored)


def personal_columns(tx: Tx, member_id: uuid.UUID, values: dict) -> dict[str, str | None]:
    """The stored (encrypted) form of a member's personal fields and the phone's blind index.
    The row id is part of the associated data, so it must be known first."""
    stored: dict[str, str | None] = {
        f.column: tx.cipher.encrypt(values[f.name], field=f.aad, row_id=member_id)
        for f in personal_fields(TABLE, encrypted=True)
    }
    digits = v.phone_digits(values["phone"])
    phone = personal_field(TABLE, "phone").aad
    stored["phone_bidx"] = tx.cipher.blind_index(digits, field=phone) if digits else None
    return stored


def set_roles(tx: Tx, member: Member, role_ids: list[uuid.UUID]) -> None:
    current = tx.session.exec(
        scoped(select(MemberRole), tx.actor).where(MemberRole.member_id == member.id)
    ).all()
    for link in current:
        if link.role_id not in role_ids:
            tx.session.delete(link)
    existing = {link.role_id for link in current}
    tx.session.add_all(
        MemberRole(tenant_id=tx.tenant_id, member_id=member.id, role_id=role_id)
        for role_id in role_ids
        if role_id not in existing
    )
    tx.session.flush()


def personal_values(tx: Tx, member: Any) -> dict[str, str]:
    """The decrypted personal fields of a member row (an entity or a selected row), through the
    process's plaintext cache (services.plaintext_cache)."""
    plain = tx.cipher.open_row_cached(member, MEMBER_FIELDS)
    return dict(zip(MEMBER_NAMES, plain, strict=True))


def to_public(tx: Tx, member: Member, org: Org | None = None) -> MemberPublic:
    ranks, roles, links = org or load_org(tx)
    rank = ranks[member.rank_id]
    role_ids = sorted(links.get(member.id, []), key=lambda r: roles[r].name)
    personal = personal_values(tx, member)
    return MemberPublic(
        id=member.id,
        member_code=member.member_code,
        rank_id=member.rank_id,
        rank_name=rank.name,
        rank_position=rank.position,
        role_ids=role_ids,
        role_names=[roles[r].name for r in role_ids],
        affiliation=member.affiliation,
        status=member.status,
        joined_on=member.joined_on,
        version=member.version,
        updated_at=member.updated_at,
        **personal,
    )


Org = tuple[dict[uuid.UUID, Rank], dict[uuid.UUID, Role], dict[uuid.UUID, list[uuid.UUID]]]


def load_org(tx: Tx) -> Org:
    """Ranks, roles and member→roles of the tenant."""
    ranks = {r.id: r for r in tx.session.exec(scoped(select(Rank), tx.actor)).all()}
    roles = {r.id: r for r in tx.session.exec(scoped(select(Role), tx.actor)).all()}
    links: dict[uuid.UUID, list[uuid.UUID]] = {}
    for link in tx.session.exec(scoped(select(MemberRole), tx.actor)).all():
        links.setdefault(link.member_id, []).append(link.role_id)
    return ranks, roles, links


def summary_of(member: MemberPublic) -> dict:
    return {
        "rank": member.rank_name,
        "roles": member.role_names,
        "affiliation": member.affiliation,
        "status": member.status,
        "joined_on": member.joined_on,
    }


def personal_of(member: MemberPublic) -> dict:
    """The personal part of an audit record (shown only to イベントログ 管理)."""
    return {name: getattr(member, name) for name in personal_names(TABLE)}


def changed_fields(before: MemberPublic, after: MemberPublic) -> list[str]:
    fields = ("member_code", *ENCRYPTED_MEMBER_FIELDS, "rank_id", "role_ids", "affiliation")
    fields += ("joined_on",)
    return [f for f in fields if getattr(before, f) != getattr(after, f)]
