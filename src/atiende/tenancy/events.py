from __future__ import annotations

import uuid

from atiende.core.events import DomainEvent


class TenantCreated(DomainEvent):
    event_type = "tenant.created"
    tenant_id: uuid.UUID
    slug: str


class TenantUpdated(DomainEvent):
    event_type = "tenant.updated"
    tenant_id: uuid.UUID
    changes: list[str]
