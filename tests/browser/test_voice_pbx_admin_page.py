"""The PBXs, phones and recordings on the Voice page in a real browser, with a local ARI behind
the server: an administrator adds a PBX, tests it, reads and downloads its Asterisk files,
edits and deletes it, sees whether each phone is registered and sets how long recordings are
kept; builds an IVR menu whose key forwards to an outside number and whose timeout action
takes a voicemail; and an agent's desktop header says whether their phone is connected."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
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
from atiende.routing import service as routing
from atiende.routing.models import Queue
from atiende.tenancy.models import Tenant
from atiende.voice import service
from atiende.voice.models import Extension, IvrMenu
from factories import LiveServer as AriServer
from fakes.ari import PASSWORD
from fakes.ari_pbx import FakePbx

if TYPE_CHECKING:  # only for annotations: two conftest modules make `import conftest` ambiguous
    from conftest import LiveServer, NewContext

    SignIn = Callable[[Page, Any], None]

pytestmark = pytest.mark.browser


@dataclass(frozen=True)
class Person:
    email: str
    name: str
    role: Role
    password: str = "una-clave-de-prueba"


@dataclass(frozen=True)
class Phones:
    tenant_id: uuid.UUID
    agent: Person
    ari: FakePbx


@pytest.fixture(scope="module")
def phones(live_server: LiveServer) -> Iterator[Phones]:
    """A local ARI on the server's event loop, and an agent whose extension 1001 is
    registered on it."""
    agent = Person("tomas@telefono.example.com", "Tomás Teléfono", Role.agent)
    ari = FakePbx(endpoints={"1001": "online"})
    server = AriServer(ari.app())  # type: ignore[arg-type]

    async def start(db: Database) -> None:
        await server.__aenter__()
        ari.url = f"{server.http}/ari"

    async def seed(db: Database) -> uuid.UUID:
        async with db.session(Scope.system()) as session:
            tenant = await session.scalar(select(Tenant).where(Tenant.slug == "navegador"))
            assert tenant is not None
            user = await identity.create_user(
                session,
                Actor.system(),
                UserCreate(
                    email=agent.email,
                    name=agent.name,
                    role=agent.role,
                    password=agent.password,
                    tenant_id=tenant.id,
                ),
            )
        async with db.session(Scope.tenant(tenant.id)) as session:
            await routing.ensure_agent(session, user.id)
            session.add(Extension(number="1001", user_id=user.id, created_at=now(session)))
        return tenant.id

    live_server.run(start)
    tenant_id = live_server.run(seed)
    try:
        yield Phones(tenant_id, agent, ari)
    finally:

        async def stop(db: Database) -> None:
            await server.__aexit__(None, None, None)

        live_server.run(stop)


def test_an_admin_adds_tests_reads_edits_and_deletes_a_pbx(
    live_server: LiveServer, phones: Phones, new_context: NewContext, sign_in: SignIn
) -> None:
    page = new_context().new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("dialog", lambda dialog: dialog.accept())
    sign_in(page, live_server.logins["admin"])
    page.goto("/admin/voice")
    voice = page.locator("[data-admin=voice]")
    expect(voice).to_have_attribute("data-pbxs-ready", "true")
    pbxs = page.get_by_test_id("pbxs")
    expect(pbxs).to_contain_text("Aún no hay centrales")

    form = page.get_by_test_id("pbx-form")
    form.get_by_test_id("pbx-name").fill("principal")
    form.get_by_test_id("pbx-url").fill(phones.ari.url)
    form.get_by_test_id("pbx-password").fill(PASSWORD)
    form.locator("button[type=submit]").click()
    row = pbxs.locator("tr", has_text="principal")
    expect(row).to_contain_text(phones.ari.url)

    row.get_by_test_id("test").click()
    check = page.get_by_test_id("pbx-check")
    expect(check).to_have_attribute("data-outcome", "ok")
    expect(check).to_contain_text("principal responde: Asterisk 22.10.1")
    expect(check).to_contain_text("la conexión de eventos se abre")

    row.get_by_test_id("config").click()
    config = page.get_by_test_id("pbx-config")
    expect(config).to_contain_text("Configuración de principal")
    expect(config.locator("[data-file='ari.conf'] pre")).to_contain_text("<ari-password>")
    expect(config.locator("[data-file='pjsip.conf'] pre")).to_contain_text("<secret-1001>")
    with page.expect_download() as download:
        config.get_by_test_id("download-extensions.conf").click()
    assert download.value.suggested_filename == "extensions.conf"

    # The phones, as the PBX says.
    phone = page.get_by_test_id("phones").locator("tr", has_text="1001")
    expect(phone).to_contain_text("Tomás Teléfono")
    expect(phone.get_by_test_id("phone-state")).to_have_attribute("data-state", "online")
    expect(phone).to_contain_text("Conectado")

    # How long recordings are kept.
    retention = page.get_by_test_id("retention-form")
    expect(retention.get_by_test_id("retention-days")).to_have_value("90")
    retention.get_by_test_id("retention-days").fill("30")
    retention.locator("button[type=submit]").click()
    expect(retention).to_contain_text("Las grabaciones se conservan 30 días.")

    # Rename, keeping the password (left empty), then delete.
    row.get_by_test_id("edit").click()
    expect(form.get_by_test_id("pbx-name")).to_have_value("principal")
    form.get_by_test_id("pbx-name").fill("central")
    form.locator("button[type=submit]").click()
    renamed = pbxs.locator("tr", has_text="central")
    expect(renamed).to_be_visible()
    renamed.get_by_test_id("test").click()
    expect(check).to_contain_text("central responde")  # the stored password still works
    renamed.get_by_test_id("delete").click()
    expect(pbxs).to_contain_text("Aún no hay centrales")
    assert errors == []


def test_an_admin_builds_a_menu_that_forwards_to_a_number_and_takes_voicemail(
    live_server: LiveServer, phones: Phones, new_context: NewContext, sign_in: SignIn
) -> None:
    async def add_queue(db: Database) -> uuid.UUID:
        async with db.session(Scope.tenant(phones.tenant_id)) as session:
            queue = Queue(name="Buzones", channels=["voice"], created_at=now(session))
            session.add(queue)
            await session.flush()
            return queue.id

    queue_id = live_server.run(add_queue)
    page = new_context().new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("dialog", lambda dialog: dialog.accept())
    sign_in(page, live_server.logins["admin"])
    page.goto("/admin/voice")
    voice = page.locator("[data-admin=voice]")
    expect(voice).to_have_attribute("data-ready", "true")

    form = page.get_by_test_id("ivr-form")
    form.get_by_test_id("ivr-name").fill("Recepción")
    form.get_by_test_id("ivr-prompt").fill("sound:custom/welcome")
    form.get_by_test_id("ivr-add-option").click()
    option = form.get_by_test_id("ivr-options").locator("tr[data-option]")
    expect(option).to_have_count(1)
    option.get_by_test_id("ivr-action").select_option(label="Desviar a un número")
    number = option.get_by_test_id("ivr-option-number")
    expect(number).to_be_visible()
    expect(option.get_by_test_id("ivr-option-target")).to_have_count(0)
    number.fill("12345")
    timeout = form.get_by_test_id("ivr-timeout-action")
    timeout.select_option(label="Buzón de voz")
    target = form.get_by_test_id("ivr-timeout-target")
    expect(target.locator("option").first).to_have_text("La cola del número")
    target.select_option(label="Buzones")

    # a number that is not one is refused on its field, saying how to write it
    form.locator("button[type=submit]").click()
    message = form.locator("[data-form-message]")
    expect(message).to_contain_text("Escriba un número de teléfono con su clave lada")
    expect(number).to_have_attribute("aria-invalid", "true")
    number.fill("55 1234 5678")
    form.locator("button[type=submit]").click()
    expect(message).to_contain_text("Recepción")
    menus = page.get_by_test_id("ivr-menus")
    row = menus.locator("tr[data-menu='Recepción']")
    expect(row.locator("li[data-key='1']")).to_have_text("1 → Desviar a +525512345678")
    expect(row).to_contain_text("Después: Buzón de voz de Buzones")

    async def stored(db: Database) -> tuple[Any, Any]:
        async with db.session(Scope.tenant(phones.tenant_id), read_only=True) as session:
            menu = await session.scalar(select(IvrMenu).where(IvrMenu.name == "Recepción"))
            assert menu is not None
            return menu.options, menu.timeout_action

    assert live_server.run(stored) == (
        {"1": {"action": "number", "number": "+525512345678"}},
        {"action": "voicemail", "queue_id": str(queue_id)},
    )

    # after a reload the list and the editor show them as saved
    page.reload()
    expect(voice).to_have_attribute("data-ready", "true")
    expect(row.locator("li[data-key='1']")).to_have_text("1 → Desviar a +525512345678")
    expect(row).to_contain_text("Después: Buzón de voz de Buzones")
    row.get_by_test_id("edit").click()
    expect(form.get_by_test_id("ivr-name")).to_have_value("Recepción")
    expect(option.get_by_test_id("ivr-action")).to_have_value("number")
    expect(option.get_by_test_id("ivr-option-number")).to_have_value("+525512345678")
    expect(timeout).to_have_value("voicemail")
    expect(target).to_have_value(str(queue_id))

    # the number's queue for voicemail, kept on a second save
    target.select_option(label="La cola del número")
    form.locator("button[type=submit]").click()
    expect(row).to_contain_text("Después: Buzón de voz de la cola del número")
    assert live_server.run(stored)[1] == {"action": "voicemail"}
    row.get_by_test_id("delete").click()
    expect(menus.locator("tr[data-menu='Recepción']")).to_have_count(0)
    assert errors == []


def test_the_desktop_header_says_whether_the_agents_phone_is_connected(
    live_server: LiveServer, phones: Phones, new_context: NewContext, sign_in: SignIn
) -> None:
    async def add_pbx(db: Database) -> None:
        async with db.session(Scope.tenant(phones.tenant_id)) as session:
            await service.add_pbx(
                session,
                Actor.system(),
                service.PbxCreate(
                    name="telefonos",
                    ari_url=phones.ari.url,
                    ari_username="atiende",
                    ari_password=PASSWORD,
                ),
                settings=live_server.settings,
            )

    live_server.run(add_pbx)
    page = new_context().new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    sign_in(page, phones.agent)
    page.goto("/desktop")
    indicator = page.get_by_test_id("phone-state")
    expect(indicator).to_be_visible()
    expect(indicator).to_have_attribute("data-state", "online")
    expect(indicator).to_have_text("Teléfono conectado")
    expect(indicator).to_have_attribute("title", "Su teléfono, extensión 1001")

    phones.ari.endpoints["1001"] = "offline"  # the phone lost its registration
    page.reload()
    expect(indicator).to_have_attribute("data-state", "offline")
    expect(indicator).to_have_text("Teléfono desconectado")
    assert errors == []
