"""Every job kind the application knows, registered in one place."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from atiende.billing import tasks as billing_tasks
from atiende.channels import tasks as channel_tasks
from atiende.core.db import Database, Scope, now
from atiende.helpdesk import tasks as helpdesk_tasks
from atiende.identity import service as identity
from atiende.jobs import service as jobs
from atiende.jobs.registry import JobContext, JobRegistry
from atiende.mail import tasks as mail_tasks
from atiende.realtime import service as realtime
from atiende.routing import tasks as routing_tasks
from atiende.voice import tasks as voice_tasks
from atiende.webchat import tasks as webchat_tasks

HOUSEKEEPING = "maintenance.housekeeping"
HOUSEKEEPING_EVERY = timedelta(hours=1)
FINISHED_JOB_RETENTION = timedelta(days=30)


async def housekeeping(session: AsyncSession, payload: dict[str, Any], ctx: JobContext) -> None:
    """Hourly: drop expired sessions, stale login attempts and old events; then schedule the
    next run (idempotently, keyed by its due hour)."""
    await identity.purge_expired(session, login_window_seconds=ctx.settings.login_window_seconds)
    await realtime.prune(session)
    await jobs.prune_finished(session, FINISHED_JOB_RETENTION)
    await schedule_housekeeping(session)


async def schedule_housekeeping(session: AsyncSession) -> None:
    instant = now(session)
    due = instant.replace(minute=0, second=0, microsecond=0) + HOUSEKEEPING_EVERY
    await jobs.schedule(
        session, HOUSEKEEPING, run_at=due, dedupe_key=f"{HOUSEKEEPING}:{due.isoformat()}"
    )


async def ensure_recurring(db: Database) -> None:
    """Called by every worker at start: recurring jobs exist once, however many start."""
    async with db.session(Scope.system()) as session:
        await schedule_housekeeping(session)
        await routing_tasks.schedule_sweep(session)
        await billing_tasks.schedule_advance(session)
        await helpdesk_tasks.schedule_watch(session)
        await voice_tasks.schedule_retention(session)


def build_registry() -> JobRegistry:
    registry = JobRegistry()
    registry.register(HOUSEKEEPING, housekeeping)
    routing_tasks.register(registry)
    billing_tasks.register(registry)
    helpdesk_tasks.register(registry)
    channel_tasks.register(registry)
    mail_tasks.register(registry)
    voice_tasks.register(registry)
    webchat_tasks.register(registry)
    return registry
