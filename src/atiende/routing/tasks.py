"""Durable jobs of the routing engine: offer time-outs, max-wait overflow, wrap-up ends, and
a once-a-minute sweep that routes every tenant with waiting work (catching schedule openings
and any round a crash interrupted)."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from atiende.core.db import SCOPE_KEY, Scope, now
from atiende.jobs import service as jobs
from atiende.jobs.registry import JobContext, JobRegistry
from atiende.routing import service


async def offer_timeout(session: AsyncSession, payload: dict[str, Any], ctx: JobContext) -> None:
    await service.expire_offers(session, [uuid.UUID(i) for i in payload["offer_ids"]])


async def max_wait(session: AsyncSession, payload: dict[str, Any], ctx: JobContext) -> None:
    await service.overflow_if_waiting(
        session, uuid.UUID(payload["interaction_id"]), payload["enqueued_at"]
    )


async def wrap_up_end(session: AsyncSession, payload: dict[str, Any], ctx: JobContext) -> None:
    await service.end_wrap_up(session, uuid.UUID(payload["interaction_id"]))


async def sweep(session: AsyncSession, payload: dict[str, Any], ctx: JobContext) -> None:
    for tenant_id in await service.tenants_to_sweep(session):
        session.info[SCOPE_KEY] = Scope.tenant(tenant_id)
        try:
            await service.recount_loads(session)
            await service.route(session)
        finally:
            session.info[SCOPE_KEY] = Scope.system()
    await schedule_sweep(session)


async def schedule_sweep(session: AsyncSession) -> None:
    due = now(session).replace(second=0, microsecond=0) + service.SWEEP_EVERY
    await jobs.schedule(
        session, service.SWEEP_JOB, run_at=due, dedupe_key=f"{service.SWEEP_JOB}:{due.isoformat()}"
    )


def register(registry: JobRegistry) -> None:
    registry.register(service.OFFER_TIMEOUT_JOB, offer_timeout)
    registry.register(service.MAX_WAIT_JOB, max_wait)
    registry.register(service.WRAP_UP_END_JOB, wrap_up_end)
    registry.register(service.SWEEP_JOB, sweep)
