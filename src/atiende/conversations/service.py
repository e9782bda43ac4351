"""Interactions, messages and the timeline. The only writer of ``interactions``,
``messages`` and ``interaction_events``.

Routing decisions (which agent, when) live in ``atiende.routing.service``; it changes an
interaction's status, queue and agent only through the functions here, so every change writes
the timeline and publishes ``interaction.changed``.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, false, func, or_, select, true, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from atiende.attachments import service as attachments
from atiende.contacts.models import Contact
from atiende.conversations.events import (
    InteractionChanged,
    MessageAdded,
    MessageStatusChanged,
    Typing,
)
from atiende.conversations.models import (
    OPEN_STATUSES,
    Channel,
    Interaction,
    InteractionEvent,
    InteractionStatus,
    Message,
    MessageDirection,
    MessageStatus,
)
from atiende.conversations.schemas import (
    AgentSummary,
    ContactSummary,
    InteractionOut,
    QueueSummary,
)
from atiende.core.db import now, require_tenant
from atiende.core.errors import Conflict, NotFound, PermissionDenied
from atiende.core.events import emit
from atiende.core.ids import new_id
from atiende.identity.actor import Actor
from atiende.identity.models import Role, User
from atiende.routing.models import Disposition, Offer, OfferStatus, Queue


async def get_interaction(
    session: AsyncSession, interaction_id: uuid.UUID, *, for_update: bool = False
) -> Interaction:
    interaction = await session.get(Interaction, interaction_id, with_for_update=for_update)
    if interaction is None:
        raise NotFound("interaction")
    return interaction


async def record(
    session: AsyncSession,
    interaction: Interaction,
    event_type: str,
    *,
    agent_id: uuid.UUID | None = None,
    actor_id: uuid.UUID | None = None,
    **data: Any,
) -> InteractionEvent:
    """Append to the interaction's timeline."""
    entry = InteractionEvent(
        tenant_id=interaction.tenant_id,
        interaction_id=interaction.id,
        type=event_type,
        queue_id=interaction.queue_id,
        agent_id=agent_id if agent_id is not None else interaction.agent_id,
        actor_id=actor_id,
        data=data,
        occurred_at=now(session),
    )
    session.add(entry)
    return entry


async def changed(session: AsyncSession, interaction: Interaction, change: str) -> None:
    await session.flush()
    await emit(
        session,
        InteractionChanged(
            interaction_id=interaction.id,
            status=interaction.status.value,
            channel=interaction.channel.value,
            queue_id=interaction.queue_id,
            agent_id=interaction.agent_id,
            change=change,
        ),
        tenant_id=interaction.tenant_id,
    )


def content_audience(interaction: Interaction) -> list[uuid.UUID]:
    """Who gets a conversation's content live: the agent working it (supervisors and admins
    always do). Everyone else reads it, if allowed, through the API."""
    return [interaction.agent_id] if interaction.agent_id else []


async def open_interaction(
    session: AsyncSession,
    *,
    channel: Channel,
    contact_id: uuid.UUID,
    source_id: uuid.UUID | None = None,
    subject: str | None = None,
    priority: int = 0,
) -> Interaction:
    """A new interaction, not yet in a queue (``routing.service.enqueue`` puts it in one).

    Nothing is written yet: the row goes in with the unit of work's next flush, usually
    already queued, so an arrival costs one INSERT rather than an INSERT and an UPDATE."""
    instant = now(session)
    interaction = Interaction(
        id=new_id(),
        tenant_id=require_tenant(session),
        channel=channel,
        status=InteractionStatus.queued,
        contact_id=contact_id,
        source_id=source_id,
        subject=subject,
        priority=priority,
        labels=[],
        created_at=instant,
        unread_count=0,
    )
    session.add(interaction)
    await record(session, interaction, "created", channel=channel.value)
    return interaction


async def open_interaction_for(
    session: AsyncSession, *, channel: Channel, contact_id: uuid.UUID, source_id: uuid.UUID | None
) -> Interaction | None:
    """The contact's interaction still open on this channel endpoint, if any."""
    return await session.scalar(
        select(Interaction)
        .where(
            Interaction.contact_id == contact_id,
            Interaction.channel == channel,
            Interaction.source_id == source_id if source_id else Interaction.source_id.is_(None),
            Interaction.status.in_(
                [
                    InteractionStatus.queued,
                    InteractionStatus.offered,
                    InteractionStatus.assigned,
                    InteractionStatus.wrap_up,
                ]
            ),
        )
        .order_by(Interaction.created_at.desc())
        .limit(1)
    )


async def add_message(
    session: AsyncSession,
    interaction: Interaction,
    *,
    direction: MessageDirection,
    author_kind: str,
    body: str,
    author_user_id: uuid.UUID | None = None,
    attachments: Sequence[dict[str, Any]] = (),
    client_id: str | None = None,
    provider_id: str | None = None,
    status: MessageStatus | None = None,
) -> tuple[Message, bool]:
    """Store a message; returns it and whether it is new. A message with a ``client_id`` the
    interaction already has is the same message re-sent: nothing changes the second time."""
    if client_id is not None:
        existing = await _by_client_id(session, interaction.id, client_id)
        if existing is not None:
            return existing, False
    instant = now(session)
    message = Message(
        tenant_id=interaction.tenant_id,
        interaction_id=interaction.id,
        direction=direction,
        author_kind=author_kind,
        author_user_id=author_user_id,
        body=body,
        attachments=list(attachments),
        client_id=client_id,
        provider_id=provider_id,
        status=status
        or (
            MessageStatus.received
            if direction is MessageDirection.inbound
            else MessageStatus.sent
            if direction is MessageDirection.internal
            else MessageStatus.pending
        ),
        created_at=instant,
        updated_at=instant,
    )
    try:
        async with session.begin_nested():
            session.add(message)
    except IntegrityError:
        existing = await _by_client_id(session, interaction.id, client_id or "")
        if existing is None:
            raise
        return existing, False
    interaction.last_message_at = instant
    if direction is MessageDirection.inbound:
        interaction.unread_count += 1
    elif direction is MessageDirection.outbound and interaction.first_response_at is None:
        interaction.first_response_at = instant
    kind = {"inbound": "message_in", "outbound": "message_out", "internal": "note"}
    await record(
        session,
        interaction,
        kind[direction.value],
        agent_id=author_user_id,
        actor_id=author_user_id,
        message_id=str(message.id),
    )
    await session.flush()
    await emit(
        session,
        MessageAdded(
            interaction_id=interaction.id,
            message_id=message.id,
            direction=direction.value,
            author_kind=author_kind,
            agent_id=author_user_id,
            body=body,
            attachments=list(attachments),
            created_at=instant.isoformat(),
        ),
        tenant_id=interaction.tenant_id,
        audience=content_audience(interaction),
    )
    return message, True


async def _by_client_id(
    session: AsyncSession, interaction_id: uuid.UUID, client_id: str
) -> Message | None:
    return await session.scalar(
        select(Message).where(
            Message.interaction_id == interaction_id, Message.client_id == client_id
        )
    )


async def list_messages(
    session: AsyncSession, interaction_id: uuid.UUID, *, include_internal: bool
) -> Sequence[Message]:
    query = select(Message).where(Message.interaction_id == interaction_id)
    if not include_internal:
        query = query.where(Message.direction != MessageDirection.internal)
    return (await session.scalars(query.order_by(Message.created_at, Message.id))).all()


async def timeline(session: AsyncSession, interaction_id: uuid.UUID) -> Sequence[InteractionEvent]:
    return (
        await session.scalars(
            select(InteractionEvent)
            .where(InteractionEvent.interaction_id == interaction_id)
            .order_by(InteractionEvent.id)
        )
    ).all()


# --- the conversations API: what staff see and do in an interaction ------------------------
#
# Visibility is routing's rule (``routing.service.can_see_interaction``): agents see what is
# assigned or offered to them, supervisors and admins everything of their tenant. An
# interaction a caller cannot see does not exist for them (404). ``visible_to`` is the same
# rule as an SQL condition, for lists; the two must agree.

SUPERVISING = frozenset({Role.supervisor, Role.admin})
STAFF = frozenset({Role.admin, Role.supervisor, Role.agent})
AGENT_INBOX = (InteractionStatus.assigned, InteractionStatus.wrap_up)


def require_staff(actor: Actor) -> None:
    """Conversations are worked by the tenant's own people, not by vendor staff."""
    if actor.role not in STAFF or actor.user_id is None:
        raise PermissionDenied()


def visible_to(actor: Actor) -> ColumnElement[bool]:
    """The interactions ``actor`` may see, as a WHERE condition."""
    if actor.role in SUPERVISING:
        return true()
    if actor.user_id is None:
        return false()
    offered = select(Offer.interaction_id).where(
        Offer.agent_id == actor.user_id, Offer.status == OfferStatus.pending
    )
    return or_(Interaction.agent_id == actor.user_id, Interaction.id.in_(offered))


async def visible_interaction(
    session: AsyncSession, actor: Actor, interaction_id: uuid.UUID
) -> Interaction:
    """The interaction if ``actor`` may see it; 404 ``interaction_not_found`` otherwise."""
    # routing.service builds on this module, so it is imported when first needed.
    from atiende.routing import service as routing

    require_staff(actor)
    interaction = await session.get(Interaction, interaction_id)
    if interaction is None or not await routing.can_see_interaction(session, actor, interaction):
        raise NotFound("interaction")
    return interaction


async def _workable(session: AsyncSession, actor: Actor, interaction_id: uuid.UUID) -> Interaction:
    """Visible, and the caller is its agent or a supervisor (an offer alone is not enough)."""
    interaction = await visible_interaction(session, actor, interaction_id)
    if actor.role not in SUPERVISING and interaction.agent_id != actor.user_id:
        raise PermissionDenied("Only the assigned agent or a supervisor can do this.")
    return interaction


async def list_interactions(
    session: AsyncSession,
    actor: Actor,
    *,
    statuses: Sequence[InteractionStatus] = (),
    queue_id: uuid.UUID | None = None,
    agent_id: uuid.UUID | None = None,
    channel: Channel | None = None,
    contact_id: uuid.UUID | None = None,
    limit: int = 50,
    offset: int = 0,
) -> Sequence[Interaction]:
    """Most recently active first. Without ``statuses``: an agent's inbox (assigned and
    wrap-up) for agents, every open interaction for supervisors and admins."""
    require_staff(actor)
    if not statuses:
        statuses = AGENT_INBOX if actor.role not in SUPERVISING else OPEN_STATUSES
    query = select(Interaction).where(visible_to(actor), Interaction.status.in_(list(statuses)))
    if queue_id is not None:
        query = query.where(Interaction.queue_id == queue_id)
    if agent_id is not None:
        query = query.where(Interaction.agent_id == agent_id)
    if channel is not None:
        query = query.where(Interaction.channel == channel)
    if contact_id is not None:
        query = query.where(Interaction.contact_id == contact_id)
    activity = func.coalesce(Interaction.last_message_at, Interaction.created_at)
    query = query.order_by(activity.desc(), Interaction.id).limit(limit).offset(offset)
    return (await session.scalars(query)).all()


async def describe(
    session: AsyncSession, interactions: Sequence[Interaction]
) -> list[InteractionOut]:
    """Interactions with their contact, queue, agent and disposition resolved (one query per
    kind, whatever the number of interactions)."""
    if not interactions:
        return []
    contact_ids = {i.contact_id for i in interactions}
    queue_ids = {i.queue_id for i in interactions if i.queue_id}
    agent_ids = {i.agent_id for i in interactions if i.agent_id}
    contacts = {
        c.id: c for c in await session.scalars(select(Contact).where(Contact.id.in_(contact_ids)))
    }
    queues = (
        {q.id: q for q in await session.scalars(select(Queue).where(Queue.id.in_(queue_ids)))}
        if queue_ids
        else {}
    )
    agents = (
        {u.id: u for u in await session.scalars(select(User).where(User.id.in_(agent_ids)))}
        if agent_ids
        else {}
    )
    coded = {(i.queue_id, i.disposition_code) for i in interactions if i.disposition_code}
    labels: dict[tuple[uuid.UUID | None, str | None], str] = {}
    if coded:
        rows = await session.scalars(
            select(Disposition).where(
                Disposition.queue_id.in_({q for q, _ in coded if q}),
                Disposition.code.in_({c for _, c in coded}),
            )
        )
        labels = {(d.queue_id, d.code): d.label for d in rows}
    described = []
    for i in interactions:
        contact = contacts[i.contact_id]
        queue = queues.get(i.queue_id) if i.queue_id else None
        agent = agents.get(i.agent_id) if i.agent_id else None
        described.append(
            InteractionOut(
                id=i.id,
                channel=i.channel,
                status=i.status,
                subject=i.subject,
                priority=i.priority,
                contact=ContactSummary(
                    id=contact.id, name=contact.name, email=contact.email, phone=contact.phone
                ),
                queue=QueueSummary(id=queue.id, name=queue.name) if queue else None,
                agent=AgentSummary(id=agent.id, name=agent.name) if agent else None,
                labels=list(i.labels or []),
                disposition_code=i.disposition_code,
                disposition_label=labels.get((i.queue_id, i.disposition_code)),
                unread_count=i.unread_count,
                created_at=i.created_at,
                enqueued_at=i.enqueued_at,
                assigned_at=i.assigned_at,
                first_response_at=i.first_response_at,
                wrap_up_until=i.wrap_up_until,
                closed_at=i.closed_at,
                last_message_at=i.last_message_at,
            )
        )
    return described


async def messages_of(
    session: AsyncSession, actor: Actor, interaction_id: uuid.UUID
) -> Sequence[Message]:
    """The whole thread, oldest first, internal notes included (staff only)."""
    await visible_interaction(session, actor, interaction_id)
    return await list_messages(session, interaction_id, include_internal=True)


async def message_of(
    session: AsyncSession, actor: Actor, interaction_id: uuid.UUID, message_id: uuid.UUID
) -> Message:
    await visible_interaction(session, actor, interaction_id)
    message = await session.get(Message, message_id)
    if message is None or message.interaction_id != interaction_id:
        raise NotFound("message")
    return message


async def timeline_of(
    session: AsyncSession, actor: Actor, interaction_id: uuid.UUID
) -> Sequence[InteractionEvent]:
    await visible_interaction(session, actor, interaction_id)
    return await timeline(session, interaction_id)


async def _replayed(
    session: AsyncSession,
    interaction: Interaction,
    actor: Actor,
    client_id: str | None,
    direction: MessageDirection,
) -> Message | None:
    """The message this ``client_id`` already produced, if this is a re-send. A client id
    used by someone else in the thread (or for another kind of message) is a conflict."""
    if client_id is None:
        return None
    existing = await _by_client_id(session, interaction.id, client_id)
    if existing is None:
        return None
    if existing.direction is not direction or existing.author_user_id != actor.user_id:
        raise Conflict(
            "This client_id is already used by another message of the interaction.",
            code="client_id_taken",
            field="client_id",
        )
    return existing


async def reply(
    session: AsyncSession,
    actor: Actor,
    interaction_id: uuid.UUID,
    *,
    body: str,
    attachment_ids: Sequence[uuid.UUID] = (),
    client_id: str | None = None,
    template: dict[str, Any] | None = None,
) -> tuple[Message, bool]:
    """An agent's (or supervisor's) message to the customer, stored ``pending`` for the
    channel to deliver (``template``: an approved WhatsApp template, ``body`` its text).
    Returns the message and whether it is new: a re-send with the same ``client_id``
    returns the stored message and changes nothing, even after the close."""
    interaction = await _workable(session, actor, interaction_id)
    replayed = await _replayed(session, interaction, actor, client_id, MessageDirection.outbound)
    if replayed is not None:
        return replayed, False
    if not interaction.status.is_open:
        raise Conflict("The interaction is closed.", code="interaction_closed")
    files = await attachments.get_many(session, attachment_ids)
    message, created = await add_message(
        session,
        interaction,
        direction=MessageDirection.outbound,
        author_kind="agent",
        body=body,
        author_user_id=actor.user_id,
        attachments=[f.reference() for f in files],
        client_id=client_id,
    )
    if created:
        # Provider channels (WhatsApp, Telegram, SMS, API) deliver through the outbox, in
        # this same transaction; webchat delivers over its own websocket.
        from atiende.channels import outbox

        await outbox.enqueue(session, interaction, message, template=template)
    if created and interaction.agent_id == actor.user_id and interaction.unread_count:
        # Answering is reading: the agent has seen what they reply to.
        interaction.unread_count = 0
        await session.flush()
    return message, created


async def add_note(
    session: AsyncSession,
    actor: Actor,
    interaction_id: uuid.UUID,
    *,
    body: str,
    client_id: str | None = None,
) -> tuple[Message, bool]:
    """An internal note by the assigned agent or a supervisor; allowed after the close too
    (quality reviews annotate finished conversations)."""
    interaction = await _workable(session, actor, interaction_id)
    replayed = await _replayed(session, interaction, actor, client_id, MessageDirection.internal)
    if replayed is not None:
        return replayed, False
    return await add_message(
        session,
        interaction,
        direction=MessageDirection.internal,
        author_kind="agent",
        body=body,
        author_user_id=actor.user_id,
        client_id=client_id,
    )


async def set_labels(
    session: AsyncSession, actor: Actor, interaction_id: uuid.UUID, labels: Sequence[str]
) -> Interaction:
    """Replace the interaction's labels (duplicates dropped, order kept). A change is written
    to the timeline and announced as ``interaction.changed`` with ``change = "labels"``."""
    interaction = await _workable(session, actor, interaction_id)
    wanted = list(dict.fromkeys(labels))
    current = list(interaction.labels or [])
    if wanted == current:
        return interaction
    interaction.labels = wanted
    await record(
        session,
        interaction,
        "labels",
        actor_id=actor.user_id,
        added=[label for label in wanted if label not in current],
        removed=[label for label in current if label not in wanted],
    )
    await changed(session, interaction, "labels")
    return interaction


async def mark_read(session: AsyncSession, actor: Actor, interaction_id: uuid.UUID) -> Interaction:
    """The assigned agent has read the thread: the unread counter goes back to zero. A
    supervisor looking in does not clear the agent's counter."""
    interaction = await visible_interaction(session, actor, interaction_id)
    if interaction.agent_id == actor.user_id and interaction.unread_count:
        interaction.unread_count = 0
        await session.flush()
    return interaction


async def move_contact(
    session: AsyncSession, from_contact_id: uuid.UUID, to_contact_id: uuid.UUID
) -> int:
    """Give every interaction of one contact to another (a contact merge); returns how many."""
    result = await session.execute(
        update(Interaction)
        .where(Interaction.contact_id == from_contact_id)
        .values(contact_id=to_contact_id)
    )
    return int(getattr(result, "rowcount", 0) or 0)


# Delivery statuses only move forward; a late "delivered" after "read" changes nothing.
_STATUS_RANK = {
    MessageStatus.pending: 0,
    MessageStatus.sent: 1,
    MessageStatus.delivered: 2,
    MessageStatus.read: 3,
}


AGENT_TYPING_INTERVAL_SECONDS = 3.0
_agent_typing: dict[tuple[uuid.UUID, uuid.UUID | None], float] = {}


async def agent_typing(session: AsyncSession, actor: Actor, interaction_id: uuid.UUID) -> bool:
    """Tell the customer the agent is typing (the webchat widget shows it). Pulses closer
    than ``AGENT_TYPING_INTERVAL_SECONDS`` are dropped; returns whether one was sent."""
    interaction = await _workable(session, actor, interaction_id)
    if not interaction.status.is_open:
        return False
    key, instant = (interaction.id, actor.user_id), time.monotonic()
    if instant - _agent_typing.get(key, float("-inf")) < AGENT_TYPING_INTERVAL_SECONDS:
        return False
    if len(_agent_typing) > 10_000:  # forget old pulses; a lost one only costs one event
        _agent_typing.clear()
    _agent_typing[key] = instant
    await emit(
        session,
        Typing(interaction_id=interaction.id, author_kind="agent"),
        tenant_id=interaction.tenant_id,
        audience=content_audience(interaction),
    )
    return True


async def set_message_status(
    session: AsyncSession, message: Message, status: MessageStatus, *, error: str | None = None
) -> bool:
    """Record a delivery status reported by the channel (a provider callback, the widget).
    Returns whether it changed anything. ``failed`` is final; other statuses never regress."""
    if message.status is MessageStatus.failed or message.status is status:
        return False
    if status is not MessageStatus.failed and _STATUS_RANK.get(status, 0) <= _STATUS_RANK.get(
        message.status, -1
    ):
        return False
    message.status = status
    message.error = error if status is MessageStatus.failed else message.error
    message.updated_at = now(session)
    await session.flush()
    await emit(
        session,
        MessageStatusChanged(
            interaction_id=message.interaction_id, message_id=message.id, status=status.value
        ),
        tenant_id=message.tenant_id,
        audience=content_audience(await get_interaction(session, message.interaction_id)),
    )
    return True
