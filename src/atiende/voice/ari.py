"""A client for one PBX's Asterisk REST Interface (ARI): REST calls over httpx, events over
the application's WebSocket.

``events()`` connects to ``/ari/events?app=<app>`` and yields a ``Connected`` marker, then
the parsed events. When the connection drops or cannot be made it tries again after an
exponential delay with jitter (``Backoff``), and yields ``Connected(reconnect=True)`` once
back. Events that happened while it was away are not replayed by Asterisk, so on every
``Connected`` the caller runs ``rebuild()``: it lists the PBX's channels and bridges and
compares them with the legs and bridges the caller holds, returning which known ones
vanished and which unknown ones of this application appeared. Events that arrive while
``rebuild`` runs wait in the socket, so nothing falls between the listing and the stream.

A wrong password is not retried (``AriAuthFailed``): it will not fix itself.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import random
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

import httpx
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from atiende.voice.ari_events import (
    AriEvent,
    AriEventMalformed,
    Bridge,
    Channel,
    LiveRecording,
    Playback,
    parse_bridge,
    parse_channel,
    parse_event,
    parse_playback,
    parse_recording,
)

log = logging.getLogger(__name__)

DEFAULT_APP: Final = "atiende"
UNAUTHORISED: Final = 401
NOT_FOUND: Final = 404


class AriError(Exception):
    """Talking to the PBX failed."""


class AriUnavailable(AriError):
    """The PBX could not be reached, or did not answer in time."""


class AriRequestFailed(AriError):
    """The PBX answered a REST call with an error status."""

    def __init__(self, status: int, message: str, *, method: str = "", path: str = "") -> None:
        super().__init__(f"{method} {path} → {status}: {message}".strip())
        self.status = status
        self.message = message


class AriAuthFailed(AriRequestFailed):
    """The PBX refused the ARI user name or password (401)."""


# --- reconnecting ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Backoff:
    """Delays between connection attempts: ``initial · factor^attempt`` up to ``maximum``,
    of which the last ``jitter`` fraction is random, so many clients of one restarted PBX do
    not come back in step."""

    initial: float = 0.5
    factor: float = 2.0
    maximum: float = 30.0
    jitter: float = 0.5

    def ceiling(self, attempt: int) -> float:
        return float(min(self.maximum, self.initial * self.factor ** min(attempt, 64)))

    def delay(self, attempt: int, rng: random.Random) -> float:
        """The wait before attempt ``attempt + 1`` (``attempt`` counts from 0)."""
        top = self.ceiling(attempt)
        return top * (1 - self.jitter) + top * self.jitter * rng.random()


@dataclass(frozen=True, slots=True)
class Connected:
    """The events WebSocket is open. After a reconnect, call ``rebuild()`` before trusting
    what you hold."""

    reconnect: bool
    waits: int = 0  # back-off waits since the previous connection (or the start)


StreamItem = AriEvent | Connected


# --- rebuilding -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Reconciliation:
    """What the PBX has now, against what the caller held."""

    channels: tuple[Channel, ...]  # this application's channels and the known ones
    bridges: tuple[Bridge, ...]  # the known bridges still there, and the appeared ones
    vanished_channels: frozenset[str]
    appeared_channels: tuple[Channel, ...]
    vanished_bridges: frozenset[str]
    appeared_bridges: tuple[Bridge, ...]

    @property
    def unchanged(self) -> bool:
        return not (
            self.vanished_channels
            or self.appeared_channels
            or self.vanished_bridges
            or self.appeared_bridges
        )


def reconcile(
    app: str,
    known_channels: Iterable[str],
    known_bridges: Iterable[str],
    channels: Iterable[Channel],
    bridges: Iterable[Bridge],
) -> Reconciliation:
    """Compare the PBX's listing with what the caller holds (pure).

    A known channel is still there if the PBX lists it at all (an agent's phone that is
    still ringing is not in the application yet). An unknown channel appeared if it is in
    this application. An unknown bridge appeared if Stasis made it and one of this
    application's channels is in it.
    """
    known_c, known_b = set(known_channels), set(known_bridges)
    listed = {channel.id: channel for channel in channels}
    ours = {cid: c for cid, c in listed.items() if c.stasis_app == app or cid in known_c}
    appeared_c = tuple(c for cid, c in ours.items() if cid not in known_c)
    listed_b = {bridge.id: bridge for bridge in bridges}
    appeared_b = tuple(
        b
        for bid, b in listed_b.items()
        if bid not in known_b
        and b.bridge_class == "stasis"
        and any(member in ours for member in b.channels)
    )
    kept_b = tuple(b for bid, b in listed_b.items() if bid in known_b)
    return Reconciliation(
        channels=tuple(ours.values()),
        bridges=kept_b + appeared_b,
        vanished_channels=frozenset(known_c - set(listed)),
        appeared_channels=appeared_c,
        vanished_bridges=frozenset(known_b - set(listed_b)),
        appeared_bridges=appeared_b,
    )


# --- the PBX and its endpoints --------------------------------------------------------------

ENDPOINT_STATES: Final = frozenset({"unknown", "offline", "online"})


@dataclass(frozen=True, slots=True)
class AsteriskInfo:
    """What ``GET /asterisk/info`` tells about the server (its ``system`` part)."""

    version: str
    entity_id: str = ""


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A phone or trunk Asterisk knows (``PJSIP/1001``): ``online`` while a device is
    registered (a contact is reachable), ``offline`` when none is, ``unknown`` when Asterisk
    cannot tell (the schema marks ``state`` optional; missing means ``unknown``)."""

    technology: str
    resource: str
    state: str
    channel_ids: tuple[str, ...] = ()


def parse_asterisk_info(body: Any) -> AsteriskInfo:
    system = body.get("system") if isinstance(body, Mapping) else None
    version = system.get("version") if isinstance(system, Mapping) else None
    if not isinstance(version, str):
        raise AriEventMalformed("GET /asterisk/info has no system.version")
    entity = system.get("entity_id") if isinstance(system, Mapping) else None
    return AsteriskInfo(version=version, entity_id=entity if isinstance(entity, str) else "")


def parse_endpoint(body: Any) -> Endpoint:
    if not isinstance(body, Mapping):
        raise AriEventMalformed("an Endpoint should be an object")
    for name in ("technology", "resource"):
        if not isinstance(body.get(name), str):
            raise AriEventMalformed(f"Endpoint.{name} should be a string")
    state = body.get("state")
    channels = body.get("channel_ids") or []
    if not isinstance(channels, list) or not all(isinstance(c, str) for c in channels):
        raise AriEventMalformed("Endpoint.channel_ids should be a list of strings")
    return Endpoint(
        technology=body["technology"],
        resource=body["resource"],
        state=state if state in ENDPOINT_STATES else "unknown",
        channel_ids=tuple(channels),
    )


# --- the client -----------------------------------------------------------------------------


def _segment(value: str) -> str:
    return quote(value, safe="")


def _error_message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200] or response.reason_phrase
    if isinstance(body, Mapping):
        # Asterisk answers {"message": …}, and {"error": …} for some failures (originate).
        for key in ("message", "error"):
            if isinstance(body.get(key), str):
                return str(body[key])
    return response.reason_phrase


class AriClient:
    """One PBX, one Stasis application. Use as an async context manager, or ``aclose()``."""

    def __init__(
        self,
        base_url: str,
        username: str,
        password: str,
        *,
        app: str = DEFAULT_APP,
        backoff: Backoff | None = None,
        timeout: float = 10.0,
        ping_interval: float | None = 20.0,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.app = app
        self.backoff = backoff or Backoff()
        self._timeout = timeout
        self._ping_interval = ping_interval
        self._sleep = sleep
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not a secret
        credentials = base64.b64encode(f"{username}:{password}".encode()).decode()
        self._authorization = f"Basic {credentials}"
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            auth=(username, password),
            timeout=timeout,
            transport=transport,
        )

    async def __aenter__(self) -> AriClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # -- REST ------------------------------------------------------------------------------

    async def _call(
        self,
        method: str,
        path: str,
        params: Mapping[str, str | int] | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> Any:
        clean = {k: v for k, v in (params or {}).items() if v is not None}
        try:
            response = await self._http.request(method, path, params=clean, json=body)
        except httpx.TransportError as error:
            raise AriUnavailable(f"{method} {path}: {error!r}") from error
        if response.status_code == UNAUTHORISED:
            raise AriAuthFailed(
                response.status_code, _error_message(response), method=method, path=path
            )
        if response.is_error:
            raise AriRequestFailed(
                response.status_code, _error_message(response), method=method, path=path
            )
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError as error:
            raise AriRequestFailed(
                response.status_code, "the body is not JSON", method=method, path=path
            ) from error

    async def answer(self, channel_id: str) -> None:
        await self._call("POST", f"/channels/{_segment(channel_id)}/answer")

    async def ring(self, channel_id: str) -> None:
        """Tell the caller it is ringing (180) while the application decides."""
        await self._call("POST", f"/channels/{_segment(channel_id)}/ring")

    async def hangup(self, channel_id: str, reason: str = "normal") -> None:
        await self._call("DELETE", f"/channels/{_segment(channel_id)}", {"reason": reason})

    async def hold(self, channel_id: str) -> None:
        await self._call("POST", f"/channels/{_segment(channel_id)}/hold")

    async def unhold(self, channel_id: str) -> None:
        await self._call("DELETE", f"/channels/{_segment(channel_id)}/hold")

    async def stop_playback(self, playback_id: str) -> None:
        await self._call("DELETE", f"/playbacks/{_segment(playback_id)}")

    async def start_moh(self, channel_id: str, moh_class: str | None = None) -> None:
        """Music on hold for a caller who waits alone."""
        params: dict[str, str | int] = {"mohClass": moh_class} if moh_class else {}
        await self._call("POST", f"/channels/{_segment(channel_id)}/moh", params)

    async def stop_moh(self, channel_id: str) -> None:
        await self._call("DELETE", f"/channels/{_segment(channel_id)}/moh")

    async def mute(self, channel_id: str, direction: str = "in") -> None:
        """``in``: what the channel's party says is not heard; ``out``: they hear nothing."""
        await self._call("POST", f"/channels/{_segment(channel_id)}/mute", {"direction": direction})

    async def unmute(self, channel_id: str, direction: str = "in") -> None:
        path = f"/channels/{_segment(channel_id)}/mute"
        await self._call("DELETE", path, {"direction": direction})

    async def send_dtmf(self, channel_id: str, digits: str) -> None:
        path = f"/channels/{_segment(channel_id)}/dtmf"
        await self._call("POST", path, {"dtmf": digits})

    async def record_bridge(
        self, bridge_id: str, name: str, *, format: str = "wav", if_exists: str = "fail"
    ) -> LiveRecording:
        """Record what everyone in the bridge says and hears (the conversation)."""
        params: dict[str, str | int] = {"name": name, "format": format, "ifExists": if_exists}
        path = f"/bridges/{_segment(bridge_id)}/record"
        return parse_recording(await self._call("POST", path, params))

    async def pause_recording(self, name: str) -> None:
        await self._call("POST", f"/recordings/live/{_segment(name)}/pause")

    async def resume_recording(self, name: str) -> None:
        await self._call("DELETE", f"/recordings/live/{_segment(name)}/pause")

    async def stop_recording(self, name: str) -> None:
        await self._call("POST", f"/recordings/live/{_segment(name)}/stop")

    async def stored_recording(self, name: str) -> bytes:
        """The file of a finished recording, as Asterisk stored it."""
        path = f"/recordings/stored/{_segment(name)}/file"
        try:
            response = await self._http.get(path)
        except httpx.TransportError as error:
            raise AriUnavailable(f"GET {path}: {error!r}") from error
        if response.is_error:
            raise AriRequestFailed(
                response.status_code, _error_message(response), method="GET", path=path
            )
        return response.content

    async def delete_stored_recording(self, name: str) -> None:
        await self._call("DELETE", f"/recordings/stored/{_segment(name)}")

    async def asterisk_info(self) -> AsteriskInfo:
        """The server's version: the cheapest request that proves the URL and the login."""
        return parse_asterisk_info(await self._call("GET", "/asterisk/info"))

    async def application_registered(self) -> bool:
        """Whether the PBX knows this Stasis application now: a client holds (or held a
        moment ago) its events connection. ``GET /applications/{app}`` is 404 otherwise."""
        try:
            await self._call("GET", f"/applications/{_segment(self.app)}")
        except AriRequestFailed as error:
            if error.status == NOT_FOUND and not isinstance(error, AriAuthFailed):
                return False
            raise
        return True

    async def endpoint(self, technology: str, resource: str) -> Endpoint | None:
        """One endpoint (``endpoint("PJSIP", "1001")``); None when the PBX has no such
        endpoint (404 ``Endpoint not found``)."""
        path = f"/endpoints/{_segment(technology)}/{_segment(resource)}"
        try:
            return parse_endpoint(await self._call("GET", path))
        except AriRequestFailed as error:
            if error.status == NOT_FOUND and not isinstance(error, AriAuthFailed):
                return None
            raise

    async def endpoints(self, technology: str) -> list[Endpoint]:
        """Every endpoint of one technology, in one request (``GET /endpoints/PJSIP``)."""
        body = await self._call("GET", f"/endpoints/{_segment(technology)}")
        if not isinstance(body, list):
            raise AriEventMalformed(f"GET /endpoints/{technology} did not return a list")
        return [parse_endpoint(item) for item in body]

    async def probe_events(self) -> None:
        """Open the application's events WebSocket once and close it: proves that Asterisk's
        HTTP server upgrades connections and accepts the login for it. Do not call it while
        another client holds the application (``application_registered``): a second
        connection for one application may take it over from the first."""
        try:
            async with connect(
                self.events_url,
                additional_headers={"Authorization": self._authorization},
                open_timeout=self._timeout,
                ping_interval=None,
            ):
                pass
        except InvalidStatus as error:
            status = error.response.status_code
            if status == UNAUTHORISED:
                raise AriAuthFailed(
                    status, "the PBX refused the ARI user or password", path="/events"
                ) from error
            body = error.response.body or b""
            message = body.decode("utf-8", "replace")[:200] or "refused the WebSocket"
            raise AriRequestFailed(status, message, method="GET", path="/events") from error
        except (OSError, TimeoutError, ConnectionClosed, InvalidHandshake) as error:
            raise AriUnavailable(f"GET /events: {error!r}") from error

    async def play(
        self,
        channel_id: str,
        media: str | Iterable[str],
        *,
        playback_id: str | None = None,
        lang: str | None = None,
    ) -> Playback:
        """Play ``sound:…``, ``digits:…``, ``tone:…``… (several in sequence)."""
        uris = media if isinstance(media, str) else ",".join(media)
        params: dict[str, str | int] = {"media": uris}
        if lang:
            params["lang"] = lang
        path = f"/channels/{_segment(channel_id)}/play"
        if playback_id:
            path += f"/{_segment(playback_id)}"
        return parse_playback(await self._call("POST", path, params))

    async def record(
        self,
        channel_id: str,
        name: str,
        *,
        format: str = "wav",
        max_duration_seconds: int = 0,
        max_silence_seconds: int = 0,
        if_exists: str = "fail",
        beep: bool = False,
        terminate_on: str = "none",
    ) -> LiveRecording:
        params: dict[str, str | int] = {
            "name": name,
            "format": format,
            "maxDurationSeconds": max_duration_seconds,
            "maxSilenceSeconds": max_silence_seconds,
            "ifExists": if_exists,
            "beep": "true" if beep else "false",
            "terminateOn": terminate_on,
        }
        path = f"/channels/{_segment(channel_id)}/record"
        return parse_recording(await self._call("POST", path, params))

    async def create_bridge(
        self, *, bridge_type: str = "mixing", name: str | None = None, bridge_id: str | None = None
    ) -> Bridge:
        params: dict[str, str | int] = {"type": bridge_type}
        if name:
            params["name"] = name
        path = "/bridges" if bridge_id is None else f"/bridges/{_segment(bridge_id)}"
        return parse_bridge(await self._call("POST", path, params))

    async def add_channel(self, bridge_id: str, *channel_ids: str) -> None:
        path = f"/bridges/{_segment(bridge_id)}/addChannel"
        await self._call("POST", path, {"channel": ",".join(channel_ids)})

    async def remove_channel(self, bridge_id: str, *channel_ids: str) -> None:
        path = f"/bridges/{_segment(bridge_id)}/removeChannel"
        await self._call("POST", path, {"channel": ",".join(channel_ids)})

    async def destroy_bridge(self, bridge_id: str) -> None:
        await self._call("DELETE", f"/bridges/{_segment(bridge_id)}")

    async def originate(
        self,
        endpoint: str,
        *,
        app_args: Iterable[str] = (),
        caller_id: str | None = None,
        ring_seconds: int = 30,
        channel_id: str | None = None,
        variables: Mapping[str, str] | None = None,
    ) -> Channel:
        """Dial ``endpoint`` (``PJSIP/1001``) into this application for up to
        ``ring_seconds``. Give ``channel_id`` to know the channel before its first event,
        which may come before this returns."""
        params: dict[str, str | int] = {
            "endpoint": endpoint,
            "app": self.app,
            "timeout": ring_seconds,
        }
        args = ",".join(app_args)
        if args:
            params["appArgs"] = args
        if caller_id:
            params["callerId"] = caller_id
        if channel_id:
            params["channelId"] = channel_id
        body = {"variables": dict(variables)} if variables else None
        return parse_channel(await self._call("POST", "/channels", params, body))

    async def snoop(
        self,
        channel_id: str,
        *,
        spy: str = "both",
        whisper: str = "none",
        app_args: Iterable[str] = (),
        snoop_id: str | None = None,
    ) -> Channel:
        """A channel that hears (``spy``) and/or speaks into (``whisper``) another, placed in
        this application: supervisors' listen, whisper and barge."""
        params: dict[str, str | int] = {"app": self.app, "spy": spy, "whisper": whisper}
        args = ",".join(app_args)
        if args:
            params["appArgs"] = args
        path = f"/channels/{_segment(channel_id)}/snoop"
        if snoop_id:
            path += f"/{_segment(snoop_id)}"
        return parse_channel(await self._call("POST", path, params))

    async def get_channel(self, channel_id: str) -> Channel:
        return parse_channel(await self._call("GET", f"/channels/{_segment(channel_id)}"))

    async def list_channels(self) -> list[Channel]:
        body = await self._call("GET", "/channels")
        if not isinstance(body, list):
            raise AriEventMalformed("GET /channels did not return a list")
        return [parse_channel(item) for item in body]

    async def list_bridges(self) -> list[Bridge]:
        body = await self._call("GET", "/bridges")
        if not isinstance(body, list):
            raise AriEventMalformed("GET /bridges did not return a list")
        return [parse_bridge(item) for item in body]

    async def rebuild(
        self, known_channels: Iterable[str] = (), known_bridges: Iterable[str] = ()
    ) -> Reconciliation:
        """List the PBX's channels and bridges and reconcile them with what the caller holds
        (see ``reconcile``). Call it on every ``Connected``."""
        channels = await self.list_channels()
        bridges = await self.list_bridges()
        return reconcile(self.app, known_channels, known_bridges, channels, bridges)

    # -- events ----------------------------------------------------------------------------

    @property
    def events_url(self) -> str:
        parts = urlsplit(self.base_url)
        scheme = "wss" if parts.scheme == "https" else "ws"
        path = parts.path.rstrip("/") + "/events"
        return urlunsplit((scheme, parts.netloc, path, urlencode({"app": self.app}), ""))

    async def events(self) -> AsyncGenerator[StreamItem, None]:
        """Events for ever, reconnecting as needed; close the iterator to stop
        (``contextlib.aclosing``)."""
        waits = 0
        connected_before = False
        while True:
            try:
                async with connect(
                    self.events_url,
                    additional_headers={"Authorization": self._authorization},
                    open_timeout=self._timeout,
                    ping_interval=self._ping_interval,
                ) as socket:
                    yield Connected(reconnect=connected_before, waits=waits)
                    connected_before, waits = True, 0
                    async for message in socket:
                        try:
                            event = parse_event(message)
                        except AriEventMalformed as error:
                            log.warning("ARI %s: skipped a malformed event: %s", self.app, error)
                            continue
                        yield event
                log.warning("ARI %s: the PBX closed the events connection", self.app)
            except InvalidStatus as error:
                status = error.response.status_code
                if status == UNAUTHORISED:
                    raise AriAuthFailed(
                        status, "the PBX refused the ARI user or password", path="/events"
                    ) from error
                log.warning("ARI %s: events connection refused with %s", self.app, status)
            except (OSError, TimeoutError, ConnectionClosed, InvalidHandshake) as error:
                log.warning("ARI %s: events connection lost or failed: %r", self.app, error)
            await self._sleep(self.backoff.delay(waits, self._rng))
            waits += 1
