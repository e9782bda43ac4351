"""The ARI client against a local fake Asterisk: REST calls with basic auth, the events
WebSocket streaming a call recorded on a real Asterisk, dropped and refused connections
retried with exponential back-off and jitter, a PBX that restarts, and ``rebuild`` telling
which calls vanished and which appeared while the client was away."""

from __future__ import annotations

import asyncio
import base64
import copy
import json
import random
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import aclosing, asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from atiende.voice import legs
from atiende.voice.ari import (
    AriAuthFailed,
    AriClient,
    AriRequestFailed,
    AriUnavailable,
    Backoff,
    Connected,
    Reconciliation,
    reconcile,
)
from atiende.voice.ari_events import (
    AriEvent,
    Bridge,
    Channel,
    StasisStart,
    parse_bridge,
    parse_channel,
    parse_event,
)
from atiende.voice.legs import (
    EndCause,
    Enqueue,
    EntryKind,
    HangUp,
    Leg,
    LegRole,
    LegState,
    Offer,
    Step,
    TimelineEntry,
)

FIXTURES = Path(__file__).parent / "fixtures" / "voice"
USER, PASSWORD = "atiende", "secret"
QUEUE, AGENT = uuid.uuid4(), uuid.uuid4()


def _fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


# -- a fake Asterisk -------------------------------------------------------------------------


@dataclass
class Session:
    """What one accepted events connection receives: frames (objects are sent as JSON,
    strings as they are), then the server closes it or keeps it open."""

    frames: Sequence[dict[str, Any] | str]
    then_close: bool = True


@dataclass
class FakeAri:
    """The REST routes and the events WebSocket of ARI, with ARI's basic auth."""

    channels: list[dict[str, Any]] = field(default_factory=list)
    bridges: list[dict[str, Any]] = field(default_factory=list)
    sessions: list[Session] = field(default_factory=list)
    refuse: int = 0  # handshakes to refuse with 503 before accepting again
    requests: list[tuple[str, str, dict[str, str], Any]] = field(default_factory=list)
    handshakes: list[str] = field(default_factory=list)  # the query string of each

    def authorised(self, headers: Any, query: Any) -> bool:
        expected = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        return bool(
            headers.get("authorization") == expected or query.get("api_key") == f"{USER}:{PASSWORD}"
        )

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/ari/channels", self.rest, methods=["GET", "POST"]),
                Route("/ari/channels/{rest:path}", self.rest, methods=["GET", "POST", "DELETE"]),
                Route("/ari/bridges", self.rest, methods=["GET", "POST"]),
                Route("/ari/bridges/{rest:path}", self.rest, methods=["POST", "DELETE"]),
                WebSocketRoute("/ari/events", self.events),
            ]
        )

    async def rest(self, request: Request) -> Response:
        if not self.authorised(request.headers, request.query_params):
            return JSONResponse(
                {"message": "Authentication required"},
                status_code=401,
                headers={"WWW-Authenticate": 'Basic realm="Asterisk REST Interface"'},
            )
        body = await request.body()
        path = request.url.path.removeprefix("/ari")
        params = dict(request.query_params)
        self.requests.append((request.method, path, params, json.loads(body) if body else None))
        return self.answer(request.method, path, params)

    def answer(self, method: str, path: str, params: dict[str, str]) -> Response:  # noqa: PLR0911
        parts = path.strip("/").split("/")
        if method == "GET" and path == "/channels":
            return JSONResponse(self.channels)
        if method == "GET" and path == "/bridges":
            return JSONResponse(self.bridges)
        if len(parts) > 1 and parts[1] == "does-not-exist":
            return JSONResponse({"message": "Channel not found"}, status_code=404)
        if method == "POST" and path == "/channels":
            if params["endpoint"] == "PJSIP/1001":
                return JSONResponse({"error": "Allocation failed"}, status_code=500)
            channel = _fixture("asterisk-ari/rest_originate_response.json")
            channel["id"] = params.get("channelId", channel["id"])
            return JSONResponse(channel)
        if method == "POST" and parts[0] == "bridges" and len(parts) <= 2:
            bridge = _fixture("asterisk-ari/rest_bridge_create_response.json")
            bridge["id"] = parts[1] if len(parts) == 2 else bridge["id"]
            bridge["bridge_type"] = params.get("type", "mixing")
            return JSONResponse(bridge)
        action = parts[2] if len(parts) > 2 else ""
        if action == "play":
            return JSONResponse(_fixture("asterisk-ari/rest_play_response_official.json"), 201)
        if action == "record":
            return JSONResponse(_fixture("asterisk-ari/rest_record_response.json"), 201)
        if action == "snoop":
            return JSONResponse(_fixture("asterisk-ari/rest_snoop_response.json"))
        return Response(status_code=204)

    async def events(self, socket: WebSocket) -> None:
        self.handshakes.append(socket.url.query)
        real = _fixture("real/ari_websocket_handshakes.json")  # as Asterisk 22 refuses
        if not self.authorised(socket.headers, socket.query_params):
            refusal = real["wrong_password"]
            await socket.send_denial_response(
                Response(
                    refusal["body"],
                    refusal["status"],
                    media_type=refusal["headers"]["content-type"],
                    headers={"WWW-Authenticate": refusal["headers"]["www-authenticate"]},
                )
            )
            return
        if "app" not in socket.query_params:
            refusal = real["missing_app"]
            await socket.send_denial_response(
                Response(refusal["body"], refusal["status"], media_type="text/html")
            )
            return
        if self.refuse > 0:
            self.refuse -= 1
            await socket.send_denial_response(Response("busy restarting", 503))
            return
        await socket.accept()
        session = self.sessions.pop(0) if self.sessions else Session([], then_close=False)
        for frame in session.frames:
            await socket.send_text(frame if isinstance(frame, str) else json.dumps(frame))
        if session.then_close:
            await socket.close()
            return
        try:
            while True:
                await socket.receive_text()
        except WebSocketDisconnect:
            return


class Server:
    """A real uvicorn server for the fake, on a fixed port so it can restart in place."""

    def __init__(self, fake: FakeAri, port: int = 0) -> None:
        self.fake = fake
        self.port = port
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._server = uvicorn.Server(
            uvicorn.Config(
                self.fake.app(),
                host="127.0.0.1",
                port=self.port,
                log_level="warning",
                lifespan="off",
                ws="websockets-sansio",
            )
        )
        self._task = asyncio.create_task(self._server.serve())
        while not self._server.started:
            if self._task.done():
                self._task.result()
            await asyncio.sleep(0.01)
        self.port = int(self._server.servers[0].sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await self._task
            self._server = self._task = None

    @property
    def ari_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/ari"


@asynccontextmanager
async def serving(fake: FakeAri) -> AsyncIterator[Server]:
    server = Server(fake)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


class Sleeps:
    """Stands in for ``asyncio.sleep``: records each back-off delay, runs a hook (the world
    changing while the client waits) and yields to the loop without waiting."""

    def __init__(self) -> None:
        self.delays: list[float] = []
        self.hooks: dict[int, Any] = {}  # the n-th sleep (from 1) → an async callable
        self.limit: int | None = None

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        if self.limit is not None and len(self.delays) >= self.limit:
            raise GaveUp
        hook = self.hooks.get(len(self.delays))
        if hook is not None:
            await hook()
        await asyncio.sleep(0.01)


class GaveUp(Exception):
    pass


def client_for(server: Server, sleeps: Sleeps | None = None, **options: Any) -> AriClient:
    return AriClient(
        server.ari_url,
        options.pop("username", USER),
        options.pop("password", PASSWORD),
        sleep=sleeps or Sleeps(),
        rng=random.Random(7),
        timeout=5.0,
        **options,
    )


def assert_backoff(delays: list[float], backoff: Backoff) -> None:
    for attempt, delay in enumerate(delays):
        top = backoff.ceiling(attempt)
        assert top * (1 - backoff.jitter) <= delay <= top, (attempt, delay)


# -- REST ------------------------------------------------------------------------------------


async def test_rest_calls_reach_the_ari_routes_with_their_parameters() -> None:
    fake = FakeAri()
    async with serving(fake) as server, client_for(server) as client:
        await client.answer("1795632527.2")
        await client.ring("1795632527.2")
        playback = await client.play("1795632527.2", ["sound:hello-world", "digits:12"])
        recording = await client.record("1795632527.2", "call-1", beep=True)
        bridge = await client.create_bridge(name="call-1795632527.2")
        await client.add_channel(bridge.id, "1795632527.2", "1795632528.3")
        await client.remove_channel(bridge.id, "1795632528.3")
        await client.hold("1795632527.2")
        await client.unhold("1795632527.2")
        agent = await client.originate(
            "PJSIP/1002",
            app_args=[legs.AGENT_ARG, "1795632527.2"],
            caller_id="Queue <100>",
            ring_seconds=15,
            channel_id="agent-1",
            variables={"ATIENDE_CALL": "c-1"},
        )
        snoop = await client.snoop("1795632527.2", spy="both", app_args=["supervisor"])
        await client.hangup("1795632528.3", reason="busy")
        await client.destroy_bridge(bridge.id)
    assert playback.state == "queued"
    assert recording.state == "recording"
    assert bridge.id == "cc-bridge-1733400000.101"
    assert agent.id == "agent-1"
    assert snoop.name.startswith("Snoop/")
    assert fake.requests == [
        ("POST", "/channels/1795632527.2/answer", {}, None),
        ("POST", "/channels/1795632527.2/ring", {}, None),
        ("POST", "/channels/1795632527.2/play", {"media": "sound:hello-world,digits:12"}, None),
        (
            "POST",
            "/channels/1795632527.2/record",
            {
                "name": "call-1",
                "format": "wav",
                "maxDurationSeconds": "0",
                "maxSilenceSeconds": "0",
                "ifExists": "fail",
                "beep": "true",
                "terminateOn": "none",
            },
            None,
        ),
        ("POST", "/bridges", {"type": "mixing", "name": "call-1795632527.2"}, None),
        (
            "POST",
            f"/bridges/{bridge.id}/addChannel",
            {"channel": "1795632527.2,1795632528.3"},
            None,
        ),
        ("POST", f"/bridges/{bridge.id}/removeChannel", {"channel": "1795632528.3"}, None),
        ("POST", "/channels/1795632527.2/hold", {}, None),
        ("DELETE", "/channels/1795632527.2/hold", {}, None),
        (
            "POST",
            "/channels",
            {
                "endpoint": "PJSIP/1002",
                "app": "atiende",
                "timeout": "15",
                "appArgs": "@agent,1795632527.2",
                "callerId": "Queue <100>",
                "channelId": "agent-1",
            },
            {"variables": {"ATIENDE_CALL": "c-1"}},
        ),
        (
            "POST",
            "/channels/1795632527.2/snoop",
            {"app": "atiende", "spy": "both", "whisper": "none", "appArgs": "supervisor"},
            None,
        ),
        ("DELETE", "/channels/1795632528.3", {"reason": "busy"}, None),
        ("DELETE", f"/bridges/{bridge.id}", {}, None),
    ]


async def test_rest_errors_carry_the_status_and_asterisks_message() -> None:
    async with serving(FakeAri()) as server, client_for(server) as client:
        with pytest.raises(AriRequestFailed) as missing:
            await client.answer("does-not-exist")
        with pytest.raises(AriRequestFailed) as unreachable_phone:
            await client.originate("PJSIP/1001")
    assert (missing.value.status, missing.value.message) == (404, "Channel not found")
    # Asterisk answers this one with {"error": …}, not {"message": …}
    assert (unreachable_phone.value.status, unreachable_phone.value.message) == (
        500,
        "Allocation failed",
    )


async def test_a_wrong_password_fails_rest_and_events_at_once_without_retrying() -> None:
    sleeps = Sleeps()
    async with serving(FakeAri()) as server, client_for(server, sleeps, password="wrong") as client:
        with pytest.raises(AriAuthFailed) as rest:
            await client.list_channels()
        with pytest.raises(AriAuthFailed):
            async with aclosing(client.events()) as stream:
                await anext(stream)
    assert (rest.value.status, rest.value.message) == (401, "Authentication required")
    assert sleeps.delays == []


async def test_the_password_travels_in_the_authorization_header_not_the_url() -> None:
    fake = FakeAri(sessions=[Session([], then_close=False)])
    async with serving(fake) as server, client_for(server) as client:
        assert client.events_url == f"ws://127.0.0.1:{server.port}/ari/events?app=atiende"
        async with aclosing(client.events()) as stream:
            assert await anext(stream) == Connected(reconnect=False, waits=0)
    assert fake.handshakes == ["app=atiende"]


async def test_an_unreachable_pbx_is_reported_as_unavailable() -> None:
    server = Server(FakeAri())
    await server.start()
    await server.stop()  # the port is free now: nothing listens
    async with client_for(server) as client:
        with pytest.raises(AriUnavailable):
            await client.list_bridges()


# -- back-off --------------------------------------------------------------------------------


def test_backoff_doubles_up_to_its_ceiling_and_keeps_part_of_each_wait_random() -> None:
    backoff = Backoff(initial=0.5, factor=2, maximum=30, jitter=0.5)
    assert [backoff.ceiling(n) for n in range(8)] == [0.5, 1, 2, 4, 8, 16, 30, 30]
    rng = random.Random(1)
    delays = [backoff.delay(n, rng) for n in range(8) for _ in range(50)]
    assert_backoff(delays[::50], backoff)
    assert len({round(d, 9) for d in delays[:50]}) > 40  # jittered, not constant
    assert Backoff(jitter=0).delay(3, rng) == 4.0
    assert backoff.ceiling(10_000) == 30


async def test_a_pbx_that_is_not_there_is_retried_ever_more_slowly() -> None:
    server = Server(FakeAri())
    await server.start()
    await server.stop()
    sleeps = Sleeps()
    sleeps.limit = 9
    async with client_for(server, sleeps) as client:
        with pytest.raises(GaveUp):
            async with aclosing(client.events()) as stream:
                await anext(stream)
    assert len(sleeps.delays) == 9
    assert_backoff(sleeps.delays, client.backoff)
    assert sleeps.delays[-1] > 15  # reached the 30 s ceiling's range


# -- the events stream -----------------------------------------------------------------------


async def test_malformed_frames_are_skipped_and_the_stream_goes_on() -> None:
    start = _fixture("asterisk-ari/event_StasisStart.json")
    broken = {"type": "StasisStart", "application": "atiende"}
    fake = FakeAri(sessions=[Session(["{not json", broken, start], then_close=False)])
    async with (
        serving(fake) as server,
        client_for(server) as client,
        aclosing(client.events()) as stream,
    ):
        first, second = await anext(stream), await anext(stream)
    assert first == Connected(reconnect=False, waits=0)
    assert isinstance(second, StasisStart)
    assert second.channel.id == "1733400000.101"


def _sipp() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    script = _fixture("real/replay_sipp.json")
    return _fixture(f"real/{script['events']}"), script["steps"]


@dataclass
class Switchboard:
    """What an application holds: legs by channel, the bridges it knows, the timeline."""

    legs: dict[str, Leg] = field(default_factory=dict)
    bridges: set[str] = field(default_factory=set)
    entries: list[TimelineEntry] = field(default_factory=list)
    reconciliations: list[Reconciliation] = field(default_factory=list)

    def live(self) -> list[str]:
        return [channel_id for channel_id, leg in self.legs.items() if not leg.is_ended]

    def record(self, step: Step) -> None:
        self.legs[step.leg.channel_id] = step.leg
        self.entries.extend(step.entries)

    def handle(self, event: AriEvent, at: datetime) -> None:
        done = legs.dispatch(self.legs, event, at)
        self.legs = dict(done.legs)
        self.entries.extend(done.entries)
        bridge = getattr(event, "bridge", None)
        if isinstance(bridge, Bridge):
            self.bridges.add(bridge.id)

    async def rebuild(self, client: AriClient, at: datetime) -> None:
        found = await client.rebuild(self.live(), self.bridges)
        self.reconciliations.append(found)
        for channel_id in sorted(found.vanished_channels):
            self.record(legs.vanish(self.legs[channel_id], at))
        for channel in found.appeared_channels:
            self.record(legs.adopt(channel, at))
        self.bridges -= found.vanished_bridges
        self.bridges |= {bridge.id for bridge in found.appeared_bridges}


async def test_a_dropped_stream_reconnects_with_backoff_and_rebuild_finds_what_changed() -> None:
    raws, steps = _sipp()
    customer_end = next(
        i
        for i, raw in enumerate(raws)
        if raw["type"] == "StasisEnd" and "sipp" in raw["channel"]["name"]
    )
    both_bridged = max(
        i for i, raw in enumerate(raws[:customer_end]) if raw["type"] == "ChannelEnteredBridge"
    )
    # The connection drops after both parties are bridged; while the client is away the
    # caller hangs up (those events are lost) and a new call enters the application.
    delivered = [*range(both_bridged + 1), *range(customer_end + 1, len(raws))]
    before, after = raws[: both_bridged + 1], raws[customer_end + 1 :]
    customer_id = raws[0]["channel"]["id"]
    agent_start = next(
        raw for raw in raws if raw["type"] == "StasisStart" and raw["channel"]["id"] != customer_id
    )
    agent_id = agent_start["channel"]["id"]
    bridge = copy.deepcopy(raws[both_bridged]["bridge"])
    new_call = copy.deepcopy(raws[0]["channel"])
    new_call.update(id="1795632600.9", name="PJSIP/sipp-00000009", state="Up")
    ringing_elsewhere = copy.deepcopy(agent_start["channel"])
    ringing_elsewhere.update(id="1795632601.1", name="PJSIP/2001-00000009")
    ringing_elsewhere["dialplan"].update(app_name="Dial", app_data="PJSIP/2001")

    fake = FakeAri(sessions=[Session(before, then_close=True), Session(after, then_close=False)])
    sleeps = Sleeps()

    async def while_away() -> None:
        fake.refuse = 2  # the PBX refuses two handshakes while it recovers
        fake.channels = [agent_start["channel"], new_call, ringing_elsewhere]
        bridge["channels"] = [agent_id]
        other_bridge = {**copy.deepcopy(bridge), "id": "dialplan-bridge", "bridge_class": "basic"}
        other_bridge["channels"] = ["1795632601.1"]
        fake.bridges = [bridge, other_bridge]

    sleeps.hooks[1] = while_away
    board = Switchboard()
    connects: list[Connected] = []
    received: list[AriEvent] = []
    pending = [step for step in steps if "command" in step]
    clock = datetime.fromisoformat(raws[0]["timestamp"])

    async with (
        serving(fake) as server,
        client_for(server, sleeps) as client,
        aclosing(client.events()) as stream,
    ):
        async for item in stream:
            if isinstance(item, Connected):
                connects.append(item)
                await board.rebuild(client, clock)
                if item.reconnect:
                    again = await client.rebuild(board.live(), board.bridges)
                    assert again.unchanged  # nothing is adopted or ended twice
                continue
            received.append(item)
            index = delivered[len(received) - 1]
            clock = item.timestamp or clock
            while pending and _due(pending[0], steps, index):
                _command(board, pending.pop(0), clock)
            board.handle(item, clock)
            if len(received) == len(delivered):
                break

    assert connects == [Connected(reconnect=False, waits=0), Connected(reconnect=True, waits=3)]
    assert len(fake.handshakes) == 4
    assert len(sleeps.delays) == 3
    assert_backoff(sleeps.delays, client.backoff)
    # every event the PBX sent arrived once, in order
    assert received == [parse_event(raw) for raw in before + after]

    first, back = board.reconciliations
    assert first.unchanged
    assert back.vanished_channels == {customer_id}
    assert [c.id for c in back.appeared_channels] == ["1795632600.9"]
    assert back.vanished_bridges == frozenset()
    assert back.appeared_bridges == ()
    assert {c.id for c in back.channels} == {agent_id, "1795632600.9"}

    customer = board.legs[customer_id]
    assert (customer.state, customer.cause) == (LegState.ended, EndCause.vanished)
    ends = [e for e in board.entries if e.channel_id == customer_id and e.kind is EntryKind.ended]
    assert len(ends) == 1
    assert ends[0].data["from_state"] == "bridged"
    adopted = board.legs["1795632600.9"]
    assert (adopted.role, adopted.state, adopted.args) == (
        LegRole.customer,
        LegState.answered,
        ("inbound",),
    )
    agent = board.legs[agent_id]
    assert (agent.state, agent.cause) == (LegState.ended, EndCause.hung_up_by_us)
    assert [e.kind for e in board.entries if e.channel_id == agent_id] == [
        EntryKind.ringing,
        EntryKind.answered,
        EntryKind.connected,
        EntryKind.ended,  # the caller's departure was among the lost events
    ]
    assert board.entries[-1].data["from_state"] == "bridged"


def _due(step: dict[str, Any], steps: list[dict[str, Any]], index: int) -> bool:
    """A command is due once the stream reaches the first event after it in the script."""
    position = steps.index(step)
    following = [s["event"] for s in steps[position:] if "event" in s]
    return not following or following[0] <= index


def _command(board: Switchboard, step: dict[str, Any], at: datetime) -> None:
    customers = [c for c, leg in board.legs.items() if leg.role is LegRole.customer]
    match step["command"]:
        case "enqueue":
            board.record(legs.apply(board.legs[customers[0]], Enqueue(QUEUE), at))
        case "offer":
            channel_id = step["agent_channel_id"]
            board.record(legs.apply(board.legs[customers[0]], Offer(AGENT, channel_id), at))
            board.legs[channel_id] = legs.originated(channel_id, AGENT, at)
        case "hang_up":
            board.record(legs.apply(board.legs[step["channel"]], HangUp(), at))


async def test_a_pbx_restart_is_survived_on_the_same_address() -> None:
    start = _fixture("asterisk-ari/event_StasisStart.json")
    fake = FakeAri(sessions=[Session([], then_close=False), Session([start], then_close=False)])
    sleeps = Sleeps()
    server = Server(fake)
    await server.start()

    async def back_up() -> None:  # down during the first wait, up again in the second
        await server.start()

    sleeps.hooks[2] = back_up
    try:
        async with client_for(server, sleeps) as client, aclosing(client.events()) as stream:
            assert await anext(stream) == Connected(reconnect=False, waits=0)
            await server.stop()  # Asterisk restarts: the socket closes, the port goes quiet
            assert await anext(stream) == Connected(reconnect=True, waits=2)
            event = await anext(stream)
    finally:
        await server.stop()
    assert isinstance(event, StasisStart)
    assert_backoff(sleeps.delays, Backoff())
    assert len(fake.handshakes) == 2


# -- reconciling -----------------------------------------------------------------------------


def _channel(channel_id: str, app_data: str, app_name: str = "Stasis") -> Channel:
    raw = _fixture("asterisk-ari/rest_originate_response.json")
    raw["id"] = channel_id
    raw["dialplan"].update(app_name=app_name, app_data=app_data)
    return parse_channel(raw)


def _bridge(bridge_id: str, *members: str, bridge_class: str = "stasis") -> Bridge:
    raw = _fixture("asterisk-ari/rest_bridge_create_response.json")
    raw.update(id=bridge_id, channels=list(members), bridge_class=bridge_class)
    return parse_bridge(raw)


def test_reconcile_keeps_a_known_phone_that_still_rings_outside_the_application() -> None:
    ringing = _channel("agent-1", "(Outgoing Line)", app_name="AppDial2")
    found = reconcile("atiende", ["agent-1"], [], [ringing], [])
    assert found.unchanged
    assert [c.id for c in found.channels] == ["agent-1"]


def test_reconcile_ignores_other_applications_and_their_bridges() -> None:
    theirs = _channel("x-1", "other-app,inbound")
    ours = _channel("a-1", "atiende,acme,5551000")
    found = reconcile(
        "atiende",
        [],
        ["gone"],
        [theirs, ours],
        [
            _bridge("b-theirs", "x-1"),
            _bridge("b-ours", "a-1"),
            _bridge("b-basic", "a-1", bridge_class="basic"),
        ],
    )
    assert [c.id for c in found.appeared_channels] == ["a-1"]
    assert [b.id for b in found.appeared_bridges] == ["b-ours"]
    assert found.vanished_bridges == {"gone"}
    assert found.vanished_channels == frozenset()


def test_reconcile_after_a_quiet_outage_changes_nothing() -> None:
    ours = _channel("a-1", "atiende,acme,5551000")
    found = reconcile("atiende", ["a-1"], ["b-1"], [ours], [_bridge("b-1", "a-1")])
    assert found.unchanged
    assert [b.id for b in found.bridges] == ["b-1"]
