"""Events about interactions and messages, for the desktop, the wallboard and webchat."""

from __future__ import annotations

import uuid

from atiende.core.events import DomainEvent


class InteractionChanged(DomainEvent):
    """Status, queue or agent of an interaction changed (one event type for the lists)."""

    event_type = "interaction.changed"
    interaction_id: uuid.UUID
    status: str
    channel: str
    queue_id: uuid.UUID | None
    agent_id: uuid.UUID | None
    change: str  # the timeline event type that caused it: queued, offered, assigned, ...


class MessageAdded(DomainEvent):
    event_type = "message.added"
    interaction_id: uuid.UUID
    message_id: uuid.UUID
    direction: str
    author_kind: str
    agent_id: uuid.UUID | None
    body: str
    attachments: list[dict[str, object]]
    created_at: str


class MessageStatusChanged(DomainEvent):
    event_type = "message.status"
    interaction_id: uuid.UUID
    message_id: uuid.UUID
    status: str


class Typing(DomainEvent):
    """Transient: who is typing in an interaction (not meaningful after the fact)."""

    event_type = "interaction.typing"
    interaction_id: uuid.UUID
    author_kind: str
