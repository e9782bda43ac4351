"""Sales and billing in a real browser: a buyer signs up, confirms the e-mail, orders a cloud
plan from the quote, billing staff mark the invoice paid, and the buyer changes the plan (pro
rata), cancels at period end and withdraws it; /pricing refuses terms that break a rule and
takes a demo request; an on-premise admin installs the licence file; an unpaid invoice makes
the portal warn (past due) and then say the service is suspended."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from playwright.sync_api import Dialog, Page, expect
from sqlalchemy import select

from atiende.billing import service as billing
from atiende.billing.models import BillingAccount, Lead, Subscription
from atiende.billing.schemas import ChangeIn, OrderIn, PaymentIn, SignupIn
from atiende.core.db import Database, Scope
from atiende.identity import service as identity
from atiende.identity.actor import Actor
from atiende.identity.models import Role, User
from atiende.identity.schemas import UserCreate
from atiende.licensing import signing
from atiende.mail.models import OutboundMail
from atiende.tenancy import service as tenancy
from atiende.tenancy.models import DeploymentMode
from atiende.tenancy.schemas import TenantCreate

if TYPE_CHECKING:  # only for annotations: two conftest modules make `import conftest` ambiguous
    from conftest import LiveServer, NewContext

    SignIn = Callable[[Page, Any], None]

pytestmark = pytest.mark.browser
PASSWORD = "una-clave-de-prueba"


@dataclass(frozen=True)
class Person:
    """Who signs in (the fields the ``sign_in`` fixture reads)."""

    email: str
    name: str
    role: Role
    password: str = PASSWORD


@dataclass
class Watch:
    errors: list[str]
    dialogs: list[str]


def _watched(page: Page) -> Watch:
    """Collects script errors, and accepts (and records) the pages' confirm() questions."""
    watch = Watch(errors=[], dialogs=[])
    page.on("pageerror", lambda error: watch.errors.append(str(error)))

    def accept(dialog: Dialog) -> None:
        watch.dialogs.append(dialog.message)
        dialog.accept()

    page.on("dialog", accept)
    return watch


def _add_vendor_user(live_server: LiveServer, person: Person) -> None:
    async def seed(db: Database) -> None:
        async with db.session(Scope.system()) as session:
            await identity.create_user(
                session,
                Actor.system(),
                UserCreate(
                    email=person.email, name=person.name, role=person.role, password=PASSWORD
                ),
            )

    live_server.run(seed)


def _verification_path(live_server: LiveServer, email: str) -> str:
    async def read(db: Database) -> str:
        async with db.session(Scope.system(), read_only=True) as session:
            mail = await session.scalar(
                select(OutboundMail).where(
                    OutboundMail.to_address == email, OutboundMail.kind == "billing.verify"
                )
            )
            assert mail is not None, "no verification e-mail was queued"
            return mail.text_body

    match = re.search(r"/portal/verify\?token=[\w-]+", live_server.run(read))
    assert match is not None
    return match[0]


def _period_end(live_server: LiveServer, email: str) -> date:
    async def read(db: Database) -> date:
        async with db.session(Scope.system(), read_only=True) as session:
            end = await session.scalar(
                select(Subscription.current_period_end)
                .join(BillingAccount, BillingAccount.id == Subscription.account_id)
                .where(BillingAccount.email == email)
            )
            assert end is not None
            return end

    return live_server.run(read)


def _money(cents: int) -> str:
    return f"USD {cents // 100:,}.{cents % 100:02d}"


def _sign_in_to_portal(page: Page, email: str) -> None:
    page.goto("/login?next=/portal")
    page.locator("input[name=email]").fill(email)
    page.locator("input[name=password]").fill(PASSWORD)
    page.locator("form[action='/login'] button[type=submit]").click()
    page.wait_for_url("**/portal")
    expect(page.locator("[data-sales=portal]")).to_have_attribute("data-ready", "true")


def _screenshot(page: Page, name: str) -> None:
    """Pictures for the docs, only when asked for (ATIENDE_SCREENSHOTS=<folder>)."""
    folder = os.environ.get("ATIENDE_SCREENSHOTS")
    if folder:
        page.evaluate("window.scrollTo(0, 0)")
        page.screenshot(path=str(Path(folder) / name))


def test_a_buyer_signs_up_orders_pays_changes_and_cancels(
    live_server: LiveServer, new_context: NewContext, sign_in: SignIn
) -> None:
    email = "berta@cliente-norte.example.com"
    page = new_context().new_page()
    watch = _watched(page)

    # sign up, and confirm the address with the e-mailed link
    page.goto("/portal/signup")
    form = page.get_by_test_id("signup-form")
    form.locator("input[name=name]").fill("Berta Compradora")
    form.locator("input[name=company]").fill("Contacto Norte S.A.")
    form.locator("input[name=email]").fill(email)
    form.locator("input[name=password]").fill(PASSWORD)
    form.locator("button[type=submit]").click()
    done = page.get_by_test_id("signup-done")
    expect(done).to_contain_text("Revise su correo")
    expect(done).to_contain_text(email)

    page.goto(_verification_path(live_server, email))
    verify = page.get_by_test_id("verify")
    expect(verify).to_have_attribute("data-state", "verified")
    expect(verify).to_contain_text("Contacto Norte S.A.")
    page.get_by_test_id("verify-login").click()
    page.locator("input[name=email]").fill(email)
    page.locator("input[name=password]").fill(PASSWORD)
    page.locator("form[action='/login'] button[type=submit]").click()
    page.wait_for_url("**/portal")
    expect(page.locator("[data-sales=portal]")).to_have_attribute("data-ready", "true")
    expect(page.locator("#sidenav")).to_contain_text("Portal")
    expect(page.get_by_test_id("verified")).to_be_visible()

    # the quote shows before the order: cloud, omnichannel, 8 agents, 10 PBX users, 2 add-ons
    order = page.get_by_test_id("order-form")
    order.locator("input[name=license][value=omnichannel]").check()
    order.locator("input[name=agents]").fill("8")
    order.locator("input[name=pbx_users]").fill("10")
    order.locator("input[name=addons][value=reports]").check()
    order.locator("input[name=addons][value=openai]").check()
    quote = page.get_by_test_id("order-quote")
    expect(quote.get_by_test_id("quote-total")).to_have_text("USD 432.00")
    expect(quote.locator("[data-line=omnichannel]")).to_contain_text("USD 312.00")
    order.locator("input[name=tenant_name]").fill("Contacto Norte")
    expect(order.locator("input[name=tenant_slug]")).to_have_value("contacto-norte")
    order.locator("input[name=admin_email]").fill("admin@contacto-norte.example.com")
    page.get_by_test_id("place-order").click()

    result = page.get_by_test_id("order-result")
    expect(result).to_be_visible()
    expect(result.locator("[data-result=total]")).to_have_text("USD 432.00")
    expect(result.locator("[data-result=instructions]")).to_contain_text("Bank transfer")
    number = result.locator("[data-result=number]").inner_text()
    invoice_row = page.locator(f"[data-invoices] tr[data-invoice='{number}']")
    expect(invoice_row.get_by_test_id("invoice-total")).to_have_text("USD 432.00")
    expect(invoice_row.locator("a[href$='/pdf']")).to_be_visible()
    card = page.locator("[data-subscription]")
    expect(card).to_have_attribute("data-status", "pending")
    expect(card).to_contain_text(number)

    # billing staff record the bank transfer
    staff = Person("fabiola@facturacion.example.com", "Fabiola Facturación", Role.vendor_billing)
    _add_vendor_user(live_server, staff)
    office = new_context().new_page()
    office_watch = _watched(office)
    sign_in(office, staff)
    office.locator("#sidenav").get_by_role("link", name="Facturación").click()
    expect(office.locator("[data-sales=billing]")).to_have_attribute("data-ready", "true")
    row = office.locator(f"[data-unpaid] tr[data-invoice='{number}']")
    expect(row).to_contain_text("Contacto Norte S.A.")
    row.locator("[data-action=mark-paid]").click()
    payment = office.locator(f"[data-pay-form='{number}']")
    expect(payment.locator("input[name=amount]")).to_have_value("432.00")
    payment.locator("input[name=reference]").fill("SPEI 0042")
    payment.locator("button[type=submit]").click()
    expect(office.get_by_test_id("message-success")).to_contain_text(number)
    expect(row).to_have_count(0)
    expect(office.get_by_test_id("subscriptions-table")).to_contain_text("Activo")

    # the buyer sees the subscription active, with its period and next renewal
    page.reload()
    expect(page.locator("[data-sales=portal]")).to_have_attribute("data-ready", "true")
    expect(card).to_have_attribute("data-status", "active")
    expect(card.get_by_test_id("subscription-status")).to_have_text("Activo")
    expect(card.locator("[data-fact=renewal]")).not_to_be_empty()
    expect(invoice_row.get_by_test_id("invoice-status")).to_have_text("Pagada")

    # change to 10 agents: previewed first, charged pro rata, then confirmed
    card.locator("[data-action=change]").click()
    change = card.get_by_test_id("change-form")
    change.locator("input[name=agents]").fill("10")
    change.locator("button[type=submit]").click()
    charge = change.get_by_test_id("charge-now")
    expect(charge).to_contain_text("prorrateo")
    charge_cents = int(charge.get_attribute("data-cents") or 0)
    assert 0 < charge_cents <= 2 * 3900
    expect(charge).to_contain_text(_money(charge_cents))
    expect(change.get_by_test_id("from-renewal")).to_contain_text("USD 510.00")
    change.locator("[data-confirm-change]").click()
    expect(card.locator("[data-fact=agents]")).to_have_text("10")
    proration = page.locator("[data-invoices] tr[data-kind=proration]")
    expect(proration.get_by_test_id("invoice-total")).to_have_text(_money(charge_cents))
    expect(proration.get_by_test_id("invoice-status")).to_have_text("Abierta")

    # cancel at period end: active until the renewal date, nothing refunded; then withdraw
    period_end = _period_end(live_server, email)
    card.locator("[data-action=cancel]").click()
    assert "no se reembolsa nada" in watch.dialogs[-1]
    notice = card.get_by_test_id("cancel-notice")
    expect(notice).to_have_attribute("data-until", period_end.isoformat())
    expect(notice).to_contain_text("sigue activo hasta")
    expect(card.locator("[data-action=change]")).to_have_count(0)
    card.locator("[data-action=withdraw]").click()
    expect(notice).to_have_count(0)
    expect(card.locator("[data-action=cancel]")).to_be_visible()
    expect(card).to_have_attribute("data-status", "active")
    page.reload()
    expect(page.locator("[data-sales=portal]")).to_have_attribute("data-ready", "true")
    expect(card.locator("[data-fact=agents]")).to_have_text("10")
    expect(card.get_by_test_id("cancel-notice")).to_have_count(0)
    _screenshot(page, "portal.png")
    assert watch.errors == []
    assert office_watch.errors == []


def test_pricing_refuses_terms_that_break_a_rule_and_takes_a_demo_request(
    live_server: LiveServer, new_context: NewContext
) -> None:
    page = new_context().new_page()
    watch = _watched(page)
    page.goto("/pricing")
    calculator = page.get_by_test_id("calculator")
    quote = page.get_by_test_id("quote")
    expect(quote).to_have_attribute("data-state", "quoted")
    calculator.locator("input[name=license][value=voice]").check()
    calculator.locator("input[name=agents]").fill("4")
    expect(quote).to_have_attribute("data-state", "refused")
    expect(quote.locator("[data-quote-error]")).to_contain_text("al menos 5 agentes")
    expect(quote.get_by_test_id("quote-total")).to_have_count(0)
    calculator.locator("input[name=agents]").fill("5")  # 5 voice agents, 5 PBX users
    expect(quote.get_by_test_id("quote-total")).to_have_text("USD 170.00")

    # on premise: the agents move to an allowed count and PBX users are not asked for
    calculator.locator("input[name=deployment][value=on_premise]").check()
    expect(calculator.locator("input[name=agents]")).to_have_value("10")
    expect(calculator.locator("input[name=pbx_users]")).to_be_hidden()
    expect(quote.get_by_test_id("quote-total")).to_have_text("USD 290.00")

    lead = page.get_by_test_id("lead-form")
    lead.locator("input[name=name]").fill("Rodrigo Preventa")
    lead.locator("input[name=email]").fill("rodrigo@prospecto.example.com")
    lead.locator("input[name=company]").fill("Prospecto S.A.")
    lead.locator("select[name=deployment]").select_option("on_premise")
    lead.locator("input[name=agents]").fill("40")
    lead.locator("textarea[name=message]").fill("Queremos una demostración con WhatsApp.")
    lead.locator("button[type=submit]").click()
    expect(lead.get_by_test_id("message-success")).to_contain_text("rodrigo@prospecto.example.com")

    async def leads(db: Database) -> list[tuple[str, str | None, int | None]]:
        async with db.session(Scope.system(), read_only=True) as session:
            rows = await session.scalars(select(Lead).where(Lead.company == "Prospecto S.A."))
            return [(row.email, row.deployment, row.agents) for row in rows]

    assert live_server.run(leads) == [("rodrigo@prospecto.example.com", "on_premise", 40)]

    # the same refusal in English
    english = new_context(locale="en-US").new_page()
    english_watch = _watched(english)
    english.goto("/pricing")
    calculator = english.get_by_test_id("calculator")
    calculator.locator("input[name=agents]").fill("4")
    expect(english.get_by_test_id("quote").locator("[data-quote-error]")).to_contain_text(
        "at least 5 agents"
    )
    assert watch.errors == []
    assert english_watch.errors == []


def test_an_on_premise_admin_installs_the_licence_file(
    live_server: LiveServer, new_context: NewContext, sign_in: SignIn, tmp_path: Path
) -> None:
    private_pem, public_pem = signing.generate_keypair()
    key = tmp_path / "atiende-licence-public.pem"
    key.write_bytes(public_pem)
    admin = Person("olga@en-sitio.example.com", "Olga En Sitio", Role.admin)

    async def seed(db: Database) -> None:
        async with db.session(Scope.system()) as session:
            tenant = await tenancy.create_tenant(
                session,
                Actor.system(),
                TenantCreate(
                    slug="en-sitio",
                    name="En Sitio",
                    time_zone="America/Mexico_City",
                    deployment_mode=DeploymentMode.on_premise,
                ),
            )
            await identity.create_user(
                session,
                Actor.system(),
                UserCreate(
                    email=admin.email,
                    name=admin.name,
                    role=admin.role,
                    password=PASSWORD,
                    tenant_id=tenant.id,
                ),
            )

    live_server.run(seed)
    terms = signing.LicenceTerms(
        customer="it@en-sitio.example.com",
        license="omnichannel",
        agents=15,
        addons=("reports",),
        valid_until=datetime.now(UTC).date() + timedelta(days=365),
    )
    document = signing.issue(private_pem, terms, issued_at=datetime.now(UTC))
    genuine = signing.dumps(document).encode()
    forged = genuine.replace(b'"agents": 15', b'"agents": 500')
    assert forged != genuine

    page = new_context().new_page()
    watch = _watched(page)
    sign_in(page, admin)
    page.locator("#sidenav").get_by_role("link", name="Licencia").click()
    licence = page.locator("[data-sales=licence]")
    expect(licence).to_have_attribute("data-ready", "true")
    expect(page.get_by_test_id("licence-state")).to_have_text("No instalada")
    form = page.get_by_test_id("licence-form")
    upload = form.get_by_test_id("licence-file")

    def install(content: bytes) -> None:
        upload.set_input_files(
            files=[{"name": "licencia.json", "mimeType": "application/json", "buffer": content}]
        )
        form.locator("button[type=submit]").click()

    # the server trusts no key yet
    install(genuine)
    expect(form.get_by_test_id("message-error")).to_contain_text("ATIENDE_LICENCE_PUBLIC_KEY")

    live_server.settings.licence_public_key = key
    try:
        install(forged)
        expect(form.get_by_test_id("message-error")).to_contain_text("La firma no coincide")
        install(b"not a licence")
        expect(form.get_by_test_id("message-error")).to_contain_text("no es JSON")
        expect(page.get_by_test_id("licence-state")).to_have_text("No instalada")

        install(genuine)
        expect(form.get_by_test_id("message-success")).to_contain_text("15 agentes")
        expect(page.get_by_test_id("licence-state")).to_have_text("Vigente")
        expect(page.get_by_test_id("licence-facts")).to_contain_text("it@en-sitio.example.com")
    finally:
        live_server.settings.licence_public_key = None
    assert watch.errors == []


class _ShiftedClock:
    """The real time moved forward: the server's billing days pass without waiting."""

    def __init__(self, days: int) -> None:
        self.offset = timedelta(days=days)

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset


@pytest.fixture
def server_days(live_server: LiveServer) -> Iterator[Callable[[int], None]]:
    """Moves the live server's clock ``days`` days ahead of the real time (restored after
    the test). The browser fixtures start the app with the system clock; the database reads
    its clock for every unit of work, so the server sees the new time at once."""
    assert live_server.app is not None
    state = live_server.app.state.atiende
    db_clock, app_clock = state.db.clock, state.clock

    def shift(days: int) -> None:
        state.db.clock = state.clock = _ShiftedClock(days)

    yield shift
    state.db.clock, state.clock = db_clock, app_clock


def test_an_unpaid_invoice_shows_past_due_then_suspended(
    live_server: LiveServer, new_context: NewContext, server_days: Callable[[int], None]
) -> None:
    email = "tomas@moroso.example.com"
    settings = live_server.settings

    async def buy_and_raise_unpaid(db: Database) -> None:
        """An active cloud subscription whose change of plan leaves an invoice unpaid."""
        async with db.session(Scope.system()) as session:
            _, token = await billing.sign_up(
                session,
                SignupIn(email=email, password=PASSWORD, name="Tomás", company="Moroso S.A."),
                settings=settings,
            )
            await billing.verify_email(session, token)
        async with db.session(Scope.system()) as session:
            user = await session.scalar(select(User).where(User.email == email))
            assert user is not None
            buyer = identity.actor_for(user)
            _, subscription, invoice = await billing.place_order(
                session,
                buyer,
                OrderIn(
                    deployment="cloud",
                    license="voice",
                    agents=5,
                    pbx_users=5,
                    tenant_slug="moroso",
                    admin_email="admin@moroso.example.com",
                ),
                settings=settings,
            )
        async with db.session(Scope.system()) as session:
            await billing.record_payment(
                session,
                Actor.system(),
                invoice.id,
                PaymentIn(reference="SPEI 1", amount_cents=invoice.total_cents),
                settings=settings,
            )
        async with db.session(Scope.system()) as session:
            await billing.apply_change(
                session, buyer, subscription.id, ChangeIn(agents=6, pbx_users=6), settings=settings
            )

    async def advance(db: Database) -> None:
        """The lifecycle pass the hourly job runs (other tests' subscriptions move too)."""
        async with db.session(Scope.system()) as session:
            await billing.advance(session, settings=settings)

    live_server.run(buy_and_raise_unpaid)
    due_days, grace_days = settings.invoice_due_days, settings.billing_grace_days

    server_days(due_days + 1)
    live_server.run(advance)
    page = new_context().new_page()
    watch = _watched(page)
    _sign_in_to_portal(page, email)
    expect(page.get_by_test_id("banner-past_due")).to_contain_text("Pago vencido")
    card = page.locator("[data-subscription]")
    expect(card.get_by_test_id("subscription-status")).to_have_text("Pago vencido")

    server_days(due_days + grace_days + 1)
    live_server.run(advance)
    page.reload()
    expect(page.locator("[data-sales=portal]")).to_have_attribute("data-ready", "true")
    banner = page.get_by_test_id("banner-suspended")
    expect(banner).to_contain_text("Servicio suspendido")
    expect(page.get_by_test_id("banner-past_due")).to_have_count(0)
    expect(card.get_by_test_id("subscription-status")).to_have_text("Suspendido")
    assert watch.errors == []
