"""The whole contact-center slice end to end, on the real demo seeding and through the real
UIs only: two agents on their desktops, a supervisor on the wallboard and a visitor on the
demo shop's chat widget. The visitor writes, the longest-idle agent takes it, they talk both
ways, the agent transfers it with a note to the colleague, who wraps up and closes it; the
wallboard follows without a reload and the visitor is told the conversation ended."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest
from playwright.sync_api import Locator, Page, expect

from atiende import demo
from atiende.core.db import Database, Scope
from atiende.identity.models import Role

if TYPE_CHECKING:  # only for annotations: two conftest modules make `import conftest` ambiguous
    from conftest import LiveServer, NewContext

    SignIn = Callable[[Page, Any], None]

pytestmark = pytest.mark.browser

VISITOR = "Valeria Visitante"
QUESTION = "Hola, necesito ayuda"
ANSWER = "¡Claro! ¿En qué te ayudo?"
FOLLOW_UP = "Quiero cambiar la dirección de mi pedido"
NOTE = "Pide cambio de dirección; revisar el pedido"


@dataclass(frozen=True)
class Person:
    """Who signs in (the fields the ``sign_in`` fixture reads)."""

    email: str
    name: str
    role: Role
    password: str


@dataclass(frozen=True)
class Demo:
    agent1: Person
    agent2: Person
    supervisor: Person


@pytest.fixture(scope="module")
def demo_tenant(live_server: LiveServer) -> Demo:
    """The demo tenant exactly as ``atiende demo`` makes it, on the live server."""

    async def seed(db: Database) -> demo.DemoResult:
        async with db.session(Scope.system()) as session:
            return await demo.seed(session)

    result = live_server.run(seed)
    assert result.logins is not None
    passwords = {login["email"]: login["password"] for login in result.logins}
    people = {
        email: Person(email, name, role, passwords[email]) for email, name, role in demo.DEMO_USERS
    }
    return Demo(
        agent1=people["agent1@demo.example.com"],
        agent2=people["agent2@demo.example.com"],
        supervisor=people["supervisor@demo.example.com"],
    )


# Script errors seen by each page, checked at the end of the test.
ERRORS: dict[int, list[str]] = {}


def _watched(page: Page) -> Page:
    errors = ERRORS.setdefault(id(page), [])
    page.on("pageerror", lambda error: errors.append(str(error)))
    return page


def _signed_in(new_context: NewContext, sign_in: SignIn, person: Person, path: str) -> Page:
    page = _watched(new_context().new_page())
    sign_in(page, person)
    page.goto(path)
    _synced(page)
    return page


def _synced(page: Page) -> None:
    """Connected, and the snapshot taken after the hub's hello is loaded."""
    status = page.get_by_test_id("realtime-status")
    expect(status).to_have_attribute("data-state", "connected")
    expect(status).to_have_attribute("data-sync", "ready")


def _go_available(page: Page) -> None:
    page.get_by_test_id("presence").select_option("available")
    expect(page.locator("[data-presence-box]")).to_have_attribute("data-state", "available")


def _tile_field(board: Page, field: str) -> Locator:
    return board.locator("[data-testid=queue-tile]", has_text="General").locator(
        f"[data-field={field}]"
    )


def _agent_state(board: Page, name: str) -> Locator:
    return board.locator("[data-testid=agents] tr", has_text=name).locator("[data-field=state]")


def _bubble(panel: Locator, text: str) -> Locator:
    return panel.locator("[data-part=message]").filter(has_text=text)


def test_a_visitor_is_served_transferred_and_closed_while_the_wallboard_follows(
    demo_tenant: Demo, new_context: NewContext, sign_in: SignIn
) -> None:
    # 1. Agent 1 goes available first (so is the longest idle), then agent 2; the supervisor
    #    watches the wallboard, marked so that a reload would show.
    first = _signed_in(new_context, sign_in, demo_tenant.agent1, "/desktop")
    _go_available(first)
    second = _signed_in(new_context, sign_in, demo_tenant.agent2, "/desktop")
    _go_available(second)
    board = _signed_in(new_context, sign_in, demo_tenant.supervisor, "/wallboard")
    board.evaluate("() => { window.__sameDocument = true; }")
    expect(_tile_field(board, "waiting")).to_have_text("0")
    expect(_tile_field(board, "offered")).to_have_text("0")
    expect(_agent_state(board, demo_tenant.agent1.name)).to_have_attribute(
        "data-state", "available"
    )
    expect(_agent_state(board, demo_tenant.agent2.name)).to_have_attribute(
        "data-state", "available"
    )

    # 2. A visitor opens the demo shop's chat, fills the pre-chat form and writes.
    visitor = _watched(new_context().new_page())
    visitor.goto("/demo-site")
    visitor.get_by_role("button", name="Chatea con nosotros").click()
    panel = visitor.get_by_role("dialog", name="Chatea con nosotros")
    expect(panel).to_be_visible()
    panel.get_by_label("Nombre").fill(VISITOR)
    panel.get_by_label("Correo electrónico").fill("valeria@cliente.example.com")
    panel.get_by_role("button", name="Iniciar chat").click()
    composer = panel.get_by_role("textbox", name="Escribe un mensaje…")
    expect(composer).to_be_visible()
    composer.fill(QUESTION)
    composer.press("Enter")
    expect(_bubble(panel, QUESTION).locator("[data-part=ticks]")).to_have_attribute(
        "data-status", "sent"
    )

    # 3. The longest-idle agent gets the offer (the other does not), accepts, reads, answers.
    offer = first.get_by_test_id("offer")
    expect(offer).to_have_count(1)
    expect(offer).to_contain_text(VISITOR)
    expect(offer).to_contain_text("General")
    expect(second.get_by_test_id("offer")).to_have_count(0)
    offer.get_by_role("button", name="Aceptar").click()
    expect(offer).to_have_count(0)
    thread = first.get_by_test_id("messages")
    expect(thread.locator("[data-direction=inbound]")).to_have_text(re.compile(QUESTION))
    expect(first.get_by_test_id("profile-name")).to_have_text(VISITOR)

    agent_composer = first.get_by_test_id("composer-input")
    agent_composer.fill(ANSWER)
    agent_composer.press("Enter")
    expect(thread.locator("[data-direction=outbound]")).to_contain_text(ANSWER)
    expect(agent_composer).to_have_value("")

    expect(_bubble(panel, ANSWER)).to_be_visible()
    expect(panel.locator("[data-part=note]")).to_contain_text("Un agente se unió")
    composer.fill(FOLLOW_UP)
    composer.press("Enter")
    expect(thread.locator("[data-direction=inbound]")).to_have_count(2)
    expect(thread.locator("[data-direction=inbound]").last).to_contain_text(FOLLOW_UP)

    # 4. Transfer to the colleague with a note; they accept and see the whole thread.
    first.get_by_test_id("transfer").click()
    dialog = first.get_by_test_id("transfer-dialog")
    expect(dialog).to_be_visible()
    choice = dialog.get_by_test_id("transfer-agent").locator(
        "option", has_text=demo_tenant.agent2.name
    )
    colleague = choice.get_attribute("value")
    assert colleague
    dialog.get_by_test_id("transfer-agent").select_option(colleague)
    dialog.locator("textarea[name=note]").fill(NOTE)
    dialog.get_by_role("button", name="Transferir").click()
    expect(dialog).to_be_hidden()
    expect(first.get_by_test_id("thread-notice")).to_have_text("Esta conversación ya no es tuya.")

    offer = second.get_by_test_id("offer")
    expect(offer).to_have_count(1)
    expect(offer).to_contain_text(VISITOR)
    offer.get_by_role("button", name="Aceptar").click()
    expect(offer).to_have_count(0)
    second_thread = second.get_by_test_id("messages")
    expect(second_thread.locator("[data-direction=inbound]")).to_have_count(2)
    expect(second_thread.locator("[data-direction=inbound]").first).to_contain_text(QUESTION)
    expect(second_thread.locator("[data-direction=inbound]").last).to_contain_text(FOLLOW_UP)
    expect(second_thread.locator("[data-direction=outbound]")).to_contain_text(ANSWER)
    expect(second_thread.locator("[data-direction=internal]")).to_contain_text(NOTE)
    # Notes are for agents only.
    expect(panel).not_to_contain_text(NOTE)

    # 5. The wallboard followed all of it without a reload.
    expect(_tile_field(board, "waiting")).to_have_text("0")
    expect(_tile_field(board, "offered")).to_have_text("1")
    expect(_tile_field(board, "answered")).to_have_text(re.compile(r"^[1-9]\d*$"))
    expect(_agent_state(board, demo_tenant.agent2.name)).to_have_attribute("data-state", "busy")
    expect(_agent_state(board, demo_tenant.agent1.name)).to_have_attribute(
        "data-state", "available"
    )
    assert board.evaluate("() => window.__sameDocument === true")

    # 6. The colleague wraps up and closes with a disposition; the visitor is told.
    second.get_by_test_id("wrap-up").click()
    expect(second.get_by_test_id("thread")).to_have_attribute("data-status", "wrap_up")
    expect(panel).not_to_contain_text("La conversación terminó")
    second.keyboard.press("Alt+KeyC")
    close = second.get_by_test_id("close-dialog")
    expect(close).to_be_visible()
    close.get_by_test_id("disposition").select_option("resuelto")
    close.get_by_role("button", name="Cerrar la conversación").click()
    expect(close).to_be_hidden()
    expect(
        second.get_by_test_id("conversations").locator("[data-interaction-id]", has_text=VISITOR)
    ).to_have_count(0)
    expect(panel.locator("[data-part=note]").last).to_have_text(
        "La conversación terminó. Escríbenos de nuevo cuando nos necesites."
    )
    expect(panel).not_to_contain_text(NOTE)
    expect(_agent_state(board, demo_tenant.agent2.name)).to_have_attribute(
        "data-state", "available"
    )
    assert board.evaluate("() => window.__sameDocument === true")

    for page in (first, second, board, visitor):
        assert ERRORS[id(page)] == []
