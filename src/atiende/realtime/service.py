"""Reading the event log for a subscriber, and keeping it to a bounded size."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from atiende.core.db import now
from atiende.core.events import EventEnvelope, EventRecord

EVENT_RETENTION = timedelta(days=7)
BACKLOG_LIMIT = 1000


def visible_to(envelope: EventEnvelope, tenant_id: uuid.UUID | None, topics: Sequence[str]) -> bool:
    """A tenant's users see that tenant's events; vendor staff see vendor-level events.
    ``topics`` are event-type prefixes (``user``, ``tenant.updated``); empty means all."""
    if envelope.tenant_id != tenant_id:
        return False
    return not topics or any(
        envelope.type == topic or envelope.type.startswith(topic + ".") for topic in topics
    )


async def events_after(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID | None,
    after_id: int,
    limit: int = BACKLOG_LIMIT,
) -> list[EventEnvelope]:
    """The subscriber's events with ids above ``after_id``, oldest first.

    The event log is the one table read across the tenant-scoping hook, because it also holds
    vendor-level events; the tenant filter is applied here, in this single function.
    """
    condition = (
        EventRecord.tenant_id.is_(None) if tenant_id is None else EventRecord.tenant_id == tenant_id
    )
    rows = await session.scalars(
        select(EventRecord)
        .where(condition, EventRecord.id > after_id)
        .order_by(EventRecord.id)
        .limit(limit)
    )
    return [row.envelope() for row in rows]


async def latest_event_id(session: AsyncSession) -> int:
    value = await session.scalar(select(EventRecord.id).order_by(EventRecord.id.desc()).limit(1))
    return int(value or 0)


async def prune(session: AsyncSession) -> int:
    result = await session.execute(
        delete(EventRecord).where(EventRecord.occurred_at < now(session) - EVENT_RETENTION)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
