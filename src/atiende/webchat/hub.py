"""The visitors' websocket: live events of one visitor's own conversations, nothing else.

Protocol (JSON text frames), at ``/webchat/v1/{key}/ws?token=<visitor token>&last_event_id=N``:

- browsers cannot set headers on a websocket, so the visitor token travels in the query string
  here (and only here); the page's ``Origin`` is checked against the widget's allowed origins;
- server → ``{"type": "hello", "last_event_id": M, "heartbeat_seconds": H}``;
- server → ``{"type": "event", "id": N, "event": <type>, "data": {...}}`` where ``<type>`` is
  ``message.added`` (``data.message``: a message as ``GET messages`` shows it; never an
  internal note), ``message.status`` (``message_id``, ``status``), ``interaction.typing``
  (``typing: true``, only the agent's side) or ``interaction.changed`` (only ``status``);
- server → ``{"type": "heartbeat", "last_event_id": M}`` every H seconds; the client answers
  ``{"type": "pong"}`` and a client silent for 3·H is dropped;
- server → ``{"type": "reset"}`` after ``hello`` when the requested ``last_event_id`` is too old
  to replay: the client reloads ``GET messages`` instead;
- the socket closes with 1008 when the widget, its key or the visitor's token is no longer
  valid (checked again on every heartbeat).

Presence: connecting and every heartbeat mark the visitor seen (``last_seen_at``, in the
database, so every node agrees); when a socket closes while a conversation of theirs still waits
for an agent, a durable job checks back after the grace period (``service.check_visitor_left``)
and abandons it unless the visitor has been seen since. Status changes of a conversation the
visitor ended while an agent had it are not forwarded: for them it is over.

Like the staff hub (``atiende.web.hub``) it subscribes to the bus before reading the event log
after ``last_event_id``, drops duplicates by id, and re-reads a window of the log on every
heartbeat to recover events the bus lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections import OrderedDict, deque
from datetime import timedelta
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from atiende.core.db import SCOPE_KEY, Scope
from atiende.core.errors import AtiendeError
from atiende.core.events import EventEnvelope
from atiende.realtime import service as realtime
from atiende.web.socket_pump import pump
from atiende.web.state import AppState
from atiende.webchat import service
from atiende.webchat.models import Visitor, Widget
from atiende.webchat.schemas import page_origin

log = logging.getLogger(__name__)
router = APIRouter()

WS_POLICY_VIOLATION = 1008
REREAD_WINDOW = 200
RECENT_IDS = 5000
# A resume that would replay more of the tenant's log than this answers "reset" instead.
RESUME_BATCHES = 5
# A typing pulse older than this is not shown (replays after a reconnect).
TYPING_FRESH = timedelta(seconds=8)
FORWARDED = frozenset(
    {"message.added", "message.status", "interaction.typing", "interaction.changed"}
)
UNDELIVERED = frozenset({"pending", "sent"})


class VisitorSubscriber:
    def __init__(
        self, state: AppState, websocket: WebSocket, widget: Widget, visitor: Visitor
    ) -> None:
        self.state = state
        self.websocket = websocket
        self.widget = widget
        self.visitor = visitor
        self.tenant_id = widget.tenant_id
        self.queue: asyncio.Queue[EventEnvelope] = asyncio.Queue(maxsize=1000)
        self.sent: deque[int] = deque(maxlen=RECENT_IDS)
        self.sent_set: set[int] = set()
        # The visitor's contact and the profile it was merged into (refreshed on heartbeats).
        self.contact_ids: set[uuid.UUID] = {visitor.contact_id}
        self.high_water = 0
        self.floor = 0

    def offer(self, envelope: EventEnvelope) -> None:
        """Bus listener: cheap tenant and type filter; ownership is checked when sending."""
        if envelope.tenant_id != self.tenant_id or envelope.type not in FORWARDED:
            return
        with contextlib.suppress(asyncio.QueueFull):
            self.queue.put_nowait(envelope)  # a slow reader is refilled by the re-read

    async def send(self, envelope: EventEnvelope) -> None:
        if envelope.id in self.sent_set or envelope.id <= self.floor:
            return
        self._remember(envelope.id)
        if envelope.tenant_id != self.tenant_id or envelope.type not in FORWARDED:
            return
        data = await self._for_visitor(envelope)
        if data is None:
            return
        await self.websocket.send_text(
            json.dumps({"type": "event", "id": envelope.id, "event": envelope.type, "data": data})
        )
        pushed = data.get("message") if envelope.type == "message.added" else None
        if pushed and pushed["direction"] == "outbound" and pushed["status"] in UNDELIVERED:
            async with self.state.db.session(Scope.tenant(self.tenant_id)) as session:
                await service.mark_delivered(
                    session, self.widget, self.visitor, uuid.UUID(pushed["id"])
                )

    def _remember(self, event_id: int) -> None:
        if len(self.sent) == self.sent.maxlen:
            self.sent_set.discard(self.sent[0])
        self.sent.append(event_id)
        self.sent_set.add(event_id)
        self.high_water = max(self.high_water, event_id)

    async def _for_visitor(self, envelope: EventEnvelope) -> dict[str, Any] | None:
        """What the visitor may see of an event, or None."""
        payload = envelope.data
        interaction_id = _uuid(payload.get("interaction_id"))
        if interaction_id is None or not self._may_concern(envelope):
            return None
        if not await self._owns(interaction_id):
            return None
        if envelope.type == "interaction.typing":
            return {"typing": True}
        if envelope.type == "interaction.changed":
            if await self._ended_by_visitor(interaction_id):
                return None  # the agent finishing a conversation the visitor already ended
            return {"status": payload.get("status")}
        return await self._message_event(envelope)

    def _may_concern(self, envelope: EventEnvelope) -> bool:
        """The checks that need no database: never notes, only the agent side's fresh typing."""
        payload = envelope.data
        if envelope.type == "message.added":
            return payload.get("direction") != "internal"
        if envelope.type == "interaction.typing":
            fresh = self.state.clock.now() - envelope.occurred_at <= TYPING_FRESH
            return payload.get("author_kind") == "agent" and fresh
        return True

    async def _message_event(self, envelope: EventEnvelope) -> dict[str, Any] | None:
        message_id = _uuid(envelope.data.get("message_id"))
        if message_id is None:
            return None
        async with self.state.db.session(Scope.tenant(self.tenant_id), read_only=True) as s:
            message = await service.visible_message(s, self.widget, self.visitor, message_id)
        if message is None:
            return None
        if envelope.type == "message.added":
            return {"message": service.message_out(message).model_dump(mode="json")}
        return {"message_id": str(message_id), "status": envelope.data.get("status")}

    async def _owns(self, interaction_id: uuid.UUID) -> bool:
        owner = await _owner_of(self.state, self.tenant_id, interaction_id)
        return owner is not None and owner[0] == self.widget.id and owner[1] in self.contact_ids

    async def _ended_by_visitor(self, interaction_id: uuid.UUID) -> bool:
        async with self.state.db.session(Scope.tenant(self.tenant_id), read_only=True) as s:
            return await service.ended_by_visitor(s, interaction_id)

    async def refresh_contacts(self) -> None:
        async with self.state.db.session(Scope.tenant(self.tenant_id), read_only=True) as s:
            self.contact_ids = set(await service.contact_ids(s, self.visitor))

    async def fill_from_log(self, after_id: int, *, max_batches: int | None = None) -> bool:
        """Send the visitor's events after ``after_id``; False if more remained than
        ``max_batches`` allowed (the caller then resets the client)."""
        batches = 0
        while True:
            async with self.state.db.session(Scope.system(), read_only=True) as session:
                batch = await realtime.events_after(
                    session, tenant_id=self.tenant_id, after_id=after_id
                )
            for envelope in batch:
                await self.send(envelope)
            if len(batch) < realtime.BACKLOG_LIMIT:
                return True
            after_id = batch[-1].id
            batches += 1
            if max_batches is not None and batches >= max_batches:
                return False


async def _authenticate(
    state: AppState, websocket: WebSocket, key: str, *, touch: bool = False
) -> tuple[Widget, Visitor] | str:
    """The widget and visitor behind this socket, or the reason to refuse it. ``touch``
    records that the visitor is here (on connect and on every heartbeat)."""
    async with state.db.session(Scope.system(), read_only=not touch) as session:
        try:
            widget = await service.widget_by_key(session, key)
        except AtiendeError:
            return "widget_not_found"
        origin = page_origin(
            websocket.headers.get("origin"), websocket.headers.get("host"), websocket.url.scheme
        )
        if not service.origin_allowed(widget, origin):
            return "origin_not_allowed"
        session.info[SCOPE_KEY] = Scope.tenant(widget.tenant_id)
        try:
            visitor = await service.visitor_by_token(
                session, widget, websocket.query_params.get("token")
            )
        except AtiendeError:
            return "visitor_not_authenticated"
        if touch:
            service.touch(session, visitor)
    return widget, visitor


@router.websocket("/webchat/v1/{key}/ws")
async def visitor_socket(websocket: WebSocket, key: str) -> None:
    state: AppState = websocket.app.state.atiende
    found = await _authenticate(state, websocket, key, touch=True)
    if isinstance(found, str):
        await websocket.close(code=WS_POLICY_VIOLATION, reason=found)
        return
    widget, visitor = found
    try:
        last_event_id = int(websocket.query_params.get("last_event_id") or -1)
    except ValueError:
        await websocket.close(code=WS_POLICY_VIOLATION, reason="bad_last_event_id")
        return
    await websocket.accept()
    sub = VisitorSubscriber(state, websocket, widget, visitor)
    await sub.refresh_contacts()
    unsubscribe = state.bus.subscribe(sub.offer)  # before reading the log: no gap
    heartbeat = state.settings.websocket_heartbeat_seconds
    try:
        complete = last_event_id >= 0
        if complete:
            async with state.db.session(Scope.system(), read_only=True) as session:
                complete = await realtime.history_is_complete_after(session, last_event_id)
        if complete:
            sub.floor = sub.high_water = last_event_id
            complete = await sub.fill_from_log(last_event_id, max_batches=RESUME_BATCHES)
        if not complete:
            async with state.db.session(Scope.system(), read_only=True) as session:
                latest = await realtime.latest_event_id(session, tenant_id=sub.tenant_id)
            sub.floor = sub.high_water = max(sub.high_water, latest)
        await websocket.send_text(
            json.dumps(
                {"type": "hello", "last_event_id": sub.high_water, "heartbeat_seconds": heartbeat}
            )
        )
        if not complete and last_event_id >= 0:
            await websocket.send_text(json.dumps({"type": "reset"}))
        await _pump(state, sub, key, heartbeat)
    except WebSocketDisconnect:
        pass
    finally:
        unsubscribe()
        await _disconnected(state, sub)


async def _pump(state: AppState, sub: VisitorSubscriber, key: str, heartbeat: float) -> None:
    async def beat() -> str | None:
        found = await _authenticate(state, sub.websocket, key, touch=True)
        if isinstance(found, str):
            return found
        await sub.refresh_contacts()
        await sub.fill_from_log(max(sub.floor, sub.high_water - REREAD_WINDOW))
        await sub.websocket.send_text(
            json.dumps({"type": "heartbeat", "last_event_id": sub.high_water})
        )
        return None

    await pump(
        sub.websocket,
        sub.queue,
        heartbeat=heartbeat,
        send=sub.send,
        on_message=lambda text: None,  # visitors only answer heartbeats; nothing to act on
        on_beat=beat,
        policy_close_code=WS_POLICY_VIOLATION,
    )


async def _disconnected(state: AppState, sub: VisitorSubscriber) -> None:
    """The socket is gone: the visitor was here until now; a conversation still waiting gets
    checked once the grace period has passed."""
    try:
        async with state.db.session(Scope.tenant(sub.tenant_id)) as session:
            await service.visitor_disconnected(
                session, sub.visitor.id, grace=service.leave_grace(state.settings)
            )
    except Exception:
        log.exception("could not record that visitor %s left", sub.visitor.id)


# Who owns which interaction, shared by every visitor socket of this process: each new
# interaction costs one query per process, not one per connected visitor. Interactions never
# change widget; a contact merge only adds the survivor, which sockets learn on heartbeats.
_owners: OrderedDict[tuple[uuid.UUID, uuid.UUID], tuple[uuid.UUID | None, uuid.UUID] | None] = (
    OrderedDict()
)
OWNERS_CACHED = 50_000


async def _owner_of(
    state: AppState, tenant_id: uuid.UUID, interaction_id: uuid.UUID
) -> tuple[uuid.UUID | None, uuid.UUID] | None:
    key = (tenant_id, interaction_id)
    if key in _owners:
        _owners.move_to_end(key)
        return _owners[key]
    async with state.db.session(Scope.tenant(tenant_id), read_only=True) as session:
        owner = await service.interaction_owner(session, interaction_id)
    _owners[key] = owner
    if len(_owners) > OWNERS_CACHED:
        _owners.popitem(last=False)
    return owner


def _uuid(value: object) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None
