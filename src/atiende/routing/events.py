"""Events of the routing engine, for the agent desktop and the supervisor wallboard."""

from __future__ import annotations

import uuid

from atiende.core.events import DomainEvent


class AgentStateChanged(DomainEvent):
    event_type = "agent.state_changed"
    agent_id: uuid.UUID
    presence: str
    break_reason_id: uuid.UUID | None
    no_answer_count: int
    changed_by: uuid.UUID | None


class OfferCreated(DomainEvent):
    """An interaction is offered to an agent: the desktop pops it up (with a sound)."""

    event_type = "offer.created"
    offer_id: uuid.UUID
    interaction_id: uuid.UUID
    agent_id: uuid.UUID
    channel: str
    queue_id: uuid.UUID | None
    expires_at: str


class OfferClosed(DomainEvent):
    event_type = "offer.closed"
    offer_id: uuid.UUID
    interaction_id: uuid.UUID
    agent_id: uuid.UUID
    status: str
