"""Request and response bodies of the billing API (portal, back office, public forms)."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, EmailStr, Field

Deployment = Literal["cloud", "on_premise"]
LicenseCode = Literal["voice", "omnichannel"]


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class _Output(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class TermsIn(_Input):
    deployment: str = Field(examples=["cloud"])
    license: str = Field(examples=["omnichannel"])
    agents: int = Field(examples=[8])
    pbx_users: int | None = Field(default=None, examples=[10])
    addons: list[str] = Field(default_factory=list, examples=[["reports"]])


class QuoteLineOut(BaseModel):
    code: str
    quantity: int
    unit_cents: int
    amount_cents: int


class QuoteOut(BaseModel):
    currency: str
    total_cents: int
    lines: list[QuoteLineOut]


class SignupIn(_Input):
    email: EmailStr
    password: str = Field(min_length=10, max_length=200)
    name: str = Field(min_length=1, max_length=200)
    company: str = Field(min_length=1, max_length=200)
    locale: Literal["es", "en"] = "es"


class VerifyIn(_Input):
    token: str = Field(min_length=10, max_length=200)


class LeadIn(_Input):
    name: str = Field(min_length=1, max_length=200)
    email: EmailStr
    company: str = Field(min_length=1, max_length=200)
    phone: str | None = Field(default=None, max_length=40)
    deployment: Deployment | None = None
    agents: int | None = Field(default=None, ge=1, le=100000)
    message: str = Field(min_length=1, max_length=5000)


class LeadOut(_Output):
    id: uuid.UUID
    name: str
    email: str
    company: str
    phone: str | None
    deployment: str | None
    agents: int | None
    message: str
    created_at: datetime


class AccountOut(_Output):
    id: uuid.UUID
    email: str
    company: str
    tax_id: str | None
    address: str | None
    locale: str
    email_verified: bool
    created_at: datetime


class AccountUpdate(_Input):
    company: str | None = Field(default=None, min_length=1, max_length=200)
    tax_id: str | None = Field(default=None, max_length=40)
    address: str | None = Field(default=None, max_length=1000)


class OrderIn(TermsIn):
    tenant_name: str | None = Field(default=None, min_length=1, max_length=200)
    tenant_slug: str | None = Field(
        default=None, min_length=3, max_length=63, pattern=r"^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$"
    )
    admin_email: EmailStr | None = None


class InvoiceLineOut(_Output):
    code: str
    description: str
    quantity: int
    unit_cents: int
    amount_cents: int


class InvoiceOut(BaseModel):
    id: uuid.UUID
    number: str
    account_id: uuid.UUID
    subscription_id: uuid.UUID
    kind: str
    currency: str
    total_cents: int
    period_start: date | None
    period_end: date | None
    issued_at: datetime
    due_at: datetime
    status: Literal["open", "past_due", "paid"]
    paid_at: datetime | None
    lines: list[InvoiceLineOut]


class OrderOut(_Output):
    id: uuid.UUID
    status: str
    deployment: str
    license: str
    agents: int
    pbx_users: int | None
    addons: list[str]
    total_cents: int
    price_list_version: str
    tenant_slug: str | None
    admin_email: str | None
    created_at: datetime
    paid_at: datetime | None


class PlacedOrderOut(BaseModel):
    order: OrderOut
    subscription_id: uuid.UUID
    invoice: InvoiceOut
    payment_instructions: str


class SubscriptionOut(_Output):
    id: uuid.UUID
    account_id: uuid.UUID
    status: str
    deployment: str
    license: str
    agents: int
    pbx_users: int | None
    addons: list[str]
    pending_terms: dict[str, object] | None
    anchor_date: date | None
    current_period_start: date | None
    current_period_end: date | None
    cancel_at_period_end: bool
    tenant_id: uuid.UUID | None
    monthly_total_cents: int


class ChangeIn(_Input):
    license: str | None = None
    agents: int | None = None
    pbx_users: int | None = None
    addons: list[str] | None = None


class ChangePreviewOut(BaseModel):
    """What a change costs: increases now (pro rata), decreases at the next renewal."""

    charge_now: QuoteOut
    charge_now_due_at: datetime | None
    effective_now: dict[str, object]
    effective_at_renewal: dict[str, object] | None
    renewal_on: date
    next_renewal_total_cents: int


class PaymentIn(_Input):
    reference: str = Field(min_length=1, max_length=200)
    amount_cents: int = Field(ge=1)


class PaymentOut(_Output):
    id: uuid.UUID
    invoice_id: uuid.UUID
    provider: str
    reference: str
    amount_cents: int
    received_at: datetime


class IssuedLicenceOut(_Output):
    id: uuid.UUID
    subscription_id: uuid.UUID
    licence_id: str
    valid_until: date
    issued_at: datetime


class EntitlementOut(BaseModel):
    metered: bool
    license: str | None
    agents: int | None
    agents_in_use: int
    addons: list[str]
    support_plan: Literal["standard", "24x7"]
    status: str | None
