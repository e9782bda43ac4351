"""Domain events: typed, written to an append-only log in the same transaction as the change
that caused them, and published on the bus only after that transaction commits.

The log gives every event a monotonically increasing id, which is what websocket clients
resume from after a reconnect.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, ClassVar, cast

from pydantic import BaseModel, ConfigDict
from sqlalchemy import JSON, BigInteger, Integer, String, Table, insert, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from atiende.core.db import PUBLISHER_KEY, Base, after_commit, now, session_scope

EVENT_TYPES: dict[str, type[DomainEvent]] = {}


class DomainEvent(BaseModel):
    """Base of every event; subclasses set ``event_type`` and declare their fields."""

    model_config = ConfigDict(frozen=True)
    event_type: ClassVar[str]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        event_type = cls.__dict__.get("event_type")
        if event_type:
            if event_type in EVENT_TYPES:
                raise ValueError(f"duplicate event type {event_type!r}")
            EVENT_TYPES[event_type] = cls


class EventEnvelope(BaseModel):
    """What travels on the bus and over websockets."""

    model_config = ConfigDict(frozen=True)

    id: int
    type: str
    tenant_id: uuid.UUID | None
    occurred_at: datetime
    data: dict[str, Any]
    # None: every user of the tenant. A list: only those users, plus supervisors and admins
    # (conversation content goes only to the agent working it).
    audience: list[uuid.UUID] | None = None


class EventRecord(Base):
    """The append-only event log. Read only by the realtime hub, which filters by tenant."""

    __tablename__ = "event_log"
    # Ids must never be reused, even after pruning: clients resume from them.
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    tenant_id: Mapped[uuid.UUID | None] = mapped_column(index=True)
    type: Mapped[str] = mapped_column(String(100))
    occurred_at: Mapped[datetime]
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    audience: Mapped[list[str] | None] = mapped_column(JSON)

    def envelope(self) -> EventEnvelope:
        return EventEnvelope(
            id=self.id,
            type=self.type,
            tenant_id=self.tenant_id,
            occurred_at=self.occurred_at,
            data=self.data,
            audience=None if self.audience is None else [uuid.UUID(a) for a in self.audience],
        )


async def emit(
    session: AsyncSession,
    event: DomainEvent,
    *,
    tenant_id: uuid.UUID | None = None,
    audience: Sequence[uuid.UUID] | None = None,
) -> EventEnvelope:
    """Record ``event`` in this unit of work; it is published once the unit commits.

    The tenant defaults to the session's scope. ``audience`` narrows who receives it (see
    ``EventEnvelope.audience``). The publisher is whatever the application put in
    ``session.info`` (the bus); without one the event is only logged.
    """
    envelopes = await emit_many(
        session, [event], tenant_id=tenant_id, audiences=None if audience is None else [audience]
    )
    return envelopes[0]


EVENT_LOG = cast(Table, EventRecord.__table__)


async def emit_many(
    session: AsyncSession,
    events: Sequence[DomainEvent],
    *,
    tenant_id: uuid.UUID | None = None,
    audiences: Sequence[Sequence[uuid.UUID] | None] | None = None,
) -> list[EventEnvelope]:
    """``emit`` for a batch: one INSERT … RETURNING, published in order after the commit.
    ``audiences``, when given, has one entry per event."""
    if not events:
        return []
    scope = session_scope(session)
    if tenant_id is None and scope is not None:
        tenant_id = scope.tenant_id
    instant = now(session)
    per_event = list(audiences) if audiences is not None else [None] * len(events)
    rows: list[dict[str, Any]] = [
        {
            "tenant_id": tenant_id,
            "type": event.event_type,
            "occurred_at": instant,
            "data": event.model_dump(mode="json"),
            "audience": None if audience is None else sorted({str(a) for a in audience}),
        }
        for event, audience in zip(events, per_event, strict=True)
    ]
    await session.flush()  # keep the log in the order of the unit of work's other writes
    envelopes = [
        EventEnvelope(
            id=new_id,
            type=row["type"],
            tenant_id=tenant_id,
            occurred_at=instant,
            data=row["data"],
            audience=None if row["audience"] is None else [uuid.UUID(a) for a in row["audience"]],
        )
        for row, new_id in zip(rows, await _insert_events(session, rows), strict=True)
    ]
    publisher = session.info.get(PUBLISHER_KEY)
    if publisher is not None:

        async def publish_all() -> None:
            for envelope in envelopes:
                await publisher.publish(envelope)

        after_commit(session, publish_all)
    return envelopes


async def _insert_events(session: AsyncSession, rows: list[dict[str, Any]]) -> list[int]:
    """Insert the rows; their ids, in the rows' order.

    PostgreSQL: one INSERT … RETURNING, in parameter order. SQLite cannot promise the order
    of RETURNING rows, so SQLAlchemy would send one INSERT per row (9,200 statements in a
    big routing round, a third of its time); there the ids are given here instead, after
    the log's sequence: a writing unit of work holds the database's write lock from its
    first statement (``BEGIN IMMEDIATE``), so nothing can be inserted in between, and
    ``AUTOINCREMENT`` moves its sequence past the largest id written, so none is reused.
    """
    connection = await session.connection()
    if connection.dialect.name != "sqlite" or len(rows) == 1:
        result = await session.execute(
            insert(EVENT_LOG).returning(EVENT_LOG.c.id, sort_by_parameter_order=True), rows
        )
        return list(result.scalars().all())
    last = await connection.scalar(_SQLITE_LAST_EVENT_ID)
    ids = list(range(int(last or 0) + 1, int(last or 0) + 1 + len(rows)))
    await connection.execute(
        insert(EVENT_LOG), [{**row, "id": new_id} for row, new_id in zip(rows, ids, strict=True)]
    )
    return ids


# The largest id the log has ever given (``sqlite_sequence`` remembers it after pruning).
_SQLITE_LAST_EVENT_ID = text(
    "SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'event_log'), 0), "
    "coalesce((SELECT max(id) FROM event_log), 0))"
)
