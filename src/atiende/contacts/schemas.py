from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, EmailStr, Field

from atiende.contacts.models import IdentityKind


class IdentityIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: IdentityKind
    value: str = Field(min_length=1, max_length=254)


class IdentityOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    kind: IdentityKind
    value: str
    created_at: datetime


class ContactCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=200)
    email: EmailStr | None = None
    phone: str | None = Field(default=None, min_length=1, max_length=40)
    identities: list[IdentityIn] = Field(default_factory=list, max_length=20)


class ContactUpdate(BaseModel):
    """A partial update: fields left out stay as they are; ``null`` clears a field."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=200)
    email: EmailStr | None = None
    phone: str | None = Field(default=None, min_length=1, max_length=40)


class ContactMerge(BaseModel):
    model_config = ConfigDict(extra="forbid")

    other_id: uuid.UUID = Field(description="The contact absorbed into this one.")


class ContactOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str | None
    email: str | None
    phone: str | None
    merged_into_id: uuid.UUID | None
    created_at: datetime
    updated_at: datetime


class HistoryEntry(BaseModel):
    """One interaction of the contact, on any channel."""

    id: uuid.UUID
    channel: str
    status: str
    subject: str | None
    queue_id: uuid.UUID | None
    queue_name: str | None
    agent_id: uuid.UUID | None
    agent_name: str | None
    disposition_code: str | None
    labels: list[str]
    created_at: datetime
    assigned_at: datetime | None
    closed_at: datetime | None
    last_message_at: datetime | None


class ContactDetail(ContactOut):
    identities: list[IdentityOut]
    history: list[HistoryEntry] = Field(description="Every interaction, newest first.")
