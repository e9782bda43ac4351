"""A local Twilio REST API: the Messages resource and message media, answering the way Twilio
does and recording every request.

``POST /2010-04-01/Accounts/{sid}/Messages.json`` checks HTTP basic auth and answers the
provider's documented ``201`` body (with a fresh ``sid`` each time) unless a test queued other
answers; errors use Twilio's error body (``code``, ``message``, ``more_info``, ``status``).
Media URLs answer with a redirect to a storage URL, as Twilio does; ``storage_base`` can point
that redirect at another origin.
"""

from __future__ import annotations

import base64
import copy
import itertools
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response, StreamingResponse

from factories import LiveServer

ACCOUNT_SID = "ACaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
AUTH_TOKEN = "test_auth_token_0123456789abcdef"

#: The Messages resource's answer to a create, as the provider documents it.
CREATE_RESPONSE_201: dict[str, Any] = {
    "account_sid": ACCOUNT_SID,
    "api_version": "2010-04-01",
    "body": "Hello! 👍",
    "date_created": "Thu, 30 Jul 2015 20:12:31 +0000",
    "date_sent": "Thu, 30 Jul 2015 20:12:33 +0000",
    "date_updated": "Thu, 30 Jul 2015 20:12:33 +0000",
    "direction": "outbound-api",
    "error_code": None,
    "error_message": None,
    "from": "+14155552345",
    "messaging_service_sid": "MGaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "num_media": "0",
    "num_segments": "1",
    "price": None,
    "price_unit": None,
    "sid": "SMaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "status": "sent",
    "subresource_uris": {
        "media": "/2010-04-01/Accounts/ACaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/Messages/"
        "SMaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/Media.json"
    },
    "tags": {"campaign_name": "Spring Sale 2022", "message_type": "cart_abandoned"},
    "to": "+14155552345",
    "uri": "/2010-04-01/Accounts/ACaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/Messages/"
    "SMaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.json",
}


def twilio_error(code: int, message: str, status: int) -> dict[str, Any]:
    """Twilio's error body."""
    return {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }


ERROR_21211 = twilio_error(21211, "The 'To' number 5551234567 is not a valid phone number.", 400)
ERROR_21614 = twilio_error(21614, "'To' number is not a valid mobile number", 400)
ERROR_21610 = twilio_error(21610, "Attempt to send to unsubscribed recipient", 400)
ERROR_21408 = twilio_error(
    21408, "Permission to send an SMS has not been enabled for the region indicated", 400
)
ERROR_20429 = twilio_error(20429, "Too Many Requests", 429)
ERROR_20003 = twilio_error(20003, "Authenticate", 401)
ERROR_20500 = twilio_error(20500, "An internal server error has occurred", 500)


@dataclass
class Answer:
    status: int
    body: dict[str, Any] | None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    form: list[tuple[str, str]]


@dataclass
class StoredMedia:
    content_type: str
    content: bytes
    declare_length: bool = True  # False: streamed without a Content-Length


@dataclass
class FakeTwilio:
    account_sid: str = ACCOUNT_SID
    auth_token: str = AUTH_TOKEN
    requests: list[Recorded] = field(default_factory=list)
    answers: list[Answer] = field(default_factory=list)
    media: dict[str, StoredMedia] = field(default_factory=dict)
    storage_base: str = ""  # where media redirects point; empty: this server
    _sids: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def _authorised(self, request: Request) -> bool:
        expected = base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        return request.headers.get("authorization") == f"Basic {expected}"

    def build_app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/2010-04-01/Accounts/{sid}/Messages.json")
        async def create_message(sid: str, request: Request) -> Response:
            form = await request.form()
            self.requests.append(
                Recorded(
                    "POST",
                    request.url.path,
                    dict(request.headers),
                    [(name, str(value)) for name, value in form.multi_items()],
                )
            )
            if sid != self.account_sid or not self._authorised(request):
                return JSONResponse(ERROR_20003, status_code=401)
            if self.answers:
                answer = self.answers.pop(0)
                return JSONResponse(answer.body, status_code=answer.status, headers=answer.headers)
            body = copy.deepcopy(CREATE_RESPONSE_201)
            body["sid"] = f"SM{next(self._sids):032x}"
            body["to"], body["body"] = form.get("To"), form.get("Body")
            return JSONResponse(body, status_code=201)

        @app.get("/2010-04-01/Accounts/{sid}/Messages/{message_sid}/Media/{media_sid}")
        async def media(sid: str, message_sid: str, media_sid: str, request: Request) -> Response:
            self.requests.append(Recorded("GET", request.url.path, dict(request.headers), []))
            if sid != self.account_sid or not self._authorised(request):
                return JSONResponse(ERROR_20003, status_code=401)
            if media_sid not in self.media:
                return JSONResponse(
                    twilio_error(20404, "The requested resource was not found", 404),
                    status_code=404,
                )
            base = self.storage_base or str(request.base_url).rstrip("/")
            return RedirectResponse(f"{base}/storage/{media_sid}", status_code=307)

        @app.get("/storage/{media_sid}")
        async def storage(media_sid: str, request: Request) -> Response:
            self.requests.append(Recorded("GET", request.url.path, dict(request.headers), []))
            stored = self.media[media_sid]
            if stored.declare_length:
                return Response(stored.content, media_type=stored.content_type)

            async def chunks() -> AsyncIterator[bytes]:
                for start in range(0, len(stored.content), 4096):
                    yield stored.content[start : start + 4096]

            return StreamingResponse(chunks(), media_type=stored.content_type)

        return app


@asynccontextmanager
async def running_twilio() -> AsyncIterator[tuple[FakeTwilio, LiveServer]]:
    fake = FakeTwilio()
    async with LiveServer(fake.build_app()) as server:
        yield fake, server
