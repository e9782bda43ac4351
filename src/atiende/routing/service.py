"""The routing engine at run time: queues in, offers out, agents' presence and work.

The only writer of ``agents`` (presence and counters), ``offers`` and ``agent_status_log``;
interactions change only through ``atiende.conversations.service`` helpers, so the timeline
and ``interaction.changed`` follow every move.

Concurrency: every step that can hand out or take back work (a routing round, accepting,
rejecting or expiring an offer, a transfer, closing, presence changes) first takes the
tenant's routing lock (``advisory_lock``; SQLite's write lock plays that role there). Within
it, an interaction moves out of ``queued`` or ``offered`` only through a conditional UPDATE
whose row count is checked, so no interaction is ever assigned twice, and agent load is
computed under the same lock, so no agent goes over capacity — also with several nodes.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, TypeVar, cast
from zoneinfo import ZoneInfo

from sqlalchemy import (
    ARRAY,
    Select,
    String,
    Table,
    Uuid,
    and_,
    any_,
    bindparam,
    column,
    func,
    insert,
    or_,
    select,
    union_all,
    update,
)
from sqlalchemy import cast as sql_cast
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from atiende.conversations import service as conversations
from atiende.conversations.events import InteractionChanged
from atiende.conversations.models import (
    Channel,
    Interaction,
    InteractionEvent,
    InteractionStatus,
    MessageDirection,
)
from atiende.core.db import (
    Database,
    Scope,
    advisory_lock,
    after_commit,
    database_of,
    now,
    require_tenant,
)
from atiende.core.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from atiende.core.events import DomainEvent, emit, emit_many
from atiende.identity.actor import Actor
from atiende.identity.models import Role, User
from atiende.jobs import service as jobs
from atiende.routing import strategies
from atiende.routing.events import AgentStateChanged, OfferClosed, OfferCreated
from atiende.routing.models import (
    Agent,
    AgentSkill,
    AgentStatusLog,
    BreakReason,
    ClosedAction,
    Disposition,
    Holiday,
    LicenceType,
    MaxWaitAction,
    Offer,
    OfferStatus,
    Presence,
    Queue,
    QueueMember,
    Schedule,
)
from atiende.tenancy.models import Tenant

log = logging.getLogger(__name__)

# After rejecting or letting an offer time out, an agent is skipped for that interaction for
# this long (FreeSWITCH's reject delay), so it goes to the next agent first.
REJECT_DELAY = timedelta(seconds=60)
MAX_TRANSFER_HOPS = 5
SUPERVISING = frozenset({Role.supervisor, Role.admin})

OFFER_TIMEOUT_JOB = "routing.offer_timeout"
MAX_WAIT_JOB = "routing.max_wait"
WRAP_UP_END_JOB = "routing.wrap_up_end"
SWEEP_JOB = "routing.sweep"
SWEEP_EVERY = timedelta(minutes=1)


# --- agents ---------------------------------------------------------------------------------


async def ensure_agent(
    session: AsyncSession,
    user_id: uuid.UUID,
    *,
    licence: LicenceType | str = LicenceType.omnichannel,
) -> Agent:
    """The user's agent profile, created (offline) on first use."""
    agent = await session.get(Agent, user_id)
    if agent is not None:
        return agent
    instant = now(session)
    licence = LicenceType(licence)
    agent = Agent(
        user_id=user_id,
        licence=licence,
        voice_capacity=1,
        chat_capacity=4 if licence is LicenceType.omnichannel else 0,
        presence=Presence.offline,
        presence_since=instant,
        idle_since=instant,
        no_answer_count=0,
        max_no_answer=3,
    )
    session.add(agent)
    await session.flush()
    return agent


async def get_agent(session: AsyncSession, agent_id: uuid.UUID) -> Agent:
    agent = await session.get(Agent, agent_id)
    if agent is None:
        raise NotFound("agent")
    return agent


def _may_act_for(actor: Actor, agent_id: uuid.UUID) -> bool:
    return actor.user_id == agent_id or actor.role in SUPERVISING


async def set_presence(
    session: AsyncSession,
    actor: Actor,
    agent_id: uuid.UUID,
    presence: Presence | str,
    break_reason_id: uuid.UUID | None = None,
) -> Agent:
    """An agent's own switch, or a supervisor forcing it. Going on break or offline hands
    back pending offers (the interactions return to the head of their queues)."""
    if not _may_act_for(actor, agent_id):
        raise NotFound("agent")
    presence = Presence(presence)
    tenant_id = require_tenant(session)
    await advisory_lock(session, _lock_key(tenant_id))
    agent = await get_agent(session, agent_id)
    if presence is Presence.on_break:
        if break_reason_id is None:
            raise ValidationFailed("A break needs a reason.", code="break_reason_required")
        reason = await session.get(BreakReason, break_reason_id)
        if reason is None or not reason.is_active:
            raise ValidationFailed("Unknown break reason.", code="break_reason_not_found")
    else:
        break_reason_id = None
    await _change_presence(session, agent, presence, break_reason_id, changed_by=actor.user_id)
    return agent


async def _change_presence(
    session: AsyncSession,
    agent: Agent,
    presence: Presence,
    break_reason_id: uuid.UUID | None,
    *,
    changed_by: uuid.UUID | None,
) -> None:
    instant = now(session)
    if agent.presence == presence and agent.break_reason_id == break_reason_id:
        return
    open_log = await session.scalar(
        select(AgentStatusLog).where(
            AgentStatusLog.agent_id == agent.user_id, AgentStatusLog.ended_at.is_(None)
        )
    )
    if open_log is not None:
        open_log.ended_at = instant
    session.add(
        AgentStatusLog(
            agent_id=agent.user_id,
            presence=presence,
            break_reason_id=break_reason_id,
            started_at=instant,
            changed_by=changed_by,
        )
    )
    agent.presence = presence
    agent.break_reason_id = break_reason_id
    agent.presence_since = instant
    if presence is Presence.available:
        agent.no_answer_count = 0
        if not any((await _held(session, agent.user_id)).values()):
            agent.idle_since = instant
        request_routing(session)
    else:
        await _hand_back_offers(session, agent.user_id)
    await session.flush()
    await emit(
        session,
        AgentStateChanged(
            agent_id=agent.user_id,
            presence=presence.value,
            break_reason_id=break_reason_id,
            no_answer_count=agent.no_answer_count,
            changed_by=changed_by,
        ),
    )


async def _hand_back_offers(session: AsyncSession, agent_id: uuid.UUID) -> None:
    pending = (
        await session.scalars(
            select(Offer).where(Offer.agent_id == agent_id, Offer.status == OfferStatus.pending)
        )
    ).all()
    for offer in pending:
        await _close_offer(session, offer, OfferStatus.cancelled)


# --- queueing ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class QueueCalendar:
    """What decides whether a queue is open: its schedule and the tenant's holidays."""

    weekly: dict[str, list[list[str]]] | None
    time_zone: str
    holidays: frozenset[date]

    def is_open(self, at: datetime) -> bool:
        if self.weekly is None:
            return True
        from atiende.routing.schedule import is_open

        return is_open(self.weekly, self.time_zone, self.holidays, at)


async def _calendars(
    session: AsyncSession, queues: Sequence[Queue]
) -> dict[uuid.UUID, QueueCalendar]:
    schedule_ids = {q.schedule_id for q in queues if q.schedule_id}
    schedules: dict[uuid.UUID, Schedule] = {}
    holidays: frozenset[date] = frozenset()
    if schedule_ids:
        schedules = {
            s.id: s
            for s in (
                await session.scalars(select(Schedule).where(Schedule.id.in_(schedule_ids)))
            ).all()
        }
        holidays = frozenset((await session.scalars(select(Holiday.day))).all())
    result = {}
    for queue in queues:
        schedule = schedules.get(queue.schedule_id) if queue.schedule_id else None
        result[queue.id] = QueueCalendar(
            weekly=schedule.weekly if schedule else None,
            time_zone=schedule.time_zone if schedule else "UTC",
            holidays=holidays,
        )
    return result


async def queue_is_open(session: AsyncSession, queue: Queue, at: datetime | None = None) -> bool:
    calendar = (await _calendars(session, [queue]))[queue.id]
    return calendar.is_open(at or now(session))


async def enqueue(
    session: AsyncSession,
    interaction: Interaction,
    queue_id: uuid.UUID,
    *,
    reason: str = "queued",
    _hops: int = 0,
) -> None:
    """Put an interaction in a queue (new, transferred or overflowing), applying the queue's
    closed-hours action and length limit, and route once the unit of work commits."""
    with session.no_autoflush:
        # A new arrival is still pending here: its row goes in once, already queued.
        queue = await session.get(Queue, queue_id)
    if queue is None:
        raise NotFound("queue")
    if interaction.channel.value not in queue.channels:
        raise ValidationFailed(
            f"Queue {queue.name!r} does not serve {interaction.channel.value}.",
            code="queue_channel_mismatch",
        )
    instant = now(session)
    if _hops < MAX_TRANSFER_HOPS:
        if not await queue_is_open(session, queue, instant):
            if queue.closed_action is ClosedAction.transfer and queue.closed_queue_id:
                await conversations.record(
                    session, interaction, "closed_transfer", to_queue_id=str(queue.closed_queue_id)
                )
                await enqueue(
                    session, interaction, queue.closed_queue_id, reason=reason, _hops=_hops + 1
                )
                return
            unattended = _unattended_action(queue, interaction, queue.closed_action)
            if unattended is not None:
                await leave_unattended(session, interaction, queue, unattended, "closed")
                return
            if (
                queue.closed_action in _REPLIES_WHEN_CLOSED
                and queue.closed_message
                and interaction.channel is not Channel.voice  # a caller is not sent text
            ):
                await conversations.add_message(
                    session,
                    interaction,
                    direction=MessageDirection.outbound,
                    author_kind="system",
                    body=queue.closed_message,
                    client_id=f"closed-reply:{queue.id}:{instant.date().isoformat()}",
                )
        if queue.max_queue_length is not None and queue.overflow_queue_id:
            waiting = await session.scalar(
                select(func.count())
                .select_from(Interaction)
                .where(
                    Interaction.queue_id == queue.id,
                    Interaction.status == InteractionStatus.queued,
                    Interaction.id != interaction.id,
                )
            )
            if (waiting or 0) >= queue.max_queue_length:
                await conversations.record(
                    session,
                    interaction,
                    "overflowed",
                    reason="queue_full",
                    from_queue_id=str(queue.id),
                )
                await enqueue(
                    session, interaction, queue.overflow_queue_id, reason=reason, _hops=_hops + 1
                )
                return
    interaction.queue_id = queue.id
    interaction.status = InteractionStatus.queued
    interaction.agent_id = None
    interaction.enqueued_at = instant
    interaction.first_enqueued_at = interaction.first_enqueued_at or instant
    await conversations.record(session, interaction, "queued", reason=reason, agent_id=None)
    if queue.max_wait_seconds and (
        queue.overflow_queue_id
        or _unattended_action(queue, interaction, queue.max_wait_action) is not None
    ):
        await jobs.schedule(
            session,
            MAX_WAIT_JOB,
            {"interaction_id": str(interaction.id), "enqueued_at": instant.isoformat()},
            run_at=instant + timedelta(seconds=queue.max_wait_seconds),
            tenant_id=interaction.tenant_id,
            dedupe_key=f"max-wait:{interaction.id}:{instant.isoformat()}",
        )
    await conversations.changed(session, interaction, "queued")
    request_routing(session)


#: Closed-hours actions that send a chat the closed message (voicemail and forward are for
#: calls; a chat in such a queue is answered as with auto_reply).
_REPLIES_WHEN_CLOSED = frozenset(
    {ClosedAction.auto_reply, ClosedAction.voicemail, ClosedAction.forward}
)


def _unattended_action(
    queue: Queue, interaction: Interaction, action: ClosedAction | MaxWaitAction
) -> str | None:
    """``message``, ``voicemail`` or ``forward`` when a call should leave ``queue`` that way
    (closed hours or max wait), else None: chats, other actions, a forward with no number, a
    message with no prompt."""
    if interaction.channel is not Channel.voice:
        return None
    if action in (ClosedAction.auto_reply, MaxWaitAction.message) and queue.message_prompt:
        return "message"
    if action in (ClosedAction.voicemail, MaxWaitAction.voicemail):
        return "voicemail"
    if action in (ClosedAction.forward, MaxWaitAction.forward) and queue.forward_number:
        return "forward"
    return None


async def leave_unattended(
    session: AsyncSession,
    interaction: Interaction,
    queue: Queue,
    action: str,
    why: str,
    *,
    number: str | None = None,
) -> None:
    """A call leaves the queue for a message, voicemail or a forward (``action``), because
    the queue is closed, the caller waited too long or chose it in a menu (``why``:
    ``closed``, ``max_wait``, ``ivr``): the interaction is closed with that reason, and the
    ``interaction.changed`` event (change ``message``, ``voicemail`` or ``forward``) tells
    call control to take the caller there. A forward goes to ``number``, else the queue's."""
    for offer in await _pending_offers(session, interaction.id):
        await _close_offer(session, offer, OfferStatus.cancelled)
    interaction.queue_id = queue.id
    interaction.status = InteractionStatus.closed
    interaction.agent_id = None
    interaction.closed_at = now(session)
    interaction.first_enqueued_at = interaction.first_enqueued_at or interaction.closed_at
    details: dict[str, Any] = {"reason": action, "because": why, "queue_id": str(queue.id)}
    if action == "forward":
        details["number"] = number or queue.forward_number
    await conversations.record(session, interaction, "closed", agent_id=None, **details)
    await conversations.changed(session, interaction, action)


async def position_in_queue(session: AsyncSession, interaction: Interaction) -> int:
    """A waiting interaction's place in its queue (1: next), in the order rounds take them:
    higher priority first, then the longest waiting."""
    if interaction.queue_id is None or interaction.enqueued_at is None:
        return 1
    ahead = await session.scalar(
        select(func.count())
        .select_from(Interaction)
        .where(
            Interaction.queue_id == interaction.queue_id,
            Interaction.status == InteractionStatus.queued,
            Interaction.id != interaction.id,
            or_(
                Interaction.priority > interaction.priority,
                and_(
                    Interaction.priority == interaction.priority,
                    Interaction.enqueued_at < interaction.enqueued_at,
                ),
            ),
        )
    )
    return (ahead or 0) + 1


#: How far back the estimated wait of a queue looks (the waits of callers answered lately).
RECENT_WAITS = timedelta(hours=1)


async def recent_wait_seconds(session: AsyncSession, queue_id: uuid.UUID) -> float | None:
    """The average wait, from entering the queue to an agent taking it, of the interactions
    of ``queue_id`` taken in the last hour; None when none was (no estimate to give)."""
    instant = now(session)
    rows = (
        await session.execute(
            select(Interaction.first_enqueued_at, Interaction.assigned_at).where(
                Interaction.queue_id == queue_id,
                Interaction.assigned_at >= instant - RECENT_WAITS,
                Interaction.first_enqueued_at.is_not(None),
            )
        )
    ).all()
    waits = [
        max(0.0, (taken - entered).total_seconds())
        for entered, taken in rows
        if entered is not None and taken is not None
    ]
    return sum(waits) / len(waits) if waits else None


async def hand_over(
    session: AsyncSession,
    interaction_id: uuid.UUID,
    agent_id: uuid.UUID,
    *,
    actor_id: uuid.UUID | None,
) -> Interaction:
    """An attended transfer completed: the agent consulted takes the call at once (they have
    talked already, so no offer), if they have room for it; the transferring agent is free."""
    tenant_id = require_tenant(session)
    await advisory_lock(session, _lock_key(tenant_id))
    interaction = await conversations.get_interaction(session, interaction_id)
    if interaction.status is not InteractionStatus.assigned:
        raise Conflict(
            "Only an assigned interaction can be handed over.", code="interaction_not_assigned"
        )
    target = await session.get(Agent, agent_id)
    if target is None:
        raise NotFound("agent")
    if interaction.channel.is_digital and target.licence is not LicenceType.omnichannel:
        raise ValidationFailed(
            "A voice-licence agent cannot take a digital interaction.", code="licence_mismatch"
        )
    pool = strategies.channel_class(interaction.channel.value)
    capacity = target.voice_capacity if pool == strategies.VOICE else target.chat_capacity
    if (await _held(session, agent_id)).get(pool, 0) >= capacity:
        raise Conflict("That agent has no free capacity.", code="agent_at_capacity")
    previous = interaction.agent_id
    changes = {(agent_id, pool): 1}
    if previous is not None:
        changes[(previous, pool)] = changes.get((previous, pool), 0) - 1
    await _bump(session, changes)
    await conversations.record(
        session,
        interaction,
        "transferred",
        actor_id=actor_id,
        to_agent_id=str(agent_id),
        from_agent_id=str(previous) if previous else None,
        attended=True,
    )
    await _assign(session, interaction, agent_id, actor_id=actor_id)
    if previous is not None and previous != agent_id:
        await _maybe_idle(session, previous)
    return interaction


async def abandon(
    session: AsyncSession, interaction_id: uuid.UUID, *, reason: str | None = None
) -> bool:
    """The customer left (hung up, closed the chat) before an agent took it; ``reason``
    (``visitor_ended``, ``visitor_left``, …) goes on the timeline entry. False, changing
    nothing, when it is no longer waiting."""
    tenant_id = require_tenant(session)
    await advisory_lock(session, _lock_key(tenant_id))
    interaction = await conversations.get_interaction(session, interaction_id)
    if interaction.status not in (InteractionStatus.queued, InteractionStatus.offered):
        return False
    # Abandoned before its offers are cancelled, so the last one does not requeue it.
    interaction.status = InteractionStatus.abandoned
    for offer in await _pending_offers(session, interaction.id):
        await _close_offer(session, offer, OfferStatus.cancelled)
    interaction.closed_at = now(session)
    details: dict[str, Any] = {"reason": reason} if reason else {}
    await conversations.record(session, interaction, "abandoned", agent_id=None, **details)
    await conversations.changed(session, interaction, "abandoned")
    return True


# --- routing rounds ---------------------------------------------------------------------------


def _lock_key(tenant_id: uuid.UUID) -> str:
    return f"routing:{tenant_id}"


@dataclass(frozen=True, slots=True)
class QueueSettings:
    """What a round applies of a queue besides its rules (``strategies.QueueRules``)."""

    channels: frozenset[str]
    auto_accept: bool = False
    offer_timeout_seconds: int = 30
    sticky_seconds: int = 0

    @classmethod
    def of(cls, queue: Queue) -> QueueSettings:
        return cls(
            channels=frozenset(queue.channels or ()),
            auto_accept=queue.auto_accept,
            offer_timeout_seconds=queue.offer_timeout_seconds,
            sticky_seconds=queue.sticky_seconds,
        )

    @property
    def pools(self) -> tuple[str, ...]:
        pools = []
        if "voice" in self.channels:
            pools.append(strategies.VOICE)
        if self.channels - {"voice"}:
            pools.append(strategies.CHAT)
        return tuple(pools)


@dataclass(frozen=True, slots=True)
class Snapshot:
    waiting: list[strategies.Waiting]
    queues: dict[uuid.UUID, strategies.QueueRules]
    agents: list[strategies.AgentView]
    settings: dict[uuid.UUID, QueueSettings]


async def _loads(
    session: AsyncSession, agent_ids: Sequence[uuid.UUID] | None = None
) -> dict[uuid.UUID, dict[str, int]]:
    """Work each agent holds, by capacity pool: assigned, in wrap-up, or offered."""
    loads: dict[uuid.UUID, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    held = select(Interaction.agent_id, Interaction.channel, func.count()).where(
        Interaction.status.in_([InteractionStatus.assigned, InteractionStatus.wrap_up])
    )
    offered = (
        select(Offer.agent_id, Interaction.channel, func.count())
        .join(Interaction, Interaction.id == Offer.interaction_id)
        .where(Offer.status == OfferStatus.pending)
    )
    if agent_ids is not None:
        held = held.where(Interaction.agent_id.in_(agent_ids))
        offered = offered.where(Offer.agent_id.in_(agent_ids))
    for query in (
        held.group_by(Interaction.agent_id, Interaction.channel),
        offered.group_by(Offer.agent_id, Interaction.channel),
    ):
        for agent_id, channel, count in (await session.execute(query)).all():
            if agent_id is not None:
                loads[agent_id][strategies.channel_class(Channel(channel).value)] += count
    return loads


async def snapshot(session: AsyncSession) -> Snapshot:
    """What a routing round decides on. Agents first: only queues where some available member
    has free capacity matter, and of their waiting interactions only as many as could be
    placed (the oldest, plus every prioritised one), so a long backlog that nobody can take
    costs nothing per round.

    Three reads, each a Core select returning plain rows: the queues with their schedules,
    the available agents with room together with their queues and skills, and the waiting
    interactions that could be placed together with their recent refusals."""
    instant = now(session)
    tenant_id = require_tenant(session)
    # Core statements on the unit of work's connection (plain rows, no ORM bookkeeping), after
    # its pending changes (the sweep's recount, a transfer) are flushed.
    await session.flush()
    conn = await session.connection()
    configured = await _queue_config(conn, tenant_id, instant)
    agents, members = await _available_agents(conn, tenant_id)
    queues = {
        row.id: strategies.QueueRules(
            queue_id=row.id,
            strategy=strategies.StrategyName(row.strategy.value),
            required_skills={uuid.UUID(k): int(v) for k, v in (row.required_skills or {}).items()},
            priority=row.priority,
            is_open=is_open,
            ageing_seconds=row.ageing_seconds,
            members=frozenset(members.get(row.id, ())),
        )
        for row, is_open in configured
    }
    settings = {
        row.id: QueueSettings(
            channels=frozenset(row.channels or ()),
            auto_accept=row.auto_accept,
            offer_timeout_seconds=row.offer_timeout_seconds,
            sticky_seconds=row.sticky_seconds,
        )
        for row, _ in configured
    }
    by_id = {a.agent_id: a for a in agents}
    # Room per queue and capacity pool: how many interactions of that pool could be placed.
    room = {
        (queue_id, pool): sum(max(0, by_id[m].free(pool)) for m in rules.members if m in by_id)
        for queue_id, rules in queues.items()
        if rules.is_open
        for pool in settings[queue_id].pools
    }
    # One statement for every queue and pool with room: the oldest that could be placed, plus
    # every prioritised one (ageing may not lift an old one above those, so both are needed),
    # with the agents who refused each of them lately (they are skipped for it).
    wanted = [(key, slots) for key, slots in room.items() if slots > 0]
    rows: dict[uuid.UUID, Any] = {}
    excluded: dict[uuid.UUID, set[uuid.UUID]] = defaultdict(set)
    if wanted:
        params: dict[str, Any] = {
            "tenant_id": tenant_id,
            "refused_since": instant - REJECT_DELAY,
        }
        for n, ((queue_id, _), slots) in enumerate(wanted):
            params[f"queue_{n}"] = queue_id
            params[f"limit_{n}"] = slots + 50
        query = _waiting_statement(tuple(pool for (_, pool), _ in wanted))
        for row in (await conn.execute(query, params)).all():
            rows.setdefault(row.id, row)
            if row.refused_by is not None:
                excluded[row.id].add(row.refused_by)
    sticky = await _sticky_agents(session, list(rows.values()), settings, instant)
    waiting = [
        strategies.Waiting(
            interaction_id=row.id,
            queue_id=row.queue_id,
            channel=Channel(row.channel).value,
            enqueued_at=row.enqueued_at or instant,
            priority=row.priority,
            sticky_agent_id=sticky.get(row.id),
            excluded_agents=frozenset(excluded.get(row.id, ())),
        )
        for row in rows.values()
    ]
    return Snapshot(waiting=waiting, queues=queues, agents=agents, settings=settings)


CHUNK = 2000
# Rounds read and write the tables directly (Core statements, plain rows, no ORM objects), so
# they spell out the tenant: the scoping hook sees only ORM statements.
INTERACTIONS = cast(Table, Interaction.__table__)
AGENTS = cast(Table, Agent.__table__)
OFFERS = cast(Table, Offer.__table__)
TIMELINE = cast(Table, InteractionEvent.__table__)
QUEUES = cast(Table, Queue.__table__)
SCHEDULES = cast(Table, Schedule.__table__)
HOLIDAYS = cast(Table, Holiday.__table__)
MEMBERS = cast(Table, QueueMember.__table__)
AGENT_SKILLS = cast(Table, AgentSkill.__table__)

_T = TypeVar("_T")


def _chunks(items: Sequence[_T], size: int = CHUNK) -> list[Sequence[_T]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


# The round's fixed reads, built once; the tenant is a parameter.
_QUEUE_CONFIG = (
    select(
        QUEUES.c.id,
        QUEUES.c.channels,
        QUEUES.c.strategy,
        QUEUES.c.required_skills,
        QUEUES.c.priority,
        QUEUES.c.ageing_seconds,
        QUEUES.c.auto_accept,
        QUEUES.c.offer_timeout_seconds,
        QUEUES.c.sticky_seconds,
        SCHEDULES.c.weekly,
        SCHEDULES.c.time_zone,
    )
    .select_from(QUEUES.outerjoin(SCHEDULES, SCHEDULES.c.id == QUEUES.c.schedule_id))
    .where(QUEUES.c.tenant_id == bindparam("tenant_id"))
)
_HOLIDAYS = select(HOLIDAYS.c.day).where(HOLIDAYS.c.tenant_id == bindparam("tenant_id"))
# Each agent's queues and skills folded into its row ("<queue id>,…" and "<skill id>:<level>,…").
_AGENTS_WITH_ROOM = select(
    AGENTS.c.user_id,
    AGENTS.c.licence,
    AGENTS.c.voice_capacity,
    AGENTS.c.chat_capacity,
    AGENTS.c.voice_load,
    AGENTS.c.chat_load,
    AGENTS.c.idle_since,
    AGENTS.c.last_offer_at,
    select(func.aggregate_strings(sql_cast(MEMBERS.c.queue_id, String), ","))
    .where(MEMBERS.c.agent_id == AGENTS.c.user_id)
    .scalar_subquery()
    .label("queue_ids"),
    select(
        func.aggregate_strings(
            sql_cast(AGENT_SKILLS.c.skill_id, String)
            + ":"
            + sql_cast(AGENT_SKILLS.c.level, String),
            ",",
        )
    )
    .where(AGENT_SKILLS.c.agent_id == AGENTS.c.user_id)
    .scalar_subquery()
    .label("skill_levels"),
).where(
    AGENTS.c.tenant_id == bindparam("tenant_id"),
    AGENTS.c.presence == Presence.available,
    (AGENTS.c.voice_load < AGENTS.c.voice_capacity) | (AGENTS.c.chat_load < AGENTS.c.chat_capacity),
)


@functools.lru_cache(maxsize=64)
def _waiting_statement(pools: tuple[str, ...]) -> Select[Any]:
    """The waiting read for queues with room in these pools, in order; built once per shape.
    Parameters: ``tenant_id``, ``refused_since`` and per part ``queue_<n>``, ``limit_<n>``."""
    table = INTERACTIONS
    columns = (
        table.c.id,
        table.c.queue_id,
        table.c.channel,
        table.c.enqueued_at,
        table.c.priority,
        table.c.contact_id,
    )
    parts: list[Any] = []
    for n, pool in enumerate(pools):
        in_pool = (
            table.c.channel == Channel.voice
            if pool == strategies.VOICE
            else table.c.channel != Channel.voice
        )
        waiting_here = and_(
            table.c.tenant_id == bindparam("tenant_id"),
            table.c.status == InteractionStatus.queued,
            table.c.queue_id == bindparam(f"queue_{n}"),
            in_pool,
        )
        oldest = select(*columns).where(waiting_here).order_by(table.c.enqueued_at)
        parts.append(select(*oldest.limit(bindparam(f"limit_{n}")).subquery().c))
        parts.append(select(*columns).where(waiting_here, table.c.priority != 0))
    found = union_all(*parts).subquery("found")
    refused = and_(
        OFFERS.c.interaction_id == found.c.id,
        OFFERS.c.status.in_([OfferStatus.rejected, OfferStatus.timed_out]),
        OFFERS.c.responded_at >= bindparam("refused_since"),
    )
    return select(*found.c, OFFERS.c.agent_id.label("refused_by")).select_from(
        found.outerjoin(OFFERS, refused)
    )


async def _queue_config(
    conn: AsyncConnection, tenant_id: uuid.UUID, instant: datetime
) -> list[tuple[Any, bool]]:
    """Every queue of the tenant (the columns a round reads, with its schedule's), and whether
    it is open at ``instant``. Holidays are read only when some queue has a schedule."""
    rows = (await conn.execute(_QUEUE_CONFIG, {"tenant_id": tenant_id})).all()
    holidays: frozenset[date] = frozenset()
    if any(row.weekly is not None for row in rows):
        holidays = frozenset((await conn.scalars(_HOLIDAYS, {"tenant_id": tenant_id})).all())
    return [
        (row, QueueCalendar(row.weekly, row.time_zone or "UTC", holidays).is_open(instant))
        for row in rows
    ]


def _id_set(joined: str | None) -> set[uuid.UUID]:
    return {uuid.UUID(part) for part in joined.split(",")} if joined else set()


def _levels(joined: str | None) -> dict[uuid.UUID, int]:
    levels = {}
    for part in joined.split(",") if joined else ():
        skill_id, level = part.split(":")
        levels[uuid.UUID(skill_id)] = int(level)
    return levels


async def _available_agents(
    conn: AsyncConnection, tenant_id: uuid.UUID
) -> tuple[list[strategies.AgentView], dict[uuid.UUID, set[uuid.UUID]]]:
    """Available agents with room in at least one pool (read from the load counters), and
    the queues each of them serves: one row per agent, its queues and skills folded in."""
    rows = (await conn.execute(_AGENTS_WITH_ROOM, {"tenant_id": tenant_id})).all()
    members: dict[uuid.UUID, set[uuid.UUID]] = defaultdict(set)
    views = []
    for row in rows:
        for queue_id in _id_set(row.queue_ids):
            members[queue_id].add(row.user_id)
        views.append(
            strategies.AgentView(
                agent_id=row.user_id,
                licence=row.licence.value,
                available=True,
                skills=_levels(row.skill_levels),
                capacity={strategies.VOICE: row.voice_capacity, strategies.CHAT: row.chat_capacity},
                load={strategies.VOICE: row.voice_load, strategies.CHAT: row.chat_load},
                idle_since=row.idle_since,
                last_offer_at=row.last_offer_at,
            )
        )
    return views, members


async def _held(session: AsyncSession, agent_id: uuid.UUID) -> dict[str, int]:
    """An agent's load counters, read fresh (bulk statements bypass loaded objects)."""
    row = (
        await session.execute(
            select(Agent.voice_load, Agent.chat_load).where(Agent.user_id == agent_id)
        )
    ).one_or_none()
    if row is None:
        return {}
    return {strategies.VOICE: row[0], strategies.CHAT: row[1]}


async def _bump(session: AsyncSession, changes: dict[tuple[uuid.UUID, str], int]) -> None:
    """Move load counters: ``{(agent id, pool): delta}``, in one statement per pool."""
    for pool, counter in ((strategies.VOICE, "voice_load"), (strategies.CHAT, "chat_load")):
        params = [
            {"b_agent": agent_id, "b_delta": delta}
            for (agent_id, kind), delta in changes.items()
            if kind == pool and delta
        ]
        if params:
            await session.execute(
                update(AGENTS)
                .where(AGENTS.c.user_id == bindparam("b_agent"))
                .values({counter: AGENTS.c[counter] + bindparam("b_delta")}),
                params,
            )


async def recount_loads(session: AsyncSession) -> int:
    """Set every agent's counters from the interactions and offers (the sweep's self-check);
    returns how many agents were off."""
    await advisory_lock(session, _lock_key(require_tenant(session)))
    truth = await _loads(session)
    fixed = 0
    for agent in (
        await session.scalars(select(Agent).execution_options(populate_existing=True))
    ).all():
        actual = truth.get(agent.user_id, {})
        voice, chat = actual.get(strategies.VOICE, 0), actual.get(strategies.CHAT, 0)
        if (agent.voice_load, agent.chat_load) != (voice, chat):
            log.warning("agent %s load counters were off; recounted", agent.user_id)
            agent.voice_load, agent.chat_load = voice, chat
            fixed += 1
    return fixed


async def _sticky_agents(
    session: AsyncSession,
    rows: Sequence[Any],
    queues: dict[uuid.UUID, QueueSettings],
    instant: datetime,
) -> dict[uuid.UUID, uuid.UUID]:
    """The last agent of each waiting contact, within the queue's sticky window."""
    wanted = [row for row in rows if queues[row.queue_id].sticky_seconds > 0]
    if not wanted:
        return {}
    longest = max(queues[row.queue_id].sticky_seconds for row in wanted)
    contact_ids = {row.contact_id for row in wanted}
    last: dict[uuid.UUID, tuple[datetime, uuid.UUID]] = {}
    recent = await session.execute(
        select(Interaction.contact_id, Interaction.agent_id, Interaction.assigned_at).where(
            Interaction.contact_id.in_(contact_ids),
            Interaction.agent_id.is_not(None),
            Interaction.assigned_at >= instant - timedelta(seconds=longest),
        )
    )
    for contact_id, agent_id, assigned_at in recent.all():
        if agent_id is None or assigned_at is None:
            continue
        if contact_id not in last or assigned_at > last[contact_id][0]:
            last[contact_id] = (assigned_at, agent_id)
    result = {}
    for row in wanted:
        found = last.get(row.contact_id)
        window = timedelta(seconds=queues[row.queue_id].sticky_seconds)
        if found is not None and found[0] >= instant - window:
            result[row.id] = found[1]
    return result


async def route(session: AsyncSession) -> list[OfferMade]:
    """One routing round for the session's tenant: snapshot, decide, apply."""
    tenant_id = require_tenant(session)
    await advisory_lock(session, _lock_key(tenant_id))
    snap = await snapshot(session)
    if not snap.waiting or not snap.agents:
        return []
    instant = now(session)
    decisions = strategies.decide(snap.waiting, snap.queues, snap.agents, instant)
    by_id = {item.interaction_id: item for item in snap.waiting}
    return await _apply(session, decisions, by_id, snap.settings, instant)


async def _apply(
    session: AsyncSession,
    decisions: Sequence[strategies.Decision],
    waiting: dict[uuid.UUID, strategies.Waiting],
    settings: dict[uuid.UUID, QueueSettings],
    instant: datetime,
) -> list[OfferMade]:
    """Write a round's decisions in bulk, the same few statements however many there are:
    the guarded move out of the queue, one INSERT of offers, one of timeline rows, one
    UPDATE of the agents' counters, one INSERT of events, and an offer time-out job per
    expiry time (none for auto-accept queues).

    Runs under the tenant's routing lock, so the interactions are still queued as the
    snapshot saw them; the guarded UPDATE double-checks it and aborts the round otherwise.
    """
    if not decisions:
        return []
    tenant_id = require_tenant(session)
    offers: list[OfferMade] = []
    timeline: list[dict[str, Any]] = []
    to_offer: list[uuid.UUID] = []
    to_assign: list[tuple[uuid.UUID, uuid.UUID]] = []
    events: list[DomainEvent] = []
    audiences: list[list[uuid.UUID] | None] = []
    timeouts: dict[datetime, list[uuid.UUID]] = defaultdict(list)
    loads: dict[uuid.UUID, dict[str, int]] = {}
    for decision in decisions:
        item = waiting[decision.interaction_id]
        queue = settings.get(item.queue_id)
        auto_accept = bool(queue and queue.auto_accept and len(decision.agent_ids) == 1)
        expires = instant + timedelta(seconds=queue.offer_timeout_seconds if queue else 30)
        pool = strategies.channel_class(item.channel)
        made = [
            OfferMade(
                id=uuid.uuid4(),
                interaction_id=item.interaction_id,
                agent_id=agent_id,
                status=OfferStatus.accepted if auto_accept else OfferStatus.pending,
                created_at=instant,
                expires_at=expires,
                responded_at=instant if auto_accept else None,
            )
            for agent_id in decision.agent_ids
        ]
        offers.extend(made)
        for agent_id in decision.agent_ids:
            held = loads.setdefault(agent_id, {strategies.VOICE: 0, strategies.CHAT: 0})
            held[pool] += 1
        single = decision.agent_ids[0] if len(decision.agent_ids) == 1 else None
        timeline.append(
            _event(
                tenant_id,
                item,
                "offered",
                single,
                instant,
                agent_ids=[str(a) for a in decision.agent_ids],
                offer_ids=[str(o.id) for o in made],
            )
        )
        if auto_accept and single is not None:
            to_assign.append((item.interaction_id, single))
            timeline.append(_event(tenant_id, item, "assigned", single, instant))
            events.append(_changed(item, InteractionStatus.assigned, single, "assigned"))
            audiences.append(None)
            continue
        to_offer.append(item.interaction_id)
        events.append(_changed(item, InteractionStatus.offered, None, "offered"))
        audiences.append(None)
        for offer in made:
            timeouts[expires].append(offer.id)
            events.append(
                OfferCreated(
                    offer_id=offer.id,
                    interaction_id=item.interaction_id,
                    agent_id=offer.agent_id,
                    channel=item.channel,
                    queue_id=item.queue_id,
                    expires_at=expires.isoformat(),
                )
            )
            audiences.append([offer.agent_id])
    await session.flush()  # a transfer's pending changes go first
    conn = await session.connection()
    await _leave_queue(conn, tenant_id, to_offer, to_assign, instant)
    await conn.execute(
        insert(OFFERS),
        [
            {
                "id": o.id,
                "tenant_id": tenant_id,
                "interaction_id": o.interaction_id,
                "agent_id": o.agent_id,
                "status": o.status.value,
                "created_at": o.created_at,
                "expires_at": o.expires_at,
                "responded_at": o.responded_at,
            }
            for o in offers
        ],
    )
    await conn.execute(insert(TIMELINE), timeline)
    # Load counters and the last offer: one row per agent, in id order.
    await conn.execute(
        _TAKE_ROOM,
        [
            {
                "b_tenant": tenant_id,
                "b_agent": agent_id,
                "b_voice": loads[agent_id][strategies.VOICE],
                "b_chat": loads[agent_id][strategies.CHAT],
                "b_at": instant,
            }
            for agent_id in sorted(loads)
        ],
    )
    await emit_many(session, events, tenant_id=tenant_id, audiences=audiences)
    for expires, offer_ids in timeouts.items():
        await jobs.schedule(
            session,
            OFFER_TIMEOUT_JOB,
            {"offer_ids": [str(i) for i in offer_ids]},
            run_at=expires,
            tenant_id=tenant_id,
            dedupe_key=f"offer-timeout:{offer_ids[0]}",
        )
    return offers


_STILL_QUEUED = (
    INTERACTIONS.c.tenant_id == bindparam("b_tenant"),
    INTERACTIONS.c.status == InteractionStatus.queued,
)
_TO_OFFERED = (
    update(INTERACTIONS)
    .where(INTERACTIONS.c.id.in_(bindparam("b_ids", expanding=True)), *_STILL_QUEUED)
    .values(status=InteractionStatus.offered)
)
_TO_ASSIGNED = (
    update(INTERACTIONS)
    .where(INTERACTIONS.c.id == bindparam("b_id"), *_STILL_QUEUED)
    .values(
        status=InteractionStatus.assigned,
        agent_id=bindparam("b_agent"),
        assigned_at=bindparam("b_at"),
    )
)
# PostgreSQL: the (interaction id, agent id) pairs arrive as two arrays; ``id = ANY(ids)``
# lets the planner find them by primary key rather than scan the tenant's queue.
_PAIRED_IDS = bindparam("b_ids", type_=ARRAY(Uuid()))
_PICKED = (
    func.unnest(_PAIRED_IDS, bindparam("b_agents", type_=ARRAY(Uuid())))
    .table_valued(column("picked_id", Uuid()), column("picked_agent", Uuid()))
    .render_derived("picked")
)
_TO_ASSIGNED_PAIRS = (
    update(INTERACTIONS)
    .where(
        INTERACTIONS.c.id == any_(_PAIRED_IDS),
        INTERACTIONS.c.id == _PICKED.c.picked_id,
        *_STILL_QUEUED,
    )
    .values(
        status=InteractionStatus.assigned,
        agent_id=_PICKED.c.picked_agent,
        assigned_at=bindparam("b_at"),
    )
)
_TAKE_ROOM = (
    update(AGENTS)
    .where(AGENTS.c.tenant_id == bindparam("b_tenant"), AGENTS.c.user_id == bindparam("b_agent"))
    .values(
        voice_load=AGENTS.c.voice_load + bindparam("b_voice"),
        chat_load=AGENTS.c.chat_load + bindparam("b_chat"),
        last_offer_at=bindparam("b_at"),
    )
)


async def _leave_queue(
    conn: AsyncConnection,
    tenant_id: uuid.UUID,
    offered: Sequence[uuid.UUID],
    assigned: Sequence[tuple[uuid.UUID, uuid.UUID]],
    instant: datetime,
) -> None:
    """Move a round's interactions out of ``queued``: to ``offered``, or (auto-accept,
    ``(interaction id, agent id)`` pairs) straight to ``assigned``. Each move is a guarded
    UPDATE whose row count is checked; it raises, rolling the round back, if any had already
    left the queue (which the routing lock makes impossible)."""
    moved = 0
    for chunk in _chunks(offered):
        result = await conn.execute(_TO_OFFERED, {"b_ids": list(chunk), "b_tenant": tenant_id})
        moved += result.rowcount
    if len(assigned) > 1 and conn.dialect.name == "postgresql":
        # One UPDATE joined to the pairs, sent as two arrays: each row is written once
        # (asyncpg cannot count an executemany).
        for pairs in _chunks(assigned):
            result = await conn.execute(
                _TO_ASSIGNED_PAIRS,
                {
                    "b_ids": [interaction_id for interaction_id, _ in pairs],
                    "b_agents": [agent_id for _, agent_id in pairs],
                    "b_tenant": tenant_id,
                    "b_at": instant,
                },
            )
            moved += result.rowcount
    elif assigned:
        # The guarded UPDATE, run once per pair; the driver adds up the rows it matched.
        result = await conn.execute(
            _TO_ASSIGNED,
            [
                {
                    "b_id": interaction_id,
                    "b_agent": agent_id,
                    "b_tenant": tenant_id,
                    "b_at": instant,
                }
                for interaction_id, agent_id in assigned
            ],
        )
        moved += result.rowcount
    if moved != len(offered) + len(assigned):
        raise RuntimeError("interactions left the queue during a locked routing round")


@dataclass(frozen=True, slots=True)
class OfferMade:
    """An offer a routing round wrote (rows go in with one bulk INSERT)."""

    id: uuid.UUID
    interaction_id: uuid.UUID
    agent_id: uuid.UUID
    status: OfferStatus
    created_at: datetime
    expires_at: datetime
    responded_at: datetime | None


def _event(
    tenant_id: uuid.UUID,
    item: strategies.Waiting,
    kind: str,
    agent_id: uuid.UUID | None,
    instant: datetime,
    **data: Any,
) -> dict[str, Any]:
    """A timeline row for the bulk insert."""
    return {
        "tenant_id": tenant_id,
        "interaction_id": item.interaction_id,
        "type": kind,
        "queue_id": item.queue_id,
        "agent_id": agent_id,
        "actor_id": None,
        "data": data,
        "occurred_at": instant,
    }


def _changed(
    item: strategies.Waiting, status: InteractionStatus, agent_id: uuid.UUID | None, change: str
) -> InteractionChanged:
    return InteractionChanged(
        interaction_id=item.interaction_id,
        status=status.value,
        channel=item.channel,
        queue_id=item.queue_id,
        agent_id=agent_id,
        change=change,
    )


def _waiting_of(interaction: Interaction) -> strategies.Waiting:
    return strategies.Waiting(
        interaction_id=interaction.id,
        queue_id=interaction.queue_id,  # type: ignore[arg-type]
        channel=interaction.channel.value,
        enqueued_at=interaction.enqueued_at or interaction.created_at,
        priority=interaction.priority,
    )


async def _assign(
    session: AsyncSession,
    interaction: Interaction,
    agent_id: uuid.UUID,
    *,
    actor_id: uuid.UUID | None,
) -> None:
    interaction.status = InteractionStatus.assigned
    interaction.agent_id = agent_id
    interaction.assigned_at = now(session)
    await conversations.record(
        session, interaction, "assigned", agent_id=agent_id, actor_id=actor_id
    )
    await conversations.changed(session, interaction, "assigned")


# --- offers ---------------------------------------------------------------------------------


async def _pending_offers(session: AsyncSession, interaction_id: uuid.UUID) -> Sequence[Offer]:
    return (
        await session.scalars(
            select(Offer).where(
                Offer.interaction_id == interaction_id, Offer.status == OfferStatus.pending
            )
        )
    ).all()


async def _close_offer(session: AsyncSession, offer: Offer, status: OfferStatus) -> None:
    """End an offer. A refusal (reject or time-out) counts against the agent; when the
    interaction has no other pending offer it goes back to the head of its queue."""
    offer.status = status
    offer.responded_at = now(session)
    await session.flush()
    await emit(
        session,
        OfferClosed(
            offer_id=offer.id,
            interaction_id=offer.interaction_id,
            agent_id=offer.agent_id,
            status=status.value,
        ),
    )
    interaction = await conversations.get_interaction(session, offer.interaction_id)
    if status is not OfferStatus.accepted:
        await _bump(
            session, {(offer.agent_id, strategies.channel_class(interaction.channel.value)): -1}
        )
    if status in (OfferStatus.rejected, OfferStatus.timed_out):
        await conversations.record(
            session, interaction, status.value, agent_id=offer.agent_id, offer_id=str(offer.id)
        )
        await _count_no_answer(session, offer.agent_id)
    if (
        status is not OfferStatus.accepted
        and interaction.status is InteractionStatus.offered
        and not await _pending_offers(session, interaction.id)
    ):
        # Back to the head: enqueued_at is kept, so it is still the oldest in its queue.
        interaction.status = InteractionStatus.queued
        await conversations.record(session, interaction, "requeued", agent_id=None)
        await conversations.changed(session, interaction, "requeued")
        request_routing(session)


async def _count_no_answer(session: AsyncSession, agent_id: uuid.UUID) -> None:
    agent = await session.get(Agent, agent_id)
    if agent is None:
        return
    agent.no_answer_count += 1
    if agent.no_answer_count >= agent.max_no_answer and agent.presence is Presence.available:
        from atiende.routing import admin

        reason = await admin.no_answer_reason(session)
        await _change_presence(session, agent, Presence.on_break, reason.id, changed_by=None)


async def _offer_for(session: AsyncSession, actor: Actor, offer_id: uuid.UUID) -> Offer:
    offer = await session.get(Offer, offer_id)
    if offer is None or offer.agent_id != actor.user_id:
        raise NotFound("offer")
    return offer


async def accept_offer(session: AsyncSession, actor: Actor, offer_id: uuid.UUID) -> Interaction:
    tenant_id = require_tenant(session)
    await advisory_lock(session, _lock_key(tenant_id))
    offer = await _offer_for(session, actor, offer_id)
    return await _take(session, offer, actor_id=actor.user_id)


async def answer_offer(session: AsyncSession, offer_id: uuid.UUID) -> Interaction:
    """The agent's phone answered the call it was ringing for: the offer is accepted on the
    agent's behalf (the phone is the agent's acceptance)."""
    tenant_id = require_tenant(session)
    await advisory_lock(session, _lock_key(tenant_id))
    offer = await session.get(Offer, offer_id)
    if offer is None:
        raise NotFound("offer")
    return await _take(session, offer, actor_id=offer.agent_id)


async def decline_offer(session: AsyncSession, offer_id: uuid.UUID, *, reason: str) -> bool:
    """The agent's phone did not take the call (busy, no answer, unreachable): a refusal that
    counts against the agent, as a rejection does. False when the offer was already closed."""
    tenant_id = require_tenant(session)
    await advisory_lock(session, _lock_key(tenant_id))
    offer = await session.get(Offer, offer_id)
    if offer is None or offer.status is not OfferStatus.pending:
        return False
    interaction = await conversations.get_interaction(session, offer.interaction_id)
    await conversations.record(
        session, interaction, "phone_declined", agent_id=offer.agent_id, reason=reason
    )
    await _close_offer(session, offer, OfferStatus.rejected)
    return True


async def _take(session: AsyncSession, offer: Offer, *, actor_id: uuid.UUID | None) -> Interaction:
    if offer.status is not OfferStatus.pending:
        raise Conflict("This offer is no longer open.", code="offer_closed")
    if offer.expires_at <= now(session):
        await _close_offer(session, offer, OfferStatus.timed_out)
        raise Conflict("This offer expired.", code="offer_expired")
    moved = await session.execute(
        update(Interaction)
        .where(
            Interaction.id == offer.interaction_id, Interaction.status == InteractionStatus.offered
        )
        .values(status=InteractionStatus.assigned)
        .execution_options(synchronize_session="fetch")
    )
    if moved.rowcount != 1:  # type: ignore[attr-defined]
        raise Conflict("Someone else took this interaction.", code="offer_taken")
    offer.status = OfferStatus.accepted
    offer.responded_at = now(session)
    for other in await _pending_offers(session, offer.interaction_id):
        await _close_offer(session, other, OfferStatus.cancelled)
    agent = await get_agent(session, offer.agent_id)
    agent.no_answer_count = 0
    interaction = await conversations.get_interaction(session, offer.interaction_id)
    await conversations.record(session, interaction, "accepted", agent_id=agent.user_id)
    await _assign(session, interaction, agent.user_id, actor_id=actor_id)
    await emit(
        session,
        OfferClosed(
            offer_id=offer.id,
            interaction_id=offer.interaction_id,
            agent_id=offer.agent_id,
            status=OfferStatus.accepted.value,
        ),
    )
    return interaction


async def reject_offer(session: AsyncSession, actor: Actor, offer_id: uuid.UUID) -> None:
    tenant_id = require_tenant(session)
    await advisory_lock(session, _lock_key(tenant_id))
    offer = await _offer_for(session, actor, offer_id)
    if offer.status is not OfferStatus.pending:
        raise Conflict("This offer is no longer open.", code="offer_closed")
    await _close_offer(session, offer, OfferStatus.rejected)


async def expire_offers(session: AsyncSession, offer_ids: Sequence[uuid.UUID]) -> int:
    """The offer-timeout job: offers still pending at their expiry time out."""
    tenant_id = require_tenant(session)
    await advisory_lock(session, _lock_key(tenant_id))
    expired = 0
    for offer_id in offer_ids:
        offer = await session.get(Offer, offer_id)
        if offer is None or offer.status is not OfferStatus.pending:
            continue
        if offer.expires_at > now(session):
            continue
        await _close_offer(session, offer, OfferStatus.timed_out)
        expired += 1
    return expired


# --- working an interaction ----------------------------------------------------------------


async def can_see_interaction(
    session: AsyncSession, actor: Actor, interaction: Interaction
) -> bool:
    """Agents see what is assigned or offered to them; supervisors and admins see all."""
    if actor.role in SUPERVISING or interaction.agent_id == actor.user_id:
        return True
    if actor.user_id is None:
        return False
    offered = await session.scalar(
        select(func.count())
        .select_from(Offer)
        .where(
            Offer.interaction_id == interaction.id,
            Offer.agent_id == actor.user_id,
            Offer.status == OfferStatus.pending,
        )
    )
    return bool(offered)


async def _working(session: AsyncSession, actor: Actor, interaction_id: uuid.UUID) -> Interaction:
    interaction = await conversations.get_interaction(session, interaction_id)
    if not await can_see_interaction(session, actor, interaction):
        raise NotFound("interaction")
    if interaction.agent_id != actor.user_id and actor.role not in SUPERVISING:
        raise PermissionDenied("Only the assigned agent or a supervisor can do this.")
    return interaction


async def transfer(
    session: AsyncSession,
    actor: Actor,
    interaction_id: uuid.UUID,
    *,
    agent_id: uuid.UUID | None = None,
    queue_id: uuid.UUID | None = None,
    note: str | None = None,
) -> Interaction:
    """Hand an interaction to a queue (it waits there) or to an agent (who gets an offer)."""
    if (agent_id is None) == (queue_id is None):
        raise ValidationFailed("Give exactly one of agent_id and queue_id.", code="transfer_target")
    tenant_id = require_tenant(session)
    await advisory_lock(session, _lock_key(tenant_id))
    interaction = await _working(session, actor, interaction_id)
    if interaction.status not in (
        InteractionStatus.assigned,
        InteractionStatus.offered,
        InteractionStatus.queued,
    ):
        raise Conflict("Only open interactions can be transferred.", code="interaction_not_open")
    for offer in await _pending_offers(session, interaction.id):
        await _close_offer(session, offer, OfferStatus.cancelled)
    if note:
        await conversations.add_message(
            session,
            interaction,
            direction=MessageDirection.internal,
            author_kind="agent",
            author_user_id=actor.user_id,
            body=note,
        )
    previous_agent = interaction.agent_id
    if previous_agent is not None and interaction.status is InteractionStatus.assigned:
        pool = strategies.channel_class(interaction.channel.value)
        await _bump(session, {(previous_agent, pool): -1})
    if queue_id is not None:
        await conversations.record(
            session,
            interaction,
            "transferred",
            actor_id=actor.user_id,
            to_queue_id=str(queue_id),
            from_agent_id=str(previous_agent) if previous_agent else None,
        )
        await enqueue(session, interaction, queue_id, reason="transfer")
    else:
        assert agent_id is not None
        target = await session.get(Agent, agent_id)
        if target is None:
            raise NotFound("agent")
        if interaction.channel.is_digital and target.licence is not LicenceType.omnichannel:
            raise ValidationFailed(
                "A voice-licence agent cannot take a digital interaction.", code="licence_mismatch"
            )
        if target.presence is not Presence.available:
            raise Conflict("That agent is not available.", code="agent_unavailable")
        pool = strategies.channel_class(interaction.channel.value)
        load = (await _held(session, agent_id)).get(pool, 0)
        capacity = target.voice_capacity if pool == strategies.VOICE else target.chat_capacity
        if load >= capacity:
            raise Conflict("That agent has no free capacity.", code="agent_at_capacity")
        await conversations.record(
            session,
            interaction,
            "transferred",
            actor_id=actor.user_id,
            to_agent_id=str(agent_id),
            from_agent_id=str(previous_agent) if previous_agent else None,
        )
        interaction.status = InteractionStatus.queued
        interaction.agent_id = None
        await session.flush()
        queue = await session.get(Queue, interaction.queue_id) if interaction.queue_id else None
        await _apply(
            session,
            [strategies.Decision(interaction.id, (agent_id,))],
            {interaction.id: _waiting_of(interaction)},
            {queue.id: QueueSettings.of(queue)} if queue else {},
            now(session),
        )
        await session.refresh(interaction)
    if previous_agent is not None:
        await _maybe_idle(session, previous_agent)
    return interaction


async def wrap_up(session: AsyncSession, actor: Actor, interaction_id: uuid.UUID) -> Interaction:
    """The conversation is over; the agent has the queue's wrap-up time to finish."""
    interaction = await _working(session, actor, interaction_id)
    if interaction.status is not InteractionStatus.assigned:
        raise Conflict(
            "Only an assigned interaction goes to wrap-up.", code="interaction_not_assigned"
        )
    return await _start_wrap_up(session, interaction, actor_id=actor.user_id)


async def take_outbound(
    session: AsyncSession, interaction: Interaction, agent_id: uuid.UUID
) -> None:
    """An agent places a call (click-to-call): the new interaction is theirs at once, with no
    queue, when they have room for one more call. Agents on break may call back customers."""
    tenant_id = require_tenant(session)
    await advisory_lock(session, _lock_key(tenant_id))
    agent = await session.get(Agent, agent_id)
    if agent is None:
        raise NotFound("agent", "Only agents place calls from the desktop.")
    if agent.presence is Presence.offline:
        raise Conflict("Go online to place calls.", code="agent_unavailable")
    pool = strategies.channel_class(interaction.channel.value)
    if (await _held(session, agent_id)).get(pool, 0) >= agent.voice_capacity:
        raise Conflict("You are already on a call.", code="agent_at_capacity")
    await _bump(session, {(agent_id, pool): 1})
    await _assign(session, interaction, agent_id, actor_id=agent_id)


async def conversation_ended(session: AsyncSession, interaction_id: uuid.UUID) -> bool:
    """The customer's side is gone (a call hung up) while an agent had it: wrap-up starts.
    False when it was not assigned (nothing to do)."""
    interaction = await session.get(Interaction, interaction_id)
    if interaction is None or interaction.status is not InteractionStatus.assigned:
        return False
    await _start_wrap_up(session, interaction, actor_id=None)
    return True


async def _start_wrap_up(
    session: AsyncSession, interaction: Interaction, *, actor_id: uuid.UUID | None
) -> Interaction:
    queue = await session.get(Queue, interaction.queue_id) if interaction.queue_id else None
    seconds = queue.wrap_up_seconds if queue else 0
    instant = now(session)
    interaction.status = InteractionStatus.wrap_up
    interaction.wrap_up_until = instant + timedelta(seconds=seconds)
    await conversations.record(session, interaction, "wrap_up", actor_id=actor_id, seconds=seconds)
    await conversations.changed(session, interaction, "wrap_up")
    await jobs.schedule(
        session,
        WRAP_UP_END_JOB,
        {"interaction_id": str(interaction.id)},
        run_at=interaction.wrap_up_until,
        tenant_id=interaction.tenant_id,
        dedupe_key=f"wrap-up-end:{interaction.id}",
    )
    return interaction


async def close(
    session: AsyncSession,
    actor: Actor,
    interaction_id: uuid.UUID,
    disposition_code: str | None = None,
) -> Interaction:
    """Finish an interaction, with a disposition when its queue defines any."""
    tenant_id = require_tenant(session)
    await advisory_lock(session, _lock_key(tenant_id))
    interaction = await _working(session, actor, interaction_id)
    if interaction.status not in (InteractionStatus.assigned, InteractionStatus.wrap_up):
        raise Conflict(
            "Only an interaction being worked can be closed.", code="interaction_not_assigned"
        )
    if interaction.queue_id is not None:
        codes = set(
            (
                await session.scalars(
                    select(Disposition.code).where(Disposition.queue_id == interaction.queue_id)
                )
            ).all()
        )
        if codes and disposition_code is None:
            raise ValidationFailed("Choose a disposition.", code="disposition_required")
        if disposition_code is not None and disposition_code not in codes:
            raise ValidationFailed(
                "Unknown disposition for this queue.", code="disposition_not_found"
            )
    await _finish(session, interaction, disposition_code, actor_id=actor.user_id)
    return interaction


async def _finish(
    session: AsyncSession,
    interaction: Interaction,
    disposition_code: str | None,
    *,
    actor_id: uuid.UUID | None,
) -> None:
    if interaction.agent_id is not None:
        pool = strategies.channel_class(interaction.channel.value)
        await _bump(session, {(interaction.agent_id, pool): -1})
    interaction.status = InteractionStatus.closed
    interaction.closed_at = now(session)
    interaction.disposition_code = disposition_code
    await conversations.record(
        session, interaction, "closed", actor_id=actor_id, disposition=disposition_code
    )
    await conversations.changed(session, interaction, "closed")
    if interaction.agent_id is not None:
        await _maybe_idle(session, interaction.agent_id)
    request_routing(session)


async def end_wrap_up(session: AsyncSession, interaction_id: uuid.UUID) -> bool:
    """The wrap-up limit passed: close without a disposition and free the agent."""
    tenant_id = require_tenant(session)
    await advisory_lock(session, _lock_key(tenant_id))
    interaction = await session.get(Interaction, interaction_id)
    if interaction is None or interaction.status is not InteractionStatus.wrap_up:
        return False
    if interaction.wrap_up_until and interaction.wrap_up_until > now(session):
        return False
    await _finish(session, interaction, None, actor_id=None)
    return True


async def overflow_if_waiting(
    session: AsyncSession, interaction_id: uuid.UUID, enqueued_at: str
) -> bool:
    """The max-wait job: still waiting in the same queue since then → the overflow queue."""
    tenant_id = require_tenant(session)
    await advisory_lock(session, _lock_key(tenant_id))
    interaction = await session.get(Interaction, interaction_id)
    if (
        interaction is None
        or interaction.status is not InteractionStatus.queued
        or interaction.enqueued_at is None
        or interaction.enqueued_at.isoformat() != enqueued_at
        or interaction.queue_id is None
    ):
        return False
    queue = await session.get(Queue, interaction.queue_id)
    if queue is None:
        return False
    unattended = _unattended_action(queue, interaction, queue.max_wait_action)
    if unattended is not None:
        await leave_unattended(session, interaction, queue, unattended, "max_wait")
        return True
    if queue.overflow_queue_id is None:
        return False
    await conversations.record(
        session, interaction, "overflowed", reason="max_wait", from_queue_id=str(queue.id)
    )
    await enqueue(session, interaction, queue.overflow_queue_id, reason="overflow")
    return True


async def _maybe_idle(session: AsyncSession, agent_id: uuid.UUID) -> None:
    """An agent with nothing left to hold starts a new idle period (longest-idle order)."""
    await session.flush()
    if not any((await _held(session, agent_id)).values()):
        agent = await session.get(Agent, agent_id)
        if agent is not None:
            agent.idle_since = now(session)


# --- triggering rounds -----------------------------------------------------------------------


_running: dict[tuple[int, uuid.UUID], asyncio.Task[None]] = {}
_dirty: set[tuple[int, uuid.UUID]] = set()


def request_routing(session: AsyncSession) -> None:
    """Route the session's tenant once this unit of work commits (rounds coalesce: while one
    runs for a tenant, further requests make one more round after it)."""
    tenant_id = require_tenant(session)
    database = database_of(session)
    after_commit(session, lambda: _trigger(database, tenant_id))


def _trigger(database: Database, tenant_id: uuid.UUID) -> None:
    key = (id(database), tenant_id)
    if key in _running:
        _dirty.add(key)
        return
    _running[key] = asyncio.create_task(_rounds(database, tenant_id, key))


async def _rounds(database: Database, tenant_id: uuid.UUID, key: tuple[int, uuid.UUID]) -> None:
    try:
        while True:
            _dirty.discard(key)
            try:
                await route_now(database, tenant_id)
            except Exception:
                log.exception("routing round failed for tenant %s", tenant_id)
            if key not in _dirty:
                return
    finally:
        _running.pop(key, None)


async def route_now(database: Database, tenant_id: uuid.UUID) -> list[OfferMade]:
    async with database.session(Scope.tenant(tenant_id)) as session:
        return await route(session)


async def settle() -> None:
    """Wait for every routing round in flight (tests, shutdown)."""
    while _running:
        await asyncio.gather(*list(_running.values()), return_exceptions=True)


async def tenants_to_sweep(session: AsyncSession) -> list[uuid.UUID]:
    """System scope: tenants with work waiting or agents available (the sweep recounts their
    load counters and routes them), in a fixed order so sweeps lock tenants alike."""
    waiting = select(Interaction.tenant_id).where(Interaction.status == InteractionStatus.queued)
    staffed = select(Agent.tenant_id).where(Agent.presence == Presence.available)
    found = set((await session.scalars(waiting.distinct())).all())
    found |= set((await session.scalars(staffed.distinct())).all())
    return sorted(found)


# --- views ----------------------------------------------------------------------------------


async def has_agent_profile(session: AsyncSession, user_id: uuid.UUID) -> bool:
    return await session.get(Agent, user_id) is not None


async def directory(session: AsyncSession) -> dict[str, Any]:
    """Names the work pages need and agents may not list through the admin API: queues and
    agents (transfer targets, live presence comes over the websocket) and break reasons."""
    queues = await session.execute(
        select(Queue.id, Queue.name, Queue.channels).order_by(Queue.name)
    )
    agents = await session.execute(
        select(Agent.user_id, User.name, Agent.licence, Agent.presence)
        .join(User, User.id == Agent.user_id)
        .where(User.is_active)
        .order_by(User.name)
    )
    reasons = await session.execute(
        select(BreakReason.id, BreakReason.name, BreakReason.is_no_answer)
        .where(BreakReason.is_active)
        .order_by(BreakReason.name)
    )
    return {
        "queues": [
            {"id": str(row.id), "name": row.name, "channels": list(row.channels or [])}
            for row in queues
        ],
        "agents": [
            {
                "id": str(row.user_id),
                "name": row.name,
                "licence": row.licence.value,
                "presence": row.presence.value,
            }
            for row in agents
        ],
        "break_reasons": [
            {"id": str(row.id), "name": row.name, "is_no_answer": row.is_no_answer}
            for row in reasons
        ],
    }


@dataclass(frozen=True, slots=True)
class QueueStats:
    queue_id: uuid.UUID
    name: str
    waiting: int
    longest_wait_seconds: float
    offered_today: int
    answered_today: int
    abandoned_today: int
    answered_in_sl_today: int
    service_level_today: float | None
    service_level_seconds: int
    service_level_target: int
    is_open: bool


async def _tenant_midnight(session: AsyncSession, tenant_id: uuid.UUID) -> datetime:
    tenant = await session.get(Tenant, tenant_id)
    zone = ZoneInfo(tenant.time_zone if tenant else "UTC")
    local = now(session).astimezone(zone)
    return local.replace(hour=0, minute=0, second=0, microsecond=0)


async def queue_stats(session: AsyncSession) -> list[QueueStats]:
    """Today (in the tenant's zone) per queue. Service level = answered within the queue's
    threshold ÷ (answered + abandoned after the threshold); abandons inside it don't count."""
    tenant_id = require_tenant(session)
    instant = now(session)
    since = await _tenant_midnight(session, tenant_id)
    queues = (await session.scalars(select(Queue).order_by(Queue.name))).all()
    calendars = await _calendars(session, queues)
    waiting_rows = (
        await session.execute(
            select(Interaction.queue_id, func.count(), func.min(Interaction.enqueued_at))
            .where(Interaction.status == InteractionStatus.queued)
            .group_by(Interaction.queue_id)
        )
    ).all()
    waiting = {row[0]: (row[1], row[2]) for row in waiting_rows}
    events = (
        await session.execute(
            select(
                InteractionEvent.interaction_id,
                InteractionEvent.queue_id,
                InteractionEvent.type,
                InteractionEvent.occurred_at,
            )
            .where(
                InteractionEvent.occurred_at >= since,
                InteractionEvent.type.in_(["queued", "assigned", "abandoned"]),
            )
            .order_by(InteractionEvent.id)
        )
    ).all()
    queued_at: dict[tuple[uuid.UUID, uuid.UUID | None], datetime] = {}
    counts: dict[uuid.UUID, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    sl = {q.id: q.service_level_seconds for q in queues}
    for interaction_id, queue_id, kind, at in events:
        if queue_id is None:
            continue
        stats = counts[queue_id]
        if kind == "queued":
            stats["offered"] += 1
            queued_at[(interaction_id, queue_id)] = at
            continue
        started = queued_at.pop((interaction_id, queue_id), None)
        if started is None:
            # Not the answer to an arrival in this queue today (a transfer to an agent, or
            # it arrived before midnight): it is not counted again.
            continue
        waited = (at - started).total_seconds()
        within = waited <= sl.get(queue_id, 20)
        if kind == "assigned":
            stats["answered"] += 1
            stats["answered_in_sl"] += int(within)
        else:
            stats["abandoned"] += 1
            stats["abandoned_after_sl"] += int(not within)
    result = []
    for queue in queues:
        stats = counts[queue.id]
        count, oldest = waiting.get(queue.id, (0, None))
        denominator = stats["answered"] + stats["abandoned_after_sl"]
        result.append(
            QueueStats(
                queue_id=queue.id,
                name=queue.name,
                waiting=count,
                longest_wait_seconds=(instant - oldest).total_seconds() if oldest else 0.0,
                offered_today=stats["offered"],
                answered_today=stats["answered"],
                abandoned_today=stats["abandoned"],
                answered_in_sl_today=stats["answered_in_sl"],
                service_level_today=(
                    round(100 * stats["answered_in_sl"] / denominator, 1) if denominator else None
                ),
                service_level_seconds=queue.service_level_seconds,
                service_level_target=queue.service_level_target,
                is_open=calendars[queue.id].is_open(instant),
            )
        )
    return result


@dataclass(frozen=True, slots=True)
class AgentBoardRow:
    agent_id: uuid.UUID
    name: str
    presence: str
    break_reason: str | None
    seconds_in_state: float
    busy: bool
    load: dict[str, int]
    capacity: dict[str, int]
    licence: str
    no_answer_count: int


async def agent_board(session: AsyncSession) -> list[AgentBoardRow]:
    from atiende.identity.models import User

    instant = now(session)
    rows = (
        await session.execute(
            select(Agent, User.name, BreakReason.name)
            .join(User, User.id == Agent.user_id)
            .outerjoin(BreakReason, BreakReason.id == Agent.break_reason_id)
            .order_by(User.name)
        )
    ).all()
    board = []
    for agent, name, reason in rows:
        load = {strategies.VOICE: agent.voice_load, strategies.CHAT: agent.chat_load}
        board.append(
            AgentBoardRow(
                agent_id=agent.user_id,
                name=name,
                presence=agent.presence.value,
                break_reason=reason,
                seconds_in_state=(instant - agent.presence_since).total_seconds(),
                busy=agent.presence is Presence.available and any(load.values()),
                load=load,
                capacity={
                    strategies.VOICE: agent.voice_capacity,
                    strategies.CHAT: agent.chat_capacity,
                },
                licence=agent.licence.value,
                no_answer_count=agent.no_answer_count,
            )
        )
    return board


async def my_offers(session: AsyncSession, actor: Actor) -> Sequence[Offer]:
    return (
        await session.scalars(
            select(Offer)
            .where(Offer.agent_id == actor.user_id, Offer.status == OfferStatus.pending)
            .order_by(Offer.created_at)
        )
    ).all()


async def my_interactions(session: AsyncSession, actor: Actor) -> Sequence[Interaction]:
    return (
        await session.scalars(
            select(Interaction)
            .where(
                Interaction.agent_id == actor.user_id,
                Interaction.status.in_([InteractionStatus.assigned, InteractionStatus.wrap_up]),
            )
            .order_by(Interaction.last_message_at.desc(), Interaction.created_at.desc())
        )
    ).all()


async def reassign(
    session: AsyncSession, actor: Actor, interaction_id: uuid.UUID, agent_id: uuid.UUID
) -> Interaction:
    """A supervisor moves an interaction to another agent (as a transfer offer)."""
    if actor.role not in SUPERVISING:
        raise PermissionDenied()
    return await transfer(session, actor, interaction_id, agent_id=agent_id)
