"""ARI events as typed, frozen values (pure: no I/O).

Asterisk sends one JSON object per WebSocket frame, dispatched on ``type``. ``parse_event``
turns the types a contact center acts on into the dataclasses below; any other type becomes
an ``UnknownEvent`` (Asterisk has dozens and adds more), and a known type with a missing or
mistyped required field raises ``AriEventMalformed`` naming the field.

Fields the api-docs mark optional are optional here too: older servers omit ``asterisk_id``,
``protocol_id``, ``language`` and the dialplan's ``app_name``/``app_data``, and Asterisk 22
sends ``ChannelHangupRequest`` without ``cause``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Final, TypeVar

from atiende.core.errors import AtiendeError

T = TypeVar("T")


class AriEventMalformed(AtiendeError):
    """A message of a known type that does not match the ARI schema."""

    status_code = 400
    code = "ari_event_malformed"
    default_message = "The ARI event does not match its schema."


# --- models ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CallerId:
    name: str
    number: str


@dataclass(frozen=True, slots=True)
class DialplanLocation:
    context: str
    exten: str
    priority: int
    app_name: str = ""
    app_data: str = ""


@dataclass(frozen=True, slots=True)
class Channel:
    """A connection between Asterisk and an endpoint; ``id`` is the AMI Uniqueid."""

    id: str
    name: str
    state: str  # Down, Rsrved, OffHook, Dialing, Ring, Ringing, Up, Busy, …
    caller: CallerId
    connected: CallerId
    accountcode: str
    dialplan: DialplanLocation
    creationtime: datetime
    protocol_id: str = ""  # the SIP Call-ID for PJSIP
    language: str = ""

    @property
    def stasis_app(self) -> str | None:
        """The Stasis application the channel is in, if its dialplan says so."""
        if self.dialplan.app_name != "Stasis":
            return None
        return self.dialplan.app_data.split(",", 1)[0] or None


@dataclass(frozen=True, slots=True)
class Bridge:
    id: str
    technology: str
    bridge_type: str
    bridge_class: str
    creator: str
    name: str
    channels: tuple[str, ...]
    creationtime: datetime | None = None


@dataclass(frozen=True, slots=True)
class Playback:
    id: str
    media_uri: str
    target_uri: str  # channel:<id> or bridge:<id>
    state: str  # queued, playing, continuing, done, failed
    language: str = ""


@dataclass(frozen=True, slots=True)
class LiveRecording:
    name: str
    format: str
    target_uri: str
    state: str  # queued, recording, paused, done, failed, canceled
    duration: int | None = None
    talking_duration: int | None = None
    silence_duration: int | None = None
    cause: str | None = None


# --- events ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class AriEvent:
    """Fields every event carries. ``timestamp`` is Asterisk's clock; a few old samples
    lack it."""

    type: ClassVar[str] = ""
    application: str
    timestamp: datetime | None = None
    asterisk_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class StasisStart(AriEvent):
    type: ClassVar[str] = "StasisStart"
    channel: Channel
    args: tuple[str, ...] = ()
    replace_channel: Channel | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class StasisEnd(AriEvent):
    type: ClassVar[str] = "StasisEnd"
    channel: Channel


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelStateChange(AriEvent):
    type: ClassVar[str] = "ChannelStateChange"
    channel: Channel


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelDtmfReceived(AriEvent):
    type: ClassVar[str] = "ChannelDtmfReceived"
    channel: Channel
    digit: str
    duration_ms: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelHangupRequest(AriEvent):
    type: ClassVar[str] = "ChannelHangupRequest"
    channel: Channel
    cause: int | None = None  # Q.850
    soft: bool | None = None
    tech_cause: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelDestroyed(AriEvent):
    type: ClassVar[str] = "ChannelDestroyed"
    channel: Channel
    cause: int  # Q.850
    cause_txt: str
    tech_cause: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelEnteredBridge(AriEvent):
    """``bridge.channels`` lists the channels after the change."""

    type: ClassVar[str] = "ChannelEnteredBridge"
    bridge: Bridge
    channel: Channel | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelLeftBridge(AriEvent):
    type: ClassVar[str] = "ChannelLeftBridge"
    bridge: Bridge
    channel: Channel


@dataclass(frozen=True, slots=True, kw_only=True)
class Dial(AriEvent):
    """``dialstatus`` is the dialplan's DIALSTATUS: "" at the start, then RINGING, ANSWER,
    BUSY, NOANSWER, CANCEL, CONGESTION, CHANUNAVAIL, …"""

    type: ClassVar[str] = "Dial"
    peer: Channel
    dialstatus: str
    caller: Channel | None = None
    forward: str | None = None
    forwarded: Channel | None = None
    dialstring: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class PlaybackStarted(AriEvent):
    type: ClassVar[str] = "PlaybackStarted"
    playback: Playback


@dataclass(frozen=True, slots=True, kw_only=True)
class PlaybackFinished(AriEvent):
    type: ClassVar[str] = "PlaybackFinished"
    playback: Playback


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordingStarted(AriEvent):
    type: ClassVar[str] = "RecordingStarted"
    recording: LiveRecording


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordingFinished(AriEvent):
    type: ClassVar[str] = "RecordingFinished"
    recording: LiveRecording


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordingFailed(AriEvent):
    type: ClassVar[str] = "RecordingFailed"
    recording: LiveRecording


@dataclass(frozen=True, slots=True, kw_only=True)
class UnknownEvent(AriEvent):
    """A type this module does not model; ``raw`` is the message as received."""

    event_type: str
    raw: Mapping[str, Any] = field(default_factory=dict)


# --- parsing --------------------------------------------------------------------------------


class _Reader:
    """Typed access to one JSON object, naming the path of whatever is wrong."""

    def __init__(self, data: Mapping[str, Any], path: str) -> None:
        self.data = data
        self.path = path

    def _fail(self, key: str, expected: str) -> AriEventMalformed:
        where = f"{self.path}.{key}"
        if self.data.get(key) is None:
            return AriEventMalformed(f"{where} is missing", field=where)
        got = type(self.data[key]).__name__
        return AriEventMalformed(f"{where} should be {expected}, not {got}", field=where)

    def _get(self, key: str, kinds: tuple[type, ...], expected: str, *, required: bool) -> Any:
        value = self.data.get(key)
        if value is None:
            if required:
                raise self._fail(key, expected)
            return None
        # bool is an int in Python; JSON true is never a number here.
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            raise self._fail(key, expected)
        return value

    def text(self, key: str) -> str:
        value: str = self._get(key, (str,), "a string", required=True)
        return value

    def opt_text(self, key: str, default: str | None = None) -> str | None:
        value: str | None = self._get(key, (str,), "a string", required=False)
        return default if value is None else value

    def integer(self, key: str) -> int:
        value: int = self._get(key, (int,), "an integer", required=True)
        return value

    def opt_integer(self, key: str) -> int | None:
        value: int | None = self._get(key, (int,), "an integer", required=False)
        return value

    def opt_bool(self, key: str) -> bool | None:
        value: bool | None = self._get(key, (bool,), "true or false", required=False)
        return value

    def time(self, key: str) -> datetime:
        when = self.opt_time(key)
        if when is None:
            raise self._fail(key, "a timestamp")
        return when

    def opt_time(self, key: str) -> datetime | None:
        value = self.opt_text(key)
        if value is None:
            return None
        try:
            when = datetime.fromisoformat(value)
        except ValueError as error:
            where = f"{self.path}.{key}"
            raise AriEventMalformed(
                f"{where} is not an ISO 8601 time: {value!r}", field=where
            ) from error
        if when.tzinfo is None:
            where = f"{self.path}.{key}"
            raise AriEventMalformed(f"{where} has no UTC offset: {value!r}", field=where)
        return when

    def strings(self, key: str, *, required: bool) -> tuple[str, ...]:
        values = self._get(key, (list,), "a list of strings", required=required)
        if values is None:
            return ()
        if not all(isinstance(value, str) for value in values):
            raise self._fail(key, "a list of strings")
        return tuple(values)

    def obj(self, key: str, build: Callable[[_Reader], T]) -> T:
        value = self._get(key, (dict,), "an object", required=True)
        return build(_Reader(value, f"{self.path}.{key}"))

    def opt_obj(self, key: str, build: Callable[[_Reader], T]) -> T | None:
        value = self._get(key, (dict,), "an object", required=False)
        return None if value is None else build(_Reader(value, f"{self.path}.{key}"))


def _caller_id(r: _Reader) -> CallerId:
    return CallerId(name=r.text("name"), number=r.text("number"))


def _dialplan(r: _Reader) -> DialplanLocation:
    return DialplanLocation(
        context=r.text("context"),
        exten=r.text("exten"),
        priority=r.integer("priority"),
        app_name=r.opt_text("app_name", "") or "",
        app_data=r.opt_text("app_data", "") or "",
    )


def _channel(r: _Reader) -> Channel:
    return Channel(
        id=r.text("id"),
        name=r.text("name"),
        state=r.text("state"),
        caller=r.obj("caller", _caller_id),
        connected=r.obj("connected", _caller_id),
        accountcode=r.text("accountcode"),
        dialplan=r.obj("dialplan", _dialplan),
        creationtime=r.time("creationtime"),
        protocol_id=r.opt_text("protocol_id", "") or "",
        language=r.opt_text("language", "") or "",
    )


def _bridge(r: _Reader) -> Bridge:
    return Bridge(
        id=r.text("id"),
        technology=r.text("technology"),
        bridge_type=r.text("bridge_type"),
        bridge_class=r.text("bridge_class"),
        creator=r.text("creator"),
        name=r.text("name"),
        channels=r.strings("channels", required=True),
        creationtime=r.opt_time("creationtime"),
    )


def _playback(r: _Reader) -> Playback:
    return Playback(
        id=r.text("id"),
        media_uri=r.text("media_uri"),
        target_uri=r.text("target_uri"),
        state=r.text("state"),
        language=r.opt_text("language", "") or "",
    )


def _recording(r: _Reader) -> LiveRecording:
    return LiveRecording(
        name=r.text("name"),
        format=r.text("format"),
        target_uri=r.text("target_uri"),
        state=r.text("state"),
        duration=r.opt_integer("duration"),
        talking_duration=r.opt_integer("talking_duration"),
        silence_duration=r.opt_integer("silence_duration"),
        cause=r.opt_text("cause"),
    )


def _common(r: _Reader) -> dict[str, Any]:
    return {
        "application": r.text("application"),
        "timestamp": r.opt_time("timestamp"),
        "asterisk_id": r.opt_text("asterisk_id"),
    }


_PARSERS: Final[dict[str, Callable[[_Reader], AriEvent]]] = {
    "StasisStart": lambda r: StasisStart(
        **_common(r),
        channel=r.obj("channel", _channel),
        args=r.strings("args", required=True),
        replace_channel=r.opt_obj("replace_channel", _channel),
    ),
    "StasisEnd": lambda r: StasisEnd(**_common(r), channel=r.obj("channel", _channel)),
    "ChannelStateChange": lambda r: ChannelStateChange(
        **_common(r), channel=r.obj("channel", _channel)
    ),
    "ChannelDtmfReceived": lambda r: ChannelDtmfReceived(
        **_common(r),
        channel=r.obj("channel", _channel),
        digit=r.text("digit"),
        duration_ms=r.integer("duration_ms"),
    ),
    "ChannelHangupRequest": lambda r: ChannelHangupRequest(
        **_common(r),
        channel=r.obj("channel", _channel),
        cause=r.opt_integer("cause"),
        soft=r.opt_bool("soft"),
        tech_cause=r.opt_integer("tech_cause"),
    ),
    "ChannelDestroyed": lambda r: ChannelDestroyed(
        **_common(r),
        channel=r.obj("channel", _channel),
        cause=r.integer("cause"),
        cause_txt=r.text("cause_txt"),
        tech_cause=r.opt_integer("tech_cause"),
    ),
    "ChannelEnteredBridge": lambda r: ChannelEnteredBridge(
        **_common(r), bridge=r.obj("bridge", _bridge), channel=r.opt_obj("channel", _channel)
    ),
    "ChannelLeftBridge": lambda r: ChannelLeftBridge(
        **_common(r), bridge=r.obj("bridge", _bridge), channel=r.obj("channel", _channel)
    ),
    "Dial": lambda r: Dial(
        **_common(r),
        peer=r.obj("peer", _channel),
        dialstatus=r.text("dialstatus"),
        caller=r.opt_obj("caller", _channel),
        forward=r.opt_text("forward"),
        forwarded=r.opt_obj("forwarded", _channel),
        dialstring=r.opt_text("dialstring"),
    ),
    "PlaybackStarted": lambda r: PlaybackStarted(
        **_common(r), playback=r.obj("playback", _playback)
    ),
    "PlaybackFinished": lambda r: PlaybackFinished(
        **_common(r), playback=r.obj("playback", _playback)
    ),
    "RecordingStarted": lambda r: RecordingStarted(
        **_common(r), recording=r.obj("recording", _recording)
    ),
    "RecordingFinished": lambda r: RecordingFinished(
        **_common(r), recording=r.obj("recording", _recording)
    ),
    "RecordingFailed": lambda r: RecordingFailed(
        **_common(r), recording=r.obj("recording", _recording)
    ),
}

#: The event types ``parse_event`` models; everything else is an ``UnknownEvent``.
KNOWN_TYPES: Final = frozenset(_PARSERS)


def parse_event(message: Mapping[str, Any] | str | bytes) -> AriEvent:
    """One WebSocket message (text or already decoded) → an event.

    Raises ``AriEventMalformed`` for text that is not a JSON object, a message without a
    string ``type``, or a known type whose fields do not match the schema.
    """
    if isinstance(message, str | bytes):
        try:
            decoded = json.loads(message)
        except ValueError as error:
            raise AriEventMalformed(f"not JSON: {error}") from error
    else:
        decoded = message
    if not isinstance(decoded, Mapping):
        raise AriEventMalformed(f"an ARI message is a JSON object, not {type(decoded).__name__}")
    kind = decoded.get("type")
    if not isinstance(kind, str) or not kind:
        raise AriEventMalformed("the message has no 'type'", field="type")
    parser = _PARSERS.get(kind)
    if parser is None:
        # Not validated: only the envelope is read, and only when it is well-formed.
        application = decoded.get("application")
        asterisk_id = decoded.get("asterisk_id")
        try:
            timestamp = _Reader(decoded, kind).opt_time("timestamp")
        except AriEventMalformed:
            timestamp = None
        return UnknownEvent(
            application=application if isinstance(application, str) else "",
            timestamp=timestamp,
            asterisk_id=asterisk_id if isinstance(asterisk_id, str) else None,
            event_type=kind,
            raw=dict(decoded),
        )
    return parser(_Reader(decoded, kind))


def parse_channel(data: Mapping[str, Any]) -> Channel:
    """A ``Channel`` from a REST response (``GET /channels``, originate, snoop)."""
    if not isinstance(data, Mapping):
        raise AriEventMalformed("a channel is a JSON object")
    return _channel(_Reader(data, "Channel"))


def parse_bridge(data: Mapping[str, Any]) -> Bridge:
    """A ``Bridge`` from a REST response (``GET /bridges``, ``POST /bridges``)."""
    if not isinstance(data, Mapping):
        raise AriEventMalformed("a bridge is a JSON object")
    return _bridge(_Reader(data, "Bridge"))


def parse_playback(data: Mapping[str, Any]) -> Playback:
    if not isinstance(data, Mapping):
        raise AriEventMalformed("a playback is a JSON object")
    return _playback(_Reader(data, "Playback"))


def parse_recording(data: Mapping[str, Any]) -> LiveRecording:
    if not isinstance(data, Mapping):
        raise AriEventMalformed("a recording is a JSON object")
    return _recording(_Reader(data, "LiveRecording"))


def channels_of(event: AriEvent) -> tuple[str, ...]:
    """The ids of every channel an event concerns: its channel, a Dial's peer and caller,
    and the members of a bridge it reports."""
    ids: list[str] = []

    def add(channel: Channel | None) -> None:
        if channel is not None and channel.id not in ids:
            ids.append(channel.id)

    match event:
        case (
            StasisStart(channel=channel)
            | StasisEnd(channel=channel)
            | ChannelStateChange(channel=channel)
            | ChannelDtmfReceived(channel=channel)
            | ChannelHangupRequest(channel=channel)
            | ChannelDestroyed(channel=channel)
        ):
            add(channel)
        case (
            ChannelEnteredBridge(bridge=bridge, channel=channel)
            | ChannelLeftBridge(bridge=bridge, channel=channel)
        ):
            add(channel)
            for member in bridge.channels:
                if member not in ids:
                    ids.append(member)
        case Dial(peer=peer, caller=caller):
            add(peer)
            add(caller)
        case _:
            pass
    return tuple(ids)
