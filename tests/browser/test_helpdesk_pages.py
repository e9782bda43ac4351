"""The helpdesk in a real browser: a customer with an active subscription opens a moderate
case with a screenshot and sees its due time on the Mexico City clock; support finds it in
the queue (coloured by risk among other customers' cases), assigns it, writes an internal
note and answers; the customer sees the answer (never the note) and "answered in time";
support closes it as solved and the customer sees it closed. An account without a
subscription is told support needs one, and each side's pages are closed to the other."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pytest
from playwright.sync_api import Dialog, Page, expect
from sqlalchemy import select

from atiende.billing import service as billing
from atiende.billing.schemas import OrderIn, PaymentIn, SignupIn
from atiende.core.clock import TestClock
from atiende.core.db import CLOCK_KEY, Database, Scope
from atiende.helpdesk import service as helpdesk
from atiende.helpdesk.schemas import CaseIn
from atiende.identity import service as identity
from atiende.identity.actor import Actor
from atiende.identity.models import Role, User
from atiende.identity.schemas import UserCreate

if TYPE_CHECKING:  # only for annotations: two conftest modules make `import conftest` ambiguous
    from conftest import LiveServer, NewContext

    SignIn = Callable[[Page, Any], None]

pytestmark = pytest.mark.browser
PASSWORD = "una-clave-de-prueba"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


@dataclass(frozen=True)
class Person:
    """Who signs in (the fields the ``sign_in`` fixture reads)."""

    email: str
    name: str
    role: Role
    password: str = PASSWORD


CUSTOMER = Person("carla@transportes-carla.example.com", "Carla Cliente", Role.buyer)
OTHER_CUSTOMER = Person("it@clinica-aurora.example.com", "Clínica Aurora", Role.buyer)
SUPPORT = Person("sofia@soporte.example.com", "Sofía Soporte", Role.vendor_support)


SEVERITY_REASON = "Es una pregunta de configuración, no una falla."


def _watched(page: Page) -> list[str]:
    """Collects script errors, accepts the pages' confirm() questions and answers their
    prompt (the reason for a change of severity)."""
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))

    def accept(dialog: Dialog) -> None:
        if dialog.type == "prompt":
            dialog.accept(SEVERITY_REASON)
        else:
            dialog.accept()

    page.on("dialog", accept)
    return errors


def _ready(page: Page) -> None:
    expect(page.locator("[data-helpdesk]")).to_have_attribute("data-ready", "true")


def _screenshot(page: Page, name: str) -> None:
    """Pictures for the docs, only when asked for (ATIENDE_SCREENSHOTS=<folder>)."""
    folder = os.environ.get("ATIENDE_SCREENSHOTS")
    if folder:
        page.evaluate("window.scrollTo(0, 0)")
        page.screenshot(path=str(Path(folder) / name), full_page=True)


def _buyer(
    live_server: LiveServer, person: Person, company: str, *addons: str, pay: bool = True
) -> None:
    """A verified buyer account; with ``pay``, an on-premise plan whose first invoice is paid
    (an active subscription, which is what gives support)."""
    settings = live_server.settings

    async def seed(db: Database) -> None:
        async with db.session(Scope.system()) as session:
            _, token = await billing.sign_up(
                session,
                SignupIn(email=person.email, password=PASSWORD, name=person.name, company=company),
                settings=settings,
            )
            await billing.verify_email(session, token)
        if not pay:
            return
        async with db.session(Scope.system()) as session:
            user = await session.scalar(select(User).where(User.email == person.email))
            assert user is not None
            _, _, invoice = await billing.place_order(
                session,
                identity.actor_for(user),
                OrderIn(deployment="on_premise", license="voice", agents=10, addons=list(addons)),
                settings=settings,
            )
        async with db.session(Scope.system()) as session:
            await billing.record_payment(
                session,
                Actor.system(),
                invoice.id,
                PaymentIn(reference="SPEI", amount_cents=invoice.total_cents),
                settings=settings,
            )

    live_server.run(seed)


def _case_opened_at(
    live_server: LiveServer, person: Person, opened_at: datetime, **fields: str
) -> None:
    """A case the customer opened at ``opened_at`` (through the service, on that clock)."""

    async def seed(db: Database) -> None:
        async with db.session(Scope.system()) as session:
            session.info[CLOCK_KEY] = TestClock(opened_at)
            user = await session.scalar(select(User).where(User.email == person.email))
            assert user is not None
            await helpdesk.open_case(
                session,
                identity.actor_for(user),
                CaseIn.model_validate(fields),
                settings=live_server.settings,
            )

    live_server.run(seed)


def _support_user(live_server: LiveServer, person: Person, locale: Literal["es", "en"]) -> None:
    async def seed(db: Database) -> None:
        async with db.session(Scope.system()) as session:
            await identity.create_user(
                session,
                Actor.system(),
                UserCreate(
                    email=person.email,
                    name=person.name,
                    role=person.role,
                    password=PASSWORD,
                    locale=locale,
                ),
            )

    live_server.run(seed)


def _wall_clock(due_at: str) -> str:
    """How the Spanish page writes the time of day of an API instant (already at -06:00)."""
    due = datetime.fromisoformat(due_at)
    return f"{due.hour}:{due.minute:02d}"


def test_a_customer_opens_a_case_and_support_answers_it_in_time(
    live_server: LiveServer, new_context: NewContext, sign_in: SignIn
) -> None:
    _buyer(live_server, CUSTOMER, "Transportes Carla S.A.")
    _buyer(live_server, OTHER_CUSTOMER, "Clínica Aurora", "support_24x7")
    _support_user(live_server, SUPPORT, locale="en")
    # Another customer's cases around ours: one long past due, one critical case (counted
    # around the clock on the 24/7 plan) with 30 of its 240 minutes left, one just opened.
    instant = datetime.now(UTC)
    _case_opened_at(
        live_server,
        OTHER_CUSTOMER,
        instant - timedelta(days=30),
        severity="consultation",
        title="¿Cómo exporto el reporte de abandono?",
        description="Necesitamos el reporte de abandono por cola en CSV cada lunes.",
        product_area="reports",
    )
    _case_opened_at(
        live_server,
        OTHER_CUSTOMER,
        instant - timedelta(hours=3, minutes=30),
        severity="critical",
        title="No entran llamadas por la troncal principal",
        description="Desde las 8:00 ninguna llamada entrante llega a las colas de urgencias.",
        product_area="voice",
    )
    _case_opened_at(
        live_server,
        OTHER_CUSTOMER,
        instant,
        severity="consultation",
        title="Agregar una cola de WhatsApp para citas",
        description="Queremos que los mensajes de WhatsApp de citas lleguen a su propia cola.",
        product_area="digital_channels",
    )

    # The customer, in Spanish: the form explains severities and what is not covered.
    customer = new_context().new_page()
    customer_errors = _watched(customer)
    sign_in(customer, CUSTOMER)
    customer.locator("#sidenav").get_by_role("link", name="Soporte", exact=True).click()
    customer.wait_for_url("**/helpdesk")
    _ready(customer)
    expect(customer.get_by_test_id("cases")).to_contain_text("Su cuenta aún no tiene casos.")
    not_covered = customer.get_by_test_id("not-covered")
    for excluded in (
        "Configuración inicial",
        "Personalizaciones o desarrollos nuevos",
        "Su propia red, firewall o infraestructura local",
        "troncales, WhatsApp, Telegram, Facebook",
        "Capacitación adicional",
        "Integraciones no documentadas",
    ):
        expect(not_covered).to_contain_text(excluded)
    form = customer.get_by_test_id("case-form")
    expect(form).to_contain_text("4 horas")
    expect(form).to_contain_text("8 horas hábiles")
    expect(form).to_contain_text("24 horas hábiles (3 días hábiles)")
    expect(form).to_contain_text("salvo los días de descanso obligatorio en México")

    # Nothing chosen: the page says what is missing and sends nothing.
    form.get_by_role("button", name="Abrir caso").click()
    expect(form.locator("[data-error-for=severity]")).to_be_visible()
    expect(form.locator("[data-error-for=product_area]")).to_have_text(
        "Elija el área del producto."
    )

    form.get_by_label("Moderada").check()
    form.locator("input[name=title]").fill("Se cortan las llamadas al transferir a Ventas")
    form.locator("select[name=product_area]").select_option(label="Voz")
    form.locator("textarea[name=description]").fill(
        "Desde el lunes, toda transferencia ciega a la cola Ventas corta la llamada del cliente."
    )
    form.locator("input[name=files]").set_input_files(
        {"name": "llamada-cortada.png", "mimeType": "image/png", "buffer": PNG}
    )
    form.get_by_role("button", name="Abrir caso").click()

    opened = customer.get_by_test_id("case-opened")
    expect(opened).to_be_visible()
    (case,) = customer.request.get("/api/v1/helpdesk/cases").json()
    assert (case["severity"], case["state"], case["product_area"]) == ("moderate", "new", "voice")
    expect(opened).to_contain_text(f"Caso #{case['number']} abierto")
    expect(opened).to_contain_text(_wall_clock(case["sla"]["due_at"]))
    expect(opened).to_contain_text("(Ciudad de México)")
    expect(opened).to_contain_text("Adjunto: llamada-cortada.png.")
    row = customer.locator(f"tr[data-case-id='{case['id']}']")
    expect(row).to_contain_text("Moderada")
    expect(row).to_contain_text("Nuevo")
    expect(row.get_by_test_id("sla-badge")).to_have_text("A tiempo")
    expect(row.get_by_test_id("case-due")).to_contain_text("(Ciudad de México)")
    expect(row.locator("time")).to_have_attribute("datetime", case["sla"]["due_at"])
    _screenshot(customer, "helpdesk-customer.png")

    # Support, in English: the queue in the API's order, each row coloured by its risk.
    support = new_context(locale="en-US", width=1440, height=900).new_page()
    support_errors = _watched(support)
    sign_in(support, SUPPORT)
    support.locator("#sidenav").get_by_role("link", name="Support queue").click()
    support.wait_for_url("**/support")
    _ready(support)
    rows = support.get_by_test_id("queue").locator("tbody tr")
    expect(rows).to_have_count(4)
    expect(rows.nth(0)).to_have_class(re.compile(r"\brisk-breached\b"))
    expect(rows.nth(0)).to_contain_text("reporte de abandono")
    expect(rows.nth(0)).to_contain_text("Breached")
    expect(rows.nth(1)).to_have_class(re.compile(r"\brisk-at_risk\b"))
    expect(rows.nth(1)).to_contain_text("30 min")
    ours = support.locator(f"tr[data-case-id='{case['id']}']")
    expect(ours).to_have_class(re.compile(r"\brisk-on_time\b"))
    expect(ours.get_by_test_id("assignee")).to_have_text("Unassigned")
    expect(ours).to_contain_text(CUSTOMER.email)
    expect(support.get_by_test_id("queue-summary")).to_contain_text("Breached: 1")
    expect(support.get_by_test_id("queue-summary")).to_contain_text("At risk: 1")

    ours.get_by_role("link", name=f"#{case['number']}").click()
    support.wait_for_url(f"**/helpdesk/cases/{case['id']}")
    _ready(support)
    expect(support.get_by_test_id("case-assignee")).to_have_text("Not assigned yet")
    expect(support.get_by_test_id("sla").get_by_test_id("sla-badge")).to_have_text("On time")
    files = support.get_by_test_id("files")
    expect(files).to_contain_text("llamada-cortada.png")
    href = files.get_by_role("link", name="llamada-cortada.png").get_attribute("href")
    assert href is not None
    assert support.request.get(href).body() == PNG

    support.get_by_test_id("assign-me").click()
    expect(support.get_by_test_id("case-assignee")).to_have_text("Assigned to you")
    expect(support.get_by_test_id("assign-me")).to_be_hidden()

    reply = support.get_by_test_id("reply-form")
    reply.locator("textarea[name=body]").fill("Parece la troncal de salida; revisar el plan.")
    reply.get_by_label("Internal note").check()
    reply.get_by_role("button", name="Send").click()
    expect(reply.get_by_test_id("message-success")).to_have_text("Internal note saved.")
    thread = support.get_by_test_id("thread")
    note = thread.locator("[data-internal=true]")
    expect(note).to_contain_text("Internal note")
    expect(note).to_contain_text("revisar el plan")
    # A note does not answer the customer: the clock still runs.
    expect(support.get_by_test_id("sla").get_by_test_id("sla-badge")).to_have_text("On time")

    reply.locator("textarea[name=body]").fill(
        "Hola Carla: ya reproducimos el corte y estamos corrigiendo la transferencia ciega."
    )
    expect(reply.get_by_label("Internal note")).not_to_be_checked()
    reply.get_by_role("button", name="Send").click()
    expect(thread.locator("[data-author=support][data-internal=false]")).to_contain_text(
        "Hola Carla"
    )
    expect(support.get_by_test_id("sla").get_by_test_id("sla-badge")).to_have_text(
        "Answered in time"
    )
    expect(support.get_by_test_id("case-state")).to_have_text("In progress")

    support.goto("/support")
    _ready(support)
    expect(ours).to_have_class(re.compile(r"\brisk-met\b"))
    expect(ours.get_by_test_id("assignee")).to_have_text("Me")
    expect(rows.nth(3)).to_have_attribute("data-case-id", case["id"])  # answered: last
    moderate = support.get_by_test_id("compliance").locator("tr[data-severity=moderate]")
    expect(moderate).to_contain_text("Moderate")
    expect(moderate.get_by_test_id("compliance-percent")).to_have_text("100.0 %")
    _screenshot(support, "helpdesk-queue.png")

    # The customer sees the answer, not the note, and that it came in time.
    customer.goto(f"/helpdesk/cases/{case['id']}")
    _ready(customer)
    customer_thread = customer.get_by_test_id("thread")
    expect(customer_thread.locator("li")).to_have_count(1)
    expect(customer_thread).to_contain_text("Hola Carla")
    expect(customer_thread).to_contain_text("Soporte")
    expect(customer_thread).not_to_contain_text("revisar el plan")
    expect(customer.get_by_test_id("sla").get_by_test_id("sla-badge")).to_have_text(
        "Respondido a tiempo"
    )
    expect(customer.get_by_test_id("case-state")).to_have_text("En curso")
    expect(customer.get_by_test_id("case-area")).to_have_text("Área: Voz")
    expect(customer.get_by_test_id("case-assignee")).to_have_count(0)  # support's business
    expect(customer.locator("[data-case-tags]")).not_to_contain_text("null")
    expect(customer.get_by_test_id("files")).to_contain_text("llamada-cortada.png")
    _screenshot(customer, "helpdesk-customer-case.png")

    # Support closes it as solved: an out-of-scope closure would ask for the category.
    support.goto(f"/helpdesk/cases/{case['id']}")
    _ready(support)
    _screenshot(support, "helpdesk-case.png")

    # A correction of the severity needs a reason, which the history keeps.
    severity = support.locator("[data-severity-form]")
    severity.locator("select[name=severity]").select_option("consultation")
    severity.get_by_role("button", name="Change severity").click()
    expect(support.locator("[data-case-tags] [data-severity]")).to_have_text("Consultation")
    expect(support.locator("[data-history]")).to_contain_text(
        f"Severity changed from Moderate to Consultation: {SEVERITY_REASON}"
    )
    expect(support.get_by_test_id("sla").get_by_test_id("sla-badge")).to_have_text(
        "Answered in time"
    )
    close = support.get_by_test_id("close-form")
    category = close.locator("select[name=excluded_category]")
    expect(category).to_be_hidden()
    close.locator("select[name=reason]").select_option("out_of_scope")
    expect(category).to_be_visible()
    close.locator("select[name=reason]").select_option("solved")
    expect(category).to_be_hidden()
    close.locator("textarea[name=note]").fill("Corregido en la versión 1.4.2.")
    close.get_by_role("button", name="Close case").click()
    expect(support.get_by_test_id("case-state")).to_have_text("Case closed")
    expect(support.get_by_test_id("reply-form")).to_be_hidden()

    customer.reload()
    _ready(customer)
    expect(customer.get_by_test_id("case-state")).to_have_text("Caso cerrado")
    expect(customer.get_by_test_id("closed-note")).to_contain_text(
        "Resuelto: se dio una solución o un procedimiento documentado"
    )
    expect(customer.get_by_test_id("reply-form")).to_be_hidden()
    expect(customer.get_by_role("button", name="Reabrir")).to_be_visible()
    customer.goto("/helpdesk")
    _ready(customer)
    expect(row.get_by_test_id("case-state")).to_have_text("Caso cerrado")
    expect(row.get_by_test_id("sla-badge")).to_have_text("Respondido a tiempo")
    expect(row).to_contain_text("Consulta")

    support.goto("/support")
    _ready(support)
    expect(rows).to_have_count(3)
    expect(support.locator(f"tr[data-case-id='{case['id']}']")).to_have_count(0)

    # Within the window the customer may reopen it, and write again.
    customer.goto(f"/helpdesk/cases/{case['id']}")
    _ready(customer)
    customer.get_by_role("button", name="Reabrir").click()
    expect(customer.get_by_test_id("case-state")).to_have_text("En curso")
    expect(customer.get_by_test_id("reply-form")).to_be_visible()
    expect(customer.get_by_test_id("closed-note")).to_be_hidden()
    assert customer_errors == []
    assert support_errors == []


def test_support_needs_an_active_subscription_and_each_side_keeps_its_pages(
    live_server: LiveServer, new_context: NewContext, sign_in: SignIn
) -> None:
    unpaid = Person("beto@sin-plan.example.com", "Beto Sin Plan", Role.buyer)
    _buyer(live_server, unpaid, "Sin Plan S.A.", pay=False)
    page = new_context().new_page()
    errors = _watched(page)
    sign_in(page, unpaid)
    page.goto("/helpdesk")
    _ready(page)

    form = page.get_by_test_id("case-form")
    form.get_by_label("Consulta").check()
    form.locator("input[name=title]").fill("¿Cómo configuro una cola?")
    form.locator("select[name=product_area]").select_option("routing")
    form.locator("textarea[name=description]").fill(
        "Queremos saber cómo crear una cola de ventas con horario propio."
    )
    form.get_by_role("button", name="Abrir caso").click()

    expect(form.get_by_test_id("message-error")).to_contain_text(
        "El soporte es solo para cuentas con una suscripción activa"
    )
    expect(page.get_by_test_id("case-opened")).to_be_hidden()
    assert page.request.get("/api/v1/helpdesk/cases").json() == []

    # The support queue is for support staff; a case page for its account and support.
    page.goto("/support")
    expect(page.locator("[data-helpdesk]")).to_have_count(0)
    expect(page.get_by_role("heading", level=1)).to_contain_text("no es para tu rol")
    page.goto("/helpdesk/cases/not-a-case")
    _ready(page)
    expect(page.locator("[data-page-message]")).to_contain_text("Este caso no existe")
    assert errors == []
