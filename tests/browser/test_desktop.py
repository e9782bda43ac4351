"""The agent desktop and the supervisor wallboard in a real browser: an offer pops up, the
agent accepts it and answers, transfers it to a colleague who gets the offer, and the
supervisor's wallboard follows queues and agents live and can step in."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select

from atiende.contacts import service as contacts
from atiende.contacts.models import IdentityKind
from atiende.conversations import service as conversations
from atiende.conversations.events import MessageStatusChanged
from atiende.conversations.models import Channel, Message, MessageDirection, MessageStatus
from atiende.core.db import Database, Scope, now
from atiende.core.events import emit
from atiende.identity import service as identity
from atiende.identity.actor import Actor
from atiende.identity.models import Role, User
from atiende.identity.schemas import UserCreate
from atiende.routing import canned
from atiende.routing import service as routing
from atiende.routing.models import BreakReason, Disposition, Queue, QueueMember
from atiende.tenancy import service as tenancy
from atiende.tenancy.models import Tenant
from atiende.tenancy.schemas import TenantCreate

if TYPE_CHECKING:  # only for annotations: two conftest modules make `import conftest` ambiguous
    from conftest import LiveServer, NewContext

    SignIn = Callable[[Page, Any], None]

pytestmark = pytest.mark.browser
SENDING = re.compile(r"\bsending\b")
PASSWORD = "una-clave-de-prueba"
THANKS = "Gracias por escribirnos. ¿En qué más le ayudo?"
# The smallest PNG: one transparent pixel.
PIXEL = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000001e221bc330000000049454e44ae426082"
)


@dataclass(frozen=True)
class Person:
    """Who signs in (the fields the ``sign_in`` fixture reads)."""

    email: str
    name: str
    role: Role
    password: str = PASSWORD


@dataclass(frozen=True)
class Desk:
    tenant_id: uuid.UUID
    queue_id: uuid.UUID
    break_reason_id: uuid.UUID
    agent: Person
    second: Person
    supervisor: Person
    plain_agent: Person
    ids: dict[str, uuid.UUID]


@pytest.fixture(scope="module")
def desk(live_server: LiveServer) -> Desk:
    """A queue that needs an explicit accept, two agents in it, a supervisor who also has an
    agent profile, and an agent user without one; all in the seeded tenant."""
    people = {
        "agent": Person("marta@desk.example.com", "Marta Agente", Role.agent),
        "second": Person("bruno@desk.example.com", "Bruno Agente", Role.agent),
        "supervisor": Person("sofia@desk.example.com", "Sofía Supervisora", Role.supervisor),
        "plain_agent": Person("pablo@desk.example.com", "Pablo Sin Perfil", Role.agent),
    }

    async def seed(db: Database) -> tuple[uuid.UUID, uuid.UUID, uuid.UUID, dict[str, uuid.UUID]]:
        ids: dict[str, uuid.UUID] = {}
        async with db.session(Scope.system()) as session:
            tenant = await session.scalar(select(Tenant).where(Tenant.slug == "navegador"))
            assert tenant is not None
            for key, login in people.items():
                user = await identity.create_user(
                    session,
                    Actor.system(),
                    UserCreate(
                        email=login.email,
                        name=login.name,
                        role=login.role,
                        password=login.password,
                        tenant_id=tenant.id,
                    ),
                )
                ids[key] = user.id
        async with db.session(Scope.tenant(tenant.id)) as session:
            queue = Queue(
                name="Ventas",
                channels=["webchat", "whatsapp"],
                auto_accept=False,
                offer_timeout_seconds=600,  # no worker here: offers must outlive the test
                service_level_seconds=60,
                service_level_target=80,
                created_at=now(session),
            )
            reason = BreakReason(name="Comida")
            session.add_all([queue, reason])
            await session.flush()
            session.add(Disposition(queue_id=queue.id, code="venta", label="Venta cerrada"))
            for key in ("agent", "second", "supervisor"):
                await routing.ensure_agent(session, ids[key])
            for key in ("agent", "second"):
                session.add(QueueMember(queue_id=queue.id, agent_id=ids[key]))
            supervisor = await session.get(User, ids["supervisor"])
            assert supervisor is not None
            await canned.create_canned(
                session,
                identity.actor_for(supervisor),
                canned.CannedCreate(shortcut="gracias", body=THANKS, scope="tenant"),
            )
        return tenant.id, queue.id, reason.id, ids

    tenant_id, queue_id, reason_id, ids = live_server.run(seed)
    return Desk(
        tenant_id=tenant_id,
        queue_id=queue_id,
        break_reason_id=reason_id,
        agent=people["agent"],
        second=people["second"],
        supervisor=people["supervisor"],
        plain_agent=people["plain_agent"],
        ids=ids,
    )


def _customer_writes(live: LiveServer, desk: Desk, name: str, text: str) -> uuid.UUID:
    """A web chat visitor writes and waits in the queue (as the webchat channel does)."""

    async def arrive(db: Database) -> uuid.UUID:
        async with db.session(Scope.tenant(desk.tenant_id)) as session:
            contact = await contacts.find_or_create_by_identity(
                session, IdentityKind.webchat, f"visitor-{uuid.uuid4()}", name=name
            )
            interaction = await conversations.open_interaction(
                session, channel=Channel.webchat, contact_id=contact.id
            )
            await conversations.add_message(
                session,
                interaction,
                direction=MessageDirection.inbound,
                author_kind="contact",
                body=text,
            )
            await routing.enqueue(session, interaction, desk.queue_id)
        await routing.settle()
        return interaction.id

    return live.run(arrive)


def _customer_adds(live: LiveServer, desk: Desk, interaction_id: uuid.UUID, text: str) -> None:
    async def write(db: Database) -> None:
        async with db.session(Scope.tenant(desk.tenant_id)) as session:
            interaction = await conversations.get_interaction(session, interaction_id)
            await conversations.add_message(
                session,
                interaction,
                direction=MessageDirection.inbound,
                author_kind="contact",
                body=text,
            )

    live.run(write)


# Script errors seen by each page, checked at the end of a test.
ERRORS: dict[int, list[str]] = {}


def _watched(page: Page) -> Page:
    errors = ERRORS.setdefault(id(page), [])
    page.on("pageerror", lambda error: errors.append(str(error)))
    return page


def _channel_reports(live: LiveServer, desk: Desk, interaction_id: uuid.UUID, status: str) -> None:
    """The channel says how far the agent's replies got (as a provider's status callback)."""

    async def report(db: Database) -> None:
        async with db.session(Scope.tenant(desk.tenant_id)) as session:
            replies = await session.scalars(
                select(Message).where(
                    Message.interaction_id == interaction_id,
                    Message.direction == MessageDirection.outbound,
                )
            )
            for message in replies:
                message.status = MessageStatus(status)
                await emit(
                    session,
                    MessageStatusChanged(
                        interaction_id=interaction_id, message_id=message.id, status=status
                    ),
                )

    live.run(report)


def _signed_in(
    new_context: NewContext, sign_in: SignIn, person: Person, path: str, **kw: Any
) -> Page:
    page = _watched(new_context(**kw).new_page())
    sign_in(page, person)
    page.goto(path)
    return page


def _synced(page: Page) -> None:
    """Connected, and the snapshot taken after the hub's hello is loaded."""
    status = page.get_by_test_id("realtime-status")
    expect(status).to_have_attribute("data-state", "connected")
    expect(status).to_have_attribute("data-sync", "ready")


def _tile_field(board: Page, field: str) -> Any:
    return board.locator("[data-testid=queue-tile]", has_text="Ventas").locator(
        f"[data-field={field}]"
    )


def _agent_state(board: Page, name: str) -> Any:
    return board.locator("[data-testid=agents] tr", has_text=name).locator("[data-field=state]")


def test_offer_accept_reply_transfer_and_the_wallboard_follows(
    live_server: LiveServer, desk: Desk, new_context: NewContext, sign_in: SignIn
) -> None:
    # The supervisor watches the wallboard; the agent opens the desktop, still offline.
    board = _signed_in(new_context, sign_in, desk.supervisor, "/wallboard")
    _synced(board)
    expect(board.locator("h1")).to_have_text("Tablero en vivo")
    expect(_tile_field(board, "waiting")).to_have_text("0")
    expect(_agent_state(board, desk.agent.name)).to_have_attribute("data-state", "offline")

    agent = _signed_in(new_context, sign_in, desk.agent, "/desktop")
    expect(agent.locator("#sidenav")).to_contain_text("Escritorio")
    _synced(agent)
    presence = agent.get_by_test_id("presence")
    expect(presence).to_have_value("offline")

    # A customer writes while nobody is available: the wallboard shows them waiting.
    interaction_id = _customer_writes(
        live_server, desk, "Carla Cliente", "Hola, necesito ayuda con mi pedido"
    )
    expect(_tile_field(board, "waiting")).to_have_text("1")
    expect(_tile_field(board, "offered")).to_have_text("1")
    expect(board.locator("[data-testid=queue-tile]", has_text="Ventas")).to_contain_text(
        "la más larga"
    )

    # The agent goes available: the offer pops up (with its sound) and the board follows.
    presence.select_option("available")
    expect(agent.locator("[data-presence-box]")).to_have_attribute("data-state", "available")
    offer = agent.get_by_test_id("offer")
    expect(offer).to_have_count(1)
    expect(offer).to_contain_text("Carla Cliente")
    expect(offer).to_contain_text("Chat web · Ventas")
    expect(offer.locator("[data-countdown]")).to_contain_text("s para responder")
    expect(agent.locator("[data-page=desktop]")).to_have_attribute("data-beeps", "1")
    expect(_tile_field(board, "waiting")).to_have_text("0")
    expect(_agent_state(board, desk.agent.name)).to_have_attribute("data-state", "busy")
    assert agent.request.get("/api/v1/me/agent").json()["presence"] == "available"

    # Alt+A accepts the oldest offer; the thread opens with the customer's message.
    agent.keyboard.press("Alt+KeyA")
    expect(offer).to_have_count(0)
    conversation = agent.get_by_test_id("conversations").locator(
        f"[data-interaction-id='{interaction_id}']"
    )
    expect(conversation).to_contain_text("Carla Cliente")
    thread = agent.get_by_test_id("messages")
    expect(thread.locator("[data-direction=inbound]")).to_have_text(
        re.compile("Hola, necesito ayuda con mi pedido")
    )
    expect(agent.get_by_test_id("profile-name")).to_have_text("Carla Cliente")
    expect(_tile_field(board, "answered")).to_have_text("1")

    # A new message from the customer arrives live in the open thread.
    _customer_adds(live_server, desk, interaction_id, "Es el pedido 1234")
    expect(thread.locator("[data-direction=inbound]")).to_have_count(2)

    # The agent answers with Enter; the reply is stored through the API.
    composer = agent.get_by_test_id("composer-input")
    composer.fill("Con gusto, Carla. Reviso el pedido 1234.")
    composer.press("Enter")
    reply = thread.locator("[data-direction=outbound]")
    expect(reply).to_have_count(1)
    expect(reply).to_contain_text("Con gusto, Carla. Reviso el pedido 1234.")
    expect(reply).not_to_have_class(SENDING)  # shown at once, then confirmed by the server
    expect(reply.get_by_test_id("message-status")).to_have_attribute("data-status", "pending")
    expect(composer).to_have_value("")
    stored = agent.request.get(f"/api/v1/interactions/{interaction_id}/messages").json()
    replies = [m for m in stored if m["direction"] == "outbound"]
    assert [m["body"] for m in replies] == ["Con gusto, Carla. Reviso el pedido 1234."]
    assert replies[0]["author_user_id"] == str(desk.ids["agent"])
    assert replies[0]["client_id"]

    # The channel reports the reply read: the tick follows.
    _channel_reports(live_server, desk, interaction_id, "read")
    expect(reply.get_by_test_id("message-status")).to_have_attribute("data-status", "read")
    expect(reply).to_contain_text("Con gusto, Carla.")

    # An internal note, marked as such.
    agent.get_by_test_id("note-toggle").check()
    composer.fill("Cliente frecuente")
    composer.press("Control+Enter")
    expect(thread.locator("[data-direction=internal]")).to_contain_text("Nota interna")

    # A colleague signs in and goes available.
    second = _signed_in(new_context, sign_in, desk.second, "/desktop")
    _synced(second)
    second.get_by_test_id("presence").select_option("available")
    expect(second.locator("[data-presence-box]")).to_have_attribute("data-state", "available")
    expect(_agent_state(board, desk.second.name)).to_have_attribute("data-state", "available")

    # The agent transfers to the colleague, with a note.
    agent.get_by_test_id("transfer").click()
    dialog = agent.get_by_test_id("transfer-dialog")
    expect(dialog).to_be_visible()
    dialog.get_by_test_id("transfer-agent").select_option(str(desk.ids["second"]))
    dialog.locator("textarea[name=note]").fill("Pide factura")
    dialog.get_by_role("button", name="Transferir").click()
    expect(dialog).to_be_hidden()
    expect(agent.get_by_test_id("thread-notice")).to_have_text("Esta conversación ya no es tuya.")
    expect(conversation).to_have_count(0)

    # The colleague gets the offer, accepts it and sees the whole thread, notes included.
    offer = second.get_by_test_id("offer")
    expect(offer).to_contain_text("Carla Cliente")
    offer.get_by_role("button", name="Aceptar").click()
    second_thread = second.get_by_test_id("messages")
    expect(second_thread.locator("[data-direction=outbound]")).to_contain_text("Reviso el pedido")
    expect(second_thread.locator("[data-direction=internal]")).to_have_count(2)
    expect(second_thread).to_contain_text("Pide factura")
    expect(_agent_state(board, desk.second.name)).to_have_attribute("data-state", "busy")

    # The supervisor opens the live conversation read-only and sees it update.
    live_row = board.get_by_test_id("live").locator(f"tr[data-interaction-id='{interaction_id}']")
    expect(live_row).to_contain_text(desk.second.name)
    live_row.get_by_test_id("view").click()
    viewer = board.get_by_test_id("viewer")
    expect(viewer).to_be_visible()
    expect(viewer).to_contain_text("Solo lectura")
    expect(viewer.get_by_test_id("viewer-messages")).to_contain_text("Es el pedido 1234")
    _customer_adds(live_server, desk, interaction_id, "¿Sigue ahí?")
    expect(viewer.get_by_test_id("viewer-messages")).to_contain_text("¿Sigue ahí?")
    expect(second_thread).to_contain_text("¿Sigue ahí?")
    board.keyboard.press("Escape")
    expect(viewer).to_be_hidden()

    # The supervisor reassigns it: not to someone offline (the dialog says why), then back to
    # the first agent, who gets it as an offer.
    live_row.get_by_test_id("reassign").click()
    reassign = board.get_by_test_id("reassign-dialog")
    reassign.get_by_test_id("reassign-agent").select_option(str(desk.ids["supervisor"]))
    reassign.get_by_role("button", name="Reasignar").click()
    expect(reassign.get_by_test_id("message-error")).to_have_text("Ese agente no está disponible.")
    reassign.get_by_test_id("reassign-agent").select_option(str(desk.ids["agent"]))
    reassign.get_by_role("button", name="Reasignar").click()
    expect(reassign).to_be_hidden()
    expect(agent.get_by_test_id("offer")).to_contain_text("Carla Cliente")
    agent.keyboard.press("Alt+KeyA")
    expect(thread).to_contain_text("¿Sigue ahí?")
    expect(second.get_by_test_id("thread-notice")).to_have_text("Esta conversación ya no es tuya.")
    expect(live_row).to_contain_text(desk.agent.name)

    # The supervisor forces the first agent on a break; the agent's desktop follows.
    board.locator("[data-testid=agents] tr", has_text=desk.agent.name).get_by_test_id(
        "force-state"
    ).select_option(f"break:{desk.break_reason_id}")
    expect(_agent_state(board, desk.agent.name)).to_have_attribute("data-state", "break")
    expect(_agent_state(board, desk.agent.name)).to_contain_text("Comida")
    expect(agent.locator("[data-presence-box]")).to_have_attribute("data-state", "break")
    expect(agent.get_by_test_id("presence")).to_have_value(f"break:{desk.break_reason_id}")

    for page in (board, agent, second):
        assert ERRORS[id(page)] == []


def test_desktop_snapshot_after_a_reconnect_and_close_with_wrap_up(
    live_server: LiveServer, desk: Desk, new_context: NewContext, sign_in: SignIn
) -> None:
    """What happened while the socket was down shows after it comes back (snapshot then
    events), and a conversation goes through wrap-up to closed."""
    page = _watched(new_context().new_page())
    # Keeps the page's sockets reachable, and can keep it from reconnecting for a while.
    page.add_init_script(
        """
        window.__sockets = [];
        window.__blocked = false;
        const NativeWebSocket = window.WebSocket;
        window.WebSocket = class extends NativeWebSocket {
          constructor(url, ...rest) {
            super(window.__blocked ? "ws://127.0.0.1:9/blocked" : url, ...rest);
            window.__sockets.push(this);
          }
        };
        """
    )
    sign_in(page, desk.second)
    page.goto("/desktop")
    _synced(page)
    page.get_by_test_id("presence").select_option("available")
    expect(page.locator("[data-presence-box]")).to_have_attribute("data-state", "available")

    # The connection drops; meanwhile a customer arrives and is offered to this agent.
    page.evaluate("() => { window.__blocked = true; window.__sockets.at(-1).close(); }")
    expect(page.get_by_test_id("realtime-status")).to_have_attribute("data-state", "reconnecting")
    interaction_id = _customer_writes(live_server, desk, "Diego Cliente", "Buenas tardes")
    expect(page.get_by_test_id("offer")).to_have_count(0)
    page.evaluate("() => { window.__blocked = false; }")
    _synced(page)
    offer = page.get_by_test_id("offer").filter(has_text="Diego Cliente")
    expect(offer).to_have_count(1, timeout=10_000)  # from the snapshot, once
    offer.get_by_role("button", name="Aceptar").click()
    thread = page.get_by_test_id("messages")
    expect(thread).to_contain_text("Buenas tardes")

    # "/grac" suggests the saved reply; Enter inserts it (it does not send).
    composer = page.get_by_test_id("composer-input")
    composer.fill("/grac")
    suggestion = page.get_by_test_id("canned-option")
    expect(suggestion).to_have_count(1)
    expect(suggestion).to_contain_text("/gracias")
    composer.press("Enter")
    expect(composer).to_have_value(THANKS)
    expect(thread.locator("[data-direction=outbound]")).to_have_count(0)

    # A file is uploaded first, then sent with the text.
    page.get_by_test_id("file-input").set_input_files(
        {"name": "recibo.png", "mimeType": "image/png", "buffer": PIXEL}
    )
    expect(page.get_by_test_id("pending-file")).to_contain_text("recibo.png")
    expect(page.get_by_test_id("pending-file")).not_to_contain_text("Subiendo")
    page.get_by_test_id("send").click()
    sent = thread.locator("[data-direction=outbound]")
    expect(sent).to_contain_text(THANKS)
    expect(sent).not_to_have_class(SENDING)
    expect(sent.locator("a.thumb img")).to_have_count(1)
    expect(page.get_by_test_id("pending-file")).to_have_count(0)
    stored = page.request.get(f"/api/v1/interactions/{interaction_id}/messages").json()
    outbound = [m for m in stored if m["direction"] == "outbound"]
    assert [m["body"] for m in outbound] == [THANKS]
    assert [a["name"] for a in outbound[0]["attachments"]] == ["recibo.png"]

    # Wrap-up, then close: the queue asks for a disposition.
    page.get_by_test_id("wrap-up").click()
    expect(page.get_by_test_id("thread")).to_have_attribute("data-status", "wrap_up")
    expect(page.get_by_test_id("thread")).to_contain_text("de post-atención")
    page.keyboard.press("Alt+KeyC")
    dialog = page.get_by_test_id("close-dialog")
    close = dialog.get_by_role("button", name="Cerrar la conversación")
    expect(dialog.get_by_test_id("disposition")).to_contain_text("Venta cerrada")
    close.click()
    expect(dialog.get_by_test_id("message-error")).to_have_text("Elige una tipificación.")
    dialog.get_by_test_id("disposition").select_option("venta")
    close.click()
    expect(dialog).to_be_hidden()
    expect(
        page.get_by_test_id("conversations").locator(f"[data-interaction-id='{interaction_id}']")
    ).to_have_count(0)
    closed = page.request.get(f"/api/v1/interactions/{interaction_id}").json()
    assert closed["status"] == "closed"
    assert closed["disposition_code"] == "venta"


def test_small_screens_use_tabs_and_english_works(
    live_server: LiveServer, desk: Desk, new_context: NewContext, sign_in: SignIn
) -> None:
    page = _signed_in(
        new_context, sign_in, desk.supervisor, "/desktop", locale="en-US", width=375, height=740
    )
    _synced(page)
    expect(page.locator("html")).to_have_attribute("lang", "en")
    tabs = page.get_by_role("tab")
    expect(tabs).to_have_text(["Conversations", "Chat", "Customer"])
    expect(page.locator(".desk-list")).to_be_visible()
    expect(page.locator(".desk-thread")).to_be_hidden()
    page.get_by_role("tab", name="Customer").click()
    expect(page.locator(".desk-profile")).to_be_visible()
    expect(page.locator(".desk-list")).to_be_hidden()
    # Nothing is wider than the phone.
    assert page.evaluate("document.documentElement.scrollWidth") <= 375

    # The shortcuts are listed in a popover; Esc closes it.
    page.keyboard.press("?")
    help_box = page.get_by_test_id("shortcuts")
    expect(help_box).to_be_visible()
    expect(help_box).to_contain_text("Accept the oldest offer")
    page.keyboard.press("Escape")
    expect(help_box).to_be_hidden()

    board = _watched(page.context.new_page())
    board.goto("/wallboard")
    _synced(board)
    expect(board.locator("h1")).to_have_text("Wallboard")
    expect(board.locator("[data-testid=queue-tile]", has_text="Ventas")).to_be_visible()
    assert board.evaluate("document.documentElement.scrollWidth") <= 375
    assert ERRORS[id(page)] == []
    assert ERRORS[id(board)] == []


def test_who_may_open_the_desktop_and_the_wallboard(
    desk: Desk, new_context: NewContext, sign_in: SignIn
) -> None:
    page = new_context().new_page()
    sign_in(page, desk.plain_agent)
    nav = page.locator("#sidenav")
    expect(nav).to_contain_text("Escritorio")
    expect(nav).not_to_contain_text("Tablero en vivo")
    page.goto("/desktop")
    expect(page.get_by_test_id("no-agent-profile")).to_be_visible()
    response = page.goto("/wallboard")
    assert response is not None
    assert response.status == 403
    expect(page.get_by_test_id("forbidden")).to_be_visible()


def test_another_tenant_never_shows_on_the_desktop_or_the_wallboard(
    live_server: LiveServer, desk: Desk, new_context: NewContext, sign_in: SignIn
) -> None:
    async def other_tenant(db: Database) -> None:
        async with db.session(Scope.system()) as session:
            tenant = await tenancy.create_tenant(
                session,
                Actor.system(),
                TenantCreate(slug="ajeno", name="Ajeno", time_zone="America/Bogota"),
            )
            user = await identity.create_user(
                session,
                Actor.system(),
                UserCreate(
                    email="olga@ajeno.example.com",
                    name="Olga Ajena",
                    role=Role.agent,
                    password=PASSWORD,
                    tenant_id=tenant.id,
                ),
            )
        async with db.session(Scope.tenant(tenant.id)) as session:
            session.add_all(
                [
                    Queue(name="Cola Ajena", channels=["webchat"], created_at=now(session)),
                    BreakReason(name="Pausa Ajena"),
                ]
            )
            await routing.ensure_agent(session, user.id)

    live_server.run(other_tenant)
    page = _signed_in(new_context, sign_in, desk.supervisor, "/desktop")
    _synced(page)
    for name in ("Cola Ajena", "Olga Ajena", "Pausa Ajena"):
        assert name not in page.content()
    board = _watched(page.context.new_page())
    board.goto("/wallboard")
    _synced(board)
    expect(board.get_by_test_id("agents")).to_contain_text(desk.second.name)
    for name in ("Cola Ajena", "Olga Ajena", "Pausa Ajena"):
        assert name not in board.content()
