"""Call control: the one module that drives calls on the PBXs and publishes call events.

It holds one ARI connection per Stasis application (the PBXs of every tenant), keeps each
call's legs (``legs``) in memory and mirrors the routing engine's decisions onto the PBX:

- a call enters the application (``Stasis(atiende,<tenant>,<number>)``): it is answered,
  hears music on hold, and becomes a voice interaction of the caller's contact, queued in
  the queue of the number called (``voice_numbers``);
- an offer of a voice interaction rings the agent's extension (an originate into the
  application, for the offer's time-out); the phone answering is the agent's acceptance
  (``routing.answer_offer``) and both parties then talk in a mixing bridge;
- a phone that is busy, does not answer or cannot be reached declines the offer
  (``routing.decline_offer``): the call goes back to the head of its queue and the next agent
  rings; an offer closed elsewhere (timed out, cancelled) stops the phone ringing;
- the caller hanging up while waiting abandons the interaction; while talking, it ends the
  call and the agent's wrap-up starts; the agent hanging up ends the call the same way;
- the interaction going back to a queue (a transfer) drops the agent's phone and puts the
  caller back on music; an agent or supervisor ending the work (wrap-up, close) hangs up.

Every leg transition becomes an interaction-timeline entry ``call.<kind>`` and every change
of a call a ``call.updated`` event (``publish``); nothing else publishes call events.

Calls are also kept in ``calls`` rows, so another node can act on a call (``voice.control``)
and, after a reconnect or a restart, a rebuild finds again the calls the PBX still carries.
One call-control process serves an installation (see docs/voice.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Mapping, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from atiende.contacts import service as contacts
from atiende.contacts.models import IdentityKind
from atiende.conversations import service as conversations
from atiende.conversations.models import Channel, Interaction, InteractionStatus
from atiende.core.bus import Bus
from atiende.core.config import Settings
from atiende.core.db import Database, Scope
from atiende.core.errors import AtiendeError, Conflict, NotFound
from atiende.core.events import DomainEvent, EventEnvelope, emit
from atiende.routing import service as routing
from atiende.routing.models import Queue, Recording
from atiende.tenancy.models import Tenant
from atiende.voice import legs
from atiende.voice.ari import AriClient, AriError, Connected
from atiende.voice.ari_events import AriEvent, StasisStart, channels_of
from atiende.voice.models import Call, Extension, Pbx, VoiceNumber
from atiende.voice.service import ari_password

log = logging.getLogger(__name__)

#: How often the set of PBXs is read again (new ones connect, removed ones disconnect).
REFRESH_SECONDS: Final = 30.0
#: The shortest ring an offer gets, even when little of its time-out is left.
MIN_RING_SECONDS: Final = 5
OPEN: Final = (
    InteractionStatus.queued,
    InteractionStatus.offered,
    InteractionStatus.assigned,
)


class CallUpdated(DomainEvent):
    """A call changed: the desktop's call panel and the wallboard follow it."""

    event_type = "call.updated"
    call_id: uuid.UUID
    interaction_id: uuid.UUID
    agent_id: uuid.UUID | None
    state: str  # the caller's leg: ringing_in, answered, queued, offering, bridged, …
    change: str  # what happened: started, queued, ringing, connected, held, ended, …
    caller_number: str | None
    number: str | None
    on_hold: bool
    muted: bool
    recording: str | None


async def publish(session: AsyncSession, call: Call, change: str) -> None:
    """Announce a change of ``call`` (after the unit of work commits)."""
    await emit(
        session,
        CallUpdated(
            call_id=call.id,
            interaction_id=call.interaction_id,
            agent_id=call.agent_id,
            state=call.state,
            change=change,
            caller_number=call.caller_number,
            number=call.number,
            on_hold=call.on_hold,
            muted=call.muted,
            recording=call.recording_state,
        ),
        tenant_id=call.tenant_id,
    )


async def record_entries(
    session: AsyncSession, interaction: Interaction, entries: Sequence[legs.TimelineEntry]
) -> None:
    """Leg transitions into the interaction's timeline, as ``call.<kind>`` rows."""
    for entry in entries:
        data: dict[str, Any] = dict(entry.data)
        agent = data.pop("agent_id", None)
        await conversations.record(
            session,
            interaction,
            f"call.{entry.kind.value}",
            agent_id=uuid.UUID(agent) if agent else None,
            role=entry.role.value,
            channel_id=entry.channel_id,
            **data,
        )


def agent_channel_id(offer_id: uuid.UUID) -> str:
    """The channel id an offer's ring is originated with (known before any event)."""
    return f"atiende-offer-{offer_id.hex}"


def bridge_id_of(call_id: uuid.UUID) -> str:
    return f"atiende-call-{call_id.hex}"


def recording_name_of(call_id: uuid.UUID) -> str:
    return f"atiende-call-{call_id.hex}"


@dataclass(frozen=True, slots=True)
class LinkKey:
    """One Stasis application on one Asterisk: one events connection."""

    url: str
    username: str
    app: str


@dataclass
class _Link:
    key: LinkKey
    client: AriClient
    tenants: dict[str, uuid.UUID]  # tenant slug → tenant id, of the PBX rows on this link
    pbx_of: dict[uuid.UUID, uuid.UUID]  # tenant id → its PBX row on this link
    reader: asyncio.Task[None] | None = None


@dataclass
class _Call:
    """What call control holds of one call while the PBX carries it."""

    id: uuid.UUID
    tenant_id: uuid.UUID
    interaction_id: uuid.UUID
    link: LinkKey
    customer: str  # the caller's channel id
    recording: Recording = Recording.never
    ringing: dict[str, uuid.UUID] = field(default_factory=dict)  # agent channel → offer id
    agent_channel: str | None = None
    bridge_id: str | None = None
    recording_started: bool = False
    ended: bool = False
    # timeline entries of decisions (offers, transfers), written with the next change
    pending: list[legs.TimelineEntry] = field(default_factory=list)


@dataclass
class Stats:
    """Counters for the benchmark and the logs."""

    ari_events: int = 0
    calls: int = 0
    offers_rung: int = 0
    # seconds from the caller's enqueue to the agent's phone ringing, per offer
    offer_latencies: list[float] = field(default_factory=list)


class CallControl:
    """Runs for the life of a process (``run``); see the module's description."""

    def __init__(
        self,
        db: Database,
        bus: Bus,
        settings: Settings,
        *,
        refresh_seconds: float = REFRESH_SECONDS,
    ) -> None:
        self.db = db
        self.bus = bus
        self.settings = settings
        self.refresh_seconds = refresh_seconds
        self.stats = Stats()
        self._links: dict[LinkKey, _Link] = {}
        self._legs: dict[str, legs.Leg] = {}
        self._calls: dict[str, _Call] = {}  # by every channel id of the call
        self._by_interaction: dict[uuid.UUID, _Call] = {}
        self._enqueued_at: dict[uuid.UUID, float] = {}  # interaction → monotonic enqueue time
        self._inbox: asyncio.Queue[tuple[str, Any, Any]] = asyncio.Queue()
        self._ready = asyncio.Event()

    @property
    def ready(self) -> asyncio.Event:
        """Set once every known PBX has been connected (or tried) the first time."""
        return self._ready

    # -- the loop ---------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        unsubscribe = self.bus.subscribe(self._on_bus)
        refresher = asyncio.create_task(self._refresh_forever(stop), name="voice-refresh")
        try:
            while not stop.is_set():
                getter = asyncio.ensure_future(self._inbox.get())
                stopper = asyncio.ensure_future(stop.wait())
                done, _ = await asyncio.wait({getter, stopper}, return_when=asyncio.FIRST_COMPLETED)
                if getter not in done:
                    getter.cancel()
                    break
                stopper.cancel()
                kind, key, item = getter.result()
                try:
                    await self._handle(kind, key, item)
                except Exception:
                    log.exception("call control failed on %s %r", kind, item)
        finally:
            unsubscribe()
            refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await refresher
            for link in list(self._links.values()):
                await self._close_link(link)

    async def _handle(self, kind: str, key: Any, item: Any) -> None:
        if kind == "ari":
            link = self._links.get(key)
            if link is None:
                return
            if isinstance(item, Connected):
                await self._rebuild(link)
            else:
                self.stats.ari_events += 1
                await self._on_ari(link, item)
        elif kind == "bus":
            await self._on_event(item)

    def _on_bus(self, envelope: EventEnvelope) -> None:
        if envelope.type in _WATCHED and envelope.data.get("channel", "voice") == "voice":
            self._inbox.put_nowait(("bus", None, envelope))

    async def _refresh_forever(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.refresh()
            except Exception:
                log.exception("reading the PBXs failed")
            self._ready.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.refresh_seconds)

    async def refresh(self) -> None:
        """Connect to new PBXs, drop removed ones."""
        async with self.db.session(Scope.system(), read_only=True) as session:
            rows = (
                await session.execute(
                    select(Pbx, Tenant.slug).join(Tenant, Tenant.id == Pbx.tenant_id)
                )
            ).all()
            wanted: dict[LinkKey, tuple[str, dict[str, uuid.UUID], dict[uuid.UUID, uuid.UUID]]] = {}
            for pbx, slug in rows:
                key = LinkKey(pbx.ari_url.rstrip("/"), pbx.ari_username, pbx.app_name)
                password, tenants, pbx_of = wanted.setdefault(
                    key, (ari_password(self.settings, pbx), {}, {})
                )
                tenants[slug] = pbx.tenant_id
                pbx_of[pbx.tenant_id] = pbx.id
        for key in set(self._links) - set(wanted):
            await self._close_link(self._links.pop(key))
        for key, (password, tenants, pbx_of) in wanted.items():
            link = self._links.get(key)
            if link is not None:
                link.tenants, link.pbx_of = tenants, pbx_of
                continue
            client = AriClient(key.url, key.username, password, app=key.app)
            link = _Link(key, client, tenants, pbx_of)
            link.reader = asyncio.create_task(self._read(link), name=f"ari-{key.app}@{key.url}")
            self._links[key] = link

    async def _read(self, link: _Link) -> None:
        try:
            async with aclosing(link.client.events()) as stream:
                async for item in stream:
                    self._inbox.put_nowait(("ari", link.key, item))
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("the events of %s stopped", link.key)

    async def _close_link(self, link: _Link) -> None:
        if link.reader is not None:
            link.reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await link.reader
        await link.client.aclose()

    def client_for(self, call: _Call) -> AriClient:
        return self._links[call.link].client

    # -- ARI events -------------------------------------------------------------------------

    async def _on_ari(self, link: _Link, event: AriEvent) -> None:
        at = self.db.clock.now()
        if isinstance(event, StasisStart) and not legs.is_agent_leg(event.args):
            if event.channel.id not in self._legs:
                await self._arrival(link, event, at)
            return
        if isinstance(event, StasisStart) and event.channel.id in self._calls:
            await self._agent_answered(event, at)
        touched: dict[str, _Call] = {}
        for channel_id in channels_of(event):
            call = self._calls.get(channel_id)
            if call is not None:
                touched[call.customer] = call
        if not touched:
            return
        before = {cid: leg for cid, leg in self._legs.items() if cid in channels_of(event)}
        result = legs.dispatch(before, event, at)
        self._legs.update(result.legs)
        for call in touched.values():
            entries = [e for e in result.entries if self._calls.get(e.channel_id) is call]
            await self._after(call, entries, before)

    async def _arrival(self, link: _Link, event: StasisStart, at: datetime) -> None:
        """A caller entered the application: answer, music, and queue a new interaction."""
        channel = event.channel
        step = legs.inbound(event, at)
        slug = event.args[0] if event.args else ""
        number = event.args[1] if len(event.args) > 1 else channel.dialplan.exten
        tenant_id = link.tenants.get(slug)
        client = link.client
        target = None
        if tenant_id is not None:
            async with self.db.session(Scope.tenant(tenant_id), read_only=True) as session:
                target = await session.scalar(
                    select(VoiceNumber).where(VoiceNumber.number == number)
                )
        if tenant_id is None or target is None:
            log.warning("a call to %r of %r: no such number here; refused", number, slug)
            with contextlib.suppress(AriError):
                await client.hangup(channel.id, reason="unallocated")
            return
        self._legs[channel.id] = step.leg
        try:
            if channel.state != "Up":
                await client.answer(channel.id)
            await client.start_moh(channel.id)
        except AriError as error:
            log.warning("answering %s failed: %s", channel.id, error)
        call_id = uuid.uuid4()
        call = _Call(call_id, tenant_id, uuid.uuid4(), link.key, channel.id)
        self._calls[channel.id] = call
        self.stats.calls += 1
        try:
            async with self.db.session(Scope.tenant(tenant_id)) as session:
                interaction = await self._open(session, channel.caller.number, channel.caller.name)
                call.interaction_id = interaction.id
                queue = await session.get(Queue, target.queue_id)
                call.recording = queue.recording if queue is not None else Recording.never
                row = Call(
                    id=call_id,
                    interaction_id=interaction.id,
                    pbx_id=link.pbx_of[tenant_id],
                    direction="inbound",
                    customer_channel_id=channel.id,
                    caller_number=channel.caller.number or None,
                    number=number,
                    state=step.leg.state.value,
                    started_at=at,
                    answered_at=at,
                )
                session.add(row)
                await record_entries(session, interaction, step.entries)
                await routing.enqueue(session, interaction, target.queue_id)
                await publish(session, row, "started")
        except Exception:
            log.exception("queueing the call %s failed; hanging up", channel.id)
            self._forget(call)
            with contextlib.suppress(AriError):
                await client.hangup(channel.id, reason="congestion")
            raise
        self._by_interaction[call.interaction_id] = call
        self._enqueued_at[call.interaction_id] = time.monotonic()

    async def _open(self, session: AsyncSession, caller: str, name: str) -> Interaction:
        kind, value = IdentityKind.phone, caller
        try:
            contacts.normalise_identity(kind, value)
        except AtiendeError:
            # an extension, "anonymous", a short code: kept as it came
            kind, value = IdentityKind.api, f"phone:{caller or 'anonymous'}"
        contact = await contacts.find_or_create_by_identity(
            session,
            kind,
            value,
            name=name or None,
            phone=caller if kind is IdentityKind.phone else None,
        )
        return await conversations.open_interaction(
            session, channel=Channel.voice, contact_id=contact.id, subject=caller or None
        )

    async def _agent_answered(self, event: StasisStart, at: datetime) -> None:
        """The agent's phone answered: accept the offer for the agent, then bridge."""
        channel_id = event.channel.id
        call = self._calls[channel_id]
        offer_id = call.ringing.get(channel_id)
        client = self.client_for(call)
        if offer_id is None or call.ended:
            with contextlib.suppress(AriError):
                await client.hangup(channel_id)
            return
        try:
            async with self.db.session(Scope.tenant(call.tenant_id)) as session:
                await routing.answer_offer(session, offer_id)
        except (Conflict, NotFound) as error:
            log.info("the phone answered an offer that is gone (%s); hanging it up", error)
            call.ringing.pop(channel_id, None)
            with contextlib.suppress(AriError):
                await client.hangup(channel_id)
            return
        call.ringing.pop(channel_id, None)
        for other in list(call.ringing):  # ring-all: the others stop ringing
            with contextlib.suppress(AriError):
                await client.hangup(other, reason="answered_elsewhere")
        call.agent_channel = channel_id
        bridge_id = call.bridge_id or bridge_id_of(call.id)
        try:
            if call.bridge_id is None:
                await client.create_bridge(bridge_type="mixing", bridge_id=bridge_id)
                call.bridge_id = bridge_id
            with contextlib.suppress(AriError):
                await client.stop_moh(call.customer)
            await client.add_channel(bridge_id, call.customer, channel_id)
            if call.recording is Recording.always and not call.recording_started:
                await client.record_bridge(bridge_id, recording_name_of(call.id))
                call.recording_started = True
        except AriError as error:
            log.warning("bridging call %s failed: %s", call.id, error)

    # -- after a leg moved ------------------------------------------------------------------

    async def _after(
        self, call: _Call, entries: list[legs.TimelineEntry], before: Mapping[str, legs.Leg]
    ) -> None:
        """Act on what the event did to the call's legs, and write it down."""
        customer = self._legs.get(call.customer)
        client = self.client_for(call)
        declined: list[tuple[uuid.UUID, str]] = []
        for channel_id, offer_id in list(call.ringing.items()):
            leg = self._legs.get(channel_id)
            if leg is not None and leg.is_ended:
                call.ringing.pop(channel_id, None)
                reason = leg.cause.value if leg.cause else "hangup"
                declined.append((offer_id, reason))
                if leg.agent_id is not None:
                    self._apply_command(call.customer, legs.OfferFailed(leg.agent_id, reason))
            elif leg is not None and leg.rang and not before.get(channel_id, leg).rang:
                self._rung(call)
        agent_gone = call.agent_channel is not None and self._ended(call.agent_channel)
        customer_gone = customer is None or customer.is_ended
        newly_ended = False
        if customer_gone and not call.ended:
            call.ended = newly_ended = True
            for other in [*call.ringing, call.agent_channel]:
                if other is not None and not self._ended(other):
                    with contextlib.suppress(AriError):
                        await client.hangup(other)
        elif agent_gone and not call.ended:
            # the agent hung up: the call is over for the caller too
            call.ended = newly_ended = True
            with contextlib.suppress(AriError):
                await client.hangup(call.customer)
        if entries or declined or newly_ended or call.pending:
            await self._write(call, entries, declined, ended=newly_ended)
        if call.ended and customer_gone and self._all_ended(call):
            if call.bridge_id is not None:
                with contextlib.suppress(AriError):
                    await client.destroy_bridge(call.bridge_id)
            self._forget(call)

    async def _write(
        self,
        call: _Call,
        entries: Sequence[legs.TimelineEntry],
        declined: Sequence[tuple[uuid.UUID, str]],
        *,
        ended: bool,
    ) -> None:
        entries = [*call.pending, *entries]
        call.pending.clear()
        async with self.db.session(Scope.tenant(call.tenant_id)) as session:
            interaction = await session.get(Interaction, call.interaction_id)
            row = await session.scalar(select(Call).where(Call.id == call.id))
            if interaction is None or row is None:
                return
            await record_entries(session, interaction, entries)
            for offer_id, reason in declined:
                await routing.decline_offer(session, offer_id, reason=reason)
            change = self._update_row(row, call, entries)
            if ended:
                await _finish_interaction(session, interaction)
            if change is not None:
                await publish(session, row, change)

    def _update_row(
        self, row: Call, call: _Call, entries: Sequence[legs.TimelineEntry]
    ) -> str | None:
        customer = self._legs.get(call.customer)
        if customer is not None:
            row.state = customer.state.value
        change = None
        for entry in entries:
            change = entry.kind.value
            if entry.kind is legs.EntryKind.connected and entry.role is legs.LegRole.customer:
                row.agent_channel_id = call.agent_channel
                row.bridge_id = call.bridge_id
                agent = self._legs.get(call.agent_channel or "")
                row.agent_id = agent.agent_id if agent is not None else None
                row.connected_at = row.connected_at or entry.at
                if call.recording_started:
                    row.recording_name = recording_name_of(call.id)
                    row.recording_state = "recording"
            if entry.kind is legs.EntryKind.ended and entry.role is legs.LegRole.customer:
                row.ended_at = entry.at
                row.end_cause = str(entry.data.get("cause"))
                row.on_hold = False
                if row.recording_state in ("recording", "paused"):
                    row.recording_state = "done"
        return change

    def _rung(self, call: _Call) -> None:
        self.stats.offers_rung += 1
        started = self._enqueued_at.get(call.interaction_id)
        if started is not None:
            self.stats.offer_latencies.append(time.monotonic() - started)

    def _ended(self, channel_id: str) -> bool:
        leg = self._legs.get(channel_id)
        return leg is None or leg.is_ended

    def _all_ended(self, call: _Call) -> bool:
        channels = [call.customer, *call.ringing]
        if call.agent_channel is not None:
            channels.append(call.agent_channel)
        return all(self._ended(c) for c in channels)

    def _apply_command(self, channel_id: str, command: legs.Command) -> None:
        """Record a decision on a leg (its timeline entries go with the call's next write);
        a leg that cannot take it (events crossed) is left as it is."""
        leg = self._legs.get(channel_id)
        call = self._calls.get(channel_id)
        if leg is None or call is None:
            return
        try:
            step = legs.apply(leg, command, self.db.clock.now())
        except legs.IllegalTransition as error:
            log.debug("leg %s: %s", channel_id, error)
            return
        self._legs[channel_id] = step.leg
        call.pending.extend(step.entries)

    def _forget(self, call: _Call) -> None:
        for channel_id in [call.customer, *call.ringing, call.agent_channel]:
            if channel_id is not None:
                self._calls.pop(channel_id, None)
                self._legs.pop(channel_id, None)
        self._by_interaction.pop(call.interaction_id, None)
        self._enqueued_at.pop(call.interaction_id, None)

    # -- the engine's decisions -------------------------------------------------------------

    async def _on_event(self, envelope: EventEnvelope) -> None:
        data = envelope.data
        interaction_id = uuid.UUID(str(data["interaction_id"]))
        call = self._by_interaction.get(interaction_id)
        if call is None or call.ended:
            return
        if envelope.type == "offer.created":
            await self._ring(call, data)
        elif envelope.type == "offer.closed":
            channel_id = agent_channel_id(uuid.UUID(str(data["offer_id"])))
            if data["status"] != "accepted" and channel_id in call.ringing:
                call.ringing.pop(channel_id, None)
                self._apply_command(
                    call.customer,
                    legs.OfferFailed(uuid.UUID(str(data["agent_id"])), data["status"]),
                )
                with contextlib.suppress(AriError):
                    await self.client_for(call).hangup(channel_id, reason="no_answer")
        elif envelope.type == "interaction.changed":
            await self._follow(call, data)
        elif envelope.type == "call.updated":
            change = data.get("change")
            if change == "held":
                self._apply_command(call.customer, legs.Hold())
            elif change == "resumed":
                self._apply_command(call.customer, legs.Unhold())

    async def _ring(self, call: _Call, data: Mapping[str, Any]) -> None:
        """Ring the phone of the agent the call is offered to."""
        offer_id = uuid.UUID(str(data["offer_id"]))
        agent_id = uuid.UUID(str(data["agent_id"]))
        expires_at = datetime.fromisoformat(str(data["expires_at"]))
        client = self.client_for(call)
        async with self.db.session(Scope.tenant(call.tenant_id), read_only=True) as session:
            extension = await session.scalar(
                select(Extension.number).where(Extension.user_id == agent_id)
            )
            row = await session.scalar(select(Call).where(Call.id == call.id))
        caller = row.caller_number if row is not None else None
        channel_id = agent_channel_id(offer_id)
        if extension is None:
            await self._decline(call, offer_id, "no_phone")
            return
        seconds = ring_seconds_left(expires_at, self.db.clock.now())
        self._legs[channel_id] = legs.originated(channel_id, agent_id, self.db.clock.now())
        self._calls[channel_id] = call
        call.ringing[channel_id] = offer_id
        self._apply_command(call.customer, legs.Offer(agent_id, channel_id))
        try:
            await client.originate(
                f"PJSIP/{extension}",
                app_args=(legs.AGENT_ARG, str(offer_id)),
                caller_id=caller,
                ring_seconds=seconds,
                channel_id=channel_id,
            )
        except AriError as error:
            log.info("ringing extension %s failed: %s", extension, error)
            call.ringing.pop(channel_id, None)
            self._legs.pop(channel_id, None)
            self._calls.pop(channel_id, None)
            self._apply_command(call.customer, legs.OfferFailed(agent_id, "unreachable"))
            await self._decline(call, offer_id, "unreachable")

    async def _decline(self, call: _Call, offer_id: uuid.UUID, reason: str) -> None:
        async with self.db.session(Scope.tenant(call.tenant_id)) as session:
            await routing.decline_offer(session, offer_id, reason=reason)

    async def _follow(self, call: _Call, data: Mapping[str, Any]) -> None:
        """The interaction moved on the engine's side; the PBX follows."""
        status = data.get("status")
        client = self.client_for(call)
        if status in ("queued", "offered") and call.agent_channel is not None:
            # transferred: the agent's phone drops, the caller waits with music again
            agent_channel, call.agent_channel = call.agent_channel, None
            queue_id = data.get("queue_id")
            if queue_id:
                self._apply_command(call.customer, legs.Transfer(queue_id=uuid.UUID(str(queue_id))))
                self._apply_command(call.customer, legs.Enqueue(uuid.UUID(str(queue_id))))
            with contextlib.suppress(AriError):
                if call.bridge_id is not None:
                    await client.remove_channel(call.bridge_id, agent_channel)
            with contextlib.suppress(AriError):
                await client.hangup(agent_channel)
            with contextlib.suppress(AriError):
                await client.start_moh(call.customer)
            self._enqueued_at[call.interaction_id] = time.monotonic()
        elif status in ("wrap_up", "closed", "abandoned") and not call.ended:
            call.ended = True
            for channel_id in [call.customer, *call.ringing, call.agent_channel]:
                if channel_id is not None and not self._ended(channel_id):
                    with contextlib.suppress(AriError):
                        await client.hangup(channel_id)

    # -- reconnects and restarts ------------------------------------------------------------

    async def _rebuild(self, link: _Link) -> None:
        """After (re)connecting: calls the PBX no longer has end; calls it still carries
        that this process does not know (a restart) are taken up again from their rows."""
        rows: list[Call] = []
        for tenant_id in link.tenants.values():
            async with self.db.session(Scope.tenant(tenant_id), read_only=True) as session:
                rows.extend(
                    (
                        await session.scalars(
                            select(Call).where(
                                Call.ended_at.is_(None), Call.pbx_id == link.pbx_of[tenant_id]
                            )
                        )
                    ).all()
                )
        known = {cid for cid, call in self._calls.items() if call.link == link.key}
        for row in rows:
            known.add(row.customer_channel_id)
            if row.agent_channel_id:
                known.add(row.agent_channel_id)
        try:
            found = await link.client.rebuild(sorted(known), [])
        except AriError as error:
            log.warning("rebuilding from %s failed: %s", link.key, error)
            return
        at = self.db.clock.now()
        for row in rows:
            if row.customer_channel_id not in self._legs:
                self._take_up(link, row, at)
        for channel in found.appeared_channels:
            if channel.id not in self._legs and not legs.is_agent_leg(legs.stasis_args(channel)):
                start = StasisStart(
                    application=link.key.app, channel=channel, args=legs.stasis_args(channel)
                )
                await self._arrival(link, start, at)
        for channel_id in found.vanished_channels:
            call = self._calls.get(channel_id)
            leg = self._legs.get(channel_id)
            if call is None or leg is None:
                continue
            before = {channel_id: leg}
            step = legs.vanish(leg, at)
            self._legs[channel_id] = step.leg
            await self._after(call, list(step.entries), before)

    def _take_up(self, link: _Link, row: Call, at: datetime) -> None:
        """A call of the rows, carried on by the PBX while this process was not there."""
        state = legs.LegState(row.state) if row.state in set(legs.LegState) else None
        customer = legs.Leg(
            channel_id=row.customer_channel_id,
            role=legs.LegRole.customer,
            state=state or legs.LegState.answered,
            started_at=row.started_at,
            since=at,
            agent_id=row.agent_id,
            bridge_id=row.bridge_id,
        )
        call = _Call(
            row.id,
            row.tenant_id,
            row.interaction_id,
            link.key,
            row.customer_channel_id,
            agent_channel=row.agent_channel_id,
            bridge_id=row.bridge_id,
            recording_started=row.recording_name is not None,
        )
        self._legs[row.customer_channel_id] = customer
        self._calls[row.customer_channel_id] = call
        if row.agent_channel_id:
            self._legs[row.agent_channel_id] = legs.Leg(
                channel_id=row.agent_channel_id,
                role=legs.LegRole.agent,
                state=legs.LegState.bridged,
                started_at=row.connected_at or at,
                since=at,
                args=(legs.AGENT_ARG,),
                agent_id=row.agent_id,
                bridge_id=row.bridge_id,
            )
            self._calls[row.agent_channel_id] = call
        self._by_interaction[row.interaction_id] = call

    # -- for tests and the benchmark --------------------------------------------------------

    def call_of(self, interaction_id: uuid.UUID) -> _Call | None:
        return self._by_interaction.get(interaction_id)

    def leg(self, channel_id: str) -> legs.Leg | None:
        return self._legs.get(channel_id)


_WATCHED: Final = frozenset(
    {"offer.created", "offer.closed", "interaction.changed", "call.updated"}
)


def ring_seconds_left(expires_at: datetime, now: datetime) -> int:
    """How long to ring an agent's phone: what is left of the offer, at least a few seconds."""
    return max(MIN_RING_SECONDS, int((expires_at - now) / timedelta(seconds=1)))


async def _finish_interaction(session: AsyncSession, interaction: Interaction) -> None:
    """The call is over: a caller still waiting abandoned; one talking to an agent leaves
    the agent in wrap-up."""
    if interaction.status in (InteractionStatus.queued, InteractionStatus.offered):
        await routing.abandon(session, interaction.id)
    elif interaction.status is InteractionStatus.assigned:
        await routing.conversation_ended(session, interaction.id)
