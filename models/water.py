"""Water sources (消防水利)."""

from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlalchemy import UniqueConstraint
from sqlmodel import Field, SQLModel

from models.base import created_field, new_id


class WaterSourceBase(SQLModel):
    code: str = Field(max_length=30)
    kind: str = Field(max_length=20)
    ownership: str = Field(default="public", max_length=20)
    latitude: float | None = None
    longitude: float | None = None
    address: str = Field(default="", max_length=200)
    unit: str = Field(default="", max_length=100)
    capacity_m3: float | None = None
    main_diameter_mm: int | None = None
    hydrant_type: str | None = Field(default=None, max_length=10)
    drop_m: float | None = None
    depth_m: float | None = None
    grade_override: str | None = Field(default=None, max_length=10)
    status: str = Field(default="使用可", max_length=10)
    memo: str = Field(default="", max_length=500)
    last_inspected_on: date | None = None
    inspection_interval_days: int = 365


class WaterSource(WaterSourceBase, table=True):
    __tablename__ = "water_source"
    __table_args__ = (UniqueConstraint("tenant_id", "code"),)

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    tenant_id: uuid.UUID = Field(foreign_key="tenant.id", index=True)
    version: int = 1
    created_at: datetime = created_field()
    updated_at: datetime = created_field()
