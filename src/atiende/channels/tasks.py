"""Channel jobs: apply a stored webhook; send a queued delivery."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from atiende.attachments.storage import attachment_store
from atiende.channels import outbox, service
from atiende.jobs.registry import JobContext, JobRegistry

HTTP_TIMEOUT = httpx.Timeout(15.0, connect=5.0)
# httpx logs request URLs at INFO, and Telegram puts the bot token in every URL.
logging.getLogger("httpx").setLevel(logging.WARNING)


def _client() -> httpx.AsyncClient:
    return httpx.AsyncClient(timeout=HTTP_TIMEOUT, follow_redirects=False)


async def process_inbound(session: AsyncSession, payload: dict[str, Any], ctx: JobContext) -> None:
    async with _client() as http:
        await service.process(
            session,
            uuid.UUID(payload["event_id"]),
            settings=ctx.settings,
            blobs=attachment_store(ctx.settings),
            http=http,
        )


async def deliver(session: AsyncSession, payload: dict[str, Any], ctx: JobContext) -> None:
    async with _client() as http:
        await outbox.deliver(
            session,
            uuid.UUID(payload["delivery_id"]),
            settings=ctx.settings,
            blobs=attachment_store(ctx.settings),
            http=http,
        )


def register(registry: JobRegistry) -> None:
    registry.register(service.PROCESS, process_inbound)
    registry.register(outbox.DELIVER, deliver)
