"""HTTP routes for tenants: vendor staff manage all, a tenant admin their own."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, status

from atiende.core.errors import NotFound
from atiende.tenancy import service
from atiende.tenancy.schemas import TenantCreate, TenantOut, TenantUpdate
from atiende.web.deps import CurrentPrincipal, Session

router = APIRouter(prefix="/api/v1", tags=["tenancy"])


@router.get("/tenant", response_model=TenantOut)
async def my_tenant(principal: CurrentPrincipal, session: Session) -> TenantOut:
    if principal.tenant_id is None:
        raise NotFound("tenant")
    return TenantOut.model_validate(
        await service.get_tenant(session, principal.actor, principal.tenant_id)
    )


@router.patch("/tenant", response_model=TenantOut)
async def update_my_tenant(
    principal: CurrentPrincipal, session: Session, body: TenantUpdate
) -> TenantOut:
    if principal.tenant_id is None:
        raise NotFound("tenant")
    return TenantOut.model_validate(
        await service.update_tenant(session, principal.actor, principal.tenant_id, body)
    )


@router.get("/tenants", response_model=list[TenantOut])
async def list_tenants(principal: CurrentPrincipal, session: Session) -> list[TenantOut]:
    return [
        TenantOut.model_validate(t) for t in await service.list_tenants(session, principal.actor)
    ]


@router.post("/tenants", response_model=TenantOut, status_code=status.HTTP_201_CREATED)
async def create_tenant(
    principal: CurrentPrincipal, session: Session, body: TenantCreate
) -> TenantOut:
    return TenantOut.model_validate(await service.create_tenant(session, principal.actor, body))


@router.get("/tenants/{tenant_id}", response_model=TenantOut)
async def get_tenant(
    principal: CurrentPrincipal, session: Session, tenant_id: uuid.UUID
) -> TenantOut:
    return TenantOut.model_validate(await service.get_tenant(session, principal.actor, tenant_id))


@router.patch("/tenants/{tenant_id}", response_model=TenantOut)
async def update_tenant(
    principal: CurrentPrincipal, session: Session, tenant_id: uuid.UUID, body: TenantUpdate
) -> TenantOut:
    return TenantOut.model_validate(
        await service.update_tenant(session, principal.actor, tenant_id, body)
    )
