"""What an event was done to, in words (issue #18): 団員番号 and 氏名 for a member, 水利番号 for a
water source, instead of the stored id. Read in bulk (one query per target type for a page of
events), within the viewer's brigade, and only what the viewer may read elsewhere: a member for
団員名簿 閲覧 (for the whole brigade, or within the viewer's own 所属 when the grant is narrowed
to it), a water source for 消防水利 閲覧. Anything else keeps its neutral label (「団員」).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from sqlmodel import select

from core.access import Need, allows
from models import Member, WaterSource
from models.enums import Function, Level
from services.base import Tx, scoped
from services.crypto import DecryptionError
from services.event_labels import target_label

MEMBER = "member"
WATER_SOURCE = "water_source"

Target = tuple[str, str]  # (target_type, target_id) as the audit record stores them


def target_names(tx: Tx, targets: Iterable[Target]) -> dict[Target, str]:
    """The name of each target the viewer may see, keyed as given; others (unknown ids,
    another brigade's, or data the viewer may not read) are left out."""
    wanted: dict[str, dict[uuid.UUID, set[str]]] = {MEMBER: {}, WATER_SOURCE: {}}
    for target_type, target_id in targets:
        if target_type in wanted and (uid := as_uuid(target_id)) is not None:
            wanted[target_type].setdefault(uid, set()).add(target_id)
    found = {
        MEMBER: _members(tx, set(wanted[MEMBER])),
        WATER_SOURCE: _water_sources(tx, set(wanted[WATER_SOURCE])),
    }
    return {
        (target_type, original): name
        for target_type, names in found.items()
        for uid, name in names.items()
        for original in wanted[target_type][uid]
    }


def target_text(target_type: str, target_id: str, name: str = "") -> str:
    """How the log shows a target: its name when resolved, else the type's label, with the id
    only when it is not an internal UUID (an event's 連番, a service's endpoint)."""
    label = target_label(target_type)
    if name:
        return f"{label} {name}"
    if target_id and as_uuid(target_id) is None:
        return f"{label} {target_id}" if label else target_id
    return label


def _members(tx: Tx, ids: set[uuid.UUID]) -> dict[uuid.UUID, str]:
    if not ids:
        return {}
    rows = tx.session.exec(scoped(select(Member), tx.actor).where(Member.id.in_(ids))).all()
    return {m.id: f"{m.member_code}　{member_name(tx, m)}".strip() for m in rows if may_see(tx, m)}


def may_see(tx: Tx, member: Member) -> bool:
    """Whether the viewer may read this member's name: 団員名簿 閲覧 (for their 所属, where the
    grant is narrowed to it). Others see the member code only."""
    return allows(tx.actor, Need(Function.ROSTER, Level.VIEW, unit=member.affiliation))


def _water_sources(tx: Tx, ids: set[uuid.UUID]) -> dict[uuid.UUID, str]:
    if not ids or not allows(tx.actor, Need(Function.WATER_SOURCES, Level.VIEW)):
        return {}
    rows = tx.session.exec(
        scoped(select(WaterSource.id, WaterSource.code, WaterSource.kind), tx.actor).where(
            WaterSource.id.in_(ids)
        )
    ).all()
    return {r.id: f"{r.code}（{r.kind}）" for r in rows}


def member_name(tx: Tx, member: Member) -> str:
    """The member's name in clear, "" when it cannot be decrypted."""
    try:
        return tx.cipher.member_name(member)
    except DecryptionError:
        return ""  # the brigade's data key is gone: the member code still identifies them


def as_uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None
