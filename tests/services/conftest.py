"""Fixtures shared by the service tests."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest

from models import AuditEvent
from tests.factories import audit_events, last_audit_seq, make_tenant


class AuditWatch:
    """The audit events a tenant gains after the watch starts."""

    def __init__(self, engine, tenant_id: uuid.UUID) -> None:
        self.engine, self.tenant_id = engine, tenant_id
        self.start = last_audit_seq(engine, tenant_id)

    def new(self, category: str | None = None) -> list[AuditEvent]:
        return audit_events(self.engine, self.tenant_id, after_seq=self.start, category=category)


@pytest.fixture
def tenant(engine) -> uuid.UUID:
    return make_tenant()


@pytest.fixture
def watch(engine) -> Callable[[uuid.UUID], AuditWatch]:
    return lambda tenant_id: AuditWatch(engine, tenant_id)
