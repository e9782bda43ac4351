"""ARI events become typed, frozen values: every documented fixture and every event captured
from a real Asterisk 22 parses; unknown types are kept as ``UnknownEvent``; a malformed
message of a known type is refused with an error naming the field."""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from atiende.voice import ari_events
from atiende.voice.ari_events import (
    AriEventMalformed,
    ChannelDestroyed,
    ChannelDtmfReceived,
    ChannelEnteredBridge,
    ChannelHangupRequest,
    ChannelLeftBridge,
    ChannelStateChange,
    Dial,
    PlaybackFinished,
    PlaybackStarted,
    RecordingFinished,
    RecordingStarted,
    StasisEnd,
    StasisStart,
    UnknownEvent,
    channels_of,
    parse_bridge,
    parse_channel,
    parse_event,
    parse_playback,
    parse_recording,
)

FIXTURES = Path(__file__).parent / "fixtures" / "voice"
DOCUMENTED = FIXTURES / "asterisk-ari"
REAL = FIXTURES / "real"
CAPTURES = sorted(REAL.glob("ari_*_events.json"))


def _load(path: Path) -> Any:
    return json.loads(path.read_text())


def _documented(name: str) -> dict[str, Any]:
    data: dict[str, Any] = _load(DOCUMENTED / name)
    return data


@pytest.mark.parametrize(
    "path", sorted(DOCUMENTED.glob("event_*.json")), ids=lambda path: path.stem
)
def test_every_documented_event_parses_to_the_class_of_its_type(path: Path) -> None:
    raw = _load(path)
    event = parse_event(path.read_text())
    assert type(event).__name__ == raw["type"]
    assert event.type == raw["type"]
    assert event.application == raw["application"]
    assert event.asterisk_id == raw.get("asterisk_id")
    if "timestamp" in raw:
        assert event.timestamp == datetime.fromisoformat(raw["timestamp"])
    else:
        assert event.timestamp is None


def test_stasis_start_carries_the_channel_and_the_dialplan_arguments() -> None:
    event = parse_event(_documented("event_StasisStart.json"))
    assert isinstance(event, StasisStart)
    assert event.args == ("inbound",)
    assert event.replace_channel is None
    channel = event.channel
    assert (channel.id, channel.name, channel.state) == (
        "1733400000.101",
        "PJSIP/trunk-00000065",
        "Ring",
    )
    assert (channel.caller.name, channel.caller.number) == ("Alice Caller", "+14155550123")
    assert channel.dialplan.app_data == "contact-center,inbound"
    assert channel.stasis_app == "contact-center"
    assert channel.protocol_id == "c0ffee00-1234-5678-9abc-def012345678@192.0.2.10"
    assert channel.creationtime == datetime(2026, 1, 15, 12, 30, tzinfo=UTC)
    assert event.timestamp == datetime(2026, 1, 15, 12, 30, 0, 120000, tzinfo=UTC)


def test_an_old_server_omits_optional_fields_and_they_default() -> None:
    event = parse_event(_documented("event_StasisStart_official.json"))
    assert isinstance(event, StasisStart)
    assert event.args == ()
    assert event.asterisk_id is None
    assert event.channel.protocol_id == ""
    assert event.channel.language == ""
    assert event.channel.dialplan.app_name == ""
    assert event.channel.stasis_app is None
    assert event.timestamp is not None
    assert event.timestamp.utcoffset() == timedelta(hours=-5)


def test_channel_events_carry_their_own_fields() -> None:
    dtmf = parse_event(_documented("event_ChannelDtmfReceived.json"))
    assert isinstance(dtmf, ChannelDtmfReceived)
    assert (dtmf.digit, dtmf.duration_ms) == ("1", 120)

    request = parse_event(_documented("event_ChannelHangupRequest.json"))
    assert isinstance(request, ChannelHangupRequest)
    assert (request.cause, request.soft, request.tech_cause) == (16, False, None)

    destroyed = parse_event(_documented("event_ChannelDestroyed.json"))
    assert isinstance(destroyed, ChannelDestroyed)
    assert (destroyed.cause, destroyed.cause_txt) == (16, "Normal Clearing")

    change = parse_event(_documented("event_ChannelStateChange.json"))
    assert isinstance(change, ChannelStateChange)
    assert change.channel.state == "Up"

    end = parse_event(_documented("event_StasisEnd.json"))
    assert isinstance(end, StasisEnd)
    assert end.channel.id == "1733400000.101"


def test_bridge_events_list_the_members_after_the_change() -> None:
    entered = parse_event(_documented("event_ChannelEnteredBridge.json"))
    assert isinstance(entered, ChannelEnteredBridge)
    assert entered.bridge.channels == ("1733400000.101",)
    assert entered.bridge.bridge_type == "mixing"
    assert entered.channel is not None
    left = parse_event(_documented("event_ChannelLeftBridge.json"))
    assert isinstance(left, ChannelLeftBridge)
    assert left.channel.id == "1733400000.101"
    assert left.bridge.channels == ("1733400010.105",)
    assert channels_of(left) == ("1733400000.101", "1733400010.105")


def test_dial_reports_the_peer_and_its_status() -> None:
    ringing = parse_event(_documented("event_Dial_ringing.json"))
    answered = parse_event(_documented("event_Dial_answer.json"))
    assert isinstance(ringing, Dial)
    assert isinstance(answered, Dial)
    assert (ringing.dialstatus, ringing.dialstring) == ("RINGING", "agent1001")
    assert (answered.dialstatus, answered.dialstring) == ("ANSWER", None)
    assert ringing.peer.id == answered.peer.id == "1733400010.105"
    assert ringing.caller is None
    assert channels_of(ringing) == ("1733400010.105",)


def test_playback_and_recording_events() -> None:
    started = parse_event(_documented("event_PlaybackStarted_official.json"))
    finished = parse_event(_documented("event_PlaybackFinished.json"))
    assert isinstance(started, PlaybackStarted)
    assert isinstance(finished, PlaybackFinished)
    assert started.playback.state == "playing"
    assert started.timestamp is None  # the documented sample has none
    assert finished.playback.target_uri == "channel:1733400000.101"
    assert channels_of(finished) == ()

    recording = parse_event(_documented("event_RecordingStarted.json"))
    done = parse_event(_documented("event_RecordingFinished.json"))
    assert isinstance(recording, RecordingStarted)
    assert isinstance(done, RecordingFinished)
    assert recording.recording.duration is None
    assert (
        done.recording.duration,
        done.recording.talking_duration,
        done.recording.silence_duration,
    ) == (60, 42, 18)


def test_rest_responses_parse_into_the_same_models() -> None:
    originated = parse_channel(_documented("rest_originate_response.json"))
    assert (originated.id, originated.state) == ("1733400010.105", "Down")
    snoop = parse_channel(_documented("rest_snoop_response.json"))
    assert snoop.stasis_app == "contact-center"
    bridge = parse_bridge(_documented("rest_bridge_create_response.json"))
    assert (bridge.id, bridge.channels) == ("cc-bridge-1733400000.101", ())
    playback = parse_playback(_documented("rest_play_response_official.json"))
    assert playback.state == "queued"
    recording = parse_recording(_documented("rest_record_response.json"))
    assert recording.state == "recording"


def test_rest_over_websocket_messages_are_unknown_events_kept_whole() -> None:
    raw = _documented("ws_RESTResponse_answer_official.json")
    event = parse_event(raw)
    assert isinstance(event, UnknownEvent)
    assert event.event_type == "RESTResponse"
    assert event.application == "mystasisapp"
    assert event.timestamp == datetime(
        2025, 3, 17, 8, 32, 35, 709000, tzinfo=timezone(timedelta(hours=-6))
    )
    assert event.raw == raw


@pytest.mark.parametrize("path", CAPTURES, ids=lambda path: path.stem)
def test_every_event_captured_from_a_real_asterisk_parses(path: Path) -> None:
    raws = _load(path)
    events = [parse_event(json.dumps(raw)) for raw in raws]
    for raw, event in zip(raws, events, strict=True):
        if raw["type"] in ari_events.KNOWN_TYPES:
            assert type(event).__name__ == raw["type"]
        else:
            assert isinstance(event, UnknownEvent)
            assert event.event_type == raw["type"]
            assert event.raw == raw
        assert event.application == "atiende"
        assert event.asterisk_id == "02:fc:00:00:00:01"
        assert event.timestamp is not None


def test_the_real_captures_hold_the_events_the_index_lists() -> None:
    counts = {
        path.stem: Counter(type(parse_event(raw)).__name__ for raw in _load(path))
        for path in CAPTURES
    }
    sipp = counts["ari_sipp_events"]
    assert sum(sipp.values()) == 53
    assert sipp["StasisStart"] == sipp["StasisEnd"] == 2
    assert sipp["Dial"] == 3
    assert sipp["ChannelDestroyed"] == 1  # the caller left Stasis before it was destroyed
    assert sipp["UnknownEvent"] == 36  # ChannelVarset, ChannelConnectedLine, BridgeDestroyed
    assert sum(counts["ari_originate_events"].values()) == 25
    assert counts["ari_originate_events"]["ChannelDtmfReceived"] == 3
    assert sum(counts["ari_sipp_auth_events"].values()) == 85


def test_a_real_hangup_request_may_come_without_a_cause() -> None:
    raws = _load(REAL / "ari_sipp_events.json")
    requests = [parse_event(raw) for raw in raws if raw["type"] == "ChannelHangupRequest"]
    causes = [
        (request.channel.name, request.cause, request.soft)
        for request in requests
        if isinstance(request, ChannelHangupRequest)
    ]
    # The caller's BYE carries nothing; the hangup the application asked for is soft.
    assert causes == [("PJSIP/sipp-00000000", None, None), ("PJSIP/1002-00000001", 32, True)]


def test_a_real_dial_starts_with_an_empty_status_and_an_empty_forward() -> None:
    raws = _load(REAL / "ari_sipp_events.json")
    dials = [parse_event(raw) for raw in raws if raw["type"] == "Dial"]
    statuses = [dial.dialstatus for dial in dials if isinstance(dial, Dial)]
    assert statuses == ["", "RINGING", "ANSWER"]
    assert all(isinstance(dial, Dial) and dial.forward == "" for dial in dials)


def test_events_are_frozen() -> None:
    event = parse_event(_documented("event_StasisStart.json"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.application = "other"  # type: ignore[misc]


# -- malformed -------------------------------------------------------------------------------


def _stasis_start(**changes: Any) -> dict[str, Any]:
    raw = _documented("event_StasisStart.json")
    raw.update(changes)
    return raw


def _with_channel(**changes: Any) -> dict[str, Any]:
    raw = _documented("event_StasisStart.json")
    raw["channel"] = {**raw["channel"], **changes}
    return raw


@pytest.mark.parametrize(
    ("message", "fragment"),
    [
        ("{not json", "not JSON"),
        ("[1, 2]", "a JSON object, not list"),
        ('{"application": "atiende"}', "no 'type'"),
        ('{"type": 3}', "no 'type'"),
        (_stasis_start(channel=None), "StasisStart.channel is missing"),
        (_stasis_start(channel="1733400000.101"), "StasisStart.channel should be an object"),
        (_stasis_start(args=["inbound", 7]), "StasisStart.args should be a list of strings"),
        (_stasis_start(args=None), "StasisStart.args is missing"),
        (_stasis_start(timestamp="yesterday"), "StasisStart.timestamp is not an ISO 8601"),
        (_stasis_start(timestamp="2026-01-15T12:30:00"), "has no UTC offset"),
        (_with_channel(id=1733400000), "StasisStart.channel.id should be a string, not int"),
        (_with_channel(caller={"name": "x"}), "StasisStart.channel.caller.number is missing"),
        (_with_channel(dialplan={"context": "x", "exten": "1", "priority": "1"}), "priority"),
        (
            {**_documented("event_ChannelDtmfReceived.json"), "duration_ms": True},
            "ChannelDtmfReceived.duration_ms should be an integer, not bool",
        ),
        (
            {**_documented("event_ChannelDestroyed.json"), "cause": None},
            "ChannelDestroyed.cause is missing",
        ),
        (
            {**_documented("event_Dial_answer.json"), "peer": {"id": "x"}},
            "Dial.peer.name is missing",
        ),
    ],
)
def test_a_malformed_message_is_refused_naming_what_is_wrong(
    message: str | dict[str, Any], fragment: str
) -> None:
    with pytest.raises(AriEventMalformed) as caught:
        parse_event(message)
    assert fragment in caught.value.message
    assert caught.value.error_code == "ari_event_malformed"
    assert caught.value.status_code == 400


def test_an_unknown_type_is_not_validated_beyond_its_envelope() -> None:
    event = parse_event('{"type": "ChannelTalkingStarted", "timestamp": "soon"}')
    assert isinstance(event, UnknownEvent)
    assert event.event_type == "ChannelTalkingStarted"
    assert event.timestamp is None
    assert event.application == ""
