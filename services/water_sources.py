"""Water-source (消防水利) registry services."""

from __future__ import annotations

from sqlmodel import select

from auth.actor import Actor
from models import WaterSource
from models.enums import (
    HYDRANT_KINDS,
    OWNERSHIPS,
    WATER_SOURCE_KINDS,
    WATER_SOURCE_STATUSES,
    Function,
    Level,
)
from models.water import WaterSourceBase
from services.base import scoped, transaction
from services.errors import ValidationError


def validate(item: WaterSourceBase) -> dict[str, str]:
    errors: dict[str, str] = {}
    if not item.code.strip():
        errors["code"] = "水利番号を入力してください。"
    if item.kind not in WATER_SOURCE_KINDS:
        errors["kind"] = f"種別「{item.kind}」は選択肢にありません。"
    if item.ownership not in OWNERSHIPS:
        errors["ownership"] = "公設・私設・指定水利のいずれかを選んでください。"
    if item.status not in WATER_SOURCE_STATUSES:
        errors["status"] = "状態は 使用可・使用不可・点検中 のいずれかです。"
    if (item.latitude is None) != (item.longitude is None):
        errors["latitude"] = "緯度と経度は両方入力してください。"
    elif item.latitude is not None and not (-90 <= item.latitude <= 90):
        errors["latitude"] = "緯度は -90〜90 の範囲で入力してください。"
    elif item.longitude is not None and not (-180 <= item.longitude <= 180):
        errors["longitude"] = "経度は -180〜180 の範囲で入力してください。"
    if item.kind not in HYDRANT_KINDS and (item.main_diameter_mm or item.hydrant_type):
        errors["main_diameter_mm"] = "管径と地上式・地下式は消火栓のみ入力できます。"
    if item.hydrant_type not in (None, "地上式", "地下式"):
        errors["hydrant_type"] = "地上式か地下式を選んでください。"
    return errors


def add_water_sources(actor: Actor, items: list[WaterSourceBase]) -> int:
    """Register several sources in one transaction: all of them or, on any error, none."""
    with transaction(actor, Function.WATER_SOURCES, Level.EDIT, "water_source.bulk_create") as tx:
        errors = {
            f"{i}:{field}": message
            for i, item in enumerate(items, start=1)
            for field, message in validate(item).items()
        }
        codes = [item.code for item in items]
        existing = set(
            tx.session.exec(
                scoped(select(WaterSource.code), actor).where(WaterSource.code.in_(codes))
            ).all()
        )
        seen: set[str] = set()
        for i, code in enumerate(codes, start=1):
            if code in existing or code in seen:
                errors[f"{i}:code"] = f"水利番号「{code}」が重複しています。"
            seen.add(code)
        if errors:
            raise ValidationError(errors)
        tx.session.add_all(
            WaterSource(tenant_id=tx.tenant_id, **item.model_dump()) for item in items
        )
        tx.audit(
            "water_source.bulk_create",
            target_type="water_source",
            details={"count": len(items)},
        )
        return len(items)
