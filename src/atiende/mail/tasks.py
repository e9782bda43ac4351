"""The job that sends a queued mail."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from atiende.jobs import service as jobs
from atiende.jobs.registry import JobContext, JobRegistry
from atiende.mail import service
from atiende.mail.sender import sender_for


async def send_mail(session: AsyncSession, payload: dict[str, Any], ctx: JobContext) -> None:
    # The runner records a failure only on the job row, and rolls back what the handler
    # wrote; so the last attempt marks the mail failed itself, and returns.
    job = await jobs.get_job(session, ctx.job_id)
    await service.deliver(
        session,
        uuid.UUID(payload["mail_id"]),
        sender_for(ctx.settings),
        sender_address=ctx.settings.mail_from,
        attempt=ctx.attempt,
        last_attempt=ctx.attempt >= job.max_attempts,
    )


def register(registry: JobRegistry) -> None:
    registry.register(service.SEND_JOB, send_mail)
