"""Messaging channels end to end: a provider's webhook becomes a routed conversation, the
agent's reply leaves through the outbox to a local server that speaks the provider's API,
and the provider's statuses come back to the message. Plus what every channel guarantees:
signatures first, one effect per redelivery, malformed payloads kept, secrets never shown."""

from __future__ import annotations

import copy
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from atiende.channels.models import Delivery, InboundEvent, InboundStatus
from atiende.conversations.models import InteractionStatus, MessageStatus
from atiende.core.db import Scope
from channel_factories import Desk, desk
from factories import LiveServer, api_client
from fakes import whatsapp as meta


@pytest.fixture
async def graph() -> AsyncIterator[meta.FakeGraph]:
    fake = meta.FakeGraph()
    async with LiveServer(fake.app) as server:
        fake.base = f"{server.http}/{meta.VERSION}"
        yield fake


async def connect_whatsapp(office: Desk, graph: meta.FakeGraph) -> dict[str, Any]:
    return await office.connect(
        "whatsapp",
        {"phone_number_id": meta.PHONE_NUMBER_ID, "waba_id": meta.WABA_ID, "api_base": graph.base},
        {
            "access_token": meta.ACCESS_TOKEN,
            "app_secret": meta.APP_SECRET,
            "verify_token": meta.VERIFY_TOKEN,
        },
    )


async def post_webhook(
    app: FastAPI,
    account: dict[str, Any],
    payload: dict[str, Any] | bytes,
    signature: str | None = None,
) -> httpx.Response:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    headers = {
        "content-type": "application/json",
        "x-hub-signature-256": signature or meta.sign(body),
    }
    path = account["webhook_url"].split("://", 1)[1].split("/", 1)[1]
    async with api_client(app) as provider:
        return await provider.post(f"/{path}", content=body, headers=headers)


async def stored_events(office: Desk) -> list[InboundEvent]:
    async with office.db.session(Scope.tenant(office.tenant.id), read_only=True) as session:
        return list((await session.scalars(select(InboundEvent))).all())


async def test_whatsapp_end_to_end_with_statuses(app: FastAPI, graph: meta.FakeGraph) -> None:
    office = await desk(app, ["whatsapp"])
    account = await connect_whatsapp(office, graph)

    first = await post_webhook(app, account, meta.WEBHOOK_TEXT_MESSAGE)
    again = await post_webhook(app, account, meta.WEBHOOK_TEXT_MESSAGE)
    assert (first.status_code, first.json()) == (200, {"status": "stored"})
    assert (again.status_code, again.json()) == (200, {"status": "duplicate"})
    await office.run_jobs()

    (interaction,) = await office.interactions()
    assert interaction.status is InteractionStatus.assigned
    assert interaction.agent_id == office.agent.user.id
    (inbound,) = await office.messages(interaction.id)
    assert inbound.body == "Does it come in another color?"

    reply = await office.reply(interaction.id, "¡Hola Sheena! ¿En qué te ayudo?")
    assert reply["status"] == "pending"
    await office.run_jobs()

    (sent,) = graph.calls("/messages")
    assert sent.json() == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": "16505551234",
        "type": "text",
        "text": {"preview_url": False, "body": "¡Hola Sheena! ¿En qué te ayudo?"},
    }
    outbound = (await office.messages(interaction.id))[-1]
    assert outbound.status is MessageStatus.sent
    provider_id = outbound.provider_id
    assert provider_id is not None
    assert provider_id.startswith("wamid.")

    read = copy.deepcopy(meta.WEBHOOK_STATUS_READ)
    delivered = copy.deepcopy(meta.WEBHOOK_STATUS_DELIVERED)
    for status in (read, delivered):
        status["entry"][0]["changes"][0]["value"]["statuses"][0]["id"] = provider_id
    for status in (read, delivered):  # out of order: read arrives first
        assert (await post_webhook(app, account, status)).status_code == 200
    await office.run_jobs()
    assert (await office.messages(interaction.id))[-1].status is MessageStatus.read


async def test_a_bad_signature_is_refused_and_nothing_is_stored(
    app: FastAPI, graph: meta.FakeGraph
) -> None:
    office = await desk(app, ["whatsapp"])
    account = await connect_whatsapp(office, graph)
    body = json.dumps(meta.WEBHOOK_TEXT_MESSAGE).encode()
    for signature in ("sha256=" + "0" * 64, meta.sign(body, "another-secret")):
        response = await post_webhook(app, account, body, signature)
        assert (response.status_code, response.json()["code"]) == (401, "webhook_signature_invalid")
    assert await stored_events(office) == []
    async with api_client(app) as provider:
        unknown = await provider.post("/webhooks/whatsapp/not-a-key", content=body)
    assert unknown.status_code == 404


async def test_a_malformed_payload_is_kept_for_inspection_and_answered_400(
    app: FastAPI, graph: meta.FakeGraph
) -> None:
    office = await desk(app, ["whatsapp"])
    account = await connect_whatsapp(office, graph)
    response = await post_webhook(app, account, b"{not json")
    assert (response.status_code, response.json()["code"]) == (400, "webhook_payload_malformed")
    (event,) = await stored_events(office)
    assert event.status is InboundStatus.rejected
    events = await office.admin.client.get(
        f"/api/v1/channels/{account['id']}/events", params={"status": "rejected"}
    )
    assert events.json()[0]["body"] == "{not json"
    assert await office.run_jobs() == 0


async def test_the_verification_handshake_echoes_the_challenge(
    app: FastAPI, graph: meta.FakeGraph
) -> None:
    office = await desk(app, ["whatsapp"])
    account = await connect_whatsapp(office, graph)
    path = "/" + account["webhook_url"].split("://", 1)[1].split("/", 1)[1]
    async with api_client(app) as provider:
        ok = await provider.get(
            path,
            params={
                "hub.mode": "subscribe",
                "hub.challenge": "1158201444",
                "hub.verify_token": meta.VERIFY_TOKEN,
            },
        )
        wrong = await provider.get(
            path,
            params={
                "hub.mode": "subscribe",
                "hub.challenge": "1158201444",
                "hub.verify_token": "guess",
            },
        )
    assert (ok.status_code, ok.text) == (200, "1158201444")
    assert wrong.status_code in (401, 403)


async def test_secrets_are_write_only_and_sealed_at_rest(
    app: FastAPI, graph: meta.FakeGraph
) -> None:
    office = await desk(app, ["whatsapp"])
    account = await connect_whatsapp(office, graph)
    assert account["secrets_set"] == ["access_token", "app_secret", "verify_token"]
    listed = (await office.admin.client.get("/api/v1/channels")).json()
    assert meta.ACCESS_TOKEN not in json.dumps(listed)
    stored = await office.account(account["id"])
    assert meta.ACCESS_TOKEN not in stored.sealed_secrets
    renamed = await office.admin.client.patch(
        f"/api/v1/channels/{account['id']}",
        json={"name": "Ventas", "secrets": {"access_token": ""}},
    )
    assert renamed.json()["secrets_set"] == ["access_token", "app_secret", "verify_token"]
    unknown = await office.admin.client.patch(
        f"/api/v1/channels/{account['id']}", json={"secrets": {"password": "x"}}
    )
    assert (unknown.status_code, unknown.json()["code"]) == (422, "unknown_channel_field")
    assert (await office.agent.client.post("/api/v1/channels", json={})).status_code in (403, 422)


async def test_429_is_retried_after_the_providers_delay_then_sent(
    app: FastAPI, graph: meta.FakeGraph
) -> None:
    office = await desk(app, ["whatsapp"])
    account = await connect_whatsapp(office, graph)
    await post_webhook(app, account, meta.WEBHOOK_TEXT_MESSAGE)
    await office.run_jobs()
    (interaction,) = await office.interactions()
    graph.reply(
        "messages", 429, meta.graph_error(130429, "Rate limit hit"), **{"Retry-After": "30"}
    )
    await office.reply(interaction.id, "Un momento")
    await office.run_jobs()
    assert (await office.messages(interaction.id))[-1].status is MessageStatus.pending
    app.state.atiende.clock.advance(timedelta(seconds=31))
    await office.run_jobs()
    assert len(graph.calls("/messages")) == 2
    assert (await office.messages(interaction.id))[-1].status is MessageStatus.sent


async def test_a_final_refusal_fails_the_message_with_its_reason(
    app: FastAPI, graph: meta.FakeGraph
) -> None:
    office = await desk(app, ["whatsapp"])
    account = await connect_whatsapp(office, graph)
    await post_webhook(app, account, meta.WEBHOOK_TEXT_MESSAGE)
    await office.run_jobs()
    (interaction,) = await office.interactions()
    graph.reply("messages", 400, meta.graph_error(131026, "Message undeliverable"))
    await office.reply(interaction.id, "Hola")
    await office.run_jobs()
    failed = (await office.messages(interaction.id))[-1]
    assert failed.status is MessageStatus.failed
    assert "131026" in (failed.error or "")
    async with office.db.session(Scope.tenant(office.tenant.id), read_only=True) as session:
        assert await session.scalar(select(func.count(Delivery.id))) == 1


async def test_outside_the_24_hour_window_only_templates_go(
    app: FastAPI, graph: meta.FakeGraph
) -> None:
    office = await desk(app, ["whatsapp"])
    account = await connect_whatsapp(office, graph)
    await post_webhook(app, account, meta.WEBHOOK_TEXT_MESSAGE)
    await office.run_jobs()
    (interaction,) = await office.interactions()
    app.state.atiende.clock.advance(timedelta(hours=25))
    refused = await office.agent.client.post(
        f"/api/v1/interactions/{interaction.id}/messages", json={"body": "¿Sigues ahí?"}
    )
    assert (refused.status_code, refused.json()["code"]) == (409, "whatsapp_window_closed")
    graph.template_pages = [
        [
            {
                "name": "seguimiento",
                "language": "es_MX",
                "status": "APPROVED",
                "category": "UTILITY",
                "components": [{"type": "BODY", "text": "Hola {{1}}, ¿podemos ayudarte?"}],
                "id": "1",
            }
        ]
    ]
    synced = await office.admin.client.post(
        f"/api/v1/channels/{account['id']}/actions/sync_templates"
    )
    assert synced.status_code == 200, synced.text
    sent = await office.agent.client.post(
        f"/api/v1/interactions/{interaction.id}/template",
        json={"name": "seguimiento", "language": "es_MX", "parameters": ["Sheena"]},
    )
    assert sent.status_code == 201, sent.text
    assert sent.json()["body"] == "Hola Sheena, ¿podemos ayudarte?"
    await office.run_jobs()
    (request,) = graph.calls("/messages")
    assert request.json()["type"] == "template"
    assert request.json()["template"]["name"] == "seguimiento"


async def test_a_voice_only_tenant_cannot_connect_a_channel(
    app: FastAPI, graph: meta.FakeGraph
) -> None:
    from datetime import UTC, date, datetime

    from atiende.identity.models import Role
    from atiende.tenancy.models import DeploymentMode
    from billing_factories import install_licence
    from factories import caller, make_tenant
    from routing_factories import make_queue

    app.state.atiende.clock.set(datetime(2026, 11, 20, 12, tzinfo=UTC))
    db = app.state.atiende.db
    tenant = await make_tenant(db, deployment_mode=DeploymentMode.on_premise)
    await install_licence(db, license="voice", agents=10, valid_until=date(2026, 12, 31))
    queue = await make_queue(db, tenant, channels=["whatsapp"])
    admin = await caller(app, tenant, Role.admin)
    response = await admin.client.post(
        "/api/v1/channels",
        json={
            "kind": "whatsapp",
            "name": "WA",
            "queue_id": str(queue.id),
            "settings": {},
            "secrets": {},
        },
    )
    assert (response.status_code, response.json()["code"]) == (403, "license_type_voice_only")


# --- Telegram, SMS and the API channel end to end ------------------------------------------


def webhook_path(account: dict[str, Any]) -> str:
    return "/" + account["webhook_url"].split("://", 1)[1].split("/", 1)[1]


async def test_telegram_end_to_end_and_a_blocked_bot(app: FastAPI) -> None:
    from fakes.telegram import FakeTelegram

    token = "123456789:AAEhBOweik6ad9r_QXMENQjcrGbqCr4K-Ec"
    bot = FakeTelegram(token)
    app.state.atiende.settings.public_url = "https://cc.example.com"  # Telegram wants HTTPS
    async with LiveServer(bot.app) as server:
        bot.base = server.http
        office = await desk(app, ["telegram"])
        account = await office.connect(
            "telegram",
            {"api_base": server.http},
            {"bot_token": token, "webhook_secret": "s3cr3t_Token-123"},
        )
        registered = await office.admin.client.post(
            f"/api/v1/channels/{account['id']}/actions/set_webhook"
        )
        assert registered.status_code == 200, registered.text
        (set_webhook,) = bot.calls("setWebhook")
        assert set_webhook.json["url"] == account["webhook_url"]
        assert set_webhook.json["secret_token"] == "s3cr3t_Token-123"

        update = {
            "update_id": 10000,
            "message": {
                "message_id": 1365,
                "from": {"id": 1111111, "is_bot": False, "first_name": "Ana"},
                "chat": {"id": 1111111, "first_name": "Ana", "type": "private"},
                "date": 1441645532,
                "text": "Hola, necesito ayuda con mi pedido",
            },
        }
        async with api_client(app) as telegram:
            wrong = await telegram.post(
                webhook_path(account),
                json=update,
                headers={"X-Telegram-Bot-Api-Secret-Token": "guess"},
            )
            assert wrong.status_code == 401
            for _ in range(2):  # Telegram redelivers until it gets a 200
                ok = await telegram.post(
                    webhook_path(account),
                    json=update,
                    headers={"X-Telegram-Bot-Api-Secret-Token": "s3cr3t_Token-123"},
                )
                assert ok.status_code == 200
        await office.run_jobs()
        (interaction,) = await office.interactions()
        assert [m.body for m in await office.messages(interaction.id)] == [
            "Hola, necesito ayuda con mi pedido"
        ]
        await office.reply(interaction.id, "¡Claro! ¿Cuál es tu número de pedido?")
        await office.run_jobs()
        (sent,) = bot.calls("sendMessage")
        assert str(sent.json["chat_id"]) == "1111111"
        assert sent.json["text"] == "¡Claro! ¿Cuál es tu número de pedido?"
        assert (await office.messages(interaction.id))[-1].status is MessageStatus.sent

        bot.answer_next(
            "sendMessage",
            403,
            {
                "ok": False,
                "error_code": 403,
                "description": "Forbidden: bot was blocked by the user",
            },
        )
        await office.reply(interaction.id, "¿Sigues ahí?")
        await office.run_jobs()
        blocked = (await office.messages(interaction.id))[-1]
        assert blocked.status is MessageStatus.failed
        assert "bot_blocked" in (blocked.error or "")


async def test_sms_end_to_end_with_a_status_callback(app: FastAPI) -> None:
    from atiende.channels.adapters.twilio_sms import compute_signature
    from fakes.twilio import ACCOUNT_SID, AUTH_TOKEN, running_twilio

    async with running_twilio() as (twilio, server):
        office = await desk(app, ["sms"])
        account = await office.connect(
            "sms",
            {"account_sid": ACCOUNT_SID, "from_number": "+14155550100", "api_base": server.http},
            {"auth_token": AUTH_TOKEN},
        )
        url = account["webhook_url"]

        async def post_form(params: dict[str, str], signature: str | None = None) -> httpx.Response:
            signed = signature or compute_signature(
                AUTH_TOKEN, url, {k: [v] for k, v in params.items()}
            )
            async with api_client(app) as provider:
                return await provider.post(
                    webhook_path(account), data=params, headers={"X-Twilio-Signature": signed}
                )

        inbound = {
            "MessageSid": "SM1234567890abcdef1234567890abcdef",
            "AccountSid": ACCOUNT_SID,
            "From": "+14155550123",
            "To": "+14155550100",
            "Body": "Hi, where is my order?",
            "NumMedia": "0",
        }
        assert (await post_form(inbound, "bad")).status_code == 401
        answer = await post_form(inbound)
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/xml")
        await office.run_jobs()
        (interaction,) = await office.interactions()
        await office.reply(interaction.id, "It ships tomorrow.")
        await office.run_jobs()
        (create,) = [r for r in twilio.requests if r.path.endswith("/Messages.json")]
        form = dict(create.form) if hasattr(create, "form") else {}
        assert form.get("To") in (
            "+14155550123",
            ["+14155550123"],
        ) or b"To=%2B14155550123" in getattr(create, "body", b"")
        sent = (await office.messages(interaction.id))[-1]
        assert sent.status is MessageStatus.sent
        assert sent.provider_id is not None
        delivered = {
            "MessageSid": sent.provider_id,
            "MessageStatus": "delivered",
            "AccountSid": ACCOUNT_SID,
            "From": "+14155550100",
            "To": "+14155550123",
        }
        assert (await post_form(delivered)).status_code == 200
        await office.run_jobs()
        assert (await office.messages(interaction.id))[-1].status is MessageStatus.delivered


async def test_api_channel_end_to_end_signed_both_ways(app: FastAPI) -> None:
    import hashlib
    import hmac

    from fakes.customer_api import FakeCustomer

    customer = FakeCustomer()
    async with LiveServer(customer.build_app()) as server:
        office = await desk(app, ["api"])
        account = await office.connect(
            "api",
            {"outbound_url": f"{server.http}/hook", "allow_private_network": True},
            {"inbound_token": "in-token-123", "signing_secret": "whsec-123"},
        )
        message = {
            "message_id": "m-1",
            "from": {"id": "cust-42", "name": "Luz"},
            "text": "Quiero cambiar mi cita",
        }
        async with api_client(app) as caller_system:
            refused = await caller_system.post(
                webhook_path(account), json=message, headers={"Authorization": "Bearer wrong"}
            )
            assert refused.status_code == 401
            for _ in range(2):
                ok = await caller_system.post(
                    webhook_path(account),
                    json=message,
                    headers={"Authorization": "Bearer in-token-123"},
                )
                assert ok.status_code == 200
        await office.run_jobs()
        (interaction,) = await office.interactions()
        await office.reply(interaction.id, "Claro, ¿para qué día?")
        await office.run_jobs()
        (request,) = customer.requests
        timestamp = request.headers["x-atiende-timestamp"]
        expected = hmac.new(
            b"whsec-123", timestamp.encode() + b"." + request.body, hashlib.sha256
        ).hexdigest()
        assert request.headers["x-atiende-signature"] == f"sha256={expected}"
        assert json.loads(request.body)["text"] == "Claro, ¿para qué día?"
        sent = (await office.messages(interaction.id))[-1]
        assert sent.status is MessageStatus.sent
        async with api_client(app) as caller_system:
            status = {"status": {"message_id": sent.provider_id, "status": "read", "error": None}}
            ok = await caller_system.post(
                webhook_path(account), json=status, headers={"Authorization": "Bearer in-token-123"}
            )
            assert ok.status_code == 200
        await office.run_jobs()
        assert (await office.messages(interaction.id))[-1].status is MessageStatus.read


# --- every inbound fixture, delivered twice, has one effect ---------------------------------


def _whatsapp_fixtures() -> list[dict[str, Any]]:
    return [
        meta.WEBHOOK_TEXT_MESSAGE,
        meta.WEBHOOK_STATUS_SENT,
        meta.WEBHOOK_STATUS_DELIVERED,
        meta.WEBHOOK_STATUS_READ,
        meta.WEBHOOK_STATUS_FAILED,
    ]


async def _effects(office: Desk) -> tuple[int, int, list[str]]:
    interactions = await office.interactions()
    bodies = [m.body for i in interactions for m in await office.messages(i.id)]
    return len(interactions), len(bodies), sorted(bodies)


@pytest.mark.parametrize("index", range(5))
async def test_each_whatsapp_fixture_replayed_has_one_effect(
    app: FastAPI, graph: meta.FakeGraph, index: int
) -> None:
    office = await desk(app, ["whatsapp"])
    account = await connect_whatsapp(office, graph)
    payload = _whatsapp_fixtures()[index]
    assert (await post_webhook(app, account, payload)).json() == {"status": "stored"}
    await office.run_jobs()
    once = await _effects(office)
    for _ in range(2):
        assert (await post_webhook(app, account, payload)).json() == {"status": "duplicate"}
    await office.run_jobs()
    assert await _effects(office) == once
    assert len(await stored_events(office)) == 1


@pytest.mark.parametrize(
    "update_name",
    [
        "UPDATE_TEXT_PRIVATE",
        "UPDATE_TEXT_PRIVATE_OFFICIAL_SAMPLE",
        "UPDATE_COMMAND_START",
        "UPDATE_CALLBACK_QUERY",
    ],
)
async def test_each_telegram_fixture_replayed_has_one_effect(
    app: FastAPI, update_name: str
) -> None:
    import test_channel_telegram as fixtures

    office = await desk(app, ["telegram"])
    account = await office.connect(
        "telegram",
        {"api_base": "http://127.0.0.1:9"},
        {"bot_token": fixtures.TOKEN, "webhook_secret": fixtures.SECRET},
    )
    update = getattr(fixtures, update_name)
    headers = {"X-Telegram-Bot-Api-Secret-Token": fixtures.SECRET}
    async with api_client(app) as telegram:
        first = await telegram.post(webhook_path(account), json=update, headers=headers)
        assert first.json() == {"status": "stored"}
        await office.run_jobs()
        once = await _effects(office)
        assert once[1] == 1
        for _ in range(2):
            again = await telegram.post(webhook_path(account), json=update, headers=headers)
            assert again.json() == {"status": "duplicate"}
    await office.run_jobs()
    assert await _effects(office) == once


@pytest.mark.parametrize("name", ["INBOUND_SMS", "STATUS_DELIVERED", "STATUS_UNDELIVERED"])
async def test_each_sms_fixture_replayed_has_one_effect(app: FastAPI, name: str) -> None:
    import test_channel_twilio_sms as fixtures
    from atiende.channels.adapters.twilio_sms import compute_signature
    from fakes.twilio import ACCOUNT_SID, AUTH_TOKEN

    office = await desk(app, ["sms"])
    account = await office.connect(
        "sms",
        {
            "account_sid": ACCOUNT_SID,
            "from_number": "+14155550100",
            "api_base": "http://127.0.0.1:9",
        },
        {"auth_token": AUTH_TOKEN},
    )
    params = dict(getattr(fixtures, name))
    signature = compute_signature(
        AUTH_TOKEN, account["webhook_url"], {k: [v] for k, v in params.items()}
    )
    async with api_client(app) as twilio:
        for attempt in range(3):
            answer = await twilio.post(
                webhook_path(account), data=params, headers={"X-Twilio-Signature": signature}
            )
            assert answer.status_code == 200
            await office.run_jobs()
            if attempt == 0:
                once = await _effects(office)
    assert await _effects(office) == once
    assert len(await stored_events(office)) == 1


async def test_the_api_channel_is_documented_in_openapi_with_examples(app: FastAPI) -> None:
    async with api_client(app) as anyone:
        spec = (await anyone.get("/openapi.json")).json()
    operation = spec["paths"]["/webhooks/api/{webhook_key}"]["post"]
    examples = operation["requestBody"]["content"]["application/json"]["examples"]
    assert examples["message"]["value"]["message_id"] == "msg-20260115-0001"
    assert "status" in examples["status"]["value"]
