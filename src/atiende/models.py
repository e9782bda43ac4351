"""Every table, imported in one place so migrations and tests see the whole schema."""

from atiende.attachments.models import Attachment
from atiende.audit.models import AuditEntry
from atiende.billing.models import (
    BillingAccount,
    Invoice,
    InvoiceCounter,
    InvoiceLine,
    IssuedLicence,
    Lead,
    Order,
    Payment,
    Subscription,
)
from atiende.channels.models import ChannelAccount, Delivery, InboundEvent
from atiende.contacts.models import Contact, ContactIdentity
from atiende.conversations.models import Interaction, InteractionEvent, Message
from atiende.core.db import Base
from atiende.core.events import EventRecord
from atiende.helpdesk.models import CaseCounter, CaseEvent, CaseFile, CaseMessage, SupportCase
from atiende.identity.models import ApiToken, LoginAttempt, User, WebSession
from atiende.jobs.models import Job
from atiende.licensing.models import InstalledLicence
from atiende.mail.models import OutboundMail, OutboundMailAttachment
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
from atiende.voice.models import Call, Extension, IvrMenu, Pbx, VoiceNumber
from atiende.webchat.models import Visitor, Widget

__all__ = [
    "Agent",
    "AgentSkill",
    "AgentStatusLog",
    "ApiToken",
    "Attachment",
    "AuditEntry",
    "Base",
    "BillingAccount",
    "BreakReason",
    "Call",
    "CannedResponse",
    "CaseCounter",
    "CaseEvent",
    "CaseFile",
    "CaseMessage",
    "ChannelAccount",
    "Contact",
    "ContactIdentity",
    "Delivery",
    "Disposition",
    "EventRecord",
    "Extension",
    "Holiday",
    "InboundEvent",
    "InstalledLicence",
    "Interaction",
    "InteractionEvent",
    "Invoice",
    "InvoiceCounter",
    "InvoiceLine",
    "IssuedLicence",
    "IvrMenu",
    "Job",
    "Lead",
    "LoginAttempt",
    "Message",
    "Offer",
    "Order",
    "OutboundMail",
    "OutboundMailAttachment",
    "Payment",
    "Pbx",
    "Queue",
    "QueueMember",
    "Schedule",
    "Skill",
    "Subscription",
    "SupportCase",
    "Tenant",
    "User",
    "Visitor",
    "VoiceNumber",
    "WebSession",
    "Widget",
]
