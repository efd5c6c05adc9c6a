"""Writing a planned member import in bulk: inserts, updates, retirements and role links."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import bindparam, delete, insert, update

from models import Member, MemberRole
from models.base import new_id
from models.enums import MemberStatus
from services import members
from services.base import Tx
from services.imports import (
    ProgressCounter,
    RowPlan,
    RowStatus,
)
from services.member_import.model import CHUNK, MEMBER_ROLES, MEMBERS, Prepared

# ---------------------------------------------------------------------------
# Writing


def prepared_for(tx: Tx, plan: RowPlan) -> Prepared:
    prepared = getattr(plan, "prepared", None)
    if plan.status == RowStatus.INVALID or prepared is None:
        raise ValueError(f"row {plan.row} is not a valid plan; nothing is written")
    if prepared.context.tx is not tx:
        raise ValueError("plans must come from plan_members in the same transaction")
    return prepared


def insert_members(tx: Tx, new: list[Prepared], now: Any, ticker: ProgressCounter) -> None:
    for start in range(0, len(new), CHUNK):
        rows, links = [], []
        for p in new[start : start + CHUNK]:
            member_id = new_id()
            rows.append(
                {
                    "id": member_id,
                    "tenant_id": tx.tenant_id,
                    "member_code": p.code,
                    "version": 1,
                    "created_at": now,
                    **_columns(tx, member_id, p, now),
                }
            )
            links += _links(tx, member_id, p.values["role_ids"])
        _execute(tx, insert(MEMBERS), rows)
        _execute(tx, insert(MEMBER_ROLES), links)
        ticker.advance(len(rows))


def update_members(tx: Tx, changed: list[Prepared], now: Any, ticker: ProgressCounter) -> None:
    for start in range(0, len(changed), CHUNK):
        chunk = changed[start : start + CHUNK]
        rows = [
            {
                "member_id": p.current.id,
                "version": p.current.version + 1,
                **_columns(tx, p.current.id, p, now),
            }
            for p in chunk
            if p.current is not None
        ]
        _execute(tx, update(MEMBERS).where(MEMBERS.c.id == bindparam("member_id")), rows)
        relinked = [p for p in chunk if set(p.before_roles) != set(p.values["role_ids"])]
        if relinked:
            ids = [p.current.id for p in relinked if p.current is not None]
            tx.session.exec(
                delete(MemberRole)
                .where(MemberRole.tenant_id == tx.tenant_id, MemberRole.member_id.in_(ids))
                .execution_options(synchronize_session=False)
            )
            links = [
                link
                for p in relinked
                if p.current is not None
                for link in _links(tx, p.current.id, p.values["role_ids"])
            ]
            _execute(tx, insert(MEMBER_ROLES), links)
        ticker.advance(len(chunk))


def retire_members(tx: Tx, member_ids: list[uuid.UUID], now: Any, ticker: ProgressCounter) -> None:
    for start in range(0, len(member_ids), CHUNK):
        chunk = member_ids[start : start + CHUNK]
        tx.session.exec(
            update(Member)
            .where(Member.tenant_id == tx.tenant_id, Member.id.in_(chunk))
            .values(status=MemberStatus.RETIRED, version=Member.version + 1, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        ticker.advance(len(chunk))


def _execute(tx: Tx, statement: Any, rows: list[dict[str, Any]]) -> None:
    """Core executemany on the unit of work's connection (the ORM adds nothing here)."""
    if rows:
        tx.session.connection().execute(statement, rows)


def _columns(tx: Tx, member_id: uuid.UUID, p: Prepared, now: Any) -> dict[str, Any]:
    values = p.values
    return {
        "rank_id": values["rank_id"],
        "affiliation": values["affiliation"],
        "status": str(values["status"]),
        "joined_on": values["joined_on"],
        "updated_at": now,
        **members.personal_columns(tx, member_id, values),
    }


def _links(tx: Tx, member_id: uuid.UUID, role_ids: list[uuid.UUID]) -> list[dict[str, Any]]:
    return [
        {"tenant_id": tx.tenant_id, "member_id": member_id, "role_id": role_id}
        for role_id in role_ids
    ]
