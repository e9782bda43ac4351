"""A tenant ready for a messaging channel: a queue, an available agent with an API client,
an admin who connects the channel, and the job runner that processes and delivers."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from sqlalchemy import select

from atiende.channels.models import ChannelAccount
from atiende.conversations.models import Interaction, Message
from atiende.core.db import Database, Scope
from atiende.identity import service as identity
from atiende.identity.models import Role
from atiende.jobs.service import JobRunner
from atiende.routing import service as routing
from atiende.routing.models import LicenceType, Presence, Queue, QueueMember
from atiende.tasks import build_registry
from atiende.tenancy.models import Tenant
from factories import Caller, caller, make_tenant
from routing_factories import make_queue


@dataclass
class Desk:
    app: FastAPI
    db: Database
    tenant: Tenant
    queue: Queue
    admin: Caller
    agent: Caller

    async def connect(
        self, kind: str, settings: dict[str, Any], secrets: dict[str, str]
    ) -> dict[str, Any]:
        response = await self.admin.client.post(
            "/api/v1/channels",
            json={
                "kind": kind,
                "name": f"{kind} line",
                "queue_id": str(self.queue.id),
                "settings": settings,
                "secrets": secrets,
            },
        )
        assert response.status_code == 201, response.text
        return response.json()

    async def run_jobs(self) -> int:
        runner = JobRunner(self.db, build_registry(), self.app.state.atiende.settings)
        total = 0
        while done := await runner.run_due():
            total += done
        await routing.settle()
        return total

    async def interactions(self) -> list[Interaction]:
        async with self.db.session(Scope.tenant(self.tenant.id), read_only=True) as session:
            return list((await session.scalars(select(Interaction))).all())

    async def messages(self, interaction_id: uuid.UUID) -> list[Message]:
        async with self.db.session(Scope.tenant(self.tenant.id), read_only=True) as session:
            return list(
                (
                    await session.scalars(
                        select(Message)
                        .where(Message.interaction_id == interaction_id)
                        .order_by(Message.created_at)
                    )
                ).all()
            )

    async def account(self, account_id: str) -> ChannelAccount:
        async with self.db.session(Scope.tenant(self.tenant.id), read_only=True) as session:
            account = await session.get(ChannelAccount, uuid.UUID(account_id))
        assert account is not None
        return account

    async def reply(self, interaction_id: uuid.UUID, body: str) -> dict[str, Any]:
        response = await self.agent.client.post(
            f"/api/v1/interactions/{interaction_id}/messages", json={"body": body}
        )
        assert response.status_code in (200, 201), response.text
        return response.json()


async def desk(app: FastAPI, channels: list[str]) -> Desk:
    db: Database = app.state.atiende.db
    tenant = await make_tenant(db)
    queue = await make_queue(db, tenant, channels=channels, auto_accept=True)
    admin = await caller(app, tenant, Role.admin)
    agent = await caller(app, tenant, Role.agent)
    async with db.session(Scope.tenant(tenant.id)) as session:
        await routing.ensure_agent(session, agent.user.id, licence=LicenceType.omnichannel)
        session.add(QueueMember(queue_id=queue.id, agent_id=agent.user.id))
        await routing.set_presence(
            session, identity.actor_for(agent.user), agent.user.id, Presence.available
        )
    await routing.settle()
    return Desk(app=app, db=db, tenant=tenant, queue=queue, admin=admin, agent=agent)
