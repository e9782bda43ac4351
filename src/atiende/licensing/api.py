"""HTTP routes of the installation's licence: its state, and installing a licence file
(tenant administrators on premise, vendor administrators)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from atiende.core.db import now
from atiende.core.errors import Conflict
from atiende.identity.models import Role
from atiende.licensing import service
from atiende.licensing.schemas import LicenceInstallIn, LicenceStatusOut
from atiende.web.deps import Principal, Session, app_state, require_roles

router = APIRouter(prefix="/api/v1", tags=["licence"])
LicenceAdmin = require_roles(Role.admin, Role.vendor_admin)


class LicenceKeyNotConfigured(Conflict):
    code = "licence_key_not_configured"
    default_message = (
        "This installation trusts no licence key: set ATIENDE_LICENCE_PUBLIC_KEY to the "
        "vendor's public key file."
    )


def _public_key(request: Request) -> bytes:
    path = app_state(request).settings.licence_public_key
    if path is None:
        raise LicenceKeyNotConfigured()
    try:
        return path.read_bytes()
    except OSError as error:
        raise LicenceKeyNotConfigured(
            "The licence public key file set in ATIENDE_LICENCE_PUBLIC_KEY cannot be read."
        ) from error


@router.get("/licence", response_model=LicenceStatusOut)
async def licence_status(
    request: Request, session: Session, principal: Principal = LicenceAdmin
) -> LicenceStatusOut:
    """The installation's licence state today (UTC)."""
    status = await service.licence_status(
        session,
        today=now(session).date(),
        grace_days=app_state(request).settings.licence_grace_days,
    )
    return LicenceStatusOut.of(status)


@router.post("/licence", response_model=LicenceStatusOut)
async def install_licence(
    request: Request, session: Session, body: LicenceInstallIn, principal: Principal = LicenceAdmin
) -> LicenceStatusOut:
    """Verify a licence file with the trusted public key and install it; answers with the
    state after installing. A forged, expired or malformed file is refused (422) and
    nothing is stored."""
    public_pem = _public_key(request)
    today = now(session).date()
    await service.install(session, principal.actor, body.document, public_pem, today=today)
    status = await service.licence_status(
        session, today=today, grace_days=app_state(request).settings.licence_grace_days
    )
    return LicenceStatusOut.of(status)
