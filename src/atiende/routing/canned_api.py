"""HTTP routes for canned responses (``/shortcut`` replies)."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Query, Response, status

from atiende.routing import canned
from atiende.routing.canned import CannedCreate, CannedOut, CannedUpdate
from atiende.web.deps import CurrentPrincipal, Session

router = APIRouter(prefix="/api/v1/canned-responses", tags=["canned responses"])


@router.get("", response_model=list[CannedOut])
async def list_canned(
    principal: CurrentPrincipal,
    session: Session,
    q: str | None = Query(
        default=None, max_length=100, description="Shortcut prefix (`/ho`) or text in the body."
    ),
    limit: int = Query(default=50, ge=1, le=200),
) -> list[CannedOut]:
    return canned.render_list(await canned.list_canned(session, principal.actor, q=q, limit=limit))


@router.post("", response_model=CannedOut, status_code=status.HTTP_201_CREATED)
async def create_canned(
    principal: CurrentPrincipal, session: Session, body: CannedCreate
) -> CannedOut:
    return canned.to_out(await canned.create_canned(session, principal.actor, body))


@router.get("/{canned_id}", response_model=CannedOut)
async def get_canned(
    principal: CurrentPrincipal, session: Session, canned_id: uuid.UUID
) -> CannedOut:
    return canned.to_out(await canned.get_canned(session, principal.actor, canned_id))


@router.patch("/{canned_id}", response_model=CannedOut)
async def update_canned(
    principal: CurrentPrincipal, session: Session, canned_id: uuid.UUID, body: CannedUpdate
) -> CannedOut:
    return canned.to_out(await canned.update_canned(session, principal.actor, canned_id, body))


@router.delete("/{canned_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_canned(
    principal: CurrentPrincipal, session: Session, canned_id: uuid.UUID
) -> Response:
    await canned.delete_canned(session, principal.actor, canned_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
