from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Enum,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from atiende.core.db import Base, IdMixin, TenantScoped


class Channel(enum.StrEnum):
    voice = "voice"
    webchat = "webchat"
    whatsapp = "whatsapp"
    telegram = "telegram"
    sms = "sms"
    api = "api"

    @property
    def is_digital(self) -> bool:
        return self is not Channel.voice


class InteractionStatus(enum.StrEnum):
    queued = "queued"  # waiting in a queue for an agent
    offered = "offered"  # reserved for one agent (or ringing several: ring-all)
    assigned = "assigned"  # an agent is working it
    wrap_up = "wrap_up"  # the agent is finishing (disposition), still holding capacity
    closed = "closed"
    abandoned = "abandoned"  # the customer left before an agent took it

    @property
    def is_open(self) -> bool:
        return self in {self.queued, self.offered, self.assigned, self.wrap_up}


OPEN_STATUSES = (
    InteractionStatus.queued,
    InteractionStatus.offered,
    InteractionStatus.assigned,
    InteractionStatus.wrap_up,
)


class Interaction(IdMixin, TenantScoped, Base):
    __tablename__ = "interactions"
    __table_args__ = (
        Index("ix_interactions_routing", "tenant_id", "status", "queue_id"),
        Index("ix_interactions_agent", "tenant_id", "agent_id", "status"),
    )

    channel: Mapped[Channel] = mapped_column(
        Enum(Channel, native_enum=False, length=20, validate_strings=True)
    )
    status: Mapped[InteractionStatus] = mapped_column(
        Enum(InteractionStatus, native_enum=False, length=20, validate_strings=True)
    )
    contact_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("contacts.id", ondelete="RESTRICT"), index=True
    )
    queue_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("queues.id", ondelete="SET NULL"), index=True
    )
    # The agent (user id) working it, once assigned; kept after close for history and stickiness.
    agent_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    # The channel endpoint it came through (a webchat widget, a WhatsApp number...).
    source_id: Mapped[uuid.UUID | None] = mapped_column(index=True)
    subject: Mapped[str | None] = mapped_column(String(200))
    priority: Mapped[int] = mapped_column(default=0)
    # When it (re-)entered its current queue: the head of a queue is the oldest of these.
    enqueued_at: Mapped[datetime | None]
    first_enqueued_at: Mapped[datetime | None]
    assigned_at: Mapped[datetime | None]
    first_response_at: Mapped[datetime | None]
    wrap_up_until: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
    disposition_code: Mapped[str | None] = mapped_column(String(50))
    labels: Mapped[list[str]] = mapped_column(JSON, default=list)
    last_message_at: Mapped[datetime | None]
    unread_count: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime]


class MessageDirection(enum.StrEnum):
    inbound = "inbound"  # from the customer
    outbound = "outbound"  # to the customer
    internal = "internal"  # a note: never leaves Atiende


class MessageStatus(enum.StrEnum):
    received = "received"
    pending = "pending"
    sent = "sent"
    delivered = "delivered"
    read = "read"
    failed = "failed"


class Message(IdMixin, TenantScoped, Base):
    __tablename__ = "messages"
    # A re-sent message carries the same client id and is not stored twice.
    __table_args__ = (
        UniqueConstraint("interaction_id", "client_id"),
        Index("ix_messages_thread", "interaction_id", "created_at"),
    )

    interaction_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("interactions.id", ondelete="CASCADE")
    )
    direction: Mapped[MessageDirection] = mapped_column(
        Enum(MessageDirection, native_enum=False, length=20, validate_strings=True)
    )
    # Who wrote it: the contact, a user (agent, supervisor), a bot or the system.
    author_kind: Mapped[str] = mapped_column(String(20))
    author_user_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    body: Mapped[str] = mapped_column(Text, default="")
    attachments: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    client_id: Mapped[str | None] = mapped_column(String(100))
    provider_id: Mapped[str | None] = mapped_column(String(200), index=True)
    status: Mapped[MessageStatus] = mapped_column(
        Enum(MessageStatus, native_enum=False, length=20, validate_strings=True)
    )
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class InteractionEvent(TenantScoped, Base):
    """The append-only timeline of an interaction: the source of reports."""

    __tablename__ = "interaction_events"
    __table_args__ = (
        Index("ix_interaction_events_interaction", "interaction_id", "id"),
        Index("ix_interaction_events_tenant_time", "tenant_id", "occurred_at"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    interaction_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("interactions.id", ondelete="CASCADE")
    )
    # created, queued, offered, accepted, rejected, timed_out, assigned, transferred,
    # wrap_up, closed, abandoned, overflowed, message_in, message_out, note
    type: Mapped[str] = mapped_column(String(30))
    queue_id: Mapped[uuid.UUID | None]
    agent_id: Mapped[uuid.UUID | None]
    actor_id: Mapped[uuid.UUID | None]
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    occurred_at: Mapped[datetime]
