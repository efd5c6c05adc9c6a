"""Notices from the platform operator to every brigade: planned maintenance, service updates and
incidents (white paper: maintenance and changes are announced on the site in advance)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlmodel import Field, SQLModel

from models.base import created_field, new_id, optional_time_field


class MaintenanceNotice(SQLModel, table=True):
    """A platform table: no tenant_id, readable by every signed-in user, written by operators."""

    __tablename__ = "maintenance_notice"

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    kind: str = Field(max_length=20)
    title: str = Field(max_length=100)
    body: str = Field(default="", max_length=2000)
    starts_at: datetime = created_field()
    ends_at: datetime | None = optional_time_field()
    published_at: datetime = created_field()
    published_by: str = Field(default="", max_length=100)
    withdrawn_at: datetime | None = optional_time_field()
