"""The webchat widget in a real browser: a visitor on the demo shop page chats with an agent,
survives a reload and a network outage, and the widget behaves on phones and for keyboards."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import pytest
from playwright.sync_api import Locator, Page, expect
from sqlalchemy import select

from atiende.conversations import service as conversations
from atiende.conversations.events import Typing
from atiende.conversations.models import (
    Interaction,
    InteractionStatus,
    Message,
    MessageDirection,
)
from atiende.core.db import Database, Scope, now
from atiende.core.events import EventRecord, emit
from atiende.identity import service as identity
from atiende.routing.models import Queue, Schedule
from atiende.tenancy import service as tenancy
from atiende.webchat import service as webchat
from atiende.webchat.schemas import PrechatConfig, WidgetCreate

if TYPE_CHECKING:  # only for annotations: two conftest modules make `import conftest` ambiguous
    from conftest import LiveServer, NewContext

pytestmark = pytest.mark.browser
T = TypeVar("T")
# Agent replies are written by this test process, not the server, so they reach the widget
# through the hub's heartbeat re-read of the event log: allow a few heartbeats.
ARRIVAL_MS = 8000


def run(factory: Callable[[Database], Coroutine[Any, Any, T]], url: str) -> T:
    """Run async database work off this thread (Playwright's sync API owns its loop)."""

    async def main() -> T:
        db = Database(url)
        try:
            return await factory(db)
        finally:
            await db.dispose()

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, main()).result()


@dataclass(frozen=True)
class Shop:
    url: str
    tenant_id: uuid.UUID
    key: str
    closed_key: str
    agent_id: uuid.UUID
    queue_id: uuid.UUID

    def run(self, factory: Callable[[Database], Coroutine[Any, Any, T]]) -> T:
        return run(factory, self.url)


@pytest.fixture(scope="module")
def shop(live_server: LiveServer) -> Shop:
    """The browser tenant gets a webchat queue, a widget on it and one for a closed queue."""
    url = live_server.settings.resolved_database_url

    async def seed(db: Database) -> Shop:
        async with db.session(Scope.system()) as session:
            tenant = await tenancy.get_tenant_by_slug(session, "navegador")
            assert tenant is not None
            admin = await identity.get_user_by_email(session, live_server.logins["admin"].email)
            agent = await identity.get_user_by_email(session, live_server.logins["agent"].email)
            assert admin is not None
            assert agent is not None
        async with db.session(Scope.tenant(tenant.id)) as session:
            instant = now(session)
            never = Schedule(name="Nunca", time_zone="UTC", weekly={}, created_at=instant)
            queue = Queue(name="Tienda", channels=["webchat"], created_at=instant)
            closed = Queue(name="Tienda cerrada", channels=["webchat"], created_at=instant)
            session.add_all([never, queue, closed])
            await session.flush()
            closed.schedule_id = never.id
            actor = identity.actor_for(admin)
            prechat = PrechatConfig(name="required", email="optional", phone="off")
            widget = await webchat.create_widget(
                session,
                actor,
                WidgetCreate(
                    name="Tienda",
                    queue_id=queue.id,
                    theme_color="#2b8a3e",
                    prechat=prechat,
                    greeting="¡Hola! Somos Café La Esquina.",
                ),
            )
            after_hours = await webchat.create_widget(
                session,
                actor,
                WidgetCreate(
                    name="Cerrado",
                    queue_id=closed.id,
                    prechat=prechat,
                    offline_message="Abrimos mañana a las 9.",
                ),
            )
        return Shop(url, tenant.id, widget.key, after_hours.key, agent.id, queue.id)

    return run(seed, url)


def messages_of_visitor(shop: Shop, body: str) -> list[Message]:
    """Every stored message of the conversation that holds ``body``, oldest first."""

    async def read(db: Database) -> list[Message]:
        async with db.session(Scope.tenant(shop.tenant_id), read_only=True) as session:
            found = await session.scalar(select(Message).where(Message.body == body))
            assert found is not None, f"{body!r} was not stored"
            return list(
                await conversations.list_messages(
                    session, found.interaction_id, include_internal=True
                )
            )

    return shop.run(read)


def agent_writes(shop: Shop, interaction_id: uuid.UUID, body: str, *, note: bool = False) -> None:
    """The agent takes the conversation (first time) and writes, through the services."""

    async def write(db: Database) -> None:
        async with db.session(Scope.tenant(shop.tenant_id)) as session:
            interaction = await conversations.get_interaction(session, interaction_id)
            if interaction.agent_id is None:
                interaction.agent_id = shop.agent_id
                interaction.status = InteractionStatus.assigned
                await conversations.changed(session, interaction, "assigned")
            await conversations.add_message(
                session,
                interaction,
                direction=MessageDirection.internal if note else MessageDirection.outbound,
                author_kind="agent",
                author_user_id=shop.agent_id,
                body=body,
            )

    shop.run(write)


def agent_types(shop: Shop, interaction_id: uuid.UUID) -> None:
    async def write(db: Database) -> None:
        async with db.session(Scope.tenant(shop.tenant_id)) as session:
            await emit(session, Typing(interaction_id=interaction_id, author_kind="agent"))

    shop.run(write)


def visitor_typing_events(shop: Shop, interaction_id: uuid.UUID) -> list[dict[str, Any]]:
    async def read(db: Database) -> list[dict[str, Any]]:
        async with db.session(Scope.system(), read_only=True) as session:
            rows = await session.scalars(
                select(EventRecord).where(EventRecord.type == "interaction.typing")
            )
            return [
                r.data
                for r in rows
                if r.data["interaction_id"] == str(interaction_id)
                and r.data["author_kind"] == "contact"
            ]

    return shop.run(read)


def interaction_of(shop: Shop, interaction_id: uuid.UUID) -> Interaction:
    async def read(db: Database) -> Interaction:
        async with db.session(Scope.tenant(shop.tenant_id), read_only=True) as session:
            return await conversations.get_interaction(session, interaction_id)

    return shop.run(read)


def wait_until(page: Page, condition: Callable[[], bool], timeout_ms: int = ARRIVAL_MS) -> None:
    waited = 0
    while not condition():
        assert waited < timeout_ms, "condition not met in time"
        page.wait_for_timeout(200)
        waited += 200


def open_chat(
    page: Page, shop: Shop, *, name: str = "Ana Visitante", key: str | None = None
) -> Locator:
    page.goto(f"/demo-site?key={key or shop.key}")
    page.get_by_role("button", name="Chatea con nosotros").click()
    panel = page.get_by_role("dialog", name="Chatea con nosotros")
    expect(panel).to_be_visible()
    panel.get_by_label("Nombre").fill(name)
    panel.get_by_role("button", name="Iniciar chat").click()
    expect(composer(panel)).to_be_visible()
    return panel


def composer(panel: Locator) -> Locator:
    return panel.get_by_role("textbox", name="Escribe un mensaje…")


def bubble(panel: Locator, text: str) -> Locator:
    return panel.locator("[data-part=message]").filter(has_text=text)


def test_a_visitor_chats_with_an_agent_and_finds_the_history_after_a_reload(
    new_context: NewContext, shop: Shop
) -> None:
    page = new_context(locale="es-MX").new_page()
    panel = open_chat(page, shop)
    expect(panel.locator("[data-part=log]")).to_contain_text("¡Hola! Somos Café La Esquina.")

    question = "Hola, ¿tienen café de Chiapas?"
    composer(panel).fill(question)
    composer(panel).press("Enter")
    mine = bubble(panel, question)
    expect(mine.locator("[data-part=ticks]")).to_have_attribute("data-status", "sent")
    expect(composer(panel)).to_have_value("")

    stored = messages_of_visitor(shop, question)
    assert [(m.direction, m.author_kind, m.body) for m in stored] == [
        (MessageDirection.inbound, "contact", question)
    ]
    interaction_id = stored[0].interaction_id

    # Typing, both ways.
    composer(panel).press_sequentially("Y también")
    wait_until(page, lambda: bool(visitor_typing_events(shop, interaction_id)))
    agent_types(shop, interaction_id)
    expect(panel.locator("[data-part=typing]")).to_contain_text(
        "El agente está escribiendo…", timeout=ARRIVAL_MS
    )

    agent_writes(shop, interaction_id, "Nota: ofrecer envío gratis", note=True)
    answer = "¡Sí! Lo tenemos en grano, 500 g."
    agent_writes(shop, interaction_id, answer)
    expect(bubble(panel, answer)).to_be_visible(timeout=ARRIVAL_MS)
    expect(panel.locator("[data-part=note]")).to_contain_text("Un agente se unió")
    expect(panel.locator("[data-part=typing]")).to_be_hidden()
    # The agent answered after the visitor's message: it shows as read (✓✓).
    expect(mine.locator("[data-part=ticks]")).to_have_attribute("data-status", "read")
    expect(panel).not_to_contain_text("ofrecer envío gratis")

    page.reload()
    panel = page.get_by_role("dialog", name="Chatea con nosotros")
    expect(panel).to_be_visible()  # it was open: it opens again
    expect(bubble(panel, question)).to_be_visible()
    expect(bubble(panel, answer)).to_be_visible()
    expect(panel.get_by_role("button", name="Iniciar chat")).to_be_hidden()
    expect(panel).not_to_contain_text("ofrecer envío gratis")

    # The widget showed the answer in an open panel: the agent's message is marked read, and
    # the conversation is a webchat one in the widget's queue.
    wait_until(
        page,
        lambda: (
            [m.status.value for m in messages_of_visitor(shop, question) if m.body == answer]
            == ["read"]
        ),
    )
    interaction = interaction_of(shop, interaction_id)
    assert (interaction.channel.value, interaction.queue_id) == ("webchat", shop.queue_id)


def test_messages_written_offline_are_sent_once_when_the_network_returns(
    new_context: NewContext, shop: Shop
) -> None:
    context = new_context(locale="es-MX")
    page = context.new_page()
    panel = open_chat(page, shop, name="Luis Sin Red")
    first = "Primero con red"
    composer(panel).fill(first)
    composer(panel).press("Enter")
    expect(bubble(panel, first).locator("[data-part=ticks]")).to_have_attribute(
        "data-status", "sent"
    )

    context.set_offline(True)
    offline = "Escrito sin red"
    composer(panel).fill(offline)
    composer(panel).press("Enter")
    pending = panel.locator("[data-part=pending]").filter(has_text=offline)
    expect(pending.locator("[data-part=ticks]")).to_have_attribute(
        "data-status", "retrying", timeout=ARRIVAL_MS
    )
    page.wait_for_timeout(1500)  # a few retries fail meanwhile
    context.set_offline(False)

    expect(bubble(panel, offline).locator("[data-part=ticks]")).to_have_attribute(
        "data-status", "sent", timeout=ARRIVAL_MS
    )
    expect(pending).to_have_count(0)
    bodies = [m.body for m in messages_of_visitor(shop, first)]
    assert bodies == [first, offline], "sent exactly once, in order"

    # The realtime connection came back too: an agent's answer still arrives.
    interaction_id = messages_of_visitor(shop, first)[0].interaction_id
    agent_writes(shop, interaction_id, "Ya te leo")
    expect(bubble(panel, "Ya te leo")).to_be_visible(timeout=ARRIVAL_MS)


def test_on_a_phone_the_panel_fills_the_screen_and_escape_closes_it(
    new_context: NewContext, shop: Shop
) -> None:
    page = new_context(locale="es-MX", width=375, height=700).new_page()
    page.goto(f"/demo-site?key={shop.key}")
    launcher = page.get_by_role("button", name="Chatea con nosotros")
    launcher.click()
    panel = page.get_by_role("dialog", name="Chatea con nosotros")
    expect(panel).to_be_visible()
    box = panel.bounding_box()
    assert box is not None
    assert (box["x"], box["y"], box["width"], box["height"]) == (0, 0, 375, 700)
    # Focus moved into the panel, on the first field.
    expect(panel.get_by_label("Nombre")).to_be_focused()
    # The shop's loud button styles do not reach the widget's buttons.
    start = panel.get_by_role("button", name="Iniciar chat")
    assert start.evaluate("b => getComputedStyle(b).textTransform") == "none"
    assert start.evaluate("b => getComputedStyle(b).borderTopStyle") != "dashed"

    page.keyboard.press("Escape")
    expect(panel).to_be_hidden()
    expect(launcher).to_be_focused()
    expect(launcher).to_have_attribute("aria-expanded", "false")


def test_english_visitors_get_english_and_closed_hours_show_the_offline_message(
    new_context: NewContext, shop: Shop
) -> None:
    page = new_context(locale="en-US").new_page()
    page.goto(f"/demo-site?key={shop.closed_key}")
    page.get_by_role("button", name="Chat with us").click()
    panel = page.get_by_role("dialog", name="Chat with us")
    expect(panel.locator("[data-part=offline]")).to_contain_text("Abrimos mañana a las 9.")
    expect(panel.locator("[data-part=offline]")).to_contain_text("We are offline")
    expect(panel.get_by_role("button", name="Start chat")).to_be_visible()
    expect(page.get_by_test_id("demo-note")).to_contain_text("pretend shop")


def test_a_visitor_ends_the_chat_from_the_header_and_can_start_a_new_one(
    new_context: NewContext, shop: Shop
) -> None:
    page = new_context(locale="es-MX").new_page()
    panel = open_chat(page, shop, name="Marta Se Va")
    end = panel.locator("[data-part=end]")
    expect(end).to_be_hidden()  # nothing to end before the first message

    question = "¿Venden molinos de café?"
    composer(panel).fill(question)
    composer(panel).press("Enter")
    expect(bubble(panel, question).locator("[data-part=ticks]")).to_have_attribute(
        "data-status", "sent"
    )
    expect(end).to_have_text("Terminar chat")

    # Asked first; "Cancelar" (or Escape) keeps the chat going.
    end.click()
    confirm = panel.get_by_role("alertdialog", name="¿Terminar esta conversación?")
    expect(confirm).to_be_visible()
    confirm.get_by_role("button", name="Cancelar").click()
    expect(confirm).to_be_hidden()
    interaction_id = messages_of_visitor(shop, question)[0].interaction_id
    assert interaction_of(shop, interaction_id).status is InteractionStatus.queued

    end.click()
    confirm.get_by_role("button", name="Terminar chat").click()
    expect(panel.locator("[data-part=note]")).to_contain_text("Terminaste la conversación.")
    expect(composer(panel)).to_be_hidden()
    expect(end).to_be_hidden()
    wait_until(
        page,
        lambda: interaction_of(shop, interaction_id).status is InteractionStatus.abandoned,
    )

    panel.get_by_role("button", name="Iniciar una nueva conversación").click()
    expect(composer(panel)).to_be_focused()
    again = "Otra cosa: ¿tienen filtros?"
    composer(panel).fill(again)
    composer(panel).press("Enter")
    expect(bubble(panel, again).locator("[data-part=ticks]")).to_have_attribute(
        "data-status", "sent"
    )
    fresh = messages_of_visitor(shop, again)
    assert fresh[0].interaction_id != interaction_id, "a new conversation"
    expect(end).to_be_visible()
