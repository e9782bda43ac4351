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
import contextvars
import logging
import time
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
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
from atiende.identity.actor import Actor
from atiende.identity.models import Role
from atiende.routing import service as routing
from atiende.routing.models import Queue, Recording
from atiende.tenancy.models import Tenant
from atiende.voice import ivr, ivr_store, legs
from atiende.voice.ari import AriClient, AriError, Connected
from atiende.voice.ari_events import (
    AriEvent,
    ChannelDestroyed,
    ChannelDtmfReceived,
    ChannelHangupRequest,
    PlaybackFinished,
    PlaybackStarted,
    RecordingFailed,
    RecordingFinished,
    StasisEnd,
    StasisStart,
    channels_of,
)
from atiende.voice.ari_events import (
    Channel as AriChannel,
)
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


#: An input of call control: ("ari", link key, event) or ("bus", None, envelope), and when
#: it arrived (monotonic seconds).
_Input = tuple[str, Any, Any, float]
_ARRIVED: contextvars.ContextVar[float] = contextvars.ContextVar("arrived", default=0.0)


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
    forwarded_to: str | None = None
    consult_state: str | None = None  # ringing | talking while an attended transfer goes on
    consult_agent_id: uuid.UUID | None = None
    consult_number: str | None = None


class CallCommand(DomainEvent):
    """A transfer asked for by a person (``voice.control``), for call control to carry out:
    ``forward`` (blind, to ``number``), ``consult`` (``agent_id`` at ``extension``, or
    ``number``), ``consult_complete``, ``consult_cancel``."""

    event_type = "call.command"
    call_id: uuid.UUID
    interaction_id: uuid.UUID
    command: str
    number: str | None = None
    agent_id: uuid.UUID | None = None
    extension: str | None = None
    actor_id: uuid.UUID | None = None


async def command(
    session: AsyncSession, call: Call, command: str, *, actor_id: uuid.UUID | None, **data: Any
) -> None:
    """Ask call control to carry out ``command`` on ``call`` once the unit of work commits."""
    await emit(
        session,
        CallCommand(
            call_id=call.id,
            interaction_id=call.interaction_id,
            command=command,
            actor_id=actor_id,
            **data,
        ),
        tenant_id=call.tenant_id,
        audience=[],
    )


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
            forwarded_to=call.forwarded_to,
            consult_state=call.consult_state,
            consult_agent_id=call.consult_agent_id,
            consult_number=call.consult_number,
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


#: The first Stasis argument of a supervisor's phone joining a call, and of the snoop
#: channel call control makes for it (``@supervise,<call id>,<mode>,<user id>``).
SUPERVISE_ARG: Final = "@supervise"
SNOOP_ARG: Final = "@snoop"
#: An agent's phone answering the call they place (``@outbound,<call id>,<customer channel>``)
#: and the customer's phone answering it (``@customer,<call id>``).
OUTBOUND_ARG: Final = "@outbound"
CUSTOMER_ARG: Final = "@customer"
#: How long call control looks for the row of a call another node just placed.
ROW_WAIT_SECONDS: Final = 3.0


#: A third party joining a call (``@third,<call id>``): the outside number a call is
#: forwarded to, or the agent or number consulted in an attended transfer.
THIRD_ARG: Final = "@third"
#: How long an outside number rings for a forward, and a consultation rings.
FORWARD_RING_SECONDS: Final = 30
#: A voicemail message: at most this long, ended by this much silence or the # key.
VOICEMAIL_MAX_SECONDS: Final = 180
VOICEMAIL_MAX_SILENCE_SECONDS: Final = 10
DEFAULT_VOICEMAIL_PROMPT: Final = ("sound:vm-intro",)


#: What asks a phone to answer an offered call by itself: the two headers phones honour
#: (``Call-Info`` with ``answer-after``, as Polycom, Yealink, Grandstream and most
#: softphones read it; ``Alert-Info`` for the others), added to the INVITE by PJSIP.
AUTO_ANSWER: Final = {
    "PJSIP_HEADER(add,Call-Info)": "<sip:atiende>;answer-after=0",
    "PJSIP_HEADER(add,Alert-Info)": "<http://atiende/>;info=alert-autoanswer;delay=0",
}


class ExtensionChanged(DomainEvent):
    """A user's phone settings changed (``voice.phones``)."""

    event_type = "extension.changed"
    user_id: uuid.UUID
    number: str
    auto_answer: bool


def third_channel_id(call_id: uuid.UUID, n: int) -> str:
    return f"atiende-xfer-{call_id.hex}-{n}"


def consult_bridge_id_of(call_id: uuid.UUID) -> str:
    return f"atiende-consult-{call_id.hex}"


def voicemail_name_of(call_id: uuid.UUID) -> str:
    return f"atiende-vm-{call_id.hex}"


def announcement_media(position: int, wait_seconds: float | None) -> tuple[str, ...]:
    """What a waiting caller hears (Asterisk's queue sounds): their place in the queue, the
    estimated wait when there is one (in whole minutes, "less than one minute" below one),
    and thanks."""
    media: list[str] = (
        ["sound:queue-youarenext"]
        if position <= 1
        else ["sound:queue-thereare", f"number:{position}", "sound:queue-callswaiting"]
    )
    minutes = wait_minutes(wait_seconds)
    if minutes is not None:
        media.append("sound:queue-holdtime")
        if minutes < 1:
            media += ["sound:queue-less-than", "number:1", "sound:queue-minute"]
        else:
            media += [f"number:{minutes}", "sound:queue-minutes"]
    media.append("sound:queue-thankyou")
    return tuple(media)


def wait_minutes(wait_seconds: float | None) -> int | None:
    """An estimated wait as announced: whole minutes, half a minute and more rounded up
    (0: under one minute)."""
    if wait_seconds is None:
        return None
    return 0 if wait_seconds < 60 else int(wait_seconds / 60 + 0.5)


#: The channel id of the agent's phone ringing for a call they place: ``<prefix><call hex>``.
DIAL_PREFIX: Final = "atiende-dial-"


def dial_channel_id(call_id: uuid.UUID) -> str:
    return f"{DIAL_PREFIX}{call_id.hex}"


def supervisor_channel_id() -> str:
    return f"atiende-sup-{uuid.uuid4().hex}"


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
    password: str = ""
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
    caller_number: str | None = None
    ringing: dict[str, uuid.UUID] = field(default_factory=dict)  # agent channel → offer id
    agent_channel: str | None = None
    bridge_id: str | None = None
    recording_started: bool = False
    ended: bool = False
    # timeline entries of decisions (offers, transfers), written with the next change
    pending: list[legs.TimelineEntry] = field(default_factory=list)
    # the IVR menu the caller is in (None: not in one), its menus, and what it waits for
    menu_state: ivr.IvrState | None = None
    menus: Mapping[uuid.UUID, ivr.Menu] = field(default_factory=dict)
    ivr_token: int = 0
    ivr_wait: int | None = None
    ivr_playback: str | None = None
    # supervisors' phones on this call → (their snoop channel, their side bridge)
    supervisors: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)
    # a third party (forward or consultation): its channel, what for, whom, and answered
    third: str | None = None
    third_mode: str = ""  # forward | consult
    third_agent: uuid.UUID | None = None
    third_number: str | None = None
    third_up: bool = False
    third_count: int = 0
    consult_bridge: str | None = None
    released: list[str] = field(default_factory=list)  # channels let go (agents' phones)
    # position announcements while waiting: every so many seconds (0: never)
    announce_every: int = 0
    announce_token: int = 0
    announce_playback: str | None = None
    # voicemail: "prompt" while the prompt plays, "recording", "done"
    voicemail: str | None = None
    voicemail_playback: str | None = None
    # the queue's message, played before the call ends
    message_playback: str | None = None


@dataclass
class Stats:
    """Counters for the benchmark and the logs."""

    ari_events: int = 0
    calls: int = 0
    offers_rung: int = 0
    # seconds from the caller's enqueue to the agent's phone ringing, per offer
    offer_latencies: list[float] = field(default_factory=list)
    # seconds spent handling inputs, by kind (ARI event type or bus event type)
    busy: dict[str, float] = field(default_factory=dict)
    # seconds inputs waited in the inbox before being handled
    waited: list[float] = field(default_factory=list)


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
        self._by_id: dict[uuid.UUID, _Call] = {}
        # agent → extension, read again with the PBXs (a miss asks the database)
        self._extensions: dict[uuid.UUID, str] = {}
        self._auto_answer: set[uuid.UUID] = set()  # agents whose phones answer by themselves
        self._enqueued_at: dict[uuid.UUID, float] = {}  # interaction → monotonic enqueue time
        self._inbox: asyncio.Queue[_Input] = asyncio.Queue()
        self._lanes: dict[str, asyncio.Queue[_Input]] = {}
        self._lane_tasks: dict[str, asyncio.Task[None]] = {}
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
                entry = getter.result()
                lane = self._lane_of(entry)
                if lane is None:
                    await self._process(entry)
                else:
                    self._post(lane, entry)
        finally:
            unsubscribe()
            refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await refresher
            for task in [*self._lane_tasks.values()]:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            for link in list(self._links.values()):
                await self._close_link(link)

    # Calls go on side by side: the inputs of one call are handled in order, in the call's
    # own lane (keyed by the caller's channel id), while other calls' lanes run meanwhile.

    def _lane_of(self, entry: _Input) -> str | None:
        kind, _, item, _ = entry
        if kind == "bus":
            call = self._by_interaction.get(uuid.UUID(str(item.data["interaction_id"])))
            return None if call is None else call.customer
        if kind == "timer" or isinstance(
            item,
            Connected | PlaybackStarted | PlaybackFinished | RecordingFinished | RecordingFailed,
        ):
            return _lane_of_other(kind, item)
        for channel_id in channels_of(item):
            if channel_id in self._lanes:
                return channel_id
            call = self._calls.get(channel_id)
            if call is not None:
                return call.customer
        return self._lane_of_start(item) if isinstance(item, StasisStart) else None

    def _lane_of_start(self, start: StasisStart) -> str | None:
        """A channel entering the application: a new caller gets a lane of its own; a
        supervisor's phone joins the lane of the call it supervises."""
        if start.args[:1] == (OUTBOUND_ARG,) and len(start.args) > 2:
            return start.args[2]  # the lane of the customer's channel, about to be dialled
        if start.args[:1] in ((SUPERVISE_ARG,), (SNOOP_ARG,), (THIRD_ARG,)):
            joined = self._by_id.get(_uuid_or_none(start.args[1] if len(start.args) > 1 else ""))
            return None if joined is None else joined.customer
        return None if legs.is_agent_leg(start.args) else start.channel.id

    def _post(self, lane: str, entry: _Input) -> None:
        queue = self._lanes.get(lane)
        if queue is None:
            queue = self._lanes[lane] = asyncio.Queue()
            self._lane_tasks[lane] = asyncio.create_task(self._work(lane, queue))
        queue.put_nowait(entry)

    async def _work(self, lane: str, queue: asyncio.Queue[_Input]) -> None:
        try:
            while True:
                await self._process(await queue.get())
                if queue.empty() and lane not in self._calls:
                    return  # the call is over (or never began)
        finally:
            if self._lanes.get(lane) is queue:
                del self._lanes[lane]
                self._lane_tasks.pop(lane, None)

    async def _process(self, entry: _Input) -> None:
        kind, key, item, arrived = entry
        began = time.monotonic()
        self.stats.waited.append(began - arrived)
        _ARRIVED.set(arrived)
        try:
            await self._handle(kind, key, item)
        except Exception:
            log.exception("call control failed on %s %r", kind, item)
        label = getattr(item, "type", "") or type(item).__name__
        self.stats.busy[label] = self.stats.busy.get(label, 0.0) + time.monotonic() - began

    async def _handle(self, kind: str, key: Any, item: Any) -> None:
        if kind == "timer":
            call = self._calls.get(str(item[0]))
            if call is not None and item[1] == "ivr":
                await self._ivr_timed_out(call, int(item[2]))
            elif call is not None and item[1] == "announce":
                await self._announce(call, int(item[2]))
            return
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
        if envelope.type == ExtensionChanged.event_type:
            self._extension_changed(envelope.data)
            return
        if envelope.type in _WATCHED and envelope.data.get("channel", "voice") == "voice":
            self._inbox.put_nowait(("bus", None, envelope, time.monotonic()))

    def _extension_changed(self, data: Mapping[str, Any]) -> None:
        """A user's phone settings changed: the next ring uses them (the 30 s refresh would
        find them too)."""
        user_id = uuid.UUID(str(data["user_id"]))
        self._extensions[user_id] = str(data["number"])
        if data.get("auto_answer"):
            self._auto_answer.add(user_id)
        else:
            self._auto_answer.discard(user_id)

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
        """Connect to new PBXs, drop removed ones, and connect again to a PBX whose password
        changed or whose events stopped (a refused login is not retried by the client)."""
        async with self.db.session(Scope.system(), read_only=True) as session:
            rows = (
                await session.execute(
                    select(Pbx, Tenant.slug).join(Tenant, Tenant.id == Pbx.tenant_id)
                )
            ).all()
            wanted: dict[LinkKey, tuple[str, dict[str, uuid.UUID], dict[uuid.UUID, uuid.UUID]]] = {}
            held = (
                await session.execute(
                    select(Extension.number, Extension.user_id, Extension.auto_answer).where(
                        Extension.user_id.is_not(None)
                    )
                )
            ).all()
            self._extensions = {user_id: number for number, user_id, _ in held if user_id}
            self._auto_answer = {user_id for _, user_id, auto in held if user_id and auto}
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
            stopped = link is not None and link.reader is not None and link.reader.done()
            if link is not None and link.password == password and not stopped:
                link.tenants, link.pbx_of = tenants, pbx_of
                continue
            if link is not None:
                await self._close_link(self._links.pop(key))
            client = AriClient(key.url, key.username, password, app=key.app)
            link = _Link(key, client, tenants, pbx_of, password)
            link.reader = asyncio.create_task(self._read(link), name=f"ari-{key.app}@{key.url}")
            self._links[key] = link

    async def _read(self, link: _Link) -> None:
        try:
            async with aclosing(link.client.events()) as stream:
                async for item in stream:
                    self._inbox.put_nowait(("ari", link.key, item, time.monotonic()))
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
        if isinstance(event, StasisStart):
            if not await self._started(link, event, at):
                return
        elif await self._supervision_event(event):
            return
        if isinstance(event, ChannelDestroyed) and event.channel.id.startswith(DIAL_PREFIX):
            await self._dial_unanswered(event, at)
            return
        if isinstance(
            event, PlaybackStarted | PlaybackFinished | RecordingFinished | RecordingFailed
        ):
            await self._on_media(event)
            return
        if isinstance(event, ChannelDtmfReceived):
            pressed = self._calls.get(event.channel.id)
            if pressed is not None and pressed.menu_state is not None:
                await self._ivr_input(pressed, event)
        concerned = channels_of(event)
        touched: dict[str, _Call] = {}
        for channel_id in concerned:
            call = self._calls.get(channel_id)
            if call is not None:
                touched[call.customer] = call
        if not touched:
            return
        before = {cid: self._legs[cid] for cid in concerned if cid in self._legs}
        result = legs.dispatch(before, event, at)
        self._legs.update(result.legs)
        for call in touched.values():
            entries = [e for e in result.entries if self._calls.get(e.channel_id) is call]
            await self._after(call, entries, before)

    async def _on_media(
        self, event: PlaybackStarted | PlaybackFinished | RecordingFinished | RecordingFailed
    ) -> None:
        """Prompts call control played (IVR, announcements, voicemail) and the voicemail
        recording, on a caller's channel."""
        if isinstance(event, PlaybackStarted | PlaybackFinished):
            played = self._calls.get(event.playback.target_uri.removeprefix("channel:"))
            if played is not None:
                await self._ivr_input(played, event)
                if isinstance(event, PlaybackFinished):
                    await self._played(played, event.playback.id)
            return
        recorded = self._calls.get(event.recording.target_uri.removeprefix("channel:"))
        if recorded is not None and event.recording.name == voicemail_name_of(recorded.id):
            await self._voicemail_recorded(recorded, isinstance(event, RecordingFinished))

    async def _started(self, link: _Link, event: StasisStart, at: datetime) -> bool:
        """A channel entered the application; True when its legs should see the event."""
        kind = event.args[0] if event.args else ""
        if kind == SUPERVISE_ARG:
            await self._supervisor_answered(link, event)
        elif kind == SNOOP_ARG:
            await self._snoop_ready(event)
        elif kind == OUTBOUND_ARG:
            await self._outbound_answered(link, event, at)
        elif kind == CUSTOMER_ARG:
            await self._customer_answered(event, at)
            return True
        elif kind == THIRD_ARG:
            return await self._third_answered(link, event, at)
        elif not legs.is_agent_leg(event.args):
            if event.channel.id not in self._legs:
                await self._arrival(link, event, at)
        elif event.channel.id in self._calls:
            await self._agent_answered(event, at)
            return True
        return False

    async def _arrival(self, link: _Link, event: StasisStart, at: datetime) -> None:
        """A caller entered the application: answer, music, and queue a new interaction."""
        channel = event.channel
        step = legs.inbound(event, at)
        slug = event.args[0] if event.args else ""
        number = event.args[1] if len(event.args) > 1 else channel.dialplan.exten
        tenant_id = link.tenants.get(slug)
        client = link.client
        target, menus = await self._number(tenant_id, number)
        if tenant_id is None or target is None:
            log.warning("a call to %r of %r: no such number here; refused", number, slug)
            with contextlib.suppress(AriError):
                await client.hangup(channel.id, reason="unallocated")
            return
        self._legs[channel.id] = step.leg
        menu = (
            ivr.start(menus, target.ivr_menu_id, target.queue_id)
            if target.ivr_menu_id is not None and target.ivr_menu_id in menus
            else None
        )
        await _answer(client, channel, music=menu is None)
        call_id = uuid.uuid4()
        call = _Call(
            call_id,
            tenant_id,
            uuid.uuid4(),
            link.key,
            channel.id,
            caller_number=channel.caller.number or None,
        )
        self._calls[channel.id] = call
        self.stats.calls += 1
        try:
            async with self.db.session(Scope.tenant(tenant_id)) as session:
                interaction = await self._open(session, channel.caller.number, channel.caller.name)
                call.interaction_id = interaction.id
                queue = await session.get(Queue, target.queue_id)
                call.recording = queue.recording if queue is not None else Recording.never
                call.announce_every = queue.announce_every_seconds if queue is not None else 0
                row = Call(
                    id=call_id,
                    interaction_id=interaction.id,
                    pbx_id=link.pbx_of[tenant_id],
                    direction="inbound",
                    customer_channel_id=channel.id,
                    caller_number=channel.caller.number or None,
                    number=number,
                    state=step.leg.state.value,
                    on_hold=False,
                    muted=False,
                    started_at=at,
                    answered_at=at,
                )
                session.add(row)
                await record_entries(session, interaction, step.entries)
                if menu is None:
                    await routing.enqueue(session, interaction, target.queue_id)
                else:  # the menu first; it queues the call when it is over
                    await conversations.record(
                        session,
                        interaction,
                        "call.ivr",
                        role="customer",
                        channel_id=channel.id,
                        menu_id=str(menu.state.menu_id),
                    )
                await publish(session, row, "started")
        except Exception:
            log.exception("queueing the call %s failed; hanging up", channel.id)
            self._forget(call)
            with contextlib.suppress(AriError):
                await client.hangup(channel.id, reason="congestion")
            raise
        self._by_interaction[call.interaction_id] = call
        self._by_id[call.id] = call
        if menu is None:
            self._enqueued_at[call.interaction_id] = time.monotonic()
            self._announce_later(call)
        else:
            call.menus = menus
            await self._ivr(call, menu)

    # -- IVR menus ----------------------------------------------------------------------------

    async def _ivr(self, call: _Call, outcome: ivr.Outcome) -> None:
        """Carry out an IVR outcome: play, wait for a key, or leave the menu for a queue
        (or a hang-up). A key pressed while a prompt plays stops it (barge-in)."""
        call.menu_state = outcome.state
        call.ivr_token += 1  # a timer or playback of an earlier step means nothing now
        client = self.client_for(call)
        await self._stop_prompt(call)
        end = outcome.end
        if isinstance(end, ivr.ToQueue):
            call.menu_state = None
            await self._leave_ivr(call, end)
            return
        if isinstance(end, ivr.HangUp):
            call.menu_state = None
            with contextlib.suppress(AriError):
                await client.hangup(call.customer)
            return
        if isinstance(end, ivr.ToNumber | ivr.ToVoicemail):
            call.menu_state = None
            await self._ivr_unattended(call, end, outcome.state.fallback_queue_id)
            return
        media: list[str] = []
        wait = None
        for action in outcome.actions:
            if isinstance(action, ivr.Play):
                media.extend(action.media)
            elif isinstance(action, ivr.WaitDigit):
                wait = action.seconds
        call.ivr_wait = wait
        if media:
            playback_id = f"atiende-ivr-{call.id.hex}-{call.ivr_token}"
            try:
                await client.play(call.customer, media, playback_id=playback_id)
                call.ivr_playback = playback_id
                return  # the wait starts when the prompt has played (PlaybackFinished)
            except AriError as error:
                log.warning("playing the menu of call %s failed: %s", call.id, error)
        self._ivr_timer(call)

    def _ivr_timer(self, call: _Call) -> None:
        if call.ivr_wait is not None:
            self._timer(call, "ivr", call.ivr_token, call.ivr_wait)

    def _timer(self, call: _Call, kind: str, token: int, seconds: float) -> None:
        """In ``seconds``, a ``("timer", None, (lane, kind, token))`` input in the call's
        lane; its handler ignores it when the token moved on meanwhile."""
        lane = call.customer

        def fire() -> None:
            self._inbox.put_nowait(("timer", None, (lane, kind, token), time.monotonic()))

        asyncio.get_running_loop().call_later(seconds, fire)

    async def _stop_prompt(self, call: _Call) -> None:
        if call.ivr_playback is not None:
            playback, call.ivr_playback = call.ivr_playback, None
            with contextlib.suppress(AriError):
                await self.client_for(call).stop_playback(playback)

    async def _ivr_input(self, call: _Call, event: AriEvent) -> None:
        """A key, a prompt that finished, or a wait that ran out, while the caller is in a
        menu."""
        state = call.menu_state
        if state is None:
            return
        if isinstance(event, ChannelDtmfReceived) and event.channel.id == call.customer:
            await self._ivr(call, ivr.press(state, call.menus, event.digit))
        elif isinstance(event, PlaybackFinished) and event.playback.id == call.ivr_playback:
            call.ivr_playback = None
            self._ivr_timer(call)

    async def _ivr_timed_out(self, call: _Call, token: int) -> None:
        if call.menu_state is not None and token == call.ivr_token and not call.ended:
            await self._ivr(call, ivr.timed_out(call.menu_state, call.menus))

    async def _leave_ivr(self, call: _Call, end: ivr.ToQueue) -> None:
        """The caller chose (or the menu ran out): queue the call, with music."""
        with contextlib.suppress(AriError):
            await self.client_for(call).start_moh(call.customer)
        async with self.db.session(Scope.tenant(call.tenant_id)) as session:
            interaction = await session.get(Interaction, call.interaction_id)
            if interaction is None or interaction.status is not InteractionStatus.queued:
                return
            queue = await session.get(Queue, end.queue_id)
            call.recording = queue.recording if queue is not None else Recording.never
            call.announce_every = queue.announce_every_seconds if queue is not None else 0
            await record_entries(session, interaction, call.pending)
            call.pending.clear()
            await conversations.record(
                session,
                interaction,
                "call.ivr_done",
                role="customer",
                channel_id=call.customer,
                path=end.path,
                queue_id=str(end.queue_id),
            )
            await routing.enqueue(session, interaction, end.queue_id)
        self._enqueued_at[call.interaction_id] = time.monotonic()
        self._announce_later(call)

    async def _ivr_unattended(
        self, call: _Call, end: ivr.ToNumber | ivr.ToVoicemail, fallback_queue_id: uuid.UUID
    ) -> None:
        """The caller chose an outside number or voicemail in the menu: the interaction is
        closed for it (``routing.leave_unattended``), then the caller is taken there."""
        async with self.db.session(Scope.tenant(call.tenant_id)) as session:
            interaction = await session.get(Interaction, call.interaction_id)
            if interaction is None:
                return
            queue_id = end.queue_id if isinstance(end, ivr.ToVoicemail) else fallback_queue_id
            queue = await session.get(Queue, queue_id)
            await record_entries(session, interaction, call.pending)
            call.pending.clear()
            await conversations.record(
                session,
                interaction,
                "call.ivr_done",
                role="customer",
                channel_id=call.customer,
                path=end.path,
                **_ivr_target(end),
            )
            if queue is not None:
                action = "forward" if isinstance(end, ivr.ToNumber) else "voicemail"
                number = end.number if isinstance(end, ivr.ToNumber) else None
                await routing.leave_unattended(
                    session, interaction, queue, action, "ivr", number=number
                )
        if isinstance(end, ivr.ToNumber):
            await self._forward_unattended(call, end.number)
        else:
            await self._voicemail(call, end.queue_id)

    async def _number(
        self, tenant_id: uuid.UUID | None, number: str
    ) -> tuple[VoiceNumber | None, Mapping[uuid.UUID, ivr.Menu]]:
        """The tenant's number called, and the tenant's menus when it has one."""
        if tenant_id is None:
            return None, {}
        async with self.db.session(Scope.tenant(tenant_id), read_only=True) as session:
            target = await session.scalar(select(VoiceNumber).where(VoiceNumber.number == number))
            if target is None or target.ivr_menu_id is None:
                return target, {}
            return target, await ivr_store.load_menus(session, tenant_id)

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
        """The agent's phone answered: bridge the two at once (the caller should not wait
        for the bookkeeping), then accept the offer for the agent; an offer that is gone
        meanwhile (timed out, taken elsewhere) undoes the bridge."""
        channel_id = event.channel.id
        call = self._calls[channel_id]
        offer_id = call.ringing.pop(channel_id, None)
        client = self.client_for(call)
        if offer_id is None or call.ended:
            with contextlib.suppress(AriError):
                await client.hangup(channel_id)
            return
        for other in list(call.ringing):  # ring-all: the others stop ringing
            with contextlib.suppress(AriError):
                await client.hangup(other, reason="answered_elsewhere")
        await self._stop_announcing(call)
        bridge_id = call.bridge_id or bridge_id_of(call.id)
        try:
            if call.bridge_id is None:
                await client.create_bridge(bridge_type="mixing", bridge_id=bridge_id)
                call.bridge_id = bridge_id
            with contextlib.suppress(AriError):
                await client.stop_moh(call.customer)
            await client.add_channel(bridge_id, call.customer, channel_id)
        except AriError as error:
            log.warning("bridging call %s failed: %s", call.id, error)
        call.agent_channel = channel_id
        recording = call.recording is Recording.always and not call.recording_started
        if recording:
            try:
                await client.record_bridge(bridge_id, recording_name_of(call.id))
                call.recording_started = True
            except AriError as error:
                log.warning("recording call %s failed: %s", call.id, error)
        try:
            async with self.db.session(Scope.tenant(call.tenant_id)) as session:
                await routing.answer_offer(session, offer_id)
                await self._connected(session, call, channel_id, at)
        except (Conflict, NotFound) as error:
            call.agent_channel = None
            log.info("the phone answered an offer that is gone (%s); hanging it up", error)
            with contextlib.suppress(AriError):
                await client.remove_channel(bridge_id, channel_id)
            with contextlib.suppress(AriError):
                await client.hangup(channel_id)
            with contextlib.suppress(AriError):
                await client.start_moh(call.customer)
            return

    async def _connected(
        self, session: AsyncSession, call: _Call, channel_id: str, at: datetime
    ) -> None:
        """The row of a call its agent just answered, written with the acceptance."""
        row = await session.scalar(select(Call).where(Call.id == call.id))
        interaction = await session.get(Interaction, call.interaction_id)
        if row is None or interaction is None:
            return
        agent = self._legs.get(channel_id)
        row.agent_channel_id = channel_id
        row.agent_id = agent.agent_id if agent is not None else None
        row.bridge_id = call.bridge_id
        row.state = legs.LegState.bridged.value
        row.connected_at = row.connected_at or at
        if call.recording_started and row.recording_name is None:
            row.recording_name = recording_name_of(call.id)
            row.recording_state = "recording"
        await record_entries(session, interaction, call.pending)
        call.pending.clear()
        await publish(session, row, "connected")

    # -- outbound calls (click-to-call) -----------------------------------------------------

    async def _outbound_answered(self, link: _Link, event: StasisStart, at: datetime) -> None:
        """The agent answered the call they placed: dial the customer through the PBX's
        outbound route into a bridge the agent already waits in."""
        channel_id = event.channel.id
        client = link.client
        row, pbx = await self._placed(_uuid_or_none(event.args[1] if len(event.args) > 1 else ""))
        if row is None or pbx is None or not pbx.outbound_dial:
            with contextlib.suppress(AriError):
                await client.hangup(channel_id)
            return
        call = _Call(
            row.id,
            row.tenant_id,
            row.interaction_id,
            link.key,
            row.customer_channel_id,
            agent_channel=channel_id,
            bridge_id=bridge_id_of(row.id),
        )
        for known in (call.customer, channel_id):
            self._calls[known] = call
        self._by_interaction[call.interaction_id] = call
        self._by_id[call.id] = call
        self._legs[channel_id] = legs.Leg(
            channel_id=channel_id,
            role=legs.LegRole.agent,
            state=legs.LegState.answered,
            started_at=at,
            since=at,
            args=(legs.AGENT_ARG,),
            agent_id=row.agent_id,
        )
        self._legs[call.customer] = legs.Leg(
            channel_id=call.customer,
            role=legs.LegRole.customer,
            state=legs.LegState.ringing_in,
            started_at=at,
            since=at,
            caller=None,
            agent_id=row.agent_id,
        )
        number = (row.caller_number or "").lstrip("+")
        try:
            await client.create_bridge(bridge_type="mixing", bridge_id=call.bridge_id)
            await client.add_channel(call.bridge_id or "", channel_id)
            await client.originate(
                pbx.outbound_dial.replace("{number}", number),
                app_args=(CUSTOMER_ARG, str(call.id)),
                caller_id=pbx.outbound_caller_id,
                ring_seconds=45,
                channel_id=call.customer,
            )
        except AriError as error:
            log.warning("dialling out for call %s failed: %s", call.id, error)
            step = legs.vanish(self._legs[call.customer], at)
            self._legs[call.customer] = step.leg
            await self._after(call, list(step.entries), {})

    async def _dial_unanswered(self, event: ChannelDestroyed, at: datetime) -> None:
        """The agent's phone of a call they placed went away before answering (no answer,
        busy, the agent declined): the call ends there, and the agent's wrap-up starts."""
        if event.channel.id in self._calls:
            return  # answered: the call's legs follow it
        call_id = _uuid_or_none(event.channel.id.removeprefix(DIAL_PREFIX))
        found, _ = await self._placed(call_id)  # its commit may follow a quick refusal
        if found is None or found.ended_at is not None:
            return
        async with self.db.session(Scope.tenant(found.tenant_id)) as session:
            row = await session.get(Call, call_id)
            interaction = (
                None if row is None else await session.get(Interaction, row.interaction_id)
            )
            if row is None or interaction is None or row.ended_at is not None:
                return
            row.state = legs.LegState.ended.value
            row.ended_at = at
            row.end_cause = "agent_no_answer"
            await conversations.record(
                session,
                interaction,
                "call.ended",
                role="agent",
                channel_id=event.channel.id,
                cause="agent_no_answer",
                q850=event.cause,
            )
            await _finish_interaction(session, interaction)
            await publish(session, row, "ended")

    async def _placed(self, call_id: uuid.UUID) -> tuple[Call | None, Pbx | None]:
        """The row of a call a node just placed (its commit may follow the PBX's event)."""
        deadline = time.monotonic() + ROW_WAIT_SECONDS
        while True:
            async with self.db.session(Scope.system(), read_only=True) as session:
                row = await session.get(Call, call_id)
                pbx = None if row is None else await session.get(Pbx, row.pbx_id)
            if row is not None or time.monotonic() > deadline:
                return row, pbx
            await asyncio.sleep(0.05)

    async def _customer_answered(self, event: StasisStart, at: datetime) -> None:
        """The customer answered the call an agent placed: they talk."""
        call = self._calls.get(event.channel.id)
        if call is None or call.ended or call.bridge_id is None:
            return
        client = self.client_for(call)
        try:
            await client.add_channel(call.bridge_id, call.customer)
        except AriError as error:
            log.warning("bridging call %s failed: %s", call.id, error)
            return
        async with self.db.session(Scope.tenant(call.tenant_id)) as session:
            row = await session.get(Call, call.id)
            if row is not None:
                row.state = legs.LegState.bridged.value
                row.agent_channel_id = call.agent_channel
                row.bridge_id = call.bridge_id
                row.answered_at = row.answered_at or at
                row.connected_at = row.connected_at or at
                await publish(session, row, "connected")

    # -- supervisors ------------------------------------------------------------------------

    async def _supervisor_answered(self, link: _Link, event: StasisStart) -> None:
        """A supervisor answered the phone call control rang for them: listen and whisper
        hear the agent's channel through a snoop (whisper also speaks to the agent only);
        barge joins the conversation's bridge."""
        channel_id = event.channel.id
        call = self._by_id.get(_uuid_or_none(event.args[1] if len(event.args) > 1 else ""))
        mode = event.args[2] if len(event.args) > 2 else "listen"
        client = link.client
        if call is None or call.ended or call.agent_channel is None or call.bridge_id is None:
            with contextlib.suppress(AriError):
                await client.hangup(channel_id)
            return
        self._calls[channel_id] = call
        try:
            if mode == "barge":
                call.supervisors[channel_id] = (None, None)
                await client.add_channel(call.bridge_id, channel_id)
                return
            side = await client.create_bridge(
                bridge_type="mixing", bridge_id=f"{channel_id}-bridge"
            )
            call.supervisors[channel_id] = (f"{channel_id}-snoop", side.id)
            await client.add_channel(side.id, channel_id)
            # the snoop joins the side bridge once it is in the application (_snoop_ready)
            await client.snoop(
                call.agent_channel,
                spy="both",
                whisper="out" if mode == "whisper" else "none",
                app_args=(SNOOP_ARG, str(call.id), channel_id),
                snoop_id=f"{channel_id}-snoop",
            )
        except AriError as error:
            log.warning("supervising call %s failed: %s", call.id, error)
            await self._drop_supervisor(call, channel_id)

    async def _snoop_ready(self, event: StasisStart) -> None:
        """The snoop on the agent's channel entered the application: into the supervisor's
        side bridge with it."""
        call = self._by_id.get(_uuid_or_none(event.args[1] if len(event.args) > 1 else ""))
        supervisor = event.args[2] if len(event.args) > 2 else ""
        snoop, side = (
            (None, None) if call is None else call.supervisors.get(supervisor, (None, None))
        )
        if call is None or side is None or snoop != event.channel.id:
            if call is not None:
                with contextlib.suppress(AriError):
                    await self.client_for(call).hangup(event.channel.id)
            return
        try:
            await self.client_for(call).add_channel(side, snoop)
        except AriError as error:
            log.warning("supervising call %s failed: %s", call.id, error)
            await self._drop_supervisor(call, supervisor)

    async def _supervision_event(self, event: AriEvent) -> bool:
        """A supervisor's phone hanging up ends their listening; True when ``event`` was
        about a supervisor's channel (call legs ignore those)."""
        channel = getattr(event, "channel", None)  # its own channel, not a bridge's members
        if channel is None:
            return False
        call = self._calls.get(channel.id)
        if call is None or channel.id not in call.supervisors:
            return False
        if isinstance(event, ChannelHangupRequest | ChannelDestroyed | StasisEnd):
            await self._drop_supervisor(call, channel.id)
        return True

    async def _drop_supervisor(self, call: _Call, channel_id: str) -> None:
        snoop, side = call.supervisors.pop(channel_id, (None, None))
        self._calls.pop(channel_id, None)
        client = self.client_for(call)
        for target in (snoop, channel_id):
            if target is not None:
                with contextlib.suppress(AriError):
                    await client.hangup(target)
        if side is not None:
            with contextlib.suppress(AriError):
                await client.destroy_bridge(side)

    async def _drop_supervisors(self, call: _Call) -> None:
        for channel_id in list(call.supervisors):
            await self._drop_supervisor(call, channel_id)

    # -- after a leg moved ------------------------------------------------------------------

    async def _after(
        self, call: _Call, entries: list[legs.TimelineEntry], before: Mapping[str, legs.Leg]
    ) -> None:
        """Act on what the event did to the call's legs, and write it down."""
        customer = self._legs.get(call.customer)
        client = self.client_for(call)
        declined = self._phones_done(call, before)
        customer_gone = customer is None or customer.is_ended
        await self._third_after(call, customer_gone=customer_gone)
        agent_gone = call.agent_channel is not None and self._ended(call.agent_channel)
        newly_ended = False
        if customer_gone and not call.ended:
            call.ended = newly_ended = True
            await self._hang_up(call, [*call.ringing, call.agent_channel, call.third])
        elif agent_gone and not call.ended:
            # the agent hung up: the call is over for the caller too
            call.ended = newly_ended = True
            await self._hang_up(call, [call.customer, call.third])
        if declined or newly_ended or any(_urgent(e) for e in entries):
            await self._write(call, entries, declined, ended=newly_ended)
        else:  # minor steps (a phone ringing, a channel answering) go with the next write
            call.pending.extend(entries)
        if call.ended:
            await self._drop_supervisors(call)
        if call.ended and customer_gone and self._all_ended(call):
            if call.pending:  # the last steps (the agent's phone hung up, …)
                await self._write(call, [], [], ended=False)
            for bridge in (call.bridge_id, call.consult_bridge):
                if bridge is not None:
                    with contextlib.suppress(AriError):
                        await client.destroy_bridge(bridge)
            self._forget(call)

    async def _hang_up(self, call: _Call, channels: Sequence[str | None]) -> None:
        for channel_id in channels:
            if channel_id is not None and not self._ended(channel_id):
                with contextlib.suppress(AriError):
                    await self.client_for(call).hangup(channel_id)

    async def _third_after(self, call: _Call, *, customer_gone: bool) -> None:
        """A third party's channel ending, the agent hanging up while talking to the one
        consulted (the transfer completes, as on a desk phone), a caller hanging up while
        leaving a voicemail (that ends the message)."""
        if customer_gone:
            if call.voicemail == "recording":
                await self._voicemail_recorded(call, True)
            return
        if call.third is not None and self._ended(call.third):
            await self._third_gone(call)
        agent = call.agent_channel
        if (
            agent is not None
            and self._ended(agent)
            and call.third_mode == "consult"
            and call.third_up
        ):
            await self._complete_consult(call)

    def _phones_done(
        self, call: _Call, before: Mapping[str, legs.Leg]
    ) -> list[tuple[uuid.UUID, str]]:
        """Phones that stopped ringing without answering (their offers are declined), and
        those that just began ringing (counted for the offer latency)."""
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
        return declined

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
            if entry.kind is legs.EntryKind.ended and entry.role is legs.LegRole.customer:
                row.ended_at = entry.at
                row.end_cause = _end_cause(call, entry)
                row.on_hold = False
                if row.recording_state in ("recording", "paused"):
                    row.recording_state = "done"
        return change

    def _rung(self, call: _Call) -> None:
        self.stats.offers_rung += 1
        started = self._enqueued_at.get(call.interaction_id)
        if started is not None:  # until Asterisk reported the ring (its event's arrival)
            self.stats.offer_latencies.append(_ARRIVED.get() - started)

    def _ended(self, channel_id: str) -> bool:
        leg = self._legs.get(channel_id)
        return leg is None or leg.is_ended

    def _all_ended(self, call: _Call) -> bool:
        channels = [call.customer, *call.ringing]
        for other in (call.agent_channel, call.third):
            if other is not None:
                channels.append(other)
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
        for channel_id in [call.customer, *call.ringing, call.agent_channel, call.third]:
            if channel_id is not None:
                self._calls.pop(channel_id, None)
                self._legs.pop(channel_id, None)
        for channel_id in call.released:
            self._calls.pop(channel_id, None)
            self._legs.pop(channel_id, None)
        self._by_interaction.pop(call.interaction_id, None)
        self._by_id.pop(call.id, None)
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
        elif envelope.type == "call.command":
            await self._command(call, data)
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
        extension = self._extensions.get(agent_id)
        if extension is None:
            async with self.db.session(Scope.tenant(call.tenant_id), read_only=True) as session:
                extension = await session.scalar(
                    select(Extension.number).where(Extension.user_id == agent_id)
                )
        caller = call.caller_number
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
                variables=AUTO_ANSWER if agent_id in self._auto_answer else None,
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
        change = data.get("change")
        if change == "voicemail":
            await self._voicemail(call)
            return
        if change == "forward":
            await self._forward_unattended(call)
            return
        if change == "message":
            await self._message(call)
            return
        if call.third_mode == "forward" or call.voicemail is not None or call.message_playback:
            return  # the caller talks to an outside number, or leaves a message: not ours
        if status == "queued" and change == "queued" and call.agent_channel is None:
            self._announce_later(call)
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
            self._announce_later(call)
        elif status in ("wrap_up", "closed", "abandoned") and not call.ended:
            call.ended = True
            for channel_id in [call.customer, *call.ringing, call.agent_channel]:
                if channel_id is not None and not self._ended(channel_id):
                    with contextlib.suppress(AriError):
                        await client.hangup(channel_id)

    # -- transfers: a third party (forward, consultation) ------------------------------------

    @contextlib.asynccontextmanager
    async def _writing(
        self, call: _Call
    ) -> AsyncIterator[tuple[AsyncSession, Call, Interaction] | None]:
        """A unit of work on the call's row and its interaction (None when either is gone),
        with the leg steps the call has pending written first."""
        async with self.db.session(Scope.tenant(call.tenant_id)) as session:
            row = await session.get(Call, call.id)
            interaction = await session.get(Interaction, call.interaction_id)
            if row is None or interaction is None:
                yield None
                return
            await record_entries(session, interaction, call.pending)
            call.pending.clear()
            yield session, row, interaction

    async def _command(self, call: _Call, data: Mapping[str, Any]) -> None:
        """A transfer a person asked for (``voice.control``, ``CallCommand``)."""
        command = data.get("command")
        agent = data.get("agent_id")
        agent_id = uuid.UUID(str(agent)) if agent else None
        number = data.get("number")
        if command == "forward" and number:
            await self._forward(call, str(number))
        elif command == "consult":
            await self._consult(call, agent_id, data.get("extension"), number)
        elif command == "consult_complete" and call.third_mode == "consult" and call.third_up:
            await self._complete_consult(call)
        elif command == "consult_cancel" and call.third_mode == "consult" and call.third:
            third, call.third = call.third, None
            call.released.append(third)
            with contextlib.suppress(AriError):
                await self.client_for(call).hangup(third)
            await self._consult_back(call, "cancelled")

    async def _queue_of(self, call: _Call, queue_id: uuid.UUID | None = None) -> Queue | None:
        """``queue_id``, else the queue the call's interaction is (or was last) in."""
        async with self.db.session(Scope.tenant(call.tenant_id), read_only=True) as session:
            if queue_id is None:
                interaction = await session.get(Interaction, call.interaction_id)
                queue_id = None if interaction is None else interaction.queue_id
            return None if queue_id is None else await session.get(Queue, queue_id)

    async def _outbound(self, call: _Call) -> Pbx | None:
        """The call's PBX, when it has an outbound route."""
        async with self.db.session(Scope.tenant(call.tenant_id), read_only=True) as session:
            row = await session.get(Call, call.id)
            pbx = None if row is None else await session.get(Pbx, row.pbx_id)
        return pbx if pbx is not None and pbx.outbound_dial else None

    def _new_third(
        self, call: _Call, mode: str, agent_id: uuid.UUID | None, number: str | None
    ) -> str:
        call.third_count += 1
        channel_id = third_channel_id(call.id, call.third_count)
        call.third, call.third_mode, call.third_up = channel_id, mode, False
        call.third_agent, call.third_number = agent_id, number
        self._calls[channel_id] = call
        self._legs[channel_id] = legs.Leg(
            channel_id=channel_id,
            role=legs.LegRole.agent,
            state=legs.LegState.offering,
            started_at=self.db.clock.now(),
            since=self.db.clock.now(),
            args=(THIRD_ARG,),
            agent_id=agent_id,
        )
        return channel_id

    async def _dial_third(
        self, call: _Call, channel_id: str, endpoint: str, caller_id: str | None
    ) -> bool:
        try:
            await self.client_for(call).originate(
                endpoint,
                app_args=(THIRD_ARG, str(call.id)),
                caller_id=caller_id,
                ring_seconds=FORWARD_RING_SECONDS,
                channel_id=channel_id,
            )
        except AriError as error:
            log.info("dialling %s for call %s failed: %s", endpoint, call.id, error)
            step = legs.vanish(self._legs[channel_id], self.db.clock.now())
            self._legs[channel_id] = step.leg
            return False
        return True

    async def _release_agent(self, call: _Call) -> None:
        """The agent's phone leaves the call (a blind or completed transfer): it hangs up
        without ending the call."""
        agent_channel, call.agent_channel = call.agent_channel, None
        if agent_channel is None:
            return
        call.released.append(agent_channel)
        client = self.client_for(call)
        for bridge in (call.bridge_id, call.consult_bridge):
            if bridge is not None:
                with contextlib.suppress(AriError):
                    await client.remove_channel(bridge, agent_channel)
        with contextlib.suppress(AriError):
            await client.hangup(agent_channel)

    async def _forward(self, call: _Call, number: str) -> None:
        """Blind transfer: the agent's phone is let go and the caller waits with music while
        the outside number rings (``_third_answered``, ``_third_gone``)."""
        if call.ended or call.third is not None or call.agent_channel is None:
            return
        pbx = await self._outbound(call)
        self._apply_command(call.customer, legs.Transfer())
        await self._release_agent(call)
        with contextlib.suppress(AriError):
            await self.client_for(call).start_moh(call.customer)
        channel_id = self._new_third(call, "forward", None, number)
        dialled = pbx is not None and await self._dial_third(
            call,
            channel_id,
            (pbx.outbound_dial or "").replace("{number}", number.lstrip("+")),
            pbx.outbound_caller_id,
        )
        if not dialled:
            await self._third_gone(call)

    async def _forward_unattended(self, call: _Call, number: str | None = None) -> None:
        """The queue sent the caller to its forward number (closed hours, max wait), or the
        menu to the number of the option chosen."""
        if call.third is not None or call.ended:
            return  # already under way (the menu's forward, then its interaction.changed)
        if number is None:
            queue = await self._queue_of(call)
            number = queue.forward_number if queue is not None else None
        await self._stop_announcing(call)
        pbx = await self._outbound(call)
        if number is None or pbx is None or call.ended:
            log.warning("call %s cannot be forwarded (no number or outbound route)", call.id)
            with contextlib.suppress(AriError):
                await self.client_for(call).hangup(call.customer)
            return
        channel_id = self._new_third(call, "forward", None, number)
        dialled = await self._dial_third(
            call,
            channel_id,
            (pbx.outbound_dial or "").replace("{number}", number.lstrip("+")),
            pbx.outbound_caller_id,
        )
        if not dialled:
            await self._third_gone(call)

    async def _consult(
        self,
        call: _Call,
        agent_id: uuid.UUID | None,
        extension: Any,
        number: Any,
    ) -> None:
        """Attended transfer: the caller on hold alone in the call's bridge, the agent in a
        consultation bridge where the one consulted is rung to."""
        if call.ended or call.third is not None or call.agent_channel is None:
            await self._consult_refused(call, "busy")
            return
        if call.bridge_id is None:
            await self._consult_refused(call, "not_connected")
            return
        client = self.client_for(call)
        if agent_id is not None and extension:
            endpoint, caller_id = f"PJSIP/{extension}", call.caller_number
        else:
            pbx = await self._outbound(call)
            if pbx is None or not number:
                await self._consult_refused(call, "no_outbound_route")
                return
            endpoint = (pbx.outbound_dial or "").replace("{number}", str(number).lstrip("+"))
            caller_id = pbx.outbound_caller_id
        bridge = consult_bridge_id_of(call.id)
        try:
            await client.hold(call.customer)
            await client.mute(call.customer, "in")
            await client.start_moh(call.customer)
            await client.create_bridge(bridge_type="mixing", bridge_id=bridge)
            call.consult_bridge = bridge
            await client.remove_channel(call.bridge_id, call.agent_channel)
            await client.add_channel(bridge, call.agent_channel)
        except AriError as error:
            log.warning("starting a consultation on call %s failed: %s", call.id, error)
            await self._consult_back(call, "failed")
            return
        self._apply_command(call.customer, legs.Hold())
        channel_id = self._new_third(call, "consult", agent_id, str(number) if number else None)
        async with self._writing(call) as found:
            if found is not None:
                session, row, _ = found
                row.on_hold = True
                row.state = legs.LegState.on_hold.value
                await publish(session, row, "held")
        if not await self._dial_third(call, channel_id, endpoint, caller_id):
            await self._third_gone(call)

    async def _consult_refused(self, call: _Call, reason: str) -> None:
        async with self._writing(call) as found:
            if found is None:
                return
            session, row, interaction = found
            row.consult_agent_id = row.consult_number = row.consult_state = None
            await conversations.record(
                session, interaction, "call.consult_ended", role="agent", reason=reason
            )
            await publish(session, row, "consult_ended")

    async def _third_answered(self, link: _Link, event: StasisStart, at: datetime) -> bool:
        """The outside number or the one consulted answered: into the call (a forward) or
        into the consultation bridge with the agent."""
        channel_id = event.channel.id
        call = self._calls.get(channel_id)
        client = link.client
        if call is None or call.third != channel_id or call.ended:
            with contextlib.suppress(AriError):
                await client.hangup(channel_id)
            return False
        call.third_up = True
        if call.third_mode == "consult":
            try:
                await client.add_channel(call.consult_bridge or "", channel_id)
            except AriError as error:
                log.warning("joining the consultation of call %s failed: %s", call.id, error)
            async with self._writing(call) as found:
                if found is not None:
                    session, row, interaction = found
                    row.consult_state = "talking"
                    await conversations.record(
                        session, interaction, "call.consult_answered", role="agent"
                    )
                    await publish(session, row, "consult_answered")
            return True
        await self._join_outside(call, channel_id, at)
        return True

    async def _join_outside(self, call: _Call, channel_id: str, at: datetime) -> None:
        """The outside number talks to the caller in the call's bridge; the interaction is
        over for the agent (wrap-up), or was already (a queue's forward)."""
        client = self.client_for(call)
        try:
            if call.bridge_id is None:
                bridge = bridge_id_of(call.id)
                await client.create_bridge(bridge_type="mixing", bridge_id=bridge)
                call.bridge_id = bridge
                with contextlib.suppress(AriError):
                    await client.stop_moh(call.customer)
                await client.add_channel(bridge, call.customer, channel_id)
            else:
                with contextlib.suppress(AriError):
                    await client.stop_moh(call.customer)
                await client.add_channel(call.bridge_id, channel_id)
        except AriError as error:
            log.warning("bridging the forward of call %s failed: %s", call.id, error)
        self._apply_command(call.customer, legs.Transfer())  # a queue's forward: from queued
        async with self._writing(call) as found:
            if found is None:
                return
            session, row, interaction = found
            await conversations.record(
                session,
                interaction,
                "call.transferred",
                role="customer",
                channel_id=call.customer,
                number=call.third_number,
                agent_id=row.agent_id,
            )
            row.forwarded_to = call.third_number
            row.agent_channel_id = None
            row.agent_id = None  # no agent is on the call any more (the interaction keeps its)
            row.bridge_id = call.bridge_id
            row.state = legs.LegState.bridged.value
            row.on_hold = False
            row.consult_agent_id = row.consult_number = row.consult_state = None
            row.connected_at = row.connected_at or at
            await routing.conversation_ended(session, interaction.id)
            await publish(session, row, "transferred")

    async def _third_gone(self, call: _Call) -> None:
        """The third party's channel ended: a forward that was not answered sends the caller
        back to the queue; one that was ends the call; a consultation goes back to the
        caller."""
        third, up, mode = call.third, call.third_up, call.third_mode
        if third is None:
            return
        call.third, call.third_up = None, False
        call.released.append(third)
        leg = self._legs.get(third)
        cause = leg.cause.value if leg is not None and leg.cause else "failed"
        client = self.client_for(call)
        if mode == "consult":
            await self._consult_back(call, "hangup" if up else cause)
        elif up:  # the outside party hung up: the caller's call is over
            with contextlib.suppress(AriError):
                await client.hangup(call.customer)
        else:
            await self._forward_failed(call, cause)

    async def _forward_failed(self, call: _Call, cause: str) -> None:
        """The outside number did not answer: a transferred caller goes back to the head of
        the queue; one the queue forwarded (closed, max wait) hears that and is hung up."""
        async with self._writing(call) as found:
            if found is None:
                return
            session, row, interaction = found
            await conversations.record(
                session,
                interaction,
                "call.transfer_failed",
                role="customer",
                channel_id=call.customer,
                number=call.third_number,
                cause=cause,
            )
            row.forwarded_to = None
            queue_id = interaction.queue_id
            requeue = (
                interaction.status is InteractionStatus.assigned
                and interaction.agent_id is not None
                and interaction.queue_id is not None
            )
            if requeue:
                assert interaction.agent_id is not None
                assert interaction.queue_id is not None
                agent = Actor(
                    user_id=interaction.agent_id,
                    email=None,
                    role=Role.agent,
                    tenant_id=call.tenant_id,
                )
                row.agent_channel_id = None
                row.state = legs.LegState.queued.value
                await routing.transfer(
                    session, agent, interaction.id, queue_id=interaction.queue_id
                )
            await publish(session, row, "transfer_failed")
        if requeue and queue_id is not None:
            self._apply_command(call.customer, legs.Enqueue(queue_id))
            self._enqueued_at[call.interaction_id] = time.monotonic()
            self._announce_later(call)
        else:
            with contextlib.suppress(AriError):
                await self.client_for(call).hangup(call.customer)

    async def _complete_consult(self, call: _Call) -> None:
        """The agent hands the caller to the one consulted: an agent takes the interaction
        (``routing.hand_over``) and talks in the call's bridge; an outside number talks to
        the caller while the agent's wrap-up starts."""
        third = call.third
        if third is None or not call.third_up or call.bridge_id is None:
            return
        client = self.client_for(call)
        if call.third_agent is None:  # an outside number: as a forward it answered
            call.third_mode = "forward"
            await self._release_agent(call)
            await self._unhold(call)
            await self._drop_consult_bridge(call)
            await self._join_outside(call, third, self.db.clock.now())
            return
        try:
            async with self.db.session(Scope.tenant(call.tenant_id)) as session:
                await routing.hand_over(
                    session, call.interaction_id, call.third_agent, actor_id=None
                )
        except (Conflict, NotFound) as error:
            log.info("completing the consultation of call %s failed: %s", call.id, error)
            await self._consult_refused_keep(call, str(error))
            return
        new_agent = third
        call.third = None
        call.third_mode = ""
        await self._release_agent(call)
        call.agent_channel = new_agent
        with contextlib.suppress(AriError):
            await client.remove_channel(call.consult_bridge or "", new_agent)
        with contextlib.suppress(AriError):
            await client.add_channel(call.bridge_id, new_agent)
        await self._unhold(call)
        await self._drop_consult_bridge(call)
        async with self._writing(call) as found:
            if found is None:
                return
            session, row, interaction = found
            await conversations.record(
                session,
                interaction,
                "call.transferred",
                role="customer",
                channel_id=call.customer,
                agent_id=call.third_agent,
                attended=True,
            )
            row.agent_channel_id = new_agent
            row.agent_id = call.third_agent
            row.on_hold = False
            row.state = legs.LegState.bridged.value
            row.consult_agent_id = row.consult_number = row.consult_state = None
            await publish(session, row, "transferred")

    async def _consult_refused_keep(self, call: _Call, reason: str) -> None:
        async with self._writing(call) as found:
            if found is None:
                return
            session, row, interaction = found
            await conversations.record(
                session, interaction, "call.consult_complete_failed", role="agent", reason=reason
            )
            await publish(session, row, "consult_complete_failed")

    async def _unhold(self, call: _Call) -> None:
        client = self.client_for(call)
        for step in (client.stop_moh, client.unhold):
            with contextlib.suppress(AriError):
                await step(call.customer)
        with contextlib.suppress(AriError):
            await client.unmute(call.customer, "in")
        self._apply_command(call.customer, legs.Unhold())

    async def _drop_consult_bridge(self, call: _Call) -> None:
        bridge, call.consult_bridge = call.consult_bridge, None
        if bridge is not None:
            with contextlib.suppress(AriError):
                await self.client_for(call).destroy_bridge(bridge)

    async def _consult_back(self, call: _Call, reason: str) -> None:
        """The consultation is over without a transfer: the agent is back with the caller."""
        client = self.client_for(call)
        agent = call.agent_channel
        if agent is not None and not self._ended(agent):
            with contextlib.suppress(AriError):
                await client.remove_channel(call.consult_bridge or "", agent)
            with contextlib.suppress(AriError):
                await client.add_channel(call.bridge_id or "", agent)
        call.third_mode = ""
        call.third_agent = call.third_number = None
        await self._drop_consult_bridge(call)
        await self._unhold(call)
        async with self._writing(call) as found:
            if found is None:
                return
            session, row, interaction = found
            await conversations.record(
                session, interaction, "call.consult_ended", role="agent", reason=reason
            )
            row.consult_agent_id = row.consult_number = row.consult_state = None
            row.on_hold = False
            if row.state == legs.LegState.on_hold.value:
                row.state = legs.LegState.bridged.value
            await publish(session, row, "consult_ended")

    # -- waiting: position announcements -----------------------------------------------------

    def _announce_later(self, call: _Call) -> None:
        if call.announce_every > 0 and not call.ended:
            call.announce_token += 1
            self._timer(call, "announce", call.announce_token, call.announce_every)

    async def _announce(self, call: _Call, token: int) -> None:
        """Tell a waiting caller their place in the queue, then music again."""
        if token != call.announce_token or call.ended or call.menu_state is not None:
            return
        if call.voicemail is not None or call.third is not None:
            return
        if call.agent_channel is not None:
            return
        if call.ringing:
            self._announce_later(call)  # a phone rings: maybe not for long
            return
        async with self.db.session(Scope.tenant(call.tenant_id)) as session:
            interaction = await session.get(Interaction, call.interaction_id)
            if interaction is None or interaction.status is not InteractionStatus.queued:
                return
            position = await routing.position_in_queue(session, interaction)
            waited = (
                None
                if interaction.queue_id is None
                else await routing.recent_wait_seconds(session, interaction.queue_id)
            )
            await conversations.record(
                session,
                interaction,
                "call.announced",
                role="customer",
                channel_id=call.customer,
                position=position,
                wait_minutes=wait_minutes(waited),
            )
        client = self.client_for(call)
        playback = f"atiende-ann-{call.id.hex}-{token}"
        try:
            await client.stop_moh(call.customer)
            await client.play(
                call.customer, announcement_media(position, waited), playback_id=playback
            )
            call.announce_playback = playback
        except AriError as error:
            log.info("announcing to call %s failed: %s", call.id, error)
            with contextlib.suppress(AriError):
                await client.start_moh(call.customer)
            self._announce_later(call)

    async def _stop_announcing(self, call: _Call) -> None:
        call.announce_token += 1
        playback, call.announce_playback = call.announce_playback, None
        if playback is not None:
            with contextlib.suppress(AriError):
                await self.client_for(call).stop_playback(playback)

    async def _played(self, call: _Call, playback_id: str) -> None:
        """A prompt of call control finished: music again after an announcement; the
        recording after the voicemail prompt."""
        client = self.client_for(call)
        if playback_id == call.announce_playback:
            call.announce_playback = None
            if call.agent_channel is None and call.third is None and not call.ended:
                with contextlib.suppress(AriError):
                    await client.start_moh(call.customer)
                self._announce_later(call)
        elif playback_id == call.message_playback:
            with contextlib.suppress(AriError):
                await client.hangup(call.customer)
        elif playback_id == call.voicemail_playback:
            call.voicemail_playback = None
            try:
                await client.record(
                    call.customer,
                    voicemail_name_of(call.id),
                    max_duration_seconds=VOICEMAIL_MAX_SECONDS,
                    max_silence_seconds=VOICEMAIL_MAX_SILENCE_SECONDS,
                    if_exists="overwrite",
                    beep=True,
                    terminate_on="#",
                )
                call.voicemail = "recording"
            except AriError as error:
                log.warning("recording the voicemail of call %s failed: %s", call.id, error)
                with contextlib.suppress(AriError):
                    await client.hangup(call.customer)

    # -- the queue's message ------------------------------------------------------------------

    async def _message(self, call: _Call) -> None:
        """The queue answers the caller with its message (closed hours, max wait): the
        queue's ``message_prompt``, then the call ends (``_played``)."""
        if call.message_playback is not None or call.ended:
            return
        await self._stop_announcing(call)
        queue = await self._queue_of(call)
        client = self.client_for(call)
        playback = f"atiende-msg-{call.id.hex}"
        call.message_playback = playback
        try:
            prompt = ivr.parse_media(
                queue.message_prompt if queue and queue.message_prompt else "",
                field="message_prompt",
            )
            with contextlib.suppress(AriError):
                await client.stop_moh(call.customer)
            await client.play(call.customer, prompt, playback_id=playback)
        except (AriError, ivr.IvrInvalid) as error:
            log.warning("the message of call %s could not play: %s", call.id, error)
            with contextlib.suppress(AriError):
                await client.hangup(call.customer)

    # -- voicemail ----------------------------------------------------------------------------

    async def _voicemail(self, call: _Call, queue_id: uuid.UUID | None = None) -> None:
        """The queue sends the caller to voicemail (closed hours, max wait), or the menu
        does: the queue's prompt, a beep, and the message recorded on the caller's channel
        (``_played``)."""
        if call.voicemail is not None or call.ended:
            return
        await self._stop_announcing(call)
        queue = await self._queue_of(call, queue_id)
        prompt: tuple[str, ...] = DEFAULT_VOICEMAIL_PROMPT
        if queue is not None and queue.voicemail_prompt:
            with contextlib.suppress(ivr.IvrInvalid):
                prompt = ivr.parse_media(queue.voicemail_prompt, field="voicemail_prompt")
        client = self.client_for(call)
        call.voicemail = "prompt"
        playback = f"atiende-vmp-{call.id.hex}"
        try:
            with contextlib.suppress(AriError):
                await client.stop_moh(call.customer)
            await client.play(call.customer, prompt, playback_id=playback)
            call.voicemail_playback = playback
        except AriError as error:
            log.warning("the voicemail prompt of call %s failed: %s", call.id, error)
            await self._played(call, playback)

    async def _voicemail_recorded(self, call: _Call, finished: bool) -> None:
        """The message is recorded (the caller pressed #, was silent, hung up): kept with
        the call, playable in the interaction like a call recording."""
        if call.voicemail != "recording":
            return
        call.voicemail = "done" if finished else "failed"
        async with self._writing(call) as found:
            if found is None:
                return
            session, row, interaction = found
            if finished:
                row.recording_name = voicemail_name_of(call.id)
                row.recording_state = "done"
            await conversations.record(
                session,
                interaction,
                "call.voicemail",
                role="customer",
                channel_id=call.customer,
                recording=voicemail_name_of(call.id) if finished else None,
                failed=not finished,
            )
            await publish(session, row, "voicemail")
        if not self._ended(call.customer):
            with contextlib.suppress(AriError):
                await self.client_for(call).hangup(call.customer)

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
            if channel.id in self._legs:
                continue
            if legs.stasis_args(channel)[:1] == (THIRD_ARG,):
                await self._adopt_third(link, channel, at)
            elif not legs.is_agent_leg(legs.stasis_args(channel)):
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

    async def _adopt_third(self, link: _Link, channel: AriChannel, at: datetime) -> None:
        """A rebuild found the outside number or the one consulted of a call it took up
        again (``_take_up`` read which from the row): it is that call's third party again,
        so its hanging up ends the forward or the consultation as before the restart."""
        args = legs.stasis_args(channel)
        call = self._by_id.get(_uuid_or_none(args[1] if len(args) > 1 else ""))
        if call is None or not call.third_mode or call.third is not None:
            with contextlib.suppress(AriError):
                await link.client.hangup(channel.id)
            return
        up = channel.state == "Up"
        call.third, call.third_up = channel.id, up
        call.third_count = max(call.third_count, _third_number(channel.id))
        self._calls[channel.id] = call
        self._legs[channel.id] = legs.Leg(
            channel_id=channel.id,
            role=legs.LegRole.agent,
            state=legs.LegState.bridged if up else legs.LegState.offering,
            started_at=min(channel.creationtime, at),
            since=at,
            args=(THIRD_ARG,),
            agent_id=call.third_agent,
        )

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
            caller_number=row.caller_number,
        )
        # a forward or a consultation under way: its third party is adopted when found
        if row.consult_state is not None:
            call.third_mode, call.consult_bridge = "consult", consult_bridge_id_of(row.id)
            call.third_agent, call.third_number = row.consult_agent_id, row.consult_number
        elif row.forwarded_to is not None:
            call.third_mode, call.third_number = "forward", row.forwarded_to
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
        self._by_id[row.id] = call

    # -- for tests and the benchmark --------------------------------------------------------

    def call_of(self, interaction_id: uuid.UUID) -> _Call | None:
        return self._by_interaction.get(interaction_id)

    def leg(self, channel_id: str) -> legs.Leg | None:
        return self._legs.get(channel_id)


def _urgent(entry: legs.TimelineEntry) -> bool:
    """Leg steps written at once: the caller's call ending or being transferred. The others
    (phones ringing and answering, channels entering and leaving the bridge) go with the
    call's next write, so a call costs a few transactions rather than one per event."""
    return entry.role is legs.LegRole.customer and entry.kind in (
        legs.EntryKind.ended,
        legs.EntryKind.transferred,
    )


_WATCHED: Final = frozenset(
    {"offer.created", "offer.closed", "interaction.changed", "call.updated", "call.command"}
)


def ring_seconds_left(expires_at: datetime, now: datetime) -> int:
    """How long to ring an agent's phone: what is left of the offer, at least a few seconds."""
    return max(MIN_RING_SECONDS, int((expires_at - now) / timedelta(seconds=1)))


async def _answer(client: AriClient, channel: AriChannel, *, music: bool) -> None:
    """Answer a caller (unless the dialplan did), with music on hold while they wait."""
    try:
        if channel.state != "Up":
            await client.answer(channel.id)
        if music:
            await client.start_moh(channel.id)
    except AriError as error:
        log.warning("answering %s failed: %s", channel.id, error)


def _lane_of_other(kind: str, item: Any) -> str | None:
    """The lane of a timer (its call's) or a playback (its channel's); a (re)connection has
    none: it is handled at once."""
    if kind == "timer":
        return str(item[0])
    if isinstance(item, PlaybackStarted | PlaybackFinished):
        target = item.playback.target_uri
        return target.removeprefix("channel:") if target.startswith("channel:") else None
    if isinstance(item, RecordingFinished | RecordingFailed):
        target = item.recording.target_uri
        return target.removeprefix("channel:") if target.startswith("channel:") else None
    return None


def _third_number(channel_id: str) -> int:
    """The ``n`` of ``atiende-xfer-<call>-<n>`` (0 for another id)."""
    tail = channel_id.rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else 0


def _end_cause(call: _Call, entry: legs.TimelineEntry) -> str:
    """Why the call ended, as its row says: the leg's cause, or what the queue did."""
    if call.voicemail == "done":
        return "voicemail"
    if call.message_playback is not None:
        return "message"
    return str(entry.data.get("cause"))


def _ivr_target(end: ivr.ToNumber | ivr.ToVoicemail) -> dict[str, Any]:
    if isinstance(end, ivr.ToNumber):
        return {"number": end.number}
    return {"voicemail_queue_id": str(end.queue_id)}


def _uuid_or_none(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        return uuid.UUID(int=0)  # matches no call


async def _finish_interaction(session: AsyncSession, interaction: Interaction) -> None:
    """The call is over: a caller still waiting abandoned; one talking to an agent leaves
    the agent in wrap-up."""
    if interaction.status in (InteractionStatus.queued, InteractionStatus.offered):
        await routing.abandon(session, interaction.id)
    elif interaction.status is InteractionStatus.assigned:
        await routing.conversation_ended(session, interaction.id)
