"""Telephony records owned by a tenant: the PBX extensions its users dial from, and the PBXs
(Asterisk servers) Atiende drives through ARI."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from atiende.core.db import Base, IdMixin, TenantScoped

DEFAULT_APP_NAME = "atiende"


class Extension(IdMixin, TenantScoped, Base):
    """A PBX user: an extension number, held by one user (agent, supervisor or admin) or
    free. Cloud tenants get one per purchased PBX user."""

    __tablename__ = "extensions"
    __table_args__ = (UniqueConstraint("tenant_id", "number"),)

    number: Mapped[str] = mapped_column(String(20))
    user_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), unique=True
    )
    created_at: Mapped[datetime]


class Pbx(IdMixin, TenantScoped, Base):
    """An Asterisk server of a tenant, reached through its REST interface (ARI) as the Stasis
    application ``app_name``. A tenant may have several."""

    __tablename__ = "pbxs"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)

    name: Mapped[str] = mapped_column(String(100))
    # The ARI base URL, e.g. http://10.0.0.5:8088/ari
    ari_url: Mapped[str] = mapped_column(String(500))
    ari_username: Mapped[str] = mapped_column(String(100))
    # {"ari_password": ...} sealed with the installation's key (core/sealing.py); never
    # returned or printed unless asked for explicitly.
    sealed_ari_password: Mapped[str] = mapped_column(Text)
    app_name: Mapped[str] = mapped_column(String(100), default=DEFAULT_APP_NAME)
    created_at: Mapped[datetime]


class VoiceNumber(IdMixin, TenantScoped, Base):
    """A number (DID) of the tenant: calls to it enter the application and wait in its queue.
    The generated dialplan passes the tenant and the number as the Stasis arguments."""

    __tablename__ = "voice_numbers"
    __table_args__ = (UniqueConstraint("tenant_id", "number"),)

    number: Mapped[str] = mapped_column(String(21))
    queue_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("queues.id", ondelete="CASCADE"))
    created_at: Mapped[datetime]


class Call(IdMixin, TenantScoped, Base):
    """One phone call of an interaction, as the PBX carries it: which channels and bridge are
    its, so any node can act on it (hold, hang up, record) and call control can find it again
    after a restart. Written only by ``voice.calls``."""

    __tablename__ = "calls"
    __table_args__ = (UniqueConstraint("pbx_id", "customer_channel_id"),)

    interaction_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("interactions.id", ondelete="CASCADE"), index=True
    )
    pbx_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("pbxs.id", ondelete="CASCADE"))
    direction: Mapped[str] = mapped_column(String(10))  # inbound | outbound
    customer_channel_id: Mapped[str] = mapped_column(String(150))
    agent_channel_id: Mapped[str | None] = mapped_column(String(150))
    agent_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    bridge_id: Mapped[str | None] = mapped_column(String(150))
    caller_number: Mapped[str | None] = mapped_column(String(40))
    number: Mapped[str | None] = mapped_column(String(21))  # the DID called (inbound)
    state: Mapped[str] = mapped_column(String(20))  # the customer leg's state
    on_hold: Mapped[bool] = mapped_column(default=False)
    muted: Mapped[bool] = mapped_column(default=False)
    # The recording of the talk (bridge recording), its state: recording | paused | done
    recording_name: Mapped[str | None] = mapped_column(String(150))
    recording_state: Mapped[str | None] = mapped_column(String(20))
    started_at: Mapped[datetime]
    answered_at: Mapped[datetime | None]
    connected_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]
    end_cause: Mapped[str | None] = mapped_column(String(30))
