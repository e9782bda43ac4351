from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from atiende.conversations.models import Channel, InteractionStatus

MAX_BODY = 10_000
MAX_LABELS = 20


def _label(value: str) -> str:
    value = " ".join(value.split())
    if not value:
        raise ValueError("a label cannot be blank")
    return value


Label = Annotated[str, Field(max_length=50), AfterValidator(_label)]
ClientId = Annotated[
    str,
    Field(
        min_length=1,
        max_length=100,
        description="The client's own id for this message; sending it again returns the "
        "message already stored instead of a second one.",
    ),
]


class ContactSummary(BaseModel):
    id: uuid.UUID
    name: str | None
    email: str | None
    phone: str | None


class QueueSummary(BaseModel):
    id: uuid.UUID
    name: str


class AgentSummary(BaseModel):
    id: uuid.UUID
    name: str


class InteractionOut(BaseModel):
    id: uuid.UUID
    channel: Channel
    status: InteractionStatus
    subject: str | None
    priority: int
    contact: ContactSummary
    queue: QueueSummary | None
    agent: AgentSummary | None
    labels: list[str]
    disposition_code: str | None
    disposition_label: str | None
    unread_count: int
    created_at: datetime
    enqueued_at: datetime | None
    assigned_at: datetime | None
    first_response_at: datetime | None
    wrap_up_until: datetime | None
    closed_at: datetime | None
    last_message_at: datetime | None


class MessageOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    interaction_id: uuid.UUID
    direction: str
    author_kind: str
    author_user_id: uuid.UUID | None
    body: str
    attachments: list[dict[str, Any]]
    client_id: str | None
    status: str
    error: str | None
    created_at: datetime
    updated_at: datetime


class ReplyCreate(BaseModel):
    """An agent's message to the customer: text, files, or both."""

    model_config = ConfigDict(extra="forbid")

    body: str = Field(default="", max_length=MAX_BODY)
    attachment_ids: list[uuid.UUID] = Field(default_factory=list, max_length=10)
    client_id: ClientId | None = None

    @model_validator(mode="after")
    def _not_empty(self) -> ReplyCreate:
        if not self.body.strip() and not self.attachment_ids:
            raise ValueError("a reply needs a body or at least one attachment")
        return self


class NoteCreate(BaseModel):
    """An internal note: seen by agents and supervisors, never sent to the customer."""

    model_config = ConfigDict(extra="forbid")

    body: str = Field(min_length=1, max_length=MAX_BODY)
    client_id: ClientId | None = None

    @model_validator(mode="after")
    def _not_blank(self) -> NoteCreate:
        if not self.body.strip():
            raise ValueError("a note cannot be blank")
        return self


class LabelsUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    labels: list[Label] = Field(max_length=MAX_LABELS)


class TimelineEntryOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    type: str
    queue_id: uuid.UUID | None
    agent_id: uuid.UUID | None
    actor_id: uuid.UUID | None
    data: dict[str, Any]
    occurred_at: datetime
