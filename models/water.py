"""Water sources (消防水利), their inspections (点検) and the brigade's water-map settings."""

from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlalchemy import JSON, Column, Index, UniqueConstraint
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
    supply_m3_per_min: float | None = None
    supply_minutes: int | None = None
    main_diameter_mm: int | None = None
    hydrant_type: str | None = Field(default=None, max_length=10)
    drop_m: float | None = None
    depth_m: float | None = None
    grade_override: str | None = Field(default=None, max_length=10)
    grade_override_reason: str = Field(default="", max_length=200)
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


class WaterSourceCreate(SQLModel):
    """Input as typed: lengths and choices are checked by the service, in Japanese."""

    code: str
    kind: str
    ownership: str = "public"
    latitude: float | None = None
    longitude: float | None = None
    address: str = ""
    unit: str = ""
    capacity_m3: float | None = None
    supply_m3_per_min: float | None = None
    supply_minutes: int | None = None
    main_diameter_mm: int | None = None
    hydrant_type: str | None = None
    drop_m: float | None = None
    depth_m: float | None = None
    grade_override: str | None = None
    grade_override_reason: str = ""
    status: str = "使用可"
    memo: str = ""
    last_inspected_on: date | None = None
    inspection_interval_days: int = 365


class WaterSourceUpdate(SQLModel):
    code: str | None = None
    kind: str | None = None
    ownership: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    address: str | None = None
    unit: str | None = None
    capacity_m3: float | None = None
    supply_m3_per_min: float | None = None
    supply_minutes: int | None = None
    main_diameter_mm: int | None = None
    hydrant_type: str | None = None
    drop_m: float | None = None
    depth_m: float | None = None
    grade_override: str | None = None
    grade_override_reason: str | None = None
    status: str | None = None
    memo: str | None = None
    inspection_interval_days: int | None = None


class WaterSourcePublic(WaterSourceBase):
    """A source as pages see it, with what follows from its figures and inspections."""

    id: uuid.UUID
    version: int
    updated_at: datetime
    grade: str  # 基準 / 参考, after any override
    computed_grade: str
    grade_reasons: list[str] = []
    grade_overridden: bool = False
    next_inspection_due: date | None = None
    overdue: bool = False
    outside_area: bool = False


class WaterInspection(SQLModel, table=True):
    """One inspection. The inspector is a member (by id) or, for outsiders, an encrypted name;
    the notes are encrypted too."""

    __tablename__ = "water_inspection"
    __table_args__ = (Index("ix_water_inspection_source", "tenant_id", "water_source_id"),)

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    tenant_id: uuid.UUID = Field(foreign_key="tenant.id", index=True)
    water_source_id: uuid.UUID = Field(foreign_key="water_source.id")
    inspected_on: date
    inspector_member_id: uuid.UUID | None = Field(default=None, foreign_key="member.id")
    inspector_name_enc: str = ""
    result: str = Field(max_length=20)
    notes_enc: str = ""
    created_at: datetime = created_field()


class WaterInspectionCreate(SQLModel):
    inspected_on: date
    result: str
    inspector_member_id: uuid.UUID | None = None
    inspector_name: str = ""
    notes: str = ""


class WaterInspectionPublic(SQLModel):
    id: uuid.UUID
    water_source_id: uuid.UUID
    inspected_on: date
    result: str
    inspector_member_id: uuid.UUID | None
    inspector: str  # the member's or the outsider's name; "" when the viewer may not see it
    notes: str
    created_at: datetime


class BrigadeSettings(SQLModel, table=True):
    """Per-brigade settings of the water map; no row means the defaults."""

    __tablename__ = "brigade_settings"

    tenant_id: uuid.UUID = Field(foreign_key="tenant.id", primary_key=True)
    coverage_radius_m: int = 120
    unit_coverage_radii: dict[str, int] = Field(
        default_factory=dict, sa_column=Column(JSON, nullable=False)
    )
    area_center_lat: float | None = None
    area_center_lon: float | None = None
    area_radius_km: float = 10.0
    # safe bulk changes (services/bulk_guard.py): above min(rows, percent % of the records) an
    # import or restore that retires or deletes needs the brigade's name typed
    bulk_confirm_rows: int = Field(default=10, sa_column_kwargs={"server_default": "10"})
    bulk_confirm_percent: int = Field(default=10, sa_column_kwargs={"server_default": "10"})
    version: int = 1
    updated_at: datetime = created_field()
