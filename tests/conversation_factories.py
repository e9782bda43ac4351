"""Factories for conversation tests: a customer's interaction, set up as routing would leave
it (assigned, in wrap-up, offered, closed) by writing the fields directly."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from atiende.contacts import service as contacts
from atiende.contacts.models import IdentityKind
from atiende.conversations import service as conversations
from atiende.conversations.models import Channel, InteractionStatus, MessageDirection
from atiende.core.db import Database, Scope, now
from atiende.routing import service as routing
from atiende.routing.models import Offer, OfferStatus
from atiende.tenancy.models import Tenant


async def open_chat(
    db: Database,
    tenant: Tenant,
    *,
    agent_id: uuid.UUID | None = None,
    status: InteractionStatus | None = None,
    channel: Channel = Channel.whatsapp,
    kind: IdentityKind = IdentityKind.whatsapp,
    who: str | None = None,
    inbound: Sequence[str] = ("Hola",),
    **fields: Any,
) -> tuple[uuid.UUID, uuid.UUID]:
    """A customer writes in; returns (interaction id, contact id)."""
    async with db.session(Scope.tenant(tenant.id)) as session:
        contact = await contacts.find_or_create_by_identity(
            session, kind, who or str(uuid.uuid4().int)[:12]
        )
        interaction = await conversations.open_interaction(
            session, channel=channel, contact_id=contact.id
        )
        if agent_id is not None:
            interaction.agent_id = agent_id
            interaction.assigned_at = now(session)
            interaction.status = InteractionStatus.assigned
        if status is not None:
            interaction.status = status
        for field, value in fields.items():
            setattr(interaction, field, value)
        for body in inbound:
            await conversations.add_message(
                session,
                interaction,
                direction=MessageDirection.inbound,
                author_kind="contact",
                body=body,
            )
    return interaction.id, contact.id


async def offer_to(
    db: Database, tenant: Tenant, interaction_id: uuid.UUID, agent_id: uuid.UUID
) -> None:
    """A pending offer of the interaction to an agent (what a routing round leaves)."""
    async with db.session(Scope.tenant(tenant.id)) as session:
        await routing.ensure_agent(session, agent_id)
        interaction = await conversations.get_interaction(session, interaction_id)
        interaction.status = InteractionStatus.offered
        instant = now(session)
        session.add(
            Offer(
                interaction_id=interaction_id,
                agent_id=agent_id,
                status=OfferStatus.pending,
                created_at=instant,
                expires_at=instant,
            )
        )


async def update_interaction(
    db: Database, tenant: Tenant, interaction_id: uuid.UUID, **fields: Any
) -> None:
    async with db.session(Scope.tenant(tenant.id)) as session:
        interaction = await conversations.get_interaction(session, interaction_id)
        for field, value in fields.items():
            setattr(interaction, field, value)
