"""Phone calls on the agent desktop in a real browser, with a local ARI behind the server:
the call panel shows who calls and which number they dialled, Hold puts the caller on hold
on the PBX, the panel follows call.updated events live, the finished recording plays in the
conversation, a call offered to the agent says to answer on the phone, and the agent transfers
a call to an outside number or after consulting another agent."""

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
from atiende.conversations.models import Channel, InteractionEvent, InteractionStatus
from atiende.core.db import Database, Scope, now
from atiende.identity import service as identity
from atiende.identity.actor import Actor
from atiende.identity.models import Role
from atiende.identity.schemas import UserCreate
from atiende.routing import service as routing
from atiende.routing.models import Offer, OfferStatus, Queue, QueueMember, Recording
from atiende.tenancy.models import Tenant
from atiende.voice import calls
from atiende.voice import service as voice
from atiende.voice.models import Call, Extension, Pbx
from factories import LiveServer as AriServer
from fakes.ari import PASSWORD, USERNAME, FakeAri, wav_bytes

if TYPE_CHECKING:  # only for annotations: two conftest modules make `import conftest` ambiguous
    from conftest import LiveServer, NewContext

    SignIn = Callable[[Page, Any], None]

pytestmark = pytest.mark.browser
CUSTOMER = "1795632527.2"
CALLER = "+525512345678"


@dataclass(frozen=True)
class Person:
    email: str
    name: str
    role: Role
    password: str = "una-clave-de-prueba"


@dataclass(frozen=True)
class VoiceDesk:
    tenant_id: uuid.UUID
    queue_id: uuid.UUID
    agent_id: uuid.UUID
    agent: Person
    supervisor: Person
    interaction_id: uuid.UUID
    call_id: uuid.UUID
    agent_channel: str
    ari: FakeAri


@pytest.fixture(scope="module")
def voice_desk(live_server: LiveServer) -> Iterator[VoiceDesk]:
    """An agent talking on the phone with a caller: a voice queue recorded on demand, the
    tenant's PBX (a local ARI running on the server's event loop), and the call's row as
    call control leaves it once the agent's phone has answered."""
    agent = Person("vera@voz.example.com", "Vera Voz", Role.agent)
    supervisor = Person("sara@voz.example.com", "Sara Supervisa", Role.supervisor)
    ari = FakeAri()
    server = AriServer(ari.app())  # type: ignore[arg-type]

    async def start(db: Database) -> None:
        await server.__aenter__()
        ari.url = f"{server.http}/ari"

    async def seed(db: Database) -> tuple[uuid.UUID, ...]:
        async with db.session(Scope.system()) as session:
            tenant = await session.scalar(select(Tenant).where(Tenant.slug == "navegador"))
            assert tenant is not None
            user, _ = [
                await identity.create_user(
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
                for person in (agent, supervisor)
            ]
        async with db.session(Scope.tenant(tenant.id)) as session:
            queue = Queue(
                name="Llamadas",
                channels=["voice"],
                recording=Recording.on_demand,
                offer_timeout_seconds=600,
                created_at=now(session),
            )
            session.add(queue)
            await session.flush()
            await routing.ensure_agent(session, user.id)
            session.add(QueueMember(queue_id=queue.id, agent_id=user.id))
            pbx = await voice.add_pbx(
                session,
                Actor.system(),
                voice.PbxCreate(
                    name="main", ari_url=ari.url, ari_username=USERNAME, ari_password=PASSWORD
                ),
                settings=live_server.settings,
            )
            contact = await contacts.find_or_create_by_identity(
                session, IdentityKind.phone, CALLER, name="Carmen Llamada", phone=CALLER
            )
            interaction = await conversations.open_interaction(
                session, channel=Channel.voice, contact_id=contact.id, subject=CALLER
            )
            instant = now(session)
            interaction.queue_id = queue.id
            interaction.agent_id = user.id
            interaction.status = InteractionStatus.assigned
            interaction.assigned_at = instant
            call_id = uuid.uuid4()
            session.add(
                Call(
                    id=call_id,
                    interaction_id=interaction.id,
                    pbx_id=pbx.id,
                    direction="inbound",
                    customer_channel_id=CUSTOMER,
                    agent_channel_id=calls.agent_channel_id(call_id),
                    agent_id=user.id,
                    bridge_id=calls.bridge_id_of(call_id),
                    caller_number=CALLER,
                    number="5551000",
                    state="bridged",
                    started_at=instant - timedelta(seconds=40),
                    answered_at=instant - timedelta(seconds=40),
                    connected_at=instant - timedelta(seconds=25),
                )
            )
        return tenant.id, queue.id, user.id, interaction.id, call_id

    live_server.run(start)
    tenant_id, queue_id, agent_id, interaction_id, call_id = live_server.run(seed)
    agent_channel = calls.agent_channel_id(call_id)
    ari.add_call(CUSTOMER, agent_channel, bridge_id=calls.bridge_id_of(call_id))
    try:
        yield VoiceDesk(
            tenant_id,
            queue_id,
            agent_id,
            agent,
            supervisor,
            interaction_id,
            call_id,
            agent_channel,
            ari,
        )
    finally:

        async def stop(db: Database) -> None:
            await server.__aexit__(None, None, None)

        live_server.run(stop)


def _desktop(
    new_context: NewContext, sign_in: SignIn, desk: VoiceDesk, person: Person | None = None
) -> tuple[Page, list[str]]:
    page = new_context().new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    sign_in(page, person or desk.agent)
    page.goto("/desktop")
    status = page.get_by_test_id("realtime-status")
    expect(status).to_have_attribute("data-state", "connected")
    expect(status).to_have_attribute("data-sync", "ready")
    return page, errors


def _open_call(page: Page, desk: VoiceDesk, interaction_id: uuid.UUID | None = None) -> Any:
    page.get_by_test_id("conversations").locator(
        f"[data-interaction-id='{interaction_id or desk.interaction_id}']"
    ).click()
    panel = page.get_by_test_id("call-panel")
    expect(panel).to_be_visible()
    return panel


def test_the_call_panel_shows_the_caller_and_hold_puts_them_on_hold_on_the_pbx(
    live_server: LiveServer, voice_desk: VoiceDesk, new_context: NewContext, sign_in: SignIn
) -> None:
    page, errors = _desktop(new_context, sign_in, voice_desk)
    panel = _open_call(page, voice_desk)
    expect(panel.get_by_test_id("call-caller")).to_have_text(CALLER)
    expect(panel.get_by_test_id("call-line")).to_have_text("Llamó al 5551000 · Llamadas")
    expect(panel.get_by_test_id("call-state")).to_have_text("En llamada")
    expect(page.get_by_test_id("profile-name")).to_have_text("Carmen Llamada")
    hold = panel.get_by_test_id("call-hold")
    expect(hold).to_have_text("Poner en espera")

    voice_desk.ari.requests.clear()
    hold.click()
    expect(hold).to_have_text("Retomar")
    expect(hold).to_have_attribute("aria-pressed", "true")
    expect(panel.get_by_test_id("call-state")).to_have_text("En espera")
    assert voice_desk.ari.made() == [
        ("POST", f"/channels/{CUSTOMER}/hold", {}),
        ("POST", f"/channels/{CUSTOMER}/mute", {"direction": "in"}),
        ("POST", f"/channels/{CUSTOMER}/moh", {}),
    ]

    voice_desk.ari.requests.clear()
    hold.click()
    expect(hold).to_have_text("Poner en espera")
    assert [r.method for r in voice_desk.ari.requests] == ["DELETE", "DELETE", "DELETE"]

    # The keypad sends a digit to the caller's side.
    voice_desk.ari.requests.clear()
    panel.get_by_test_id("call-keypad").click()
    panel.get_by_test_id("keypad").get_by_role("button", name="Tecla 5").click()
    expect(panel.get_by_test_id("call-state")).to_have_text("En llamada")
    page.wait_for_function("() => !document.querySelector('[data-call-panel] button:disabled')")
    assert voice_desk.ari.made() == [("POST", f"/channels/{CUSTOMER}/dtmf", {"dtmf": "5"})]
    assert errors == []


def test_the_wallboard_shows_who_is_on_a_call_and_who_has_a_caller_on_hold(
    live_server: LiveServer, voice_desk: VoiceDesk, new_context: NewContext, sign_in: SignIn
) -> None:
    board = new_context().new_page()
    errors: list[str] = []
    board.on("pageerror", lambda error: errors.append(str(error)))
    sign_in(board, voice_desk.supervisor)
    board.goto("/wallboard")
    expect(board.get_by_test_id("realtime-status")).to_have_attribute("data-sync", "ready")
    row = board.get_by_test_id("agents").locator("tr", has_text=voice_desk.agent.name)
    badge = row.get_by_test_id("agent-call")
    expect(badge).to_have_text("En llamada")
    expect(badge).to_have_attribute("data-call", "talking")
    tile = board.locator("[data-testid=queue-tile]", has_text="Llamadas")
    expect(tile.locator("[data-field=calls]")).to_have_text("1")

    async def hold(db: Database, on_hold: bool) -> None:
        async with db.session(Scope.tenant(voice_desk.tenant_id)) as session:
            row = await session.get(Call, voice_desk.call_id)
            assert row is not None
            row.on_hold, row.state = on_hold, "on_hold" if on_hold else "bridged"
            await calls.publish(session, row, "held" if on_hold else "resumed")

    live_server.run(lambda db: hold(db, True))
    expect(badge).to_have_text("En espera")
    expect(badge).to_have_attribute("data-call", "on_hold")
    live_server.run(lambda db: hold(db, False))
    expect(badge).to_have_text("En llamada")
    assert errors == []


def test_the_wallboard_shows_whom_an_agent_consults_and_where_a_call_is_transferred(
    live_server: LiveServer,
    voice_desk: VoiceDesk,
    colleagues: Colleagues,
    new_context: NewContext,
    sign_in: SignIn,
) -> None:
    board = new_context().new_page()
    errors: list[str] = []
    board.on("pageerror", lambda error: errors.append(str(error)))
    sign_in(board, voice_desk.supervisor)
    board.goto("/wallboard")
    expect(board.get_by_test_id("realtime-status")).to_have_attribute("data-sync", "ready")
    row = board.get_by_test_id("agents").locator("tr", has_text=voice_desk.agent.name)
    badge = row.get_by_test_id("agent-call")
    expect(badge).to_have_text("En llamada")
    expect(row.get_by_test_id("supervise")).to_be_visible()

    async def change(db: Database, what: str, **values: Any) -> None:
        # What call control does: the row, then call.updated.
        async with db.session(Scope.tenant(voice_desk.tenant_id)) as session:
            call = await session.get(Call, voice_desk.call_id)
            assert call is not None
            for name, value in values.items():
                setattr(call, name, value)
            await calls.publish(session, call, what)

    # The agent consults a colleague, who answered: the caller is on hold meanwhile.
    live_server.run(
        lambda db: change(
            db,
            "consult_answered",
            consult_state="talking",
            consult_agent_id=colleagues.with_phone,
            on_hold=True,
            state="on_hold",
        )
    )
    expect(badge).to_have_text(f"Consultando a {WITH_PHONE.name}")
    expect(badge).to_have_attribute("data-call", "consulting")
    expect(badge).to_have_attribute("data-consult", "talking")
    expect(row.get_by_test_id("agent-call")).to_have_count(1)

    # The consultation ends: back to the caller, the talking badge again.
    live_server.run(
        lambda db: change(
            db,
            "consult_ended",
            consult_state=None,
            consult_agent_id=None,
            on_hold=False,
            state="bridged",
        )
    )
    expect(badge).to_have_text("En llamada")
    expect(badge).to_have_attribute("data-call", "talking")
    expect(row.get_by_test_id("supervise")).to_be_visible()

    # A forward to an outside number: no listening in while it rings.
    live_server.run(
        lambda db: change(db, "forward", state="transferring", forwarded_to="+525587654321")
    )
    expect(badge).to_have_text("Transfiriendo a +525587654321")
    expect(badge).to_have_attribute("data-call", "transferring")
    expect(row.get_by_test_id("supervise")).to_have_count(0)

    live_server.run(lambda db: change(db, "transfer_failed", state="bridged", forwarded_to=None))
    expect(badge).to_have_text("En llamada")
    expect(row.get_by_test_id("supervise")).to_be_visible()
    assert errors == []


def test_an_admin_routes_a_number_to_a_queue_on_the_voice_page(
    live_server: LiveServer, voice_desk: VoiceDesk, new_context: NewContext, sign_in: SignIn
) -> None:
    page = new_context().new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("dialog", lambda dialog: dialog.accept())
    sign_in(page, live_server.logins["admin"])
    page.goto("/admin/voice")
    expect(page.locator("[data-admin=voice]")).to_have_attribute("data-ready", "true")
    expect(page.locator(".admin-tabs a[aria-current=page]")).to_have_text("Voz")
    pbx = page.get_by_test_id("pbxs").locator("tr", has_text="main")
    expect(pbx).to_contain_text(voice_desk.ari.url)
    numbers = page.get_by_test_id("numbers")
    expect(numbers).to_contain_text("Aún no hay números")

    form = page.get_by_test_id("number-form")
    form.get_by_test_id("number-input").fill("+52 55 1000 2000")
    form.get_by_test_id("number-queue").select_option(label="Llamadas")
    form.locator("button[type=submit]").click()
    added = numbers.locator("tr", has_text="+525510002000")
    expect(added).to_contain_text("Llamadas")

    form.get_by_test_id("number-input").fill("+525510002000")
    form.get_by_test_id("number-queue").select_option(label="Llamadas")
    form.locator("button[type=submit]").click()
    expect(form.locator("[data-form-message]")).to_contain_text("Ese número ya va a una cola.")

    added.get_by_test_id("delete").click()
    expect(numbers).to_contain_text("Aún no hay números")
    assert errors == []


def test_the_panel_follows_the_call_live_and_plays_the_recording_when_it_ends(
    live_server: LiveServer, voice_desk: VoiceDesk, new_context: NewContext, sign_in: SignIn
) -> None:
    page, errors = _desktop(new_context, sign_in, voice_desk)
    panel = _open_call(page, voice_desk)
    record = panel.get_by_test_id("call-record")
    expect(record).to_have_text("Grabar")
    record.click()
    expect(record).to_have_text("Pausar grabación")
    expect(panel.get_by_test_id("call-state")).to_have_text("En llamada · Grabando")
    name = calls.recording_name_of(voice_desk.call_id)

    async def caller_hangs_up(db: Database) -> None:
        # What call control does when the caller hangs up: the row, then call.updated.
        async with db.session(Scope.tenant(voice_desk.tenant_id)) as session:
            row = await session.get(Call, voice_desk.call_id)
            assert row is not None
            row.state, row.ended_at, row.end_cause = "ended", now(session), "hangup"
            row.recording_state = "done"
            await calls.publish(session, row, "ended")

    voice_desk.ari.finish_recording(name, wav_bytes(0.5))
    live_server.run(caller_hangs_up)
    expect(panel.get_by_test_id("call-state")).to_have_text("Llamada terminada")
    expect(panel.get_by_test_id("call-hold")).to_be_disabled()
    expect(panel.get_by_test_id("call-hangup")).to_be_disabled()
    expect(record).to_be_hidden()
    audio = panel.get_by_test_id("call-audio")
    expect(audio).to_be_visible()
    expect(audio).to_have_attribute(
        "src", f"/api/v1/interactions/{voice_desk.interaction_id}/recording"
    )
    response = page.request.get(f"/api/v1/interactions/{voice_desk.interaction_id}/recording")
    assert response.status == 200
    assert response.headers["content-type"] == "audio/wav"
    assert response.body() == voice_desk.ari.stored[name]
    assert errors == []


def test_a_call_offered_to_the_agent_says_to_answer_on_the_phone(
    live_server: LiveServer, voice_desk: VoiceDesk, new_context: NewContext, sign_in: SignIn
) -> None:
    async def ring(db: Database) -> uuid.UUID:
        async with db.session(Scope.tenant(voice_desk.tenant_id)) as session:
            contact = await contacts.find_or_create_by_identity(
                session, IdentityKind.phone, "+525598765432", phone="+525598765432"
            )
            interaction = await conversations.open_interaction(
                session, channel=Channel.voice, contact_id=contact.id, subject="+525598765432"
            )
            interaction.queue_id = voice_desk.queue_id
            interaction.status = InteractionStatus.offered
            instant = now(session)
            offer = Offer(
                interaction_id=interaction.id,
                agent_id=voice_desk.agent_id,
                status=OfferStatus.pending,
                created_at=instant,
                expires_at=instant + timedelta(minutes=10),
            )
            session.add(offer)
            await session.flush()
            return offer.id

    live_server.run(ring)
    page, errors = _desktop(new_context, sign_in, voice_desk)
    offer = page.get_by_test_id("offer")
    expect(offer).to_have_count(1)
    expect(offer).to_contain_text("Llamada entrante")
    expect(offer.get_by_test_id("answer-on-phone")).to_have_text("Conteste en su teléfono")
    expect(offer.locator("[data-accept]")).to_be_hidden()
    expect(offer.locator("[data-reject]")).to_be_visible()
    assert errors == []


# --- transfers ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Colleagues:
    with_phone: uuid.UUID  # an agent with extension 1002
    without_phone: uuid.UUID


WITH_PHONE = Person("tomas@voz.example.com", "Tomás Transfiere", Role.agent)
WITHOUT_PHONE = Person("irene@voz.example.com", "Irene Sin Teléfono", Role.agent)


@pytest.fixture(scope="module")
def colleagues(live_server: LiveServer, voice_desk: VoiceDesk) -> Colleagues:
    """Two more agents to consult (one with a phone, one without), and an outbound route on
    the tenant's PBX, which transfers to outside numbers need."""

    async def seed(db: Database) -> Colleagues:
        async with db.session(Scope.system()) as session:
            users = [
                await identity.create_user(
                    session,
                    Actor.system(),
                    UserCreate(
                        email=person.email,
                        name=person.name,
                        role=person.role,
                        password=person.password,
                        tenant_id=voice_desk.tenant_id,
                    ),
                )
                for person in (WITH_PHONE, WITHOUT_PHONE)
            ]
        async with db.session(Scope.tenant(voice_desk.tenant_id)) as session:
            for user in users:
                await routing.ensure_agent(session, user.id)
            session.add(Extension(number="1002", user_id=users[0].id, created_at=now(session)))
            pbx = await session.scalar(select(Pbx).where(Pbx.name == "main"))
            assert pbx is not None
            pbx.outbound_dial = "PJSIP/{number}@trunk"
        return Colleagues(users[0].id, users[1].id)

    return live_server.run(seed)


def _talking_call(live_server: LiveServer, desk: VoiceDesk, caller: str) -> uuid.UUID:
    """Another call the agent is talking on (its own interaction), as call control leaves
    it once the agent's phone has answered; its interaction's id."""

    async def seed(db: Database) -> uuid.UUID:
        async with db.session(Scope.tenant(desk.tenant_id)) as session:
            contact = await contacts.find_or_create_by_identity(
                session, IdentityKind.phone, caller, phone=caller
            )
            interaction = await conversations.open_interaction(
                session, channel=Channel.voice, contact_id=contact.id, subject=caller
            )
            instant = now(session)
            interaction.queue_id = desk.queue_id
            interaction.agent_id = desk.agent_id
            interaction.status = InteractionStatus.assigned
            interaction.assigned_at = instant
            pbx = await session.scalar(select(Pbx).where(Pbx.name == "main"))
            assert pbx is not None
            call_id = uuid.uuid4()
            session.add(
                Call(
                    id=call_id,
                    interaction_id=interaction.id,
                    pbx_id=pbx.id,
                    direction="inbound",
                    customer_channel_id=f"customer-{call_id.hex}",
                    agent_channel_id=calls.agent_channel_id(call_id),
                    agent_id=desk.agent_id,
                    bridge_id=calls.bridge_id_of(call_id),
                    caller_number=caller,
                    number="5551000",
                    state="bridged",
                    started_at=instant - timedelta(seconds=30),
                    answered_at=instant - timedelta(seconds=30),
                    connected_at=instant - timedelta(seconds=20),
                )
            )
            return interaction.id

    return live_server.run(seed)


def _call_row(live_server: LiveServer, desk: VoiceDesk, interaction_id: uuid.UUID) -> Call:
    async def read(db: Database) -> Call:
        async with db.session(Scope.tenant(desk.tenant_id)) as session:
            row = await session.scalar(select(Call).where(Call.interaction_id == interaction_id))
            assert row is not None
            return row

    return live_server.run(read)


def _timeline(live_server: LiveServer, desk: VoiceDesk, interaction_id: uuid.UUID) -> list[str]:
    async def read(db: Database) -> list[str]:
        async with db.session(Scope.tenant(desk.tenant_id)) as session:
            rows = await session.scalars(
                select(InteractionEvent.type)
                .where(InteractionEvent.interaction_id == interaction_id)
                .order_by(InteractionEvent.occurred_at)
            )
            return list(rows)

    return live_server.run(read)


def test_the_agent_transfers_a_call_to_an_outside_number_from_the_panel(
    live_server: LiveServer,
    voice_desk: VoiceDesk,
    colleagues: Colleagues,
    new_context: NewContext,
    sign_in: SignIn,
) -> None:
    interaction_id = _talking_call(live_server, voice_desk, "+525511112222")
    page, errors = _desktop(new_context, sign_in, voice_desk)
    panel = _open_call(page, voice_desk, interaction_id)
    expect(panel.get_by_test_id("call-state")).to_have_text("En llamada")
    forward = panel.get_by_test_id("call-forward")
    expect(forward).to_have_text("Transferir a un número")
    form = panel.get_by_test_id("call-forward-form")
    expect(form).to_be_hidden()

    # From the keyboard: the button opens the form and the number field takes the focus.
    forward.focus()
    page.keyboard.press("Enter")
    expect(form).to_be_visible()
    expect(forward).to_have_attribute("aria-expanded", "true")
    number = form.get_by_test_id("call-forward-number")
    expect(number).to_be_focused()
    page.keyboard.press("Escape")
    expect(form).to_be_hidden()
    expect(forward).to_be_focused()
    expect(forward).to_have_attribute("aria-expanded", "false")
    page.keyboard.press("Enter")
    expect(number).to_be_focused()

    # Too short: refused in the page, nothing asked of the server.
    number.fill("12")
    number.press("Enter")
    expect(page.locator("[data-desk-message]")).to_have_text(
        "Ese no es un número de teléfono válido."
    )
    expect(number).to_have_attribute("aria-invalid", "true")
    assert _call_row(live_server, voice_desk, interaction_id).forwarded_to is None

    number.fill("+52 55 8765 4321")
    number.press("Enter")
    forwarding = panel.get_by_test_id("call-forwarding")
    expect(forwarding).to_have_text("Transfiriendo al +525587654321…")
    expect(panel.get_by_test_id("call-state")).to_have_text("Transfiriéndose")
    expect(form).to_be_hidden()
    expect(forward).to_be_disabled()
    expect(panel.get_by_test_id("call-consult")).to_be_disabled()
    expect(panel.get_by_test_id("call-hold")).to_be_disabled()
    row = _call_row(live_server, voice_desk, interaction_id)
    assert (row.forwarded_to, row.state) == ("+525587654321", "transferring")
    assert "call.transfer_requested" in _timeline(live_server, voice_desk, interaction_id)

    assert errors == []


def test_the_agent_consults_another_agent_and_cancels_the_consultation(
    live_server: LiveServer,
    voice_desk: VoiceDesk,
    colleagues: Colleagues,
    new_context: NewContext,
    sign_in: SignIn,
) -> None:
    interaction_id = _talking_call(live_server, voice_desk, "+525533334444")
    page, errors = _desktop(new_context, sign_in, voice_desk)
    panel = _open_call(page, voice_desk, interaction_id)
    consult = panel.get_by_test_id("call-consult")
    expect(consult).to_have_text("Consultar")
    consult.focus()
    page.keyboard.press("Enter")
    form = panel.get_by_test_id("call-consult-form")
    expect(form).to_be_visible()
    agent = form.get_by_test_id("call-consult-agent")
    expect(agent).to_be_focused()
    # The desktop's agent list, without the agent themself.
    expect(agent.locator(f"option[value='{colleagues.with_phone}']")).to_contain_text(
        WITH_PHONE.name
    )
    expect(agent.locator(f"option[value='{voice_desk.agent_id}']")).to_have_count(0)

    # Nobody chosen: refused in the page. An agent without a phone: refused by the server.
    form.get_by_test_id("call-consult-submit").click()
    message = page.locator("[data-desk-message]")
    expect(message).to_have_text("Elija un agente o escriba un número para consultar.")
    agent.select_option(str(colleagues.without_phone))
    form.get_by_test_id("call-consult-submit").click()
    expect(message).to_have_text("Ese agente no tiene extensión telefónica.")
    expect(agent).to_have_attribute("aria-invalid", "true")
    expect(form).to_be_visible()
    assert _call_row(live_server, voice_desk, interaction_id).consult_state is None

    # Typing a number instead shows the number field.
    form.get_by_test_id("call-consult-to-number").check()
    expect(form.get_by_test_id("call-consult-number")).to_be_visible()
    expect(agent).to_be_hidden()
    form.get_by_test_id("call-consult-to-agent").check()

    agent.select_option(str(colleagues.with_phone))
    form.get_by_test_id("call-consult-submit").click()
    box = panel.get_by_test_id("call-consult-box")
    status = panel.get_by_test_id("call-consult-status")
    expect(status).to_have_text(f"Llamando a {WITH_PHONE.name} para consultar…")
    expect(form).to_be_hidden()
    complete = panel.get_by_test_id("call-consult-complete")
    cancel = panel.get_by_test_id("call-consult-cancel")
    expect(complete).to_have_text("Completar transferencia")
    expect(complete).to_be_disabled()
    expect(cancel).to_be_enabled()
    expect(cancel).to_be_focused()
    expect(consult).to_be_disabled()
    expect(panel.get_by_test_id("call-forward")).to_be_disabled()
    row = _call_row(live_server, voice_desk, interaction_id)
    assert (row.consult_state, row.consult_agent_id) == ("ringing", colleagues.with_phone)

    async def consulted(db: Database, consult_state: str | None, change: str) -> None:
        # What call control does as the consultation goes on: the row, then call.updated.
        async with db.session(Scope.tenant(voice_desk.tenant_id)) as session:
            row = await session.scalar(select(Call).where(Call.interaction_id == interaction_id))
            assert row is not None
            row.consult_state = consult_state
            if consult_state is None:
                row.consult_agent_id = None
            row.on_hold = consult_state is not None
            row.state = "on_hold" if consult_state is not None else "bridged"
            await calls.publish(session, row, change)

    live_server.run(lambda db: consulted(db, "talking", "consult_answered"))
    expect(complete).to_be_enabled()
    expect(status).to_have_text(f"Consultando con {WITH_PHONE.name}: quien llama está en espera")
    expect(box).to_have_attribute("data-state", "talking")

    with page.expect_response(lambda r: r.url.endswith("/call/consult/cancel")) as answer:
        cancel.click()
    assert answer.value.request.method == "POST"
    assert answer.value.status == 200
    assert _timeline(live_server, voice_desk, interaction_id)[-1] == "call.consult_cancel_requested"

    live_server.run(lambda db: consulted(db, None, "consult_ended"))
    expect(box).to_be_hidden()
    expect(panel.get_by_test_id("call-state")).to_have_text("En llamada")
    expect(consult).to_be_enabled()
    assert errors == []


# --- auto-answer ---------------------------------------------------------------------------


def test_the_agent_turns_auto_answer_on_and_off_from_the_header(
    live_server: LiveServer,
    voice_desk: VoiceDesk,
    colleagues: Colleagues,
    new_context: NewContext,
    sign_in: SignIn,
) -> None:
    async def auto_answer(db: Database) -> bool:
        async with db.session(Scope.tenant(voice_desk.tenant_id)) as session:
            row = await session.scalar(select(Extension).where(Extension.number == "1002"))
            assert row is not None
            assert row.user_id == colleagues.with_phone
            return row.auto_answer

    async def ring(db: Database) -> uuid.UUID:
        # A call offered to the agent with extension 1002.
        async with db.session(Scope.tenant(voice_desk.tenant_id)) as session:
            contact = await contacts.find_or_create_by_identity(
                session, IdentityKind.phone, "+525577778888", phone="+525577778888"
            )
            interaction = await conversations.open_interaction(
                session, channel=Channel.voice, contact_id=contact.id, subject="+525577778888"
            )
            interaction.queue_id = voice_desk.queue_id
            interaction.status = InteractionStatus.offered
            instant = now(session)
            offer = Offer(
                interaction_id=interaction.id,
                agent_id=colleagues.with_phone,
                status=OfferStatus.pending,
                created_at=instant,
                expires_at=instant + timedelta(minutes=10),
            )
            session.add(offer)
            await session.flush()
            return offer.id

    async def withdraw(db: Database, offer_id: uuid.UUID) -> None:
        async with db.session(Scope.tenant(voice_desk.tenant_id)) as session:
            offer = await session.get(Offer, offer_id)
            assert offer is not None
            offer.status = OfferStatus.cancelled

    offer_id = live_server.run(ring)
    page, errors = _desktop(new_context, sign_in, voice_desk, WITH_PHONE)
    expect(page.get_by_test_id("phone-state")).to_be_visible()
    box = page.get_by_test_id("auto-answer-box")
    expect(box).to_be_visible()
    expect(box).to_have_text("Contestar automáticamente")
    expect(box).to_have_attribute(
        "title", "Su teléfono contesta por sí solo las llamadas que se le ofrecen, si lo permite"
    )
    toggle = page.get_by_test_id("auto-answer")
    expect(toggle).not_to_be_checked()
    on_phone = page.get_by_test_id("offer").get_by_test_id("answer-on-phone")
    expect(on_phone).to_have_text("Conteste en su teléfono")

    # From the keyboard (the offer's card covers that end of the header): a checkbox the
    # agent reaches and ticks with Space.
    toggle.focus()
    with page.expect_response(
        lambda r: r.url.endswith("/voice/extensions/mine") and r.request.method == "PUT"
    ) as answer:
        page.keyboard.press("Space")
    assert answer.value.status == 200
    assert answer.value.request.post_data_json == {"auto_answer": True}
    expect(toggle).to_be_checked()
    expect(toggle).to_be_focused()
    assert live_server.run(auto_answer) is True
    expect(on_phone).to_have_text("Su teléfono contestará por sí solo")

    page.reload()
    expect(page.get_by_test_id("realtime-status")).to_have_attribute("data-sync", "ready")
    expect(toggle).to_be_checked()
    expect(on_phone).to_have_text("Su teléfono contestará por sí solo")

    # A refused change goes back to what the server has, and says why.
    def refuse(route: Any) -> None:
        if route.request.method != "PUT":
            route.fallback()
            return
        route.fulfill(
            status=500,
            json={"code": "internal_error", "message": "Something went wrong on our side."},
        )

    page.route("**/api/v1/voice/extensions/mine", refuse)
    toggle.press("Space")
    expect(page.locator("[data-desk-message]")).to_have_text("Algo salió mal. Inténtalo de nuevo.")
    expect(toggle).to_be_checked()
    expect(on_phone).to_have_text("Su teléfono contestará por sí solo")
    assert live_server.run(auto_answer) is True
    page.unroute("**/api/v1/voice/extensions/mine", refuse)

    with page.expect_response(
        lambda r: r.url.endswith("/voice/extensions/mine") and r.request.method == "PUT"
    ) as answer:
        toggle.press("Space")
    assert answer.value.status == 200
    expect(toggle).not_to_be_checked()
    assert live_server.run(auto_answer) is False
    expect(on_phone).to_have_text("Conteste en su teléfono")
    live_server.run(lambda db: withdraw(db, offer_id))
    assert errors == []
