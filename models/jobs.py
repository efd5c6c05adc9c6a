"""The job worker's records (`cli.py worker`, services/jobs): one row per scheduled job and one
per running worker instance. Platform tables: no brigade's data, no tenant_id."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from models.base import created_field, optional_time_field


class JobRun(SQLModel, table=True):
    """When a job last started, succeeded and failed, and which worker runs it now. A run in
    progress has lease_until set (cleared when it ends); on SQLite the lease is what keeps other
    workers out, on PostgreSQL an advisory lock does and the lease is only information."""

    __tablename__ = "job_run"

    name: str = Field(primary_key=True, max_length=40)
    last_start: datetime | None = optional_time_field()
    last_success: datetime | None = optional_time_field()
    last_error_at: datetime | None = optional_time_field()
    # the exception's class name (and a message only where it cannot carry data)
    last_error: str = Field(default="", max_length=200)
    runs: int = 0
    failures: int = 0
    lease_owner: str = Field(default="", max_length=80)
    lease_until: datetime | None = optional_time_field()


class WorkerHeartbeat(SQLModel, table=True):
    """A worker instance's sign of life: /readyz and the metrics read the newest seen_at."""

    __tablename__ = "worker_heartbeat"

    worker_id: str = Field(primary_key=True, max_length=80)
    host: str = Field(default="", max_length=100)
    pid: int = 0
    started_at: datetime = created_field()
    seen_at: datetime = created_field()
