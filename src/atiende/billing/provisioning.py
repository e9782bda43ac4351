"""Delivery after payment: a cloud purchase gets a tenant with its administrator, its agent
users and their PBX extensions; an on-premise purchase gets a signed licence file, one per
paid period, e-mailed to the account."""

from __future__ import annotations

import json
import logging
import secrets
from datetime import timedelta
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from atiende.billing.models import (
    BillingAccount,
    Invoice,
    InvoiceKind,
    IssuedLicence,
    Order,
    Subscription,
)
from atiende.core.config import Settings
from atiende.core.db import in_tenant, now
from atiende.identity import service as identity
from atiende.identity.actor import Actor
from atiende.identity.models import Role, User
from atiende.identity.schemas import UserCreate
from atiende.licensing import signing
from atiende.mail import service as mail
from atiende.routing import admin as routing_admin
from atiende.routing.models import Agent, LicenceType
from atiende.routing.schemas import AgentCreate, AgentUpdate, QueueCreate, QueueMembers
from atiende.tenancy import service as tenancy
from atiende.tenancy.models import DeploymentMode, Tenant
from atiende.tenancy.schemas import TenantCreate
from atiende.voice.models import Extension

log = logging.getLogger(__name__)

FIRST_EXTENSION = 1001
DIGITAL = ("webchat", "whatsapp", "telegram", "sms", "api")
PRIVATE_KEY_FILE = "atiende-licence-private.pem"
PUBLIC_KEY_FILE = "atiende-licence-public.pem"


async def deliver(
    session: AsyncSession,
    subscription: Subscription,
    order: Order,
    account: BillingAccount,
    *,
    settings: Settings,
) -> None:
    if subscription.deployment == DeploymentMode.cloud.value:
        await provision_tenant(session, subscription, order, account, settings=settings)
        return
    initial = await session.scalar(
        select(Invoice).where(
            Invoice.subscription_id == subscription.id, Invoice.kind == InvoiceKind.initial
        )
    )
    assert initial is not None
    await send_licence(session, subscription, initial, account, settings=settings)


# --- cloud --------------------------------------------------------------------------------


async def provision_tenant(
    session: AsyncSession,
    subscription: Subscription,
    order: Order,
    account: BillingAccount,
    *,
    settings: Settings,
) -> Tenant:
    actor = Actor.system()
    assert order.tenant_slug
    assert order.admin_email
    tenant = await tenancy.create_tenant(
        session,
        actor,
        TenantCreate(
            name=order.tenant_name or account.company,
            slug=order.tenant_slug,
            locale=account.locale,
            deployment_mode=DeploymentMode.cloud,
        ),
    )
    subscription.tenant_id = tenant.id
    await session.flush()
    password = secrets.token_urlsafe(12)
    await identity.create_user(
        session,
        actor,
        UserCreate(
            email=order.admin_email,
            name="Administrador" if account.locale == "es" else "Administrator",
            role=Role.admin,
            password=password,
            locale=account.locale,
            tenant_id=tenant.id,
        ),
    )
    await sync_tenant(session, subscription, settings=settings)
    await _first_queue(session, tenant, subscription)
    base = settings.public_url.rstrip("/")
    if account.locale == "es":
        subject = f"Tu centro de contacto {tenant.name} está listo"
        text = (
            f"Hola:\n\nTu instancia de Atiende está lista.\n\nEntrar: {base}/login\n"
            f"Usuario: {order.admin_email}\nContraseña temporal: {password}\n"
            "(cámbiala al entrar)\n\n"
            f"Agentes licenciados: {subscription.agents}; usuarios de PBX: "
            f"{subscription.pbx_users}.\nSoporte (helpdesk): {base}/helpdesk\n"
        )
    else:
        subject = f"Your contact center {tenant.name} is ready"
        text = (
            f"Hello,\n\nYour Atiende instance is ready.\n\nSign in: {base}/login\n"
            f"User: {order.admin_email}\nTemporary password: {password}\n"
            "(change it when you sign in)\n\n"
            f"Licensed agents: {subscription.agents}; PBX users: {subscription.pbx_users}.\n"
            f"Support (helpdesk): {base}/helpdesk\n"
        )
    await mail.queue_mail(
        session,
        to=order.admin_email,
        subject=subject,
        text=text,
        kind="billing.provisioned",
        tenant_id=tenant.id,
    )
    if account.email != order.admin_email:
        await mail.queue_mail(
            session,
            to=account.email,
            subject=subject,
            text=text.replace(
                password,
                "("
                + (
                    "enviada al administrador"
                    if account.locale == "es"
                    else "sent to the administrator"
                )
                + ")",
            ),
            kind="billing.provisioned",
        )
    return tenant


async def _first_queue(session: AsyncSession, tenant: Tenant, subscription: Subscription) -> None:
    """A ready contact center: one queue "General" for the licensed channels, served by every
    agent, so the first call or chat is routed before the admin configures anything."""
    channels = ["voice"] if subscription.license == "voice" else ["voice", *DIGITAL]
    async with in_tenant(session, tenant.id):
        queue = await routing_admin.create_queue(
            session,
            Actor.system(),
            QueueCreate.model_validate({"name": "General", "channels": channels}),
        )
        agents = (await session.scalars(select(Agent.user_id))).all()
        await routing_admin.set_queue_members(
            session, Actor.system(), queue.id, QueueMembers(agent_ids=list(agents))
        )


async def sync_tenant(
    session: AsyncSession, subscription: Subscription, *, settings: Settings
) -> None:
    """Bring a cloud tenant up to what is licensed: agent users (each with an agent profile
    of the subscription's licence type) and PBX extensions, held by the admin first, then
    the agents. Only ever adds: users and extensions beyond a decrease are left for the
    admin to disable."""
    if subscription.tenant_id is None:
        return
    tenant_id = subscription.tenant_id
    actor = Actor.system()
    tenant = await session.get(Tenant, tenant_id)
    assert tenant is not None
    licence = LicenceType(subscription.license)
    async with in_tenant(session, tenant_id):
        agents_now = int(
            await session.scalar(
                select(func.count(User.id)).where(
                    User.tenant_id == tenant_id, User.role == Role.agent
                )
            )
            or 0
        )
        for n in range(agents_now + 1, subscription.agents + 1):
            user = await identity.create_user(
                session,
                actor,
                UserCreate(
                    email=f"agent-{n:02d}@{tenant.slug}.{settings.provisioning_email_domain}",
                    name=f"Agente {n:02d}" if tenant.locale == "es" else f"Agent {n:02d}",
                    role=Role.agent,
                    password=secrets.token_urlsafe(16),
                    tenant_id=tenant_id,
                ),
            )
            await routing_admin.create_agent(
                session, actor, AgentCreate(user_id=user.id, licence=licence)
            )
        if licence is LicenceType.omnichannel:
            voice_profiles = (
                await session.scalars(select(Agent).where(Agent.licence == LicenceType.voice))
            ).all()
            for profile in voice_profiles:
                await routing_admin.update_agent(
                    session,
                    actor,
                    profile.user_id,
                    AgentUpdate(
                        licence=LicenceType.omnichannel,
                        chat_capacity=routing_admin.DEFAULT_CHAT_CAPACITY,
                    ),
                )
        await _sync_extensions(session, subscription.pbx_users or 0)


async def _sync_extensions(session: AsyncSession, wanted: int) -> None:
    instant = now(session)
    existing = (await session.scalars(select(Extension).order_by(Extension.number))).all()
    holders = {e.user_id for e in existing if e.user_id is not None}
    users = (
        await session.scalars(
            select(User)
            .where(User.is_active.is_(True), User.id.not_in(holders))
            .order_by(User.role, User.email)
        )
    ).all()
    ranked = sorted(
        users, key=lambda u: (u.role is not Role.admin, u.role is not Role.supervisor, u.email)
    )
    numbers = {int(e.number) for e in existing if e.number.isdigit()}
    next_number = max(numbers, default=FIRST_EXTENSION - 1) + 1
    for _ in range(len(existing), wanted):
        holder = ranked.pop(0) if ranked else None
        extension = Extension(
            number=str(next_number),
            user_id=holder.id if holder else None,
            created_at=instant,
        )
        session.add(extension)
        if holder is not None and holder.role is Role.agent:
            profile = await session.get(Agent, holder.id)
            if profile is not None and profile.extension is None:
                profile.extension = extension.number
        next_number += 1
    await session.flush()


# --- on premise ---------------------------------------------------------------------------


def vendor_private_key(settings: Settings) -> bytes:
    """The configured signing key, or (development) a key pair kept under data_dir/keys."""
    if settings.licence_private_key is not None:
        return settings.licence_private_key.read_bytes()
    folder = settings.data_dir / "keys"
    private = folder / PRIVATE_KEY_FILE
    if not private.exists():
        folder.mkdir(parents=True, exist_ok=True)
        private_pem, public_pem = signing.generate_keypair()
        _write_private(private, private_pem)
        (folder / PUBLIC_KEY_FILE).write_bytes(public_pem)
        log.warning("generated a licence signing key pair in %s (development only)", folder)
    return private.read_bytes()


def _write_private(path: Path, pem: bytes) -> None:
    path.touch(mode=0o600)
    path.write_bytes(pem)


async def send_licence(
    session: AsyncSession,
    subscription: Subscription,
    invoice: Invoice,
    account: BillingAccount,
    *,
    settings: Settings,
) -> IssuedLicence | None:
    """One licence per paid period, valid through the period's last day (the installation
    adds its grace period); e-mailed as a file to the account's address."""
    if await session.scalar(select(IssuedLicence.id).where(IssuedLicence.invoice_id == invoice.id)):
        return None
    end = invoice.period_end or subscription.current_period_end
    assert end is not None
    instant = now(session)
    terms = signing.LicenceTerms(
        customer=account.email,
        license=subscription.license,
        agents=subscription.agents,
        addons=tuple(sorted(subscription.addons)),
        valid_until=end - timedelta(days=1),
    )
    document = signing.issue(vendor_private_key(settings), terms, issued_at=instant)
    licence = IssuedLicence(
        subscription_id=subscription.id,
        invoice_id=invoice.id,
        licence_id=str(document["payload"]["licence_id"]),
        document=document,
        valid_until=terms.valid_until,
        issued_at=instant,
    )
    session.add(licence)
    await session.flush()
    filename = f"atiende-licence-{licence.licence_id}.json"
    if account.locale == "es":
        subject = "Tu licencia de Atiende"
        text = (
            f"Hola:\n\nAdjuntamos tu licencia: {subscription.agents} agentes "
            f"({subscription.license}), válida hasta el {terms.valid_until.isoformat()}.\n"
            "Instálala con `atiende license install ARCHIVO` o desde Administración → Licencia.\n"
            f"Documentación: {settings.public_url.rstrip('/')}/docs\n"
            f"Soporte (helpdesk): {settings.public_url.rstrip('/')}/helpdesk\n"
        )
    else:
        subject = "Your Atiende licence"
        text = (
            f"Hello,\n\nAttached is your licence: {subscription.agents} agents "
            f"({subscription.license}), valid until {terms.valid_until.isoformat()}.\n"
            "Install it with `atiende license install FILE` or from Administration → Licence.\n"
            f"Documentation: {settings.public_url.rstrip('/')}/docs\n"
            f"Support (helpdesk): {settings.public_url.rstrip('/')}/helpdesk\n"
        )
    await mail.queue_mail(
        session,
        to=account.email,
        subject=subject,
        text=text,
        attachments=[
            mail.Attachment(
                filename=filename,
                content_type="application/json",
                content=json.dumps(document, indent=2, ensure_ascii=False).encode(),
            )
        ],
        kind="billing.licence",
    )
    return licence
