"""Telephony records owned by a tenant: the PBX extensions its users dial from, the PBXs
(Asterisk servers) Atiende drives through ARI, its numbers, their IVR menus, and calls."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, String, Text, UniqueConstraint
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
    # Calls offered to its holder ask the phone to answer by itself (``Call-Info:
    # answer-after=0``, ``Alert-Info: auto-answer``): phones that allow it pick up at once.
    auto_answer: Mapped[bool] = mapped_column(default=False, server_default="0")
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
    # Outbound calls: the dial string, with {number} for the customer's number in E.164
    # without the "+" (e.g. PJSIP/{number}@trunk), and the caller id they show.
    outbound_dial: Mapped[str | None] = mapped_column(String(200))
    outbound_caller_id: Mapped[str | None] = mapped_column(String(80))
    created_at: Mapped[datetime]


class IvrMenu(IdMixin, TenantScoped, Base):
    """A menu callers hear and answer with their keypad (``voice.ivr`` runs it; written only
    by ``voice.ivr_store``)."""

    __tablename__ = "ivr_menus"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)

    name: Mapped[str] = mapped_column(String(100))
    # Asterisk media URIs separated by commas: sound:custom/welcome,digits:1
    prompt: Mapped[str] = mapped_column(String(500))
    invalid_prompt: Mapped[str] = mapped_column(String(500))
    timeout_seconds: Mapped[int] = mapped_column(default=5)
    max_attempts: Mapped[int] = mapped_column(default=3)
    # {"1": {"action": "queue", "queue_id": "..."}, "9": {"action": "repeat"}, ...}
    options: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # What happens when the attempts run out, the same shape; null: the number's queue.
    timeout_action: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime]


class VoiceNumber(IdMixin, TenantScoped, Base):
    """A number (DID) of the tenant: calls to it enter the application and wait in its queue,
    after its IVR menu when it has one. The generated dialplan passes the tenant and the
    number as the Stasis arguments."""

    __tablename__ = "voice_numbers"
    __table_args__ = (UniqueConstraint("tenant_id", "number"),)

    number: Mapped[str] = mapped_column(String(21))
    queue_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("queues.id", ondelete="CASCADE"))
    # Played first when set; the queue stays where the menu sends callers by default.
    ivr_menu_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("ivr_menus.id", ondelete="SET NULL")
    )
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
    # The outside number the call is being (state ``transferring``) or was forwarded to.
    forwarded_to: Mapped[str | None] = mapped_column(String(40))
    # An attended transfer under way: whom the agent consults (another agent, or an outside
    # number) and how far it got: ringing | talking. The caller is on hold meanwhile.
    consult_agent_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    consult_number: Mapped[str | None] = mapped_column(String(40))
    consult_state: Mapped[str | None] = mapped_column(String(20))
