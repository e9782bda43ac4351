from __future__ import annotations

import uuid

from atiende.core.events import DomainEvent


class UserCreated(DomainEvent):
    event_type = "user.created"
    user_id: uuid.UUID
    role: str


class UserUpdated(DomainEvent):
    event_type = "user.updated"
    user_id: uuid.UUID
    changes: list[str]


class UserDeleted(DomainEvent):
    event_type = "user.deleted"
    user_id: uuid.UUID
