"""The vendor's books: buyer accounts, leads, orders, subscriptions, invoices, payments and
the licence files issued to on-premise subscriptions.

These tables belong to the vendor, not to a tenant: a buyer account may own a tenant (cloud)
or none (on premise). Invoices and their lines are written once and never updated; whether
an invoice is paid is read from ``payments``. There is no refund table and no code path
that pays money back.
"""

from __future__ import annotations

import enum
import uuid
from datetime import date, datetime

from sqlalchemy import (
    JSON,
    Date,
    Enum,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
    event,
)
from sqlalchemy.orm import Mapped, Mapper, mapped_column

from atiende.core.db import Base, IdMixin


def _enum(kind: type[enum.Enum]) -> Enum:
    return Enum(kind, native_enum=False, length=20, validate_strings=True)


class OrderStatus(enum.StrEnum):
    pending_payment = "pending_payment"
    paid = "paid"
    abandoned = "abandoned"


class SubscriptionStatus(enum.StrEnum):
    pending = "pending"  # ordered, first invoice not paid yet
    active = "active"
    past_due = "past_due"
    suspended = "suspended"
    cancelled = "cancelled"


class InvoiceKind(enum.StrEnum):
    initial = "initial"
    renewal = "renewal"
    proration = "proration"


class BillingAccount(IdMixin, Base):
    """A customer of the vendor: the buyer who logs into the portal, and their company."""

    __tablename__ = "billing_accounts"

    owner_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="RESTRICT"), unique=True
    )
    email: Mapped[str] = mapped_column(String(254), unique=True)
    company: Mapped[str] = mapped_column(String(200))
    tax_id: Mapped[str | None] = mapped_column(String(40))
    address: Mapped[str | None] = mapped_column(Text)
    locale: Mapped[str] = mapped_column(String(8))
    email_verified_at: Mapped[datetime | None]
    verification_digest: Mapped[str | None] = mapped_column(String(64), index=True)
    created_at: Mapped[datetime]


class Lead(IdMixin, Base):
    """A "request a demo / pre-sale" form: implementation services are quoted separately."""

    __tablename__ = "leads"

    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(254), index=True)
    company: Mapped[str] = mapped_column(String(200))
    phone: Mapped[str | None] = mapped_column(String(40))
    deployment: Mapped[str | None] = mapped_column(String(20))
    agents: Mapped[int | None]
    message: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]


class Order(IdMixin, Base):
    __tablename__ = "orders"

    account_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("billing_accounts.id", ondelete="RESTRICT"), index=True
    )
    status: Mapped[OrderStatus] = mapped_column(_enum(OrderStatus))
    deployment: Mapped[str] = mapped_column(String(20))
    license: Mapped[str] = mapped_column(String(20))
    agents: Mapped[int]
    pbx_users: Mapped[int | None]
    addons: Mapped[list[str]] = mapped_column(JSON)
    price_list_version: Mapped[str] = mapped_column(String(20))
    total_cents: Mapped[int]
    # Cloud: the tenant to provision and the e-mail of its first administrator.
    tenant_name: Mapped[str | None] = mapped_column(String(200))
    tenant_slug: Mapped[str | None] = mapped_column(String(63))
    admin_email: Mapped[str | None] = mapped_column(String(254))
    created_at: Mapped[datetime]
    paid_at: Mapped[datetime | None]


class Subscription(IdMixin, Base):
    """One licence type for all its agents; monthly periods from ``anchor_date``."""

    __tablename__ = "subscriptions"

    account_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("billing_accounts.id", ondelete="RESTRICT"), index=True
    )
    order_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("orders.id", ondelete="RESTRICT"), unique=True
    )
    tenant_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("tenants.id", ondelete="SET NULL"), unique=True
    )
    status: Mapped[SubscriptionStatus] = mapped_column(_enum(SubscriptionStatus), index=True)
    deployment: Mapped[str] = mapped_column(String(20))
    license: Mapped[str] = mapped_column(String(20))
    agents: Mapped[int]
    pbx_users: Mapped[int | None]
    addons: Mapped[list[str]] = mapped_column(JSON)
    # Decreases wait for the renewal: {"license", "agents", "pbx_users", "addons"}.
    pending_terms: Mapped[dict[str, object] | None] = mapped_column(JSON)
    anchor_date: Mapped[date | None] = mapped_column(Date)
    period_index: Mapped[int] = mapped_column(Integer, default=0)
    current_period_start: Mapped[date | None] = mapped_column(Date)
    current_period_end: Mapped[date | None] = mapped_column(Date, index=True)
    cancel_at_period_end: Mapped[bool] = mapped_column(default=False)
    cancel_requested_at: Mapped[datetime | None]
    past_due_since: Mapped[datetime | None]
    suspended_at: Mapped[datetime | None]
    cancelled_at: Mapped[datetime | None]
    created_at: Mapped[datetime]


class InvoiceCounter(Base):
    """The last number issued per issuer; locked while the next one is taken."""

    __tablename__ = "invoice_counters"

    issuer: Mapped[str] = mapped_column(String(40), primary_key=True)
    last_number: Mapped[int]


class Invoice(IdMixin, Base):
    """Immutable once issued: no column of an invoice or its lines is ever updated."""

    __tablename__ = "invoices"
    __table_args__ = (UniqueConstraint("issuer", "number"),)

    issuer: Mapped[str] = mapped_column(String(40))
    number: Mapped[int]
    account_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("billing_accounts.id", ondelete="RESTRICT"), index=True
    )
    subscription_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("subscriptions.id", ondelete="RESTRICT"), index=True
    )
    kind: Mapped[InvoiceKind] = mapped_column(_enum(InvoiceKind))
    currency: Mapped[str] = mapped_column(String(3))
    total_cents: Mapped[int]
    period_start: Mapped[date | None] = mapped_column(Date)
    period_end: Mapped[date | None] = mapped_column(Date)
    # Customer details as they were when issued.
    bill_to: Mapped[dict[str, object]] = mapped_column(JSON)
    issued_at: Mapped[datetime]
    due_at: Mapped[datetime] = mapped_column(index=True)

    @property
    def display_number(self) -> str:
        return f"{self.issuer}-{self.number:06d}"


class InvoiceLine(IdMixin, Base):
    __tablename__ = "invoice_lines"
    __table_args__ = (UniqueConstraint("invoice_id", "position"),)

    invoice_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("invoices.id", ondelete="RESTRICT"), index=True
    )
    position: Mapped[int]
    code: Mapped[str] = mapped_column(String(40))
    description: Mapped[str] = mapped_column(String(300))
    quantity: Mapped[int]
    unit_cents: Mapped[int]
    amount_cents: Mapped[int]


class Payment(IdMixin, Base):
    """Money received against one invoice, recorded by a payment provider."""

    __tablename__ = "payments"

    invoice_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("invoices.id", ondelete="RESTRICT"), unique=True
    )
    provider: Mapped[str] = mapped_column(String(20))
    reference: Mapped[str] = mapped_column(String(200))
    amount_cents: Mapped[int]
    received_at: Mapped[datetime]
    recorded_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )


class IssuedLicence(IdMixin, Base):
    """A signed licence file sent to an on-premise subscription (one per paid period)."""

    __tablename__ = "issued_licences"

    subscription_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("subscriptions.id", ondelete="RESTRICT"), index=True
    )
    invoice_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("invoices.id", ondelete="RESTRICT"), unique=True
    )
    licence_id: Mapped[str] = mapped_column(String(36), unique=True)
    document: Mapped[dict[str, object]] = mapped_column(JSON)
    valid_until: Mapped[date] = mapped_column(Date)
    issued_at: Mapped[datetime]


class InvoiceImmutable(RuntimeError):
    """Raised when code tries to change an issued invoice: a programming error, not input."""


@event.listens_for(Invoice, "before_update")
@event.listens_for(InvoiceLine, "before_update")
def _refuse_update(mapper: Mapper[object], connection: object, target: object) -> None:
    raise InvoiceImmutable(f"{type(target).__name__} rows are immutable once issued")


@event.listens_for(Invoice, "before_delete")
@event.listens_for(InvoiceLine, "before_delete")
def _refuse_delete(mapper: Mapper[object], connection: object, target: object) -> None:
    raise InvoiceImmutable(f"{type(target).__name__} rows are never deleted")
