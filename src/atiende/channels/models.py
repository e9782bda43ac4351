"""Channel accounts of a tenant (a WhatsApp number, a Telegram bot, an SMS number, an API
endpoint), the raw webhooks they received and the deliveries of agents' messages."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Enum, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from atiende.channels.base import ChannelKind
from atiende.core.db import Base, IdMixin, TenantScoped


def _enum(kind: type[enum.Enum]) -> Enum:
    return Enum(kind, native_enum=False, length=20, validate_strings=True)


class InboundStatus(enum.StrEnum):
    received = "received"  # stored and acknowledged; processing is queued
    processed = "processed"
    rejected = "rejected"  # authentic but malformed: kept for inspection
    failed = "failed"  # processing raised; see error


class DeliveryStatus(enum.StrEnum):
    queued = "queued"
    sent = "sent"
    failed = "failed"


class ChannelAccount(IdMixin, TenantScoped, Base):
    __tablename__ = "channel_accounts"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)

    kind: Mapped[ChannelKind] = mapped_column(_enum(ChannelKind))
    name: Mapped[str] = mapped_column(String(100))
    queue_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("queues.id", ondelete="SET NULL"))
    is_active: Mapped[bool] = mapped_column(default=True)
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # Provider secrets, encrypted with the installation's key (core/sealing.py); never
    # returned by the API.
    sealed_secrets: Mapped[str] = mapped_column(Text)
    webhook_key: Mapped[str] = mapped_column(String(64), unique=True)
    # The next instant a message may leave (a rate limit shared by every worker).
    next_send_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class InboundEvent(IdMixin, TenantScoped, Base):
    """A webhook as received, stored before it is acknowledged."""

    __tablename__ = "channel_inbound_events"
    # Every insert updates each index, and intake is the busiest insert there is: the
    # unique key also finds an account's events (for the cascade), and the one listing,
    # an account's newest events, has an index of its own (no index on the status alone).
    __table_args__ = (
        UniqueConstraint("account_id", "provider_event_id"),
        Index("ix_channel_inbound_events_account_received", "account_id", "received_at"),
    )

    account_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("channel_accounts.id", ondelete="CASCADE")
    )
    provider_event_id: Mapped[str] = mapped_column(String(200))
    method: Mapped[str] = mapped_column(String(10))
    url: Mapped[str] = mapped_column(Text)
    headers: Mapped[dict[str, str]] = mapped_column(JSON)
    body: Mapped[str] = mapped_column(Text)  # latin-1 round trip of the raw bytes
    status: Mapped[InboundStatus] = mapped_column(_enum(InboundStatus))
    error: Mapped[str | None] = mapped_column(Text)
    received_at: Mapped[datetime]
    processed_at: Mapped[datetime | None]


class Delivery(IdMixin, TenantScoped, Base):
    """One agent message on its way out through the account's provider (the outbox)."""

    __tablename__ = "channel_deliveries"

    account_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("channel_accounts.id", ondelete="CASCADE"), index=True
    )
    message_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("messages.id", ondelete="CASCADE"), unique=True
    )
    recipient: Mapped[str] = mapped_column(String(200))
    template: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    status: Mapped[DeliveryStatus] = mapped_column(_enum(DeliveryStatus), index=True)
    attempts: Mapped[int] = mapped_column(default=0)
    provider_message_id: Mapped[str | None] = mapped_column(String(200), index=True)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]
