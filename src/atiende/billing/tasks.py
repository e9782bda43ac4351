"""Billing jobs: the hourly lifecycle pass (renewals, cancellations, past due, suspension)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from atiende.billing import service
from atiende.core.db import now
from atiende.jobs import service as jobs
from atiende.jobs.registry import JobContext, JobRegistry

ADVANCE = "billing.advance"
ADVANCE_EVERY = timedelta(hours=1)


async def advance(session: AsyncSession, payload: dict[str, Any], ctx: JobContext) -> None:
    await service.advance(session, settings=ctx.settings)
    await schedule_advance(session)


async def schedule_advance(session: AsyncSession) -> None:
    """The next pass at the top of the next hour, once however many workers ask."""
    instant = now(session)
    due = instant.replace(minute=0, second=0, microsecond=0) + ADVANCE_EVERY
    await jobs.schedule(session, ADVANCE, run_at=due, dedupe_key=f"{ADVANCE}:{due.isoformat()}")


def register(registry: JobRegistry) -> None:
    registry.register(ADVANCE, advance)
