"""Recording and reading the audit log. The only writer of ``audit_log``."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from atiende.audit.models import AuditEntry
from atiende.core.db import now
from atiende.core.errors import NotFound
from atiende.identity.actor import Actor


async def record(
    session: AsyncSession,
    actor: Actor,
    action: str,
    *,
    resource_type: str,
    resource_id: uuid.UUID | str | None,
    tenant_id: uuid.UUID | None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> AuditEntry:
    entry = AuditEntry(
        tenant_id=tenant_id,
        actor_id=actor.user_id,
        actor_email=actor.email or f"<{actor.via}>",
        action=action,
        resource_type=resource_type,
        resource_id=None if resource_id is None else str(resource_id),
        before=before,
        after=after,
        occurred_at=now(session),
    )
    session.add(entry)
    await session.flush()
    return entry


async def list_entries(
    session: AsyncSession,
    *,
    limit: int = 100,
    before_id: uuid.UUID | None = None,
    action: str | None = None,
) -> Sequence[AuditEntry]:
    """Newest first, within the session's scope."""
    query = select(AuditEntry).order_by(AuditEntry.occurred_at.desc(), AuditEntry.id.desc())
    if action:
        query = query.where(AuditEntry.action == action)
    if before_id is not None:
        anchor = await get_entry(session, before_id)
        query = query.where(
            or_(
                AuditEntry.occurred_at < anchor.occurred_at,
                and_(AuditEntry.occurred_at == anchor.occurred_at, AuditEntry.id < anchor.id),
            )
        )
    return (await session.scalars(query.limit(limit))).all()


async def get_entry(session: AsyncSession, entry_id: uuid.UUID) -> AuditEntry:
    entry = await session.get(AuditEntry, entry_id)
    if entry is None:
        raise NotFound("audit_entry")
    return entry
