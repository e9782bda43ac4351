"""Every event type has a schema, and events are published only after commit."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import delete, select

from atiende.core.bus import InProcessBus
from atiende.core.db import Database, Scope
from atiende.core.events import EVENT_TYPES, EventEnvelope, EventRecord, emit, emit_many
from atiende.identity.events import UserCreated


def test_every_event_type_round_trips_through_json() -> None:
    import atiende.models  # noqa: F401 - registers every domain's events

    assert {
        "tenant.created",
        "tenant.updated",
        "user.created",
        "user.updated",
        "user.deleted",
    } <= set(EVENT_TYPES)
    for event_type, model in EVENT_TYPES.items():
        assert event_type.count(".") >= 1
        assert model.model_json_schema()["type"] == "object"


async def test_events_are_published_only_when_the_unit_of_work_commits(database_url: str) -> None:
    bus = InProcessBus()
    received: list[EventEnvelope] = []
    bus.subscribe(received.append)
    db = Database(database_url, publisher=bus)
    try:

        async def failing_unit_of_work() -> None:
            async with db.session(Scope.system()) as session:
                await emit(session, UserCreated(user_id=uuid.uuid4(), role="agent"))
                raise RuntimeError("rolled back")

        with pytest.raises(RuntimeError):
            await failing_unit_of_work()
        assert received == []
        async with db.session(Scope.system()) as session:
            await emit(session, UserCreated(user_id=uuid.uuid4(), role="agent"))
            assert received == [], "not before the commit"
        assert [e.type for e in received] == ["user.created"]
        async with db.session(Scope.system()) as session:
            logged = (await session.scalars(select(EventRecord))).all()
        assert [r.id for r in logged] == [received[0].id]
    finally:
        await db.dispose()


class BrokenBus(InProcessBus):
    async def publish(self, envelope: EventEnvelope) -> None:
        raise ConnectionError("redis is down")


async def test_a_failed_publish_does_not_undo_or_fail_a_committed_change(database_url: str) -> None:
    db = Database(database_url, publisher=BrokenBus())
    try:
        async with db.session(Scope.system()) as session:
            await emit(session, UserCreated(user_id=uuid.uuid4(), role="agent"))
        async with db.session(Scope.system()) as session:
            assert len((await session.scalars(select(EventRecord))).all()) == 1
    finally:
        await db.dispose()


async def test_a_batch_of_events_gets_increasing_ids_never_reused(database_url: str) -> None:
    """``emit_many``'s envelopes carry the ids the log stored, in order; ids keep growing
    after the log is pruned (clients resume from them)."""
    db = Database(database_url)
    try:

        async def emit_batch(size: int) -> list[EventEnvelope]:
            async with db.session(Scope.system()) as session:
                users = [UserCreated(user_id=uuid.uuid4(), role="agent") for _ in range(size)]
                return await emit_many(session, users)

        first = await emit_batch(5)
        second = await emit_batch(3)
        single = await emit_batch(1)
        ids = [e.id for e in first + second + single]
        assert ids == sorted(ids)
        assert len(set(ids)) == 9
        async with db.session(Scope.system()) as session:
            stored = {r.id: r.data["user_id"] for r in await session.scalars(select(EventRecord))}
        assert stored == {e.id: e.data["user_id"] for e in first + second + single}

        async with db.session(Scope.system()) as session:  # pruning empties the log
            await session.execute(delete(EventRecord))
        after = await emit_batch(4)
        assert min(e.id for e in after) > max(ids)
        assert [e.id for e in after] == sorted(e.id for e in after)
    finally:
        await db.dispose()
