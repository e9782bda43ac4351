"""Events about contacts. They carry ids and field names only: listeners that need the
data read it through the API, where visibility rules apply."""

from __future__ import annotations

import uuid

from atiende.core.events import DomainEvent


class ContactCreated(DomainEvent):
    event_type = "contact.created"
    contact_id: uuid.UUID


class ContactUpdated(DomainEvent):
    event_type = "contact.updated"
    contact_id: uuid.UUID
    changes: list[str]  # name, email, phone, identities


class ContactsMerged(DomainEvent):
    event_type = "contact.merged"
    contact_id: uuid.UUID  # the survivor
    merged_id: uuid.UUID  # now points at the survivor through ``merged_into_id``
