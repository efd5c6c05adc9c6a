"""既読 (#22): when a called member first and last opened the incident's page. LINE tells a
bot nothing about reads, so the page opened from the call-out's link is the receipt."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Column, UniqueConstraint
from sqlmodel import Field, SQLModel

from models.base import UTCDateTime, new_id


class IncidentRead(SQLModel, table=True):
    __tablename__ = "incident_read"
    __table_args__ = (UniqueConstraint("tenant_id", "incident_id", "member_id"),)

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    tenant_id: uuid.UUID = Field(foreign_key="tenant.id")
    incident_id: uuid.UUID = Field(foreign_key="incident.id")
    member_id: uuid.UUID = Field(foreign_key="member.id")
    first_read_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    last_read_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
