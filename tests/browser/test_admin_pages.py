"""The contact-center configuration pages in a real browser: an admin sets up a skill, an agent
profile, a queue with a member and a disposition, and a web chat widget for it; the server's
errors show next to the fields; supervisors only look; opening hours with the weekly editor and
holidays; break reasons (the no-answer reason is protected); canned responses for everyone and
for one agent; the pages in English for an English-speaking user."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest
from playwright.sync_api import Dialog, Page, expect
from sqlalchemy import select

from atiende.core.db import Database, Scope, now
from atiende.identity import service as identity
from atiende.identity.actor import Actor
from atiende.identity.models import Role
from atiende.identity.schemas import UserCreate
from atiende.routing.models import Queue
from atiende.tenancy.models import Tenant

if TYPE_CHECKING:  # only for annotations: two conftest modules make `import conftest` ambiguous
    from conftest import LiveServer, NewContext

    SignIn = Callable[[Page, Any], None]

pytestmark = pytest.mark.browser
PASSWORD = "una-clave-de-prueba"
DASH = "\u2013"  # the page joins an interval's ends with an en dash


@dataclass(frozen=True)
class Person:
    """Who signs in (the fields the ``sign_in`` fixture reads)."""

    email: str
    name: str
    role: Role
    password: str = PASSWORD


def _watched(page: Page) -> list[str]:
    """Collects script errors, and accepts the pages' confirm() questions."""
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))

    def accept(dialog: Dialog) -> None:
        dialog.accept()

    page.on("dialog", accept)
    return errors


def _open(page: Page, path: str) -> None:
    page.goto(path)
    expect(page.locator("[data-page=admin]")).to_have_attribute("data-ready", "true")


def _add_user(live_server: LiveServer, person: Person, locale: str | None = None) -> None:
    async def seed(db: Database) -> None:
        async with db.session(Scope.system()) as session:
            tenant = await session.scalar(select(Tenant).where(Tenant.slug == "navegador"))
            assert tenant is not None
            await identity.create_user(
                session,
                Actor.system(),
                UserCreate(
                    email=person.email,
                    name=person.name,
                    role=person.role,
                    password=person.password,
                    locale=locale,  # type: ignore[arg-type]
                    tenant_id=tenant.id,
                ),
            )

    live_server.run(seed)


def _interval(page: Page, day: str, start: str, end: str) -> None:
    row = page.locator(f"[data-day={day}]")
    row.locator(f"[data-add={day}]").click()
    interval = row.locator(".interval").last
    interval.locator("[data-start]").fill(start)
    interval.locator("[data-end]").fill(end)


def test_admin_sets_up_a_queue_with_skill_member_disposition_and_widget(
    live_server: LiveServer, new_context: NewContext, sign_in: SignIn
) -> None:
    page = new_context().new_page()
    errors = _watched(page)
    sign_in(page, live_server.logins["admin"])
    agent = live_server.logins["agent"]

    # a skill
    _open(page, "/admin/skills")
    form = page.get_by_test_id("skill-form")
    form.locator("input[name=name]").fill("Facturación")
    form.locator("button[type=submit]").click()
    expect(page.locator("[data-skill='Facturación']")).to_be_visible()

    # an agent profile with that skill
    _open(page, "/admin/agents")
    form = page.get_by_test_id("agent-form")
    form.locator("select[name=user_id]").select_option(label=f"{agent.name} ({agent.email})")
    form.locator("label", has_text="Facturación").locator("input[type=checkbox]").check()
    form.locator("input[data-level]").fill("7")
    form.locator("button[type=submit]").click()
    expect(page.locator(f"[data-agent='{agent.email}']")).to_contain_text("Facturación 7")

    # a queue requiring the skill
    _open(page, "/admin/queues")
    form = page.get_by_test_id("queue-form")
    form.locator("input[name=name]").fill("Cobranza")
    form.locator("input[name=channels][value=whatsapp]").check()
    form.locator("label", has_text="Facturación").locator("input[type=checkbox]").check()
    form.locator("input[data-level]").fill("3")
    form.locator("input[name=max_wait_seconds]").fill("300")
    form.locator("button[type=submit]").click()
    row = page.locator("[data-queue='Cobranza']")
    expect(row).to_contain_text("WhatsApp")
    expect(page.get_by_test_id("message-success")).to_contain_text("Cobranza")

    # its member and a disposition
    members = page.get_by_test_id("members-form")
    members.locator("select[name=agent_ids]").select_option(label=f"{agent.name} ({agent.email})")
    members.locator("button[type=submit]").click()
    expect(members.get_by_test_id("message-success")).to_be_visible()
    dispositions = page.get_by_test_id("disposition-form")
    dispositions.locator("input[name=code]").fill("pagado")
    dispositions.locator("input[name=label]").fill("Pagó la factura")
    dispositions.locator("button[type=submit]").click()
    expect(page.locator("[data-disposition='pagado']")).to_contain_text("Pagó la factura")

    # edit the strategy
    form.locator("select[name=strategy]").select_option("round_robin")
    form.locator("button[type=submit]").click()
    expect(row.locator("[data-strategy]")).to_have_attribute("data-strategy", "round_robin")

    # all of it is stored: reload and open the queue again
    _open(page, "/admin/queues")
    page.locator("[data-queue='Cobranza']").get_by_test_id("edit").click()
    expect(form.locator("select[name=strategy]")).to_have_value("round_robin")
    expect(form.locator("input[name=max_wait_seconds]")).to_have_value("300")
    expect(form.locator("label", has_text="Facturación").locator("input")).to_be_checked()
    expect(page.locator("[data-disposition='pagado']")).to_be_visible()
    selected = members.locator("select[name=agent_ids] option:checked")
    expect(selected).to_have_text([f"{agent.name} ({agent.email})"])

    # a web chat widget for it, with its embed snippet
    _open(page, "/admin/webchat")
    form = page.get_by_test_id("widget-form")
    form.locator("input[name=name]").fill("Tienda en línea")
    form.locator("select[name=queue_id]").select_option(label="Cobranza")
    form.locator("input[name=theme_color]").fill("#aa3355")
    form.locator("textarea[name=greeting]").fill("¡Hola! ¿En qué le ayudamos?")
    form.locator("button[type=submit]").click()
    card = page.locator("[data-widget='Tienda en línea']")
    key = card.get_attribute("data-key")
    assert key
    expect(card.locator("[data-snippet]")).to_have_text(
        f'<script src="{live_server.url}/widget.js" data-channel="{key}" async></script>'
    )
    expect(card).to_contain_text("Cobranza")
    assert errors == []


# The queue page's members request, held back in the browser for 1.5 s.
SLOW_MEMBERS = """
const realFetch = window.fetch;
window.fetch = async (input, init) => {
  const url = typeof input === "string" ? input : input.url;
  const method = (init && init.method) || "GET";
  if (method === "GET" && /\\/api\\/v1\\/queues\\/[^/]+\\/members$/.test(url)) {
    await new Promise((resolve) => setTimeout(resolve, 1500));
  }
  return realFetch(input, init);
};
"""


def test_members_chosen_while_the_queue_loads_are_kept(
    live_server: LiveServer, new_context: NewContext, sign_in: SignIn
) -> None:
    """The members list waits for the queue's current members before it can be changed: a
    slow answer arriving after the admin's choice no longer wipes it (and an empty list is
    no longer what gets saved)."""
    page = new_context().new_page()
    errors = _watched(page)
    page.add_init_script(SLOW_MEMBERS)
    sign_in(page, live_server.logins["admin"])
    agent = live_server.logins["agent"]
    _open(page, "/admin/agents")
    if page.locator(f"[data-agent='{agent.email}']").count() == 0:  # a profile, once
        form = page.get_by_test_id("agent-form")
        form.locator("select[name=user_id]").select_option(label=f"{agent.name} ({agent.email})")
        form.locator("button[type=submit]").click()
    expect(page.locator(f"[data-agent='{agent.email}']")).to_be_visible()

    _open(page, "/admin/queues")
    form = page.get_by_test_id("queue-form")
    form.locator("input[name=name]").fill("Lenta")
    form.locator("input[name=channels][value=webchat]").check()
    form.locator("button[type=submit]").click()
    expect(page.locator("[data-queue='Lenta']")).to_be_visible()
    members = page.get_by_test_id("members-form")
    choice = members.locator("select[name=agent_ids]")
    expect(choice).to_be_disabled()  # the queue's members are on their way
    choice.select_option(label=f"{agent.name} ({agent.email})")  # waits until it is enabled
    page.wait_for_timeout(2000)  # any answer still on its way has arrived by now
    members.locator("button[type=submit]").click()
    expect(members.get_by_test_id("message-success")).to_be_visible()

    _open(page, "/admin/queues")
    page.locator("[data-queue='Lenta']").get_by_test_id("edit").click()
    selected = members.locator("select[name=agent_ids] option:checked")
    expect(selected).to_have_text([f"{agent.name} ({agent.email})"])
    assert errors == []


def test_admin_sets_voicemail_forwarding_messages_and_announcements_on_a_queue(
    live_server: LiveServer, new_context: NewContext, sign_in: SignIn
) -> None:
    page = new_context().new_page()
    errors = _watched(page)
    sign_in(page, live_server.logins["admin"])
    _open(page, "/admin/queues")
    form = page.get_by_test_id("queue-form")
    closed_action = form.locator("select[name=closed_action]")
    expect(closed_action.locator("option[value=voicemail]")).to_have_text("Buzón de voz (llamadas)")
    form.locator("input[name=name]").fill("Conmutador")
    form.locator("input[name=channels][value=voice]").check()
    form.locator("input[name=channels][value=webchat]").uncheck()
    closed_action.select_option("voicemail")
    form.locator("input[name=max_wait_seconds]").fill("120")
    form.locator("select[name=max_wait_action]").select_option("forward")
    form.locator("input[name=announce_every_seconds]").fill("30")

    # a number that is not one: the server's sentence next to the field, nothing created
    number = form.locator("input[name=forward_number]")
    number.fill("12345")
    form.locator("button[type=submit]").click()
    expect(number).to_have_attribute("aria-invalid", "true")
    expect(form.locator("[data-error-for=forward_number]")).to_have_text(
        "Ese no es un número de teléfono válido."
    )
    expect(page.locator("[data-queue='Conmutador']")).to_have_count(0)

    # a Mexican number as people write it is stored in E.164
    number.fill("55 1234 5678")
    form.locator("button[type=submit]").click()
    expect(page.locator("[data-queue='Conmutador']")).to_be_visible()
    expect(form.get_by_test_id("message-success")).to_contain_text("Conmutador")
    expect(number).to_have_value("+525512345678")

    # all of it is stored: reload and open the queue again
    _open(page, "/admin/queues")
    page.locator("[data-queue='Conmutador']").get_by_test_id("edit").click()
    expect(form.locator("input[name=name]")).to_have_value("Conmutador")
    expect(closed_action).to_have_value("voicemail")
    expect(form.locator("select[name=max_wait_action]")).to_have_value("forward")
    expect(number).to_have_value("+525512345678")
    expect(form.locator("input[name=announce_every_seconds]")).to_have_value("30")
    stored = page.evaluate(
        """async () => (await (await fetch('/api/v1/queues')).json())
            .find((queue) => queue.name === 'Conmutador')"""
    )
    assert {
        key: stored[key]
        for key in (
            "channels",
            "closed_action",
            "max_wait_seconds",
            "max_wait_action",
            "forward_number",
            "voicemail_prompt",
            "message_prompt",
            "announce_every_seconds",
        )
    } == {
        "channels": ["voice"],
        "closed_action": "voicemail",
        "max_wait_seconds": 120,
        "max_wait_action": "forward",
        "forward_number": "+525512345678",
        "voicemail_prompt": None,
        "message_prompt": None,
        "announce_every_seconds": 30,
    }

    # announcing every 10 s is refused next to the field, and the queue keeps its 30 s
    form.locator("input[name=announce_every_seconds]").fill("10")
    form.locator("button[type=submit]").click()
    expect(form.locator("[data-error-for=announce_every_seconds]")).to_have_text(
        "0 (nunca) o de 15 a 3600 segundos."
    )
    _open(page, "/admin/queues")
    page.locator("[data-queue='Conmutador']").get_by_test_id("edit").click()
    expect(form.locator("input[name=announce_every_seconds]")).to_have_value("30")

    # hanging up with a message after the maximum wait needs the message to play
    max_wait_action = form.locator("select[name=max_wait_action]")
    expect(max_wait_action.locator("option[value=message]")).to_have_text(
        "Reproducir un mensaje y colgar (llamadas)"
    )
    max_wait_action.select_option("message")
    form.locator("button[type=submit]").click()
    prompt = form.locator("input[name=message_prompt]")
    expect(prompt).to_have_attribute("aria-invalid", "true")
    expect(form.locator("[data-error-for=message_prompt]")).to_have_text(
        "Para colgar con un mensaje hace falta el mensaje que se reproduce."
    )
    prompt.fill("custom/closed")
    form.locator("button[type=submit]").click()
    expect(form.locator("[data-error-for=message_prompt]")).to_have_text(
        "Escriba lo que se reproduce como medios de Asterisk separados por comas, "
        "por ejemplo sound:custom/welcome."
    )
    prompt.fill(" sound:custom/closed , digits:123")
    form.locator("button[type=submit]").click()
    expect(form.get_by_test_id("message-success")).to_contain_text("Conmutador")
    _open(page, "/admin/queues")
    page.locator("[data-queue='Conmutador']").get_by_test_id("edit").click()
    expect(max_wait_action).to_have_value("message")
    expect(prompt).to_have_value("sound:custom/closed,digits:123")
    stored = page.evaluate(
        """async () => (await (await fetch('/api/v1/queues')).json())
            .find((queue) => queue.name === 'Conmutador')"""
    )
    assert (stored["max_wait_action"], stored["message_prompt"]) == (
        "message",
        "sound:custom/closed,digits:123",
    )
    assert stored["announce_every_seconds"] == 30
    assert errors == []


def test_server_errors_show_next_to_the_field(
    live_server: LiveServer, new_context: NewContext, sign_in: SignIn
) -> None:
    page = new_context().new_page()
    errors = _watched(page)
    sign_in(page, live_server.logins["admin"])
    _open(page, "/admin/queues")
    form = page.get_by_test_id("queue-form")
    form.locator("input[name=name]").fill("Timbre")
    form.locator("select[name=strategy]").select_option("ring_all")  # web chat is checked
    form.locator("button[type=submit]").click()

    strategy = form.locator("select[name=strategy]")
    expect(strategy).to_have_attribute("aria-invalid", "true")
    note = form.locator("[data-error-for=strategy]")
    expect(note).to_have_text(re.compile("solo atiende el canal de voz"))
    expect(page.locator("[data-queue='Timbre']")).to_have_count(0)

    # a shape error from the schema is placed too
    form.locator("select[name=strategy]").select_option("longest_idle")
    form.locator("input[name=priority]").fill("")
    form.locator("input[name=priority]").evaluate("input => input.removeAttribute('required')")
    form.locator("button[type=submit]").click()
    expect(form.locator("[data-error-for=priority]")).to_be_visible()
    expect(form.locator("[data-error-for=strategy]")).to_have_count(0)
    assert errors == []


def test_supervisor_sees_queues_read_only_on_a_phone(
    live_server: LiveServer, new_context: NewContext, sign_in: SignIn
) -> None:
    supervisor = Person("sara@admin-pages.example.com", "Sara Supervisora", Role.supervisor)

    _add_user(live_server, supervisor)

    async def seed(db: Database) -> None:
        async with db.session(Scope.system()) as session:
            tenant = await session.scalar(select(Tenant).where(Tenant.slug == "navegador"))
            assert tenant is not None
        async with db.session(Scope.tenant(tenant.id)) as session:
            session.add(Queue(name="Soporte", channels=["webchat"], created_at=now(session)))

    live_server.run(seed)
    page = new_context(width=375, height=740).new_page()
    errors = _watched(page)
    sign_in(page, supervisor)
    _open(page, "/admin/queues")

    expect(page.get_by_test_id("read-only")).to_be_visible()
    row = page.locator("[data-queue='Soporte']")
    expect(row).to_be_visible()
    expect(row.get_by_test_id("delete")).to_have_count(0)
    form = page.get_by_test_id("queue-form")
    expect(form.locator("button[type=submit]")).to_have_count(0)
    row.get_by_test_id("edit").click()
    expect(form.locator("input[name=name]")).to_have_value("Soporte")
    expect(form.locator("input[name=name]")).to_be_disabled()
    expect(page.get_by_test_id("disposition-form")).to_have_count(0)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 375

    # the API itself refuses the supervisor's write
    status = page.evaluate(
        """async () => (await fetch('/api/v1/skills', {method: 'POST',
            headers: {'Content-Type': 'application/json',
                      'X-CSRF-Token': document.querySelector('meta[name=csrf-token]').content},
            body: JSON.stringify({name: 'Nada'})})).status"""
    )
    assert status == 403
    assert errors == []


def test_admin_sets_opening_hours_and_holidays(
    live_server: LiveServer, new_context: NewContext, sign_in: SignIn
) -> None:
    page = new_context().new_page()
    errors = _watched(page)
    sign_in(page, live_server.logins["admin"])
    _open(page, "/admin/schedules")
    expect(page.get_by_test_id("schedules-table")).to_contain_text("Aún no hay horarios")

    # Mon-Fri 09:00-18:00 and Sat 10:00-14:00 in Mexico City
    form = page.get_by_test_id("schedule-form")
    form.locator("input[name=name]").fill("Oficina")
    form.locator("input[name=time_zone]").fill("America/Mexico_City")
    for day in ("mon", "tue", "wed", "thu", "fri"):
        _interval(page, day, "09:00", "18:00")
    _interval(page, "sat", "10:00", "14:00")
    form.locator("button[type=submit]").click()
    expect(form.get_by_test_id("message-success")).to_contain_text("Oficina")

    # stored: a reload shows it, and its form brings the same week back
    _open(page, "/admin/schedules")
    row = page.locator("[data-schedule='Oficina']")
    expect(row).to_contain_text("America/Mexico_City")
    expect(row).to_contain_text(f"Lunes 09:00{DASH}18:00")
    expect(row).to_contain_text(f"Viernes 09:00{DASH}18:00")
    expect(row).to_contain_text(f"Sábado 10:00{DASH}14:00")
    expect(row).not_to_contain_text("Domingo")
    row.get_by_test_id("edit").click()
    expect(form.locator("input[name=name]")).to_have_value("Oficina")
    expect(form.locator("input[name=time_zone]")).to_have_value("America/Mexico_City")
    expect(page.locator("[data-day=sat] [data-start]")).to_have_value("10:00")
    expect(page.locator("[data-day=sat] [data-end]")).to_have_value("14:00")
    expect(page.locator("[data-day=sun] .interval")).to_have_count(0)
    form.locator("[data-cancel]").click()

    # start after end: the server's error next to the weekly hours, nothing created
    form.locator("input[name=name]").fill("Al revés")
    _interval(page, "mon", "18:00", "09:00")
    form.locator("button[type=submit]").click()
    note = form.locator("[data-error-for=weekly]")
    expect(note).to_have_text("Este valor no es válido.")
    expect(form.get_by_test_id("message-error")).to_be_visible()
    expect(page.locator("[data-schedule='Al revés']")).to_have_count(0)
    _open(page, "/admin/schedules")
    expect(page.locator("[data-schedule]")).to_have_count(1)

    # a holiday: /admin/holidays scrolls to the list; add it, then delete it
    page.evaluate("window.scrollTo(0, 0)")
    _open(page, "/admin/holidays")
    holidays = page.locator("[data-holidays]")
    expect(holidays).to_be_in_viewport()
    expect(page.get_by_test_id("holidays-table")).to_contain_text("Aún no hay días festivos")
    holiday_form = page.get_by_test_id("holiday-form")
    holiday_form.locator("input[name=day]").fill("2026-12-25")
    holiday_form.locator("input[name=name]").fill("Navidad")
    holiday_form.locator("button[type=submit]").click()
    holiday = page.locator("[data-holiday='2026-12-25']")
    expect(holiday).to_contain_text("Navidad")
    _open(page, "/admin/holidays")
    holiday.get_by_test_id("delete").click()
    expect(holidays.get_by_test_id("message-success")).to_contain_text("Navidad")
    expect(holiday).to_have_count(0)
    _open(page, "/admin/holidays")
    expect(holiday).to_have_count(0)
    expect(page.locator("[data-schedule='Oficina']")).to_be_visible()
    assert errors == []


def test_admin_manages_break_reasons_and_the_no_answer_reason_is_kept(
    live_server: LiveServer, new_context: NewContext, sign_in: SignIn
) -> None:
    page = new_context().new_page()
    errors = _watched(page)
    sign_in(page, live_server.logins["admin"])
    _open(page, "/admin/break-reasons")
    form = page.get_by_test_id("reason-form")

    # create: the first reason brings the no-answer reason with it
    form.locator("input[name=name]").fill("Comida")
    form.locator("button[type=submit]").click()
    expect(page.locator("[data-reason='Comida']")).to_contain_text("Activo")
    no_answer = page.locator("[data-reason]", has_text="se usa para ofertas sin respuesta")
    expect(no_answer).to_have_count(1)

    # rename
    page.locator("[data-reason='Comida']").get_by_test_id("edit").click()
    expect(form.locator("input[name=name]")).to_have_value("Comida")
    form.locator("input[name=name]").fill("Almuerzo")
    form.locator("button[type=submit]").click()
    expect(form.get_by_test_id("message-success")).to_contain_text("Almuerzo")
    expect(page.locator("[data-reason='Comida']")).to_have_count(0)

    # deactivate
    form.locator("input[name=is_active]").uncheck()
    form.locator("button[type=submit]").click()
    expect(page.locator("[data-reason='Almuerzo']")).to_contain_text("Inactivo")
    _open(page, "/admin/break-reasons")
    expect(page.locator("[data-reason='Almuerzo']")).to_contain_text("Inactivo")

    # the no-answer reason offers no delete, and the server refuses to lose it (409)
    expect(no_answer.get_by_test_id("delete")).to_have_count(0)
    no_answer.get_by_test_id("edit").click()
    form.locator("input[name=is_active]").uncheck()
    form.locator("button[type=submit]").click()
    expect(form.get_by_test_id("message-error")).to_have_text(
        "El motivo «sin respuesta» no se puede eliminar ni desactivar."
    )
    reason_id = page.evaluate(
        """async () => (await (await fetch('/api/v1/break-reasons')).json())
            .find((reason) => reason.is_no_answer).id"""
    )
    status = page.evaluate(
        """async (id) => (await fetch(`/api/v1/break-reasons/${id}`, {method: 'DELETE',
            headers: {'X-CSRF-Token':
                      document.querySelector('meta[name=csrf-token]').content}})).status""",
        reason_id,
    )
    assert status == 409
    _open(page, "/admin/break-reasons")
    expect(no_answer).to_contain_text("Activo")
    assert errors == []


def test_canned_responses_for_everyone_and_for_one_agent(
    live_server: LiveServer, new_context: NewContext, sign_in: SignIn
) -> None:
    admin = new_context().new_page()
    errors = _watched(admin)
    sign_in(admin, live_server.logins["admin"])
    _open(admin, "/admin/canned-responses")
    form = admin.get_by_test_id("canned-form")
    form.locator("input[name=shortcut]").fill("/Horario")
    form.locator("select[name=scope]").select_option("tenant")
    form.locator("textarea[name=body]").fill("Atendemos de lunes a viernes de 9 a 18 h.")
    form.locator("button[type=submit]").click()
    row = admin.locator("[data-canned='horario']")
    expect(row).to_contain_text("Todos")
    expect(row).to_contain_text("Atendemos de lunes a viernes")

    agent = new_context().new_page()
    errors += _watched(agent)
    sign_in(agent, live_server.logins["agent"])
    agent.get_by_role("navigation").get_by_role("link", name="Respuestas predefinidas").click()
    expect(agent.locator("[data-page=admin]")).to_have_attribute("data-ready", "true")
    expect(agent.get_by_test_id("read-only")).to_have_count(0)
    form = agent.get_by_test_id("canned-form")
    # an agent can only make responses for themselves
    expect(form.locator("select[name=scope] option")).to_have_count(1)
    expect(form.locator("select[name=scope]")).to_have_value("personal")
    form.locator("input[name=shortcut]").fill("/firma")
    form.locator("textarea[name=body]").fill("Saludos, Alicia")
    form.locator("button[type=submit]").click()
    mine = agent.locator("[data-canned='firma']")
    expect(mine).to_contain_text("Solo yo")

    # both in the agent's list after a reload; only their own can be changed
    _open(agent, "/admin/canned-responses")
    expect(agent.locator("[data-canned]")).to_have_count(2)
    tenant_wide = agent.locator("[data-canned='horario']")
    expect(tenant_wide).to_contain_text("Todos")
    expect(tenant_wide.get_by_test_id("edit")).to_have_count(0)
    expect(tenant_wide.get_by_test_id("delete")).to_have_count(0)
    mine.get_by_test_id("edit").click()
    form.locator("textarea[name=body]").fill("Saludos cordiales, Alicia")
    form.locator("button[type=submit]").click()
    expect(mine).to_contain_text("Saludos cordiales, Alicia")

    # the API agrees: the agent may not change the tenant-wide response
    canned_id = agent.evaluate(
        """async () => (await (await fetch('/api/v1/canned-responses')).json())
            .find((c) => c.shortcut === 'horario').id"""
    )
    status = agent.evaluate(
        """async (id) => (await fetch(`/api/v1/canned-responses/${id}`, {method: 'PATCH',
            headers: {'Content-Type': 'application/json', 'X-CSRF-Token':
                      document.querySelector('meta[name=csrf-token]').content},
            body: JSON.stringify({body: 'Cambiado'})})).status""",
        canned_id,
    )
    assert status == 403

    # the admin does not see the agent's personal response
    _open(admin, "/admin/canned-responses")
    expect(admin.locator("[data-canned]")).to_have_count(1)
    expect(admin.locator("[data-canned='horario']")).to_contain_text("lunes a viernes de 9")
    assert errors == []


def test_pages_speak_english_to_an_english_speaking_user(
    live_server: LiveServer, new_context: NewContext, sign_in: SignIn
) -> None:
    person = Person("emma@admin-pages.example.com", "Emma English", Role.admin)
    _add_user(live_server, person, locale="en")
    page = new_context(locale="es-MX").new_page()
    errors = _watched(page)
    sign_in(page, person)

    _open(page, "/admin/schedules")
    expect(page.locator("h1")).to_have_text("Opening hours")
    expect(page.locator("[data-day=mon] strong")).to_have_text("Monday")
    expect(page.get_by_test_id("holiday-form").locator("button[type=submit]")).to_have_text(
        "Add holiday"
    )
    _open(page, "/admin/break-reasons")
    expect(page.locator("h1")).to_have_text("Break reasons")
    expect(page.get_by_test_id("reason-form")).to_contain_text("Agents can choose it")
    _open(page, "/admin/canned-responses")
    expect(page.locator("h1")).to_have_text("Canned responses")
    expect(page.locator("select[name=scope] option")).to_have_text(["Everyone", "Only me"])
    expect(page.locator(".admin-tabs")).to_contain_text(re.compile("Break reasons"))
    assert errors == []
