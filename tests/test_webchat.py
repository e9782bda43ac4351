"""Webchat: widget administration, the public visitor API and the visitors' websocket."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
import websockets
from fastapi import FastAPI
from sqlalchemy import func, select
from websockets.exceptions import InvalidStatus

from atiende.contacts.models import Contact, ContactIdentity, IdentityKind
from atiende.conversations import service as conversations
from atiende.conversations.events import Typing
from atiende.conversations.models import (
    Interaction,
    InteractionStatus,
    Message,
    MessageDirection,
)
from atiende.core.clock import TestClock
from atiende.core.config import Settings
from atiende.core.db import Database, Scope, now
from atiende.core.events import EventRecord, emit
from atiende.core.ids import token_digest
from atiende.identity.models import Role, User
from atiende.jobs.models import Job, JobStatus
from atiende.jobs.service import JobRunner
from atiende.realtime import service as realtime
from atiende.routing import service as routing
from atiende.routing.models import Offer, OfferStatus, Queue, Schedule
from atiende.tasks import build_registry
from atiende.tenancy.models import Tenant
from atiende.web.app import create_app
from atiende.webchat import service as webchat
from atiende.webchat.models import Visitor
from factories import Caller, LiveServer, api_client, caller, make_tenant, make_user
from routing_factories import counters_match_truth, make_agent
from tenancy_helpers import assert_tenant_isolation

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
SHOP = "https://shop.example.com"


# --- helpers --------------------------------------------------------------------------------


async def make_queue(
    db: Database, tenant: Tenant, *, channels: tuple[str, ...] = ("webchat",), **fields: Any
) -> Queue:
    async with db.session(Scope.tenant(tenant.id)) as session:
        queue = Queue(
            name=fields.pop("name", f"Ventas {uuid.uuid4().hex[:6]}"),
            channels=list(channels),
            created_at=now(session),
            **fields,
        )
        session.add(queue)
    return queue


async def closed_schedule(db: Database, tenant: Tenant) -> Schedule:
    """A schedule with no opening hours at all."""
    async with db.session(Scope.tenant(tenant.id)) as session:
        schedule = Schedule(
            name="Nunca", time_zone="America/Mexico_City", weekly={}, created_at=now(session)
        )
        session.add(schedule)
    return schedule


@dataclass
class Chat:
    """A tenant with an admin, a webchat queue and one widget, plus a visitor client."""

    app: FastAPI
    db: Database
    tenant: Tenant
    admin: Caller
    queue: Queue
    widget: dict[str, Any]
    public: httpx.AsyncClient

    @property
    def key(self) -> str:
        return str(self.widget["key"])

    def path(self, rest: str, key: str | None = None) -> str:
        return f"/webchat/v1/{key or self.key}/{rest}"

    async def visitor(self, **prechat: Any) -> str:
        response = await self.public.post(self.path("session"), json=prechat)
        assert response.status_code == 201, response.text
        return str(response.json()["token"])

    async def send(self, token: str, body: str, client_id: str | None = None) -> httpx.Response:
        return await self.public.post(
            self.path("messages"),
            json={"body": body, "client_id": client_id or str(uuid.uuid4())},
            headers=bearer(token),
        )

    async def history(self, token: str) -> dict[str, Any]:
        response = await self.public.get(self.path("messages"), headers=bearer(token))
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def make_chat(app: FastAPI, db: Database, **widget: Any) -> Chat:
    tenant = await make_tenant(db)
    admin = await caller(app, tenant)
    queue = await make_queue(db, tenant)
    created = await admin.client.post(
        "/api/v1/webchat/widgets", json={"name": "Tienda", "queue_id": str(queue.id), **widget}
    )
    assert created.status_code == 201, created.text
    return Chat(app, db, tenant, admin, queue, created.json(), api_client(app))


@pytest.fixture
async def chat(app: FastAPI, db: Database) -> Chat:
    return await make_chat(app, db)


async def only_interaction(db: Database, tenant: Tenant) -> Interaction:
    async with db.session(Scope.tenant(tenant.id), read_only=True) as session:
        rows = (await session.scalars(select(Interaction))).all()
    assert len(rows) == 1
    return rows[0]


async def agent_reply(
    db: Database,
    tenant: Tenant,
    agent: User,
    interaction_id: uuid.UUID,
    body: str,
    *,
    note: bool = False,
) -> None:
    """The agent takes the interaction (if nobody has) and writes to the visitor (or, with
    ``note``, an internal note)."""
    async with db.session(Scope.tenant(tenant.id)) as session:
        interaction = await conversations.get_interaction(session, interaction_id)
        if interaction.agent_id is None:
            interaction.agent_id = agent.id
            interaction.status = InteractionStatus.assigned
            await conversations.changed(session, interaction, "assigned")
        await conversations.add_message(
            session,
            interaction,
            direction=MessageDirection.internal if note else MessageDirection.outbound,
            author_kind="agent",
            author_user_id=agent.id,
            body=body,
        )


async def events_of(db: Database, event_type: str) -> list[dict[str, Any]]:
    async with db.session(Scope.system(), read_only=True) as session:
        rows = await session.scalars(select(EventRecord).where(EventRecord.type == event_type))
        return [row.data for row in rows]


# --- widget administration ------------------------------------------------------------------


async def test_an_admin_creates_a_widget_with_a_random_public_key(chat: Chat) -> None:
    widget = chat.widget
    assert widget["key"].startswith("wc_")
    assert len(widget["key"]) >= 24
    assert all(ch.isalnum() or ch in "-_" for ch in widget["key"])
    assert widget["prechat"] == {"name": "optional", "email": "optional", "phone": "off"}
    assert widget["default_locale"] == "es"
    other = await chat.admin.client.post(
        "/api/v1/webchat/widgets", json={"name": "Otra", "queue_id": str(chat.queue.id)}
    )
    assert other.json()["key"] != widget["key"]


async def test_supervisors_read_widgets_but_only_admins_change_them(
    app: FastAPI, chat: Chat
) -> None:
    supervisor = await caller(app, chat.tenant, Role.supervisor)
    agent = await caller(app, chat.tenant, Role.agent)
    item = f"/api/v1/webchat/widgets/{chat.widget['id']}"
    assert (await supervisor.client.get(item)).status_code == 200
    assert (await supervisor.client.get("/api/v1/webchat/widgets")).status_code == 200
    assert (await supervisor.client.patch(item, json={"name": "X"})).status_code == 403
    assert (await supervisor.client.post(f"{item}/rotate-key")).status_code == 403
    assert (await supervisor.client.delete(item)).status_code == 403
    created = await supervisor.client.post(
        "/api/v1/webchat/widgets", json={"name": "S", "queue_id": str(chat.queue.id)}
    )
    assert created.status_code == 403
    assert (await agent.client.get(item)).status_code == 403
    assert (await chat.admin.client.get(item)).json() == chat.widget


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"allowed_origins": ["https://shop.example.com/path"]}, "allowed_origins"),
        ({"allowed_origins": ["ftp://shop.example.com"]}, "allowed_origins"),
        ({"allowed_origins": ["https://bad_host!"]}, "allowed_origins"),
        ({"theme_color": "blue"}, "theme_color"),
        ({"prechat": {"name": "sometimes"}}, "prechat.name"),
        ({"default_locale": "fr"}, "default_locale"),
        ({"max_attachment_bytes": 0}, "max_attachment_bytes"),
        ({"allowed_attachment_types": ["not a type"]}, "allowed_attachment_types"),
        ({"name": ""}, "name"),
    ],
)
async def test_bad_widget_settings_are_refused_and_change_nothing(
    chat: Chat, change: dict[str, Any], field: str
) -> None:
    item = f"/api/v1/webchat/widgets/{chat.widget['id']}"
    updated = await chat.admin.client.patch(item, json=change)
    assert updated.status_code == 422, updated.text
    assert updated.json()["details"]["errors"][0]["field"] == field
    created = await chat.admin.client.post(
        "/api/v1/webchat/widgets", json={"name": "N", "queue_id": str(chat.queue.id), **change}
    )
    assert created.status_code == 422
    assert (await chat.admin.client.get(item)).json() == chat.widget
    assert len((await chat.admin.client.get("/api/v1/webchat/widgets")).json()) == 1


async def test_origins_are_normalised_the_way_browsers_send_them(chat: Chat) -> None:
    item = f"/api/v1/webchat/widgets/{chat.widget['id']}"
    updated = await chat.admin.client.patch(
        item,
        json={
            "allowed_origins": [
                "https://Shop.Example.com:443/",
                "https://shop.example.com",
                "http://localhost:8080",
            ]
        },
    )
    assert updated.status_code == 200, updated.text
    assert updated.json()["allowed_origins"] == [
        "https://shop.example.com",
        "http://localhost:8080",
    ]


async def test_the_queue_must_be_of_the_tenant_and_take_webchat(
    app: FastAPI, db: Database, chat: Chat
) -> None:
    voice = await make_queue(db, chat.tenant, channels=("voice",))
    foreign = await make_queue(db, await make_tenant(db))
    for queue_id, code in [
        (voice.id, "queue_not_for_webchat"),
        (foreign.id, "queue_not_found"),
        (uuid.uuid4(), "queue_not_found"),
    ]:
        created = await chat.admin.client.post(
            "/api/v1/webchat/widgets", json={"name": "Q", "queue_id": str(queue_id)}
        )
        assert created.status_code == 422
        assert created.json()["code"] == code
        moved = await chat.admin.client.patch(
            f"/api/v1/webchat/widgets/{chat.widget['id']}", json={"queue_id": str(queue_id)}
        )
        assert moved.json()["code"] == code
    assert len((await chat.admin.client.get("/api/v1/webchat/widgets")).json()) == 1


async def test_rotating_the_key_retires_the_old_one_and_is_audited(chat: Chat) -> None:
    old_key = chat.key
    rotated = await chat.admin.client.post(
        f"/api/v1/webchat/widgets/{chat.widget['id']}/rotate-key"
    )
    assert rotated.status_code == 200
    new_key = rotated.json()["key"]
    assert new_key != old_key
    assert (await chat.public.get(chat.path("config", old_key))).status_code == 404
    assert (await chat.public.get(chat.path("config", new_key))).status_code == 200
    await chat.admin.client.patch(
        f"/api/v1/webchat/widgets/{chat.widget['id']}", json={"greeting": "Hola"}
    )
    await chat.admin.client.delete(f"/api/v1/webchat/widgets/{chat.widget['id']}")
    entries = (await chat.admin.client.get("/api/v1/audit")).json()
    actions = [e["action"] for e in entries if e["resource_id"] == chat.widget["id"]]
    assert sorted(actions) == sorted(
        [
            "webchat_widget.create",
            "webchat_widget.rotate_key",
            "webchat_widget.update",
            "webchat_widget.delete",
        ]
    )


async def test_widgets_of_one_tenant_are_invisible_to_another(
    app: FastAPI, db: Database, chat: Chat
) -> None:
    intruder = await caller(app, await make_tenant(db))
    item = f"/api/v1/webchat/widgets/{chat.widget['id']}"
    rotated = await intruder.client.post(f"{item}/rotate-key")
    assert rotated.status_code == 404
    await assert_tenant_isolation(
        owner=chat.admin,
        intruder=intruder,
        item_path=item,
        list_path="/api/v1/webchat/widgets",
        change={"name": "Taken", "is_active": False},
        deletable=True,
    )


# --- public configuration and origins -------------------------------------------------------


async def test_the_public_config_shows_the_widget_and_no_internals(chat: Chat) -> None:
    response = await chat.public.get(chat.path("config"))
    assert response.status_code == 200
    config = response.json()
    assert config["theme_color"] == "#3b5bdb"
    assert config["open"] is True
    assert config["locale"] == "es"
    assert config["texts"]["send"] == "Enviar"
    assert config["greeting"]
    assert config["attachments"]["max_bytes"] == 10 * 1024 * 1024
    assert "queue_id" not in config
    assert "allowed_origins" not in config
    english = (await chat.public.get(chat.path("config"), params={"locale": "en-US"})).json()
    assert english["locale"] == "en"
    assert english["texts"]["send"] == "Send"


async def test_the_config_says_closed_outside_opening_hours(db: Database, chat: Chat) -> None:
    schedule = await closed_schedule(db, chat.tenant)
    async with db.session(Scope.tenant(chat.tenant.id)) as session:
        queue = await session.get(Queue, chat.queue.id)
        assert queue is not None
        queue.schedule_id = schedule.id
    await chat.admin.client.patch(
        f"/api/v1/webchat/widgets/{chat.widget['id']}",
        json={"offline_message": "Volvemos el lunes."},
    )
    config = (await chat.public.get(chat.path("config"))).json()
    assert config["open"] is False
    assert config["offline_message"] == "Volvemos el lunes."


async def test_unknown_or_inactive_widgets_do_not_exist(chat: Chat) -> None:
    assert (await chat.public.get(chat.path("config", "wc_nope"))).json()["code"] == (
        "widget_not_found"
    )
    await chat.admin.client.patch(
        f"/api/v1/webchat/widgets/{chat.widget['id']}", json={"is_active": False}
    )
    assert (await chat.public.get(chat.path("config"))).status_code == 404


async def test_only_allowed_origins_may_use_a_restricted_widget(app: FastAPI, db: Database) -> None:
    chat = await make_chat(app, db, allowed_origins=[SHOP])
    allowed = await chat.public.get(chat.path("config"), headers={"Origin": SHOP})
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == SHOP
    for origin in ["https://evil.example.com", "null", "http://shop.example.com"]:
        refused = await chat.public.get(chat.path("config"), headers={"Origin": origin})
        assert refused.status_code == 403
        assert refused.json()["code"] == "origin_not_allowed"
        assert "access-control-allow-origin" not in refused.headers
    # Without an Origin header the request counts as this server's own origin, not listed.
    assert (await chat.public.get(chat.path("config"))).status_code == 403
    session = await chat.public.post(
        chat.path("session"), json={}, headers={"Origin": "https://evil.example.com"}
    )
    assert session.status_code == 403
    async with db.session(Scope.tenant(chat.tenant.id), read_only=True) as s:
        assert await s.scalar(select(func.count(Visitor.id))) == 0


async def test_preflight_answers_allowed_origins_only(app: FastAPI, db: Database) -> None:
    chat = await make_chat(app, db, allowed_origins=[SHOP])
    ok = await chat.public.options(
        chat.path("messages"),
        headers={
            "Origin": SHOP,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert ok.status_code == 204
    assert ok.headers["access-control-allow-origin"] == SHOP
    assert "POST" in ok.headers["access-control-allow-methods"]
    assert "Authorization" in ok.headers["access-control-allow-headers"]
    refused = await chat.public.options(
        chat.path("messages"),
        headers={"Origin": "https://evil.example.com", "Access-Control-Request-Method": "POST"},
    )
    assert refused.status_code == 403


async def test_errors_for_an_allowed_origin_are_readable_by_the_widget(
    app: FastAPI, db: Database
) -> None:
    chat = await make_chat(app, db, allowed_origins=[SHOP], prechat={"name": "required"})
    missing = await chat.public.post(chat.path("session"), json={}, headers={"Origin": SHOP})
    assert missing.status_code == 422
    assert missing.headers["access-control-allow-origin"] == SHOP
    malformed = await chat.public.post(
        chat.path("session"), json={"name": 5}, headers={"Origin": SHOP}
    )
    assert malformed.status_code == 422
    assert malformed.headers["access-control-allow-origin"] == SHOP
    unknown = await chat.public.get(
        chat.path("session"), headers={"Origin": SHOP, **bearer("wcv_wrong")}
    )
    assert unknown.status_code == 401
    assert unknown.headers["access-control-allow-origin"] == SHOP


# --- sessions -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prechat", "code", "field"),
    [
        ({"email": "ana@example.com", "phone": "55 1234 5678"}, "prechat_field_required", "name"),
        ({"name": "Ana", "phone": "55 1234 5678"}, "prechat_field_required", "email"),
        (
            {"name": "Ana", "email": "no-es-correo", "phone": "55 1234 5678"},
            "invalid_email",
            "email",
        ),
        ({"name": "Ana", "email": "ana@example.com", "phone": "123"}, "invalid_phone", "phone"),
        (
            {"name": "  ", "email": "ana@example.com", "phone": "55 1234 5678"},
            "prechat_field_required",
            "name",
        ),
    ],
)
async def test_the_prechat_form_is_validated_and_a_refusal_creates_nothing(
    app: FastAPI, db: Database, prechat: dict[str, str], code: str, field: str
) -> None:
    chat = await make_chat(
        app, db, prechat={"name": "required", "email": "required", "phone": "optional"}
    )
    response = await chat.public.post(chat.path("session"), json=prechat)
    assert response.status_code == 422, response.text
    assert response.json()["code"] == code
    assert response.json()["details"]["field"] == field
    async with db.session(Scope.tenant(chat.tenant.id), read_only=True) as session:
        assert await session.scalar(select(func.count(Visitor.id))) == 0
        assert await session.scalar(select(func.count(Contact.id))) == 0


async def test_a_session_creates_a_contact_with_the_prechat_answers(
    app: FastAPI, db: Database
) -> None:
    chat = await make_chat(
        app, db, prechat={"name": "required", "email": "optional", "phone": "optional"}
    )
    response = await chat.public.post(
        chat.path("session"),
        json={"name": "Ana Pérez", "email": "Ana@Example.com", "phone": "55 1234 5678"},
    )
    assert response.status_code == 201
    session_out = response.json()
    assert session_out["token"].startswith("wcv_")
    assert session_out["email"] == "ana@example.com"
    assert session_out["phone"] == "+525512345678"
    async with db.session(Scope.tenant(chat.tenant.id), read_only=True) as session:
        visitor = await session.scalar(select(Visitor))
        assert visitor is not None
        assert str(visitor.id) == session_out["visitor_id"]
        # Only the token's digest is stored.
        assert visitor.token_digest == token_digest(session_out["token"])
        assert session_out["token"] not in json.dumps(visitor.meta)
        identity = await session.scalar(select(ContactIdentity))
        assert identity is not None
        assert (identity.kind, identity.value) == (IdentityKind.webchat, str(visitor.id))
        contact = await session.get(Contact, visitor.contact_id)
        assert contact is not None
        assert (contact.name, contact.email, contact.phone) == (
            "Ana Pérez",
            "ana@example.com",
            "+525512345678",
        )


async def test_fields_the_widget_does_not_ask_for_are_ignored(app: FastAPI, db: Database) -> None:
    chat = await make_chat(app, db, prechat={"name": "off", "email": "off", "phone": "off"})
    response = await chat.public.post(
        chat.path("session"), json={"name": "Ana", "email": "not-checked"}
    )
    assert response.status_code == 201
    assert response.json()["name"] is None
    assert response.json()["email"] is None


async def test_the_token_restores_the_session_on_this_widget_only(
    app: FastAPI, db: Database, chat: Chat
) -> None:
    token = await chat.visitor(name="Luis")
    restored = await chat.public.get(chat.path("session"), headers=bearer(token))
    assert restored.status_code == 200
    assert restored.json()["name"] == "Luis"
    assert "token" not in restored.json()
    for headers in ({}, bearer("wcv_guess"), {"Authorization": token}):
        refused = await chat.public.get(chat.path("session"), headers=headers)
        assert refused.status_code == 401
        assert refused.json()["code"] == "visitor_not_authenticated"
    other = await make_chat(app, db)
    elsewhere = await chat.public.get(other.path("session"), headers=bearer(token))
    assert elsewhere.status_code == 401
    second = await chat.admin.client.post(
        "/api/v1/webchat/widgets", json={"name": "Dos", "queue_id": str(chat.queue.id)}
    )
    same_tenant = await chat.public.get(
        chat.path("session", second.json()["key"]), headers=bearer(token)
    )
    assert same_tenant.status_code == 401


async def test_starting_sessions_is_rate_limited_per_address(chat: Chat) -> None:
    for _ in range(10):
        await chat.visitor()
    limited = await chat.public.post(chat.path("session"), json={})
    assert limited.status_code == 429
    assert limited.json()["code"] == "rate_limited"


# --- messages -----------------------------------------------------------------------------


async def test_the_first_message_opens_a_webchat_interaction_in_the_widgets_queue(
    db: Database, chat: Chat
) -> None:
    token = await chat.visitor(name="Ana")
    first = await chat.send(token, "Hola, ¿tienen envíos?")
    assert first.status_code == 201, first.text
    message = first.json()
    assert message["direction"] == "inbound"
    assert message["status"] == "received"
    interaction = await only_interaction(db, chat.tenant)
    assert interaction.channel.value == "webchat"
    assert interaction.source_id == uuid.UUID(chat.widget["id"])
    assert interaction.queue_id == chat.queue.id
    assert interaction.status is InteractionStatus.queued
    assert message["interaction_id"] == str(interaction.id)
    second = await chat.send(token, "¿Y a Monterrey?")
    assert second.json()["interaction_id"] == str(interaction.id)
    queued = [e for e in await events_of(db, "interaction.changed") if e["change"] == "queued"]
    assert len(queued) == 1


async def test_a_resent_client_id_returns_the_same_message_without_a_duplicate(
    db: Database, chat: Chat
) -> None:
    token = await chat.visitor()
    client_id = str(uuid.uuid4())
    first = await chat.send(token, "Hola", client_id)
    again = await chat.send(token, "Hola", client_id)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["client_id"] == client_id
    async with db.session(Scope.tenant(chat.tenant.id), read_only=True) as session:
        assert await session.scalar(select(func.count(Message.id))) == 1


async def test_bad_messages_are_refused(chat: Chat) -> None:
    token = await chat.visitor()
    for body in [
        {"body": "   ", "client_id": "a"},
        {"body": "hola"},
        {"body": "x" * 4001, "client_id": "b"},
        {"body": "hola", "client_id": "c", "extra": 1},
    ]:
        response = await chat.public.post(chat.path("messages"), json=body, headers=bearer(token))
        assert response.status_code == 422, body
    assert (await chat.history(token))["messages"] == []


async def test_the_history_shows_the_conversation_but_never_internal_notes(
    db: Database, chat: Chat, clock: TestClock
) -> None:
    token = await chat.visitor()
    await chat.send(token, "Hola")
    interaction = await only_interaction(db, chat.tenant)
    agent = await make_user(db, chat.tenant, Role.agent)
    clock.advance(1)
    await agent_reply(db, chat.tenant, agent, interaction.id, "Nota: cliente VIP", note=True)
    clock.advance(1)
    await agent_reply(db, chat.tenant, agent, interaction.id, "¡Hola! ¿En qué te ayudo?")
    history = await chat.history(token)
    assert [(m["direction"], m["body"]) for m in history["messages"]] == [
        ("inbound", "Hola"),
        ("outbound", "¡Hola! ¿En qué te ayudo?"),
    ]
    assert history["status"] == "assigned"
    assert history["last_event_id"] > 0


async def test_after_a_closed_conversation_the_next_message_opens_a_new_one(
    db: Database, chat: Chat, clock: TestClock
) -> None:
    token = await chat.visitor()
    await chat.send(token, "Primera")
    first = await only_interaction(db, chat.tenant)
    async with db.session(Scope.tenant(chat.tenant.id)) as session:
        interaction = await conversations.get_interaction(session, first.id)
        interaction.status = InteractionStatus.closed
    clock.advance(60)
    reopened = await chat.send(token, "Segunda")
    assert reopened.json()["interaction_id"] != str(first.id)
    history = await chat.history(token)
    assert [m["body"] for m in history["messages"]] == ["Primera", "Segunda"]
    assert history["status"] == "queued"


async def test_visitors_see_only_their_own_conversations(db: Database, chat: Chat) -> None:
    ana, luis = await chat.visitor(name="Ana"), await chat.visitor(name="Luis")
    await chat.send(ana, "Soy Ana")
    await chat.send(luis, "Soy Luis")
    assert [m["body"] for m in (await chat.history(ana))["messages"]] == ["Soy Ana"]
    assert [m["body"] for m in (await chat.history(luis))["messages"]] == ["Soy Luis"]


async def test_outside_opening_hours_the_queue_answers_with_its_closed_message(
    db: Database, chat: Chat
) -> None:
    schedule = await closed_schedule(db, chat.tenant)
    async with db.session(Scope.tenant(chat.tenant.id)) as session:
        queue = await session.get(Queue, chat.queue.id)
        assert queue is not None
        queue.schedule_id = schedule.id
        queue.closed_message = "Estamos cerrados; te respondemos mañana."
    token = await chat.visitor()
    sent = await chat.send(token, "¿Hay alguien?")
    assert sent.status_code == 201
    restored = await chat.public.get(chat.path("session"), headers=bearer(token))
    assert restored.json()["open"] is False
    bodies = [(m["direction"], m["body"]) for m in (await chat.history(token))["messages"]]
    assert ("outbound", "Estamos cerrados; te respondemos mañana.") in bodies
    assert ("inbound", "¿Hay alguien?") in bodies


async def test_a_visitor_sending_too_fast_is_slowed_down(
    db: Database, chat: Chat, clock: TestClock
) -> None:
    token = await chat.visitor()
    for n in range(30):
        assert (await chat.send(token, f"mensaje {n}")).status_code == 201
    limited = await chat.send(token, "uno más")
    assert limited.status_code == 429
    assert limited.json()["code"] == "rate_limited"
    assert limited.headers["retry-after"] == "60"
    clock.advance(61)
    assert (await chat.send(token, "ya puedo")).status_code == 201


async def test_reading_marks_the_agents_messages_read_and_announces_it(
    db: Database, chat: Chat, clock: TestClock
) -> None:
    token = await chat.visitor()
    await chat.send(token, "Hola")
    interaction = await only_interaction(db, chat.tenant)
    agent = await make_user(db, chat.tenant, Role.agent)
    clock.advance(1)
    await agent_reply(db, chat.tenant, agent, interaction.id, "Hola")
    read = await chat.public.post(chat.path("read"), json={}, headers=bearer(token))
    assert read.status_code == 200
    assert read.json() == {"marked": 1}
    outbound = [m for m in (await chat.history(token))["messages"] if m["direction"] == "outbound"]
    assert outbound[0]["status"] == "read"
    statuses = await events_of(db, "message.status")
    assert statuses == [
        {"interaction_id": str(interaction.id), "message_id": outbound[0]["id"], "status": "read"}
    ]
    again = await chat.public.post(chat.path("read"), json={}, headers=bearer(token))
    assert again.json() == {"marked": 0}


async def test_typing_reaches_the_agent_side_only_in_an_open_conversation(
    db: Database, chat: Chat
) -> None:
    token = await chat.visitor()
    early = await chat.public.post(chat.path("typing"), json={}, headers=bearer(token))
    assert early.json() == {"sent": False}
    await chat.send(token, "Hola")
    typed = await chat.public.post(chat.path("typing"), json={}, headers=bearer(token))
    assert typed.status_code == 202
    assert typed.json() == {"sent": True}
    interaction = await only_interaction(db, chat.tenant)
    assert await events_of(db, "interaction.typing") == [
        {"interaction_id": str(interaction.id), "author_kind": "contact"}
    ]


async def test_attachments_follow_the_widgets_limits(app: FastAPI, db: Database) -> None:
    chat = await make_chat(
        app, db, max_attachment_bytes=1024, allowed_attachment_types=["image/png"]
    )
    token = await chat.visitor()

    async def upload(data: bytes, name: str, kind: str, who: str = token) -> httpx.Response:
        return await chat.public.post(
            chat.path("attachments"), files={"file": (name, data, kind)}, headers=bearer(who)
        )

    stored = await upload(PNG, "foto.png", "image/png")
    assert stored.status_code == 201, stored.text
    assert stored.json()["size"] == len(PNG)
    assert (await upload(b"%PDF-1.4 hola", "a.pdf", "application/pdf")).status_code == 415
    assert (await upload(PNG + b"\x00" * 2048, "big.png", "image/png")).status_code == 413
    assert (await upload(b"MZ not a png", "x.png", "image/png")).status_code == 415

    sent = await chat.public.post(
        chat.path("messages"),
        json={"body": "", "client_id": "con-foto", "attachment_ids": [stored.json()["id"]]},
        headers=bearer(token),
    )
    assert sent.status_code == 201, sent.text
    assert sent.json()["attachments"] == [
        {"id": stored.json()["id"], "name": "foto.png", "content_type": "image/png", "size": 72}
    ]
    downloaded = await chat.public.get(
        chat.path(f"attachments/{stored.json()['id']}"), headers=bearer(token)
    )
    assert downloaded.content == PNG

    # Another visitor can neither attach nor download the first visitor's file.
    other = await chat.visitor()
    stolen = await chat.public.post(
        chat.path("messages"),
        json={"body": "mira", "client_id": "robo", "attachment_ids": [stored.json()["id"]]},
        headers=bearer(other),
    )
    assert stolen.status_code == 422
    assert stolen.json()["code"] == "attachment_not_found"
    peek = await chat.public.get(
        chat.path(f"attachments/{stored.json()['id']}"), headers=bearer(other)
    )
    assert peek.status_code == 404


async def test_a_widget_without_attachment_types_takes_no_files(app: FastAPI, db: Database) -> None:
    chat = await make_chat(app, db, allowed_attachment_types=[])
    token = await chat.visitor()
    refused = await chat.public.post(
        chat.path("attachments"), files={"file": ("a.png", PNG, "image/png")}, headers=bearer(token)
    )
    assert refused.status_code == 422
    assert refused.json()["code"] == "attachments_disabled"


async def test_widget_script_styles_and_demo_page_are_served(chat: Chat) -> None:
    script = await chat.public.get("/widget.js")
    assert script.status_code == 200
    assert script.headers["content-type"].startswith("text/javascript")
    assert "attachShadow" in script.text
    styles = await chat.public.get("/widget.css")
    assert styles.headers["content-type"].startswith("text/css")
    page = await chat.public.get("/demo-site", params={"key": chat.key})
    assert page.status_code == 200
    assert f'data-channel="{chat.key}"' in page.text
    assert 'src="/widget.js"' in page.text
    assert (await chat.public.get("/demo-site")).status_code == 404  # no demo tenant here


# --- the visitors' websocket --------------------------------------------------------------


@asynccontextmanager
async def visitor_socket(
    server: LiveServer, key: str, token: str, origin: str | None = None, **query: Any
) -> AsyncIterator[Any]:
    params = "&".join(f"{k}={v}" for k, v in {"token": token, **query}.items())
    url = f"ws://127.0.0.1:{server.port}/webchat/v1/{key}/ws?{params}"
    async with websockets.connect(url, origin=origin) as ws:
        yield ws


async def next_frame(ws: Any, kind: str, timeout: float = 5.0) -> dict[str, Any]:
    async def wait() -> dict[str, Any]:
        while True:
            frame = json.loads(await ws.recv())
            if frame["type"] == "heartbeat":
                await ws.send(json.dumps({"type": "pong"}))
            if frame["type"] == kind:
                return frame

    return await asyncio.wait_for(wait(), timeout)


async def frames_until_quiet(ws: Any, quiet: float = 1.5) -> list[dict[str, Any]]:
    """Every event frame until none has arrived for ``quiet`` seconds (heartbeats answered,
    not counted)."""
    loop = asyncio.get_running_loop()
    frames: list[dict[str, Any]] = []
    deadline = loop.time() + quiet
    while (remaining := deadline - loop.time()) > 0:
        try:
            frame = json.loads(await asyncio.wait_for(ws.recv(), remaining))
        except TimeoutError:
            break
        if frame["type"] == "heartbeat":
            await ws.send(json.dumps({"type": "pong"}))
        elif frame["type"] == "event":
            frames.append(frame)
            deadline = loop.time() + quiet
    return frames


async def test_the_visitor_socket_carries_only_the_visitors_own_events(
    settings: Settings, clock: TestClock
) -> None:
    # The test writes between reads of the socket; on a busy machine that can outlast three
    # 0.5 s heartbeats, and this test is not about heartbeats.
    settings = settings.model_copy(update={"websocket_heartbeat_seconds": 5.0})
    app = create_app(settings, clock=clock, run_worker=False)
    async with LiveServer(app) as server:
        db: Database = app.state.atiende.db
        chat = await make_chat(app, db)
        ana, luis = await chat.visitor(name="Ana"), await chat.visitor(name="Luis")
        await chat.send(ana, "Hola, soy Ana")
        await chat.send(luis, "Hola, soy Luis")
        async with db.session(Scope.tenant(chat.tenant.id), read_only=True) as session:
            by_body = {m.body: m.interaction_id for m in await session.scalars(select(Message))}
        ana_chat, luis_chat = by_body["Hola, soy Ana"], by_body["Hola, soy Luis"]
        agent = await make_user(db, chat.tenant, Role.agent)
        async with visitor_socket(server, chat.key, ana) as ws:
            await next_frame(ws, "hello")
            await agent_reply(db, chat.tenant, agent, luis_chat, "Para Luis")
            await agent_reply(db, chat.tenant, agent, ana_chat, "nota interna", note=True)
            await agent_reply(db, chat.tenant, agent, ana_chat, "Hola Ana, te atiendo")
            async with db.session(Scope.tenant(chat.tenant.id)) as session:
                await emit(session, Typing(interaction_id=ana_chat, author_kind="agent"))
                await emit(session, Typing(interaction_id=luis_chat, author_kind="agent"))
            await chat.send(ana, "¡Gracias!")
            frames = await frames_until_quiet(ws)
    seen = [(f["event"], f["data"]) for f in frames]
    assert ("interaction.changed", {"status": "assigned"}) in seen
    bodies = [d["message"]["body"] for e, d in seen if e == "message.added"]
    assert bodies == ["Hola Ana, te atiendo", "¡Gracias!"]
    assert ("interaction.typing", {"typing": True}) in seen
    assert sum(1 for e, _ in seen if e == "interaction.typing") == 1
    text = json.dumps(frames)
    assert "Luis" not in text
    assert "nota interna" not in text
    assert str(agent.id) not in text, "agent ids are not shown to visitors"
    # The widget got the agent's message, so it counts as delivered.
    assert ("message.status", "delivered") in [
        (e, d.get("status")) for e, d in seen if e == "message.status"
    ]


async def test_the_visitor_socket_resumes_after_a_reconnect(
    settings: Settings, clock: TestClock
) -> None:
    app = create_app(settings, clock=clock, run_worker=False)
    async with LiveServer(app) as server:
        db: Database = app.state.atiende.db
        chat = await make_chat(app, db)
        token = await chat.visitor()
        await chat.send(token, "Hola")
        interaction = await only_interaction(db, chat.tenant)
        agent = await make_user(db, chat.tenant, Role.agent)
        last = (await chat.history(token))["last_event_id"]
        # Offline: the agent answers twice.
        clock.advance(1)
        await agent_reply(db, chat.tenant, agent, interaction.id, "Uno")
        clock.advance(1)
        await agent_reply(db, chat.tenant, agent, interaction.id, "Dos")
        async with visitor_socket(server, chat.key, token, last_event_id=last) as ws:
            replayed = await frames_until_quiet(ws)
            clock.advance(1)
            await agent_reply(db, chat.tenant, agent, interaction.id, "Tres")
            live = await frames_until_quiet(ws)
    bodies = [
        f["data"]["message"]["body"] for f in replayed + live if f["event"] == "message.added"
    ]
    assert bodies == ["Uno", "Dos", "Tres"]
    ids = [f["id"] for f in replayed + live]
    assert ids == sorted(set(ids)), "in order, no duplicates"


async def test_the_visitor_socket_refuses_bad_tokens_and_foreign_origins(
    settings: Settings, clock: TestClock
) -> None:
    app = create_app(settings, clock=clock, run_worker=False)
    async with LiveServer(app) as server:
        db: Database = app.state.atiende.db
        chat = await make_chat(app, db, allowed_origins=[SHOP])
        created = await chat.public.post(chat.path("session"), json={}, headers={"Origin": SHOP})
        token = created.json()["token"]
        async with visitor_socket(server, chat.key, token, origin=SHOP) as ws:
            assert (await next_frame(ws, "hello"))["heartbeat_seconds"] > 0
        for key, who, origin in [
            (chat.key, "wcv_wrong", SHOP),
            (chat.key, token, "https://evil.example.com"),
            ("wc_unknown", token, SHOP),
        ]:
            with pytest.raises(InvalidStatus):
                async with visitor_socket(server, key, who, origin=origin):
                    pass


async def test_a_visitor_too_far_behind_is_told_to_reload_instead_of_replaying(
    settings: Settings, clock: TestClock
) -> None:
    app = create_app(settings, clock=clock, run_worker=False)
    async with LiveServer(app) as server:
        db: Database = app.state.atiende.db
        chat = await make_chat(app, db)
        token = await chat.visitor()
        await chat.send(token, "Hola")
        # It saw only the first event; the ones after it are pruned while it is away.
        stale = 1
        clock.advance(timedelta(days=8))
        await chat.send(token, "Una semana después")
        async with db.session(Scope.system()) as session:
            assert await realtime.prune(session) > 0
        async with visitor_socket(server, chat.key, token, last_event_id=stale) as ws:
            hello = await next_frame(ws, "hello")
            await next_frame(ws, "reset")
    assert hello["last_event_id"] > stale


async def test_the_visitor_sees_the_agent_typing_at_most_every_three_seconds(
    settings: Settings, clock: TestClock
) -> None:
    settings = settings.model_copy(update={"websocket_heartbeat_seconds": 5.0})
    app = create_app(settings, clock=clock, run_worker=False)
    async with LiveServer(app) as server:
        db: Database = app.state.atiende.db
        chat = await make_chat(app, db)
        ana = await chat.visitor(name="Ana")
        await chat.send(ana, "Hola")
        async with db.session(Scope.tenant(chat.tenant.id), read_only=True) as session:
            interaction_id = (await session.scalars(select(Message.interaction_id))).first()
        supervisor = await caller(app, chat.tenant, Role.supervisor)
        async with visitor_socket(server, chat.key, ana) as ws:
            await next_frame(ws, "hello")
            first = await supervisor.client.post(f"/api/v1/interactions/{interaction_id}/typing")
            again = await supervisor.client.post(f"/api/v1/interactions/{interaction_id}/typing")
            frames = await frames_until_quiet(ws)
    assert (first.status_code, first.json(), again.json()) == (202, {"sent": True}, {"sent": False})
    typing = [f["data"] for f in frames if f["event"] == "interaction.typing"]
    assert typing == [{"typing": True}]


# --- ending the chat and leaving ----------------------------------------------------------


async def visitor_id_of(db: Database, token: str) -> uuid.UUID:
    async with db.session(Scope.system(), read_only=True) as session:
        found = await session.scalar(
            select(Visitor.id).where(Visitor.token_digest == token_digest(token))
        )
    assert found is not None
    return found


async def timeline_of(
    db: Database, tenant: Tenant, interaction_id: uuid.UUID
) -> list[tuple[str, dict[str, Any]]]:
    async with db.session(Scope.tenant(tenant.id), read_only=True) as session:
        return [(e.type, e.data) for e in await conversations.timeline(session, interaction_id)]


async def leave_checks(db: Database, visitor_id: uuid.UUID) -> list[Job]:
    async with db.session(Scope.system(), read_only=True) as session:
        rows = await session.scalars(
            select(Job).where(
                Job.kind == webchat.VISITOR_LEFT_JOB,
                Job.status == JobStatus.pending,
                Job.payload["visitor_id"].as_string() == str(visitor_id),
            )
        )
        return list(rows.all())


async def until(condition: Callable[[], Awaitable[bool]], timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await condition():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def run_jobs(app: FastAPI) -> int:
    state = app.state.atiende
    return await JobRunner(state.db, build_registry(), state.settings).run_due()


async def end_chat(chat: Chat, token: str) -> httpx.Response:
    return await chat.public.post(chat.path("end"), headers=bearer(token))


async def test_ending_a_waiting_chat_abandons_it_and_cancels_its_offers(
    db: Database, chat: Chat, clock: TestClock
) -> None:
    agent_id = await make_agent(db, chat.tenant, chat.queue)
    token = await chat.visitor(name="Ana")
    await chat.send(token, "Hola, ¿hay alguien?")
    await routing.settle()
    interaction = await only_interaction(db, chat.tenant)
    assert interaction.status is InteractionStatus.offered, "offered to the agent"

    ended = await end_chat(chat, token)
    assert (ended.status_code, ended.json()) == (200, {"status": "abandoned"})
    async with db.session(Scope.tenant(chat.tenant.id), read_only=True) as session:
        offers = (await session.scalars(select(Offer))).all()
        stats = {s.queue_id: s for s in await routing.queue_stats(session)}
    assert [(o.agent_id, o.status) for o in offers] == [(agent_id, OfferStatus.cancelled)]
    assert (await only_interaction(db, chat.tenant)).status is InteractionStatus.abandoned
    timeline = await timeline_of(db, chat.tenant, interaction.id)
    assert timeline[-1] == ("abandoned", {"reason": "visitor_ended"})
    assert "requeued" not in [kind for kind, _ in timeline]
    assert await counters_match_truth(db, chat.tenant), "the agent's offer is released"
    assert stats[chat.queue.id].abandoned_today == 1, "the wallboard counts it"
    assert (await chat.history(token))["status"] == "abandoned"
    clock.advance(1)

    again = await end_chat(chat, token)
    assert (again.status_code, again.json()) == (200, {"status": "abandoned"})
    timeline = await timeline_of(db, chat.tenant, interaction.id)
    assert [kind for kind, _ in timeline].count("abandoned") == 1

    # Writing again starts a new conversation.
    await chat.send(token, "Vuelvo a escribir")
    async with db.session(Scope.tenant(chat.tenant.id), read_only=True) as session:
        statuses = {i.id: i.status for i in await session.scalars(select(Interaction))}
    assert len(statuses) == 2
    assert statuses.pop(interaction.id) is InteractionStatus.abandoned
    [new_status] = statuses.values()
    assert new_status in (InteractionStatus.queued, InteractionStatus.offered)


async def test_ending_a_chat_an_agent_has_tells_the_agent_and_a_new_message_starts_over(
    db: Database, chat: Chat, clock: TestClock
) -> None:
    token = await chat.visitor(name="Ana")
    await chat.send(token, "Hola")
    interaction = await only_interaction(db, chat.tenant)
    agent = await make_user(db, chat.tenant, Role.agent)
    await agent_reply(db, chat.tenant, agent, interaction.id, "Hola Ana, te atiendo")

    ended = await end_chat(chat, token)
    assert (ended.status_code, ended.json()) == (200, {"status": "ended"})
    # The agent keeps it, to wrap up and close as usual, and is told in the conversation.
    assert (await only_interaction(db, chat.tenant)).status is InteractionStatus.assigned
    timeline = await timeline_of(db, chat.tenant, interaction.id)
    assert [kind for kind, _ in timeline].count("visitor_ended") == 1
    notes = [
        e
        for e in await events_of(db, "message.added")
        if e["direction"] == "internal" and e["author_kind"] == "system"
    ]
    assert [n["body"] for n in notes] == [
        "El visitante terminó el chat. Cierra la conversación cuando termines."
    ]
    history = await chat.history(token)
    assert history["status"] == "ended"
    assert "El visitante" not in json.dumps(history), "the note is for the agent only"

    again = await end_chat(chat, token)
    assert (again.status_code, again.json()) == (200, {"status": "ended"})
    timeline = await timeline_of(db, chat.tenant, interaction.id)
    assert [kind for kind, _ in timeline].count("visitor_ended") == 1
    assert len(await events_of(db, "message.added")) == 3, "no second note"
    typing = await chat.public.post(chat.path("typing"), json={}, headers=bearer(token))
    assert typing.json() == {"sent": False}, "nobody to tell: the visitor ended it"

    clock.advance(60)
    sent = await chat.send(token, "Otra pregunta")
    assert sent.status_code == 201
    assert sent.json()["interaction_id"] != str(interaction.id)
    assert (await chat.history(token))["status"] == "queued"
    assert (await only_interaction_by_id(db, chat.tenant, interaction.id)).status is (
        InteractionStatus.assigned
    )


async def only_interaction_by_id(
    db: Database, tenant: Tenant, interaction_id: uuid.UUID
) -> Interaction:
    async with db.session(Scope.tenant(tenant.id), read_only=True) as session:
        return await conversations.get_interaction(session, interaction_id)


async def test_ending_before_writing_anything_changes_nothing(db: Database, chat: Chat) -> None:
    token = await chat.visitor()
    ended = await end_chat(chat, token)
    assert (ended.status_code, ended.json()) == (200, {"status": None})
    assert (await chat.public.post(chat.path("end"))).status_code == 401
    async with db.session(Scope.tenant(chat.tenant.id), read_only=True) as session:
        assert await session.scalar(select(func.count(Interaction.id))) == 0


async def test_a_visitor_gone_past_the_grace_period_leaves_the_waiting_chat_abandoned(
    settings: Settings, clock: TestClock
) -> None:
    settings = settings.model_copy(update={"webchat_leave_grace_seconds": 120})
    app = create_app(settings, clock=clock, run_worker=False)
    async with LiveServer(app) as server:
        db: Database = app.state.atiende.db
        chat = await make_chat(app, db)
        token = await chat.visitor(name="Ana")
        visitor_id = await visitor_id_of(db, token)
        async with visitor_socket(server, chat.key, token) as ws:
            await next_frame(ws, "hello")
            await chat.send(token, "Hola")
        await until(lambda: _has_check(db, visitor_id))
        interaction = await only_interaction(db, chat.tenant)

        clock.advance(119)
        await run_jobs(app)
        assert (await only_interaction(db, chat.tenant)).status is InteractionStatus.queued

        clock.advance(2)
        assert await run_jobs(app) == 1
        assert (await only_interaction(db, chat.tenant)).status is InteractionStatus.abandoned
        timeline = await timeline_of(db, chat.tenant, interaction.id)
        assert timeline[-1] == ("abandoned", {"reason": "visitor_left"})
        async with db.session(Scope.tenant(chat.tenant.id), read_only=True) as session:
            stats = await routing.queue_stats(session)
        assert [s.abandoned_today for s in stats] == [1]


async def _has_check(db: Database, visitor_id: uuid.UUID) -> bool:
    return bool(await leave_checks(db, visitor_id))


async def test_a_visitor_back_within_the_grace_period_keeps_waiting(
    settings: Settings, clock: TestClock
) -> None:
    settings = settings.model_copy(update={"webchat_leave_grace_seconds": 120})
    app = create_app(settings, clock=clock, run_worker=False)
    async with LiveServer(app) as server:
        db: Database = app.state.atiende.db
        chat = await make_chat(app, db)
        token = await chat.visitor(name="Ana")
        visitor_id = await visitor_id_of(db, token)
        await chat.send(token, "Hola")
        interaction_id = (await only_interaction(db, chat.tenant)).id
        async with visitor_socket(server, chat.key, token) as ws:
            await next_frame(ws, "hello")
        await until(lambda: _has_check(db, visitor_id))

        # A page load later, the widget is back and stays.
        clock.advance(60)
        async with visitor_socket(server, chat.key, token) as ws:
            await next_frame(ws, "hello")
            answering = asyncio.create_task(answer_heartbeats(ws, []))
            clock.advance(61)
            assert await run_jobs(app) == 1
            assert (await only_interaction(db, chat.tenant)).status is InteractionStatus.queued
            assert "abandoned" not in dict(await timeline_of(db, chat.tenant, interaction_id))
            # While it waits, the check comes back later.
            assert await leave_checks(db, visitor_id)
            clock.advance(1)
            await stop(answering)
        # Gone for good this time: the socket's close schedules its own check.
        closed_at = clock.now()
        await until(lambda: _check_due(db, visitor_id, closed_at + timedelta(seconds=120)))
        clock.advance(121)
        await run_jobs(app)
        assert (await only_interaction(db, chat.tenant)).status is InteractionStatus.abandoned


async def _check_due(db: Database, visitor_id: uuid.UUID, at: datetime) -> bool:
    return at in [job.run_at for job in await leave_checks(db, visitor_id)]


async def test_a_tab_still_open_on_another_node_keeps_the_chat_waiting(
    settings: Settings, clock: TestClock
) -> None:
    # Heartbeats every 2 s: a busy machine may answer one late, and a socket silent for three
    # of them is dropped (which would end the very presence this test is about).
    settings = settings.model_copy(
        update={"webchat_leave_grace_seconds": 120, "websocket_heartbeat_seconds": 2.0}
    )
    node_a = create_app(settings, clock=clock, run_worker=False)
    node_b = create_app(settings, clock=clock, run_worker=False)
    async with LiveServer(node_a) as server_a, LiveServer(node_b) as server_b:
        db: Database = node_a.state.atiende.db
        chat = await make_chat(node_a, db)
        token = await chat.visitor(name="Ana")
        visitor_id = await visitor_id_of(db, token)
        await chat.send(token, "Hola")
        async with visitor_socket(server_a, chat.key, token) as still_open:
            await next_frame(still_open, "hello")
            beats: list[int] = []
            answering = asyncio.create_task(answer_heartbeats(still_open, beats))
            async with visitor_socket(server_b, chat.key, token) as closed_tab:
                await next_frame(closed_tab, "hello")
            await until(lambda: _has_check(db, visitor_id))
            clock.advance(121)
            # The open tab's heartbeats on node A (one whole one after the jump) say the
            # visitor is still here.
            seen = len(beats)
            await until(lambda: _at_least(beats, seen + 2), timeout=20)
            await run_jobs(node_a)
            assert (await only_interaction(db, chat.tenant)).status is InteractionStatus.queued
            await stop(answering)


async def answer_heartbeats(ws: Any, beats: list[int]) -> None:
    """Keep a socket alive in the background, counting the heartbeats it answers."""
    async for raw in ws:
        if json.loads(raw)["type"] == "heartbeat":
            beats.append(1)
            await ws.send(json.dumps({"type": "pong"}))


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _at_least(items: list[int], count: int) -> bool:
    return len(items) >= count


async def test_the_widget_hears_nothing_more_of_a_chat_the_visitor_ended(
    settings: Settings, clock: TestClock
) -> None:
    settings = settings.model_copy(update={"websocket_heartbeat_seconds": 5.0})
    app = create_app(settings, clock=clock, run_worker=False)
    async with LiveServer(app) as server:
        db: Database = app.state.atiende.db
        chat = await make_chat(app, db)
        token = await chat.visitor(name="Ana")
        await chat.send(token, "Hola")
        interaction = await only_interaction(db, chat.tenant)
        agent = await make_user(db, chat.tenant, Role.agent)
        await agent_reply(db, chat.tenant, agent, interaction.id, "Te atiendo")
        last = (await chat.history(token))["last_event_id"]
        assert (await end_chat(chat, token)).json() == {"status": "ended"}
        async with visitor_socket(server, chat.key, token, last_event_id=last) as ws:
            await next_frame(ws, "hello")
            async with db.session(Scope.tenant(chat.tenant.id)) as session:
                finished = await conversations.get_interaction(session, interaction.id)
                finished.status = InteractionStatus.closed
                await conversations.changed(session, finished, "closed")
            await chat.send(token, "Una pregunta nueva")
            frames = await frames_until_quiet(ws)
    changes = [f["data"] for f in frames if f["event"] == "interaction.changed"]
    assert {"status": "closed"} not in changes, "the agent closing it is not news to the visitor"
    assert {"status": "queued"} in changes, "the new conversation is"
