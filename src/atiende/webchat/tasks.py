"""Durable jobs of the webchat channel: checking on a visitor whose widget went away while
their conversation still waited for an agent."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from atiende.jobs.registry import JobContext, JobRegistry
from atiende.webchat import service


async def visitor_left(session: AsyncSession, payload: dict[str, Any], ctx: JobContext) -> None:
    await service.check_visitor_left(
        session, uuid.UUID(payload["visitor_id"]), grace=service.leave_grace(ctx.settings)
    )


def register(registry: JobRegistry) -> None:
    registry.register(service.VISITOR_LEFT_JOB, visitor_left)
