"""Automatic backups taken before a bulk change (#17): an import or a restore that retires,
suspends or deletes records first keeps the brigade's data as a backup ZIP, for 35 days, so that
復元 can undo it in one step (「元に戻す」). The ZIP is sealed with the brigade's data key
(core/personal.py: pre_change_backup.data), like every other personal field."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Column, Index, Text
from sqlmodel import Field, SQLModel

from models.base import created_field, new_id


class PreChangeBackup(SQLModel, table=True):
    __tablename__ = "pre_change_backup"
    __table_args__ = (Index("ix_pre_change_backup_tenant_created", "tenant_id", "created_at"),)

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    tenant_id: uuid.UUID = Field(foreign_key="tenant.id")
    created_at: datetime = created_field()
    reason: str = Field(max_length=200)  # "CSV一括登録（団員）: 退団 120名"
    actor_label: str = Field(default="", max_length=100)
    data_enc: str = Field(default="", sa_column=Column(Text, nullable=False))  # sealed base64 ZIP
    bytes: int = 0  # of the ZIP
    sha256: str = Field(max_length=64)  # of the ZIP
