"""What a tenant may use, from what was sold: seats, licence type, add-ons, support plan.

- A cloud tenant bought through the portal is held to its subscription (seats and licence
  type at once; decreases waiting for the renewal already cap new seats).
- An on-premise tenant is held to the installation's signed licence; with none installed
  (or one past its grace period) agents and supervisors cannot log in.
- A cloud tenant with no subscription (created by the vendor with ``atiende tenant
  create``: internal or demo use) is unmetered.

Every enforcement point calls one function here; see docs/licensing.md.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date
from typing import Literal

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from atiende.billing.models import Subscription, SubscriptionStatus
from atiende.core.db import now
from atiende.core.errors import AtiendeError
from atiende.identity.models import Role, User
from atiende.licensing import service as licensing
from atiende.tenancy.models import DeploymentMode, Tenant

DIGITAL_CHANNELS = frozenset({"webchat", "whatsapp", "telegram", "sms", "api", "email"})
DEFAULT_LICENCE_GRACE_DAYS = 14


class LicenseSeatsExhausted(AtiendeError):
    status_code = 409
    code = "license_seats_exhausted"
    default_message = "Every licensed agent seat is in use."


class LicenseTypeVoiceOnly(AtiendeError):
    status_code = 403
    code = "license_type_voice_only"
    default_message = (
        "This tenant has a voice licence: digital channels (WhatsApp, Telegram, webchat, SMS…) "
        "need the omnichannel licence."
    )


class AddonRequired(AtiendeError):
    status_code = 403
    code = "addon_required"
    default_message = "This feature needs an add-on that is not part of the subscription."


class ServiceSuspended(AtiendeError):
    status_code = 403
    code = "subscription_suspended"
    default_message = "The subscription is suspended for an unpaid invoice: agents cannot log in."


@dataclass(frozen=True, slots=True)
class Entitlement:
    metered: bool
    license: str | None = None
    agents: int | None = None
    addons: frozenset[str] = field(default_factory=frozenset)
    status: str | None = None  # subscription status, or licence state on premise
    source: Literal["subscription", "licence", "none"] = "none"

    @property
    def support_plan(self) -> Literal["standard", "24x7"]:
        return "24x7" if "support_24x7" in self.addons else "standard"

    @property
    def voice_only(self) -> bool:
        return self.metered and self.license == "voice"

    def has(self, addon: str) -> bool:
        return not self.metered or addon in self.addons


UNMETERED = Entitlement(metered=False)


async def for_tenant(
    session: AsyncSession, tenant_id: uuid.UUID, *, today: date | None = None
) -> Entitlement:
    tenant = await session.get(Tenant, tenant_id)
    if tenant is None:
        return UNMETERED
    day = today or now(session).date()
    if tenant.deployment_mode is DeploymentMode.on_premise:
        status = await licensing.licence_status(
            session, today=day, grace_days=DEFAULT_LICENCE_GRACE_DAYS
        )
        terms = status.terms
        if terms is None:
            return Entitlement(metered=True, agents=0, status="missing", source="licence")
        return Entitlement(
            metered=True,
            license=terms.license,
            agents=terms.agents,
            addons=frozenset(terms.addons),
            status=status.state.value,
            source="licence",
        )
    subscription = await session.scalar(
        select(Subscription).where(Subscription.tenant_id == tenant_id)
    )
    if subscription is None:
        return UNMETERED
    seats = subscription.agents
    pending = subscription.pending_terms or {}
    if isinstance(pending.get("agents"), int):
        seats = min(seats, int(str(pending["agents"])))
    return Entitlement(
        metered=True,
        license=subscription.license,
        agents=seats,
        addons=frozenset(subscription.addons),
        status=subscription.status.value,
        source="subscription",
    )


async def agents_in_use(session: AsyncSession, tenant_id: uuid.UUID) -> int:
    """Enabled agent users: the named seats taken (supervisors and admins take none)."""
    count = await session.scalar(
        select(func.count())
        .select_from(User.__table__)
        .where(
            User.__table__.c.tenant_id == tenant_id,
            User.__table__.c.role == Role.agent.value,
            User.__table__.c.is_active.is_(True),
        )
    )
    return int(count or 0)


async def require_seat(session: AsyncSession, tenant_id: uuid.UUID) -> None:
    """Before one more agent user is enabled."""
    entitlement = await for_tenant(session, tenant_id)
    if not entitlement.metered or entitlement.agents is None:
        return
    used = await agents_in_use(session, tenant_id)
    if used >= entitlement.agents:
        raise LicenseSeatsExhausted(
            f"All {entitlement.agents} licensed agent seats are in use; disable an agent or "
            "buy more seats.",
            licensed=entitlement.agents,
            in_use=used,
        )


async def require_channels(session: AsyncSession, tenant_id: uuid.UUID, channels: object) -> None:
    """Before a digital channel is enabled (queue, agent profile, widget, provider)."""
    names = {str(getattr(c, "value", c)) for c in channels} if channels else set()  # type: ignore[attr-defined]
    if not names & DIGITAL_CHANNELS:
        return
    if (await for_tenant(session, tenant_id)).voice_only:
        raise LicenseTypeVoiceOnly()


async def require_omnichannel(session: AsyncSession, tenant_id: uuid.UUID) -> None:
    if (await for_tenant(session, tenant_id)).voice_only:
        raise LicenseTypeVoiceOnly()


async def require_addon(session: AsyncSession, tenant_id: uuid.UUID, addon: str) -> None:
    if not (await for_tenant(session, tenant_id)).has(addon):
        raise AddonRequired(
            f"This feature needs the {addon!r} add-on.", code="addon_required", addon=addon
        )


async def login_refusal(
    session: AsyncSession, user: User, *, grace_days: int = DEFAULT_LICENCE_GRACE_DAYS
) -> AtiendeError | None:
    """Why this tenant user may not log in now, if they may not. Administrators always may
    (to pay, install a licence or see what is wrong); agents and supervisors may not while
    the subscription is suspended or cancelled, or on premise once the licence is missing
    or past its grace period. Nothing is deleted either way."""
    if user.tenant_id is None or user.role is Role.admin:
        return None
    tenant = await session.get(Tenant, user.tenant_id)
    if tenant is not None and tenant.deployment_mode is DeploymentMode.on_premise:
        try:
            await licensing.require_agent_login_allowed(
                session, today=now(session).date(), grace_days=grace_days
            )
        except AtiendeError as error:
            return error
        return None
    status = await session.scalar(
        select(Subscription.status).where(Subscription.tenant_id == user.tenant_id)
    )
    refusals: dict[SubscriptionStatus | None, AtiendeError] = {
        SubscriptionStatus.suspended: ServiceSuspended(),
        SubscriptionStatus.cancelled: ServiceSuspended(
            "The subscription is cancelled: agents cannot log in.", code="subscription_cancelled"
        ),
    }
    return refusals.get(status)
