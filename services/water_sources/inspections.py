"""Inspections (点検) of water sources: recording, listing, and the inspector choices."""

from __future__ import annotations

import uuid
from collections.abc import Mapping

from sqlmodel import select

from core.access import Need, allows
from core.actor import Actor
from core.personal import personal_fields
from core.timefmt import today_jst
from models import Member
from models.enums import (
    Function,
    Level,
    MemberStatus,
)
from models.water import (
    WaterInspection,
    WaterInspectionCreate,
    WaterInspectionPublic,
)
from services import validation as v
from services import water_rules
from services.base import Tx, scoped, transaction
from services.errors import ValidationError
from services.water_sources.model import (
    EARLIEST_DATE,
    TABLE,
    InspectorOption,
    load_source,
    save_source,
)

# -- inspections -------------------------------------------------------------------------------


def record_inspection(
    actor: Actor, source_id: uuid.UUID, *, data: WaterInspectionCreate
) -> WaterInspectionPublic:
    """An inspection on or after the last one sets the source's status and last inspection date;
    an older one is only added to the history."""
    with transaction(
        actor, Need(Function.INSPECTIONS, Level.EDIT), action="water_source.inspect"
    ) as tx:
        source = load_source(tx, source_id)
        values = validated_inspection(tx, data)
        inspection = WaterInspection(
            tenant_id=tx.tenant_id,
            water_source_id=source.id,
            inspected_on=values["inspected_on"],
            inspector_member_id=values["inspector_member_id"],
            result=values["result"],
        )
        seal_inspection(tx, inspection, values)
        tx.session.add(inspection)
        before = {"status": source.status, "last_inspected_on": source.last_inspected_on}
        latest = source.last_inspected_on
        if latest is None or values["inspected_on"] >= latest:
            source.last_inspected_on = values["inspected_on"]
            source.status = water_rules.INSPECTION_RESULTS[values["result"]]
        save_source(tx, source)
        tx.audit(
            "water_source.inspect",
            target_type=TABLE,
            target_id=source.id,
            details={
                "code": source.code,
                "inspection_id": str(inspection.id),
                "inspected_on": values["inspected_on"],
                "result": values["result"],
                "inspector_member_id": str(values["inspector_member_id"] or ""),
                "before": before,
                "after": {"status": source.status, "last_inspected_on": source.last_inspected_on},
            },
            personal={"inspector_name": values["inspector_name"], "notes": values["notes"]},
        )
        returned = _inspection_public(tx, inspection, {})
        tx.commit()
        return returned


def list_inspections(actor: Actor, source_id: uuid.UUID) -> list[WaterInspectionPublic]:
    """Newest first. Inspectors' names only for those who may view inspections."""
    with transaction(
        actor,
        Need(Function.WATER_SOURCES, Level.VIEW),
        action="water_source.inspections",
        read_only=True,
    ) as tx:
        source = load_source(tx, source_id)
        rows = tx.session.exec(
            scoped(select(WaterInspection), actor)
            .where(WaterInspection.water_source_id == source.id)
            .order_by(WaterInspection.inspected_on.desc(), WaterInspection.created_at.desc())
        ).all()
        names: dict[uuid.UUID, str] = {}
        return [_inspection_public(tx, row, names) for row in rows]


def inspector_choices(actor: Actor) -> list[InspectorOption]:
    """Active members, for the inspector picker of whoever records inspections; only the
    actor himself unless he may view the roster (names and codes are roster data, #15
    finding 7)."""
    with transaction(
        actor,
        Need(Function.INSPECTIONS, Level.EDIT),
        action="water_source.inspectors",
        read_only=True,
    ) as tx:
        query = scoped(select(Member), actor).where(Member.status == MemberStatus.ACTIVE)
        if not allows(tx.actor, Need(Function.ROSTER, Level.VIEW)):
            query = query.where(Member.id == tx.actor.member_id)
        rows = tx.session.exec(query.order_by(Member.member_code)).all()
        return [InspectorOption(m.id, f"{m.member_code}　{tx.cipher.member_name(m)}") for m in rows]


def validated_inspection(tx: Tx, data: WaterInspectionCreate) -> dict:
    values = {
        "inspected_on": data.inspected_on,
        "result": data.result,
        "inspector_member_id": data.inspector_member_id,
        "inspector_name": v.clean_text(data.inspector_name),
        "notes": (data.notes or "").strip(),
    }
    errors = {}
    if not EARLIEST_DATE <= data.inspected_on <= today_jst():
        errors["inspected_on"] = "点検日は1950年以降、今日までの日付で入力してください。"
    if data.result not in water_rules.INSPECTION_RESULTS:
        errors["result"] = "点検結果を選択肢から選んでください。"
    chosen = data.inspector_member_id
    if chosen is not None and (
        tx.get(Member, chosen) is None
        or (chosen != tx.actor.member_id and not allows(tx.actor, Need(Function.ROSTER)))
    ):
        errors["inspector_member_id"] = "点検者（団員）が見つかりません。"
    for name, label, limit in (
        ("inspector_name", "点検者の氏名", 50),
        ("notes", "点検の記録", 1000),
    ):
        if len(values[name]) > limit:
            errors[name] = f"{label}は{limit}文字以内で入力してください。"
        elif "\x00" in values[name]:
            errors[name] = f"{label}に使用できない文字（NUL）が含まれています。"
    if errors:
        raise ValidationError(errors)
    return values


def _inspection_public(
    tx: Tx, row: WaterInspection, names: dict[uuid.UUID, str]
) -> WaterInspectionPublic:
    inspector = ""
    personal = inspection_personal(tx, row)
    if allows(tx.actor, Need(Function.INSPECTIONS, Level.VIEW)):
        if row.inspector_member_id is not None:
            if row.inspector_member_id not in names:
                member = tx.get(Member, row.inspector_member_id)
                names[row.inspector_member_id] = tx.cipher.member_name(member) if member else ""
            inspector = names[row.inspector_member_id]
        if outsider := personal["inspector_name"]:
            inspector = "・".join(filter(None, (inspector, outsider)))
    return WaterInspectionPublic(
        id=row.id,
        water_source_id=row.water_source_id,
        inspected_on=row.inspected_on,
        result=row.result,
        inspector_member_id=row.inspector_member_id,
        inspector=inspector,
        notes=personal["notes"],
        created_at=row.created_at,
    )


# An outside inspector's name (not a member) and the notes.
INSPECTION_PERSONAL = personal_fields("water_inspection", encrypted=True)


def seal_inspection(tx: Tx, row: WaterInspection, values: Mapping[str, str]) -> None:
    """An inspection's personal fields, stored encrypted; empty stays empty (most inspections
    have neither an outside inspector nor notes)."""
    for f in INSPECTION_PERSONAL:
        value = values[f.name]
        stored = tx.cipher.encrypt(value, field=f.aad, row_id=row.id) if value else ""
        setattr(row, f.column, stored)


def inspection_personal(tx: Tx, row: WaterInspection) -> dict[str, str]:
    """The decrypted personal fields of an inspection, by name."""
    found = {}
    for f in INSPECTION_PERSONAL:
        stored = getattr(row, f.column)
        found[f.name] = tx.cipher.decrypt(stored, field=f.aad, row_id=row.id) if stored else ""
    return found
