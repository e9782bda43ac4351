"""Tenant use cases. The only writer of ``tenants``.

Tenants are not rows *of* a tenant, so the scoping hook does not apply; the rule here is
explicit instead: a tenant user sees only their own tenant, vendor staff see all.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from atiende.audit import service as audit
from atiende.core.db import now
from atiende.core.errors import Conflict, NotFound, PermissionDenied
from atiende.core.events import emit
from atiende.identity.actor import Actor
from atiende.identity.models import Role
from atiende.tenancy.events import TenantCreated, TenantUpdated
from atiende.tenancy.models import Tenant
from atiende.tenancy.schemas import TenantCreate, TenantOut, TenantUpdate


def _snapshot(tenant: Tenant) -> dict[str, object]:
    return TenantOut.model_validate(tenant).model_dump(mode="json")


async def create_tenant(session: AsyncSession, actor: Actor, data: TenantCreate) -> Tenant:
    if not actor.has(Role.vendor_admin):
        raise PermissionDenied()
    if await session.scalar(select(Tenant.id).where(Tenant.slug == data.slug)):
        raise Conflict(
            f"A tenant with slug {data.slug!r} exists.", code="tenant_slug_taken", field="slug"
        )
    tenant = Tenant(**data.model_dump(), created_at=now(session))
    try:
        async with session.begin_nested():
            session.add(tenant)
    except IntegrityError as error:  # created concurrently since the check above
        raise Conflict(
            f"A tenant with slug {data.slug!r} exists.", code="tenant_slug_taken", field="slug"
        ) from error
    await audit.record(
        session,
        actor,
        "tenant.create",
        resource_type="tenant",
        resource_id=tenant.id,
        tenant_id=tenant.id,
        after=_snapshot(tenant),
    )
    await emit(session, TenantCreated(tenant_id=tenant.id, slug=tenant.slug), tenant_id=tenant.id)
    return tenant


async def get_tenant(session: AsyncSession, actor: Actor, tenant_id: uuid.UUID) -> Tenant:
    if not actor.is_vendor and actor.tenant_id != tenant_id:
        raise NotFound("tenant")
    tenant = await session.get(Tenant, tenant_id)
    if tenant is None:
        raise NotFound("tenant")
    return tenant


async def get_tenant_by_slug(session: AsyncSession, slug: str) -> Tenant | None:
    return await session.scalar(select(Tenant).where(Tenant.slug == slug))


async def list_tenants(session: AsyncSession, actor: Actor) -> Sequence[Tenant]:
    if not actor.is_vendor:
        raise PermissionDenied()
    return (await session.scalars(select(Tenant).order_by(Tenant.name))).all()


async def update_tenant(
    session: AsyncSession, actor: Actor, tenant_id: uuid.UUID, data: TenantUpdate
) -> Tenant:
    tenant = await get_tenant(session, actor, tenant_id)
    if not (
        actor.has(Role.vendor_admin) or (actor.has(Role.admin) and actor.tenant_id == tenant.id)
    ):
        raise PermissionDenied()
    before = _snapshot(tenant)
    changes = {
        field: value
        for field, value in data.model_dump(exclude_unset=True).items()
        if getattr(tenant, field) != value
    }
    for field, value in changes.items():
        setattr(tenant, field, value)
    await session.flush()
    if changes:
        await audit.record(
            session,
            actor,
            "tenant.update",
            resource_type="tenant",
            resource_id=tenant.id,
            tenant_id=tenant.id,
            before=before,
            after=_snapshot(tenant),
        )
        await emit(
            session,
            TenantUpdated(tenant_id=tenant.id, changes=sorted(changes)),
            tenant_id=tenant.id,
        )
    return tenant
