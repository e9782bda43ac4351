"""The call-leg state machine: calls recorded on a real Asterisk replay into the right
states, timeline and times; every (state, input) pair does what the transition table says;
random inputs never put a leg in an impossible state, and an ended leg never changes."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from atiende.voice import legs
from atiende.voice.ari_events import (
    AriEvent,
    Bridge,
    CallerId,
    Channel,
    ChannelDestroyed,
    ChannelDtmfReceived,
    ChannelEnteredBridge,
    ChannelHangupRequest,
    ChannelLeftBridge,
    ChannelStateChange,
    Dial,
    DialplanLocation,
    Playback,
    PlaybackStarted,
    StasisEnd,
    StasisStart,
    UnknownEvent,
    parse_event,
)
from atiende.voice.legs import (
    Command,
    EndCause,
    Enqueue,
    EntryKind,
    HangUp,
    Hold,
    IllegalTransition,
    Leg,
    LegRole,
    LegState,
    Offer,
    OfferedAgent,
    OfferFailed,
    Signal,
    StartIvr,
    TimelineEntry,
    Transfer,
    TransferFailed,
    Unhold,
)

REAL = Path(__file__).parent / "fixtures" / "voice" / "real"
T0 = datetime(2026, 11, 25, 18, 0, tzinfo=UTC)
ME, OTHER, AGENT_CHANNEL = "1795632527.2", "1795632528.3", "agent-channel-1"
QUEUE, AGENT, AGENT_2 = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()


# -- builders --------------------------------------------------------------------------------


def channel(
    channel_id: str = ME, state: str = "Up", app_data: str = "atiende,acme,5551000"
) -> Channel:
    return Channel(
        id=channel_id,
        name=f"PJSIP/{channel_id}",
        state=state,
        caller=CallerId("Alice", "+525512345678"),
        connected=CallerId("", ""),
        accountcode="",
        dialplan=DialplanLocation("atiende-inbound", "5551000", 2, "Stasis", app_data),
        creationtime=T0,
    )


def bridge(*members: str, bridge_id: str = "bridge-1", kind: str = "mixing") -> Bridge:
    return Bridge(
        id=bridge_id,
        technology="simple_bridge",
        bridge_type=kind,
        bridge_class="stasis",
        creator="Stasis",
        name="call",
        channels=members,
    )


def state_change(state: str, channel_id: str = ME) -> ChannelStateChange:
    return ChannelStateChange(application="atiende", channel=channel(channel_id, state))


def dial(status: str, peer: str = ME) -> Dial:
    return Dial(application="atiende", peer=channel(peer, "Ringing"), dialstatus=status)


def entered(*members: str, who: str = OTHER, kind: str = "mixing") -> ChannelEnteredBridge:
    return ChannelEnteredBridge(
        application="atiende", bridge=bridge(*members, kind=kind), channel=channel(who)
    )


def left(who: str, *remaining: str) -> ChannelLeftBridge:
    return ChannelLeftBridge(application="atiende", bridge=bridge(*remaining), channel=channel(who))


def hangup_request(channel_id: str = ME, cause: int | None = 16) -> ChannelHangupRequest:
    return ChannelHangupRequest(application="atiende", channel=channel(channel_id), cause=cause)


def stasis_start(channel_id: str = ME, state: str = "Ring", *args: str) -> StasisStart:
    return StasisStart(
        application="atiende",
        channel=channel(channel_id, state),
        args=args or ("acme", "5551000"),
    )


def leg_in(state: LegState, role: LegRole = LegRole.customer) -> Leg:
    """A leg sitting in ``state`` as the machine would have left it."""
    leg = Leg(channel_id=ME, role=role, state=state, started_at=T0, since=T0)
    if role is LegRole.agent:
        leg = replace(leg, agent_id=AGENT)
    if state is LegState.offering and role is LegRole.customer:
        leg = replace(leg, offers=(OfferedAgent(AGENT, AGENT_CHANNEL),), agent_id=AGENT)
    if state in {LegState.bridged, LegState.on_hold, LegState.transferring}:
        leg = replace(leg, bridge_id="bridge-1")
    if state is LegState.ended:
        leg = replace(leg, ended_at=T0, cause=EndCause.hangup)
    return leg


#: One input per signal, aimed at the leg ``ME``.
STIMULI: dict[Signal, AriEvent | Command] = {
    Signal.answer: state_change("Up"),
    Signal.ring: dial("RINGING"),
    Signal.connect: entered(ME, OTHER),
    Signal.disconnect: left(OTHER, ME),
    Signal.dial_failed: dial("BUSY"),
    Signal.hangup: hangup_request(),
    Signal.start_ivr: StartIvr("main"),
    Signal.enqueue: Enqueue(QUEUE),
    Signal.offer: Offer(AGENT_2, "agent-channel-2"),
    Signal.offer_failed: OfferFailed(AGENT, "no_answer"),
    Signal.hold: Hold(),
    Signal.unhold: Unhold(),
    Signal.transfer: Transfer(queue_id=QUEUE),
    Signal.transfer_failed: TransferFailed("busy"),
    Signal.hang_up: HangUp(),
}

ENTRY_OF: dict[Signal, EntryKind] = {
    Signal.answer: EntryKind.answered,
    Signal.ring: EntryKind.ringing,
    Signal.connect: EntryKind.connected,
    Signal.disconnect: EntryKind.disconnected,
    Signal.dial_failed: EntryKind.ended,
    Signal.hangup: EntryKind.ended,
    Signal.start_ivr: EntryKind.ivr,
    Signal.enqueue: EntryKind.queued,
    Signal.offer: EntryKind.offered,
    Signal.offer_failed: EntryKind.offer_failed,
    Signal.hold: EntryKind.held,
    Signal.unhold: EntryKind.resumed,
    Signal.transfer: EntryKind.transferred,
    Signal.transfer_failed: EntryKind.transfer_failed,
    Signal.hang_up: EntryKind.ended,
}

_C, _A, _S, _L = LegRole.customer, LegRole.agent, Signal, LegState
_END = {_S.hangup: _L.ended, _S.hang_up: _L.ended}

#: The specification: where each input takes a leg. Anything not listed is ignored (an
#: event) or refused (a command).
SPEC: dict[tuple[LegRole, LegState], dict[Signal, LegState]] = {
    (_C, _L.ringing_in): {_S.answer: _L.answered, **_END},
    (_C, _L.answered): {
        _S.start_ivr: _L.in_ivr,
        _S.enqueue: _L.queued,
        _S.offer: _L.offering,
        _S.connect: _L.bridged,
        **_END,
    },
    (_C, _L.in_ivr): {_S.enqueue: _L.queued, _S.offer: _L.offering, **_END},
    # a queue forwards a waiting caller to an outside number (closed hours, max wait)
    (_C, _L.queued): {
        _S.enqueue: _L.queued,
        _S.offer: _L.offering,
        _S.transfer: _L.transferring,
        **_END,
    },
    (_C, _L.offering): {
        _S.offer: _L.offering,
        _S.offer_failed: _L.queued,
        _S.enqueue: _L.queued,
        _S.connect: _L.bridged,
        **_END,
    },
    (_C, _L.bridged): {
        _S.hold: _L.on_hold,
        _S.transfer: _L.transferring,
        _S.disconnect: _L.answered,
        **_END,
    },
    (_C, _L.on_hold): {_S.unhold: _L.bridged, _S.transfer: _L.transferring, **_END},
    (_C, _L.transferring): {
        _S.enqueue: _L.queued,
        _S.offer: _L.offering,
        _S.connect: _L.bridged,
        _S.transfer_failed: _L.bridged,
        **_END,
    },
    (_C, _L.ended): {},
    (_A, _L.offering): {
        _S.ring: _L.offering,
        _S.answer: _L.answered,
        _S.connect: _L.bridged,
        _S.dial_failed: _L.ended,
        **_END,
    },
    (_A, _L.answered): {_S.connect: _L.bridged, **_END},
    (_A, _L.bridged): {_S.disconnect: _L.answered, **_END},
    (_A, _L.ended): {},
}


# -- replaying real calls --------------------------------------------------------------------


@dataclass
class Replay:
    legs: dict[str, Leg]
    entries: list[TimelineEntry]

    def of(self, role: LegRole) -> list[TimelineEntry]:
        return [entry for entry in self.entries if entry.role is role]

    def kinds(self, role: LegRole) -> list[EntryKind]:
        return [entry.kind for entry in self.of(role)]

    def leg(self, role: LegRole) -> Leg:
        (found,) = [leg for leg in self.legs.values() if leg.role is role]
        return found


def replay(name: str) -> Replay:
    """Feed a captured call through ``dispatch``, with Atiende's decisions (queue, offer,
    hang up) where the recorded application made its REST calls."""
    script = json.loads((REAL / f"replay_{name}.json").read_text())
    events = [parse_event(raw) for raw in json.loads((REAL / script["events"]).read_text())]
    first = next(step for step in script["steps"] if "event" in step)
    stamped = events[first["event"]].timestamp
    assert stamped is not None
    base = stamped - timedelta(seconds=first["t"])
    result = Replay({}, [])

    def command(channel_id: str, order: Command, at: datetime) -> None:
        step = legs.apply(result.legs[channel_id], order, at)
        result.legs[channel_id] = step.leg
        result.entries.extend(step.entries)

    for step in script["steps"]:
        at = base + timedelta(seconds=step["t"])
        if "event" in step:
            event = events[step["event"]]
            done = legs.dispatch(result.legs, event, event.timestamp or at)
            result.legs = dict(done.legs)
            result.entries.extend(done.entries)
            continue
        (customer,) = [c for c, leg in result.legs.items() if leg.role is LegRole.customer]
        match step["command"]:
            case "enqueue":
                command(customer, Enqueue(QUEUE), at)
            case "offer":
                agent_channel = step["agent_channel_id"]
                command(customer, Offer(AGENT, agent_channel), at)
                result.legs[agent_channel] = legs.originated(agent_channel, AGENT, at)
            case "hang_up":
                command(step["channel"], HangUp(), at)
    return result


@pytest.mark.parametrize("name", ["sipp", "sipp_auth"])
def test_a_real_inbound_call_answered_by_an_agent_replays_into_the_timeline(name: str) -> None:
    call = replay(name)
    assert call.kinds(LegRole.customer) == [
        EntryKind.ringing,
        EntryKind.answered,
        EntryKind.queued,
        EntryKind.offered,
        EntryKind.connected,
        EntryKind.ended,
    ]
    assert call.kinds(LegRole.agent) == [
        EntryKind.ringing,
        EntryKind.answered,
        EntryKind.connected,
        EntryKind.disconnected,
        EntryKind.ended,
    ]
    customer, agent = call.leg(LegRole.customer), call.leg(LegRole.agent)
    assert customer.args == ("inbound",)  # Stasis(atiende,inbound) in the capture's dialplan
    assert (customer.state, customer.cause) == (LegState.ended, EndCause.hangup)
    assert (agent.state, agent.cause) == (LegState.ended, EndCause.hung_up_by_us)
    assert customer.queue_id == QUEUE
    assert customer.agent_id == agent.agent_id == AGENT
    connected = call.of(LegRole.customer)[4]
    assert connected.data["agent_id"] == str(AGENT)
    assert connected.data["with"] == agent.channel_id
    ended = call.of(LegRole.customer)[-1]
    assert ended.data["from_state"] == "bridged"
    # The caller talked for the four seconds sipp holds the call (-d 4000).
    assert timedelta(seconds=3.9) < customer.timing.talk < timedelta(seconds=4.1)
    assert ended.data["talk_ms"] == customer.timing.talk // timedelta(milliseconds=1)
    assert timedelta(milliseconds=300) < customer.timing.ring < timedelta(milliseconds=320)
    assert customer.timing.hold == customer.timing.ivr == timedelta(0)
    assert timedelta(0) < customer.timing.wait < timedelta(milliseconds=50)
    assert timedelta(0) < agent.timing.ring < timedelta(milliseconds=50)
    assert timedelta(seconds=3.9) < agent.timing.talk < timedelta(seconds=4.1)


def test_the_sipp_call_rings_for_the_time_asterisk_reports() -> None:
    call = replay("sipp")
    # StasisStart 18:48:47.987, ChannelStateChange Up 18:48:48.294
    assert call.leg(LegRole.customer).timing.ring == timedelta(milliseconds=307)


def test_a_real_originated_channel_hung_up_while_queued_records_its_wait() -> None:
    call = replay("originate")
    assert call.kinds(LegRole.customer) == [
        EntryKind.answered,  # the originated Local channel is Up when it enters Stasis
        EntryKind.queued,
        EntryKind.ended,
    ]
    leg = call.leg(LegRole.customer)
    assert leg.args == ("outbound", "test")
    assert leg.cause is EndCause.hung_up_by_us
    ended = call.of(LegRole.customer)[-1]
    assert ended.data["from_state"] == "queued"
    assert ended.data["wait_ms"] == 1316
    assert leg.timing.talk == timedelta(0)


def test_events_after_the_end_of_a_replayed_call_change_nothing() -> None:
    call = replay("sipp")
    script = json.loads((REAL / "replay_sipp.json").read_text())
    raws = json.loads((REAL / script["events"]).read_text())
    for raw in raws:
        again = legs.dispatch(call.legs, parse_event(raw), T0 + timedelta(days=1))
        assert again.entries == ()
        assert again.legs == call.legs


# -- the transition table --------------------------------------------------------------------


def test_the_table_in_the_code_is_the_specification() -> None:
    code = {
        (role, state): dict(signals)
        for role, states in legs.TRANSITIONS.items()
        for state, signals in states.items()
    }
    assert code == SPEC


@pytest.mark.parametrize(
    ("role", "state", "signal"),
    [(role, state, signal) for (role, state) in SPEC for signal in Signal],
    ids=str,
)
def test_every_input_in_every_state_moves_ignores_or_refuses(
    role: LegRole, state: LegState, signal: Signal
) -> None:
    leg = leg_in(state, role)
    stimulus = STIMULI[signal]
    at = T0 + timedelta(seconds=5)
    target = SPEC[(role, state)].get(signal)
    if target is None and signal in legs.COMMAND_SIGNALS:
        with pytest.raises(IllegalTransition) as caught:
            legs.apply(leg, stimulus, at)
        assert caught.value.error_code == "call_transition_illegal"
        assert caught.value.status_code == 409
        return
    step = legs.apply(leg, stimulus, at)
    if target is None:
        assert step.leg is leg
        assert step.entries == ()
        return
    assert step.leg.state is target
    assert step.leg.since == at
    (entry,) = step.entries
    assert entry.kind is ENTRY_OF[signal]
    assert (entry.at, entry.role, entry.channel_id) == (at, role, ME)
    if target is LegState.ended:
        assert step.leg.ended_at == at
        assert step.leg.cause is not None


@pytest.mark.parametrize(
    ("stimulus", "cause", "q850"),
    [
        (hangup_request(cause=17), EndCause.hangup, 17),
        (hangup_request(cause=None), EndCause.hangup, None),
        (
            ChannelDestroyed(application="atiende", channel=channel(), cause=16, cause_txt="x"),
            EndCause.hangup,
            16,
        ),
        (StasisEnd(application="atiende", channel=channel()), EndCause.left_application, None),
        (HangUp("busy"), EndCause.hung_up_by_us, None),
    ],
)
def test_a_leg_ends_with_the_cause_of_its_end(
    stimulus: AriEvent | Command, cause: EndCause, q850: int | None
) -> None:
    step = legs.apply(leg_in(LegState.queued), stimulus, T0 + timedelta(seconds=9))
    assert (step.leg.cause, step.leg.q850) == (cause, q850)
    (entry,) = step.entries
    assert entry.data["cause"] == cause.value
    assert entry.data["q850"] == q850
    assert entry.data["from_state"] == "queued"
    assert entry.data["wait_ms"] == 9000


@pytest.mark.parametrize(
    ("status", "cause"),
    [
        ("BUSY", EndCause.busy),
        ("NOANSWER", EndCause.no_answer),
        ("CHANUNAVAIL", EndCause.unavailable),
        ("CONGESTION", EndCause.congestion),
        ("CANCEL", EndCause.cancelled),
    ],
)
def test_an_agent_phone_that_does_not_answer_ends_its_leg_with_the_dial_status(
    status: str, cause: EndCause
) -> None:
    agent = legs.originated(ME, AGENT, T0)
    step = legs.apply(agent, dial(status), T0 + timedelta(seconds=15))
    assert (step.leg.state, step.leg.cause) == (LegState.ended, cause)
    assert step.leg.timing.ring == timedelta(seconds=15)


@pytest.mark.parametrize("status", ["", "PROGRESS", "PROCEEDING", "SOMETHING-NEW"])
def test_other_dial_statuses_say_nothing(status: str) -> None:
    agent = legs.originated(ME, AGENT, T0)
    assert legs.apply(agent, dial(status), T0).leg is agent


def test_the_agent_phone_rings_once_in_the_timeline_however_often_asterisk_says_so() -> None:
    agent = legs.originated(ME, AGENT, T0)
    first = legs.apply(agent, state_change("Ringing"), T0 + timedelta(seconds=1))
    second = legs.apply(first.leg, dial("RINGING"), T0 + timedelta(seconds=2))
    assert [entry.kind for entry in first.entries] == [EntryKind.ringing]
    assert first.entries[0].data["agent_id"] == str(AGENT)
    assert second.entries == ()
    assert second.leg.state is LegState.offering


# -- times -----------------------------------------------------------------------------------


def test_a_whole_call_adds_up_its_ring_ivr_wait_talk_hold_and_transfer_times() -> None:
    clock = T0
    entries: list[TimelineEntry] = []

    def at(seconds: float) -> datetime:
        nonlocal clock
        clock += timedelta(seconds=seconds)
        return clock

    step = legs.inbound(stasis_start(), clock)
    leg, entries = step.leg, [*step.entries]
    plan: list[tuple[float, AriEvent | Command]] = [
        (2, state_change("Up")),  # rang 2 s
        (1, StartIvr("main")),
        (10, Enqueue(QUEUE)),  # 10 s in the menu
        (30, Offer(AGENT, AGENT_CHANNEL)),  # 30 s queued
        (5, entered(ME, AGENT_CHANNEL, who=AGENT_CHANNEL)),  # 5 s ringing the agent
        (60, Hold()),  # talked 60 s
        (15, Unhold()),  # held 15 s
        (20, Transfer(queue_id=QUEUE)),  # talked 20 s more
        (4, Enqueue(QUEUE)),  # 4 s transferring
        (7, hangup_request(cause=16)),  # abandoned after 7 s back in the queue
    ]
    for seconds, stimulus in plan:
        step = legs.apply(leg, stimulus, at(seconds))
        leg = step.leg
        entries.extend(step.entries)
    assert leg.timing == legs.Timing(
        ring=timedelta(seconds=2),
        ivr=timedelta(seconds=10),
        wait=timedelta(seconds=42),
        talk=timedelta(seconds=80),
        hold=timedelta(seconds=15),
        transfer=timedelta(seconds=4),
    )
    assert [entry.kind for entry in entries] == [
        EntryKind.ringing,
        EntryKind.answered,
        EntryKind.ivr,
        EntryKind.queued,
        EntryKind.offered,
        EntryKind.connected,
        EntryKind.held,
        EntryKind.resumed,
        EntryKind.transferred,
        EntryKind.queued,
        EntryKind.ended,
    ]
    assert entries[-1].data == {
        "cause": "hangup",
        "q850": 16,
        "from_state": "queued",
        "ring_ms": 2000,
        "ivr_ms": 10000,
        "wait_ms": 42000,
        "talk_ms": 80000,
        "hold_ms": 15000,
        "transfer_ms": 4000,
    }
    # Everything but the second spent answered before the menu is accounted for.
    assert leg.timing.total() == (leg.since - leg.started_at) - timedelta(seconds=1)


def test_a_step_dated_before_the_previous_one_counts_no_negative_time() -> None:
    leg = legs.apply(leg_in(LegState.queued), Offer(AGENT, AGENT_CHANNEL), T0).leg
    earlier = legs.apply(leg, entered(ME, AGENT_CHANNEL), T0 - timedelta(seconds=3))
    assert earlier.leg.since == T0
    assert earlier.leg.timing.wait == timedelta(0)
    assert earlier.entries[0].at == T0


# -- offers, bridges, transfers --------------------------------------------------------------


def test_ring_all_keeps_offering_until_the_last_phone_gives_up() -> None:
    leg = leg_in(LegState.queued)
    leg = legs.apply(leg, Offer(AGENT, "phone-1"), T0).leg
    leg = legs.apply(leg, Offer(AGENT_2, "phone-2"), T0).leg
    assert leg.offers == (OfferedAgent(AGENT, "phone-1"), OfferedAgent(AGENT_2, "phone-2"))
    one = legs.apply(leg, OfferFailed(AGENT, "no_answer"), T0)
    assert one.leg.state is LegState.offering
    assert one.entries[0].data == {"agent_id": str(AGENT), "reason": "no_answer"}
    both = legs.apply(one.leg, OfferFailed(AGENT_2, "rejected"), T0)
    assert both.leg.state is LegState.queued
    assert both.leg.offers == ()


def test_the_agent_whose_phone_joins_the_bridge_is_the_one_connected() -> None:
    leg = leg_in(LegState.queued)
    leg = legs.apply(leg, Offer(AGENT, "phone-1"), T0).leg
    leg = legs.apply(leg, Offer(AGENT_2, "phone-2"), T0).leg
    step = legs.apply(leg, entered(ME, "phone-1", who="phone-1"), T0)
    assert step.leg.state is LegState.bridged
    assert step.leg.agent_id == AGENT
    assert step.leg.offers == ()
    assert step.leg.bridge_id == "bridge-1"
    assert step.entries[0].data["agent_id"] == str(AGENT)


def test_offering_the_same_agent_twice_is_refused() -> None:
    with pytest.raises(IllegalTransition) as caught:
        legs.apply(leg_in(LegState.offering), Offer(AGENT, "again"), T0)
    assert caught.value.error_code == "call_already_offered"


def test_a_failed_offer_must_name_a_ringing_agent() -> None:
    with pytest.raises(IllegalTransition) as caught:
        legs.apply(leg_in(LegState.offering), OfferFailed(AGENT_2, "no_answer"), T0)
    assert caught.value.error_code == "call_not_offered"


@pytest.mark.parametrize("target", [Transfer(), Transfer(queue_id=QUEUE, agent_id=AGENT)])
def test_a_transfer_goes_to_one_queue_or_one_agent(target: Transfer) -> None:
    with pytest.raises(IllegalTransition) as caught:
        legs.apply(leg_in(LegState.bridged), target, T0)
    assert caught.value.error_code == "call_transfer_target"


def test_callers_waiting_in_one_holding_bridge_are_not_talking() -> None:
    leg = leg_in(LegState.offering)  # an agent's phone rings, so a mixing bridge would connect
    assert legs.apply(leg, entered(ME, OTHER, kind="holding"), T0).leg is leg
    assert legs.apply(leg, entered(ME, OTHER), T0).leg.state is LegState.bridged


def test_a_bridge_the_leg_is_not_in_says_nothing_about_it() -> None:
    leg = leg_in(LegState.offering)
    assert legs.apply(leg, entered(OTHER, "someone-else"), T0).leg is leg
    bridged = leg_in(LegState.bridged)
    other_bridge = ChannelLeftBridge(
        application="atiende", bridge=bridge(ME, bridge_id="bridge-2"), channel=channel(OTHER)
    )
    assert legs.apply(bridged, other_bridge, T0).leg is bridged


def test_when_the_agent_leaves_the_caller_is_answered_and_alone() -> None:
    step = legs.apply(leg_in(LegState.bridged), left(OTHER, ME), T0)
    assert step.leg.state is LegState.answered
    assert step.leg.bridge_id is None
    assert step.entries[0].data == {"bridge_id": "bridge-1"}


def test_a_caller_on_hold_stays_on_hold_when_the_agent_steps_out() -> None:
    leg = leg_in(LegState.on_hold)
    assert legs.apply(leg, left(OTHER, ME), T0).leg is leg


# -- starting, adopting, vanishing -----------------------------------------------------------


def test_a_call_answered_in_the_dialplan_starts_answered() -> None:
    step = legs.inbound(stasis_start(ME, "Up"), T0)
    assert step.leg.state is LegState.answered
    assert [entry.kind for entry in step.entries] == [EntryKind.answered]
    assert step.leg.args == ("acme", "5551000")
    assert step.leg.caller == CallerId("Alice", "+525512345678")


def test_dispatch_starts_one_leg_per_call_and_leaves_agent_legs_to_the_originator() -> None:
    first = legs.dispatch({}, stasis_start(ME), T0)
    again = legs.dispatch(first.legs, stasis_start(ME), T0 + timedelta(seconds=1))
    assert list(again.legs) == [ME]
    assert again.entries == ()
    agent = legs.dispatch({}, stasis_start(OTHER, "Up", legs.AGENT_ARG, ME), T0)
    assert agent.legs == {}
    assert agent.entries == ()


def test_dispatch_moves_every_leg_an_event_concerns() -> None:
    customer = legs.apply(leg_in(LegState.queued), Offer(AGENT, OTHER), T0).leg
    agent = replace(legs.originated(OTHER, AGENT, T0), state=LegState.answered)
    done = legs.dispatch({ME: customer, OTHER: agent}, entered(ME, OTHER), T0)
    assert {leg.state for leg in done.legs.values()} == {LegState.bridged}
    assert [(entry.role, entry.kind) for entry in done.entries] == [
        (LegRole.agent, EntryKind.connected),
        (LegRole.customer, EntryKind.connected),
    ]


def test_a_call_found_by_a_rebuild_is_adopted_in_the_state_the_pbx_shows() -> None:
    later = T0 + timedelta(minutes=3)
    step = legs.adopt(channel("9.9", "Up", "atiende,acme,5551000"), later)
    assert (step.leg.state, step.leg.args) == (LegState.answered, ("acme", "5551000"))
    assert (step.leg.started_at, step.leg.since) == (T0, later)  # created at T0
    assert step.entries[0].data["adopted"] == 1
    ringing = legs.adopt(channel("9.8", "Ring"), T0)
    assert ringing.leg.state is LegState.ringing_in


def test_a_leg_gone_from_the_pbx_ends_as_vanished_once() -> None:
    leg = leg_in(LegState.bridged)
    gone = legs.vanish(leg, T0 + timedelta(seconds=30))
    assert (gone.leg.state, gone.leg.cause) == (LegState.ended, EndCause.vanished)
    assert gone.leg.timing.talk == timedelta(seconds=30)
    assert [entry.kind for entry in gone.entries] == [EntryKind.ended]
    assert legs.vanish(gone.leg, T0 + timedelta(seconds=60)).leg is gone.leg


# -- random inputs ---------------------------------------------------------------------------

CHANNELS = [ME, OTHER, AGENT_CHANNEL, "phone-2"]
_channel_ids = st.sampled_from(CHANNELS)

events: st.SearchStrategy[AriEvent] = st.one_of(
    st.builds(
        lambda c, s: state_change(s, c),
        _channel_ids,
        st.sampled_from(["Up", "Ring", "Ringing", "Down", "Busy"]),
    ),
    st.builds(
        lambda c, s: dial(s, c),
        _channel_ids,
        st.sampled_from(["", "RINGING", "ANSWER", "PROGRESS", *legs.DIAL_FAILURES]),
    ),
    st.builds(
        lambda members, who, kind: entered(*members, who=who, kind=kind),
        st.lists(_channel_ids, max_size=3, unique=True),
        _channel_ids,
        st.sampled_from(["mixing", "holding"]),
    ),
    st.builds(
        lambda who, rest: left(who, *[c for c in rest if c != who]),
        _channel_ids,
        st.lists(_channel_ids, max_size=2, unique=True),
    ),
    st.builds(
        hangup_request, _channel_ids, st.one_of(st.none(), st.integers(min_value=0, max_value=127))
    ),
    st.builds(
        lambda c: ChannelDestroyed(
            application="atiende", channel=channel(c), cause=16, cause_txt="Normal Clearing"
        ),
        _channel_ids,
    ),
    st.builds(lambda c: StasisEnd(application="atiende", channel=channel(c)), _channel_ids),
    st.builds(lambda c: stasis_start(c, "Up"), _channel_ids),
    st.builds(
        lambda c: ChannelDtmfReceived(
            application="atiende", channel=channel(c), digit="1", duration_ms=100
        ),
        _channel_ids,
    ),
    st.just(
        PlaybackStarted(
            application="atiende",
            playback=Playback("p", "sound:hello-world", f"channel:{ME}", "playing"),
        )
    ),
    st.just(UnknownEvent(application="atiende", event_type="ChannelVarset")),
)

_agents = st.sampled_from([AGENT, AGENT_2])
commands: st.SearchStrategy[Command] = st.one_of(
    st.builds(StartIvr),
    st.builds(Enqueue, st.just(QUEUE)),
    st.builds(Offer, _agents, st.sampled_from([AGENT_CHANNEL, "phone-2"])),
    st.builds(OfferFailed, _agents, st.just("no_answer")),
    st.builds(Hold),
    st.builds(Unhold),
    st.builds(
        Transfer,
        st.one_of(st.none(), st.just(QUEUE)),
        st.one_of(st.none(), st.just(AGENT)),
    ),
    st.builds(TransferFailed),
    st.builds(HangUp),
)

REACHABLE = {(role, state) for (role, state) in SPEC}


def _check(leg: Leg) -> None:
    assert (leg.role, leg.state) in REACHABLE
    assert leg.is_ended == (leg.cause is not None) == (leg.ended_at is not None)
    if leg.is_ended:
        assert leg.offers == ()
        assert leg.bridge_id is None
    if leg.role is LegRole.customer:
        assert (leg.state is LegState.offering) == bool(leg.offers)
    if leg.state in {LegState.bridged, LegState.on_hold}:
        assert leg.bridge_id is not None
    for part in (leg.timing.ring, leg.timing.ivr, leg.timing.wait, leg.timing.talk):
        assert part >= timedelta(0)
    assert leg.timing.hold >= timedelta(0)
    assert leg.timing.transfer >= timedelta(0)
    assert leg.timing.total() <= leg.since - leg.started_at


def _start(role: LegRole, up: bool) -> Leg:
    if role is LegRole.agent:
        return legs.originated(ME, AGENT, T0)
    return legs.inbound(stasis_start(ME, "Up" if up else "Ring"), T0).leg


@settings(max_examples=300, deadline=None)
@given(
    role=st.sampled_from(list(LegRole)),
    up=st.booleans(),
    inputs=st.lists(
        st.tuples(st.one_of(events, commands), st.integers(min_value=-5, max_value=120)),
        max_size=40,
    ),
)
def test_random_inputs_never_make_an_impossible_leg_and_an_ended_leg_never_changes(
    role: LegRole, up: bool, inputs: list[tuple[AriEvent | Command, int]]
) -> None:
    leg = _start(role, up)
    clock = T0
    _check(leg)
    for stimulus, seconds in inputs:
        clock += timedelta(seconds=seconds)
        before = leg
        try:
            step = legs.apply(leg, stimulus, clock)
        except IllegalTransition:
            assert not isinstance(stimulus, AriEvent)
            continue
        leg = step.leg
        _check(leg)
        assert leg.since >= before.since
        if before.is_ended:
            assert leg is before
            assert step.entries == ()
        for entry in step.entries:
            assert entry.at == leg.since
            assert entry.channel_id == ME
        if leg.is_ended and not before.is_ended:
            assert [entry.kind for entry in step.entries] == [EntryKind.ended]


@settings(max_examples=100, deadline=None)
@given(inputs=st.lists(st.one_of(events, commands), max_size=30))
def test_every_command_on_an_ended_leg_is_refused_and_every_event_ignored(
    inputs: list[Any],
) -> None:
    ended = leg_in(LegState.ended)
    for stimulus in inputs:
        if isinstance(stimulus, AriEvent):
            assert legs.apply(ended, stimulus, T0) == legs.Step(ended)
        else:
            with pytest.raises(IllegalTransition):
                legs.apply(ended, stimulus, T0)
