"""A local Asterisk REST Interface (ARI) for the call controls: the channel, bridge and
recording routes Atiende calls, with ARI's basic auth, its status codes and its
``{"message": ...}`` error bodies, and a record of every request.

The fake keeps the little state the answers depend on: which channels and bridges exist
(an unknown one is ``404 Channel not found`` / ``Bridge not found``), the live recordings
(``POST /bridges/{id}/record`` answers the ``LiveRecording`` Asterisk sends, state
``queued``; pause and unpause move it) and the stored ones (``GET
/recordings/stored/{name}/file`` serves the file as ``audio/wav``). An originate (``POST
/channels``) answers the new channel as Asterisk does (state ``Down``), adds it to the
channels and keeps its parameters in ``originated``. ``refuse_next`` makes
the next matching request fail the way Asterisk refuses (a channel that left the
application is ``409 Channel not in Stasis application``).
"""

from __future__ import annotations

import base64
import io
import json
import wave
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from factories import LiveServer

USERNAME = "atiende"
PASSWORD = "ari-secret"  # a test credential


@dataclass(frozen=True)
class AriRequest:
    """One REST request as the fake received it (path without the ``/ari`` prefix)."""

    method: str
    path: str
    params: dict[str, str]
    body: Any = None


@dataclass
class _Refusal:
    method: str
    path: str
    status: int
    message: str


@dataclass
class LiveRecording:
    name: str
    format: str
    target_uri: str
    state: str = "queued"


def wav_bytes(seconds: float = 0.5, rate: int = 8000) -> bytes:
    """A short, valid WAV file of silence (what Asterisk stores for a quiet call)."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(b"\x00\x00" * int(seconds * rate))
    return buffer.getvalue()


@dataclass
class FakeAri:
    username: str = USERNAME
    password: str = PASSWORD
    channels: set[str] = field(default_factory=set)
    bridges: set[str] = field(default_factory=set)
    live: dict[str, LiveRecording] = field(default_factory=dict)
    stored: dict[str, bytes] = field(default_factory=dict)
    requests: list[AriRequest] = field(default_factory=list)
    refusals: list[_Refusal] = field(default_factory=list)
    originated: list[dict[str, str]] = field(default_factory=list)  # POST /channels params
    url: str = ""  # the ARI base URL once serving (http://127.0.0.1:<port>/ari)

    # --- set-up ------------------------------------------------------------------------------

    def add_call(self, *channel_ids: str, bridge_id: str | None = None) -> None:
        self.channels.update(channel_ids)
        if bridge_id is not None:
            self.bridges.add(bridge_id)

    def refuse_next(self, method: str, path: str, status: int, message: str) -> None:
        """The next ``method path`` (without ``/ari``) is answered ``status`` with
        Asterisk's ``{"message": message}``."""
        self.refusals.append(_Refusal(method, path, status, message))

    def finish_recording(self, name: str, content: bytes | None = None) -> None:
        """The call ended: Asterisk stops the recording and stores its file."""
        self.live.pop(name, None)
        self.stored[name] = content if content is not None else wav_bytes()

    def made(self) -> list[tuple[str, str, dict[str, str]]]:
        """The requests so far as ``(method, path, params)``."""
        return [(r.method, r.path, r.params) for r in self.requests]

    # --- the server --------------------------------------------------------------------------

    def app(self) -> Starlette:
        methods = ["GET", "POST", "PUT", "DELETE"]
        return Starlette(routes=[Route("/ari/{rest:path}", self._handle, methods=methods)])

    def _authorised(self, request: Request) -> bool:
        expected = "Basic " + base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        return request.headers.get("authorization") == expected

    async def _handle(self, request: Request) -> Response:  # noqa: PLR0911 - one per route
        if not self._authorised(request):
            return JSONResponse(
                {"message": "Authentication required"},
                status_code=401,
                headers={"WWW-Authenticate": 'Basic realm="Asterisk REST Interface"'},
            )
        raw = await request.body()
        path = request.url.path.removeprefix("/ari")
        params = dict(request.query_params)
        self.requests.append(
            AriRequest(request.method, path, params, json.loads(raw) if raw else None)
        )
        for refusal in self.refusals:
            if (refusal.method, refusal.path) == (request.method, path):
                self.refusals.remove(refusal)
                return _error(refusal.status, refusal.message)
        parts = path.strip("/").split("/")
        if parts == ["channels"] and request.method == "POST":
            return self._originate(params)
        if parts[0] == "channels" and len(parts) >= 2:
            return self._channel(request.method, parts[1], parts[2:], params)
        if parts[0] == "bridges" and len(parts) >= 3 and parts[2] == "record":
            return self._record(parts[1], params)
        if parts[:2] == ["recordings", "live"] and len(parts) >= 4:
            return self._live(request.method, parts[2], parts[3])
        if parts[:2] == ["recordings", "stored"] and len(parts) == 4 and parts[3] == "file":
            return self._stored(parts[2])
        return _error(404, "Resource not found")

    def _channel(
        self, method: str, channel_id: str, rest: list[str], params: dict[str, str]
    ) -> Response:
        if channel_id not in self.channels:
            return _error(404, "Channel not found")
        action = rest[0] if rest else ""
        if not action and method == "DELETE":
            self.channels.discard(channel_id)
            return Response(status_code=204)
        if action == "mute" and params.get("direction", "both") not in {"both", "in", "out"}:
            return _error(400, "Invalid direction specified")
        if action == "dtmf" and not params.get("dtmf"):
            return _error(400, "DTMF is required")
        if action in {"hold", "moh", "mute", "dtmf"} and method in {"POST", "DELETE"}:
            return Response(status_code=204)
        return _error(404, "Resource not found")

    def _originate(self, params: dict[str, str]) -> Response:
        """``POST /channels``: Asterisk answers the channel it starts dialling (``Down``);
        the phone's ringing and answering come later as events."""
        endpoint = params.get("endpoint", "")
        if not endpoint:
            return _error(400, "Endpoint must be specified")
        if "/" not in endpoint:
            return _error(400, "Endpoint technology must be specified")
        channel_id = params.get("channelId") or f"fake-{len(self.originated) + 1}"
        if channel_id in self.channels:
            return _error(409, "Channel with given unique ID already exists")
        self.originated.append(dict(params))
        self.channels.add(channel_id)
        caller_name, _, caller_number = params.get("callerId", "").partition(" <")
        body = {
            "id": channel_id,
            "name": f"{endpoint}-{len(self.originated):08x}",
            "state": "Down",
            "protocol_id": "",
            "caller": {"name": caller_name, "number": caller_number.rstrip(">")},
            "connected": {"name": "", "number": ""},
            "accountcode": "",
            "dialplan": {
                "context": "default",
                "exten": "s",
                "priority": 1,
                "app_name": "AppDial2",
                "app_data": "(Outgoing Line)",
            },
            "creationtime": "2026-11-26T10:00:00.000+0000",
            "language": "en",
        }
        return JSONResponse(body)

    def _record(self, bridge_id: str, params: dict[str, str]) -> Response:
        if bridge_id not in self.bridges:
            return _error(404, "Bridge not found")
        name = params.get("name", "")
        if not name or not params.get("format"):
            return _error(400, "Recording name and format are required")
        if name in self.live:
            return _error(409, "A recording with the same name is currently in progress.")
        if name in self.stored and params.get("ifExists", "fail") == "fail":
            return _error(409, "A recording with the same name already exists on the system.")
        recording = LiveRecording(name, params["format"], f"bridge:{bridge_id}")
        self.live[name] = recording
        body = {
            "name": recording.name,
            "format": recording.format,
            "target_uri": recording.target_uri,
            "state": recording.state,
        }
        return JSONResponse(body, status_code=201)

    def _live(self, method: str, name: str, action: str) -> Response:
        recording = self.live.get(name)
        if recording is None:
            return _error(404, "Recording not found")
        if action == "pause" and method == "POST":
            recording.state = "paused"
            return Response(status_code=204)
        if action == "pause" and method == "DELETE":
            if recording.state != "paused":
                return _error(409, "Recording not in session")
            recording.state = "recording"
            return Response(status_code=204)
        if action == "stop" and method == "POST":
            self.finish_recording(name)
            return Response(status_code=204)
        return _error(404, "Resource not found")

    def _stored(self, name: str) -> Response:
        content = self.stored.get(name)
        if content is None:
            return _error(404, "Recording not found")
        return Response(content, media_type="audio/wav")


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"message": message}, status_code=status)


@asynccontextmanager
async def fake_ari(fake: FakeAri | None = None) -> AsyncIterator[FakeAri]:
    """The fake ARI on 127.0.0.1, a free port; ``fake.url`` is its ARI base URL."""
    fake = fake or FakeAri()
    async with LiveServer(fake.app()) as server:  # type: ignore[arg-type]
        fake.url = f"{server.http}/ari"
        yield fake
