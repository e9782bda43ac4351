"""The websocket hub: authenticated, tenant-scoped event streams for browsers.

Protocol (JSON text frames):

- connect to ``/ws?last_event_id=N&topics=user,tenant`` (cookie or ``Authorization: Bearer``);
- server → ``{"type": "hello", "last_event_id": M, "heartbeat_seconds": H}``;
- server → ``{"type": "event", "event": {id, type, tenant_id, occurred_at, data}}``;
- server → ``{"type": "heartbeat", "last_event_id": M}`` every H seconds; the client answers
  ``{"type": "pong"}``, and a client silent for 3·H is dropped;
- client → ``{"type": "subscribe", "topics": [...]}`` replaces the topic filter;
- server → ``{"type": "reset"}`` right after ``hello`` when the requested ``last_event_id`` is
  older than the retained log: the client must reload its state instead of replaying;
- the credentials are checked again on every heartbeat: after logout, deactivation or a
  password change the socket closes with code 1008 (``session_ended``).

Resume: the hub subscribes to the bus *before* reading the backlog after ``last_event_id``
from the event log, and drops duplicates by id, so nothing falls between the two. On every
heartbeat it re-reads the log from a little behind the newest id it sent, which covers events
the bus lost (a Redis reconnect) and transactions that committed out of id order.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import deque
from urllib.parse import urlsplit

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from atiende.core.db import Scope
from atiende.core.events import EventEnvelope
from atiende.core.metrics import EVENTS_DELIVERED, WEBSOCKETS
from atiende.identity.models import Role
from atiende.realtime import service as realtime
from atiende.web.deps import SESSION_COOKIE, Principal, bearer_of, resolve_principal
from atiende.web.socket_pump import pump
from atiende.web.state import AppState

log = logging.getLogger(__name__)
router = APIRouter()

# How far behind the newest sent id a heartbeat re-reads; ids are allocated before commit,
# so a slow transaction can land slightly below ids already delivered.
REREAD_WINDOW = 200
# Roles that receive conversation events of every agent (the wallboard, reading any chat).
SEES_EVERYTHING = frozenset({Role.supervisor, Role.admin})
RECENT_IDS = 5000
WS_POLICY_VIOLATION = 1008


def _topics(raw: str | None) -> list[str]:
    return [t.strip() for t in (raw or "").split(",") if t.strip()]


def _same_origin(websocket: WebSocket) -> bool:
    origin = websocket.headers.get("origin")
    if origin is None:
        return True  # not a browser
    return urlsplit(origin).netloc == websocket.headers.get("host")


class Subscriber:
    def __init__(self, websocket: WebSocket, principal: Principal, topics: list[str]) -> None:
        self.websocket = websocket
        self.principal = principal
        self.topics = topics
        self.queue: asyncio.Queue[EventEnvelope] = asyncio.Queue(maxsize=10_000)
        self.sent: deque[int] = deque(maxlen=RECENT_IDS)
        self.sent_set: set[int] = set()
        self.high_water = 0
        # Where this client's history starts: re-reads never reach below it, so a fresh
        # connection is not sent events from before it connected.
        self.floor = 0

    def visible(self, envelope: EventEnvelope) -> bool:
        return realtime.visible_to(
            envelope,
            self.principal.tenant_id,
            self.topics,
            user_id=self.principal.user_id,
            sees_everything=self.principal.role in SEES_EVERYTHING
            or self.principal.actor.is_vendor,
        )

    def offer(self, envelope: EventEnvelope) -> None:
        if not self.visible(envelope):
            return
        with contextlib.suppress(asyncio.QueueFull):
            # Too slow a reader loses live events here; the heartbeat re-read refills them.
            self.queue.put_nowait(envelope)

    async def send(self, envelope: EventEnvelope) -> None:
        if envelope.id in self.sent_set:
            return
        if not self.visible(envelope):
            return
        await self.websocket.send_text(
            json.dumps({"type": "event", "event": envelope.model_dump(mode="json")})
        )
        EVENTS_DELIVERED.inc()
        if len(self.sent) == self.sent.maxlen:
            self.sent_set.discard(self.sent[0])
        self.sent.append(envelope.id)
        self.sent_set.add(envelope.id)
        self.high_water = max(self.high_water, envelope.id)


async def _authenticate(state: AppState, websocket: WebSocket) -> Principal | None:
    return await resolve_principal(
        state,
        bearer_of(websocket.headers.get("authorization")),
        websocket.cookies.get(SESSION_COOKIE),
    )


async def _fill_from_log(state: AppState, sub: Subscriber, after_id: int) -> None:
    while True:
        async with state.db.session(Scope.system(), read_only=True) as session:
            batch = await realtime.events_after(
                session, tenant_id=sub.principal.tenant_id, after_id=after_id
            )
        for envelope in batch:
            await sub.send(envelope)
        if len(batch) < realtime.BACKLOG_LIMIT:
            return
        after_id = batch[-1].id


@router.websocket("/ws")
async def websocket_endpoint(websocket: WebSocket) -> None:
    state: AppState = websocket.app.state.atiende
    principal = await _authenticate(state, websocket)
    if principal is None or (principal.actor.via == "session" and not _same_origin(websocket)):
        await websocket.close(code=WS_POLICY_VIOLATION, reason="not_authenticated")
        return
    try:
        last_event_id = int(websocket.query_params.get("last_event_id") or -1)
    except ValueError:
        await websocket.close(code=WS_POLICY_VIOLATION, reason="bad_last_event_id")
        return
    await websocket.accept()
    sub = Subscriber(websocket, principal, _topics(websocket.query_params.get("topics")))
    unsubscribe = state.bus.subscribe(sub.offer)  # before reading the log: no gap
    WEBSOCKETS.inc()
    heartbeat = state.settings.websocket_heartbeat_seconds
    try:
        complete = True
        if last_event_id >= 0:
            async with state.db.session(Scope.system(), read_only=True) as session:
                complete = await realtime.history_is_complete_after(session, last_event_id)
        if last_event_id >= 0 and complete:
            sub.floor = sub.high_water = last_event_id
            await _fill_from_log(state, sub, last_event_id)
        else:
            async with state.db.session(Scope.system(), read_only=True) as session:
                sub.floor = sub.high_water = await realtime.latest_event_id(
                    session, tenant_id=principal.tenant_id
                )
        await websocket.send_text(
            json.dumps(
                {"type": "hello", "last_event_id": sub.high_water, "heartbeat_seconds": heartbeat}
            )
        )
        if not complete:
            await websocket.send_text(json.dumps({"type": "reset"}))
        await _pump(state, sub, heartbeat)
    except WebSocketDisconnect:
        pass
    finally:
        unsubscribe()
        WEBSOCKETS.dec()


async def _pump(state: AppState, sub: Subscriber, heartbeat: float) -> None:
    async def beat() -> str | None:
        if await _authenticate(state, sub.websocket) is None:
            return "session_ended"
        await _fill_from_log(state, sub, max(sub.floor, sub.high_water - REREAD_WINDOW))
        await sub.websocket.send_text(
            json.dumps({"type": "heartbeat", "last_event_id": sub.high_water})
        )
        return None

    await pump(
        sub.websocket,
        sub.queue,
        heartbeat=heartbeat,
        send=sub.send,
        on_message=lambda text: _handle_client_message(sub, text),
        on_beat=beat,
        policy_close_code=WS_POLICY_VIOLATION,
    )


def _handle_client_message(sub: Subscriber, text: str) -> None:
    try:
        message = json.loads(text)
    except ValueError:
        return
    if not isinstance(message, dict):
        return
    if message.get("type") == "subscribe" and isinstance(message.get("topics"), list):
        sub.topics = [str(t) for t in message["topics"] if isinstance(t, str)]
