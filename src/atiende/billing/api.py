"""HTTP routes of sales and billing.

- ``/api/v1/pricing/quote``, ``/api/v1/leads``, ``/api/v1/portal/signup`` and
  ``/api/v1/portal/verify``: public;
- ``/api/v1/portal/…``: the buyer's own account, orders, subscriptions, invoices, licences;
- ``/api/v1/billing/…``: vendor billing staff (every account; payments received);
- ``/api/v1/entitlements``: what the caller's tenant may use.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from fastapi import APIRouter, Request, Response, status

from atiende.billing import documents, entitlements, payments, pricing, service
from atiende.billing.schemas import (
    AccountOut,
    AccountUpdate,
    ChangeIn,
    ChangePreviewOut,
    EntitlementOut,
    InvoiceOut,
    IssuedLicenceOut,
    LeadIn,
    LeadOut,
    OrderIn,
    OrderOut,
    PaymentIn,
    PaymentOut,
    PlacedOrderOut,
    QuoteOut,
    SignupIn,
    SubscriptionOut,
    TermsIn,
    VerifyIn,
)
from atiende.billing.service import monthly_total
from atiende.core.errors import PermissionDenied
from atiende.web.deps import CurrentPrincipal, PublicSession, Session, app_state

public = APIRouter(prefix="/api/v1", tags=["sales"])
portal = APIRouter(prefix="/api/v1/portal", tags=["customer portal"])
staff = APIRouter(prefix="/api/v1/billing", tags=["billing back office"])
tenant = APIRouter(prefix="/api/v1", tags=["entitlements"])


def _account_out(account: Any) -> AccountOut:
    return AccountOut(
        id=account.id,
        email=account.email,
        company=account.company,
        tax_id=account.tax_id,
        address=account.address,
        locale=account.locale,
        email_verified=account.email_verified_at is not None,
        created_at=account.created_at,
    )


def _subscription_out(subscription: Any) -> SubscriptionOut:
    return SubscriptionOut.model_validate(
        {
            **{
                c: getattr(subscription, c)
                for c in SubscriptionOut.model_fields
                if c != "monthly_total_cents"
            },
            "status": subscription.status.value,
            "monthly_total_cents": monthly_total(subscription),
        }
    )


# --- public -------------------------------------------------------------------------------


@public.post("/pricing/quote", response_model=QuoteOut)
async def quote(session: PublicSession, body: TermsIn) -> QuoteOut:
    """The monthly price of a set of terms, or a 422 naming the rule they break."""
    on = service.today_of(session)
    terms = pricing.make_terms(
        pricing.price_list_at(on),
        deployment=body.deployment,
        license=body.license,
        agents=body.agents,
        pbx_users=body.pbx_users,
        addons=body.addons,
    )
    return QuoteOut.model_validate(service.quote_for(terms, on).to_json_dict())


@public.post("/leads", response_model=LeadOut, status_code=status.HTTP_201_CREATED)
async def create_lead(session: PublicSession, body: LeadIn) -> LeadOut:
    """Request a demo / pre-sale conversation (implementation services are quoted apart)."""
    return LeadOut.model_validate(await service.create_lead(session, body))


@portal.post("/signup", response_model=AccountOut, status_code=status.HTTP_201_CREATED)
async def signup(request: Request, session: PublicSession, body: SignupIn) -> AccountOut:
    account, _ = await service.sign_up(session, body, settings=app_state(request).settings)
    return _account_out(account)


@portal.post("/verify", response_model=AccountOut)
async def verify(session: PublicSession, body: VerifyIn) -> AccountOut:
    return _account_out(await service.verify_email(session, body.token))


# --- the buyer ----------------------------------------------------------------------------


@portal.get("/account", response_model=AccountOut)
async def get_account(principal: CurrentPrincipal, session: Session) -> AccountOut:
    return _account_out(await service.get_account(session, principal.actor))


@portal.patch("/account", response_model=AccountOut)
async def update_account(
    principal: CurrentPrincipal, session: Session, body: AccountUpdate
) -> AccountOut:
    return _account_out(await service.update_account(session, principal.actor, body))


@portal.post("/orders", response_model=PlacedOrderOut, status_code=status.HTTP_201_CREATED)
async def place_order(
    request: Request, principal: CurrentPrincipal, session: Session, body: OrderIn
) -> PlacedOrderOut:
    settings = app_state(request).settings
    order, subscription, invoice = await service.place_order(
        session, principal.actor, body, settings=settings
    )
    return PlacedOrderOut(
        order=OrderOut.model_validate(order),
        subscription_id=subscription.id,
        invoice=(await service.invoices_out(session, [invoice]))[0],
        payment_instructions=payments.provider().instructions(invoice, settings),
    )


@portal.get("/orders", response_model=list[OrderOut])
async def list_orders(principal: CurrentPrincipal, session: Session) -> list[OrderOut]:
    return [OrderOut.model_validate(o) for o in await service.list_orders(session, principal.actor)]


@portal.get("/subscriptions", response_model=list[SubscriptionOut])
async def list_subscriptions(
    principal: CurrentPrincipal, session: Session
) -> list[SubscriptionOut]:
    rows = await service.list_subscriptions(session, principal.actor)
    return [_subscription_out(s) for s in rows]


@portal.get("/subscriptions/{subscription_id}", response_model=SubscriptionOut)
async def get_subscription(
    principal: CurrentPrincipal, session: Session, subscription_id: uuid.UUID
) -> SubscriptionOut:
    return _subscription_out(
        await service.get_subscription(session, principal.actor, subscription_id)
    )


@portal.post("/subscriptions/{subscription_id}/preview-change", response_model=ChangePreviewOut)
async def preview_change(
    request: Request,
    principal: CurrentPrincipal,
    session: Session,
    subscription_id: uuid.UUID,
    body: ChangeIn,
) -> ChangePreviewOut:
    """What a change would charge now (pro rata) and what applies at the renewal; changes
    nothing."""
    preview = await service.preview_change(
        session, principal.actor, subscription_id, body, settings=app_state(request).settings
    )
    return ChangePreviewOut.model_validate(preview)


@portal.post("/subscriptions/{subscription_id}/change", response_model=SubscriptionOut)
async def change(
    request: Request,
    principal: CurrentPrincipal,
    session: Session,
    subscription_id: uuid.UUID,
    body: ChangeIn,
) -> SubscriptionOut:
    subscription, _ = await service.apply_change(
        session, principal.actor, subscription_id, body, settings=app_state(request).settings
    )
    return _subscription_out(subscription)


@portal.post("/subscriptions/{subscription_id}/cancel", response_model=SubscriptionOut)
async def cancel(
    principal: CurrentPrincipal, session: Session, subscription_id: uuid.UUID
) -> SubscriptionOut:
    """Cancel at the end of the current period (no refund); at once if never paid."""
    return _subscription_out(
        await service.request_cancellation(session, principal.actor, subscription_id)
    )


@portal.post(
    "/subscriptions/{subscription_id}/withdraw-cancellation", response_model=SubscriptionOut
)
async def withdraw_cancellation(
    principal: CurrentPrincipal, session: Session, subscription_id: uuid.UUID
) -> SubscriptionOut:
    return _subscription_out(
        await service.withdraw_cancellation(session, principal.actor, subscription_id)
    )


@portal.get("/invoices", response_model=list[InvoiceOut])
async def list_invoices(principal: CurrentPrincipal, session: Session) -> list[InvoiceOut]:
    return await service.list_invoices(session, principal.actor)


@portal.get("/invoices/{invoice_id}", response_model=InvoiceOut)
async def get_invoice(
    principal: CurrentPrincipal, session: Session, invoice_id: uuid.UUID
) -> InvoiceOut:
    return await service.invoice_out(session, principal.actor, invoice_id)


@portal.get("/invoices/{invoice_id}/pdf", response_class=Response)
async def invoice_pdf(
    request: Request, principal: CurrentPrincipal, session: Session, invoice_id: uuid.UUID
) -> Response:
    invoice = await service.get_invoice(session, principal.actor, invoice_id)
    locale = principal.locale or app_state(request).settings.default_locale
    pdf = await documents.invoice_pdf_bytes(
        session, invoice, settings=app_state(request).settings, locale=locale
    )
    return Response(
        pdf,
        media_type="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="{invoice.display_number}.pdf"'},
    )


@portal.get("/licences", response_model=list[IssuedLicenceOut])
async def list_licences(principal: CurrentPrincipal, session: Session) -> list[IssuedLicenceOut]:
    rows = await service.list_licences(session, principal.actor)
    return [IssuedLicenceOut.model_validate(r) for r in rows]


@portal.get("/licences/{licence_id}/file", response_class=Response)
async def licence_file(
    principal: CurrentPrincipal, session: Session, licence_id: uuid.UUID
) -> Response:
    licence = await service.get_licence(session, principal.actor, licence_id)
    return Response(
        json.dumps(licence.document, indent=2, ensure_ascii=False) + "\n",
        media_type="application/json",
        headers={"Content-Disposition": f'attachment; filename="{_licence_filename(licence)}"'},
    )


def _licence_filename(licence: Any) -> str:
    return f"atiende-licence-{licence.licence_id}.json"


# --- vendor billing staff -----------------------------------------------------------------


@staff.get("/accounts", response_model=list[AccountOut])
async def staff_accounts(principal: CurrentPrincipal, session: Session) -> list[AccountOut]:
    return [_account_out(a) for a in await service.list_accounts(session, principal.actor)]


@staff.get("/subscriptions", response_model=list[SubscriptionOut])
async def staff_subscriptions(
    principal: CurrentPrincipal, session: Session
) -> list[SubscriptionOut]:
    service._require_staff(principal.actor)
    return [
        _subscription_out(s) for s in await service.list_subscriptions(session, principal.actor)
    ]


@staff.get("/invoices", response_model=list[InvoiceOut])
async def staff_invoices(
    principal: CurrentPrincipal, session: Session, unpaid: bool = False
) -> list[InvoiceOut]:
    service._require_staff(principal.actor)
    return await service.list_invoices(session, principal.actor, unpaid_only=unpaid)


@staff.post(
    "/invoices/{invoice_id}/payments",
    response_model=PaymentOut,
    status_code=status.HTTP_201_CREATED,
)
async def record_payment(
    request: Request,
    principal: CurrentPrincipal,
    session: Session,
    invoice_id: uuid.UUID,
    body: PaymentIn,
) -> PaymentOut:
    """Mark an invoice paid (bank transfer received): the ``manual`` payment provider."""
    payment = await service.record_payment(
        session,
        principal.actor,
        invoice_id,
        body,
        settings=app_state(request).settings,
        provider=payments.ManualProvider.name,
    )
    return PaymentOut.model_validate(payment)


@staff.get("/leads", response_model=list[LeadOut])
async def staff_leads(principal: CurrentPrincipal, session: Session) -> list[LeadOut]:
    return [
        LeadOut.model_validate(lead) for lead in await service.list_leads(session, principal.actor)
    ]


# --- tenants ------------------------------------------------------------------------------


@tenant.get("/entitlements", response_model=EntitlementOut)
async def my_entitlements(principal: CurrentPrincipal, session: Session) -> EntitlementOut:
    """Seats, licence type, add-ons and support plan of the caller's tenant."""
    if principal.tenant_id is None:
        raise PermissionDenied("Entitlements belong to a tenant.")
    entitlement = await entitlements.for_tenant(session, principal.tenant_id)
    return EntitlementOut(
        metered=entitlement.metered,
        license=entitlement.license,
        agents=entitlement.agents,
        agents_in_use=await entitlements.agents_in_use(session, principal.tenant_id),
        addons=sorted(entitlement.addons),
        support_plan=entitlement.support_plan,
        status=entitlement.status,
    )


routers = (public, portal, staff, tenant)
