"""HTTP routes for attachments: staff upload a file, any user of the tenant downloads it."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import APIRouter, File, Request, Response, UploadFile, status
from fastapi.routing import APIRoute

from atiende.attachments import media, service
from atiende.attachments.schemas import AttachmentOut
from atiende.attachments.storage import attachment_store
from atiende.identity.models import Role
from atiende.web.deps import Principal, Session, app_state, require_roles

Staff = require_roles(Role.admin, Role.supervisor, Role.agent)
# Room for the multipart framing and the form's other fields around the file itself.
MULTIPART_OVERHEAD = 64 * 1024


class _BoundedUploadRoute(APIRoute):
    """Refuses a body whose declared length is already too large before it is read, so a
    huge upload is not spooled to disk only to be refused afterwards."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def bounded(request: Request) -> Response:
            declared = request.headers.get("content-length", "")
            limit = service.DEFAULT_MAX_BYTES + MULTIPART_OVERHEAD
            if request.method == "POST" and declared.isdigit() and int(declared) > limit:
                raise service.AttachmentTooLarge(
                    f"The file is larger than {service.DEFAULT_MAX_BYTES} bytes.",
                    max_bytes=service.DEFAULT_MAX_BYTES,
                )
            return await handler(request)

        return bounded


router = APIRouter(prefix="/api/v1", tags=["attachments"], route_class=_BoundedUploadRoute)


@router.post("/attachments", response_model=AttachmentOut, status_code=status.HTTP_201_CREATED)
async def upload(
    request: Request,
    session: Session,
    file: UploadFile = File(description="The file; at most 10 MiB."),
    principal: Principal = Staff,
) -> AttachmentOut:
    data = await file.read(service.DEFAULT_MAX_BYTES + 1)
    return await service.store(
        session,
        data,
        file.filename,
        file.content_type,
        blobs=attachment_store(app_state(request).settings),
        uploader_kind="user",
        uploader_id=principal.user_id,
    )


@router.get(
    "/attachments/{attachment_id}",
    response_class=Response,
    responses={200: {"content": {"application/octet-stream": {}}}},
)
async def download(
    request: Request, session: Session, attachment_id: uuid.UUID, principal: Principal = Staff
) -> Response:
    attachment, data = await service.open(
        session, attachment_id, blobs=attachment_store(app_state(request).settings)
    )
    return Response(
        content=data,
        media_type=attachment.content_type,
        headers={
            "Content-Disposition": media.content_disposition(attachment.name),
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "default-src 'none'; sandbox",
            "Cache-Control": "private, max-age=3600",
        },
    )


@router.get("/attachments/{attachment_id}/meta", response_model=AttachmentOut)
async def metadata(
    session: Session, attachment_id: uuid.UUID, principal: Principal = Staff
) -> AttachmentOut:
    return await service.get(session, attachment_id)
