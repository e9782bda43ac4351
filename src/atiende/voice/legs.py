"""The call-leg state machine (pure: no I/O, no clock; ``at`` is always an argument).

A leg is one channel of a call. The customer's leg enters through the dialplan
(``StasisStart``); an agent's leg is one Atiende originates to ring the agent's phone, with
``appArgs`` starting ``@agent`` and a channel id chosen before the originate, so its events
can be recognised whichever arrives first, the REST response or the events.

States::

    customer: ringing_in → answered → in_ivr → queued → offering → bridged ⇄ on_hold
                                                   ↑         │          ↓
                                                   └─────────┴── transferring
    agent:    offering (phone ringing) → answered → bridged
    both:     … → ended (with a cause), from any state

Two kinds of input drive a leg:

- **ARI events** (``ari_events``), which state facts: a channel went Up, a phone rings, a
  channel shares a mixing bridge with another, a hangup. Asterisk is the source of truth and
  its events interleave (a ``StasisEnd`` after the hangup, a second ``ChannelHangupRequest``),
  so an event that means nothing in the leg's state is ignored: the leg is returned unchanged
  with no timeline entries.
- **Commands** (the dataclasses below), which record what Atiende decided: start the IVR,
  queue, offer to an agent, hold, transfer, hang up. A command that makes no sense in the
  leg's state raises ``IllegalTransition`` and changes nothing.

An ended leg never changes again. Every applied transition yields the interaction-timeline
entries it causes, and time spent in each state is added to the leg's ``Timing`` (ring,
IVR, wait, talk, hold, transfer), which the ``ended`` entry carries for reports.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Final

from atiende.core.errors import Conflict
from atiende.voice.ari_events import (
    AriEvent,
    Bridge,
    CallerId,
    Channel,
    ChannelDestroyed,
    ChannelEnteredBridge,
    ChannelHangupRequest,
    ChannelLeftBridge,
    ChannelStateChange,
    Dial,
    StasisEnd,
    StasisStart,
    channels_of,
)

#: The first Stasis argument of a leg Atiende originates to an agent's phone.
AGENT_ARG: Final = "@agent"  # "@" is never in a tenant slug, the first inbound argument


class LegRole(StrEnum):
    customer = "customer"  # came in through the dialplan
    agent = "agent"  # originated by Atiende to an agent's phone


class LegState(StrEnum):
    ringing_in = "ringing_in"  # in the application, not answered yet
    answered = "answered"  # answered, talking to nobody yet
    in_ivr = "in_ivr"  # hearing a menu, maybe pressing digits
    queued = "queued"  # waiting for an agent
    offering = "offering"  # an agent's phone is ringing for it (agent leg: the phone rings)
    bridged = "bridged"  # talking: in a mixing bridge with another party
    on_hold = "on_hold"
    transferring = "transferring"
    ended = "ended"


class EndCause(StrEnum):
    hangup = "hangup"  # the party on this leg (or the network) hung up
    hung_up_by_us = "hung_up_by_us"  # Atiende hung it up
    busy = "busy"
    no_answer = "no_answer"
    unavailable = "unavailable"  # the endpoint could not be reached (CHANUNAVAIL)
    congestion = "congestion"
    cancelled = "cancelled"  # the dial was cancelled before an answer
    left_application = "left_application"  # StasisEnd without a hangup: back to the dialplan
    vanished = "vanished"  # gone from the PBX while we were not listening


class EntryKind(StrEnum):
    ringing = "ringing"
    answered = "answered"
    ivr = "ivr"
    queued = "queued"
    offered = "offered"
    offer_failed = "offer_failed"
    connected = "connected"
    disconnected = "disconnected"
    held = "held"
    resumed = "resumed"
    transferred = "transferred"
    transfer_failed = "transfer_failed"
    ended = "ended"


class Signal(StrEnum):
    """What an input means to a leg; the transition tables are keyed on these."""

    # facts, from ARI events
    answer = "answer"
    ring = "ring"
    connect = "connect"  # now shares a mixing bridge with another party
    disconnect = "disconnect"  # no longer does
    dial_failed = "dial_failed"
    hangup = "hangup"
    # decisions, from commands
    start_ivr = "start_ivr"
    enqueue = "enqueue"
    offer = "offer"
    offer_failed = "offer_failed"
    hold = "hold"
    unhold = "unhold"
    transfer = "transfer"
    transfer_failed = "transfer_failed"
    hang_up = "hang_up"


EVENT_SIGNALS: Final = frozenset(
    {
        Signal.answer,
        Signal.ring,
        Signal.connect,
        Signal.disconnect,
        Signal.dial_failed,
        Signal.hangup,
    }
)
COMMAND_SIGNALS: Final = frozenset(Signal) - EVENT_SIGNALS

_S, _L = Signal, LegState
_ENDINGS: Final = {_S.hangup: _L.ended, _S.hang_up: _L.ended}

#: (role, state) → {signal: next state}. A signal missing here is ignored when it comes
#: from an event and illegal when it comes from a command.
TRANSITIONS: Final[Mapping[LegRole, Mapping[LegState, Mapping[Signal, LegState]]]] = {
    LegRole.customer: {
        _L.ringing_in: {_S.answer: _L.answered, **_ENDINGS},
        _L.answered: {
            _S.start_ivr: _L.in_ivr,
            _S.enqueue: _L.queued,
            _S.offer: _L.offering,
            _S.connect: _L.bridged,
            **_ENDINGS,
        },
        _L.in_ivr: {_S.enqueue: _L.queued, _S.offer: _L.offering, **_ENDINGS},
        # a queue forwarding a waiting caller to an outside number (closed, max wait)
        _L.queued: {
            _S.enqueue: _L.queued,
            _S.offer: _L.offering,
            _S.transfer: _L.transferring,
            **_ENDINGS,
        },
        _L.offering: {
            _S.offer: _L.offering,  # ring another agent too (ring-all)
            _S.offer_failed: _L.queued,  # stays offering while another phone still rings
            _S.enqueue: _L.queued,
            _S.connect: _L.bridged,
            **_ENDINGS,
        },
        _L.bridged: {
            _S.hold: _L.on_hold,
            _S.transfer: _L.transferring,
            _S.disconnect: _L.answered,
            **_ENDINGS,
        },
        _L.on_hold: {_S.unhold: _L.bridged, _S.transfer: _L.transferring, **_ENDINGS},
        _L.transferring: {
            _S.enqueue: _L.queued,
            _S.offer: _L.offering,
            _S.connect: _L.bridged,
            _S.transfer_failed: _L.bridged,
            **_ENDINGS,
        },
        _L.ended: {},
    },
    LegRole.agent: {
        _L.offering: {
            _S.ring: _L.offering,
            _S.answer: _L.answered,
            _S.connect: _L.bridged,
            _S.dial_failed: _L.ended,
            **_ENDINGS,
        },
        _L.answered: {_S.connect: _L.bridged, **_ENDINGS},
        _L.bridged: {_S.disconnect: _L.answered, **_ENDINGS},
        _L.ended: {},
    },
}

#: Which timing bucket the time spent in a state counts towards.
_BUCKETS: Final[Mapping[LegRole, Mapping[LegState, str]]] = {
    LegRole.customer: {
        _L.ringing_in: "ring",
        _L.in_ivr: "ivr",
        _L.queued: "wait",
        _L.offering: "wait",
        _L.bridged: "talk",
        _L.on_hold: "hold",
        _L.transferring: "transfer",
    },
    LegRole.agent: {_L.offering: "ring", _L.bridged: "talk"},
}

#: Dial statuses that end an agent's leg before it was answered.
DIAL_FAILURES: Final[Mapping[str, EndCause]] = {
    "BUSY": EndCause.busy,
    "NOANSWER": EndCause.no_answer,
    "CHANUNAVAIL": EndCause.unavailable,
    "CONGESTION": EndCause.congestion,
    "CANCEL": EndCause.cancelled,
}


class IllegalTransition(Conflict):
    code = "call_transition_illegal"
    default_message = "The call cannot do that in its current state."


# --- commands -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StartIvr:
    menu: str = ""


@dataclass(frozen=True, slots=True)
class Enqueue:
    queue_id: uuid.UUID


@dataclass(frozen=True, slots=True)
class Offer:
    """Ring an agent: ``agent_channel_id`` is the id the agent's leg is originated with."""

    agent_id: uuid.UUID
    agent_channel_id: str


@dataclass(frozen=True, slots=True)
class OfferFailed:
    agent_id: uuid.UUID
    reason: str  # no_answer, rejected, busy, timed_out, …


@dataclass(frozen=True, slots=True)
class Hold:
    pass


@dataclass(frozen=True, slots=True)
class Unhold:
    pass


@dataclass(frozen=True, slots=True)
class Transfer:
    queue_id: uuid.UUID | None = None
    agent_id: uuid.UUID | None = None


@dataclass(frozen=True, slots=True)
class TransferFailed:
    reason: str = ""


@dataclass(frozen=True, slots=True)
class HangUp:
    reason: str = "normal"


Command = (
    StartIvr | Enqueue | Offer | OfferFailed | Hold | Unhold | Transfer | TransferFailed | HangUp
)

_COMMAND_SIGNALS: Final[Mapping[type, Signal]] = {
    StartIvr: Signal.start_ivr,
    Enqueue: Signal.enqueue,
    Offer: Signal.offer,
    OfferFailed: Signal.offer_failed,
    Hold: Signal.hold,
    Unhold: Signal.unhold,
    Transfer: Signal.transfer,
    TransferFailed: Signal.transfer_failed,
    HangUp: Signal.hang_up,
}


# --- values ---------------------------------------------------------------------------------

_ZERO: Final = timedelta(0)
_MS: Final = timedelta(milliseconds=1)


@dataclass(frozen=True, slots=True)
class Timing:
    """Time a leg spent, by what it was doing."""

    ring: timedelta = _ZERO
    ivr: timedelta = _ZERO
    wait: timedelta = _ZERO
    talk: timedelta = _ZERO
    hold: timedelta = _ZERO
    transfer: timedelta = _ZERO

    def plus(self, bucket: str | None, span: timedelta) -> Timing:
        if bucket is None or span <= _ZERO:
            return self
        current: timedelta = getattr(self, bucket)
        return replace(self, **{bucket: current + span})

    def total(self) -> timedelta:
        return self.ring + self.ivr + self.wait + self.talk + self.hold + self.transfer

    def as_ms(self) -> dict[str, int]:
        return {
            "ring_ms": self.ring // _MS,
            "ivr_ms": self.ivr // _MS,
            "wait_ms": self.wait // _MS,
            "talk_ms": self.talk // _MS,
            "hold_ms": self.hold // _MS,
            "transfer_ms": self.transfer // _MS,
        }


@dataclass(frozen=True, slots=True)
class OfferedAgent:
    agent_id: uuid.UUID
    channel_id: str


EntryValue = str | int | None


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    """One line of the interaction's timeline, caused by a transition of one leg."""

    kind: EntryKind
    at: datetime
    role: LegRole
    channel_id: str
    data: Mapping[str, EntryValue] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Leg:
    channel_id: str
    role: LegRole
    state: LegState
    started_at: datetime
    since: datetime  # when the last transition happened
    args: tuple[str, ...] = ()  # the Stasis arguments (tenant, DID, …)
    caller: CallerId | None = None
    queue_id: uuid.UUID | None = None
    # customer: the agent talking (or last offered); agent leg: whose phone it is
    agent_id: uuid.UUID | None = None
    offers: tuple[OfferedAgent, ...] = ()  # customer: agents whose phones ring now
    bridge_id: str | None = None  # the mixing bridge it talks in
    rang: bool = False  # agent leg: the phone has been reported ringing
    ended_at: datetime | None = None
    cause: EndCause | None = None
    q850: int | None = None  # the hangup cause code, when Asterisk gave one
    timing: Timing = Timing()

    @property
    def is_ended(self) -> bool:
        return self.state is LegState.ended


@dataclass(frozen=True, slots=True)
class Step:
    """The leg after an input, and the timeline entries the input caused (none when it was
    ignored)."""

    leg: Leg
    entries: tuple[TimelineEntry, ...] = ()


# --- starting legs --------------------------------------------------------------------------


def is_agent_leg(args: tuple[str, ...]) -> bool:
    return bool(args) and args[0] == AGENT_ARG


def inbound(event: StasisStart, at: datetime) -> Step:
    """A customer's call entering the application (already answered if the dialplan did)."""
    channel = event.channel
    up = channel.state == "Up"
    state = LegState.answered if up else LegState.ringing_in
    leg = Leg(
        channel_id=channel.id,
        role=LegRole.customer,
        state=state,
        started_at=at,
        since=at,
        args=event.args,
        caller=channel.caller,
    )
    kind = EntryKind.answered if up else EntryKind.ringing
    data: dict[str, EntryValue] = {"caller_number": channel.caller.number}
    return Step(leg, (_entry(leg, kind, at, data),))


def adopt(channel: Channel, at: datetime) -> Step:
    """A customer's call found in the application by a rebuild, its start unseen: answered
    if it is Up, else still ringing in. Its times count from ``at``; it started when the PBX
    created the channel."""
    up = channel.state == "Up"
    leg = Leg(
        channel_id=channel.id,
        role=LegRole.customer,
        state=LegState.answered if up else LegState.ringing_in,
        started_at=min(channel.creationtime, at),
        since=at,
        args=stasis_args(channel),
        caller=channel.caller,
    )
    kind = EntryKind.answered if up else EntryKind.ringing
    data: dict[str, EntryValue] = {"caller_number": channel.caller.number, "adopted": 1}
    return Step(leg, (_entry(leg, kind, at, data),))


def stasis_args(channel: Channel) -> tuple[str, ...]:
    """The Stasis arguments, as the channel's dialplan location shows them."""
    if channel.stasis_app is None:
        return ()
    return tuple(channel.dialplan.app_data.split(",")[1:])


def originated(channel_id: str, agent_id: uuid.UUID, at: datetime) -> Leg:
    """An agent's leg, from the moment Atiende asks the PBX to ring the agent's phone."""
    return Leg(
        channel_id=channel_id,
        role=LegRole.agent,
        state=LegState.offering,
        started_at=at,
        since=at,
        args=(AGENT_ARG,),
        agent_id=agent_id,
    )


# --- transitions ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Input:
    signal: Signal
    cause: EndCause | None = None
    q850: int | None = None
    bridge: Bridge | None = None


def allowed(leg: Leg) -> Mapping[Signal, LegState]:
    """The signals ``leg`` accepts in its state, and where each takes it."""
    return TRANSITIONS[leg.role].get(leg.state, {})


def apply(leg: Leg, stimulus: AriEvent | Command, at: datetime) -> Step:
    """The leg after one ARI event or command at ``at`` (never earlier than its last step)."""
    if isinstance(stimulus, AriEvent):
        found = _read_event(leg, stimulus)
        if found is None or found.signal not in allowed(leg):
            return Step(leg)
        return _transition(leg, found, None, at)
    signal = _COMMAND_SIGNALS[type(stimulus)]
    if signal not in allowed(leg):
        raise IllegalTransition(
            f"A {leg.role.value} leg that is {leg.state.value} cannot {signal.value}.",
            state=leg.state.value,
            role=leg.role.value,
            signal=signal.value,
        )
    return _transition(leg, _Input(signal), stimulus, at)


def _read_event(leg: Leg, event: AriEvent) -> _Input | None:  # noqa: PLR0911 - one per event
    """What ``event`` means for ``leg``, or None when it says nothing about it."""
    me = leg.channel_id
    match event:
        case StasisStart(channel=channel) | ChannelStateChange(channel=channel) if channel.id == me:
            if channel.state == "Up":
                return _Input(Signal.answer)
            return _Input(Signal.ring) if channel.state == "Ringing" else None
        case Dial(peer=peer, dialstatus=status) if peer.id == me:
            if status == "ANSWER":
                return _Input(Signal.answer)
            if status == "RINGING":
                return _Input(Signal.ring)
            failure = DIAL_FAILURES.get(status)
            return None if failure is None else _Input(Signal.dial_failed, cause=failure)
        case ChannelHangupRequest(channel=channel, cause=q850) if channel.id == me:
            return _Input(Signal.hangup, cause=EndCause.hangup, q850=q850)
        case ChannelDestroyed(channel=channel, cause=q850) if channel.id == me:
            return _Input(Signal.hangup, cause=EndCause.hangup, q850=q850)
        case StasisEnd(channel=channel) if channel.id == me:
            return _Input(Signal.hangup, cause=EndCause.left_application)
        case ChannelEnteredBridge(bridge=bridge) if _talks_in(bridge, me):
            return _Input(Signal.connect, bridge=bridge)
        case ChannelLeftBridge(bridge=bridge, channel=channel) if (
            leg.bridge_id is None or bridge.id == leg.bridge_id
        ):
            if channel.id == me or (me in bridge.channels and len(bridge.channels) == 1):
                return _Input(Signal.disconnect, bridge=bridge)
            return None
        case _:
            return None


def _talks_in(bridge: Bridge, channel_id: str) -> bool:
    """In a mixing bridge with at least one other channel (a holding bridge's callers do not
    hear each other)."""
    return (
        "holding" not in bridge.bridge_type
        and channel_id in bridge.channels
        and len(bridge.channels) >= 2
    )


def _transition(leg: Leg, found: _Input, command: Command | None, at: datetime) -> Step:
    at = max(at, leg.since)
    target = allowed(leg)[found.signal]
    elapsed = leg.timing.plus(_BUCKETS[leg.role].get(leg.state), at - leg.since)
    moved = replace(leg, since=at, timing=elapsed)
    if target is LegState.ended:
        if isinstance(command, HangUp):
            return _end(leg, moved, EndCause.hung_up_by_us, None, at, reason=command.reason)
        return _end(leg, moved, found.cause or EndCause.hangup, found.q850, at)
    if command is None:
        kind, data, moved = _event_effect(leg, moved, found)
    else:
        kind, data, moved, target = _command_effect(leg, moved, command, target)
    moved = replace(moved, state=target)
    if kind is None:
        return Step(moved)
    return Step(moved, (_entry(moved, kind, at, data),))


def _command_effect(  # noqa: PLR0911 - one return per command
    leg: Leg, moved: Leg, command: Command, target: LegState
) -> tuple[EntryKind, dict[str, EntryValue], Leg, LegState]:
    """The entry, bookkeeping and final state of a command that does not end the leg."""
    match command:
        case StartIvr(menu=menu):
            return EntryKind.ivr, {"menu": menu}, moved, target
        case Enqueue(queue_id=queue_id):
            moved = replace(moved, queue_id=queue_id, offers=())
            return EntryKind.queued, {"queue_id": str(queue_id)}, moved, target
        case Offer(agent_id=agent_id, agent_channel_id=channel_id):
            if any(o.agent_id == agent_id for o in leg.offers):
                raise IllegalTransition(
                    "That agent's phone is already ringing for this call.",
                    code="call_already_offered",
                )
            offered = OfferedAgent(agent_id, channel_id)
            moved = replace(moved, offers=(*leg.offers, offered), agent_id=agent_id)
            data: dict[str, EntryValue] = {
                "agent_id": str(agent_id),
                "agent_channel_id": channel_id,
            }
            return EntryKind.offered, data, moved, target
        case OfferFailed(agent_id=agent_id, reason=reason):
            left = tuple(o for o in leg.offers if o.agent_id != agent_id)
            if len(left) == len(leg.offers):
                raise IllegalTransition(
                    "That agent's phone is not ringing for this call.", code="call_not_offered"
                )
            moved = replace(moved, offers=left, agent_id=left[-1].agent_id if left else None)
            data = {"agent_id": str(agent_id), "reason": reason}
            # Another agent's phone may still ring (ring-all): then it is still offering.
            return EntryKind.offer_failed, data, moved, LegState.offering if left else target
        case Hold():
            return EntryKind.held, {}, moved, target
        case Unhold():
            return EntryKind.resumed, {}, moved, target
        case Transfer(queue_id=queue_id, agent_id=agent_id):
            if (queue_id is None) == (agent_id is None):
                raise IllegalTransition(
                    "A transfer goes to one queue or one agent.", code="call_transfer_target"
                )
            data = {
                "queue_id": None if queue_id is None else str(queue_id),
                "agent_id": None if agent_id is None else str(agent_id),
            }
            return EntryKind.transferred, data, moved, target
        case TransferFailed(reason=reason):
            return EntryKind.transfer_failed, {"reason": reason}, moved, target
        case HangUp():  # pragma: no cover - hanging up always ends the leg, handled above
            raise AssertionError("a hang-up ends the leg")


def _event_effect(
    leg: Leg, moved: Leg, found: _Input
) -> tuple[EntryKind | None, dict[str, EntryValue], Leg]:
    """The entry and bookkeeping of an event-driven transition that does not end the leg."""
    match found.signal:
        case Signal.answer:
            data: dict[str, EntryValue] = {}
            if leg.role is LegRole.agent:
                data["agent_id"] = None if leg.agent_id is None else str(leg.agent_id)
            return EntryKind.answered, data, moved
        case Signal.ring:
            if leg.rang:
                return None, {}, moved
            agent = None if leg.agent_id is None else str(leg.agent_id)
            return EntryKind.ringing, {"agent_id": agent}, replace(moved, rang=True)
        case Signal.connect:
            bridge = found.bridge
            assert bridge is not None
            others = [c for c in bridge.channels if c != leg.channel_id]
            agent_id = leg.agent_id
            for offered in leg.offers:
                if offered.channel_id in others:
                    agent_id = offered.agent_id
            moved = replace(moved, bridge_id=bridge.id, offers=(), agent_id=agent_id)
            data = {
                "bridge_id": bridge.id,
                "with": ",".join(others),
                "agent_id": None if agent_id is None else str(agent_id),
            }
            return EntryKind.connected, data, moved
        case Signal.disconnect:
            bridge_id = leg.bridge_id
            return EntryKind.disconnected, {"bridge_id": bridge_id}, replace(moved, bridge_id=None)
        case _:  # pragma: no cover - every event signal that does not end is handled above
            raise AssertionError(f"unhandled {found.signal}")


def _end(
    leg: Leg,
    moved: Leg,
    cause: EndCause,
    q850: int | None,
    at: datetime,
    *,
    reason: str | None = None,
) -> Step:
    ended = replace(
        moved,
        state=LegState.ended,
        ended_at=at,
        cause=cause,
        q850=q850,
        offers=(),
        bridge_id=None,
    )
    data: dict[str, EntryValue] = {
        "cause": cause.value,
        "q850": q850,
        "from_state": leg.state.value,
        **ended.timing.as_ms(),
    }
    if reason is not None:
        data["reason"] = reason
    return Step(ended, (_entry(ended, EntryKind.ended, at, data),))


def vanish(leg: Leg, at: datetime) -> Step:
    """End a leg the PBX no longer has (found by a rebuild after a reconnect)."""
    if leg.is_ended:
        return Step(leg)
    at = max(at, leg.since)
    moved = replace(
        leg, since=at, timing=leg.timing.plus(_BUCKETS[leg.role].get(leg.state), at - leg.since)
    )
    return _end(leg, moved, EndCause.vanished, None, at)


def _entry(
    leg: Leg, kind: EntryKind, at: datetime, data: Mapping[str, EntryValue]
) -> TimelineEntry:
    return TimelineEntry(kind=kind, at=at, role=leg.role, channel_id=leg.channel_id, data=data)


# --- many legs ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Dispatch:
    legs: Mapping[str, Leg]
    entries: tuple[TimelineEntry, ...]


def dispatch(legs: Mapping[str, Leg], event: AriEvent, at: datetime) -> Dispatch:
    """Apply one event to every leg it concerns, starting a customer leg for a call that
    enters the application. Agent legs are started by ``originated``, never here."""
    current = dict(legs)
    entries: list[TimelineEntry] = []
    if (
        isinstance(event, StasisStart)
        and event.channel.id not in current
        and not is_agent_leg(event.args)
    ):
        step = inbound(event, at)
        current[step.leg.channel_id] = step.leg
        return Dispatch(current, step.entries)
    for channel_id in channels_of(event):
        leg = current.get(channel_id)
        if leg is None:
            continue
        step = apply(leg, event, at)
        current[channel_id] = step.leg
        entries.extend(step.entries)
    return Dispatch(current, tuple(entries))
