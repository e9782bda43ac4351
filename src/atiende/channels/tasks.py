"""Channel jobs: apply stored webhooks; send a queued delivery."""

from __future__ import annotations

import functools
import logging
import ssl
import uuid
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from atiende.attachments.storage import AttachmentStore, attachment_store
from atiende.channels import outbox, service
from atiende.core.db import AFTER_COMMIT_KEY, require_tenant
from atiende.jobs import service as jobs
from atiende.jobs.registry import JobContext, JobRegistry

log = logging.getLogger(__name__)
HTTP_TIMEOUT = httpx.Timeout(15.0, connect=5.0)
# httpx logs request URLs at INFO, and Telegram puts the bot token in every URL.
logging.getLogger("httpx").setLevel(logging.WARNING)


@functools.cache
def _tls() -> ssl.SSLContext:
    """httpx's default TLS context (the CA bundle, or ``SSL_CERT_FILE``/``SSL_CERT_DIR``),
    built once: loading the bundle took ~60 ms, more than applying an event."""
    return httpx.create_ssl_context()


def _client() -> httpx.AsyncClient:
    return httpx.AsyncClient(timeout=HTTP_TIMEOUT, follow_redirects=False, verify=_tls())


async def process_inbound(session: AsyncSession, payload: dict[str, Any], ctx: JobContext) -> None:
    """Apply the events one intake transaction stored (``event_ids``; a job scheduled before
    intake batched them names one ``event_id``), in the order they arrived.

    One event alone fails as any job does: rolled back and tried again later. In a batch,
    each event runs in a savepoint: one that fails (a status that arrived before its
    message's send was recorded, say) is rolled back alone and set aside in a job of its
    own, so it holds up neither the others nor their commit. Each event is applied once
    either way: ``service.process`` skips an event that is no longer ``received``.
    """
    event_ids = [uuid.UUID(e) for e in payload.get("event_ids") or [payload["event_id"]]]
    blobs = attachment_store(ctx.settings)
    async with _client() as http:
        if len(event_ids) == 1:
            await service.process(
                session, event_ids[0], settings=ctx.settings, blobs=blobs, http=http
            )
            return
        for event_id in event_ids:
            await _process_or_set_aside(session, event_id, ctx, blobs, http)


async def _process_or_set_aside(
    session: AsyncSession,
    event_id: uuid.UUID,
    ctx: JobContext,
    blobs: AttachmentStore,
    http: httpx.AsyncClient,
) -> None:
    # What the event's processing asked to run after commit (bus events, routing) goes
    # with its savepoint if that is rolled back.
    callbacks: list[Any] = session.info.setdefault(AFTER_COMMIT_KEY, [])
    before = len(callbacks)
    try:
        async with session.begin_nested():
            await service.process(session, event_id, settings=ctx.settings, blobs=blobs, http=http)
    except Exception as error:
        del callbacks[before:]
        if isinstance(error, service.StatusTooEarly):
            log.info("inbound event %s waits for its message's send: %s", event_id, error)
        else:
            log.warning("inbound event %s failed; retried alone", event_id, exc_info=True)
        # The batch was this event's first attempt: the job of its own has the rest.
        await jobs.schedule(
            session,
            service.PROCESS,
            {"event_ids": [str(event_id)]},
            tenant_id=require_tenant(session),
            delay_seconds=jobs.backoff_seconds(1),
            dedupe_key=f"{service.PROCESS}:{event_id}:alone",
            max_attempts=SET_ASIDE_ATTEMPTS,
        )


SET_ASIDE_ATTEMPTS = 4  # after the first, in its batch: five in all, as for any job


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
