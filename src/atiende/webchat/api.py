"""HTTP routes of the webchat channel.

- ``/api/v1/webchat/widgets``: staff administration (admins write, supervisors read);
- ``/webchat/v1/{key}/…``: the public visitor API the widget calls from any allowed page, with
  CORS for the widget's allowed origins only (see ``docs/webchat.md``);
- ``/widget.js``, ``/widget.css``: the embeddable widget; ``/demo-site``: a shop page with it.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response, status
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.routing import APIRoute
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import UploadFile

from atiende.attachments import media
from atiende.attachments.service import AttachmentTooLarge
from atiende.attachments.storage import attachment_store
from atiende.core.db import SCOPE_KEY, Scope
from atiende.core.errors import ValidationFailed
from atiende.identity.models import Role
from atiende.web import pages
from atiende.web.deps import (
    SAFE_METHODS,
    CurrentPrincipal,
    Session,
    app_state,
    bearer_of,
    require_roles,
)
from atiende.webchat import hub, service
from atiende.webchat.models import Visitor, Widget
from atiende.webchat.schemas import (
    AttachmentOut,
    EndOut,
    MessageHistory,
    PublicConfig,
    ReadIn,
    ReadOut,
    SessionCreate,
    SessionCreated,
    TypingIn,
    VisitorMessageIn,
    VisitorMessageOut,
    VisitorOut,
    WidgetCreate,
    WidgetOut,
    WidgetUpdate,
    page_origin,
)

STATIC_DIR = Path(__file__).resolve().parent.parent / "web" / "static"
PREFLIGHT_MAX_AGE = "600"
# Multipart overhead allowed on top of the widget's file size limit before parsing starts.
UPLOAD_SLACK_BYTES = 64 * 1024

router = APIRouter()

# --- administration ---------------------------------------------------------------------------

admin = APIRouter(prefix="/api/v1/webchat/widgets", tags=["webchat"])
Readers = require_roles(Role.admin, Role.supervisor)
Writers = require_roles(Role.admin)


@admin.get("", response_model=list[WidgetOut], dependencies=[Readers])
async def list_widgets(principal: CurrentPrincipal, session: Session) -> list[WidgetOut]:
    widgets = await service.list_widgets(session, principal.actor)
    return [WidgetOut.model_validate(w) for w in widgets]


@admin.post(
    "", response_model=WidgetOut, status_code=status.HTTP_201_CREATED, dependencies=[Writers]
)
async def create_widget(
    principal: CurrentPrincipal, session: Session, body: WidgetCreate
) -> WidgetOut:
    return WidgetOut.model_validate(await service.create_widget(session, principal.actor, body))


@admin.get("/{widget_id}", response_model=WidgetOut, dependencies=[Readers])
async def get_widget(
    principal: CurrentPrincipal, session: Session, widget_id: uuid.UUID
) -> WidgetOut:
    return WidgetOut.model_validate(await service.get_widget(session, principal.actor, widget_id))


@admin.patch("/{widget_id}", response_model=WidgetOut, dependencies=[Readers])
async def update_widget(
    principal: CurrentPrincipal, session: Session, widget_id: uuid.UUID, body: WidgetUpdate
) -> WidgetOut:
    # Supervisors pass the route check so another tenant's id answers 404, not 403; the
    # service refuses them the write itself.
    widget = await service.update_widget(session, principal.actor, widget_id, body)
    return WidgetOut.model_validate(widget)


@admin.post("/{widget_id}/rotate-key", response_model=WidgetOut, dependencies=[Readers])
async def rotate_key(
    principal: CurrentPrincipal, session: Session, widget_id: uuid.UUID
) -> WidgetOut:
    return WidgetOut.model_validate(await service.rotate_key(session, principal.actor, widget_id))


@admin.delete("/{widget_id}", status_code=status.HTTP_204_NO_CONTENT, dependencies=[Readers])
async def delete_widget(
    principal: CurrentPrincipal, session: Session, widget_id: uuid.UUID
) -> Response:
    await service.delete_widget(session, principal.actor, widget_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# --- the visitor API --------------------------------------------------------------------------


class VisitorRoute(APIRoute):
    """Adds the CORS headers to every answer (errors included) once the widget has accepted
    the calling origin, so the widget can read its errors too."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def with_cors(request: Request) -> Response:
            try:
                response = await handler(request)
            except Exception as error:
                response = await _error_response(request, error)
            _add_cors_headers(request, response)
            return response

        return with_cors


async def _error_response(request: Request, error: Exception) -> Response:
    """Answer an expected error with the application's own handler for it; anything else
    (a bug) goes on up as usual."""
    handlers = request.app.exception_handlers
    for kind in type(error).__mro__:
        if kind is Exception:
            break
        if kind in handlers:
            response: Response = await handlers[kind](request, error)
            return response
    raise error


def _add_cors_headers(request: Request, response: Response) -> None:
    origin = getattr(request.state, "cors_origin", None)
    response.headers.append("Vary", "Origin")
    if origin:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Expose-Headers"] = "Retry-After"


@dataclass
class WidgetCall:
    """One visitor request: its unit of work (in the widget's tenant) and the widget."""

    session: AsyncSession
    widget: Widget


async def widget_unit_of_work(request: Request, key: str) -> AsyncIterator[WidgetCall]:
    """Find the widget by its key, check the calling page's origin against it, then narrow
    the unit of work to the widget's tenant. Committed before the response is sent."""
    state = app_state(request)
    read_only = request.method in SAFE_METHODS
    async with state.db.session(Scope.system(), read_only=read_only) as session:
        widget = await service.widget_by_key(session, key)
        origin = page_origin(
            request.headers.get("origin"), request.headers.get("host"), request.url.scheme
        )
        if not service.origin_allowed(widget, origin):
            raise service.OriginNotAllowed()
        request.state.cors_origin = request.headers.get("origin")
        session.info[SCOPE_KEY] = Scope.tenant(widget.tenant_id)
        yield WidgetCall(session=session, widget=widget)


CurrentWidget = Annotated[WidgetCall, Depends(widget_unit_of_work, scope="function")]


async def current_visitor(request: Request, call: CurrentWidget) -> Visitor:
    token = bearer_of(request.headers.get("authorization"))
    return await service.visitor_by_token(call.session, call.widget, token)


CurrentVisitor = Annotated[Visitor, Depends(current_visitor)]

visitor = APIRouter(prefix="/webchat/v1/{key}", tags=["webchat visitors"], route_class=VisitorRoute)


@visitor.options("/{path:path}", include_in_schema=False)
async def preflight(call: CurrentWidget, path: str) -> Response:
    return Response(
        status_code=status.HTTP_204_NO_CONTENT,
        headers={
            "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
            "Access-Control-Allow-Headers": "Authorization, Content-Type",
            "Access-Control-Max-Age": PREFLIGHT_MAX_AGE,
        },
    )


@visitor.get("/config", response_model=PublicConfig)
async def widget_config(call: CurrentWidget, locale: str | None = None) -> PublicConfig:
    return await service.public_config(call.session, call.widget, locale)


@visitor.post("/session", response_model=SessionCreated, status_code=status.HTTP_201_CREATED)
async def start_session(request: Request, call: CurrentWidget, body: SessionCreate) -> Any:
    token, new_visitor = await service.start_session(
        call.session,
        call.widget,
        body,
        address=request.client.host if request.client else None,
        user_agent=request.headers.get("user-agent"),
    )
    profile = await service.visitor_profile(call.session, call.widget, new_visitor)
    return SessionCreated(**profile.model_dump(), token=token)


@visitor.get("/session", response_model=VisitorOut)
async def restore_session(call: CurrentWidget, current: CurrentVisitor) -> VisitorOut:
    return await service.visitor_profile(call.session, call.widget, current)


@visitor.get("/messages", response_model=MessageHistory)
async def message_history(call: CurrentWidget, current: CurrentVisitor) -> MessageHistory:
    return await service.history(call.session, call.widget, current)


@visitor.post("/messages", response_model=VisitorMessageOut, status_code=status.HTTP_201_CREATED)
async def send_message(
    call: CurrentWidget, current: CurrentVisitor, body: VisitorMessageIn, response: Response
) -> VisitorMessageOut:
    message, created = await service.post_message(call.session, call.widget, current, body)
    if not created:
        response.status_code = status.HTTP_200_OK
    return service.message_out(message)


@visitor.post("/attachments", response_model=AttachmentOut, status_code=status.HTTP_201_CREATED)
async def upload_attachment(
    request: Request, call: CurrentWidget, current: CurrentVisitor
) -> AttachmentOut:
    limit = call.widget.max_attachment_bytes
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit + UPLOAD_SLACK_BYTES:
        # Refused before the body is read: a huge upload is not spooled only to be dropped.
        raise AttachmentTooLarge(f"The file is larger than {limit} bytes.", max_bytes=limit)
    form = await request.form(max_files=1, max_fields=4)
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        raise ValidationFailed(
            "Send the file in a form field named 'file'.", code="file_missing", field="file"
        )
    return await service.store_attachment(
        call.session,
        call.widget,
        current,
        filename=upload.filename,
        content_type=upload.content_type,
        data=await upload.read(limit + 1),
        blobs=attachment_store(app_state(request).settings),
    )


@visitor.get("/attachments/{attachment_id}", response_class=Response)
async def download_attachment(
    request: Request, call: CurrentWidget, current: CurrentVisitor, attachment_id: uuid.UUID
) -> Response:
    """The widget fetches files with its bearer token and shows them from a blob URL."""
    meta, data = await service.open_attachment(
        call.session,
        call.widget,
        current,
        attachment_id,
        blobs=attachment_store(app_state(request).settings),
    )
    return Response(
        content=data,
        media_type=meta.content_type,
        headers={
            "Content-Disposition": media.content_disposition(meta.name),
            "Content-Security-Policy": "default-src 'none'; sandbox",
            "Cache-Control": "private, max-age=3600",
        },
    )


@visitor.post("/typing", status_code=status.HTTP_202_ACCEPTED)
async def visitor_typing(
    call: CurrentWidget, current: CurrentVisitor, body: TypingIn
) -> dict[str, bool]:
    sent = body.typing and await service.typing(call.session, call.widget, current)
    return {"sent": sent}


@visitor.post("/read", response_model=ReadOut)
async def visitor_read(call: CurrentWidget, current: CurrentVisitor, body: ReadIn) -> ReadOut:
    return ReadOut(marked=await service.mark_read(call.session, call.widget, current, body.up_to))


@visitor.post("/end", response_model=EndOut)
async def end_conversation(call: CurrentWidget, current: CurrentVisitor) -> EndOut:
    """The visitor ends the chat ("End chat" in the widget); repeating it changes nothing."""
    return EndOut(status=await service.end_conversation(call.session, call.widget, current))


# --- the widget's files and the demo page -----------------------------------------------------

assets = APIRouter(include_in_schema=False)
ASSET_CACHE = "public, max-age=300"


@assets.get("/widget.js")
async def widget_script() -> FileResponse:
    return FileResponse(
        STATIC_DIR / "widget.js",
        media_type="text/javascript; charset=utf-8",
        headers={"Cache-Control": ASSET_CACHE, "Cross-Origin-Resource-Policy": "cross-origin"},
    )


@assets.get("/widget.css")
async def widget_styles() -> FileResponse:
    return FileResponse(
        STATIC_DIR / "widget.css",
        media_type="text/css; charset=utf-8",
        headers={"Cache-Control": ASSET_CACHE, "Cross-Origin-Resource-Policy": "cross-origin"},
    )


@assets.get("/demo-site", response_class=HTMLResponse)
async def demo_site(request: Request, key: str | None = None) -> Response:
    """A pretend shop with the widget embedded: the demo tenant's widget, or ``?key=``."""
    state = app_state(request)
    async with state.db.session(Scope.system(), read_only=True) as session:
        widget_key = key or await service.demo_widget_key(session)
    return pages.render(
        request,
        "demo_site.html",
        None,
        status_code=200 if widget_key else 404,
        widget_key=widget_key,
    )


router.include_router(admin)
router.include_router(visitor)
router.include_router(assets)
router.include_router(hub.router)
