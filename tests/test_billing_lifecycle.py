"""Buying, renewing, changing, cancelling and being suspended, through the API with a test
clock: the figures are those of the commercial rules."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime

import pytest
from fastapi import FastAPI
from sqlalchemy import select, text, update

from atiende.billing.models import Invoice, InvoiceImmutable, InvoiceLine
from atiende.core.db import Database, Scope
from atiende.identity.models import Role, User
from atiende.licensing import signing
from atiende.routing.models import Agent, LicenceType, Queue, QueueMember
from atiende.tenancy.models import Tenant
from atiende.voice.models import Extension
from billing_factories import (
    advance,
    billing_staff,
    buyer,
    cloud_terms,
    invoices,
    mails_to,
    order,
    pay,
    subscription,
)
from factories import PASSWORD, api_client

ON_PREMISE_VOICE_10 = {
    "deployment": "on_premise",
    "license": "voice",
    "agents": 10,
    "addons": ["support_24x7"],
}


def at(day: str, hour: int = 12) -> datetime:
    return datetime.fromisoformat(day).replace(hour=hour, tzinfo=UTC)


async def test_an_on_premise_purchase_is_invoiced_paid_and_licensed(
    app: FastAPI, db: Database
) -> None:
    app.state.atiende.clock.set(at("2026-11-25"))
    customer = await buyer(app)
    staff = await billing_staff(app)
    purchase = await order(customer, **ON_PREMISE_VOICE_10)
    assert purchase.invoice["total_cents"] == 54000  # 10 x 29 + 250
    assert [(line["code"], line["amount_cents"]) for line in purchase.invoice["lines"]] == [
        ("voice", 29000),
        ("support_24x7", 25000),
    ]
    assert purchase.invoice["status"] == "open"
    assert (await subscription(customer, purchase.subscription_id))["status"] == "pending"
    (invoice_mail,) = await mails_to(db, customer.user.email, "billing.invoice")
    assert purchase.invoice["number"] in invoice_mail.subject

    await pay(staff, purchase.invoice)

    sub = await subscription(customer, purchase.subscription_id)
    assert sub["status"] == "active"
    assert sub["anchor_date"] == "2026-11-25"
    assert (sub["current_period_start"], sub["current_period_end"]) == ("2026-11-25", "2026-12-25")
    licences = (await customer.client.get("/api/v1/portal/licences")).json()
    assert len(licences) == 1
    document = (
        await customer.client.get(f"/api/v1/portal/licences/{licences[0]['id']}/file")
    ).json()
    public_pem = (
        app.state.atiende.settings.data_dir / "keys" / "atiende-licence-public.pem"
    ).read_bytes()
    terms = signing.verify(document, public_pem, today=date(2026, 11, 25))
    assert (terms.license, terms.agents, terms.addons) == ("voice", 10, ("support_24x7",))
    assert terms.valid_until == date(2026, 12, 24)
    (licence_mail,) = await mails_to(db, customer.user.email, "billing.licence")
    assert "10" in licence_mail.text_body


async def test_a_cloud_purchase_provisions_the_tenant_its_agents_and_extensions(
    app: FastAPI, db: Database
) -> None:
    customer = await buyer(app)
    staff = await billing_staff(app)
    terms = cloud_terms(agents=8, pbx_users=10, addons=("reports", "openai"))
    purchase = await order(customer, **terms)
    assert purchase.invoice["total_cents"] == 43200  # 8 x 39 + 10 x 5 + 20 + 50

    await pay(staff, purchase.invoice)

    async with db.session(Scope.system(), read_only=True) as session:
        tenant = await session.scalar(select(Tenant).where(Tenant.slug == terms["tenant_slug"]))
        assert tenant is not None
        users = (await session.scalars(select(User).where(User.tenant_id == tenant.id))).all()
        agents = (await session.scalars(select(Agent).where(Agent.tenant_id == tenant.id))).all()
        extensions = (
            await session.scalars(select(Extension).where(Extension.tenant_id == tenant.id))
        ).all()
    assert sorted(u.role.value for u in users) == ["admin"] + ["agent"] * 8
    assert {a.licence for a in agents} == {LicenceType.omnichannel}
    assert len(agents) == 8
    assert len(extensions) == 10
    async with db.session(Scope.tenant(tenant.id), read_only=True) as session:
        (general,) = (await session.scalars(select(Queue))).all()
        members = (await session.scalars(select(QueueMember.agent_id))).all()
    assert general.name == "General"
    assert set(general.channels) == {"voice", "webchat", "whatsapp", "telegram", "sms", "api"}
    assert set(members) == {a.user_id for a in agents}
    assert all(e.user_id is not None for e in extensions[:9])
    (access,) = await mails_to(db, terms["admin_email"], "billing.provisioned")
    password = access.text_body.split("password: ")[1].split()[0]
    async with api_client(app) as browser:
        response = await browser.post(
            "/api/v1/auth/login", json={"email": terms["admin_email"], "password": password}
        )
        assert response.status_code == 200, response.text
        csrf = response.json()["csrf_token"]
        entitlement = (await browser.get("/api/v1/entitlements")).json()
        assert entitlement == {
            "metered": True,
            "license": "omnichannel",
            "agents": 8,
            "agents_in_use": 8,
            "addons": ["openai", "reports"],
            "support_plan": "standard",
            "status": "active",
        }
        ninth = await browser.post(
            "/api/v1/users",
            headers={"X-CSRF-Token": csrf},
            json={
                "email": "ninth@cc.example.com",
                "name": "Ninth",
                "role": "agent",
                "password": PASSWORD,
            },
        )
        assert ninth.status_code == 409
        assert ninth.json()["code"] == "license_seats_exhausted"
        supervisor = await browser.post(
            "/api/v1/users",
            headers={"X-CSRF-Token": csrf},
            json={
                "email": "sup@cc.example.com",
                "name": "Sup",
                "role": "supervisor",
                "password": PASSWORD,
            },
        )
        assert supervisor.status_code == 201  # supervisors take no agent seat


async def test_periods_renew_on_the_anchor_day_clamped_to_short_months(app: FastAPI) -> None:
    app.state.atiende.clock.set(at("2027-01-31"))
    customer = await buyer(app)
    staff = await billing_staff(app)
    purchase = await order(customer, **ON_PREMISE_VOICE_10)
    await pay(staff, purchase.invoice)

    await advance(app, at("2027-02-28", 1))
    sub = await subscription(customer, purchase.subscription_id)
    assert (sub["current_period_start"], sub["current_period_end"]) == ("2027-02-28", "2027-03-31")
    await advance(app, at("2027-03-31", 1))
    sub = await subscription(customer, purchase.subscription_id)
    assert (sub["current_period_start"], sub["current_period_end"]) == ("2027-03-31", "2027-04-30")
    renewals = [i for i in await invoices(customer) if i["kind"] == "renewal"]
    assert [(i["period_start"], i["period_end"], i["total_cents"]) for i in renewals] == [
        ("2027-03-31", "2027-04-30", 54000),
        ("2027-02-28", "2027-03-31", 54000),
    ]
    numbers = sorted(int(i["number"].split("-")[1]) for i in await invoices(customer))
    assert numbers == list(range(numbers[0], numbers[0] + 3))  # sequential, no gaps
    assert (await advance(app, at("2027-03-31", 2)))["renewed"] == 0  # idempotent


async def test_a_leap_year_february_is_a_period_of_29_days(app: FastAPI) -> None:
    app.state.atiende.clock.set(at("2028-01-30"))
    customer = await buyer(app)
    purchase = await order(customer, **ON_PREMISE_VOICE_10)
    await pay(await billing_staff(app), purchase.invoice)
    await advance(app, at("2028-02-29", 1))
    sub = await subscription(customer, purchase.subscription_id)
    assert (sub["current_period_start"], sub["current_period_end"]) == ("2028-02-29", "2028-03-30")


async def test_unpaid_renewal_goes_past_due_then_suspends_agents_until_paid(app: FastAPI) -> None:
    app.state.atiende.clock.set(at("2026-11-25"))
    customer = await buyer(app)
    staff = await billing_staff(app)
    terms = cloud_terms(agents=5, pbx_users=7, license="voice")
    purchase = await order(customer, **terms)
    assert purchase.invoice["total_cents"] == 18000  # 5 x 29 + 7 x 5
    await pay(staff, purchase.invoice)
    db: Database = app.state.atiende.db
    async with db.session(Scope.system()) as session:
        tenant = await session.scalar(select(Tenant).where(Tenant.slug == terms["tenant_slug"]))
        assert tenant is not None
        agent = await session.scalar(
            select(User).where(User.tenant_id == tenant.id, User.role == Role.agent).limit(1)
        )
        assert agent is not None
        agent.password_hash = (await session.get(User, customer.user.id)).password_hash  # type: ignore[union-attr]
        agent_email = agent.email

    await advance(app, at("2026-12-25", 1))  # renewal invoiced, due in 5 days
    renewal = next(i for i in await invoices(customer) if i["kind"] == "renewal")
    assert (await subscription(customer, purchase.subscription_id))["status"] == "active"
    await advance(app, at("2026-12-31"))
    assert (await subscription(customer, purchase.subscription_id))["status"] == "past_due"

    async def agent_login() -> tuple[int, str | None]:
        async with api_client(app) as browser:
            r = await browser.post(
                "/api/v1/auth/login", json={"email": agent_email, "password": PASSWORD}
            )
            return r.status_code, r.json().get("code")

    assert (await agent_login())[0] == 200  # past due still works
    async with api_client(app) as signed_in:
        login = await signed_in.post(
            "/api/v1/auth/login", json={"email": agent_email, "password": PASSWORD}
        )
        assert login.status_code == 200
        assert (await signed_in.get("/api/v1/auth/me")).status_code == 200
        await advance(app, at("2027-01-07"))
        assert (await signed_in.get("/api/v1/auth/me")).status_code == 401  # signed out
    assert (await subscription(customer, purchase.subscription_id))["status"] == "suspended"
    assert await agent_login() == (403, "subscription_suspended")
    async with db.session(Scope.system(), read_only=True) as session:
        assert await session.scalar(select(User).where(User.email == agent_email)) is not None

    await pay(staff, renewal)
    assert (await subscription(customer, purchase.subscription_id))["status"] == "active"
    assert (await agent_login())[0] == 200


async def test_cancellation_takes_effect_at_period_end_and_can_be_withdrawn(app: FastAPI) -> None:
    app.state.atiende.clock.set(at("2026-11-25"))
    customer = await buyer(app)
    staff = await billing_staff(app)
    purchase = await order(customer, **ON_PREMISE_VOICE_10)
    await pay(staff, purchase.invoice)
    path = f"/api/v1/portal/subscriptions/{purchase.subscription_id}"

    assert (await customer.client.post(f"{path}/cancel")).json()["cancel_at_period_end"] is True
    withdrawn = await customer.client.post(f"{path}/withdraw-cancellation")
    assert withdrawn.json()["cancel_at_period_end"] is False
    again = await customer.client.post(f"{path}/withdraw-cancellation")
    assert (again.status_code, again.json()["code"]) == (409, "no_pending_cancellation")
    await customer.client.post(f"{path}/cancel")
    await advance(app, at("2026-12-24"))
    assert (await subscription(customer, purchase.subscription_id))["status"] == "active"

    counts = await advance(app, at("2026-12-25", 1))

    assert counts["cancelled"] == 1
    assert counts["renewed"] == 0
    assert (await subscription(customer, purchase.subscription_id))["status"] == "cancelled"
    assert [i["kind"] for i in await invoices(customer)] == ["initial"]  # nothing paid back
    late = await customer.client.post(f"{path}/withdraw-cancellation")
    assert (late.status_code, late.json()["code"]) == (409, "subscription_cancelled")


async def test_increases_are_charged_pro_rata_and_decreases_wait_for_renewal(
    app: FastAPI, db: Database
) -> None:
    app.state.atiende.clock.set(at("2026-11-01"))
    customer = await buyer(app)
    staff = await billing_staff(app)
    purchase = await order(customer, **cloud_terms(agents=8, pbx_users=10))
    await pay(staff, purchase.invoice)  # period 2026-11-01 → 2026-12-01 (30 days)
    app.state.atiende.clock.set(at("2026-11-16"))  # 15 days left
    path = f"/api/v1/portal/subscriptions/{purchase.subscription_id}"
    change = {"agents": 10, "pbx_users": 10, "addons": ["reports"]}

    preview = (await customer.client.post(f"{path}/preview-change", json=change)).json()
    assert preview["charge_now"]["total_cents"] == 2 * 3900 // 2 + 2000 // 2  # 3900 + 1000
    assert preview["renewal_on"] == "2026-12-01"
    assert preview["next_renewal_total_cents"] == 10 * 3900 + 10 * 500 + 2000
    assert len(await invoices(customer)) == 1  # a preview changes nothing

    changed = (await customer.client.post(f"{path}/change", json=change)).json()
    assert (changed["agents"], changed["addons"]) == (10, ["reports"])
    proration = next(i for i in await invoices(customer) if i["kind"] == "proration")
    assert proration["total_cents"] == 4900

    decrease = await customer.client.post(f"{path}/change", json={"pbx_users": 10, "addons": []})
    assert decrease.status_code == 200, decrease.text
    assert decrease.json()["addons"] == ["reports"]  # kept until the renewal
    assert decrease.json()["pending_terms"]["addons"] == []
    await advance(app, at("2026-12-01", 1))
    sub = await subscription(customer, purchase.subscription_id)
    assert (sub["addons"], sub["pending_terms"]) == ([], None)
    renewal = next(i for i in await invoices(customer) if i["kind"] == "renewal")
    assert renewal["total_cents"] == 10 * 3900 + 10 * 500


async def test_voice_upgrades_to_omnichannel_but_never_back(app: FastAPI) -> None:
    app.state.atiende.clock.set(at("2026-11-01"))
    customer = await buyer(app)
    purchase = await order(customer, **cloud_terms(agents=5, pbx_users=5, license="voice"))
    await pay(await billing_staff(app), purchase.invoice)
    app.state.atiende.clock.set(at("2026-11-16"))
    path = f"/api/v1/portal/subscriptions/{purchase.subscription_id}"

    upgraded = await customer.client.post(f"{path}/change", json={"license": "omnichannel"})
    assert upgraded.status_code == 200, upgraded.text
    proration = next(i for i in await invoices(customer) if i["kind"] == "proration")
    assert proration["total_cents"] == 5 * (3900 - 2900) // 2
    back = await customer.client.post(f"{path}/change", json={"license": "voice"})
    assert (back.status_code, back.json()["code"]) == (422, "license_downgrade_refused")


@pytest.mark.parametrize(
    ("terms", "code"),
    [
        (
            {"deployment": "on_premise", "license": "omnichannel", "agents": 12},
            "agents_not_in_step",
        ),
        (
            {
                "deployment": "cloud",
                "license": "voice",
                "agents": 4,
                "tenant_slug": "x-4",
                "admin_email": "a4@x.example.com",
            },
            "agents_below_minimum",
        ),
        (
            {
                "deployment": "cloud",
                "license": "voice",
                "agents": 6,
                "pbx_users": 5,
                "tenant_slug": "x-6",
                "admin_email": "a6@x.example.com",
            },
            "pbx_users_below_agents",
        ),
        (
            {"deployment": "on_premise", "license": "voice", "agents": 10, "addons": ["fax"]},
            "unknown_addon",
        ),
        (
            {"deployment": "on_premise", "license": "voice", "agents": 10, "pbx_users": 10},
            "pbx_users_on_premise",
        ),
        ({"deployment": "cloud", "license": "voice", "agents": 5}, "tenant_slug_required"),
    ],
)
async def test_an_order_that_breaks_a_rule_is_refused_and_changes_nothing(
    app: FastAPI, terms: dict, code: str
) -> None:
    customer = await buyer(app)
    response = await customer.client.post("/api/v1/portal/orders", json=terms)
    assert response.status_code == 422, response.text
    assert response.json()["code"] == code
    assert await invoices(customer) == []
    assert (await customer.client.get("/api/v1/portal/orders")).json() == []


async def test_an_unverified_buyer_cannot_order(app: FastAPI) -> None:
    customer = await buyer(app, verified=False)
    response = await customer.client.post("/api/v1/portal/orders", json=ON_PREMISE_VOICE_10)
    assert (response.status_code, response.json()["code"]) == (403, "email_not_verified")


async def test_payments_are_whole_once_and_by_billing_staff_only(app: FastAPI) -> None:
    customer = await buyer(app)
    other = await buyer(app)
    staff = await billing_staff(app)
    purchase = await order(customer, **ON_PREMISE_VOICE_10)
    url = f"/api/v1/billing/invoices/{purchase.invoice['id']}/payments"

    wrong = await staff.client.post(url, json={"reference": "t", "amount_cents": 100})
    assert (wrong.status_code, wrong.json()["code"]) == (422, "payment_amount_mismatch")
    by_buyer = await customer.client.post(url, json={"reference": "t", "amount_cents": 54000})
    assert by_buyer.status_code == 403
    assert (
        await other.client.get(f"/api/v1/portal/invoices/{purchase.invoice['id']}")
    ).status_code == 404
    await pay(staff, purchase.invoice)
    twice = await staff.client.post(url, json={"reference": "t", "amount_cents": 54000})
    assert (twice.status_code, twice.json()["code"]) == (409, "invoice_already_paid")


async def test_issued_invoices_cannot_change_by_any_path(app: FastAPI, db: Database) -> None:
    customer = await buyer(app)
    purchase = await order(customer, **ON_PREMISE_VOICE_10)
    before = (await customer.client.get(f"/api/v1/portal/invoices/{purchase.invoice['id']}")).json()

    async def change_through_the_orm() -> None:
        async with db.session(Scope.system()) as session:
            invoice = await session.get(Invoice, uuid.UUID(purchase.invoice["id"]))
            assert invoice is not None
            invoice.total_cents = 1

    with pytest.raises(InvoiceImmutable):
        await change_through_the_orm()
    for statement in (
        update(Invoice).values(total_cents=1),
        update(InvoiceLine).values(amount_cents=1),
        text("DELETE FROM invoice_lines"),
    ):
        with pytest.raises(Exception, match="immutable"):
            async with db.session(Scope.system()) as session:
                await session.execute(statement)

    after = (await customer.client.get(f"/api/v1/portal/invoices/{purchase.invoice['id']}")).json()
    assert after == before
    pdf = await customer.client.get(f"/api/v1/portal/invoices/{purchase.invoice['id']}/pdf")
    assert pdf.status_code == 200
    assert pdf.content.startswith(b"%PDF")


async def test_a_voice_tenant_cannot_enable_digital_channels(app: FastAPI, db: Database) -> None:
    customer = await buyer(app)
    terms = cloud_terms(agents=5, pbx_users=5, license="voice")
    purchase = await order(customer, **terms)
    await pay(await billing_staff(app), purchase.invoice)
    async with db.session(Scope.system()) as session:
        tenant = await session.scalar(select(Tenant).where(Tenant.slug == terms["tenant_slug"]))
        admin = await session.scalar(select(User).where(User.email == terms["admin_email"]))
        assert tenant is not None
        assert admin is not None
        agents = (await session.scalars(select(Agent).where(Agent.tenant_id == tenant.id))).all()
    assert {a.licence for a in agents} == {LicenceType.voice}
    from factories import make_token

    client = api_client(app, await make_token(db, admin))
    chat_queue = await client.post("/api/v1/queues", json={"name": "Chat", "channels": ["webchat"]})
    assert (chat_queue.status_code, chat_queue.json()["code"]) == (403, "license_type_voice_only")
    calls = await client.post("/api/v1/queues", json={"name": "Calls", "channels": ["voice"]})
    assert calls.status_code == 201, calls.text
    profile = await client.patch(
        f"/api/v1/agents/{agents[0].user_id}", json={"licence": "omnichannel"}
    )
    assert (profile.status_code, profile.json()["code"]) == (403, "license_type_voice_only")


async def test_leads_are_recorded_and_listed_for_billing_staff(app: FastAPI) -> None:
    async with api_client(app) as public:
        response = await public.post(
            "/api/v1/leads",
            json={
                "name": "Ana",
                "email": "Ana@Prospect.example.com",
                "company": "Prospect",
                "deployment": "cloud",
                "agents": 20,
                "message": "Queremos una demo",
            },
        )
        assert response.status_code == 201, response.text
        bad = await public.post("/api/v1/leads", json={"name": "", "email": "nope"})
        assert bad.status_code == 422
    staff = await billing_staff(app)
    leads = (await staff.client.get("/api/v1/billing/leads")).json()
    assert [(lead["email"], lead["agents"]) for lead in leads] == [("ana@prospect.example.com", 20)]
    customer = await buyer(app)
    assert (await customer.client.get("/api/v1/billing/leads")).status_code == 403


async def test_public_quotes_follow_the_price_list(app: FastAPI) -> None:
    async with api_client(app) as public:
        ok = await public.post(
            "/api/v1/pricing/quote",
            json={
                "deployment": "cloud",
                "license": "omnichannel",
                "agents": 8,
                "pbx_users": 10,
                "addons": ["reports", "openai"],
            },
        )
        assert ok.json()["total_cents"] == 43200
        refused = await public.post(
            "/api/v1/pricing/quote",
            json={"deployment": "cloud", "license": "voice", "agents": 4},
        )
        assert (refused.status_code, refused.json()["code"]) == (422, "agents_below_minimum")
    assert json.dumps(ok.json())  # plain JSON


async def test_subscriptions_rows_never_leak_between_buyers(app: FastAPI) -> None:
    first, second = await buyer(app), await buyer(app)
    purchase = await order(first, **ON_PREMISE_VOICE_10)
    assert (await second.client.get("/api/v1/portal/subscriptions")).json() == []
    response = await second.client.get(f"/api/v1/portal/subscriptions/{purchase.subscription_id}")
    assert response.status_code == 404
    cancel = await second.client.post(
        f"/api/v1/portal/subscriptions/{purchase.subscription_id}/cancel"
    )
    assert cancel.status_code == 404
