"""The demo tenant a newcomer gets from ``make run``: users, routing and a webchat widget.

Composes the domain services (it owns no tables). Idempotent: running it again only fills
in what is missing, so an older demo tenant gains the contact-center pieces too.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from atiende.core.db import SCOPE_KEY, Scope
from atiende.identity import service as identity
from atiende.identity.actor import Actor
from atiende.identity.models import Role, User
from atiende.identity.schemas import UserCreate
from atiende.routing import admin as routing_admin
from atiende.tenancy import service as tenancy
from atiende.tenancy.schemas import TenantCreate
from atiende.voice import phones
from atiende.voice.models import Extension
from atiende.webchat import service as webchat
from atiende.webchat.models import Widget
from atiende.webchat.schemas import WidgetCreate

DEMO_SLUG = "demo"
DEMO_USERS = (
    ("admin@demo.example.com", "Ana Admin", Role.admin),
    ("supervisor@demo.example.com", "Sergio Supervisor", Role.supervisor),
    ("agent1@demo.example.com", "Alicia Agente", Role.agent),
    ("agent2@demo.example.com", "Andrés Agente", Role.agent),
)
# Vendor side: billing staff confirm payments; a verified buyer account tries the portal.
VENDOR_USERS = (("billing@vendor.example.com", "Berta Billing", Role.vendor_billing),)
DEMO_FIRST_EXTENSION = 1001
DEMO_BUYER = ("buyer@customer.example.com", "Bruno Buyer", "Cliente Demo S.A. de C.V.")


@dataclass(frozen=True)
class DemoResult:
    logins: list[dict[str, str]] | None  # only on first creation: passwords are not kept
    widget_key: str


async def seed(session: AsyncSession) -> DemoResult:
    """Create (or complete) the demo tenant in a system-scoped unit of work."""
    tenant = await tenancy.get_tenant_by_slug(session, DEMO_SLUG)
    logins: list[dict[str, str]] | None = None
    if tenant is None:
        tenant = await tenancy.create_tenant(
            session,
            Actor.system(),
            TenantCreate(slug=DEMO_SLUG, name="Demo", time_zone="America/Mexico_City", locale="es"),
        )
        logins = []
        for email, name, role in DEMO_USERS:
            password = secrets.token_urlsafe(9)
            await identity.create_user(
                session,
                Actor.system(),
                UserCreate(
                    email=email, name=name, role=role, password=password, tenant_id=tenant.id
                ),
            )
            logins.append({"email": email, "role": role.value, "password": password})
        for email, name, role in VENDOR_USERS:
            if await identity.get_user_by_email(session, email) is None:
                password = secrets.token_urlsafe(9)
                await identity.create_user(
                    session,
                    Actor.system(),
                    UserCreate(email=email, name=name, role=role, password=password),
                )
                logins.append({"email": email, "role": role.value, "password": password})
        logins.append(await _demo_buyer(session))
    users = {
        u.email: u
        for u in (await session.scalars(select(User).where(User.tenant_id == tenant.id))).all()
    }
    agents = [users[e].id for e, _, r in DEMO_USERS if r is Role.agent and e in users]
    supervisor = users.get("supervisor@demo.example.com")
    admin = users.get("admin@demo.example.com")
    if supervisor is None or admin is None:
        raise RuntimeError("the demo tenant lost its admin or supervisor")
    routing = await routing_admin.seed_demo(session, tenant.id, agents, supervisor.id)
    await _demo_extensions(session, tenant.id, [users[e] for e, _, _ in DEMO_USERS if e in users])
    previous = session.info.get(SCOPE_KEY)
    session.info[SCOPE_KEY] = Scope.tenant(tenant.id)
    try:
        widget = await session.scalar(select(Widget).order_by(Widget.created_at).limit(1))
        if widget is None:
            widget = await webchat.create_widget(
                session,
                identity.actor_for(admin),
                WidgetCreate(
                    name="Tienda demo",
                    queue_id=routing.general_queue_id,
                    greeting="¡Hola! ¿En qué te podemos ayudar?",
                    offline_message="Ahora no hay nadie disponible; te responderemos pronto.",
                ),
            )
    finally:
        session.info[SCOPE_KEY] = previous
    return DemoResult(logins=logins, widget_key=widget.key)


async def _demo_extensions(session: AsyncSession, tenant_id: uuid.UUID, people: list[User]) -> None:
    """Extensions 1001… for the demo's people who have none, so a softphone (or sipp) can log
    in as them once a PBX is connected (docs/voice.md, "Your first call")."""
    previous = session.info.get(SCOPE_KEY)
    session.info[SCOPE_KEY] = Scope.tenant(tenant_id)
    try:
        rows = await session.execute(select(Extension.number, Extension.user_id))
        taken: dict[str, uuid.UUID | None] = dict(rows.tuples().all())
        holders = set(taken.values())
        next_number = DEMO_FIRST_EXTENSION
        for person in people:
            if person.id in holders:
                continue
            while str(next_number) in taken:
                next_number += 1
            data = phones.ExtensionCreate(number=str(next_number), user_id=person.id)
            await phones.add_extension(session, Actor.system(), data)
            taken[str(next_number)] = person.id
    finally:
        session.info[SCOPE_KEY] = previous


async def _demo_buyer(session: AsyncSession) -> dict[str, str]:
    """A verified buyer account, so the portal can be tried without reading e-mail."""
    from atiende.billing import service as billing
    from atiende.billing.schemas import SignupIn
    from atiende.core.config import Settings

    email, name, company = DEMO_BUYER
    password = secrets.token_urlsafe(9)
    _, token = await billing.sign_up(
        session,
        SignupIn(email=email, password=password, name=name, company=company, locale="es"),
        settings=Settings(),
    )
    await billing.verify_email(session, token)
    return {"email": email, "role": Role.buyer.value, "password": password}
