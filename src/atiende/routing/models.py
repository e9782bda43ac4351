from __future__ import annotations

import enum
import uuid
from datetime import date, datetime

from sqlalchemy import JSON, Date, Enum, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from atiende.core.db import Base, IdMixin, TenantScoped


def _enum(kind: type[enum.Enum]) -> Enum:
    return Enum(kind, native_enum=False, length=20, validate_strings=True)


class Strategy(enum.StrEnum):
    longest_idle = "longest_idle"
    round_robin = "round_robin"
    least_occupied = "least_occupied"
    skills_weighted = "skills_weighted"
    ring_all = "ring_all"  # voice only


class ClosedAction(enum.StrEnum):
    auto_reply = "auto_reply"  # answer with the closed message, keep it queued for opening
    keep_queued = "keep_queued"  # say nothing, wait for opening
    transfer = "transfer"  # move to another queue
    # Voice: the caller hears the queue's voicemail prompt and leaves a message; a chat gets
    # the closed message and waits for opening (as auto_reply).
    voicemail = "voicemail"
    # Voice: the call is forwarded to the queue's forward number; a chat as auto_reply.
    forward = "forward"


class MaxWaitAction(enum.StrEnum):
    """What happens to an interaction still waiting after the queue's max wait."""

    overflow = "overflow"  # to the overflow queue (nothing without one)
    message = "message"  # voice: the queue's message_prompt, then the call ends (chats: overflow)
    voicemail = "voicemail"  # voice: leave a message (chats: overflow)
    forward = "forward"  # voice: forwarded to the forward number (chats: overflow)


class Recording(enum.StrEnum):
    """Whether the queue's calls are recorded (voice only)."""

    never = "never"
    always = "always"  # from the moment the agent answers
    on_demand = "on_demand"  # when the agent starts it from the desktop


class LicenceType(enum.StrEnum):
    voice = "voice"
    omnichannel = "omnichannel"


class Presence(enum.StrEnum):
    offline = "offline"
    available = "available"
    on_break = "break"


class OfferStatus(enum.StrEnum):
    pending = "pending"
    accepted = "accepted"
    rejected = "rejected"
    timed_out = "timed_out"
    cancelled = "cancelled"  # another agent took it (ring-all) or it left the queue


class Skill(IdMixin, TenantScoped, Base):
    __tablename__ = "skills"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)

    name: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime]


class Schedule(IdMixin, TenantScoped, Base):
    """Opening hours (horario): per weekday a list of ``["HH:MM", "HH:MM"]`` intervals, read
    in the schedule's time zone; the tenant's holidays close it all day."""

    __tablename__ = "schedules"

    name: Mapped[str] = mapped_column(String(100))
    time_zone: Mapped[str] = mapped_column(String(64))
    # {"mon": [["09:00", "18:00"]], "tue": [...], ...}; a missing day is closed.
    weekly: Mapped[dict[str, list[list[str]]]] = mapped_column(JSON)
    created_at: Mapped[datetime]


class Holiday(IdMixin, TenantScoped, Base):
    __tablename__ = "holidays"
    __table_args__ = (UniqueConstraint("tenant_id", "day"),)

    day: Mapped[date] = mapped_column(Date)
    name: Mapped[str] = mapped_column(String(100))


class Queue(IdMixin, TenantScoped, Base):
    __tablename__ = "queues"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)

    name: Mapped[str] = mapped_column(String(100))
    channels: Mapped[list[str]] = mapped_column(JSON)
    strategy: Mapped[Strategy] = mapped_column(_enum(Strategy), default=Strategy.longest_idle)
    # {"<skill id>": <minimum level 1-10>}
    required_skills: Mapped[dict[str, int]] = mapped_column(JSON, default=dict)
    priority: Mapped[int] = mapped_column(default=0)
    # Service level: answered within this many seconds counts as "in service level".
    service_level_seconds: Mapped[int] = mapped_column(default=20)
    service_level_target: Mapped[int] = mapped_column(default=80)  # percent
    schedule_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("schedules.id", ondelete="SET NULL")
    )
    closed_action: Mapped[ClosedAction] = mapped_column(
        _enum(ClosedAction), default=ClosedAction.auto_reply
    )
    closed_message: Mapped[str | None] = mapped_column(Text)
    closed_queue_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("queues.id", ondelete="SET NULL")
    )
    max_wait_seconds: Mapped[int | None]
    overflow_queue_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("queues.id", ondelete="SET NULL")
    )
    max_wait_action: Mapped[MaxWaitAction] = mapped_column(
        _enum(MaxWaitAction),
        default=MaxWaitAction.overflow,
        server_default=MaxWaitAction.overflow.value,
    )
    # The number (E.164) the forward actions dial through the PBX's outbound route.
    forward_number: Mapped[str | None] = mapped_column(String(40))
    # What a caller hears before leaving a voicemail (media as IVR prompts; None: vm-intro).
    voicemail_prompt: Mapped[str | None] = mapped_column(String(200))
    # What a caller hears before the call ends when the queue answers with a message: closed
    # hours with closed_action auto_reply, max wait with max_wait_action message (media as IVR
    # prompts; None: a caller at a closed auto_reply queue waits with music instead).
    message_prompt: Mapped[str | None] = mapped_column(String(200))
    # Every this many seconds a waiting caller hears their position (0: never).
    announce_every_seconds: Mapped[int] = mapped_column(default=0, server_default="0")
    max_queue_length: Mapped[int | None]
    wrap_up_seconds: Mapped[int] = mapped_column(default=60)
    offer_timeout_seconds: Mapped[int] = mapped_column(default=30)
    auto_accept: Mapped[bool] = mapped_column(default=False)
    # A returning contact goes first to their last agent for this long (0 = off).
    sticky_seconds: Mapped[int] = mapped_column(default=0)
    # Ageing: every this many seconds of waiting count as one more priority point.
    ageing_seconds: Mapped[int] = mapped_column(default=60)
    recording: Mapped[Recording] = mapped_column(
        _enum(Recording), default=Recording.never, server_default=Recording.never.value
    )
    created_at: Mapped[datetime]


class QueueMember(TenantScoped, Base):
    """Which agents serve which queues (skills then narrow who gets what)."""

    __tablename__ = "queue_members"

    queue_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("queues.id", ondelete="CASCADE"), primary_key=True
    )
    agent_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("agents.user_id", ondelete="CASCADE"), primary_key=True, index=True
    )


class BreakReason(IdMixin, TenantScoped, Base):
    __tablename__ = "break_reasons"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)

    name: Mapped[str] = mapped_column(String(100))
    is_active: Mapped[bool] = mapped_column(default=True)
    # The reason used when max-no-answer puts an agent on break.
    is_no_answer: Mapped[bool] = mapped_column(default=False)


class Disposition(IdMixin, TenantScoped, Base):
    __tablename__ = "dispositions"
    __table_args__ = (UniqueConstraint("queue_id", "code"),)

    queue_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("queues.id", ondelete="CASCADE"))
    code: Mapped[str] = mapped_column(String(50))
    label: Mapped[str] = mapped_column(String(100))


class Agent(TenantScoped, Base):
    """A user's life as an agent: licence, capacity, presence and routing counters."""

    __tablename__ = "agents"
    __table_args__ = (Index("ix_agents_presence", "tenant_id", "presence"),)

    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    licence: Mapped[LicenceType] = mapped_column(_enum(LicenceType))
    voice_capacity: Mapped[int] = mapped_column(default=1)
    chat_capacity: Mapped[int] = mapped_column(default=4)
    presence: Mapped[Presence] = mapped_column(_enum(Presence), default=Presence.offline)
    break_reason_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("break_reasons.id", ondelete="SET NULL")
    )
    presence_since: Mapped[datetime]
    # Longest-idle orders by this: when the agent last became free.
    idle_since: Mapped[datetime]
    last_offer_at: Mapped[datetime | None]
    no_answer_count: Mapped[int] = mapped_column(default=0)
    max_no_answer: Mapped[int] = mapped_column(default=3)
    # Work held right now per capacity pool (offered, assigned or in wrap-up). Kept by the
    # routing service in the same transactions that move work, and recounted from the
    # interactions by the sweep; routing reads it to find agents with room without scanning.
    voice_load: Mapped[int] = mapped_column(default=0, server_default="0")
    chat_load: Mapped[int] = mapped_column(default=0, server_default="0")
    extension: Mapped[str | None] = mapped_column(String(32))


class AgentSkill(TenantScoped, Base):
    __tablename__ = "agent_skills"

    agent_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("agents.user_id", ondelete="CASCADE"), primary_key=True
    )
    skill_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("skills.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    level: Mapped[int]


class AgentStatusLog(IdMixin, TenantScoped, Base):
    """Every presence period of an agent, for login / break / occupancy reports."""

    __tablename__ = "agent_status_log"
    __table_args__ = (Index("ix_agent_status_log_agent", "agent_id", "started_at"),)

    agent_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("agents.user_id", ondelete="CASCADE"))
    presence: Mapped[Presence] = mapped_column(_enum(Presence))
    break_reason_id: Mapped[uuid.UUID | None]
    started_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]
    changed_by: Mapped[uuid.UUID | None]


class Offer(IdMixin, TenantScoped, Base):
    """A reservation: this interaction is offered to this agent until it expires."""

    __tablename__ = "offers"
    __table_args__ = (
        Index("ix_offers_interaction", "interaction_id", "status"),
        Index("ix_offers_agent", "agent_id", "status"),
    )

    interaction_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("interactions.id", ondelete="CASCADE")
    )
    agent_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("agents.user_id", ondelete="CASCADE"))
    status: Mapped[OfferStatus] = mapped_column(_enum(OfferStatus))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    responded_at: Mapped[datetime | None]


class CannedResponse(IdMixin, TenantScoped, Base):
    """A saved reply: tenant-wide (no owner) or personal; found by ``/shortcut``."""

    __tablename__ = "canned_responses"
    __table_args__ = (UniqueConstraint("tenant_id", "owner_id", "shortcut"),)

    owner_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    shortcut: Mapped[str] = mapped_column(String(50))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]
