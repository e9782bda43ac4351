"""The channels page and the desktop's WhatsApp templates in a real browser.

An admin connects a Telegram bot and an API endpoint through the page, registers the bot's
webhook with a local Bot API, edits a channel without retyping its secrets, switches one off
and deletes another; the server's errors show next to the form. A WhatsApp number syncs its
templates from a local Graph API and the webhook inspector shows what arrived, rejected
requests included; supervisors only look. On the desktop, a reply to a WhatsApp customer
silent for more than 24 hours turns the composer into a picker of approved templates.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import httpx
import pytest
from playwright.sync_api import Dialog, Page, expect
from sqlalchemy import select, update

from atiende.attachments.storage import attachment_store
from atiende.channels import service as channels
from atiende.channels.adapters import adapter_for
from atiende.channels.base import ChannelKind
from atiende.channels.models import Delivery, DeliveryStatus, InboundEvent
from atiende.contacts import service as contacts
from atiende.contacts.models import IdentityKind
from atiende.conversations import service as conversations
from atiende.conversations.models import (
    Channel,
    Interaction,
    InteractionStatus,
    Message,
    MessageDirection,
    MessageStatus,
)
from atiende.core.db import Database, Scope, now
from atiende.identity import service as identity
from atiende.identity.actor import Actor
from atiende.identity.models import Role, User
from atiende.identity.schemas import UserCreate
from atiende.routing import service as routing
from atiende.routing.models import Queue, QueueMember
from atiende.tenancy.models import Tenant
from factories import LiveServer as FakeServer
from fakes import whatsapp as meta
from fakes.telegram import FakeTelegram, fake_telegram

if TYPE_CHECKING:  # only for annotations: two conftest modules make `import conftest` ambiguous
    from conftest import LiveServer, NewContext

    SignIn = Callable[[Page, Any], None]

pytestmark = pytest.mark.browser
PASSWORD = "una-clave-de-prueba"
BOT_TOKEN = "123456789:AAEhBOweik6ad9r_QXMENQjcrGbqCr4K-Ec"
ORDER_SHIPPED = "Hola {{1}}, tu pedido ya va en camino. Responde a este mensaje si necesitas algo."
T = TypeVar("T")


@dataclass(frozen=True)
class Person:
    """Who signs in (the fields the ``sign_in`` fixture reads)."""

    email: str
    name: str
    role: Role
    password: str = PASSWORD


def _watched(page: Page) -> list[str]:
    """Collects script errors, and accepts the page's confirm() questions."""
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))

    def accept(dialog: Dialog) -> None:
        dialog.accept()

    page.on("dialog", accept)
    return errors


def _open(page: Page, path: str = "/admin/channels") -> None:
    page.goto(path)
    expect(page.locator("[data-page=admin]")).to_have_attribute("data-ready", "true")


def _screenshot(page: Page, name: str) -> None:
    """Pictures for the docs, only when asked for (ATIENDE_SCREENSHOTS=<folder>)."""
    folder = os.environ.get("ATIENDE_SCREENSHOTS")
    if folder:
        page.evaluate("window.scrollTo(0, 0)")
        page.screenshot(path=str(Path(folder) / name), full_page=True)


@contextlib.contextmanager
def _served(live: LiveServer, fake: AbstractAsyncContextManager[T]) -> Iterator[T]:
    """A provider's fake API running on the app server's own loop, for the test's length."""

    async def start(db: Database) -> T:
        return await fake.__aenter__()

    async def stop(db: Database) -> None:
        await fake.__aexit__(None, None, None)

    value = live.run(start)
    try:
        yield value
    finally:
        live.run(stop)


@asynccontextmanager
async def _fake_graph(templates: list[dict[str, Any]]) -> AsyncIterator[meta.FakeGraph]:
    graph = meta.FakeGraph()
    graph.template_pages = [templates]
    async with FakeServer(graph.app) as server:
        graph.base = f"{server.http}/{meta.VERSION}"
        yield graph


async def _tenant(db: Database) -> uuid.UUID:
    async with db.session(Scope.system()) as session:
        tenant = await session.scalar(select(Tenant).where(Tenant.slug == "navegador"))
        assert tenant is not None
        return tenant.id


def _queue(live: LiveServer, name: str, *kinds: str) -> uuid.UUID:
    async def seed(db: Database) -> uuid.UUID:
        async with db.session(Scope.tenant(await _tenant(db))) as session:
            queue = Queue(name=name, channels=list(kinds), created_at=now(session))
            session.add(queue)
            await session.flush()
            return queue.id

    return live.run(seed)


def _add_user(live: LiveServer, person: Person) -> None:
    async def seed(db: Database) -> None:
        tenant_id = await _tenant(db)
        async with db.session(Scope.system()) as session:
            await identity.create_user(
                session,
                Actor.system(),
                UserCreate(
                    email=person.email,
                    name=person.name,
                    role=person.role,
                    password=person.password,
                    tenant_id=tenant_id,
                ),
            )

    live.run(seed)


def _accounts(page: Page) -> dict[str, dict[str, Any]]:
    response = page.request.get("/api/v1/channels")
    assert response.ok
    return {account["name"]: account for account in response.json()}


def _template(name: str, status: str, body: str, **extra: Any) -> dict[str, Any]:
    """A template as Meta lists it."""
    return {
        "name": name,
        "language": extra.pop("language", "es_MX"),
        "status": status,
        "category": "UTILITY",
        "id": extra.pop("id", name),
        "components": [{"type": "BODY", "text": body}],
        **extra,
    }


# --- the admin page -----------------------------------------------------------------------


def test_admin_adds_edits_switches_off_and_deletes_channels(
    live_server: LiveServer, new_context: NewContext, sign_in: SignIn
) -> None:
    _queue(live_server, "Mensajería", "telegram", "api")
    web_only = _queue(live_server, "Solo web", "webchat")
    page = new_context().new_page()
    errors = _watched(page)
    sign_in(page, live_server.logins["admin"])
    _open(page)
    expect(page.locator("#sidenav")).to_contain_text("Canales")
    expect(page.get_by_test_id("channels")).to_contain_text("Aún no hay canales")
    form = page.get_by_test_id("channel-form")
    kind = form.locator("select[name=kind]")
    queue = form.locator("select[name=queue_id]")

    with _served(live_server, fake_telegram(BOT_TOKEN)) as telegram:
        # A Telegram bot: only the queues serving Telegram are offered.
        kind.select_option("telegram")
        expect(queue.locator("option")).to_have_text(["Elige una cola", "Mensajería"])
        form.locator("input[name=name]").fill("Bot de ventas")
        queue.select_option(label="Mensajería")
        form.locator("input[name=bot_username]").fill("ventas_bot")
        form.locator("input[name=api_base]").fill(telegram.base)
        form.locator("input[name=bot_token]").fill(BOT_TOKEN)
        expect(form.locator("input[name=bot_token]")).to_have_attribute("type", "password")
        form.locator("button[type=submit]").click()
        expect(form.get_by_test_id("message-success")).to_contain_text("Bot de ventas")
        bot = page.locator("[data-channel='Bot de ventas']")
        key = _accounts(page)["Bot de ventas"]["webhook_url"].rsplit("/", 1)[1]
        public = live_server.settings.public_url.rstrip("/")
        expect(bot.locator("[data-webhook-url]")).to_have_text(f"{public}/webhooks/telegram/{key}")
        expect(bot.get_by_test_id("queue")).to_have_text("Cola: Mensajería")
        # The bot token as typed, the webhook secret made by Atiende; neither shown.
        expect(bot.locator("[data-secret=bot_token]")).to_have_text("Token del bot ✓")
        expect(bot.locator("[data-secret=webhook_secret]")).to_have_attribute("data-set", "true")
        assert BOT_TOKEN not in page.content()

        # Registering the webhook: Telegram wants HTTPS, and the page says what it answered.
        bot.get_by_test_id("register-webhook").click()
        refusal = page.locator("[data-list-message]").get_by_test_id("message-error")
        expect(refusal).to_contain_text("El proveedor lo rechazó:")
        expect(refusal).to_contain_text("An HTTPS URL must be provided for webhook")
        _register_over_https(live_server, page, telegram, key)

    # An API endpoint.
    kind.select_option("api")
    form.locator("input[name=name]").fill("ERP")
    queue.select_option(label="Mensajería")
    form.locator("input[name=outbound_url]").fill("https://erp.example.com/atiende")
    form.locator("input[name=inbound_token]").fill("token-de-entrada-123")
    form.locator("input[name=signing_secret]").fill("secreto-de-firma-456")
    form.locator("button[type=submit]").click()
    erp = page.locator("[data-channel='ERP']")
    expect(erp).to_contain_text("/webhooks/api/")
    expect(erp.locator("[data-secret=inbound_token]")).to_have_text("Token de entrada ✓")
    expect(erp.locator("[data-secret=signing_secret]")).to_have_text("Secreto de firma ✓")
    stored = _accounts(page)["ERP"]
    assert stored["secrets_set"] == ["inbound_token", "signing_secret"]
    assert stored["settings"] == {
        "outbound_url": "https://erp.example.com/atiende",
        "allow_private_network": False,
    }
    listing = page.request.get("/api/v1/channels").text()
    assert "token-de-entrada-123" not in listing
    assert "secreto-de-firma-456" not in listing

    # The server's errors, next to the form: a taken name, a queue for another channel.
    kind.select_option("api")
    form.locator("input[name=name]").fill("ERP")
    queue.select_option(label="Mensajería")
    form.locator("button[type=submit]").click()
    expect(form.get_by_test_id("message-error")).to_have_text("Ya existe un canal con este nombre.")
    form.locator("input[name=name]").fill("Otro ERP")
    queue.evaluate(
        "(select, id) => { select.append(new Option('Solo web', id)); select.value = id; }",
        str(web_only),
    )
    form.locator("button[type=submit]").click()
    expect(form.locator("[data-error-for=queue_id]")).to_have_text(
        "Esa cola no atiende este canal: elija otra o agregue el canal a la cola."
    )
    expect(page.locator("[data-channel='Otro ERP']")).to_have_count(0)

    # Edit the name, secrets left empty: they stay as they were.
    erp.get_by_test_id("edit").click()
    expect(form.locator("input[name=name]")).to_have_value("ERP")
    expect(kind).to_be_disabled()
    expect(form.locator("input[name=outbound_url]")).to_have_value(
        "https://erp.example.com/atiende"
    )
    secret = form.locator("input[name=inbound_token]")
    expect(secret).to_have_value("")
    expect(secret).to_have_attribute("placeholder", "Guardado: déjelo vacío para conservarlo")
    form.locator("input[name=name]").fill("ERP central")
    form.locator("button[type=submit]").click()
    expect(form.get_by_test_id("message-success")).to_contain_text("ERP central")
    central = page.locator("[data-channel='ERP central']")
    expect(central).to_be_visible()
    expect(page.locator("[data-channel='ERP']")).to_have_count(0)
    after = _accounts(page)["ERP central"]
    assert after["id"] == stored["id"]
    assert after["secrets_set"] == stored["secrets_set"]
    assert after["settings"] == stored["settings"]

    # Switch it off, and on again.
    central.get_by_test_id("active").uncheck()
    expect(central.get_by_test_id("state")).to_have_text("Inactivo")
    assert _accounts(page)["ERP central"]["is_active"] is False
    central.get_by_test_id("active").check()
    expect(central.get_by_test_id("state")).to_have_text("Activo")
    assert _accounts(page)["ERP central"]["is_active"] is True

    # Delete the bot (the confirmation is accepted).
    bot.get_by_test_id("delete").click()
    expect(bot).to_have_count(0)
    expect(page.locator("[data-list-message]")).to_contain_text("Bot de ventas")
    assert set(_accounts(page)) == {"ERP central"}
    assert errors == []


def _register_over_https(live: LiveServer, page: Page, telegram: FakeTelegram, key: str) -> None:
    """Behind its public HTTPS address the bot's webhook registers, with its secret."""
    before = live.settings.public_url
    live.settings.public_url = "https://atiende.example.com"
    try:
        _open(page)
        bot = page.locator("[data-channel='Bot de ventas']")
        url = f"https://atiende.example.com/webhooks/telegram/{key}"
        expect(bot.locator("[data-webhook-url]")).to_have_text(url)
        bot.get_by_test_id("register-webhook").click()
        expect(page.locator("[data-list-message]").get_by_test_id("message-success")).to_have_text(
            "Telegram ya envía los mensajes de Bot de ventas a Atiende."
        )
        calls = telegram.calls("setWebhook")
        assert calls[-1].json is not None
        assert calls[-1].json["url"] == url
        assert len(calls[-1].json["secret_token"]) >= 32
    finally:
        live.settings.public_url = before
    _open(page)


def test_the_form_asks_for_what_each_channel_needs(
    live_server: LiveServer, new_context: NewContext, sign_in: SignIn
) -> None:
    page = new_context().new_page()
    errors = _watched(page)
    sign_in(page, live_server.logins["admin"])
    _open(page)
    form = page.get_by_test_id("channel-form")
    for kind in ChannelKind:
        adapter = adapter_for(kind)
        form.locator("select[name=kind]").select_option(kind.value)
        settings = form.locator("[data-setting]")
        expect(settings).to_have_count(len(adapter.setting_fields))
        names = settings.evaluate_all("inputs => inputs.map(i => i.dataset.setting)")
        assert sorted(names) == sorted(adapter.setting_fields), kind
        secrets = form.locator("[data-secret]")
        expect(secrets).to_have_count(len(adapter.secret_fields))
        names = secrets.evaluate_all("inputs => inputs.map(i => i.dataset.secret)")
        assert sorted(names) == sorted(adapter.secret_fields), kind
        assert set(secrets.evaluate_all("inputs => inputs.map(i => i.type)")) == {"password"}
    assert errors == []


def test_whatsapp_templates_and_the_webhook_inspector(
    live_server: LiveServer, new_context: NewContext, sign_in: SignIn
) -> None:
    _queue(live_server, "Ventas WhatsApp", "whatsapp")
    page = new_context().new_page()
    errors = _watched(page)
    sign_in(page, live_server.logins["admin"])
    _open(page)
    form = page.get_by_test_id("channel-form")
    templates = [
        _template("seguimiento_pedido", "APPROVED", ORDER_SHIPPED),
        _template("promo_navidad", "PENDING", "¡Felices fiestas, {{1}}!"),
    ]

    with _served(live_server, _fake_graph(templates)) as graph:
        form.locator("select[name=kind]").select_option("whatsapp")
        form.locator("input[name=name]").fill("WhatsApp Tienda")
        form.locator("select[name=queue_id]").select_option(label="Ventas WhatsApp")
        form.locator("input[name=phone_number_id]").fill(meta.PHONE_NUMBER_ID)
        form.locator("input[name=waba_id]").fill(meta.WABA_ID)
        form.locator("input[name=api_base]").fill(graph.base)
        form.locator("input[name=rate_per_second]").fill("20")
        form.locator("input[name=access_token]").fill(meta.ACCESS_TOKEN)
        form.locator("input[name=app_secret]").fill(meta.APP_SECRET)
        form.locator("input[name=verify_token]").fill(meta.VERIFY_TOKEN)
        form.locator("button[type=submit]").click()
        card = page.locator("[data-channel='WhatsApp Tienda']")
        for name in ("access_token", "app_secret", "verify_token"):
            expect(card.locator(f"[data-secret={name}]")).to_have_attribute("data-set", "true")
        assert _accounts(page)["WhatsApp Tienda"]["settings"]["rate_per_second"] == 20

        # Sync the templates from the (local) Graph API; the list shows them all.
        card.get_by_test_id("sync-templates").click()
        expect(page.locator("[data-list-message]")).to_contain_text(
            "2 plantillas sincronizadas desde WhatsApp."
        )
        table = page.get_by_test_id("templates")
        approved = table.locator("[data-template='seguimiento_pedido:es_MX']")
        expect(approved).to_contain_text("APPROVED")
        expect(approved).to_contain_text("tu pedido ya va en camino")
        expect(table.locator("[data-template='promo_navidad:es_MX']")).to_contain_text("PENDING")
        assert graph.calls("/message_templates")

    # Meta posts a message; then something that is not JSON, and a forged request.
    account = _accounts(page)["WhatsApp Tienda"]
    hook = f"{live_server.url}/webhooks/whatsapp/{account['webhook_url'].rsplit('/', 1)[1]}"
    good = json.dumps(meta.WEBHOOK_TEXT_MESSAGE).encode()
    for body, signature, status in (
        (good, meta.sign(good), 200),
        (b"not json at all", meta.sign(b"not json at all"), 400),  # kept for inspection
        (b'{"forged": true}', meta.sign(b'{"forged": true}', "wrong-secret"), 401),
    ):
        answer = page.request.post(
            hook,
            data=body,
            headers={"Content-Type": "application/json", "X-Hub-Signature-256": signature},
        )
        assert answer.status == status, answer.text()
    _process_webhooks(live_server, uuid.UUID(account["id"]))

    # The inspector: both stored requests, the rejected one with its reason and raw body.
    card.get_by_test_id("show-events").click()
    events = page.get_by_test_id("events")
    expect(page.get_by_test_id("events-panel")).to_contain_text(
        "Webhooks recientes de WhatsApp Tienda"
    )
    expect(events.locator("[data-event]")).to_have_count(2)
    expect(events.locator("[data-status=processed]")).to_contain_text("Procesado")
    _screenshot(page, "channels-admin.png")
    page.get_by_test_id("events-status").select_option("rejected")
    expect(events.locator("[data-event]")).to_have_count(1)
    rejected = events.locator("[data-status=rejected]")
    expect(rejected.get_by_test_id("event-error")).to_have_text("The body is not JSON.")
    raw = rejected.get_by_test_id("raw-body")
    expect(raw).to_be_hidden()
    rejected.locator("summary").click()
    expect(raw).to_have_text("not json at all")
    page.get_by_test_id("events-status").select_option("failed")
    expect(events).to_contain_text("No se han recibido webhooks con este estado.")
    assert errors == []

    # A supervisor looks: no changes, no provider actions, the inspector works.
    supervisor = Person("sergio@channels.example.com", "Sergio Supervisor", Role.supervisor)
    _add_user(live_server, supervisor)
    look = new_context().new_page()
    look_errors = _watched(look)
    sign_in(look, supervisor)
    _open(look)
    expect(look.get_by_test_id("read-only")).to_be_visible()
    card = look.locator("[data-channel='WhatsApp Tienda']")
    expect(card.get_by_test_id("active")).to_be_disabled()
    for action in ("delete", "sync-templates", "register-webhook"):
        expect(look.get_by_test_id(action)).to_have_count(0)
    expect(look.get_by_test_id("channel-form").locator("button[type=submit]")).to_have_count(0)
    card.get_by_test_id("edit").click()
    name = look.get_by_test_id("channel-form").locator("input[name=name]")
    expect(name).to_have_value("WhatsApp Tienda")
    expect(name).to_be_disabled()
    card.get_by_test_id("show-templates").click()
    expect(look.get_by_test_id("templates").locator("[data-template]")).to_have_count(2)
    card.get_by_test_id("show-events").click()
    expect(look.get_by_test_id("events").locator("[data-event]")).to_have_count(2)
    assert look_errors == []


def _process_webhooks(live: LiveServer, account_id: uuid.UUID) -> None:
    """What the channel's job does with each stored webhook (no worker runs here)."""

    async def process(db: Database) -> None:
        tenant_id = await _tenant(db)
        async with db.session(Scope.tenant(tenant_id)) as session:
            ids = list(
                await session.scalars(
                    select(InboundEvent.id).where(InboundEvent.account_id == account_id)
                )
            )
        assert len(ids) == 2
        async with httpx.AsyncClient() as http:
            for event_id in ids:
                async with db.session(Scope.tenant(tenant_id)) as session:
                    await channels.process(
                        session,
                        event_id,
                        settings=live.settings,
                        blobs=attachment_store(live.settings),
                        http=http,
                    )

    live.run(process)


# --- the desktop: WhatsApp after 24 hours -------------------------------------------------


@dataclass(frozen=True)
class Silent:
    tenant_id: uuid.UUID
    interaction_id: uuid.UUID


def _silent_whatsapp_customer(live: LiveServer) -> Silent:
    """A WhatsApp account with templates, and a customer of it, assigned to the seeded agent,
    who last wrote 25 hours ago."""
    templates = [
        {
            "name": "seguimiento_pedido",
            "language": "es_MX",
            "status": "APPROVED",
            "category": "UTILITY",
            "parameter_format": "POSITIONAL",
            "body": ORDER_SHIPPED,
            "parameters": ["1"],
        },
        {"name": "promo_navidad", "language": "es_MX", "status": "PENDING", "body": "{{1}}"},
        {
            "name": "reserva",
            "language": "es_MX",
            "status": "APPROVED",
            "parameter_format": "NAMED",
            "body": "Mesa para {{personas}}",
            "parameters": ["personas"],
        },
    ]
    agent_email = live.logins["agent"].email
    admin_email = live.logins["admin"].email

    async def seed(db: Database) -> Silent:
        tenant_id = await _tenant(db)
        async with db.session(Scope.tenant(tenant_id)) as session:
            users = {u.email: u for u in await session.scalars(select(User))}
            agent, admin = users[agent_email], users[admin_email]
            queue = Queue(
                name="Pedidos WhatsApp",
                channels=["whatsapp"],
                auto_accept=True,
                offer_timeout_seconds=600,
                created_at=now(session),
            )
            session.add(queue)
            await session.flush()
            await routing.ensure_agent(session, agent.id)
            session.add(QueueMember(queue_id=queue.id, agent_id=agent.id))
            account = await channels.create_account(
                session,
                identity.actor_for(admin),
                channels.AccountCreate(
                    kind=ChannelKind.whatsapp,
                    name="WhatsApp Pedidos",
                    queue_id=queue.id,
                    settings={"phone_number_id": meta.PHONE_NUMBER_ID, "waba_id": meta.WABA_ID},
                    secrets={"access_token": meta.ACCESS_TOKEN, "app_secret": meta.APP_SECRET},
                ),
                settings=live.settings,
            )
            account.settings = {**account.settings, "templates": templates}
            await routing.set_presence(session, identity.actor_for(agent), agent.id, "available")
            contact = await contacts.find_or_create_by_identity(
                session, IdentityKind.whatsapp, "5215512345678", name="Rosa Cliente"
            )
            interaction = await conversations.open_interaction(
                session, channel=Channel.whatsapp, contact_id=contact.id, source_id=account.id
            )
            await conversations.add_message(
                session,
                interaction,
                direction=MessageDirection.inbound,
                author_kind="contact",
                body="¿Ya salió mi pedido?",
            )
            await routing.enqueue(session, interaction, queue.id)
        await routing.settle()
        async with db.session(Scope.tenant(tenant_id)) as session:
            assigned = await session.get(Interaction, interaction.id)
            assert assigned is not None
            assert assigned.status is InteractionStatus.assigned
            assert assigned.agent_id == agent.id
            await session.execute(
                update(Message)
                .where(Message.interaction_id == interaction.id)
                .values(created_at=now(session) - timedelta(hours=25))
            )
        return Silent(tenant_id, interaction.id)

    return live.run(seed)


def _customer_writes(live: LiveServer, silent: Silent, text: str) -> None:
    async def write(db: Database) -> None:
        async with db.session(Scope.tenant(silent.tenant_id)) as session:
            interaction = await conversations.get_interaction(session, silent.interaction_id)
            await conversations.add_message(
                session,
                interaction,
                direction=MessageDirection.inbound,
                author_kind="contact",
                body=text,
            )

    live.run(write)


def _delivery_fails(live: LiveServer, silent: Silent, message_id: str, reason: str) -> None:
    """The provider refuses the message for good, as the outbox records it."""

    async def fail(db: Database) -> None:
        async with db.session(Scope.tenant(silent.tenant_id)) as session:
            message = await session.get(Message, uuid.UUID(message_id))
            assert message is not None
            await conversations.set_message_status(
                session, message, MessageStatus.failed, error=reason
            )

    live.run(fail)


def _deliveries(live: LiveServer, silent: Silent) -> list[tuple[str, DeliveryStatus, Any]]:
    async def read(db: Database) -> list[tuple[str, DeliveryStatus, Any]]:
        async with db.session(Scope.tenant(silent.tenant_id)) as session:
            rows = await session.execute(
                select(Message.body, Delivery.status, Delivery.template)
                .join(Message, Message.id == Delivery.message_id)
                .where(Message.interaction_id == silent.interaction_id)
                .order_by(Delivery.created_at)
            )
            return [(body, status, template) for body, status, template in rows]

    return live.run(read)


def test_after_24_hours_the_agent_sends_an_approved_template(
    live_server: LiveServer, new_context: NewContext, sign_in: SignIn
) -> None:
    silent = _silent_whatsapp_customer(live_server)
    page = new_context().new_page()
    errors = _watched(page)
    sign_in(page, live_server.logins["agent"])
    refused = page.goto("/admin/channels")  # agents do not configure channels
    assert refused is not None
    assert refused.status == 403
    expect(page.locator("#sidenav")).not_to_contain_text("Canales")
    page.goto("/desktop")
    status = page.get_by_test_id("realtime-status")
    expect(status).to_have_attribute("data-sync", "ready")
    page.get_by_test_id("conversations").locator(
        f"[data-interaction-id='{silent.interaction_id}']"
    ).click()
    thread = page.get_by_test_id("messages")
    expect(thread.locator("[data-direction=inbound]")).to_have_text(
        re.compile("¿Ya salió mi pedido?")
    )

    # A plain reply is refused by WhatsApp's rule: the composer becomes the template picker.
    composer = page.get_by_test_id("composer-input")
    composer.fill("Hola Rosa, ya lo reviso.")
    composer.press("Enter")
    picker = page.get_by_test_id("template-picker")
    expect(picker).to_be_visible()
    expect(page.get_by_test_id("window-closed")).to_have_text(
        "Han pasado más de 24 horas desde que el cliente escribió: solo plantillas aprobadas"
    )
    expect(page.get_by_test_id("composer")).to_be_hidden()
    expect(thread.locator("[data-direction=outbound]")).to_have_count(0)

    # Only the approved template with numbered values is offered; its value fills the preview.
    expect(picker.get_by_test_id("template-select").locator("option")).to_have_text(
        ["seguimiento_pedido (es_MX)"]
    )
    offered = page.request.get(f"/api/v1/interactions/{silent.interaction_id}/templates").json()
    assert offered == [
        {
            "name": "seguimiento_pedido",
            "language": "es_MX",
            "body": ORDER_SHIPPED,
            "parameter_count": 1,
        }
    ]
    preview = picker.get_by_test_id("template-preview")
    expect(preview).to_have_text(ORDER_SHIPPED)
    expect(preview.locator("mark")).to_have_text("{{1}}")
    picker.get_by_test_id("send-template").click()  # a value is missing: nothing is sent
    expect(picker.get_by_test_id("message-error")).to_have_text(
        "Completa todos los valores de la plantilla."
    )
    expect(thread.locator("[data-direction=outbound]")).to_have_count(0)
    picker.get_by_test_id("template-param").fill("Rosa")
    rendered = ORDER_SHIPPED.replace("{{1}}", "Rosa")
    expect(preview).to_have_text(rendered)
    expect(preview.locator("mark")).to_have_count(0)
    picker.get_by_test_id("send-template").click()

    # The message shows in the thread with the text the customer will read, waiting to go.
    sent = thread.locator("[data-direction=outbound]")
    expect(sent).to_have_count(1)
    expect(sent.locator(".msg-body")).to_have_text(rendered)
    expect(sent).not_to_have_class(re.compile(r"\bsending\b"))
    expect(sent.get_by_test_id("message-status")).to_have_attribute("data-status", "pending")
    stored = page.request.get(f"/api/v1/interactions/{silent.interaction_id}/messages").json()
    replies = [m for m in stored if m["direction"] == "outbound"]
    assert [(m["body"], m["status"]) for m in replies] == [(rendered, "pending")]
    template = {"name": "seguimiento_pedido", "language": "es_MX", "parameters": ["Rosa"]}
    assert _deliveries(live_server, silent) == [(rendered, DeliveryStatus.queued, template)]

    # WhatsApp refuses it later: the reason shows on the message.
    reason = "131026: Message undeliverable"
    _delivery_fails(live_server, silent, replies[0]["id"], reason)
    expect(sent.get_by_test_id("message-status")).to_have_attribute("data-status", "failed")
    expect(sent.get_by_test_id("delivery-error")).to_have_text(reason)

    # The customer writes again: the normal composer is back, with the unsent draft.
    _customer_writes(live_server, silent, "Sigo esperando")
    expect(picker).to_be_hidden()
    expect(page.get_by_test_id("composer")).to_be_visible()
    expect(composer).to_have_value("Hola Rosa, ya lo reviso.")
    composer.press("Enter")
    expect(sent).to_have_count(2)
    expect(sent.last).to_contain_text("Hola Rosa, ya lo reviso.")
    expect(sent.last.get_by_test_id("message-status")).to_have_attribute("data-status", "pending")
    assert [(body, template) for body, _, template in _deliveries(live_server, silent)] == [
        (rendered, template),
        ("Hola Rosa, ya lo reviso.", None),
    ]
    assert errors == []
