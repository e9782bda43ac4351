"""The routing engine's side of calls: a call arriving at a closed queue, or waiting past the
queue's max wait, leaves it for voicemail or a forward (closed, with the reason on the
timeline and an ``interaction.changed`` telling call control where to take the caller) while a
chat in the same queue is treated as before; an attended transfer hands a call straight to the
agent consulted, moving the load counters; and a caller's place in the queue follows the order
routing rounds take them."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from atiende.conversations import service as conversations
from atiende.conversations.models import Channel, InteractionStatus, Message, MessageDirection
from atiende.core.clock import TestClock
from atiende.core.db import Database, Scope
from atiende.core.errors import AtiendeError
from atiende.core.events import EventRecord
from atiende.jobs.models import Job
from atiende.routing import service as routing
from atiende.routing.models import (
    Agent,
    ClosedAction,
    MaxWaitAction,
    Queue,
    Schedule,
)
from atiende.tenancy.models import Tenant
from factories import make_tenant
from routing_factories import arrive, counters_match_truth, get, make_agent, make_queue

FORWARD = "+525512345678"
CLOSED_MESSAGE = "Abrimos a las nueve."


# --- helpers ---------------------------------------------------------------------------------


async def _never_open(db: Database, tenant: Tenant) -> uuid.UUID:
    """A schedule with no opening hours: a queue using it is always closed."""
    async with db.session(Scope.tenant(tenant.id)) as session:
        never = Schedule(name="never", time_zone="UTC", weekly={}, created_at=db.clock.now())
        session.add(never)
    return never.id


async def _closed_queue(db: Database, tenant: Tenant, **fields: Any) -> Queue:
    return await make_queue(db, tenant, schedule_id=await _never_open(db, tenant), **fields)


async def _entries(
    db: Database, tenant: Tenant, interaction_id: uuid.UUID
) -> list[tuple[str, dict[str, Any]]]:
    async with db.session(Scope.tenant(tenant.id), read_only=True) as session:
        return [
            (e.type, dict(e.data)) for e in await conversations.timeline(session, interaction_id)
        ]


async def _changes(db: Database, tenant: Tenant, interaction_id: uuid.UUID) -> list[dict[str, Any]]:
    """The ``interaction.changed`` events logged for the interaction, in order."""
    async with db.session(Scope.system(), read_only=True) as session:
        rows = await session.scalars(
            select(EventRecord)
            .where(EventRecord.type == "interaction.changed", EventRecord.tenant_id == tenant.id)
            .order_by(EventRecord.id)
        )
        return [r.data for r in rows if r.data["interaction_id"] == str(interaction_id)]


async def _outbound(db: Database, tenant: Tenant, interaction_id: uuid.UUID) -> list[str]:
    async with db.session(Scope.tenant(tenant.id), read_only=True) as session:
        bodies = await session.scalars(
            select(Message.body).where(
                Message.interaction_id == interaction_id,
                Message.direction == MessageDirection.outbound,
            )
        )
        return list(bodies)


async def _max_wait_jobs(db: Database, interaction_id: uuid.UUID) -> list[Job]:
    async with db.session(Scope.system(), read_only=True) as session:
        jobs = await session.scalars(select(Job).where(Job.kind == routing.MAX_WAIT_JOB))
        return [j for j in jobs if j.payload.get("interaction_id") == str(interaction_id)]


async def _loads(db: Database, tenant: Tenant, *agent_ids: uuid.UUID) -> list[int]:
    async with db.session(Scope.tenant(tenant.id), read_only=True) as session:
        loads = []
        for agent_id in agent_ids:
            agent = await session.get(Agent, agent_id)
            assert agent is not None
            loads.append(agent.voice_load)
        return loads


def _error_code(error: pytest.ExceptionInfo[AtiendeError]) -> str | None:
    return getattr(error.value, "error_code", None)


# --- closed hours ----------------------------------------------------------------------------


async def test_a_call_at_a_closed_voicemail_queue_is_closed_for_voicemail(
    app: Any, db: Database
) -> None:
    tenant = await make_tenant(db)
    queue = await _closed_queue(db, tenant, closed_action=ClosedAction.voicemail)
    await make_agent(db, tenant, queue)  # someone is there: still nobody is offered the call
    call_id = await arrive(db, tenant, queue, channel=Channel.voice)

    interaction = await get(db, tenant, call_id)
    assert interaction.status is InteractionStatus.closed
    assert interaction.closed_at is not None
    assert (interaction.queue_id, interaction.agent_id) == (queue.id, None)
    assert interaction.first_enqueued_at == interaction.closed_at
    entries = await _entries(db, tenant, call_id)
    assert [kind for kind, _ in entries] == ["created", "closed"]
    assert entries[-1][1] == {"reason": "voicemail", "because": "closed", "queue_id": str(queue.id)}
    changes = await _changes(db, tenant, call_id)
    assert [c["change"] for c in changes if c["change"] != "created"] == ["voicemail"]
    (voicemail,) = [c for c in changes if c["change"] == "voicemail"]
    assert (voicemail["status"], voicemail["queue_id"], voicemail["agent_id"]) == (
        "closed",
        str(queue.id),
        None,
    )
    assert await _max_wait_jobs(db, call_id) == []
    assert await counters_match_truth(db, tenant)


async def test_a_call_at_a_closed_forwarding_queue_is_closed_for_the_forward_number(
    app: Any, db: Database
) -> None:
    tenant = await make_tenant(db)
    queue = await _closed_queue(
        db, tenant, closed_action=ClosedAction.forward, forward_number=FORWARD
    )
    call_id = await arrive(db, tenant, queue, channel=Channel.voice)

    interaction = await get(db, tenant, call_id)
    assert (interaction.status, interaction.queue_id) == (InteractionStatus.closed, queue.id)
    assert interaction.closed_at is not None
    kind, data = (await _entries(db, tenant, call_id))[-1]
    assert kind == "closed"
    assert data == {
        "reason": "forward",
        "because": "closed",
        "queue_id": str(queue.id),
        "number": FORWARD,
    }
    changes = [c["change"] for c in await _changes(db, tenant, call_id)]
    assert changes[-1] == "forward"
    assert "voicemail" not in changes


async def test_a_call_at_a_closed_queue_that_forwards_nowhere_keeps_waiting(
    app: Any, db: Database
) -> None:
    tenant = await make_tenant(db)
    queue = await _closed_queue(db, tenant, closed_action=ClosedAction.forward)
    call_id = await arrive(db, tenant, queue, channel=Channel.voice)

    interaction = await get(db, tenant, call_id)
    assert (interaction.status, interaction.queue_id) == (InteractionStatus.queued, queue.id)
    assert interaction.closed_at is None
    assert [kind for kind, _ in await _entries(db, tenant, call_id)] == ["created", "queued"]
    changes = [c["change"] for c in await _changes(db, tenant, call_id)]
    assert "forward" not in changes
    assert changes[-1] == "queued"


async def test_a_call_at_a_closed_queue_with_a_message_hears_it_and_a_chat_gets_the_text(
    app: Any, db: Database
) -> None:
    tenant = await make_tenant(db)
    queue = await _closed_queue(
        db,
        tenant,
        channels=["voice", "webchat"],
        closed_action=ClosedAction.auto_reply,
        closed_message=CLOSED_MESSAGE,
        message_prompt="sound:custom/closed",
    )
    call_id = await arrive(db, tenant, queue, channel=Channel.voice)
    chat_id = await arrive(db, tenant, queue)

    call = await get(db, tenant, call_id)
    assert call.status is InteractionStatus.closed
    assert (await _entries(db, tenant, call_id))[-1] == (
        "closed",
        {"reason": "message", "because": "closed", "queue_id": str(queue.id)},
    )
    assert [c["change"] for c in await _changes(db, tenant, call_id)][-1] == "message"
    assert await _outbound(db, tenant, call_id) == []  # a caller is not sent text
    assert (await get(db, tenant, chat_id)).status is InteractionStatus.queued
    assert await _outbound(db, tenant, chat_id) == [CLOSED_MESSAGE]


async def test_a_call_at_a_closed_auto_reply_queue_without_a_message_waits_with_music(
    app: Any, db: Database
) -> None:
    tenant = await make_tenant(db)
    queue = await _closed_queue(
        db, tenant, closed_action=ClosedAction.auto_reply, closed_message=CLOSED_MESSAGE
    )
    call_id = await arrive(db, tenant, queue, channel=Channel.voice)
    assert (await get(db, tenant, call_id)).status is InteractionStatus.queued
    assert await _outbound(db, tenant, call_id) == []


async def test_a_chat_at_a_closed_voicemail_queue_gets_the_closed_message_and_waits(
    app: Any, db: Database
) -> None:
    tenant = await make_tenant(db)
    queue = await _closed_queue(
        db, tenant, closed_action=ClosedAction.voicemail, closed_message=CLOSED_MESSAGE
    )
    chat_id = await arrive(db, tenant, queue, channel=Channel.webchat)

    interaction = await get(db, tenant, chat_id)
    assert (interaction.status, interaction.queue_id) == (InteractionStatus.queued, queue.id)
    assert interaction.closed_at is None
    assert await _outbound(db, tenant, chat_id) == [CLOSED_MESSAGE]
    assert "closed" not in [kind for kind, _ in await _entries(db, tenant, chat_id)]
    assert "voicemail" not in [c["change"] for c in await _changes(db, tenant, chat_id)]


# --- max wait --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "reason", "extra"),
    [
        (MaxWaitAction.voicemail, "voicemail", {}),
        (MaxWaitAction.forward, "forward", {"number": FORWARD}),
        (MaxWaitAction.message, "message", {}),
    ],
)
async def test_a_call_waiting_past_the_max_wait_leaves_the_queue_that_way(
    app: Any,
    db: Database,
    clock: TestClock,
    action: MaxWaitAction,
    reason: str,
    extra: dict[str, Any],
) -> None:
    tenant = await make_tenant(db)
    overflow = await make_queue(db, tenant, name="overflow")
    queue = await make_queue(
        db,
        tenant,
        max_wait_seconds=90,
        max_wait_action=action,
        forward_number=FORWARD,
        message_prompt="sound:custom/busy",
        overflow_queue_id=overflow.id,  # calls still leave by the action, not to it
    )
    call_id = await arrive(db, tenant, queue, channel=Channel.voice)
    (job,) = await _max_wait_jobs(db, call_id)
    clock.advance(91)
    async with db.session(Scope.tenant(tenant.id)) as session:
        assert await routing.overflow_if_waiting(session, call_id, job.payload["enqueued_at"])

    interaction = await get(db, tenant, call_id)
    assert (interaction.status, interaction.queue_id) == (InteractionStatus.closed, queue.id)
    assert interaction.closed_at is not None
    kinds = [kind for kind, _ in await _entries(db, tenant, call_id)]
    assert kinds == ["created", "queued", "closed"]
    assert (await _entries(db, tenant, call_id))[-1][1] == {
        "reason": reason,
        "because": "max_wait",
        "queue_id": str(queue.id),
        **extra,
    }
    assert [c["change"] for c in await _changes(db, tenant, call_id)][-1] == reason


async def test_the_max_wait_job_leaves_a_call_that_moved_on_alone(app: Any, db: Database) -> None:
    tenant = await make_tenant(db)
    queue = await make_queue(
        db, tenant, max_wait_seconds=90, max_wait_action=MaxWaitAction.voicemail
    )
    call_id = await arrive(db, tenant, queue, channel=Channel.voice)
    (job,) = await _max_wait_jobs(db, call_id)
    async with db.session(Scope.tenant(tenant.id)) as session:
        assert not await routing.overflow_if_waiting(session, call_id, "2000-01-01T00:00:00")
    async with db.session(Scope.tenant(tenant.id)) as session:
        assert await routing.abandon(session, call_id)
    async with db.session(Scope.tenant(tenant.id)) as session:
        assert not await routing.overflow_if_waiting(session, call_id, job.payload["enqueued_at"])
    assert (await get(db, tenant, call_id)).status is InteractionStatus.abandoned
    assert "closed" not in [kind for kind, _ in await _entries(db, tenant, call_id)]


async def test_a_chat_waiting_past_a_voicemail_max_wait_overflows(
    app: Any, db: Database, clock: TestClock
) -> None:
    tenant = await make_tenant(db)
    overflow = await make_queue(db, tenant, name="overflow")
    queue = await make_queue(
        db,
        tenant,
        max_wait_seconds=90,
        max_wait_action=MaxWaitAction.voicemail,
        overflow_queue_id=overflow.id,
    )
    chat_id = await arrive(db, tenant, queue, channel=Channel.webchat)
    (job,) = await _max_wait_jobs(db, chat_id)
    clock.advance(91)
    async with db.session(Scope.tenant(tenant.id)) as session:
        assert await routing.overflow_if_waiting(session, chat_id, job.payload["enqueued_at"])

    interaction = await get(db, tenant, chat_id)
    assert (interaction.status, interaction.queue_id) == (InteractionStatus.queued, overflow.id)
    assert interaction.closed_at is None
    entries = await _entries(db, tenant, chat_id)
    assert [kind for kind, _ in entries] == ["created", "queued", "overflowed", "queued"]
    assert entries[2][1] == {"reason": "max_wait", "from_queue_id": str(queue.id)}
    assert entries[3][1]["reason"] == "overflow"


async def test_a_chat_waiting_past_a_voicemail_max_wait_stays_without_an_overflow_queue(
    app: Any, db: Database, clock: TestClock
) -> None:
    tenant = await make_tenant(db)
    queue = await make_queue(
        db, tenant, max_wait_seconds=90, max_wait_action=MaxWaitAction.voicemail
    )
    chat_id = await arrive(db, tenant, queue, channel=Channel.webchat)
    before = await get(db, tenant, chat_id)
    assert before.enqueued_at is not None
    clock.advance(91)
    async with db.session(Scope.tenant(tenant.id)) as session:
        moved = await routing.overflow_if_waiting(session, chat_id, before.enqueued_at.isoformat())
    assert moved is False

    after = await get(db, tenant, chat_id)
    assert (after.status, after.queue_id, after.enqueued_at) == (
        InteractionStatus.queued,
        queue.id,
        before.enqueued_at,
    )
    assert [kind for kind, _ in await _entries(db, tenant, chat_id)] == ["created", "queued"]


async def test_enqueueing_schedules_the_max_wait_job_for_calls_that_would_leave_by_voicemail(
    app: Any, db: Database
) -> None:
    tenant = await make_tenant(db)
    queue = await make_queue(
        db, tenant, max_wait_seconds=90, max_wait_action=MaxWaitAction.voicemail
    )
    call_id = await arrive(db, tenant, queue, channel=Channel.voice)
    chat_id = await arrive(db, tenant, queue, channel=Channel.webchat)

    call = await get(db, tenant, call_id)
    assert call.enqueued_at is not None
    (job,) = await _max_wait_jobs(db, call_id)
    assert job.tenant_id == tenant.id
    assert job.payload == {
        "interaction_id": str(call_id),
        "enqueued_at": call.enqueued_at.isoformat(),
    }
    assert job.run_at == call.enqueued_at + timedelta(seconds=90)
    # A chat there has nowhere to go at max wait (no overflow queue): no job.
    assert await _max_wait_jobs(db, chat_id) == []


# --- attended transfer: handing over ---------------------------------------------------------


async def _call_taken_by(db: Database, tenant: Tenant) -> tuple[Queue, uuid.UUID, uuid.UUID]:
    """A voice queue where calls are answered at once; a call taken by its only agent."""
    queue = await make_queue(db, tenant, channels=["voice"], auto_accept=True)
    first = await make_agent(db, tenant, queue)
    call_id = await arrive(db, tenant, queue, channel=Channel.voice)
    assert (await get(db, tenant, call_id)).agent_id == first
    return queue, first, call_id


async def test_hand_over_gives_the_call_to_the_agent_consulted_at_once(
    app: Any, db: Database
) -> None:
    tenant = await make_tenant(db)
    _, first, call_id = await _call_taken_by(db, tenant)
    second = await make_agent(db, tenant)
    assert await _loads(db, tenant, first, second) == [1, 0]

    async with db.session(Scope.tenant(tenant.id)) as session:
        handed = await routing.hand_over(session, call_id, second, actor_id=first)
        assert handed.agent_id == second

    interaction = await get(db, tenant, call_id)
    assert (interaction.status, interaction.agent_id) == (InteractionStatus.assigned, second)
    assert await _loads(db, tenant, first, second) == [0, 1]
    entries = await _entries(db, tenant, call_id)
    assert [kind for kind, _ in entries[-2:]] == ["transferred", "assigned"]
    assert entries[-2][1] == {
        "to_agent_id": str(second),
        "from_agent_id": str(first),
        "attended": True,
    }
    assert [c["change"] for c in await _changes(db, tenant, call_id)][-1] == "assigned"
    assert await counters_match_truth(db, tenant)


async def test_hand_over_to_an_agent_without_room_is_refused_and_changes_nothing(
    app: Any, db: Database
) -> None:
    tenant = await make_tenant(db)
    _, first, call_id = await _call_taken_by(db, tenant)
    # The second agent is already on a call of their own.
    busy_queue = await make_queue(db, tenant, channels=["voice"], auto_accept=True)
    second = await make_agent(db, tenant, busy_queue)
    other_call = await arrive(db, tenant, busy_queue, channel=Channel.voice)
    assert (await get(db, tenant, other_call)).agent_id == second
    before = await _entries(db, tenant, call_id)

    with pytest.raises(AtiendeError) as refused:
        async with db.session(Scope.tenant(tenant.id)) as session:
            await routing.hand_over(session, call_id, second, actor_id=first)
    assert _error_code(refused) == "agent_at_capacity"
    assert refused.value.status_code == 409

    interaction = await get(db, tenant, call_id)
    assert (interaction.status, interaction.agent_id) == (InteractionStatus.assigned, first)
    assert await _loads(db, tenant, first, second) == [1, 1]
    assert await _entries(db, tenant, call_id) == before
    assert await counters_match_truth(db, tenant)


async def test_hand_over_of_a_call_nobody_has_is_refused(app: Any, db: Database) -> None:
    tenant = await make_tenant(db)
    queue = await make_queue(db, tenant, channels=["voice"])
    agent = await make_agent(db, tenant, available=False)
    call_id = await arrive(db, tenant, queue, channel=Channel.voice)
    assert (await get(db, tenant, call_id)).status is InteractionStatus.queued

    with pytest.raises(AtiendeError) as refused:
        async with db.session(Scope.tenant(tenant.id)) as session:
            await routing.hand_over(session, call_id, agent, actor_id=None)
    assert _error_code(refused) == "interaction_not_assigned"
    assert refused.value.status_code == 409
    interaction = await get(db, tenant, call_id)
    assert (interaction.status, interaction.agent_id) == (InteractionStatus.queued, None)
    assert await _loads(db, tenant, agent) == [0]


# --- place in the queue ----------------------------------------------------------------------


async def test_the_place_in_the_queue_puts_priority_first_then_the_longest_waiting(
    app: Any, db: Database, clock: TestClock
) -> None:
    tenant = await make_tenant(db)
    queue = await make_queue(db, tenant, channels=["voice"])
    other = await make_queue(db, tenant, channels=["voice"])
    oldest = await arrive(db, tenant, queue, channel=Channel.voice)
    clock.advance(10)
    middle = await arrive(db, tenant, queue, channel=Channel.voice)
    clock.advance(10)
    urgent = await arrive(db, tenant, queue, channel=Channel.voice)
    clock.advance(10)
    await arrive(db, tenant, other, channel=Channel.voice)  # another queue: not counted
    async with db.session(Scope.tenant(tenant.id)) as session:
        (await conversations.get_interaction(session, urgent)).priority = 5

    async with db.session(Scope.tenant(tenant.id), read_only=True) as session:
        places = {
            interaction_id: await routing.position_in_queue(
                session, await conversations.get_interaction(session, interaction_id)
            )
            for interaction_id in (oldest, middle, urgent)
        }
    assert places == {urgent: 1, oldest: 2, middle: 3}

    # Whoever leaves the queue no longer counts for those behind.
    async with db.session(Scope.tenant(tenant.id)) as session:
        assert await routing.abandon(session, urgent)
    async with db.session(Scope.tenant(tenant.id), read_only=True) as session:
        assert (
            await routing.position_in_queue(
                session, await conversations.get_interaction(session, middle)
            )
            == 2
        )


# --- the estimated wait announced to callers ---------------------------------------------------


async def test_the_recent_wait_of_a_queue_averages_the_last_hours_answered_interactions(
    app: Any, db: Database, clock: TestClock
) -> None:
    tenant = await make_tenant(db)
    queue = await make_queue(db, tenant, channels=["voice"])
    other = await make_queue(db, tenant, channels=["voice"])
    async with db.session(Scope.tenant(tenant.id), read_only=True) as session:
        assert await routing.recent_wait_seconds(session, queue.id) is None  # nobody answered
    ids = [await arrive(db, tenant, queue, channel=Channel.voice) for _ in range(3)]
    other_id = await arrive(db, tenant, other, channel=Channel.voice)
    instant = clock.now()
    async with db.session(Scope.tenant(tenant.id)) as session:
        for interaction_id, waited, taken_ago in (
            (ids[0], 60, 10),  # answered after a minute, ten seconds ago
            (ids[1], 180, 600),  # three minutes, ten minutes ago
            (ids[2], 30, 2 * 3600),  # two hours ago: too old to count
            (other_id, 900, 10),  # another queue's
        ):
            interaction = await conversations.get_interaction(session, interaction_id)
            interaction.first_enqueued_at = instant - timedelta(seconds=taken_ago + waited)
            interaction.assigned_at = instant - timedelta(seconds=taken_ago)
    async with db.session(Scope.tenant(tenant.id), read_only=True) as session:
        assert await routing.recent_wait_seconds(session, queue.id) == pytest.approx(120)
        assert await routing.recent_wait_seconds(session, other.id) == pytest.approx(900)


def test_a_waiting_caller_hears_their_place_the_estimated_wait_and_thanks() -> None:
    from atiende.voice.calls import announcement_media, wait_minutes

    assert announcement_media(1, None) == ("sound:queue-youarenext", "sound:queue-thankyou")
    assert announcement_media(3, 150) == (
        "sound:queue-thereare",
        "number:3",
        "sound:queue-callswaiting",
        "sound:queue-holdtime",
        "number:3",  # 2.5 minutes, said as 3
        "sound:queue-minutes",
        "sound:queue-thankyou",
    )
    assert announcement_media(2, 20)[3:] == (
        "sound:queue-holdtime",
        "sound:queue-less-than",
        "number:1",
        "sound:queue-minute",
        "sound:queue-thankyou",
    )
    assert [wait_minutes(s) for s in (None, 0, 59, 60, 89, 90, 600)] == [
        None,
        0,
        0,
        1,
        1,
        2,
        10,
    ]
