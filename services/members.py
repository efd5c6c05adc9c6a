"""Roster (団員名簿) services: every call checks the permission, scopes to the tenant and audits."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import update
from sqlmodel import select

from auth.actor import Actor
from models import (
    Member,
    MemberCreate,
    MemberPublic,
    MemberRole,
    MemberUpdate,
    Rank,
    Role,
    Session,
)
from models.base import utcnow
from models.enums import Function, Level, MemberStatus
from models.member import PERSONAL_MEMBER_FIELDS
from services import validation as v
from services.base import Tx, scoped, transaction
from services.errors import Conflict, NotFound, ValidationError

TABLE = "member"


@dataclass(frozen=True)
class RankOption:
    id: uuid.UUID
    name: str
    position: int


@dataclass(frozen=True)
class RoleOption:
    id: uuid.UUID
    name: str
    rank_id: uuid.UUID


@dataclass(frozen=True)
class MemberFilter:
    text: str = ""
    rank_ids: tuple[uuid.UUID, ...] = ()
    role_ids: tuple[uuid.UUID, ...] = ()
    statuses: tuple[str, ...] = ()
    affiliation: str = ""


def list_ranks(actor: Actor) -> list[RankOption]:
    with transaction(actor, Function.ROSTER, Level.VIEW, "rank.list") as tx:
        rows = tx.session.exec(scoped(select(Rank), actor).order_by(Rank.position)).all()
        return [RankOption(r.id, r.name, r.position) for r in rows]


def list_roles(actor: Actor) -> list[RoleOption]:
    with transaction(actor, Function.ROSTER, Level.VIEW, "role.list") as tx:
        rows = tx.session.exec(scoped(select(Role), actor).order_by(Role.name)).all()
        return [RoleOption(r.id, r.name, r.rank_id) for r in rows]


def list_members(actor: Actor, filters: MemberFilter | None = None) -> list[MemberPublic]:
    """The tenant's members, decrypted, filtered and sorted by reading (kana)."""
    filters = filters or MemberFilter()
    with transaction(actor, Function.ROSTER, Level.VIEW, "member.list") as tx:
        query = scoped(select(Member), actor)
        if filters.rank_ids:
            query = query.where(Member.rank_id.in_(filters.rank_ids))
        if filters.statuses:
            query = query.where(Member.status.in_(filters.statuses))
        org = _org(tx)
        members = [_public(tx, m, org) for m in tx.session.exec(query).all()]
    needle = v.search_key(filters.text)
    if needle:
        members = [
            m
            for m in members
            if needle in v.search_key(m.name)
            or needle in v.search_key(m.kana)
            or needle in m.member_code.lower()
        ]
    if filters.role_ids:
        wanted = set(filters.role_ids)
        members = [m for m in members if wanted & set(m.role_ids)]
    if filters.affiliation:
        label = v.clean(filters.affiliation)
        members = [m for m in members if label in m.affiliation]
    return sorted(members, key=lambda m: (m.kana or "\uffff", m.member_code))


def get_member(actor: Actor, member_id: uuid.UUID) -> MemberPublic:
    with transaction(actor, Function.ROSTER, Level.VIEW, "member.get") as tx:
        return _public(tx, _load(tx, member_id))


def create_member(actor: Actor, *, data: MemberCreate) -> MemberPublic:
    with transaction(actor, Function.ROSTER, Level.EDIT, "member.create") as tx:
        values = _validated(tx, data.model_dump())
        member = Member(
            tenant_id=tx.tenant_id,
            member_code=values["member_code"],
            rank_id=values["rank_id"],
            affiliation=values["affiliation"],
            joined_on=values["joined_on"],
            notes=values["notes"],
            name_enc="",
            kana_enc="",
            phone_enc="",
            email_enc="",
            address_enc="",
        )
        _write_personal(tx, member, values)
        tx.session.add(member)
        tx.session.flush()
        _set_roles(tx, member, values["role_ids"])
        after = _public(tx, member)
        tx.audit(
            "member.create",
            target_type=TABLE,
            target_id=member.id,
            details={"member_code": member.member_code, "after": _summary(after)},
            personal={"after": _personal(after)},
        )
        return after


def update_member(
    actor: Actor, member_id: uuid.UUID, *, data: MemberUpdate, expected_version: int
) -> MemberPublic:
    """Optimistic concurrency: a stale expected_version raises Conflict and changes nothing."""
    with transaction(actor, Function.ROSTER, Level.EDIT, "member.update") as tx:
        member = _load(tx, member_id)
        before = _public(tx, member)
        if member.version != expected_version:
            raise Conflict()
        merged = before.model_dump() | data.model_dump(exclude_unset=True)
        values = _validated(tx, merged, member_id=member.id)
        for name in ("member_code", "rank_id", "affiliation", "joined_on", "notes"):
            setattr(member, name, values[name])
        _write_personal(tx, member, values)
        _set_roles(tx, member, values["role_ids"])
        after = _save(tx, member)
        tx.audit(
            "member.update",
            target_type=TABLE,
            target_id=member.id,
            details={
                "member_code": member.member_code,
                "changed": _changed(before, after),
                "before": _summary(before),
                "after": _summary(after),
            },
            personal={
                "before": _personal(before),
                "after": _personal(after),
            },
        )
        return after


def suspend_member(actor: Actor, member_id: uuid.UUID) -> MemberPublic:
    """Suspension blocks login and revokes every open session at once."""
    return _change_status(
        actor, member_id, MemberStatus.SUSPENDED, Function.MEMBER_ACCOUNTS, "member.suspend"
    )


def reactivate_member(actor: Actor, member_id: uuid.UUID) -> MemberPublic:
    return _change_status(
        actor, member_id, MemberStatus.ACTIVE, Function.MEMBER_ACCOUNTS, "member.reactivate"
    )


def retire_member(actor: Actor, member_id: uuid.UUID) -> MemberPublic:
    """退団: the record stays for history; access ends."""
    return _change_status(actor, member_id, MemberStatus.RETIRED, Function.ROSTER, "member.retire")


def _change_status(
    actor: Actor, member_id: uuid.UUID, status: MemberStatus, function: Function, action: str
) -> MemberPublic:
    with transaction(actor, function, Level.EDIT, action) as tx:
        member = _load(tx, member_id)
        if member.status == status:
            raise ValidationError({"status": f"既に「{status.label}」です。"})
        before = member.status
        member.status = status
        after = _save(tx, member)
        revoked = 0
        if status != MemberStatus.ACTIVE:
            revoked = _revoke_sessions(tx, member.id, action)
        tx.audit(
            action,
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


def _revoke_sessions(tx: Tx, member_id: uuid.UUID, reason: str) -> int:
    result = tx.session.exec(
        update(Session)
        .where(Session.member_id == member_id, Session.revoked_at.is_(None))
        .values(revoked_at=utcnow(), revoke_reason=reason)
    )
    return result.rowcount or 0


def _load(tx: Tx, member_id: uuid.UUID) -> Member:
    member = tx.get(Member, member_id)
    if member is None:
        raise NotFound("団員が見つかりません。")
    return member


def _save(tx: Tx, member: Member) -> MemberPublic:
    member.version += 1
    member.updated_at = utcnow()
    tx.session.add(member)
    tx.session.flush()
    return _public(tx, member)


def _validated(tx: Tx, raw: dict, member_id: uuid.UUID | None = None) -> dict:
    values = {
        "member_code": v.clean(raw.get("member_code")),
        "name": v.clean_text(raw.get("name")),
        "kana": v.normalise_kana(raw.get("kana")),
        "phone": v.normalise_phone(raw.get("phone")),
        "email": v.clean(raw.get("email")),
        "address": v.clean_text(raw.get("address")),
        "affiliation": v.clean(raw.get("affiliation")),
        "notes": (raw.get("notes") or "").strip(),
        "joined_on": raw.get("joined_on"),
        "rank_id": raw.get("rank_id"),
        "role_ids": list(dict.fromkeys(raw.get("role_ids") or [])),
    }
    errors: dict[str, str] = {}
    code = values["member_code"]
    if not code:
        errors["member_code"] = "団員番号を入力してください。"
    elif len(code) > 20 or not v.is_code(code):
        errors["member_code"] = "団員番号は20文字以内の半角英数字・ハイフンで入力してください。"
    elif _code_taken(tx, code, member_id):
        errors["member_code"] = f"団員番号「{code}」は既に使われています。"
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
    if len(values["affiliation"]) > 100:
        errors["affiliation"] = "所属は100文字以内で入力してください。"
    if len(values["notes"]) > 2000:
        errors["notes"] = "備考は2000文字以内で入力してください。"
    if values["rank_id"] is None or tx.get(Rank, values["rank_id"]) is None:
        errors["rank_id"] = "階級を選択してください。"
    if any(tx.get(Role, role_id) is None for role_id in values["role_ids"]):
        errors["role_ids"] = "役職に存在しないものが含まれています。"
    if errors:
        raise ValidationError(errors)
    return values


def _code_taken(tx: Tx, code: str, member_id: uuid.UUID | None) -> bool:
    query = scoped(select(Member.id).where(Member.member_code == code), tx.actor)
    return any(found != member_id for found in tx.session.exec(query).all())


def _write_personal(tx: Tx, member: Member, values: dict) -> None:
    for name in PERSONAL_MEMBER_FIELDS:
        stored = tx.cipher.encrypt(values[name], field=f"{TABLE}.{name}", row_id=member.id)
        setattr(member, f"{name}_enc", stored)
    digits = v.phone_digits(values["phone"])
    member.phone_bidx = tx.cipher.blind_index(digits, field="member.phone") if digits else None


def _set_roles(tx: Tx, member: Member, role_ids: list[uuid.UUID]) -> None:
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


def _public(tx: Tx, member: Member, org: Org | None = None) -> MemberPublic:
    ranks, roles, links = org or _org(tx)
    rank = ranks[member.rank_id]
    role_ids = sorted(links.get(member.id, []), key=lambda r: roles[r].name)
    personal = {
        name: tx.cipher.decrypt(
            getattr(member, f"{name}_enc"), field=f"{TABLE}.{name}", row_id=member.id
        )
        for name in PERSONAL_MEMBER_FIELDS
    }
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
        notes=member.notes,
        version=member.version,
        updated_at=member.updated_at,
        **personal,
    )


Org = tuple[dict[uuid.UUID, Rank], dict[uuid.UUID, Role], dict[uuid.UUID, list[uuid.UUID]]]


def _org(tx: Tx) -> Org:
    """Ranks, roles and member→roles of the tenant."""
    ranks = {r.id: r for r in tx.session.exec(scoped(select(Rank), tx.actor)).all()}
    roles = {r.id: r for r in tx.session.exec(scoped(select(Role), tx.actor)).all()}
    links: dict[uuid.UUID, list[uuid.UUID]] = {}
    for link in tx.session.exec(scoped(select(MemberRole), tx.actor)).all():
        links.setdefault(link.member_id, []).append(link.role_id)
    return ranks, roles, links


def _summary(member: MemberPublic) -> dict:
    return {
        "rank": member.rank_name,
        "roles": member.role_names,
        "affiliation": member.affiliation,
        "status": member.status,
        "joined_on": member.joined_on,
    }


def _personal(member: MemberPublic) -> dict:
    return {name: getattr(member, name) for name in (*PERSONAL_MEMBER_FIELDS, "notes")}


def _changed(before: MemberPublic, after: MemberPublic) -> list[str]:
    fields = ("member_code", *PERSONAL_MEMBER_FIELDS, "rank_id", "role_ids", "affiliation")
    fields += ("joined_on", "notes")
    return [f for f in fields if getattr(before, f) != getattr(after, f)]
