"""Roster (団員名簿) services: every call checks the permission, scopes to the tenant and audits.

Roster editing may be narrowed to the editor's own 所属 (permission scope "own_unit"): such an
editor sees the whole roster but changes only members whose 所属 is theirs or lies below it.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import update
from sqlmodel import select

from core.access import Need, allows
from core.actor import Actor
from models import (
    Member,
    MemberCreate,
    MemberLine,
    MemberPublic,
    MemberRole,
    MemberUpdate,
    Rank,
    Role,
    Session,
)
from models.base import utcnow
from models.enums import AuditCategory, Function, Level, MemberStatus
from models.member import PERSONAL_MEMBER_FIELDS
from services import validation as v
from services.base import Tx, scoped, transaction
from services.errors import Conflict, NotFound, ValidationError
from services.permissions import (
    Grant,
    Refused,
    check_grants_permission_editing,
    combined_grants,
    guarded,
    member_grants,
    no_lockout,
)

TABLE = "member"
AFFILIATION_LIMIT = 100
# Plain-text columns (stored unencrypted) and their labels; notes may span lines.
PLAIN_TEXT_LABELS = {"affiliation": "所属", "notes": "備考"}


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
    affiliation: str = ""  # part of the 所属
    affiliations: tuple[str, ...] = ()  # whole 所属 labels, matched exactly
    line_linked: bool | None = None


@dataclass(frozen=True)
class EditScope:
    """Where the actor may edit the roster: the whole brigade, their own 所属, or nowhere."""

    whole_brigade: bool
    unit: str = ""

    @property
    def allows_editing(self) -> bool:
        return self.whole_brigade or bool(self.unit)

    def covers(self, affiliation: str) -> bool:
        return self.whole_brigade or (bool(self.unit) and in_unit(affiliation, self.unit))


@dataclass(frozen=True)
class AffiliationCount:
    label: str
    members: int  # of any status
    active: int


def in_unit(affiliation: str, unit: str) -> bool:
    """Whether a 所属 is `unit` or lies below it: "第1分団 第2部" is in "第1分団", while
    "第10分団" is not in "第1"."""
    affiliation, unit = v.clean(affiliation), v.clean(unit)
    if not unit or not affiliation.startswith(unit):
        return False
    rest = affiliation[len(unit) :]
    return not (unit[-1].isdigit() and rest[:1].isdigit())


def list_ranks(actor: Actor) -> list[RankOption]:
    with transaction(actor, Function.ROSTER, Level.VIEW, "rank.list") as tx:
        rows = tx.session.exec(scoped(select(Rank), actor).order_by(Rank.position)).all()
        return [RankOption(r.id, r.name, r.position) for r in rows]


def list_roles(actor: Actor) -> list[RoleOption]:
    with transaction(actor, Function.ROSTER, Level.VIEW, "role.list") as tx:
        rows = tx.session.exec(scoped(select(Role), actor).order_by(Role.name)).all()
        return [RoleOption(r.id, r.name, r.rank_id) for r in rows]


def edit_scope(actor: Actor) -> EditScope:
    """What the roster page may offer to edit (the services check again on every call)."""
    with transaction(actor, Function.ROSTER, Level.VIEW, "member.scope") as tx:
        return current_scope(tx)


def list_members(actor: Actor, filters: MemberFilter | None = None) -> list[MemberPublic]:
    """The tenant's members, decrypted, filtered and sorted by reading (kana)."""
    filters = filters or MemberFilter()
    with transaction(actor, Function.ROSTER, Level.VIEW, "member.list") as tx:
        query = scoped(select(Member), actor)
        if filters.rank_ids:
            query = query.where(Member.rank_id.in_(filters.rank_ids))
        if filters.statuses:
            query = query.where(Member.status.in_(filters.statuses))
        if filters.affiliations:
            query = query.where(Member.affiliation.in_([v.clean(a) for a in filters.affiliations]))
        rows = tx.session.exec(query).all()
        if filters.line_linked is not None:
            linked = _linked_ids(tx)
            rows = [m for m in rows if (m.id in linked) == filters.line_linked]
        org = load_org(tx)
        members = [to_public(tx, m, org) for m in rows]
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


def line_linked_ids(actor: Actor) -> frozenset[uuid.UUID]:
    """The members linked to a LINE account."""
    with transaction(actor, Function.ROSTER, Level.VIEW, "member.line_links") as tx:
        return _linked_ids(tx)


def get_member(actor: Actor, member_id: uuid.UUID) -> MemberPublic:
    with transaction(actor, Function.ROSTER, Level.VIEW, "member.get") as tx:
        return to_public(tx, _load(tx, member_id))


def create_member(actor: Actor, *, data: MemberCreate) -> MemberPublic:
    with _editing(actor, "member.create") as (tx, scope):
        values = _validated(tx, data.model_dump())
        _require_scope(scope, values["affiliation"])
        after_grants = combined_grants(tx.session, tx.tenant_id, _subjects(values))
        check_grants_permission_editing(tx, Grant(), _permissions_grant(after_grants))
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
        after = to_public(tx, member)
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
    """Optimistic concurrency: a stale expected_version raises Conflict and changes nothing.
    The row is locked while it is compared, so two simultaneous saves cannot both pass."""
    with _editing(actor, "member.update") as (tx, scope):
        member = _load(tx, member_id, lock=True)
        before = to_public(tx, member)
        if member.version != expected_version:
            raise Conflict()
        merged = before.model_dump() | data.model_dump(exclude_unset=True)
        values = _validated(tx, merged, member_id=member.id)
        _require_scope(scope, before.affiliation, values["affiliation"])
        with no_lockout(tx):
            _check_rank_and_roles(tx, member, values)
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
    with _accounts(actor, "member.suspend") as tx:
        member = _load(tx, member_id, lock=True)
        return _set_status(tx, member, MemberStatus.SUSPENDED, "member.suspend")


def reactivate_member(actor: Actor, member_id: uuid.UUID) -> MemberPublic:
    """Lifts a suspension. A retired member comes back only through readmit_member."""
    with _accounts(actor, "member.reactivate") as tx:
        member = _load(tx, member_id, lock=True)
        if member.status == MemberStatus.RETIRED:
            raise ValidationError(
                {
                    "status": "退団した団員は利用再開できません。"
                    "団員名簿の「再入団」で在籍に戻してください。"
                }
            )
        return _set_status(tx, member, MemberStatus.ACTIVE, "member.reactivate")


def retire_member(actor: Actor, member_id: uuid.UUID) -> MemberPublic:
    """退団: the record stays for history; access ends."""
    with _editing(actor, "member.retire") as (tx, scope), no_lockout(tx):
        member = _load(tx, member_id, lock=True)
        _require_scope(scope, member.affiliation)
        return _set_status(tx, member, MemberStatus.RETIRED, "member.retire")


def readmit_member(actor: Actor, member_id: uuid.UUID) -> MemberPublic:
    """再入団: a retired member is active again. A roster change like retiring, so it needs
    団員名簿 編集 (a suspension is lifted with アカウント管理 instead)."""
    with _editing(actor, "member.readmit") as (tx, scope):
        member = _load(tx, member_id, lock=True)
        _require_scope(scope, member.affiliation)
        if member.status != MemberStatus.RETIRED:
            raise ValidationError({"status": "再入団できるのは退団した団員だけです。"})
        return _set_status(tx, member, MemberStatus.ACTIVE, "member.readmit")


def bulk_suspend(actor: Actor, member_ids: Sequence[uuid.UUID]) -> int:
    """Suspend every selected active member (others are left as they are), all or none; one
    audit event per member. Returns how many were suspended."""
    with _accounts(actor, "member.bulk_suspend") as tx:
        chosen = _load_many(tx, member_ids)
        active = [m for m in chosen if m.status == MemberStatus.ACTIVE]
        for member in active:
            _set_status(tx, member, MemberStatus.SUSPENDED, "member.suspend")
        return len(active)


def bulk_set_affiliation(actor: Actor, member_ids: Sequence[uuid.UUID], *, affiliation: str) -> int:
    """Give every selected member the same 所属, all or none; one audit event per changed
    member. Returns how many changed."""
    with _editing(actor, "member.bulk_affiliation") as (tx, scope):
        label = _valid_affiliation(affiliation)
        chosen = _load_many(tx, member_ids)
        _require_scope(scope, label, *(m.affiliation for m in chosen))
        changed = [m for m in chosen if m.affiliation != label]
        for member in changed:
            before, member.affiliation = member.affiliation, label
            _save(tx, member)
            tx.audit(
                "member.update",
                target_type=TABLE,
                target_id=member.id,
                details={
                    "member_code": member.member_code,
                    "changed": ["affiliation"],
                    "before": {"affiliation": before},
                    "after": {"affiliation": label},
                    "bulk": True,
                },
            )
        return len(changed)


def list_affiliations(actor: Actor) -> list[AffiliationCount]:
    """The 所属 labels in use, with how many members carry each."""
    with transaction(actor, Function.ROSTER, Level.VIEW, "member.affiliations") as tx:
        rows = tx.session.exec(scoped(select(Member.affiliation, Member.status), actor)).all()
    total = Counter(label for label, _ in rows if label)
    active = Counter(label for label, status in rows if label and status == MemberStatus.ACTIVE)
    return [AffiliationCount(label, total[label], active[label]) for label in sorted(total)]


def rename_affiliation(actor: Actor, *, old: str, new: str, include_sub_units: bool = False) -> int:
    """Rename a 所属 label on every member carrying it (and, if asked, on the labels below it:
    "第1分団 第2部" follows "第1分団"). One audit event; returns how many members changed."""
    with _editing(actor, "member.affiliation_rename") as (tx, scope):
        old_label, new_label = v.clean(old), _valid_affiliation(new, field="new")
        rows = tx.session.exec(scoped(select(Member), actor).with_for_update()).all()
        hits = [
            m
            for m in rows
            if m.affiliation == old_label
            or (include_sub_units and in_unit(m.affiliation, old_label))
        ]
        if not old_label or not hits:
            raise ValidationError({"old": f"所属「{old_label}」の団員はいません。"})
        renamed = {m.id: new_label + m.affiliation[len(old_label) :] for m in hits}
        if any(len(label) > AFFILIATION_LIMIT for label in renamed.values()):
            raise ValidationError(
                {"new": f"変更後の所属が{AFFILIATION_LIMIT}文字を超える団員がいます。"}
            )
        _require_scope(scope, *(m.affiliation for m in hits), *renamed.values())
        changed = [m for m in hits if renamed[m.id] != m.affiliation]
        for member in changed:
            member.affiliation = renamed[member.id]
            _save(tx, member)
        if changed:
            tx.audit(
                "member.affiliation_rename",
                target_type="affiliation",
                details={
                    "before": old_label,
                    "after": new_label,
                    "include_sub_units": include_sub_units,
                    "member_codes": sorted(m.member_code for m in changed),
                },
            )
        return len(changed)


# ---------------------------------------------------------------------------
# Permission contexts


@contextmanager
def _editing(actor: Actor, action: str) -> Iterator[tuple[Tx, EditScope]]:
    """団員名簿 編集, for the whole brigade or narrowed to the actor's own 所属."""
    with guarded(actor, Function.ROSTER, Level.EDIT, action, opens_at=Level.VIEW) as tx:
        scope = current_scope(tx)
        if not scope.allows_editing:
            raise Refused(Function.ROSTER, Level.EDIT)
        yield tx, scope


@contextmanager
def _accounts(actor: Actor, action: str) -> Iterator[Tx]:
    """アカウント管理 編集, with the lock-out guard around the change."""
    with guarded(actor, Function.MEMBER_ACCOUNTS, Level.EDIT, action) as tx, no_lockout(tx):
        yield tx


def current_scope(tx: Tx) -> EditScope:
    """Where the actor of this unit of work may edit the roster."""
    if allows(tx.actor, Need(Function.ROSTER, Level.EDIT)):
        return EditScope(whole_brigade=True)
    me = tx.get(Member, tx.actor.member_id) if tx.actor.member_id else None
    if me is None or me.status != MemberStatus.ACTIVE or not me.affiliation:
        return EditScope(whole_brigade=False)
    grant = member_grants(tx.session, me).get(str(Function.ROSTER), Grant())
    return EditScope(whole_brigade=False, unit=me.affiliation if grant.level >= Level.EDIT else "")


def _require_scope(scope: EditScope, *affiliations: str) -> None:
    if not all(scope.covers(a) for a in affiliations):
        raise Refused(
            Function.ROSTER,
            Level.EDIT,
            f"自分の所属（{scope.unit}）以外の団員は編集できません。",
        )


def _check_rank_and_roles(tx: Tx, member: Member, values: dict) -> None:
    before = _permissions_grant(member_grants(tx.session, member))
    after_grants = combined_grants(tx.session, tx.tenant_id, _subjects(values))
    check_grants_permission_editing(tx, before, _permissions_grant(after_grants))


def _subjects(values: dict) -> list[uuid.UUID]:
    return [values["rank_id"], *values["role_ids"]]


def _permissions_grant(grants: dict[str, Grant]) -> Grant:
    return grants.get(str(Function.PERMISSIONS), Grant())


# ---------------------------------------------------------------------------
# Helpers


# Suspension and reactivation grant or remove access: the white paper's authentication and
# authorisation log (9.2.4, 12.4.1) is where an auditor looks for them.
ACCOUNT_ACTIONS = frozenset({"member.suspend", "member.reactivate"})


def _set_status(tx: Tx, member: Member, status: MemberStatus, action: str) -> MemberPublic:
    if member.status == status:
        raise ValidationError({"status": f"既に「{status.label}」です。"})
    before = member.status
    member.status = status
    after = _save(tx, member)
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


def _load(tx: Tx, member_id: uuid.UUID, *, lock: bool = False) -> Member:
    if not lock:
        member = tx.get(Member, member_id)
    else:
        query = scoped(select(Member), tx.actor).where(Member.id == member_id)
        member = tx.session.exec(query.with_for_update()).first()
    if member is None:
        raise NotFound("団員が見つかりません。")
    return member


def _load_many(tx: Tx, member_ids: Sequence[uuid.UUID]) -> list[Member]:
    wanted = list(dict.fromkeys(member_ids))
    if not wanted:
        raise ValidationError({"member_ids": "団員を1名以上選択してください。"})
    query = scoped(select(Member), tx.actor).where(Member.id.in_(wanted)).with_for_update()
    found = {m.id: m for m in tx.session.exec(query).all()}
    if len(found) != len(wanted):
        raise NotFound("団員が見つかりません。")
    return [found[i] for i in wanted]


def _linked_ids(tx: Tx) -> frozenset[uuid.UUID]:
    return frozenset(tx.session.exec(scoped(select(MemberLine.member_id), tx.actor)).all())


def _save(tx: Tx, member: Member) -> MemberPublic:
    member.version += 1
    member.updated_at = utcnow()
    tx.session.add(member)
    tx.session.flush()
    return to_public(tx, member)


def _valid_affiliation(text: str | None, *, field: str = "affiliation") -> str:
    label = v.clean(text)
    if v.has_control_chars(label):
        raise ValidationError({field: v.control_chars_message("所属")})
    if not label or len(label) > AFFILIATION_LIMIT:
        raise ValidationError({field: f"所属を{AFFILIATION_LIMIT}文字以内で入力してください。"})
    return label


def _validated(tx: Tx, raw: dict, member_id: uuid.UUID | None = None) -> dict:
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


def normalise_member(raw: dict) -> dict:
    """A member's fields as they are stored: codes and labels NFKC, names trimmed, kana in
    katakana, phone numbers formatted."""
    return {
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
    for field, label in PLAIN_TEXT_LABELS.items():
        if v.has_control_chars(values[field], multiline=field == "notes"):
            errors[field] = v.control_chars_message(label)
    return errors


def _code_taken(tx: Tx, code: str, member_id: uuid.UUID | None) -> bool:
    query = scoped(select(Member.id).where(Member.member_code == code), tx.actor)
    return any(found != member_id for found in tx.session.exec(query).all())


def _write_personal(tx: Tx, member: Member, values: dict) -> None:
    for column, stored in personal_columns(tx, member.id, values).items():
        setattr(member, column, stored)


def personal_columns(tx: Tx, member_id: uuid.UUID, values: dict) -> dict[str, str | None]:
    """The stored (encrypted) form of a member's personal fields and the phone's blind index.
    The row id is part of the associated data, so it must be known first."""
    stored: dict[str, str | None] = {
        f"{name}_enc": tx.cipher.encrypt(values[name], field=f"{TABLE}.{name}", row_id=member_id)
        for name in PERSONAL_MEMBER_FIELDS
    }
    digits = v.phone_digits(values["phone"])
    stored["phone_bidx"] = tx.cipher.blind_index(digits, field="member.phone") if digits else None
    return stored


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


def personal_values(tx: Tx, member: Any) -> dict[str, str]:
    """The decrypted personal fields of a member row (an entity or a selected row)."""
    return {
        name: tx.cipher.decrypt(
            getattr(member, f"{name}_enc"), field=f"{TABLE}.{name}", row_id=member.id
        )
        for name in PERSONAL_MEMBER_FIELDS
    }


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
        notes=member.notes,
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
