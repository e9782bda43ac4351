"""The vendor's sales and billing use cases: sign-up, leads, orders, payments, the monthly
subscription lifecycle (renewal, cancellation at period end, past due, suspension) and
changes of plan.

Rules come from the pure modules (``pricing``: price list and quotes; ``periods``:
anchor-day periods and proration). Amounts are integer cents. No function here, or
anywhere, pays money back.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Literal

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from atiende.audit import service as audit
from atiende.billing import periods, pricing
from atiende.billing.models import (
    BillingAccount,
    Invoice,
    InvoiceCounter,
    InvoiceKind,
    InvoiceLine,
    IssuedLicence,
    Lead,
    Order,
    OrderStatus,
    Payment,
    Subscription,
    SubscriptionStatus,
)
from atiende.billing.schemas import (
    AccountUpdate,
    ChangeIn,
    InvoiceLineOut,
    InvoiceOut,
    LeadIn,
    OrderIn,
    PaymentIn,
    SignupIn,
)
from atiende.core.config import Settings
from atiende.core.db import advisory_lock, next_number, now
from atiende.core.errors import (
    AtiendeError,
    Conflict,
    NotFound,
    PermissionDenied,
    ValidationFailed,
)
from atiende.core.security import hash_password
from atiende.identity import service as identity
from atiende.identity.actor import Actor
from atiende.identity.models import Role, User
from atiende.mail import service as mail
from atiende.tenancy.models import Tenant

BILLING_STAFF = frozenset({Role.vendor_billing, Role.vendor_admin})
LIVE = (SubscriptionStatus.active, SubscriptionStatus.past_due, SubscriptionStatus.suspended)
VERIFY_TOKEN_BYTES = 24


class EmailNotVerified(AtiendeError):
    status_code = 403
    code = "email_not_verified"
    default_message = "Verify your e-mail address before placing an order."


# --- helpers ------------------------------------------------------------------------------


def today_of(session: AsyncSession) -> date:
    """Billing days are UTC calendar days."""
    return now(session).date()


def terms_of(row: Order | Subscription) -> pricing.Terms:
    return pricing.Terms(
        deployment=row.deployment,
        license=row.license,
        agents=row.agents,
        pbx_users=row.pbx_users,
        addons=frozenset(row.addons),
    )


def terms_dict(terms: pricing.Terms) -> dict[str, object]:
    return {
        "deployment": terms.deployment,
        "license": terms.license,
        "agents": terms.agents,
        "pbx_users": terms.pbx_users,
        "addons": sorted(terms.addons),
    }


def _terms_from_dict(data: dict[str, object]) -> pricing.Terms:
    pbx = data.get("pbx_users")
    addons = data.get("addons") or []
    return pricing.Terms(
        deployment=str(data["deployment"]),
        license=str(data["license"]),
        agents=int(str(data["agents"])),
        pbx_users=None if pbx is None else int(str(pbx)),
        addons=frozenset(str(a) for a in addons) if isinstance(addons, list) else frozenset(),
    )


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _require_staff(actor: Actor) -> None:
    if actor.role not in BILLING_STAFF:
        raise PermissionDenied()


async def account_of(session: AsyncSession, actor: Actor) -> BillingAccount:
    if actor.role is not Role.buyer or actor.user_id is None:
        raise PermissionDenied("Only a buyer account has a portal.")
    account = await session.scalar(
        select(BillingAccount).where(BillingAccount.owner_id == actor.user_id)
    )
    if account is None:
        raise NotFound("billing_account")
    return account


def _owned(account: BillingAccount | None, row_account_id: uuid.UUID, resource: str) -> None:
    """A buyer sees only their account's rows; staff (account None) see every row."""
    if account is not None and account.id != row_account_id:
        raise NotFound(resource)


async def _account_or_staff(session: AsyncSession, actor: Actor) -> BillingAccount | None:
    if actor.role in BILLING_STAFF:
        return None
    return await account_of(session, actor)


# --- sign-up and leads --------------------------------------------------------------------


async def sign_up(
    session: AsyncSession, data: SignupIn, *, settings: Settings
) -> tuple[BillingAccount, str]:
    """A buyer account with its portal login; the e-mail must be verified before ordering.
    Returns the account and the verification token (also e-mailed)."""
    email = data.email.lower()
    taken = await session.scalar(
        select(func.count()).select_from(User.__table__).where(User.__table__.c.email == email)
    )
    if taken:
        raise Conflict(
            "An account with this e-mail exists.", code="user_email_taken", field="email"
        )
    instant = now(session)
    user = User(
        tenant_id=None,
        email=email,
        name=data.name,
        role=Role.buyer,
        locale=data.locale,
        password_hash=hash_password(data.password),
        is_active=True,
        created_at=instant,
        password_changed_at=instant,
    )
    token = secrets.token_urlsafe(VERIFY_TOKEN_BYTES)
    try:
        async with session.begin_nested():
            session.add(user)
            await session.flush()
            account = BillingAccount(
                owner_id=user.id,
                email=email,
                company=data.company,
                locale=data.locale,
                verification_digest=_digest(token),
                created_at=instant,
            )
            session.add(account)
            await session.flush()
    except IntegrityError as error:
        raise Conflict(
            "An account with this e-mail exists.", code="user_email_taken", field="email"
        ) from error
    actor = Actor(user_id=user.id, email=email, role=Role.buyer, tenant_id=None)
    await audit.record(
        session,
        actor,
        "billing.account.create",
        resource_type="billing_account",
        resource_id=account.id,
        tenant_id=None,
        after={"email": email, "company": data.company},
    )
    link = f"{settings.public_url.rstrip('/')}/portal/verify?token={token}"
    texts = {
        "es": (
            "Confirma tu correo en Atiende",
            f"Hola {data.name}:\n\nConfirma tu dirección para activar tu cuenta:\n{link}\n",
        ),
        "en": (
            "Confirm your e-mail for Atiende",
            f"Hello {data.name},\n\nConfirm your address to activate your account:\n{link}\n",
        ),
    }
    subject, text = texts[data.locale]
    await mail.queue_mail(session, to=email, subject=subject, text=text, kind="billing.verify")
    return account, token


async def verify_email(session: AsyncSession, token: str) -> BillingAccount:
    account = await session.scalar(
        select(BillingAccount).where(BillingAccount.verification_digest == _digest(token))
    )
    if account is None:
        raise ValidationFailed(
            "This verification link is not valid (or was already used).",
            code="verification_invalid",
        )
    account.email_verified_at = now(session)
    account.verification_digest = None
    await session.flush()
    return account


async def get_account(session: AsyncSession, actor: Actor) -> BillingAccount:
    return await account_of(session, actor)


async def update_account(
    session: AsyncSession, actor: Actor, data: AccountUpdate
) -> BillingAccount:
    account = await account_of(session, actor)
    before = {"company": account.company, "tax_id": account.tax_id, "address": account.address}
    for key, value in data.model_dump(exclude_unset=True).items():
        if key == "company" and value is None:
            raise ValidationFailed("The company name cannot be empty.", field="company")
        setattr(account, key, value)
    await session.flush()
    await audit.record(
        session,
        actor,
        "billing.account.update",
        resource_type="billing_account",
        resource_id=account.id,
        tenant_id=None,
        before=before,
        after={"company": account.company, "tax_id": account.tax_id, "address": account.address},
    )
    return account


async def list_accounts(session: AsyncSession, actor: Actor) -> Sequence[BillingAccount]:
    _require_staff(actor)
    return (
        await session.scalars(select(BillingAccount).order_by(BillingAccount.created_at.desc()))
    ).all()


async def create_lead(session: AsyncSession, data: LeadIn) -> Lead:
    lead = Lead(**data.model_dump(), created_at=now(session))
    lead.email = lead.email.lower()
    session.add(lead)
    await session.flush()
    return lead


async def list_leads(session: AsyncSession, actor: Actor) -> Sequence[Lead]:
    _require_staff(actor)
    return (await session.scalars(select(Lead).order_by(Lead.created_at.desc()))).all()


# --- invoices -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LineDraft:
    code: str
    description: str
    quantity: int
    unit_cents: int
    amount_cents: int


def quote_lines(
    quote: pricing.Quote, price_list: pricing.PriceList, locale: str
) -> list[LineDraft]:
    return [
        LineDraft(
            code=line.code,
            description=_item_name(price_list, line.code, locale),
            quantity=line.quantity,
            unit_cents=line.unit_cents,
            amount_cents=line.amount_cents,
        )
        for line in quote.lines
    ]


def _item_name(price_list: pricing.PriceList, code: str, locale: str) -> str:
    item = price_list.item(code)
    return item.name(locale) if item is not None else code


async def _next_number(session: AsyncSession, issuer: str) -> int:
    """Numbers are sequential per issuer with no gaps (the counter row stays locked until the
    invoice's transaction ends)."""
    return await next_number(session, InvoiceCounter, InvoiceCounter.issuer, issuer)


async def issue_invoice(
    session: AsyncSession,
    subscription: Subscription,
    account: BillingAccount,
    kind: InvoiceKind,
    lines: Sequence[LineDraft],
    *,
    settings: Settings,
    period: tuple[date, date] | None = None,
) -> Invoice:
    """Write an invoice once (number, lines, customer details as they are now) and e-mail
    it with its PDF once the transaction commits."""
    if not lines:
        raise ValueError("an invoice needs at least one line")
    instant = now(session)
    invoice = Invoice(
        issuer=settings.invoice_issuer,
        number=await _next_number(session, settings.invoice_issuer),
        account_id=account.id,
        subscription_id=subscription.id,
        kind=kind,
        currency=pricing.price_list_at(instant.date()).currency,
        total_cents=sum(line.amount_cents for line in lines),
        period_start=period[0] if period else None,
        period_end=period[1] if period else None,
        bill_to={
            "company": account.company,
            "email": account.email,
            "tax_id": account.tax_id,
            "address": account.address,
        },
        issued_at=instant,
        due_at=instant + timedelta(days=settings.invoice_due_days),
    )
    session.add(invoice)
    await session.flush()
    session.add_all(
        InvoiceLine(
            invoice_id=invoice.id,
            position=position,
            code=line.code,
            description=line.description,
            quantity=line.quantity,
            unit_cents=line.unit_cents,
            amount_cents=line.amount_cents,
        )
        for position, line in enumerate(lines, start=1)
    )
    await session.flush()
    from atiende.billing import documents

    await documents.mail_invoice(session, invoice, account, settings=settings)
    return invoice


async def _lines(
    session: AsyncSession, invoice_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[InvoiceLine]]:
    rows = (
        await session.scalars(
            select(InvoiceLine)
            .where(InvoiceLine.invoice_id.in_(invoice_ids))
            .order_by(InvoiceLine.invoice_id, InvoiceLine.position)
        )
    ).all()
    grouped: dict[uuid.UUID, list[InvoiceLine]] = {i: [] for i in invoice_ids}
    for row in rows:
        grouped[row.invoice_id].append(row)
    return grouped


async def _payments(
    session: AsyncSession, invoice_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, Payment]:
    rows = (await session.scalars(select(Payment).where(Payment.invoice_id.in_(invoice_ids)))).all()
    return {row.invoice_id: row for row in rows}


def invoice_status(
    invoice: Invoice, payment: Payment | None, instant: datetime
) -> Literal["open", "past_due", "paid"]:
    if payment is not None:
        return "paid"
    return "past_due" if instant > invoice.due_at else "open"


async def invoices_out(session: AsyncSession, invoices: Sequence[Invoice]) -> list[InvoiceOut]:
    ids = [invoice.id for invoice in invoices]
    lines = await _lines(session, ids)
    payments = await _payments(session, ids)
    instant = now(session)
    return [
        InvoiceOut(
            id=invoice.id,
            number=invoice.display_number,
            account_id=invoice.account_id,
            subscription_id=invoice.subscription_id,
            kind=invoice.kind.value,
            currency=invoice.currency,
            total_cents=invoice.total_cents,
            period_start=invoice.period_start,
            period_end=invoice.period_end,
            issued_at=invoice.issued_at,
            due_at=invoice.due_at,
            status=invoice_status(invoice, payments.get(invoice.id), instant),
            paid_at=payments[invoice.id].received_at if invoice.id in payments else None,
            lines=[InvoiceLineOut.model_validate(line) for line in lines[invoice.id]],
        )
        for invoice in invoices
    ]


async def list_invoices(
    session: AsyncSession, actor: Actor, *, unpaid_only: bool = False
) -> list[InvoiceOut]:
    account = await _account_or_staff(session, actor)
    query = select(Invoice).order_by(Invoice.issuer, Invoice.number.desc())
    if account is not None:
        query = query.where(Invoice.account_id == account.id)
    if unpaid_only:
        query = query.where(~select(Payment.id).where(Payment.invoice_id == Invoice.id).exists())
    return await invoices_out(session, (await session.scalars(query)).all())


async def get_invoice(session: AsyncSession, actor: Actor, invoice_id: uuid.UUID) -> Invoice:
    account = await _account_or_staff(session, actor)
    invoice = await session.get(Invoice, invoice_id)
    if invoice is None:
        raise NotFound("invoice")
    _owned(account, invoice.account_id, "invoice")
    return invoice


async def invoice_out(session: AsyncSession, actor: Actor, invoice_id: uuid.UUID) -> InvoiceOut:
    return (await invoices_out(session, [await get_invoice(session, actor, invoice_id)]))[0]


# --- orders -------------------------------------------------------------------------------


def _validated(terms: pricing.Terms, on: date) -> tuple[pricing.PriceList, pricing.Quote]:
    price_list = pricing.price_list_at(on)
    pricing.validate_terms(terms, price_list)
    return price_list, pricing.quote(terms, price_list)


def quote_for(terms: pricing.Terms, on: date) -> pricing.Quote:
    return _validated(terms, on)[1]


def order_terms(data: OrderIn, on: date) -> pricing.Terms:
    return pricing.make_terms(
        pricing.price_list_at(on),
        deployment=data.deployment,
        license=data.license,
        agents=data.agents,
        pbx_users=data.pbx_users,
        addons=data.addons,
    )


def changed_terms(data: ChangeIn, base: pricing.Terms) -> pricing.Terms:
    """The terms a change asks for; fields left out keep their current value."""
    given = data.model_dump(exclude_unset=True)
    addons = given.get("addons")
    if addons is not None and len(set(addons)) != len(addons):
        raise pricing.QuoteRuleBroken(
            "An add-on is given twice; each add-on is bought once.", code="duplicate_addon"
        )
    return pricing.Terms(
        deployment=base.deployment,
        license=given.get("license") or base.license,
        agents=given["agents"] if given.get("agents") is not None else base.agents,
        pbx_users=given["pbx_users"] if given.get("pbx_users") is not None else base.pbx_users,
        addons=frozenset(addons) if addons is not None else base.addons,
    )


async def place_order(
    session: AsyncSession, actor: Actor, data: OrderIn, *, settings: Settings
) -> tuple[Order, Subscription, Invoice]:
    """An order, its (pending) subscription and the first invoice, due in
    ``invoice_due_days``. The service starts when that invoice is paid; that day is the
    subscription's anchor."""
    account = await account_of(session, actor)
    if account.email_verified_at is None:
        raise EmailNotVerified()
    terms = order_terms(data, today_of(session))
    price_list, quote = _validated(terms, today_of(session))
    if terms.deployment == "cloud":
        await _check_cloud_order(session, data, account)
    elif data.tenant_slug or data.tenant_name or data.admin_email:
        raise ValidationFailed(
            "An on-premise order provisions no tenant: leave tenant and administrator out.",
            code="tenant_not_for_on_premise",
        )
    instant = now(session)
    order = Order(
        account_id=account.id,
        status=OrderStatus.pending_payment,
        deployment=terms.deployment,
        license=terms.license,
        agents=terms.agents,
        pbx_users=terms.pbx_users,
        addons=sorted(terms.addons),
        price_list_version=price_list.version,
        total_cents=quote.total_cents,
        tenant_name=data.tenant_name or (account.company if terms.deployment == "cloud" else None),
        tenant_slug=data.tenant_slug,
        admin_email=data.admin_email.lower() if data.admin_email else None,
        created_at=instant,
    )
    session.add(order)
    await session.flush()
    subscription = Subscription(
        account_id=account.id,
        order_id=order.id,
        status=SubscriptionStatus.pending,
        deployment=terms.deployment,
        license=terms.license,
        agents=terms.agents,
        pbx_users=terms.pbx_users,
        addons=sorted(terms.addons),
        period_index=0,
        cancel_at_period_end=False,
        created_at=instant,
    )
    session.add(subscription)
    await session.flush()
    invoice = await issue_invoice(
        session,
        subscription,
        account,
        InvoiceKind.initial,
        quote_lines(quote, price_list, account.locale),
        settings=settings,
    )
    await audit.record(
        session,
        actor,
        "billing.order.place",
        resource_type="order",
        resource_id=order.id,
        tenant_id=None,
        after={**terms_dict(terms), "total_cents": quote.total_cents},
    )
    return order, subscription, invoice


async def _check_cloud_order(session: AsyncSession, data: OrderIn, account: BillingAccount) -> None:
    if not data.tenant_slug:
        raise ValidationFailed(
            "A cloud order needs the address (slug) of the tenant to create.",
            code="tenant_slug_required",
            field="tenant_slug",
        )
    if not data.admin_email:
        raise ValidationFailed(
            "A cloud order needs the e-mail of the tenant's first administrator.",
            code="admin_email_required",
            field="admin_email",
        )
    if await session.scalar(select(Tenant.id).where(Tenant.slug == data.tenant_slug)) or (
        await session.scalar(
            select(Order.id).where(
                Order.tenant_slug == data.tenant_slug,
                Order.status == OrderStatus.pending_payment,
            )
        )
    ):
        raise Conflict(
            f"The address {data.tenant_slug!r} is taken.",
            code="tenant_slug_taken",
            field="tenant_slug",
        )
    email = data.admin_email.lower()
    if email == account.email:
        raise ValidationFailed(
            "The administrator needs an e-mail of their own: the buyer's login is for the portal.",
            code="admin_email_is_buyer",
            field="admin_email",
        )
    taken = await session.scalar(
        select(func.count()).select_from(User.__table__).where(User.__table__.c.email == email)
    )
    if taken:
        raise Conflict(
            "A user with this e-mail exists.", code="user_email_taken", field="admin_email"
        )


async def list_orders(session: AsyncSession, actor: Actor) -> Sequence[Order]:
    account = await _account_or_staff(session, actor)
    query = select(Order).order_by(Order.created_at.desc())
    if account is not None:
        query = query.where(Order.account_id == account.id)
    return (await session.scalars(query)).all()


# --- payments -----------------------------------------------------------------------------


async def record_payment(
    session: AsyncSession,
    actor: Actor,
    invoice_id: uuid.UUID,
    data: PaymentIn,
    *,
    settings: Settings,
    provider: str = "manual",
) -> Payment:
    """Money received for one whole invoice (the ``manual`` provider: billing staff confirm
    a bank transfer). Paying the first invoice starts the service; paying what was overdue
    reactivates it."""
    if actor.via != "system":
        _require_staff(actor)
    invoice = await session.get(Invoice, invoice_id, with_for_update=True)
    if invoice is None:
        raise NotFound("invoice")
    if await session.scalar(select(Payment.id).where(Payment.invoice_id == invoice.id)):
        raise Conflict("This invoice is already paid.", code="invoice_already_paid")
    if data.amount_cents != invoice.total_cents:
        raise ValidationFailed(
            f"An invoice is paid in full: {invoice.total_cents} cents, not {data.amount_cents}.",
            code="payment_amount_mismatch",
            field="amount_cents",
        )
    instant = now(session)
    payment = Payment(
        invoice_id=invoice.id,
        provider=provider,
        reference=data.reference,
        amount_cents=data.amount_cents,
        received_at=instant,
        recorded_by=actor.user_id,
    )
    try:
        async with session.begin_nested():
            session.add(payment)
    except IntegrityError as error:  # paid concurrently
        raise Conflict("This invoice is already paid.", code="invoice_already_paid") from error
    await audit.record(
        session,
        actor,
        "billing.invoice.pay",
        resource_type="invoice",
        resource_id=invoice.id,
        tenant_id=None,
        after={
            "number": invoice.display_number,
            "amount_cents": data.amount_cents,
            "provider": provider,
            "reference": data.reference,
        },
    )
    subscription = await session.get(Subscription, invoice.subscription_id, with_for_update=True)
    account = await session.get(BillingAccount, invoice.account_id)
    assert subscription is not None
    assert account is not None
    from atiende.billing import provisioning

    if invoice.kind is InvoiceKind.initial and subscription.status is SubscriptionStatus.pending:
        await _activate(session, subscription)
        order = await session.get(Order, subscription.order_id)
        assert order is not None
        order.status = OrderStatus.paid
        order.paid_at = instant
        await session.flush()
        await provisioning.deliver(session, subscription, order, account, settings=settings)
    else:
        await _refresh_standing(session, subscription, settings=settings)
        if (
            subscription.deployment == "on_premise"
            and invoice.kind is InvoiceKind.renewal
            and subscription.status is not SubscriptionStatus.cancelled
        ):
            await provisioning.send_licence(
                session, subscription, invoice, account, settings=settings
            )
    return payment


async def _activate(session: AsyncSession, subscription: Subscription) -> None:
    anchor = today_of(session)
    start, end = periods.period_bounds(anchor, 0)
    subscription.anchor_date = anchor
    subscription.period_index = 0
    subscription.current_period_start = start
    subscription.current_period_end = end
    subscription.status = SubscriptionStatus.active
    await session.flush()


async def _overdue_since(session: AsyncSession, subscription: Subscription) -> datetime | None:
    """The due date of the oldest unpaid invoice that is past due, if any."""
    return await session.scalar(
        select(func.min(Invoice.due_at)).where(
            Invoice.subscription_id == subscription.id,
            Invoice.due_at < now(session),
            ~select(Payment.id).where(Payment.invoice_id == Invoice.id).exists(),
        )
    )


async def _refresh_standing(
    session: AsyncSession, subscription: Subscription, *, settings: Settings
) -> None:
    """Active, past due or suspended, from what is overdue and for how long."""
    if subscription.status not in LIVE:
        return
    overdue = await _overdue_since(session, subscription)
    before = subscription.status
    if overdue is None:
        subscription.status = SubscriptionStatus.active
        subscription.past_due_since = None
        subscription.suspended_at = None
    else:
        subscription.past_due_since = overdue
        if now(session) >= overdue + timedelta(days=settings.billing_grace_days):
            if subscription.status is not SubscriptionStatus.suspended:
                subscription.suspended_at = now(session)
            subscription.status = SubscriptionStatus.suspended
        else:
            subscription.status = SubscriptionStatus.past_due
            subscription.suspended_at = None
    await session.flush()
    if before is not subscription.status:
        if subscription.status is SubscriptionStatus.suspended and subscription.tenant_id:
            await identity.end_tenant_sessions(
                session, subscription.tenant_id, frozenset({Role.agent, Role.supervisor})
            )
        await audit.record(
            session,
            Actor.system(),
            "billing.subscription.status",
            resource_type="subscription",
            resource_id=subscription.id,
            tenant_id=subscription.tenant_id,
            before={"status": before.value},
            after={"status": subscription.status.value},
        )


# --- the lifecycle ------------------------------------------------------------------------


async def advance(session: AsyncSession, *, settings: Settings) -> dict[str, int]:
    """Bring every subscription up to now: renew (or cancel) the periods that ended,
    then mark overdue accounts past due and suspend them after the grace period.
    Idempotent; serialised across workers."""
    await advisory_lock(session, "billing.advance")
    today = today_of(session)
    counts = {"renewed": 0, "cancelled": 0, "past_due": 0, "suspended": 0}
    due = (
        await session.scalars(
            select(Subscription)
            .where(
                Subscription.status.in_(LIVE),
                Subscription.current_period_end <= today,
            )
            .order_by(Subscription.created_at)
        )
    ).all()
    for subscription in due:
        renewed, cancelled = await _roll_periods(session, subscription, today, settings=settings)
        counts["renewed"] += renewed
        counts["cancelled"] += int(cancelled)
    live = (await session.scalars(select(Subscription).where(Subscription.status.in_(LIVE)))).all()
    for subscription in live:
        before = subscription.status
        await _refresh_standing(session, subscription, settings=settings)
        if before is not subscription.status:
            if subscription.status is SubscriptionStatus.past_due:
                counts["past_due"] += 1
            elif subscription.status is SubscriptionStatus.suspended:
                counts["suspended"] += 1
    return counts


async def _roll_periods(
    session: AsyncSession, subscription: Subscription, today: date, *, settings: Settings
) -> tuple[int, bool]:
    account = await session.get(BillingAccount, subscription.account_id)
    assert account is not None
    renewed = 0
    while (
        subscription.current_period_end is not None
        and subscription.anchor_date is not None
        and subscription.current_period_end <= today
    ):
        if subscription.cancel_at_period_end:
            subscription.status = SubscriptionStatus.cancelled
            subscription.cancelled_at = now(session)
            await session.flush()
            if subscription.tenant_id:
                await identity.end_tenant_sessions(
                    session, subscription.tenant_id, frozenset({Role.agent, Role.supervisor})
                )
            await audit.record(
                session,
                Actor.system(),
                "billing.subscription.cancelled",
                resource_type="subscription",
                resource_id=subscription.id,
                tenant_id=subscription.tenant_id,
                after={"period_end": subscription.current_period_end.isoformat()},
            )
            return renewed, True
        if subscription.pending_terms:
            terms = _terms_from_dict(subscription.pending_terms)
            subscription.license = terms.license
            subscription.agents = terms.agents
            subscription.pbx_users = terms.pbx_users
            subscription.addons = sorted(terms.addons)
            subscription.pending_terms = None
        subscription.period_index += 1
        start, end = periods.period_bounds(subscription.anchor_date, subscription.period_index)
        subscription.current_period_start = start
        subscription.current_period_end = end
        await session.flush()
        price_list = pricing.price_list_at(start)
        quote = pricing.quote(terms_of(subscription), price_list)
        await issue_invoice(
            session,
            subscription,
            account,
            InvoiceKind.renewal,
            quote_lines(quote, price_list, account.locale),
            settings=settings,
            period=(start, end),
        )
        renewed += 1
    return renewed, False


# --- subscriptions ------------------------------------------------------------------------


async def list_subscriptions(session: AsyncSession, actor: Actor) -> Sequence[Subscription]:
    account = await _account_or_staff(session, actor)
    query = select(Subscription).order_by(Subscription.created_at.desc())
    if account is not None:
        query = query.where(Subscription.account_id == account.id)
    return (await session.scalars(query)).all()


async def get_subscription(
    session: AsyncSession, actor: Actor, subscription_id: uuid.UUID, *, for_update: bool = False
) -> Subscription:
    account = await _account_or_staff(session, actor)
    subscription = await session.get(Subscription, subscription_id, with_for_update=for_update)
    if subscription is None:
        raise NotFound("subscription")
    _owned(account, subscription.account_id, "subscription")
    return subscription


def monthly_total(subscription: Subscription) -> int:
    on = subscription.current_period_start or subscription.created_at.date()
    return pricing.quote(terms_of(subscription), pricing.price_list_at(on)).total_cents


async def request_cancellation(
    session: AsyncSession, actor: Actor, subscription_id: uuid.UUID
) -> Subscription:
    """The service stays fully active until the period ends, then stops; nothing is paid
    back. A subscription that was never paid is cancelled at once."""
    subscription = await get_subscription(session, actor, subscription_id, for_update=True)
    if subscription.status is SubscriptionStatus.cancelled:
        raise Conflict("This subscription is already cancelled.", code="subscription_cancelled")
    instant = now(session)
    if subscription.status is SubscriptionStatus.pending:
        subscription.status = SubscriptionStatus.cancelled
        subscription.cancelled_at = instant
        order = await session.get(Order, subscription.order_id)
        if order is not None:
            order.status = OrderStatus.abandoned
    else:
        subscription.cancel_at_period_end = True
    subscription.cancel_requested_at = instant
    await session.flush()
    await audit.record(
        session,
        actor,
        "billing.subscription.cancel",
        resource_type="subscription",
        resource_id=subscription.id,
        tenant_id=subscription.tenant_id,
        after={
            "cancel_at_period_end": subscription.cancel_at_period_end,
            "status": subscription.status.value,
        },
    )
    return subscription


async def withdraw_cancellation(
    session: AsyncSession, actor: Actor, subscription_id: uuid.UUID
) -> Subscription:
    subscription = await get_subscription(session, actor, subscription_id, for_update=True)
    if subscription.status is SubscriptionStatus.cancelled:
        raise Conflict(
            "The period ended: this subscription is cancelled; place a new order.",
            code="subscription_cancelled",
        )
    if not subscription.cancel_at_period_end:
        raise Conflict("No cancellation is pending.", code="no_pending_cancellation")
    subscription.cancel_at_period_end = False
    subscription.cancel_requested_at = None
    await session.flush()
    await audit.record(
        session,
        actor,
        "billing.subscription.withdraw_cancellation",
        resource_type="subscription",
        resource_id=subscription.id,
        tenant_id=subscription.tenant_id,
        after={"cancel_at_period_end": False},
    )
    return subscription


async def list_licences(session: AsyncSession, actor: Actor) -> Sequence[IssuedLicence]:
    account = await _account_or_staff(session, actor)
    query = select(IssuedLicence).order_by(IssuedLicence.issued_at.desc())
    if account is not None:
        query = query.join(Subscription, Subscription.id == IssuedLicence.subscription_id).where(
            Subscription.account_id == account.id
        )
    return (await session.scalars(query)).all()


async def get_licence(session: AsyncSession, actor: Actor, licence_id: uuid.UUID) -> IssuedLicence:
    account = await _account_or_staff(session, actor)
    licence = await session.get(IssuedLicence, licence_id)
    if licence is None:
        raise NotFound("licence")
    subscription = await session.get(Subscription, licence.subscription_id)
    assert subscription is not None
    _owned(account, subscription.account_id, "licence")
    return licence


# --- changes of plan ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChangePlan:
    current: pricing.Terms
    target: pricing.Terms
    now_terms: pricing.Terms
    renewal_terms: pricing.Terms | None  # None: nothing waits for the renewal
    charge: periods.IncreaseCharge
    price_list: pricing.PriceList
    period: tuple[date, date]


async def plan_change(
    session: AsyncSession, subscription: Subscription, data: ChangeIn
) -> ChangePlan:
    """Increases take effect now, charged pro rata for the days left; decreases wait for
    the renewal and must still respect the minimum and the step. A change replaces any
    decrease already waiting."""
    if subscription.status not in (SubscriptionStatus.active, SubscriptionStatus.past_due):
        raise Conflict(
            f"A {subscription.status.value} subscription cannot change.",
            code="subscription_not_active",
        )
    if subscription.cancel_at_period_end:
        raise Conflict(
            "A cancellation is pending; withdraw it before changing the plan.",
            code="cancellation_pending",
        )
    assert subscription.current_period_start
    assert subscription.current_period_end
    current = terms_of(subscription)
    base = _terms_from_dict(subscription.pending_terms) if subscription.pending_terms else current
    target = changed_terms(data, base)
    today = today_of(session)
    price_list = pricing.price_list_at(today)
    period = (subscription.current_period_start, subscription.current_period_end)
    charge = periods.increase_charge(current, target, price_list, *period, today)
    now_terms = periods.apply_increases(current, target, price_list)
    if subscription.tenant_id is not None and target.agents < current.agents:
        from atiende.billing import entitlements

        used = await entitlements.agents_in_use(session, subscription.tenant_id)
        if target.agents < used:
            raise Conflict(
                f"{used} agents are enabled; disable agents down to {target.agents} before "
                "lowering the seats.",
                code="seats_in_use",
                in_use=used,
            )
    return ChangePlan(
        current=current,
        target=target,
        now_terms=now_terms,
        renewal_terms=None if target == now_terms else target,
        charge=charge,
        price_list=price_list,
        period=period,
    )


async def apply_change(
    session: AsyncSession,
    actor: Actor,
    subscription_id: uuid.UUID,
    data: ChangeIn,
    *,
    settings: Settings,
) -> tuple[Subscription, Invoice | None]:
    subscription = await get_subscription(session, actor, subscription_id, for_update=True)
    plan = await plan_change(session, subscription, data)
    if plan.target == plan.current and subscription.pending_terms is None:
        raise ValidationFailed("Nothing would change.", code="no_change")
    account = await session.get(BillingAccount, subscription.account_id)
    assert account is not None
    before = terms_dict(plan.current)
    subscription.license = plan.now_terms.license
    subscription.agents = plan.now_terms.agents
    subscription.pbx_users = plan.now_terms.pbx_users
    subscription.addons = sorted(plan.now_terms.addons)
    subscription.pending_terms = terms_dict(plan.renewal_terms) if plan.renewal_terms else None
    await session.flush()
    invoice = None
    if plan.charge.total_cents > 0:
        invoice = await issue_invoice(
            session,
            subscription,
            account,
            InvoiceKind.proration,
            _charge_lines(plan, account.locale),
            settings=settings,
            period=plan.period,
        )
    await audit.record(
        session,
        actor,
        "billing.subscription.change",
        resource_type="subscription",
        resource_id=subscription.id,
        tenant_id=subscription.tenant_id,
        before=before,
        after={**terms_dict(plan.now_terms), "pending_terms": subscription.pending_terms},
    )
    if subscription.tenant_id is not None and plan.now_terms != plan.current:
        from atiende.billing import provisioning

        await provisioning.sync_tenant(session, subscription, settings=settings)
    return subscription, invoice


def _charge_lines(plan: ChangePlan, locale: str) -> list[LineDraft]:
    days = f"{plan.charge.days_left}/{plan.charge.days_in_period}"
    lines = []
    for line in plan.charge.lines:
        name = _item_name(plan.price_list, line.code, locale)
        if line.kind is periods.ChangeKind.license_upgrade:
            old = _item_name(plan.price_list, plan.current.license, locale)
            name = f"Cambio {old} → {name}" if locale == "es" else f"Upgrade {old} → {name}"
        prorata = f"prorrateo {days} días" if locale == "es" else f"pro rata {days} days"
        lines.append(
            LineDraft(
                code=line.code,
                description=f"{name} ({prorata})",
                quantity=line.quantity,
                unit_cents=line.unit_cents,
                amount_cents=line.amount_cents,
            )
        )
    return lines


def preview_of(plan: ChangePlan, settings: Settings, instant: datetime) -> dict[str, object]:
    renewal_terms = plan.renewal_terms or plan.now_terms
    renewal_on = plan.period[1]
    renewal_total = pricing.quote(renewal_terms, pricing.price_list_at(renewal_on)).total_cents
    return {
        "charge_now": {
            "currency": plan.charge.currency,
            "total_cents": plan.charge.total_cents,
            "lines": [
                {
                    "code": line.code,
                    "quantity": line.quantity,
                    "unit_cents": line.unit_cents,
                    "amount_cents": line.amount_cents,
                }
                for line in plan.charge.lines
            ],
        },
        "charge_now_due_at": (
            instant + timedelta(days=settings.invoice_due_days) if plan.charge.total_cents else None
        ),
        "effective_now": terms_dict(plan.now_terms),
        "effective_at_renewal": terms_dict(plan.renewal_terms) if plan.renewal_terms else None,
        "renewal_on": renewal_on,
        "next_renewal_total_cents": renewal_total,
    }


async def preview_change(
    session: AsyncSession,
    actor: Actor,
    subscription_id: uuid.UUID,
    data: ChangeIn,
    *,
    settings: Settings,
) -> dict[str, object]:
    subscription = await get_subscription(session, actor, subscription_id)
    plan = await plan_change(session, subscription, data)
    return preview_of(plan, settings, now(session))
