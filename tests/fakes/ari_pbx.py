"""The local ARI of ``fakes.ari`` with what administering a PBX asks of it: the server's
version, the Stasis applications a client holds, the PJSIP endpoints and their registration
state, deleting stored recordings, and the events WebSocket.

Answers as Asterisk 22 gives them (captured on a real one): ``GET /asterisk/info`` with
``system.version``; ``GET /applications/{app}`` 404 ``Application not found`` unless a
client holds the application; ``GET /endpoints/PJSIP`` a list of ``{technology, resource,
state, channel_ids}``; ``GET /endpoints/PJSIP/{n}`` one of them or 404 ``Endpoint not
found``; ``DELETE /recordings/stored/{name}`` 204 or 404 ``Recording not found``; a
WebSocket with the wrong password refused 401 with ``{"message":"Authentication
required"}``. Holding the WebSocket open registers its application, as Asterisk does.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from factories import LiveServer
from fakes.ari import AriRequest, FakeAri

VERSION = "22.10.1+dfsg+~cs6.17.60671434-1"  # the real capture's
ENTITY_ID = "02:fc:00:00:00:01"


@dataclass
class FakePbx(FakeAri):
    version: str = VERSION
    # Stasis applications a client holds (GET /applications/{app} answers 200 for these).
    applications: set[str] = field(default_factory=set)
    # PJSIP endpoints by resource (the extension number): online | offline | unknown.
    endpoints: dict[str, str] = field(default_factory=dict)
    # Refuse the events WebSocket with this status and body (a proxy that does not upgrade).
    events_refusal: tuple[int, str] | None = None
    events_opened: int = 0  # WebSocket connections accepted so far

    def app(self) -> Starlette:
        methods = ["GET", "POST", "PUT", "DELETE"]
        return Starlette(
            routes=[
                WebSocketRoute("/ari/events", self._events),
                Route("/ari/{rest:path}", self._admin, methods=methods),
            ]
        )

    async def _admin(self, request: Request) -> Response:  # noqa: PLR0911 - one per route
        path = request.url.path.removeprefix("/ari")
        parts = path.strip("/").split("/")
        method = request.method
        ours = (
            (method == "GET" and parts == ["asterisk", "info"])
            or (method == "GET" and parts[0] == "applications" and len(parts) == 2)
            or (method == "GET" and parts[0] == "endpoints" and len(parts) in {2, 3})
            or (method == "DELETE" and parts[:2] == ["recordings", "stored"] and len(parts) == 3)
        )
        if not ours:
            return await self._handle(request)
        if not self._authorised(request):
            return JSONResponse(
                {"message": "Authentication required"},
                status_code=401,
                headers={"WWW-Authenticate": 'Basic realm="Asterisk REST Interface"'},
            )
        self.requests.append(AriRequest(method, path, dict(request.query_params)))
        for refusal in self.refusals:
            if (refusal.method, refusal.path) == (method, path):
                self.refusals.remove(refusal)
                return _error(refusal.status, refusal.message)
        if parts[0] == "asterisk":
            return JSONResponse(
                {
                    "build": {"os": "Linux", "kernel": "unknown", "machine": "unknown"},
                    "system": {"version": self.version, "entity_id": ENTITY_ID},
                    "config": {"name": "", "default_language": "en"},
                    "status": {"startup_time": "2026-11-25T18:48:20.093+0000"},
                }
            )
        if parts[0] == "applications":
            if parts[1] not in self.applications:
                return _error(404, "Application not found")
            return JSONResponse(
                {
                    "name": parts[1],
                    "channel_ids": [],
                    "bridge_ids": [],
                    "endpoint_ids": [],
                    "device_names": [],
                    "events_allowed": [],
                    "events_disallowed": [],
                }
            )
        if parts[0] == "endpoints":
            return self._endpoints(parts[1:])
        name = parts[2]
        if self.stored.pop(name, None) is None:
            return _error(404, "Recording not found")
        return Response(status_code=204)

    def _endpoints(self, parts: list[str]) -> Response:
        if parts[0].upper() != "PJSIP":
            return _error(404, f"No Endpoints found - invalid tech {parts[0]}")
        listed = [_endpoint(resource, state) for resource, state in sorted(self.endpoints.items())]
        if len(parts) == 1:
            return JSONResponse(listed)
        state = self.endpoints.get(parts[1])
        if state is None:
            return _error(404, "Endpoint not found")
        return JSONResponse(_endpoint(parts[1], state))

    async def _events(self, socket: WebSocket) -> None:
        expected = self._expected_authorization()
        if socket.headers.get("authorization") != expected:
            await socket.send_denial_response(
                JSONResponse(
                    {"message": "Authentication required"},
                    401,
                    headers={"WWW-Authenticate": 'Basic realm="Asterisk REST Interface"'},
                )
            )
            return
        if self.events_refusal is not None:
            status, body = self.events_refusal
            await socket.send_denial_response(Response(body, status, media_type="text/html"))
            return
        app = socket.query_params.get("app", "")
        await socket.accept()
        self.events_opened += 1
        self.applications.add(app)
        try:
            while True:
                await socket.receive_text()
        except WebSocketDisconnect:
            pass
        finally:
            self.applications.discard(app)

    def _expected_authorization(self) -> str:
        credentials = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(credentials).decode()


def _endpoint(resource: str, state: str) -> dict[str, object]:
    return {"technology": "PJSIP", "resource": resource, "state": state, "channel_ids": []}


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"message": message}, status_code=status)


@asynccontextmanager
async def fake_pbx(fake: FakePbx | None = None) -> AsyncIterator[FakePbx]:
    """The fake PBX on 127.0.0.1, a free port; ``fake.url`` is its ARI base URL."""
    fake = fake or FakePbx()
    async with LiveServer(fake.app()) as server:  # type: ignore[arg-type]
        fake.url = f"{server.http}/ari"
        yield fake
