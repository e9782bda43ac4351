"""Voice jobs: the daily recording retention pass (``voice.recordings_retention``)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Final

from sqlalchemy.ext.asyncio import AsyncSession

from atiende.core.db import now
from atiende.jobs import service as jobs
from atiende.jobs.registry import JobContext, JobRegistry
from atiende.voice import retention

RETENTION: Final = "voice.recordings_retention"
#: The daily pass runs at this hour (UTC), when the PBXs carry few calls in the Americas.
RETENTION_HOUR_UTC: Final = 8
#: When a pass leaves work (a full batch, the time budget), the next one starts this soon.
RETENTION_FOLLOW_UP: Final = timedelta(minutes=1)


async def recordings_retention(
    session: AsyncSession, payload: dict[str, Any], ctx: JobContext
) -> None:
    run = await retention.delete_expired_recordings(session, settings=ctx.settings)
    if run.more:
        due = now(session).replace(second=0, microsecond=0) + RETENTION_FOLLOW_UP
        await _schedule(session, due)
    await schedule_retention(session)


def next_daily_run(instant: datetime) -> datetime:
    """The next ``RETENTION_HOUR_UTC`` o'clock after ``instant`` (pure)."""
    due = instant.replace(hour=RETENTION_HOUR_UTC, minute=0, second=0, microsecond=0)
    return due if due > instant else due + timedelta(days=1)


async def schedule_retention(session: AsyncSession) -> None:
    """The next daily pass, once however many workers ask."""
    await _schedule(session, next_daily_run(now(session)))


async def _schedule(session: AsyncSession, due: datetime) -> None:
    await jobs.schedule(session, RETENTION, run_at=due, dedupe_key=f"{RETENTION}:{due.isoformat()}")


def register(registry: JobRegistry) -> None:
    registry.register(RETENTION, recordings_retention)
