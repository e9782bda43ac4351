"""Supervisors joining calls from the wallboard and agents placing calls from the desktop, in a
real browser with a local ARI behind the server: Listen rings the supervisor's phone into the
agent's call and says so, a supervisor without a phone is told why; the desktop's dialer and
the customer panel's Call button place a call that opens at once, and the server's refusals
are shown in the agent's language."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select

from atiende.contacts import service as contacts
from atiende.contacts.models import IdentityKind
from atiende.conversations import service as conversations
from atiende.conversations.models import Channel, InteractionStatus
from atiende.core.db import Database, Scope, now
from atiende.identity import service as identity
from atiende.identity.actor import Actor
from atiende.identity.models import Role
from atiende.identity.schemas import UserCreate
from atiende.routing import service as routing
from atiende.routing.models import Presence, Queue, QueueMember
from atiende.tenancy.models import Tenant
from atiende.voice import calls
from atiende.voice import service as voice
from atiende.voice.models import Call, Extension
from factories import LiveServer as AriServer
from fakes.ari import PASSWORD, USERNAME, FakeAri

if TYPE_CHECKING:  # only for annotations: two conftest modules make `import conftest` ambiguous
    from conftest import LiveServer, NewContext

    SignIn = Callable[[Page, Any], None]

pytestmark = pytest.mark.browser
CUSTOMER = "1795632527.9"
CALLER = "+525512345678"
CARMEN = "+525587654321"


@dataclass(frozen=True)
class Person:
    email: str
    name: str
    role: Role
    extension: str | None = None
    agent: bool = False
    password: str = "una-clave-de-prueba"


TALKER = Person("tomas@marca.example.com", "Tomás Habla", Role.agent, agent=True)
SUPERVISOR = Person("silvia@marca.example.com", "Silvia Escucha", Role.supervisor, "2001")
PHONELESS_BOSS = Person("pablo@marca.example.com", "Pablo Sinfono", Role.supervisor)
DIALER = Person("dora@marca.example.com", "Dora Marca", Role.agent, "1001", agent=True)
CALLER_BACK = Person("eva@marca.example.com", "Eva Devuelve", Role.agent, "1002", agent=True)
NO_PHONE = Person("fede@marca.example.com", "Fede Sinfono", Role.agent, agent=True)
PEOPLE = (TALKER, SUPERVISOR, PHONELESS_BOSS, DIALER, CALLER_BACK, NO_PHONE)


@dataclass(frozen=True)
class Centre:
    tenant_id: uuid.UUID
    ids: dict[str, uuid.UUID]  # user id by e-mail
    talk_interaction_id: uuid.UUID
    talk_call_id: uuid.UUID
    carmen_interaction_id: uuid.UUID
    ari: FakeAri

    def id_of(self, person: Person) -> uuid.UUID:
        return self.ids[person.email]


@pytest.fixture(scope="module")
def centre(live_server: LiveServer) -> Iterator[Centre]:
    """A PBX with an outbound route (a local ARI on the server's loop); an agent talking on
    a call; supervisors with and without a phone; agents with and without one, available;
    and a closed SMS conversation of Eva's with Carmen, whose profile has her phone."""
    ari = FakeAri()
    server = AriServer(ari.app())  # type: ignore[arg-type]

    async def start(db: Database) -> None:
        await server.__aenter__()
        ari.url = f"{server.http}/ari"

    async def seed(db: Database) -> tuple[Any, ...]:
        async with db.session(Scope.system()) as session:
            tenant = await session.scalar(select(Tenant).where(Tenant.slug == "navegador"))
            assert tenant is not None
            users = {
                person.email: await identity.create_user(
                    session,
                    Actor.system(),
                    UserCreate(
                        email=person.email,
                        name=person.name,
                        role=person.role,
                        password=person.password,
                        tenant_id=tenant.id,
                    ),
                )
                for person in PEOPLE
            }
        ids = {email: user.id for email, user in users.items()}
        async with db.session(Scope.tenant(tenant.id)) as session:
            instant = now(session)
            queue = Queue(name="Ventas", channels=["voice", "sms"], created_at=instant)
            session.add(queue)
            await session.flush()
            for person in PEOPLE:
                user_id = ids[person.email]
                if person.extension:
                    session.add(
                        Extension(number=person.extension, user_id=user_id, created_at=instant)
                    )
                if person.agent:
                    await routing.ensure_agent(session, user_id)
                    session.add(QueueMember(queue_id=queue.id, agent_id=user_id))
                    await routing.set_presence(
                        session,
                        identity.actor_for(users[person.email]),
                        user_id,
                        Presence.available,
                    )
            pbx = await voice.add_pbx(
                session,
                Actor.system(),
                voice.PbxCreate(
                    name="main", ari_url=ari.url, ari_username=USERNAME, ari_password=PASSWORD
                ),
                settings=live_server.settings,
            )
            pbx.outbound_dial = "PJSIP/{number}@trunk"
            # Tomás talks with a caller.
            caller = await contacts.find_or_create_by_identity(
                session, IdentityKind.phone, CALLER, phone=CALLER
            )
            talk = await conversations.open_interaction(
                session, channel=Channel.voice, contact_id=caller.id, subject=CALLER
            )
            talk.queue_id = queue.id
            talk.agent_id = ids[TALKER.email]
            talk.status = InteractionStatus.assigned
            talk.assigned_at = instant
            call_id = uuid.uuid4()
            session.add(
                Call(
                    id=call_id,
                    interaction_id=talk.id,
                    pbx_id=pbx.id,
                    direction="inbound",
                    customer_channel_id=CUSTOMER,
                    agent_channel_id=calls.agent_channel_id(call_id),
                    agent_id=ids[TALKER.email],
                    bridge_id=calls.bridge_id_of(call_id),
                    caller_number=CALLER,
                    number="5551000",
                    state="bridged",
                    started_at=instant - timedelta(seconds=40),
                    answered_at=instant - timedelta(seconds=40),
                    connected_at=instant - timedelta(seconds=25),
                )
            )
            # Eva wrote to Carmen by SMS earlier; the conversation is still hers.
            carmen = await contacts.find_or_create_by_identity(
                session, IdentityKind.phone, CARMEN, name="Carmen Llamada", phone=CARMEN
            )
            sms = await conversations.open_interaction(
                session, channel=Channel.sms, contact_id=carmen.id, subject="Pedido"
            )
            sms.queue_id = queue.id
            sms.agent_id = ids[CALLER_BACK.email]
            sms.status = InteractionStatus.assigned
            sms.assigned_at = instant
        return tenant.id, ids, talk.id, call_id, sms.id

    live_server.run(start)
    tenant_id, ids, talk_id, call_id, sms_id = live_server.run(seed)
    ari.add_call(CUSTOMER, calls.agent_channel_id(call_id), bridge_id=calls.bridge_id_of(call_id))
    try:
        yield Centre(tenant_id, ids, talk_id, call_id, sms_id, ari)
    finally:

        async def stop(db: Database) -> None:
            await server.__aexit__(None, None, None)

        live_server.run(stop)


def _open(
    new_context: NewContext, sign_in: SignIn, person: Person, path: str, locale: str = "es-MX"
) -> tuple[Page, list[str]]:
    page = new_context(locale=locale).new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    sign_in(page, person)
    page.goto(path)
    status = page.get_by_test_id("realtime-status")
    expect(status).to_have_attribute("data-state", "connected")
    expect(status).to_have_attribute("data-sync", "ready")
    return page, errors


def _placed_calls(live_server: LiveServer, centre: Centre, person: Person) -> list[Call]:
    async def read(db: Database) -> list[Call]:
        async with db.session(Scope.tenant(centre.tenant_id), read_only=True) as session:
            rows = await session.scalars(
                select(Call).where(
                    Call.direction == "outbound", Call.agent_id == centre.id_of(person)
                )
            )
            return list(rows)

    return live_server.run(read)


# --- the wallboard -----------------------------------------------------------------------------


def test_listen_rings_the_supervisors_phone_into_the_agents_call(
    live_server: LiveServer, centre: Centre, new_context: NewContext, sign_in: SignIn
) -> None:
    board, errors = _open(new_context, sign_in, SUPERVISOR, "/wallboard")
    row = board.get_by_test_id("agents").locator("tr", has_text=TALKER.name)
    expect(row.get_by_test_id("agent-call")).to_have_text("En llamada")
    group = row.get_by_test_id("supervise")
    expect(group).to_have_attribute("data-interaction-id", str(centre.talk_interaction_id))
    expect(group.get_by_role("button")).to_have_text(["Escuchar", "Susurrar", "Intervenir"])
    # Nobody else is on a call: no one else has the buttons.
    expect(board.get_by_test_id("supervise")).to_have_count(1)

    group.get_by_test_id("supervise-listen").click()
    note = board.locator("[data-board-message]")
    expect(note).to_contain_text(
        f"Su teléfono está sonando: conteste para unirse a la llamada de {TALKER.name}."
    )
    originate = centre.ari.originated[-1]
    assert originate["endpoint"] == "PJSIP/2001"
    assert originate["appArgs"] == (
        f"@supervise,{centre.talk_call_id},listen,{centre.id_of(SUPERVISOR)}"
    )
    assert errors == []


def test_a_supervisor_without_a_phone_is_told_why_in_their_language(
    live_server: LiveServer, centre: Centre, new_context: NewContext, sign_in: SignIn
) -> None:
    before = len(centre.ari.originated)
    board, errors = _open(new_context, sign_in, PHONELESS_BOSS, "/wallboard", locale="en-US")
    row = board.get_by_test_id("agents").locator("tr", has_text=TALKER.name)
    barge = row.get_by_test_id("supervise-barge")
    expect(barge).to_have_text("Barge")
    barge.click()
    expect(board.locator("[data-board-message]")).to_have_text(
        "You have no phone extension to join calls with: ask an administrator for one."
    )
    expect(barge).to_be_enabled()
    assert len(centre.ari.originated) == before
    assert errors == []


# --- the desktop -------------------------------------------------------------------------------


def test_the_dialer_places_a_call_and_opens_it_at_once(
    live_server: LiveServer, centre: Centre, new_context: NewContext, sign_in: SignIn
) -> None:
    page, errors = _open(new_context, sign_in, DIALER, "/desktop")
    dialer = page.get_by_test_id("dialer")
    expect(dialer).to_have_attribute("data-can-call", "true")
    expect(dialer).to_be_visible()
    number = dialer.get_by_test_id("dial-number")
    note = page.locator("[data-desk-message]")

    # A number that is not a phone: the server's refusal, in words.
    number.fill("123")
    dialer.get_by_test_id("dial").click()
    expect(note).to_have_text("Ese no es un número de teléfono válido.")
    expect(number).to_have_attribute("aria-invalid", "true")
    assert _placed_calls(live_server, centre, DIALER) == []

    number.fill("55 1234 5678")
    dialer.get_by_test_id("dial").click()
    expect(note).to_have_text("Conteste su teléfono para llamar.")
    expect(number).to_have_value("")
    thread = page.get_by_test_id("thread")
    expect(thread).to_be_visible()
    (placed,) = _placed_calls(live_server, centre, DIALER)
    expect(thread).to_have_attribute("data-interaction-id", str(placed.interaction_id))
    expect(
        page.get_by_test_id("conversations").locator(
            f"[data-interaction-id='{placed.interaction_id}']"
        )
    ).to_be_visible()
    panel = page.get_by_test_id("call-panel")
    expect(panel.get_by_test_id("call-state")).to_have_text("Conteste su teléfono para llamar.")
    expect(panel.get_by_test_id("call-caller")).to_have_text(CALLER)
    expect(panel.get_by_test_id("call-line")).to_have_text("Llamada saliente")
    originate = centre.ari.originated[-1]
    assert originate["endpoint"] == "PJSIP/1001"
    assert originate["appArgs"] == (f"@outbound,{placed.id},{placed.customer_channel_id}")

    # One call at a time: the next one is refused with the reason.
    number.fill("+52 55 9876 5432")
    dialer.get_by_test_id("dial").click()
    expect(note).to_have_text("Ya está en una llamada: termínela antes de hacer otra.")
    assert len(_placed_calls(live_server, centre, DIALER)) == 1
    assert errors == []


def test_the_customer_panel_calls_the_customer_back(
    live_server: LiveServer, centre: Centre, new_context: NewContext, sign_in: SignIn
) -> None:
    page, errors = _open(new_context, sign_in, CALLER_BACK, "/desktop", locale="en-US")
    page.get_by_test_id("conversations").locator(
        f"[data-interaction-id='{centre.carmen_interaction_id}']"
    ).click()
    profile = page.get_by_test_id("profile")
    expect(page.get_by_test_id("profile-name")).to_have_text("Carmen Llamada")
    call_back = profile.get_by_test_id("call-number")
    expect(call_back).to_have_count(1)  # her phone, once (it is also an identity)
    expect(call_back).to_have_attribute("aria-label", f"Call {CARMEN}")
    call_back.click()

    expect(page.locator("[data-desk-message]")).to_have_text("Answer your phone to place the call.")
    (placed,) = _placed_calls(live_server, centre, CALLER_BACK)
    thread = page.get_by_test_id("thread")
    expect(thread).to_have_attribute("data-interaction-id", str(placed.interaction_id))
    expect(page.get_by_test_id("call-panel").get_by_test_id("call-line")).to_have_text(
        "Outgoing call"
    )
    expect(page.get_by_test_id("profile-name")).to_have_text("Carmen Llamada")
    originate = centre.ari.originated[-1]
    assert (originate["endpoint"], originate["callerId"]) == (
        "PJSIP/1002",
        f"Carmen Llamada <{CARMEN}>",
    )
    assert errors == []


def test_an_agent_without_a_phone_has_no_dialer(
    live_server: LiveServer, centre: Centre, new_context: NewContext, sign_in: SignIn
) -> None:
    page, errors = _open(new_context, sign_in, NO_PHONE, "/desktop")
    dialer = page.get_by_test_id("dialer")
    expect(dialer).to_have_attribute("data-can-call", "false")
    expect(dialer).to_be_hidden()
    assert errors == []
