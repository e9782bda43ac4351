"""The contact-center configuration pages in a real browser: an admin sets up a skill, an agent
profile, a queue with a member and a disposition, and a web chat widget for it; the server's
errors show next to the fields; supervisors only look."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest
from playwright.sync_api import Page, expect
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


@dataclass(frozen=True)
class Person:
    """Who signs in (the fields the ``sign_in`` fixture reads)."""

    email: str
    name: str
    role: Role
    password: str = PASSWORD


def _watched(page: Page) -> list[str]:
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    return errors


def _open(page: Page, path: str) -> None:
    page.goto(path)
    expect(page.locator("[data-page=admin]")).to_have_attribute("data-ready", "true")


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

    async def seed(db: Database) -> None:
        async with db.session(Scope.system()) as session:
            tenant = await session.scalar(select(Tenant).where(Tenant.slug == "navegador"))
            assert tenant is not None
            await identity.create_user(
                session,
                Actor.system(),
                UserCreate(
                    email=supervisor.email,
                    name=supervisor.name,
                    role=supervisor.role,
                    password=supervisor.password,
                    tenant_id=tenant.id,
                ),
            )
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
