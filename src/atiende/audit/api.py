"""HTTP routes for reading the audit log (tenant admins: their tenant; vendor admins: all)."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Query

from atiende.audit import service
from atiende.audit.schemas import AuditEntryOut
from atiende.identity.models import Role
from atiende.web.deps import Principal, Session, require_roles

router = APIRouter(prefix="/api/v1", tags=["audit"])
Auditor = require_roles(Role.admin, Role.vendor_admin)


@router.get("/audit", response_model=list[AuditEntryOut])
async def list_audit(
    session: Session,
    principal: Principal = Auditor,
    limit: int = Query(default=100, ge=1, le=500),
    before_id: uuid.UUID | None = None,
    action: str | None = Query(default=None, max_length=100),
) -> list[AuditEntryOut]:
    entries = await service.list_entries(session, limit=limit, before_id=before_id, action=action)
    return [AuditEntryOut.model_validate(e) for e in entries]


@router.get("/audit/{entry_id}", response_model=AuditEntryOut)
async def get_audit(
    session: Session, entry_id: uuid.UUID, principal: Principal = Auditor
) -> AuditEntryOut:
    return AuditEntryOut.model_validate(await service.get_entry(session, entry_id))
