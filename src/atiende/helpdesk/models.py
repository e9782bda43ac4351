"""Support cases of the vendor's helpdesk. Vendor-side tables: a case belongs to a buyer
account (never to a tenant's data), and only the account's people and support staff see it."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import JSON, Enum, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from atiende.core.db import Base, IdMixin


def _enum(kind: type[enum.Enum]) -> Enum:
    return Enum(kind, native_enum=False, length=30, validate_strings=True)


class CaseState(enum.StrEnum):
    new = "new"
    in_progress = "in_progress"
    waiting_on_customer = "waiting_on_customer"
    closed = "closed"


class CloseReason(enum.StrEnum):
    solved = "solved"
    bug_escalated = "bug_escalated"
    external_cause = "external_cause"
    customer_confirmed = "customer_confirmed"
    customer_archived = "customer_archived"
    out_of_scope = "out_of_scope"


class ExcludedCategory(enum.StrEnum):
    """What the terms do not cover; a case about one is closed as out of scope."""

    initial_configuration = "initial_configuration"
    customisation = "customisation"
    customer_infrastructure = "customer_infrastructure"
    external_service = "external_service"
    extra_training = "extra_training"
    undocumented_integration = "undocumented_integration"


class ProductArea(enum.StrEnum):
    voice = "voice"
    digital_channels = "digital_channels"
    routing = "routing"
    agent_desktop = "agent_desktop"
    supervision = "supervision"
    reports = "reports"
    chatbots = "chatbots"
    installation = "installation"
    licensing_billing = "licensing_billing"
    other = "other"


class SupportCase(IdMixin, Base):
    __tablename__ = "support_cases"

    number: Mapped[int] = mapped_column(unique=True)
    account_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("billing_accounts.id", ondelete="RESTRICT"), index=True
    )
    subscription_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("subscriptions.id", ondelete="RESTRICT")
    )
    opened_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    opener_email: Mapped[str] = mapped_column(String(254))
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text)
    product_area: Mapped[ProductArea] = mapped_column(_enum(ProductArea))
    severity: Mapped[str] = mapped_column(String(20))
    plan: Mapped[str] = mapped_column(String(10))  # the support plan when opened
    state: Mapped[CaseState] = mapped_column(_enum(CaseState), index=True)
    assignee_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    opened_at: Mapped[datetime]
    due_at: Mapped[datetime] = mapped_column(index=True)
    first_response_at: Mapped[datetime | None]
    at_risk_notified_at: Mapped[datetime | None]
    breach_notified_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
    close_reason: Mapped[CloseReason | None] = mapped_column(_enum(CloseReason))
    excluded_category: Mapped[ExcludedCategory | None] = mapped_column(_enum(ExcludedCategory))
    updated_at: Mapped[datetime]


class CaseCounter(Base):
    __tablename__ = "support_case_counters"

    name: Mapped[str] = mapped_column(String(20), primary_key=True)
    last_number: Mapped[int]


class CaseMessage(IdMixin, Base):
    """A reply in the thread: the customer's or support's; support may add internal notes."""

    __tablename__ = "support_case_messages"

    case_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("support_cases.id", ondelete="CASCADE"), index=True
    )
    author_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    author_kind: Mapped[str] = mapped_column(String(10))  # customer | support
    internal: Mapped[bool] = mapped_column(default=False)
    body: Mapped[str] = mapped_column(Text)
    attachment_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime]


class CaseFile(IdMixin, Base):
    """A screenshot, log or example attached to a case; bytes in the attachment store."""

    __tablename__ = "support_case_files"
    __table_args__ = (UniqueConstraint("storage_key"),)

    case_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("support_cases.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(100))
    size: Mapped[int]
    sha256: Mapped[str] = mapped_column(String(64))
    storage_key: Mapped[str] = mapped_column(String(100))
    uploaded_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime]


class CaseEvent(IdMixin, Base):
    """The case's append-only history: opened, replied, state, severity, assignment,
    closed, reopened, SLA warnings."""

    __tablename__ = "support_case_events"

    case_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("support_cases.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(40))
    actor_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    data: Mapped[dict[str, object]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime]
