"""Saved column mappings (列の対応付け) for importing water sources from other layouts: a brigade
names a mapping once and picks it again for the next file of the same kind."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import select

from core.access import Need
from core.actor import Actor
from formats.opendata import ColumnMapping
from models.base import utcnow
from models.enums import Function, Level
from models.import_mapping import ImportMapping
from services import validation as v
from services.base import scoped, transaction
from services.errors import NotFound, ValidationError

ENTITY = "water_sources"
MAPPING_NAME_MAX = 60
MAPPING_COLUMNS_MAX = 200
MAPPING = (Need(Function.CSV_IMPORT, Level.EDIT),)


@dataclass(frozen=True)
class SavedMapping:
    id: uuid.UUID
    name: str
    mapping: ColumnMapping
    created_by: str
    updated_at: datetime


def list_mappings(actor: Actor) -> list[SavedMapping]:
    with transaction(actor, *MAPPING, action="import_mapping.list", read_only=True) as tx:
        rows = tx.session.exec(
            scoped(select(ImportMapping), tx.actor)
            .where(ImportMapping.entity == ENTITY)
            .order_by(ImportMapping.name)
        ).all()
        return [_saved(row) for row in rows]


def save_mapping(actor: Actor, *, name: str, mapping: ColumnMapping) -> SavedMapping:
    """Save under a name; saving again under the same name replaces the mapping."""
    with transaction(actor, *MAPPING, action="import_mapping.save") as tx:
        name = _mapping_name(name, mapping)
        row = tx.session.exec(
            scoped(select(ImportMapping), tx.actor).where(
                ImportMapping.entity == ENTITY, ImportMapping.name == name
            )
        ).one_or_none()
        created = row is None
        if row is None:
            row = ImportMapping(
                tenant_id=tx.tenant_id, entity=ENTITY, name=name, created_by=actor.label
            )
        row.mapping = mapping.to_json()
        row.updated_at = utcnow()
        tx.session.add(row)
        tx.session.flush()
        tx.audit(
            "import_mapping.save",
            target_type="import_mapping",
            target_id=row.id,
            details={"name": name, "entity": ENTITY, "created": created, "after": row.mapping},
        )
        returned = _saved(row)
        tx.commit()
        return returned


def delete_mapping(actor: Actor, mapping_id: uuid.UUID) -> None:
    with transaction(actor, *MAPPING, action="import_mapping.delete") as tx:
        row = tx.get(ImportMapping, mapping_id)
        if row is None or row.entity != ENTITY:
            raise NotFound("保存した対応付けが見つかりません。")
        details = {"name": row.name, "entity": ENTITY, "before": row.mapping}
        tx.session.delete(row)
        tx.session.flush()
        tx.audit(
            "import_mapping.delete",
            target_type="import_mapping",
            target_id=mapping_id,
            details=details,
        )
        tx.commit()


def _mapping_name(name: str, mapping: ColumnMapping) -> str:
    cleaned = v.clean_text(name)
    errors = {}
    if not cleaned:
        errors["name"] = "対応付けの名前を入力してください。"
    elif len(cleaned) > MAPPING_NAME_MAX or v.has_control_chars(cleaned):
        errors["name"] = f"名前は{MAPPING_NAME_MAX}文字以内で、制御文字を含めないでください。"
    if problems := mapping.problems():
        errors["mapping"] = " ".join(problems)
    elif len(mapping.columns) > MAPPING_COLUMNS_MAX or any(
        len(text) > 200 for text in (*mapping.columns, *mapping.kinds, str(mapping.sheet))
    ):
        errors["mapping"] = f"対応付けは{MAPPING_COLUMNS_MAX}列まで、見出しは200文字以内です。"
    if errors:
        raise ValidationError(errors)
    return cleaned


def _saved(row: ImportMapping) -> SavedMapping:
    return SavedMapping(
        row.id, row.name, ColumnMapping.from_json(row.mapping), row.created_by, row.updated_at
    )
