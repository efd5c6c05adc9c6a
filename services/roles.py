"""Roles (役職): defined by each brigade, each mapped to a rank."""

from __future__ import annotations

import uuid

from sqlmodel import select

from auth.actor import Actor
from models import Rank, Role
from models.enums import Function, Level
from services.base import scoped, transaction
from services.errors import ValidationError
from services.permissions import add_role
from services.validation import clean_text


def create_role(actor: Actor, *, name: str, rank_id: uuid.UUID) -> uuid.UUID:
    with transaction(actor, Function.PERMISSIONS, Level.EDIT, "role.create") as tx:
        name = clean_text(name)
        errors: dict[str, str] = {}
        if not name or len(name) > 40:
            errors["name"] = "役職名を40文字以内で入力してください。"
        elif tx.session.exec(scoped(select(Role.id), actor).where(Role.name == name)).first():
            errors["name"] = f"役職「{name}」は既にあります。"
        rank = tx.get(Rank, rank_id)
        if rank is None:
            errors["rank_id"] = "階級を選択してください。"
        if errors:
            raise ValidationError(errors)
        role = add_role(tx.session, tx.tenant_id, name, rank)
        tx.session.flush()
        tx.audit(
            "role.create",
            target_type="role",
            target_id=role.id,
            details={"name": name, "rank": rank.name},
        )
        return role.id
