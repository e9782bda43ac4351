"""HTTP routes for contacts: search, profile with history, edits, identities, merge."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Query, Response, status

from atiende.contacts import service
from atiende.contacts.schemas import (
    ContactCreate,
    ContactDetail,
    ContactMerge,
    ContactOut,
    ContactUpdate,
    IdentityIn,
    IdentityOut,
)
from atiende.web.deps import CurrentPrincipal, Session

router = APIRouter(prefix="/api/v1/contacts", tags=["contacts"])


@router.get("", response_model=list[ContactOut])
async def list_contacts(
    principal: CurrentPrincipal,
    session: Session,
    q: str | None = Query(
        default=None, max_length=200, description="Name, e-mail, phone or identity value."
    ),
    limit: int = Query(default=50, ge=1, le=200),
    offset: int = Query(default=0, ge=0),
) -> list[ContactOut]:
    contacts = await service.list_contacts(
        session, principal.actor, q=q, limit=limit, offset=offset
    )
    return [ContactOut.model_validate(c) for c in contacts]


@router.post("", response_model=ContactDetail, status_code=status.HTTP_201_CREATED)
async def create_contact(
    principal: CurrentPrincipal, session: Session, body: ContactCreate
) -> ContactDetail:
    contact = await service.create_contact(session, principal.actor, body)
    return await service.contact_detail(session, principal.actor, contact.id)


@router.get("/{contact_id}", response_model=ContactDetail)
async def get_contact(
    principal: CurrentPrincipal, session: Session, contact_id: uuid.UUID
) -> ContactDetail:
    return await service.contact_detail(session, principal.actor, contact_id)


@router.patch("/{contact_id}", response_model=ContactDetail)
async def update_contact(
    principal: CurrentPrincipal, session: Session, contact_id: uuid.UUID, body: ContactUpdate
) -> ContactDetail:
    await service.update_contact(session, principal.actor, contact_id, body)
    return await service.contact_detail(session, principal.actor, contact_id)


@router.post(
    "/{contact_id}/identities", response_model=IdentityOut, status_code=status.HTTP_201_CREATED
)
async def add_identity(
    principal: CurrentPrincipal, session: Session, contact_id: uuid.UUID, body: IdentityIn
) -> IdentityOut:
    return IdentityOut.model_validate(
        await service.add_identity(session, principal.actor, contact_id, body)
    )


@router.delete("/{contact_id}/identities/{identity_id}", status_code=status.HTTP_204_NO_CONTENT)
async def remove_identity(
    principal: CurrentPrincipal, session: Session, contact_id: uuid.UUID, identity_id: uuid.UUID
) -> Response:
    await service.remove_identity(session, principal.actor, contact_id, identity_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{contact_id}/merge", response_model=ContactDetail)
async def merge_contacts(
    principal: CurrentPrincipal, session: Session, contact_id: uuid.UUID, body: ContactMerge
) -> ContactDetail:
    survivor = await service.merge(session, principal.actor, contact_id, body.other_id)
    return await service.contact_detail(session, principal.actor, survivor.id)
