"""Buyers, billing staff and purchases made the way people make them: through the API."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from fastapi import FastAPI
from sqlalchemy import select

from atiende.billing import service as billing
from atiende.core.db import Database, Scope
from atiende.identity.actor import Actor
from atiende.identity.models import Role, User
from atiende.licensing import service as licensing
from atiende.licensing import signing
from atiende.mail.models import OutboundMail
from factories import PASSWORD, Caller, api_client, caller, make_token

_counter = iter(range(1, 1_000_000))


async def mails_to(db: Database, address: str, kind: str | None = None) -> list[OutboundMail]:
    async with db.session(Scope.system(), read_only=True) as session:
        query = select(OutboundMail).where(OutboundMail.to_address == address.lower())
        if kind is not None:
            query = query.where(OutboundMail.kind == kind)
        return list((await session.scalars(query.order_by(OutboundMail.created_at))).all())


async def buyer(app: FastAPI, *, verified: bool = True, locale: str = "en") -> Caller:
    """Sign up through the public API and follow the link of the verification e-mail."""
    db: Database = app.state.atiende.db
    n = next(_counter)
    email = f"buyer{n}.{uuid.uuid4().hex[:6]}@customer.example.com"
    async with api_client(app) as public:
        response = await public.post(
            "/api/v1/portal/signup",
            json={
                "email": email,
                "password": PASSWORD,
                "name": f"Buyer {n}",
                "company": f"Customer {n} S.A.",
                "locale": locale,
            },
        )
        assert response.status_code == 201, response.text
        if verified:
            (mail,) = await mails_to(db, email, "billing.verify")
            match = re.search(r"token=([\w-]+)", mail.text_body)
            assert match is not None
            response = await public.post("/api/v1/portal/verify", json={"token": match[1]})
            assert response.status_code == 200, response.text
    async with db.session(Scope.system(), read_only=True) as session:
        user = await session.scalar(select(User).where(User.email == email))
    assert user is not None
    return Caller(user=user, client=api_client(app, await make_token(db, user)))


async def billing_staff(app: FastAPI) -> Caller:
    return await caller(app, None, Role.vendor_billing)


@dataclass
class Purchase:
    buyer: Caller
    order: dict[str, Any]
    invoice: dict[str, Any]
    subscription_id: str


async def order(who: Caller, **terms: Any) -> Purchase:
    response = await who.client.post("/api/v1/portal/orders", json=terms)
    assert response.status_code == 201, response.text
    body = response.json()
    return Purchase(
        buyer=who,
        order=body["order"],
        invoice=body["invoice"],
        subscription_id=body["subscription_id"],
    )


async def pay(staff: Caller, invoice: dict[str, Any], reference: str = "transfer") -> None:
    response = await staff.client.post(
        f"/api/v1/billing/invoices/{invoice['id']}/payments",
        json={"reference": reference, "amount_cents": invoice["total_cents"]},
    )
    assert response.status_code == 201, response.text


async def subscription(who: Caller, subscription_id: str) -> dict[str, Any]:
    response = await who.client.get(f"/api/v1/portal/subscriptions/{subscription_id}")
    assert response.status_code == 200, response.text
    return response.json()


async def invoices(who: Caller) -> list[dict[str, Any]]:
    response = await who.client.get("/api/v1/portal/invoices")
    assert response.status_code == 200, response.text
    return response.json()


async def advance(app: FastAPI, to: datetime) -> dict[str, int]:
    """Move the test clock and run the lifecycle pass, as the hourly job does."""
    app.state.atiende.clock.set(to)
    db: Database = app.state.atiende.db
    async with db.session(Scope.system()) as session:
        return await billing.advance(session, settings=app.state.atiende.settings)


def cloud_terms(
    agents: int = 8, pbx_users: int = 10, addons: tuple[str, ...] = (), **more: Any
) -> dict[str, Any]:
    n = next(_counter)
    return {
        "deployment": "cloud",
        "license": more.pop("license", "omnichannel"),
        "agents": agents,
        "pbx_users": pbx_users,
        "addons": list(addons),
        "tenant_slug": more.pop("tenant_slug", f"cc-{n}-{uuid.uuid4().hex[:4]}"),
        "tenant_name": "Call Center",
        "admin_email": more.pop("admin_email", f"admin{n}.{uuid.uuid4().hex[:4]}@cc.example.com"),
        **more,
    }


LICENCE_KEYS = signing.generate_keypair()


async def install_licence(db: Database, *, license: str, agents: int, valid_until: date) -> None:
    """Sign a licence with the tests' vendor key and install it on the installation."""
    terms = signing.LicenceTerms(
        customer="it@customer.example.com",
        license=license,
        agents=agents,
        valid_until=valid_until,
    )
    issued_at = datetime(2026, 11, 1, tzinfo=UTC)
    document = signing.issue(LICENCE_KEYS[0], terms, issued_at=issued_at)
    async with db.session(Scope.system()) as session:
        await licensing.install(
            session, Actor.system(), document, LICENCE_KEYS[1], today=date(2026, 11, 1)
        )
