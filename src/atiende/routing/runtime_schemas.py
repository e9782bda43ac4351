"""Typed input and output of the routing runtime API (desktop and wallboard)."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from atiende.routing.models import Presence


class PresenceChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    presence: Presence
    break_reason_id: uuid.UUID | None = None


class AgentStateOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    user_id: uuid.UUID
    licence: str
    presence: Presence
    break_reason_id: uuid.UUID | None
    presence_since: datetime
    voice_capacity: int
    chat_capacity: int
    no_answer_count: int
    max_no_answer: int


class OfferOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    interaction_id: uuid.UUID
    agent_id: uuid.UUID
    status: str
    created_at: datetime
    expires_at: datetime


class InteractionBrief(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    channel: str
    status: str
    contact_id: uuid.UUID
    queue_id: uuid.UUID | None
    agent_id: uuid.UUID | None
    subject: str | None
    unread_count: int
    enqueued_at: datetime | None
    assigned_at: datetime | None
    wrap_up_until: datetime | None
    last_message_at: datetime | None
    created_at: datetime


class TransferRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    agent_id: uuid.UUID | None = None
    queue_id: uuid.UUID | None = None
    note: str | None = Field(default=None, max_length=5000)


class ReassignRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    agent_id: uuid.UUID


class CloseRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    disposition_code: str | None = Field(default=None, max_length=50)


class QueueStatsOut(BaseModel):
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


class AgentBoardOut(BaseModel):
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


class WallboardOut(BaseModel):
    queues: list[QueueStatsOut]
    agents: list[AgentBoardOut]
    generated_at: datetime
