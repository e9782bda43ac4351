"""Events reach browsers live, scoped to their tenant, across nodes, and resume without loss."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus

from atiende.core.bus import InProcessBus, RedisBus
from atiende.core.clock import TestClock
from atiende.core.config import Settings
from atiende.core.db import Database, Scope
from atiende.identity.models import Role
from atiende.realtime import service as realtime
from atiende.web.app import create_app
from factories import PASSWORD, LiveServer, make_tenant, make_token, make_user


@asynccontextmanager
async def socket(url: str, token: str, **query: Any) -> AsyncIterator[Any]:
    params = "&".join(f"{k}={v}" for k, v in query.items())
    async with websockets.connect(
        f"{url}?{params}", additional_headers={"Authorization": f"Bearer {token}"}
    ) as ws:
        yield ws


async def next_message(ws: Any, kind: str, timeout: float = 5.0) -> dict[str, Any]:
    async def wait() -> dict[str, Any]:
        while True:
            message = json.loads(await ws.recv())
            if message["type"] == kind:
                return message
            if message["type"] == "heartbeat":
                await ws.send(json.dumps({"type": "pong"}))

    return await asyncio.wait_for(wait(), timeout)


async def create_user_via_api(base: str, token: str, email: str) -> None:
    async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {token}"}) as c:
        response = await c.post(
            "/api/v1/users",
            json={"email": email, "name": email, "role": "agent", "password": PASSWORD},
        )
        assert response.status_code == 201, response.text


async def test_a_browser_receives_its_tenants_events_live(
    settings: Settings, clock: TestClock
) -> None:
    app = create_app(settings, clock=clock, run_worker=False)
    async with LiveServer(app) as server:
        db: Database = app.state.atiende.db
        tenant = await make_tenant(db)
        token = await make_token(db, await make_user(db, tenant, Role.admin))
        async with socket(server.ws, token) as ws:
            await next_message(ws, "hello")
            await create_user_via_api(server.http, token, "live@example.com")
            event = (await next_message(ws, "event"))["event"]
    assert event["type"] == "user.created"
    assert event["tenant_id"] == str(tenant.id)
    assert event["data"]["role"] == "agent"


async def test_another_tenants_events_never_arrive(settings: Settings, clock: TestClock) -> None:
    # API calls happen between reads: a heartbeat the test does not answer must not end it
    settings = settings.model_copy(update={"websocket_heartbeat_seconds": 5.0})
    app = create_app(settings, clock=clock, run_worker=False)
    async with LiveServer(app) as server:
        db: Database = app.state.atiende.db
        acme, globex = await make_tenant(db), await make_tenant(db)
        acme_token = await make_token(db, await make_user(db, acme))
        globex_token = await make_token(db, await make_user(db, globex))
        async with socket(server.ws, globex_token) as ws:
            await next_message(ws, "hello")
            await create_user_via_api(server.http, acme_token, "acme-only@example.com")
            await create_user_via_api(server.http, globex_token, "globex@example.com")
            event = (await next_message(ws, "event"))["event"]
    assert event["tenant_id"] == str(globex.id)


async def test_a_reconnecting_client_resumes_from_its_last_event_without_loss(
    settings: Settings, clock: TestClock
) -> None:
    app = create_app(settings, clock=clock, run_worker=False)
    async with LiveServer(app) as server:
        db: Database = app.state.atiende.db
        tenant = await make_tenant(db)
        token = await make_token(db, await make_user(db, tenant))
        async with socket(server.ws, token) as ws:
            await next_message(ws, "hello")
            await create_user_via_api(server.http, token, "one@example.com")
            last_seen = (await next_message(ws, "event"))["event"]["id"]
        # Offline: two more things happen.
        await create_user_via_api(server.http, token, "two@example.com")
        await create_user_via_api(server.http, token, "three@example.com")
        async with socket(server.ws, token, last_event_id=last_seen) as ws:
            replayed = [(await next_message(ws, "event"))["event"] for _ in range(2)]
            hello = await next_message(ws, "hello")
            await create_user_via_api(server.http, token, "four@example.com")
            live = (await next_message(ws, "event"))["event"]
    ids = [e["id"] for e in replayed] + [live["id"]]
    assert ids == sorted(set(ids)), "in order, no duplicates"
    assert all(i > last_seen for i in ids)
    assert [e["type"] for e in replayed] == ["user.created", "user.created"]
    assert hello["last_event_id"] == replayed[-1]["id"]


async def test_heartbeats_flow_and_topics_filter_events(
    settings: Settings, clock: TestClock
) -> None:
    app = create_app(settings, clock=clock, run_worker=False)
    async with LiveServer(app) as server:
        db: Database = app.state.atiende.db
        tenant = await make_tenant(db)
        token = await make_token(db, await make_user(db, tenant))
        async with socket(server.ws, token, topics="tenant") as ws:
            hello = await next_message(ws, "hello")
            heartbeat = json.loads(await asyncio.wait_for(ws.recv(), 5))
            assert heartbeat["type"] == "heartbeat"
            await create_user_via_api(server.http, token, "filtered@example.com")
            async with httpx.AsyncClient(
                base_url=server.http, headers={"Authorization": f"Bearer {token}"}
            ) as client:
                await client.patch("/api/v1/tenant", json={"locale": "en"})
            event = (await next_message(ws, "event"))["event"]
    assert hello["heartbeat_seconds"] == settings.websocket_heartbeat_seconds
    assert event["type"] == "tenant.updated"
    assert event["data"]["changes"] == ["locale"]


async def test_unauthenticated_sockets_are_refused(settings: Settings, clock: TestClock) -> None:
    app = create_app(settings, clock=clock, run_worker=False)
    async with LiveServer(app) as server:
        with pytest.raises(InvalidStatus) as refused:
            async with websockets.connect(server.ws):
                pass
    assert refused.value.response.status_code == 403


async def test_cookie_sockets_from_another_origin_are_refused(
    settings: Settings, clock: TestClock
) -> None:
    app = create_app(settings, clock=clock, run_worker=False)
    async with LiveServer(app) as server:
        db: Database = app.state.atiende.db
        user = await make_user(db, await make_tenant(db))
        async with httpx.AsyncClient(base_url=server.http) as client:
            await client.post(
                "/api/v1/auth/login", json={"email": user.email, "password": PASSWORD}
            )
            cookie = client.cookies["atiende_session"]
        headers = {"Cookie": f"atiende_session={cookie}"}
        async with websockets.connect(
            server.ws, additional_headers=headers, origin=server.http
        ) as ws:
            assert (await next_message(ws, "hello"))["type"] == "hello"
        with pytest.raises(InvalidStatus) as refused:
            async with websockets.connect(
                server.ws, additional_headers=headers, origin="https://evil.example.com"
            ):
                pass
    assert refused.value.response.status_code == 403


def _node(settings: Settings, clock: TestClock, bus: Any) -> Any:
    # A long heartbeat, so only the bus (not the heartbeat's re-read of the log) can deliver.
    return create_app(
        settings.model_copy(update={"websocket_heartbeat_seconds": 60}),
        clock=clock,
        bus=bus,
        run_worker=False,
    )


@pytest.mark.redis
async def test_an_event_made_on_one_node_reaches_a_socket_on_another_through_redis(
    settings: Settings, clock: TestClock, redis_url: str
) -> None:
    node_a = _node(settings, clock, RedisBus(redis_url, channel="atiende:test:events"))
    node_b = _node(settings, clock, RedisBus(redis_url, channel="atiende:test:events"))
    async with LiveServer(node_a) as a, LiveServer(node_b) as b:
        db: Database = node_a.state.atiende.db
        token = await make_token(db, await make_user(db, await make_tenant(db)))
        async with socket(b.ws, token) as ws:
            await next_message(ws, "hello")
            await create_user_via_api(a.http, token, "cross-node@example.com")
            event = (await next_message(ws, "event", timeout=3))["event"]
    assert event["type"] == "user.created"


async def test_without_redis_nodes_do_not_share_live_events(
    settings: Settings, clock: TestClock
) -> None:
    """The control for the test above: with in-process buses, node B hears nothing live."""
    node_a = _node(settings, clock, InProcessBus())
    node_b = _node(settings, clock, InProcessBus())
    async with LiveServer(node_a) as a, LiveServer(node_b) as b:
        db: Database = node_a.state.atiende.db
        token = await make_token(db, await make_user(db, await make_tenant(db)))
        async with socket(b.ws, token) as ws:
            await next_message(ws, "hello")
            await create_user_via_api(a.http, token, "isolated@example.com")
            with pytest.raises(TimeoutError):
                await next_message(ws, "event", timeout=1)


async def test_a_socket_closes_once_its_session_ends(settings: Settings, clock: TestClock) -> None:
    app = create_app(settings, clock=clock, run_worker=False)
    async with LiveServer(app) as server:
        db: Database = app.state.atiende.db
        user = await make_user(db, await make_tenant(db))
        async with httpx.AsyncClient(base_url=server.http) as client:
            login = await client.post(
                "/api/v1/auth/login", json={"email": user.email, "password": PASSWORD}
            )
            cookie = client.cookies["atiende_session"]
            async with websockets.connect(
                server.ws, additional_headers={"Cookie": f"atiende_session={cookie}"}
            ) as ws:
                await next_message(ws, "hello")
                await client.post(
                    "/api/v1/auth/logout", headers={"X-CSRF-Token": login.json()["csrf_token"]}
                )
                with pytest.raises(ConnectionClosed) as closed:
                    await next_message(ws, "never", timeout=5)
    assert closed.value.rcvd is not None
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (1008, "session_ended")


async def test_resuming_past_the_retained_log_asks_the_client_to_reload(
    settings: Settings, clock: TestClock
) -> None:
    app = create_app(settings, clock=clock, run_worker=False)
    async with LiveServer(app) as server:
        db: Database = app.state.atiende.db
        tenant = await make_tenant(db)
        token = await make_token(db, await make_user(db, tenant))
        for n in range(3):
            await create_user_via_api(server.http, token, f"old{n}@example.com")
        clock.advance(realtime.EVENT_RETENTION.total_seconds() + 1)
        async with db.session(Scope.system()) as session:
            assert await realtime.prune(session) > 0
        await create_user_via_api(server.http, token, "recent@example.com")
        async with socket(server.ws, token, last_event_id=1) as ws:
            hello = await next_message(ws, "hello")
            reset = json.loads(await asyncio.wait_for(ws.recv(), 5))
    assert reset == {"type": "reset"}
    assert hello["last_event_id"] > 1


async def test_conversation_content_reaches_only_its_agent_and_supervisors(
    settings: Settings, clock: TestClock
) -> None:
    from atiende.contacts import service as contacts
    from atiende.contacts.models import IdentityKind
    from atiende.conversations import service as conversations
    from atiende.conversations.models import Channel, MessageDirection

    app = create_app(settings, clock=clock, run_worker=False)
    async with LiveServer(app) as server:
        db: Database = app.state.atiende.db
        tenant = await make_tenant(db)
        mine = await make_user(db, tenant, Role.agent)
        other = await make_user(db, tenant, Role.agent)
        boss = await make_user(db, tenant, Role.supervisor)
        tokens = {u.id: await make_token(db, u) for u in (mine, other, boss)}
        async with (
            socket(server.ws, tokens[mine.id]) as ws_mine,
            socket(server.ws, tokens[other.id]) as ws_other,
            socket(server.ws, tokens[boss.id]) as ws_boss,
        ):
            for ws in (ws_mine, ws_other, ws_boss):
                await next_message(ws, "hello")
            async with db.session(Scope.tenant(tenant.id)) as session:
                contact = await contacts.find_or_create_by_identity(
                    session, IdentityKind.webchat, "private-visitor"
                )
                interaction = await conversations.open_interaction(
                    session, channel=Channel.webchat, contact_id=contact.id
                )
                interaction.agent_id = mine.id
                await conversations.add_message(
                    session,
                    interaction,
                    direction=MessageDirection.inbound,
                    author_kind="contact",
                    body="my card number is secret",
                )
            for ws in (ws_mine, ws_boss):
                event = (await next_message(ws, "event"))["event"]
                assert event["type"] == "message.added"
                assert event["data"]["body"] == "my card number is secret"
            with pytest.raises(TimeoutError):
                await next_message(ws_other, "event", timeout=1.5)
