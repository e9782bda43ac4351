"""Every table, imported in one place so migrations and tests see the whole schema."""

from atiende.attachments.models import Attachment
from atiende.audit.models import AuditEntry
from atiende.contacts.models import Contact, ContactIdentity
from atiende.conversations.models import Interaction, InteractionEvent, Message
from atiende.core.db import Base
from atiende.core.events import EventRecord
from atiende.identity.models import ApiToken, LoginAttempt, User, WebSession
from atiende.jobs.models import Job
from atiende.routing.models import (
    Agent,
    AgentSkill,
    AgentStatusLog,
    BreakReason,
    CannedResponse,
    Disposition,
    Holiday,
    Offer,
    Queue,
    QueueMember,
    Schedule,
    Skill,
)
from atiende.tenancy.models import Tenant
from atiende.webchat.models import Visitor, Widget

__all__ = [
    "Agent",
    "AgentSkill",
    "AgentStatusLog",
    "ApiToken",
    "Attachment",
    "AuditEntry",
    "Base",
    "BreakReason",
    "CannedResponse",
    "Contact",
    "ContactIdentity",
    "Disposition",
    "EventRecord",
    "Holiday",
    "Interaction",
    "InteractionEvent",
    "Job",
    "LoginAttempt",
    "Message",
    "Offer",
    "Queue",
    "QueueMember",
    "Schedule",
    "Skill",
    "Tenant",
    "User",
    "Visitor",
    "WebSession",
    "Widget",
]
