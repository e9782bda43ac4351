"""HTTP routes of the messaging channels.

- ``/api/v1/channels``: administrators configure accounts (secrets are write-only);
- ``/webhooks/{kind}/{webhook_key}``: the providers' webhooks (public; each adapter checks
  the provider's signature or secret before anything is stored).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import parse_qsl

import httpx
from fastapi import APIRouter, Query, Request, Response, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from fastapi.routing import APIRoute

from atiende.channels import service
from atiende.channels.adapters.twilio_sms import TWIML_CONTENT_TYPE, TWIML_EMPTY_RESPONSE
from atiende.channels.base import ChannelKind, RawRequest
from atiende.channels.models import InboundStatus
from atiende.channels.service import AccountCreate, AccountOut, AccountUpdate
from atiende.web.deps import CurrentPrincipal, PublicSession, Session, app_state


class ProviderWebhookRoute(APIRoute):
    """A webhook route that declares no dependencies is called directly with the request and
    its path parameters (``kind`` checked here): FastAPI's per-request parameter solving and
    response building cost a webhook about as much as storing it (docs/benchmarks.md). The
    OpenAPI document still comes from the endpoint's signature. Routes with dependencies get
    FastAPI's handler as usual."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        solved = self.dependant
        injected = (solved.dependencies, solved.query_params, solved.header_params)
        if self.dependencies or any(injected) or solved.cookie_params or solved.body_params:
            return super().get_route_handler()
        endpoint = self.endpoint

        async def handle(request: Request) -> Response:
            params = dict(request.path_params)
            if "kind" in params:
                params["kind"] = _channel_kind(params["kind"])
            answer: Response = await endpoint(request, **params)
            return answer

        return handle


def _channel_kind(value: str) -> ChannelKind:
    """The ``{kind}`` of a webhook URL; an unknown one is the 422 FastAPI would answer."""
    try:
        return ChannelKind(value)
    except ValueError:
        names = [f"'{kind.value}'" for kind in ChannelKind]
        expected = ", ".join(names[:-1]) + " or " + names[-1]
        raise RequestValidationError(
            [
                {
                    "type": "enum",
                    "loc": ("path", "kind"),
                    "msg": f"Input should be {expected}",
                    "input": value,
                }
            ]
        ) from None


admin = APIRouter(prefix="/api/v1/channels", tags=["channels"])
webhooks = APIRouter(
    prefix="/webhooks", tags=["channel webhooks"], route_class=ProviderWebhookRoute
)


@admin.get("", response_model=list[AccountOut])
async def list_accounts(
    request: Request, principal: CurrentPrincipal, session: Session
) -> list[AccountOut]:
    settings = app_state(request).settings
    rows = await service.list_accounts(session, principal.actor)
    return [service.account_out(a, settings) for a in rows]


@admin.post("", response_model=AccountOut, status_code=status.HTTP_201_CREATED)
async def create_account(
    request: Request, principal: CurrentPrincipal, session: Session, body: AccountCreate
) -> AccountOut:
    """Connect a WhatsApp number, a Telegram bot, an SMS number or an API endpoint. The
    answer has the `webhook_url` to give the provider; secrets are never shown again."""
    settings = app_state(request).settings
    account = await service.create_account(session, principal.actor, body, settings=settings)
    return service.account_out(account, settings)


@admin.get("/{account_id}", response_model=AccountOut)
async def get_account(
    request: Request, principal: CurrentPrincipal, session: Session, account_id: uuid.UUID
) -> AccountOut:
    account = await service.get_account(session, principal.actor, account_id)
    return service.account_out(account, app_state(request).settings)


@admin.patch("/{account_id}", response_model=AccountOut)
async def update_account(
    request: Request,
    principal: CurrentPrincipal,
    session: Session,
    account_id: uuid.UUID,
    body: AccountUpdate,
) -> AccountOut:
    settings = app_state(request).settings
    account = await service.update_account(
        session, principal.actor, account_id, body, settings=settings
    )
    return service.account_out(account, settings)


@admin.delete("/{account_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_account(
    principal: CurrentPrincipal, session: Session, account_id: uuid.UUID
) -> Response:
    await service.delete_account(session, principal.actor, account_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@admin.get("/{account_id}/events")
async def list_events(
    principal: CurrentPrincipal,
    session: Session,
    account_id: uuid.UUID,
    status_filter: InboundStatus | None = Query(default=None, alias="status"),
) -> list[dict[str, Any]]:
    """The latest webhooks received (rejected ones are kept here for inspection)."""
    rows = await service.list_events(session, principal.actor, account_id, status=status_filter)
    return [
        {
            "id": str(e.id),
            "provider_event_id": e.provider_event_id,
            "status": e.status.value,
            "error": e.error,
            "received_at": e.received_at.isoformat(),
            "processed_at": e.processed_at.isoformat() if e.processed_at else None,
            "body": e.body[:20000],
        }
        for e in rows
    ]


# --- provider webhooks --------------------------------------------------------------------


async def _raw(request: Request, public_url: str) -> RawRequest:
    """The request as the provider sent it, read from the ASGI scope directly: ``url`` is
    the public URL it called (what Starlette's ``request.url`` gives for the path and query,
    on the configured host), header names are lower-case as ASGI has them."""
    scope = request.scope
    body = await request.body()
    path = scope["path"].replace("?", "%3F").replace("#", "%23").replace("\\", "%5C")
    url = public_url.rstrip("/") + path
    query: dict[str, str] = {}
    if query_string := scope.get("query_string", b"").decode():
        url += "?" + query_string
        query = dict(parse_qsl(query_string, keep_blank_values=True))
    headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]}
    form: dict[str, str] = {}
    if "application/x-www-form-urlencoded" in headers.get("content-type", ""):
        form = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    return RawRequest(
        method=scope["method"], url=url, headers=headers, query=query, body=body, form=form
    )


def _api_channel_body() -> dict[str, Any]:
    """The API channel's request body for the OpenAPI document (the route reads the raw
    bytes itself, to check the token before anything is parsed)."""
    from atiende.channels.adapters.generic_api import ApiInboundMessage, ApiStatusReport

    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "oneOf": [
                            ApiInboundMessage.model_json_schema(),
                            ApiStatusReport.model_json_schema(),
                        ]
                    },
                    "examples": {
                        "message": {
                            "summary": "A customer's message",
                            "value": _example(ApiInboundMessage),
                        },
                        "status": {
                            "summary": "A delivery status of an agent's message",
                            "value": _example(ApiStatusReport),
                        },
                    },
                }
            },
        },
        "parameters": [
            {
                "name": "Authorization",
                "in": "header",
                "required": True,
                "schema": {"type": "string", "example": "Bearer <inbound_token>"},
            }
        ],
    }


def _example(model: Any) -> Any:
    examples = (model.model_config.get("json_schema_extra") or {}).get("examples") or [{}]
    return examples[0]


@webhooks.post(
    "/api/{webhook_key}",
    summary="API channel: a customer's message or a delivery status",
    openapi_extra=_api_channel_body(),
)
async def api_channel_webhook(request: Request, webhook_key: str) -> Response:
    """For channels Atiende has no adapter for: the customer's system posts its customers'
    messages here with `Authorization: Bearer <inbound_token>` (see docs/channels/api.md).
    A redelivery (same `message_id`) is acknowledged and ignored."""
    return await webhook(request, ChannelKind.api, webhook_key)


@webhooks.post("/{kind}/{webhook_key}")
async def webhook(request: Request, kind: ChannelKind, webhook_key: str) -> Response:
    """Inbound messages and statuses. Stored before the 200; a redelivery is acknowledged
    and ignored; a bad signature is a 401 and nothing is kept; a payload this channel
    cannot read is kept for inspection and answered with a 400."""
    state = app_state(request)  # intake writes in a unit of work of its own (group commit)
    raw = await _raw(request, state.settings.public_url)
    intake = await service.receive(state.db, kind, webhook_key, raw, settings=state.settings)
    if intake.error is not None and intake.outcome == "rejected":
        return JSONResponse(intake.error.to_body(), status_code=intake.error.status_code)
    if kind is ChannelKind.sms:  # Twilio reads the answer as TwiML: an empty one
        return Response(TWIML_EMPTY_RESPONSE, media_type=TWIML_CONTENT_TYPE)
    return Response(_OUTCOME_BODIES[intake.outcome], media_type="application/json")


# What JSONResponse({"status": outcome}) renders, rendered once.
_OUTCOME_BODIES = {
    outcome: JSONResponse({"status": outcome}).body
    for outcome in ("stored", "duplicate", "rejected")
}


# After the POSTs, which providers send far more often: routes are matched in order.
@webhooks.get("/{kind}/{webhook_key}", response_class=PlainTextResponse)
async def webhook_handshake(
    request: Request, session: PublicSession, kind: ChannelKind, webhook_key: str
) -> Response:
    """The provider's verification request (WhatsApp: echo `hub.challenge`)."""
    settings = app_state(request).settings
    answer = await service.handshake(
        session, kind, webhook_key, await _raw(request, settings.public_url), settings=settings
    )
    if answer is None:
        return Response(status_code=status.HTTP_405_METHOD_NOT_ALLOWED)
    return PlainTextResponse(answer)


@admin.post("/{account_id}/actions/{action}")
async def run_action(
    request: Request,
    principal: CurrentPrincipal,
    session: Session,
    account_id: uuid.UUID,
    action: str,
) -> dict[str, Any]:
    """`set_webhook` (Telegram) registers the webhook URL and secret token with the bot;
    `sync_templates` (WhatsApp) fetches the approved message templates."""
    async with httpx.AsyncClient(timeout=15.0) as http:
        return await service.run_action(
            session,
            principal.actor,
            account_id,
            action,
            settings=app_state(request).settings,
            http=http,
        )


interactions = APIRouter(prefix="/api/v1/interactions", tags=["conversations"])


@interactions.post("/{interaction_id}/template", status_code=status.HTTP_201_CREATED)
async def send_template(
    principal: CurrentPrincipal,
    session: Session,
    interaction_id: uuid.UUID,
    body: service.TemplateSend,
) -> dict[str, Any]:
    """Send an approved WhatsApp template (the only message allowed after 24 hours without
    a word from the customer)."""
    message, created = await service.send_template(session, principal.actor, interaction_id, body)
    return {
        "id": str(message.id),
        "body": message.body,
        "status": message.status.value,
        "created": created,
    }


@interactions.get("/{interaction_id}/templates", response_model=list[service.TemplateOut])
async def list_templates(
    principal: CurrentPrincipal, session: Session, interaction_id: uuid.UUID
) -> list[service.TemplateOut]:
    """The approved WhatsApp templates the interaction's channel can send, for anyone who
    may see the interaction (agents cannot read the channel's configuration)."""
    return await service.approved_templates(session, principal.actor, interaction_id)


routers = (admin, webhooks, interactions)
