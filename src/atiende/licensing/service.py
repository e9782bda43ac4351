"""The installation's licences: installing a verified file and deciding what it allows.
The only writer of ``installed_licences``.

Installed licences belong to the installation, not to a tenant, so the tenant scoping hook
does not apply. Vendor administrators (the CLI acts as one) and the administrators of an
on-premise tenant (the customer's own) may install a licence.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from atiende.audit import service as audit
from atiende.core.db import now
from atiende.core.errors import AtiendeError, PermissionDenied
from atiende.identity.actor import Actor
from atiende.identity.models import Role
from atiende.licensing import signing
from atiende.licensing.models import InstalledLicence
from atiende.licensing.signing import LicenceState, LicenceStatus, LicenceTerms
from atiende.tenancy.models import DeploymentMode, Tenant


class LicenceRequired(AtiendeError):
    """Agents may not log in: the installation has no licence in force, grace included."""

    status_code = 403
    code = "licence_required"
    default_message = "This installation has no valid licence."


class LicenceExpired(LicenceRequired):
    code = "licence_expired"
    default_message = "The licence of this installation expired and its grace period is over."


class LicenceMissing(LicenceRequired):
    code = "licence_missing"
    default_message = "No licence is installed on this installation."


def _terms_of(row: InstalledLicence) -> LicenceTerms:
    return LicenceTerms(
        licence_id=row.licence_id,
        customer=row.customer,
        license=row.license,
        agents=row.agents,
        addons=tuple(row.addons),
        issued_at=row.issued_at,
        valid_until=row.valid_until,
    )


async def install(
    session: AsyncSession,
    actor: Actor,
    document_bytes: bytes | str | Mapping[str, Any],
    public_pem: bytes,
    *,
    today: date,
) -> LicenceTerms:
    """Verify a licence file against the trusted public key and install it.

    A forged, expired or malformed file raises ``LicenceInvalid`` and stores nothing.
    Installing a licence that is already installed changes nothing and returns its terms.
    """
    await _require_installer(session, actor)
    terms = signing.verify(document_bytes, public_pem, today=today)
    existing = await session.scalar(
        select(InstalledLicence).where(InstalledLicence.licence_id == terms.licence_id)
    )
    if existing is not None:
        return _terms_of(existing)
    # verify() accepted the document, so it is a JSON object (bytes are parsed once more here).
    document = dict(signing.load(document_bytes))
    if terms.issued_at is None:  # set by verify(); narrows the type
        raise ValueError("a verified licence has an issue time")
    row = InstalledLicence(
        licence_id=terms.licence_id,
        document=document,
        customer=terms.customer,
        license=terms.license,
        agents=terms.agents,
        addons=list(terms.addons),
        issued_at=terms.issued_at,
        valid_until=terms.valid_until,
        installed_at=now(session),
        installed_by=actor.user_id,
    )
    try:
        async with session.begin_nested():
            session.add(row)
    except IntegrityError:  # installed concurrently since the look-up above
        stored = await session.scalar(
            select(InstalledLicence).where(InstalledLicence.licence_id == terms.licence_id)
        )
        if stored is None:
            raise
        return _terms_of(stored)
    await audit.record(
        session,
        actor,
        "licence.install",
        resource_type="licence",
        resource_id=terms.licence_id,
        tenant_id=actor.tenant_id,
        after=document["payload"],
    )
    return terms


async def _require_installer(session: AsyncSession, actor: Actor) -> None:
    """A vendor administrator, or the administrator of an on-premise tenant: a cloud
    tenant is provisioned by the vendor and never changes the installation's licence."""
    if actor.has(Role.vendor_admin):
        return
    if actor.has(Role.admin) and actor.tenant_id is not None:
        tenant = await session.get(Tenant, actor.tenant_id)
        if tenant is not None and tenant.deployment_mode is DeploymentMode.on_premise:
            return
    raise PermissionDenied()


async def _installed(session: AsyncSession) -> list[LicenceTerms]:
    rows = (await session.scalars(select(InstalledLicence))).all()
    return [_terms_of(row) for row in rows]


async def licence_status(session: AsyncSession, *, today: date, grace_days: int) -> LicenceStatus:
    """The installation's licence state on ``today`` (see ``signing.decide_status``)."""
    return signing.decide_status(await _installed(session), today=today, grace_days=grace_days)


async def licensed_terms(session: AsyncSession, *, today: date) -> LicenceTerms | None:
    """The licence in force on ``today`` (grace not included), or None."""
    status = signing.decide_status(await _installed(session), today=today, grace_days=0)
    return status.terms if status.state is LicenceState.active else None


async def require_agent_login_allowed(
    session: AsyncSession, *, today: date, grace_days: int
) -> LicenceStatus:
    """Raise ``LicenceMissing`` / ``LicenceExpired`` (403) once agents may no longer log in;
    otherwise return the status, whose ``grace`` state and ``days_left`` drive warnings."""
    status = await licence_status(session, today=today, grace_days=grace_days)
    if status.state is LicenceState.missing:
        raise LicenceMissing()
    if status.state is LicenceState.expired:
        grace_ends_on = status.grace_ends_on.isoformat() if status.grace_ends_on else None
        raise LicenceExpired(grace_ended_on=grace_ends_on)
    return status
