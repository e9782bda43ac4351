"""Factories for routing tests: queues, agents and waiting interactions, built through the
services where those exist and as plain rows for configuration."""

from __future__ import annotations

import itertools
import uuid
from typing import Any

from atiende.contacts import service as contacts
from atiende.contacts.models import IdentityKind
from atiende.conversations import service as conversations
from atiende.conversations.models import Channel, Interaction
from atiende.core.db import Database, Scope, now
from atiende.identity import service as identity
from atiende.identity.models import Role
from atiende.routing import service as routing
from atiende.routing.models import LicenceType, Presence, Queue, QueueMember
from atiende.tenancy.models import Tenant
from factories import make_user

_seq = itertools.count(1)


async def make_queue(db: Database, tenant: Tenant, **fields: Any) -> Queue:
    async with db.session(Scope.tenant(tenant.id)) as session:
        queue = Queue(
            name=fields.pop("name", f"queue-{next(_seq)}"),
            channels=fields.pop(
                "channels", ["webchat", "whatsapp", "telegram", "sms", "api", "voice"]
            ),
            created_at=now(session),
            **fields,
        )
        session.add(queue)
    return queue


async def make_agent(
    db: Database,
    tenant: Tenant,
    *queues: Queue,
    licence: LicenceType = LicenceType.omnichannel,
    available: bool = True,
    chat_capacity: int | None = None,
    role: Role = Role.agent,
) -> uuid.UUID:
    user = await make_user(db, tenant, role)
    async with db.session(Scope.tenant(tenant.id)) as session:
        agent = await routing.ensure_agent(session, user.id, licence=licence)
        if chat_capacity is not None:
            agent.chat_capacity = chat_capacity
        for queue in queues:
            session.add(QueueMember(queue_id=queue.id, agent_id=user.id))
        if available:
            await routing.set_presence(
                session, identity.actor_for(user), user.id, Presence.available
            )
    await routing.settle()
    return user.id


async def arrive(
    db: Database,
    tenant: Tenant,
    queue: Queue,
    *,
    channel: Channel = Channel.webchat,
    who: str | None = None,
) -> uuid.UUID:
    """A customer writes (or calls) and waits in ``queue``."""
    async with db.session(Scope.tenant(tenant.id)) as session:
        contact = await contacts.find_or_create_by_identity(
            session, IdentityKind.webchat, who or f"visitor-{uuid.uuid4()}"
        )
        interaction = await conversations.open_interaction(
            session, channel=channel, contact_id=contact.id
        )
        await routing.enqueue(session, interaction, queue.id)
    await routing.settle()
    return interaction.id


async def get(db: Database, tenant: Tenant, interaction_id: uuid.UUID) -> Interaction:
    async with db.session(Scope.tenant(tenant.id)) as session:
        return await conversations.get_interaction(session, interaction_id)


async def timeline(db: Database, tenant: Tenant, interaction_id: uuid.UUID) -> list[str]:
    async with db.session(Scope.tenant(tenant.id)) as session:
        return [e.type for e in await conversations.timeline(session, interaction_id)]


async def counters_match_truth(db: Database, tenant: Tenant) -> bool:
    """True when no agent's load counter needed a recount."""
    async with db.session(Scope.tenant(tenant.id)) as session:
        return await routing.recount_loads(session) == 0
