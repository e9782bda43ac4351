"""HTTP routes of the helpdesk: ``/api/v1/helpdesk/…`` for customers (their account's
cases) and support staff (every case, the queue by SLA, compliance)."""

from __future__ import annotations

import uuid
from datetime import datetime

from fastapi import APIRouter, File, Query, Request, Response, UploadFile, status

from atiende.attachments import media
from atiende.attachments.storage import attachment_store
from atiende.core.db import now
from atiende.helpdesk import service
from atiende.helpdesk.models import SupportCase
from atiende.helpdesk.schemas import (
    AssignIn,
    CaseDetailOut,
    CaseIn,
    CaseOut,
    CloseIn,
    ComplianceOut,
    EventOut,
    FileOut,
    MessageIn,
    MessageOut,
    SeverityIn,
    StateIn,
)
from atiende.web.deps import CurrentPrincipal, Session, app_state

router = APIRouter(prefix="/api/v1/helpdesk", tags=["helpdesk"])


def case_out(request: Request, case: SupportCase, at: datetime) -> CaseOut:
    fraction = app_state(request).settings.support_at_risk_fraction
    return CaseOut(
        id=case.id,
        number=case.number,
        account_id=case.account_id,
        title=case.title,
        description=case.description,
        product_area=case.product_area,
        severity=case.severity,
        plan=case.plan,
        state=case.state,
        opener_email=case.opener_email,
        assignee_id=case.assignee_id,
        opened_at=case.opened_at,
        first_response_at=case.first_response_at,
        closed_at=case.closed_at,
        close_reason=case.close_reason,
        excluded_category=case.excluded_category,
        sla=service.sla_of(case, at, at_risk_fraction=fraction),
    )


async def _detail(
    request: Request, principal: CurrentPrincipal, session: Session, case: SupportCase
) -> CaseDetailOut:
    messages, files, events = await service.thread(session, principal.actor, case)
    base = case_out(request, case, now(session))
    return CaseDetailOut(
        **base.model_dump(),
        messages=[MessageOut.model_validate(m) for m in messages],
        files=[FileOut.model_validate(f) for f in files],
        events=[EventOut.model_validate(e) for e in events],
    )


@router.post("/cases", response_model=CaseOut, status_code=status.HTTP_201_CREATED)
async def open_case(
    request: Request, principal: CurrentPrincipal, session: Session, body: CaseIn
) -> CaseOut:
    """Open a case (customers of an account with an active subscription). The answer
    carries the first-response due time."""
    case = await service.open_case(
        session, principal.actor, body, settings=app_state(request).settings
    )
    return case_out(request, case, now(session))


@router.get("/cases", response_model=list[CaseOut])
async def list_cases(
    request: Request,
    principal: CurrentPrincipal,
    session: Session,
    open_only: bool = Query(default=False, alias="open"),
) -> list[CaseOut]:
    """The caller's account's cases, or (support staff) every case: unanswered first, by
    due time."""
    instant = now(session)
    rows = await service.list_cases(session, principal.actor, open_only=open_only)
    return [case_out(request, case, instant) for case in rows]


@router.get("/cases/{case_id}", response_model=CaseDetailOut)
async def get_case(
    request: Request, principal: CurrentPrincipal, session: Session, case_id: uuid.UUID
) -> CaseDetailOut:
    case = await service.get_case(session, principal.actor, case_id)
    return await _detail(request, principal, session, case)


@router.post(
    "/cases/{case_id}/messages", response_model=MessageOut, status_code=status.HTTP_201_CREATED
)
async def add_message(
    request: Request,
    principal: CurrentPrincipal,
    session: Session,
    case_id: uuid.UUID,
    body: MessageIn,
) -> MessageOut:
    message = await service.add_message(
        session, principal.actor, case_id, body, settings=app_state(request).settings
    )
    return MessageOut.model_validate(message)


@router.post("/cases/{case_id}/files", response_model=FileOut, status_code=status.HTTP_201_CREATED)
async def add_file(
    request: Request,
    principal: CurrentPrincipal,
    session: Session,
    case_id: uuid.UUID,
    file: UploadFile = File(),
) -> FileOut:
    """Screenshots (PNG, JPEG, GIF, WebP), PDF or plain-text logs, up to 10 MiB."""
    data = await file.read(service.CASE_FILE_MAX_BYTES + 1)
    row = await service.add_file(
        session,
        principal.actor,
        case_id,
        data=data,
        filename=file.filename,
        content_type=file.content_type,
        blobs=attachment_store(app_state(request).settings),
    )
    return FileOut.model_validate(row)


@router.get("/cases/{case_id}/files/{file_id}", response_class=Response)
async def read_file(
    request: Request,
    principal: CurrentPrincipal,
    session: Session,
    case_id: uuid.UUID,
    file_id: uuid.UUID,
) -> Response:
    row, data = await service.read_file(
        session,
        principal.actor,
        case_id,
        file_id,
        blobs=attachment_store(app_state(request).settings),
    )
    return Response(
        data,
        media_type=row.content_type,
        headers={
            "Content-Disposition": media.content_disposition(row.name),
            "X-Content-Type-Options": "nosniff",
        },
    )


@router.post("/cases/{case_id}/close", response_model=CaseOut)
async def close_case(
    request: Request,
    principal: CurrentPrincipal,
    session: Session,
    case_id: uuid.UUID,
    body: CloseIn,
) -> CaseOut:
    case = await service.close_case(
        session, principal.actor, case_id, body, settings=app_state(request).settings
    )
    return case_out(request, case, now(session))


@router.post("/cases/{case_id}/reopen", response_model=CaseOut)
async def reopen_case(
    request: Request, principal: CurrentPrincipal, session: Session, case_id: uuid.UUID
) -> CaseOut:
    case = await service.reopen_case(
        session, principal.actor, case_id, settings=app_state(request).settings
    )
    return case_out(request, case, now(session))


@router.post("/cases/{case_id}/assign", response_model=CaseOut)
async def assign(
    request: Request,
    principal: CurrentPrincipal,
    session: Session,
    case_id: uuid.UUID,
    body: AssignIn,
) -> CaseOut:
    case = await service.assign(session, principal.actor, case_id, body.assignee_id)
    return case_out(request, case, now(session))


@router.post("/cases/{case_id}/state", response_model=CaseOut)
async def set_state(
    request: Request,
    principal: CurrentPrincipal,
    session: Session,
    case_id: uuid.UUID,
    body: StateIn,
) -> CaseOut:
    case = await service.set_state(session, principal.actor, case_id, body.state)
    return case_out(request, case, now(session))


@router.post("/cases/{case_id}/severity", response_model=CaseOut)
async def change_severity(
    request: Request,
    principal: CurrentPrincipal,
    session: Session,
    case_id: uuid.UUID,
    body: SeverityIn,
) -> CaseOut:
    case = await service.change_severity(
        session, principal.actor, case_id, body.severity, body.reason
    )
    return case_out(request, case, now(session))


@router.get("/compliance", response_model=ComplianceOut)
async def compliance(
    principal: CurrentPrincipal,
    session: Session,
    month: str = Query(pattern=r"^\d{4}-\d{2}$", examples=["2026-11"]),
) -> ComplianceOut:
    """First-response SLA compliance per severity for the cases opened in a month."""
    return await service.compliance(session, principal.actor, month)
