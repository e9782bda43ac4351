"""A local stand-in for the WhatsApp Cloud API (Meta's Graph API), and the provider's own
payloads.

``FakeGraph`` is a FastAPI app that answers like the Graph API: ``POST /{version}/{phone
number id}/messages``, ``POST /{version}/{phone number id}/media`` (multipart upload),
``GET /{version}/{media id}`` (a media's download address), the download itself, and
``GET /{version}/{waba id}/message_templates`` (paged). It checks the bearer token the way
Graph does (``401`` with error ``190``), records every request, and answers with the success
bodies below unless a test queues another answer with ``reply``.

The payload constants are the provider's examples: those marked *verbatim* are copied from the
provider's API reference, *adapted* ones change one field (said which), *constructed* ones are
built to the documented syntax.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import itertools
import json
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse

VERSION = "v25.0"
ACCESS_TOKEN = "EAAJB-test-access-token"
APP_SECRET = "test-app-secret"
VERIFY_TOKEN = "meatyhamhock"
PHONE_NUMBER_ID = "106540352242922"
WABA_ID = "102290129340398"

# --- webhooks (what Meta POSTs to us) -----------------------------------------------------

# verbatim: messages webhook reference, text example
WEBHOOK_TEXT_MESSAGE: dict[str, Any] = {
    "object": "whatsapp_business_account",
    "entry": [
        {
            "id": "102290129340398",
            "changes": [
                {
                    "value": {
                        "messaging_product": "whatsapp",
                        "metadata": {
                            "display_phone_number": "15550783881",
                            "phone_number_id": "106540352242922",
                        },
                        "contacts": [
                            {"profile": {"name": "Sheena Nelson"}, "wa_id": "16505551234"}
                        ],
                        "messages": [
                            {
                                "from": "16505551234",
                                "id": "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQz"
                                "QTRBNjU5OUFFRTAzODEwMTQ0RgA=",
                                "timestamp": "1749416383",
                                "type": "text",
                                "text": {"body": "Does it come in another color?"},
                            }
                        ],
                    },
                    "field": "messages",
                }
            ],
        }
    ],
}

# verbatim: image messages webhook reference, example message (in the common envelope)
IMAGE_MESSAGE: dict[str, Any] = {
    "from": "16505551234",
    "id": "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=",
    "timestamp": "1744344496",
    "type": "image",
    "image": {
        "caption": "Taj Mahal",
        "mime_type": "image/jpeg",
        "sha256": "SfInY0gGKTsJlUWbwxC1k+FAD0FZHvzwfpvO0zX0GUI=",
        "id": "1003383421387256",
        "url": "https://lookaside.fbsbx.com/whatsapp_business/attachments/?mid=133...",
    },
}


def _status_webhook(status: dict[str, Any]) -> dict[str, Any]:
    return {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "102290129340398",
                "changes": [
                    {
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {
                                "display_phone_number": "15550783881",
                                "phone_number_id": "106540352242922",
                            },
                            "statuses": [status],
                        },
                        "field": "messages",
                    }
                ],
            }
        ],
    }


# verbatim: status messages webhook reference, example 1
WEBHOOK_STATUS_SENT = _status_webhook(
    {
        "id": "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQUFERjg0NDEzNDdFODU3MUMxMAA=",
        "status": "sent",
        "timestamp": "1750030073",
        "recipient_id": "16505551234",
        "conversation": {
            "id": "72b14d6bd5407799e66f64d1b338e567",
            "expiration_timestamp": "1750116480",
            "origin": {"type": "marketing"},
        },
        "pricing": {
            "billable": True,
            "pricing_model": "PMP",
            "type": "regular",
            "category": "marketing",
        },
    }
)
# adapted from example 1: status delivered, two seconds later, no conversation (v24 shape)
WEBHOOK_STATUS_DELIVERED = _status_webhook(
    {
        "id": "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQUFERjg0NDEzNDdFODU3MUMxMAA=",
        "status": "delivered",
        "timestamp": "1750030075",
        "recipient_id": "16505551234",
        "pricing": {
            "billable": True,
            "pricing_model": "PMP",
            "type": "regular",
            "category": "marketing",
        },
    }
)
# adapted from example 2: status read (v24 shape, no conversation, no pricing)
WEBHOOK_STATUS_READ = _status_webhook(
    {
        "id": "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQUFERjg0NDEzNDdFODU3MUMxMAA=",
        "status": "read",
        "timestamp": "1750030080",
        "recipient_id": "16505551234",
    }
)
NOT_DELIVERED = "This message was not delivered to maintain healthy ecosystem engagement."
# verbatim: status messages webhook reference, example 3
WEBHOOK_STATUS_FAILED = _status_webhook(
    {
        "id": "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI0QUQ2MjA4NEYyRkExNjMyREUA",
        "status": "failed",
        "timestamp": "1751142888",
        "recipient_id": "16505551234",
        "errors": [
            {
                "code": 131049,
                "title": NOT_DELIVERED,
                "message": NOT_DELIVERED,
                "error_data": {
                    "details": "In order to maintain a healthy ecosystem engagement, the message "
                    "failed to be delivered."
                },
                "href": "/documentation/business-messaging/whatsapp/support/error-codes",
            }
        ],
    }
)
# adapted from example 3: error 131047, the customer service window had closed
WEBHOOK_STATUS_FAILED_131047 = _status_webhook(
    {
        "id": "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI0QUQ2MjA4NEYyRkExNjMyREUA",
        "status": "failed",
        "timestamp": "1751142888",
        "recipient_id": "16505551234",
        "errors": [
            {
                "code": 131047,
                "title": "Re-engagement message",
                "message": "Re-engagement message",
                "error_data": {
                    "details": "Message failed to send because more than 24 hours have passed "
                    "since the customer last replied to this number."
                },
                "href": "/documentation/business-messaging/whatsapp/support/error-codes",
            }
        ],
    }
)

# verbatim: the sample verification request of the webhooks guide
VERIFY_GET_QUERY = {
    "hub.mode": "subscribe",
    "hub.challenge": "1158201444",
    "hub.verify_token": "meatyhamhock",
}

# verbatim: the official SDK's signature test vector
SIGNATURE_VECTOR = {
    "app_secret": "TEST_APP_SECRET",
    "raw_body": "test",
    "x_hub_signature_256": (
        "sha256=0c61947b610d4f45e65f3d680e26027121ec2413e77598bcb6cfc6e0d9888221"
    ),
}


def sign(body: bytes, app_secret: str = APP_SECRET) -> str:
    """The ``X-Hub-Signature-256`` value Meta puts on a webhook."""
    return "sha256=" + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()


# --- Graph API requests and answers -------------------------------------------------------

# verbatim: text messages, example request (``preview_url`` as the caller chooses)
SEND_TEXT_REQUEST: dict[str, Any] = {
    "messaging_product": "whatsapp",
    "recipient_type": "individual",
    "to": "+16505551234",
    "type": "text",
    "text": {
        "preview_url": True,
        "body": "As requested, here's the link to our latest product: "
        "https://www.meta.com/quest/quest-3/",
    },
}
# verbatim: text messages, example response
SEND_TEXT_RESPONSE: dict[str, Any] = {
    "messaging_product": "whatsapp",
    "contacts": [{"input": "+16505551234", "wa_id": "16505551234"}],
    "messages": [{"id": "wamid.HBgLMTY0NjcwNDM1OTUVAgARGBI1RjQyNUE3NEYxMzAzMzQ5MkEA"}],
}
# constructed: the response syntax with message_status (template pacing)
SEND_TEMPLATE_RESPONSE_PACED: dict[str, Any] = {
    "messaging_product": "whatsapp",
    "contacts": [{"input": "+16505551234", "wa_id": "16505551234"}],
    "messages": [
        {
            "id": "wamid.HBgLMTY0NjcwNDM1OTUVAgARGBI4MjZGRDA0OUE2OTQ3RkEyMzcA",
            "message_status": "accepted",
        }
    ],
}
# adapted: the get-started hello_world body, without the business-scoped 'recipient' field
SEND_TEMPLATE_HELLO_WORLD_REQUEST: dict[str, Any] = {
    "messaging_product": "whatsapp",
    "to": "+16505551234",
    "type": "template",
    "template": {"name": "hello_world", "language": {"code": "en_US"}},
}
# adapted: the official SDK's template example placed in the send envelope
SEND_TEMPLATE_WITH_PARAMS_REQUEST: dict[str, Any] = {
    "messaging_product": "whatsapp",
    "recipient_type": "individual",
    "to": "+16505551234",
    "type": "template",
    "template": {
        "name": "Subscribe",
        "language": {"policy": "deterministic", "code": "en_US"},
        "components": [{"type": "body", "parameters": [{"type": "text", "text": "newsletter"}]}],
    },
}

# constructed: the error syntax with code 131047
ERROR_131047: dict[str, Any] = {
    "error": {
        "message": "(#131047) Re-engagement message",
        "type": "OAuthException",
        "code": 131047,
        "error_data": {
            "messaging_product": "whatsapp",
            "details": "Message failed to send because more than 24 hours have passed since "
            "the customer last replied to this number.",
        },
        "fbtrace_id": "AbCdEfGhIjK",
    }
}
# verbatim: an error example of the WhatsApp Payments documentation
ERROR_131005: dict[str, Any] = {
    "error": {
        "message": "(#131005) Access denied",
        "type": "OAuthException",
        "code": 131005,
        "error_data": {
            "messaging_product": "whatsapp",
            "details": "WhatsApp Payments Terms of Service acceptance pending for this WhatsApp "
            "Business Account.\nPlease use the following link to accept terms of service before "
            "using Business APIs: https://fb.me/12345",
        },
    }
}
# verbatim: the Graph API error-handling guide's example (190: the access token expired)
ERROR_GRAPH_GENERIC: dict[str, Any] = {
    "error": {
        "message": "Message describing the error",
        "type": "OAuthException",
        "code": 190,
        "error_subcode": 460,
        "error_user_title": "A title",
        "error_user_msg": "A message",
        "fbtrace_id": "EJplcsCHuLu",
    }
}


def graph_error(code: int, message: str, details: str | None = None) -> dict[str, Any]:
    """An error body in the documented syntax."""
    error: dict[str, Any] = {"message": message, "type": "OAuthException", "code": code}
    if details is not None:
        error["error_data"] = {"messaging_product": "whatsapp", "details": details}
    error["fbtrace_id"] = "Az8or2yhqkZfEZ-_4Qn_Bam"
    return {"error": error}


# --- the fake server ----------------------------------------------------------------------


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    form: dict[str, Any] = field(default_factory=dict)

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Reply:
    status: int
    body: Any = None  # JSON-able, or raw bytes
    headers: dict[str, str] = field(default_factory=dict)

    def response(self) -> Response:
        if isinstance(self.body, bytes):
            return Response(self.body, status_code=self.status, headers=self.headers)
        return JSONResponse(self.body, status_code=self.status, headers=self.headers)


@dataclass
class StoredMedia:
    content: bytes
    mime_type: str
    declared_size: int | None  # what GET /{media id} reports; None leaves file_size out
    chunked: bool = False  # stream without Content-Length


class FakeGraph:
    """The Graph API of one Meta app: a phone number, a WABA and their media and templates."""

    def __init__(self, access_token: str = ACCESS_TOKEN) -> None:
        self.access_token = access_token
        self.base = ""  # the API base URL tests configure, set once the server runs
        self.requests: list[Recorded] = []
        self.queued: dict[str, deque[Reply]] = {}
        self.media: dict[str, StoredMedia] = {}
        self.template_pages: list[list[dict[str, Any]]] = []
        self._ids = itertools.count(1)
        self.app = self._build()

    # what tests call

    def reply(self, route: str, status: int, body: Any = None, **headers: str) -> None:
        """Answer the next call of ``route`` (messages, media, media_info, download,
        templates) with this instead of success."""
        self.queued.setdefault(route, deque()).append(Reply(status, body, headers))

    def add_media(
        self,
        media_id: str,
        content: bytes,
        mime_type: str,
        *,
        declared_size: int | None = -1,
        chunked: bool = False,
    ) -> None:
        size = len(content) if declared_size == -1 else declared_size
        self.media[media_id] = StoredMedia(content, mime_type, size, chunked)

    def calls(self, route_suffix: str) -> list[Recorded]:
        return [r for r in self.requests if r.path.endswith(route_suffix)]

    # the app

    def _build(self) -> FastAPI:
        app = FastAPI()

        @app.post("/{version}/{phone_number_id}/messages")
        async def messages(request: Request, phone_number_id: str) -> Response:
            await self._record(request)
            if (refusal := self._refuse(request, "messages")) is not None:
                return refusal
            body = json.loads(self.requests[-1].body)
            answer = copy.deepcopy(SEND_TEXT_RESPONSE)
            answer["contacts"][0]["input"] = body.get("to")
            answer["messages"][0]["id"] = f"wamid.fake{next(self._ids)}"
            return JSONResponse(answer)

        @app.post("/{version}/{phone_number_id}/media")
        async def upload(request: Request, phone_number_id: str) -> Response:
            await self._record(request)
            form = await request.form()
            recorded: dict[str, Any] = {}
            for key, value in form.multi_items():
                if isinstance(value, str):
                    recorded[key] = value
                else:
                    recorded[key] = {
                        "filename": value.filename,
                        "content_type": value.content_type,
                        "content": await value.read(),
                    }
            self.requests[-1].form = recorded
            if (refusal := self._refuse(request, "media")) is not None:
                return refusal
            return JSONResponse({"id": f"{next(self._ids) + 9000000000000000}"})

        @app.get("/{version}/{waba_id}/message_templates")
        async def templates(request: Request, waba_id: str) -> Response:
            await self._record(request)
            if (refusal := self._refuse(request, "templates")) is not None:
                return refusal
            index = int(request.query_params.get("after", "page0").removeprefix("page"))
            page: dict[str, Any] = {"data": self.template_pages[index]}
            if index + 1 < len(self.template_pages):
                page["paging"] = {
                    "cursors": {"before": f"page{index}", "after": f"page{index + 1}"},
                    "next": f"{request.url.replace(query=f'after=page{index + 1}')}",
                }
            else:
                page["paging"] = {"cursors": {"before": f"page{index}", "after": "end"}}
            return JSONResponse(page)

        @app.get("/download/{media_id}")
        async def download(request: Request, media_id: str) -> Response:
            await self._record(request)
            if (refusal := self._refuse(request, "download")) is not None:
                return refusal
            stored = self.media[media_id]
            if stored.chunked:

                async def chunks() -> AsyncIterator[bytes]:
                    for start in range(0, len(stored.content), 1024):
                        yield stored.content[start : start + 1024]

                return StreamingResponse(chunks(), media_type=stored.mime_type)
            return Response(stored.content, media_type=stored.mime_type)

        @app.get("/{version}/{media_id}")
        async def media_info(request: Request, media_id: str) -> Response:
            await self._record(request)
            if (refusal := self._refuse(request, "media_info")) is not None:
                return refusal
            stored = self.media.get(media_id)
            if stored is None:
                return JSONResponse(
                    graph_error(
                        100,
                        f"Unsupported get request. Object with ID '{media_id}' does not exist, "
                        "cannot be loaded due to missing permissions, or does not support "
                        "this operation.",
                    ),
                    status_code=400,
                )
            info: dict[str, Any] = {
                "messaging_product": "whatsapp",
                "url": f"{str(request.base_url).rstrip('/')}/download/{media_id}",
                "mime_type": stored.mime_type,
                "sha256": hashlib.sha256(stored.content).hexdigest(),
                "id": media_id,
            }
            if stored.declared_size is not None:
                info["file_size"] = str(stored.declared_size)
            return JSONResponse(info)

        return app

    async def _record(self, request: Request) -> None:
        self.requests.append(
            Recorded(
                method=request.method,
                path=request.url.path,
                query=dict(request.query_params),
                headers={k.lower(): v for k, v in request.headers.items()},
                body=await request.body(),
            )
        )

    def _refuse(self, request: Request, route: str) -> Response | None:
        queued = self.queued.get(route)
        if queued:
            return queued.popleft().response()
        if request.headers.get("authorization") != f"Bearer {self.access_token}":
            return JSONResponse(
                graph_error(190, "Error validating access token: Session has expired."),
                status_code=401,
            )
        return None
