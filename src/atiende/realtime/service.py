"""Reading the event log for a subscriber, and keeping it to a bounded size."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy import ColumnElement, delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from atiende.core.db import now
from atiende.core.events import EventEnvelope, EventRecord

EVENT_RETENTION = timedelta(days=7)
BACKLOG_LIMIT = 1000


def visible_to(
    envelope: EventEnvelope,
    tenant_id: uuid.UUID | None,
    topics: Sequence[str],
    *,
    user_id: uuid.UUID | None = None,
    sees_everything: bool = False,
) -> bool:
    """A tenant's users see that tenant's events; vendor staff see vendor-level events.
    An event with an audience (conversation content) reaches only those users, and those who
    see everything (supervisors, admins). ``topics`` are event-type prefixes (``user``,
    ``tenant.updated``); empty means all."""
    if envelope.tenant_id != tenant_id:
        return False
    if envelope.audience is not None and not sees_everything and user_id not in envelope.audience:
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
    rows = await session.scalars(
        select(EventRecord)
        .where(_visible_condition(tenant_id), EventRecord.id > after_id)
        .order_by(EventRecord.id)
        .limit(limit)
    )
    return [row.envelope() for row in rows]


def _visible_condition(tenant_id: uuid.UUID | None) -> ColumnElement[bool]:
    if tenant_id is None:
        return EventRecord.tenant_id.is_(None)
    return EventRecord.tenant_id == tenant_id


async def latest_event_id(session: AsyncSession, *, tenant_id: uuid.UUID | None) -> int:
    """The newest id the subscriber could see (never the installation's overall volume)."""
    value = await session.scalar(
        select(func.max(EventRecord.id)).where(_visible_condition(tenant_id))
    )
    return int(value or 0)


async def history_is_complete_after(session: AsyncSession, after_id: int) -> bool:
    """False when retention pruned events the client has not seen: it must reload."""
    oldest = await session.scalar(select(func.min(EventRecord.id)))
    if oldest is None:
        # Nothing retained: only a client that has seen nothing is sure to have missed nothing.
        return after_id <= 0
    return after_id >= int(oldest) - 1


async def prune(session: AsyncSession) -> int:
    result = await session.execute(
        delete(EventRecord).where(EventRecord.occurred_at < now(session) - EVENT_RETENTION)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
