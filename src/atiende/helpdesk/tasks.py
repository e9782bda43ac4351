"""Helpdesk jobs: the per-minute SLA watch (at-risk and breach warnings to support)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from atiende.core.db import now
from atiende.helpdesk import service
from atiende.jobs import service as jobs
from atiende.jobs.registry import JobContext, JobRegistry

WATCH = "helpdesk.sla_watch"
WATCH_EVERY = timedelta(minutes=1)


async def watch(session: AsyncSession, payload: dict[str, Any], ctx: JobContext) -> None:
    await service.watch_sla(session, settings=ctx.settings)
    await schedule_watch(session)


async def schedule_watch(session: AsyncSession) -> None:
    instant = now(session)
    due = instant.replace(second=0, microsecond=0) + WATCH_EVERY
    await jobs.schedule(session, WATCH, run_at=due, dedupe_key=f"{WATCH}:{due.isoformat()}")


def register(registry: JobRegistry) -> None:
    registry.register(WATCH, watch)
