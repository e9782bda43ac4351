"""The durable outbox: an agent's message to a WhatsApp, Telegram, SMS or API customer is
stored with a ``Delivery`` in the same transaction as the message, then sent by a job.

- A rate limit per account (``rate_per_second`` setting; WhatsApp 80 by default) is shared
  by every worker: each send takes the next free slot on the account row.
- ``RetryLater`` (429 with ``Retry-After`` / ``retry_after``, 5xx, network) sends again
  after the provider's delay, or with exponential backoff; after ``MAX_ATTEMPTS`` the
  message fails.
- ``DeliveryFailed`` (blocked bot, invalid number, outside the WhatsApp window…) fails the
  message at once; the desktop shows the reason on it.
- The provider's message id is recorded with the send, so its delivery and read statuses
  (which may arrive in any order) find the message.
"""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from atiende.attachments import service as attachments
from atiende.attachments.storage import AttachmentStore
from atiende.channels.adapters import adapter_for
from atiende.channels.base import (
    ChannelKind,
    DeliveryFailed,
    OutboundFile,
    OutboundRequest,
    RetryLater,
)
from atiende.channels.models import ChannelAccount, Delivery, DeliveryStatus
from atiende.contacts.models import ContactIdentity
from atiende.conversations import service as conversations
from atiende.conversations.models import Interaction, Message, MessageDirection, MessageStatus
from atiende.core.config import Settings
from atiende.core.db import now
from atiende.core.errors import Conflict
from atiende.jobs import service as jobs

log = logging.getLogger(__name__)

DELIVER = "channels.deliver"
MAX_ATTEMPTS = 10
MAX_BACKOFF_SECONDS = 600.0
DEFAULT_RATE = {
    ChannelKind.whatsapp: 80.0,
    ChannelKind.telegram: 30.0,
    ChannelKind.sms: 10.0,
    ChannelKind.api: 50.0,
}
CHANNEL_KINDS = frozenset(kind.value for kind in ChannelKind)


class WindowClosed(Conflict):
    code = "whatsapp_window_closed"
    default_message = (
        "More than 24 hours since the customer last wrote: WhatsApp allows only an approved "
        "template until they write again."
    )


async def _recipient(session: AsyncSession, interaction: Interaction, kind: ChannelKind) -> str:
    from atiende.channels.service import IDENTITY

    value = await session.scalar(
        select(ContactIdentity.value)
        .where(
            ContactIdentity.contact_id == interaction.contact_id,
            ContactIdentity.kind == IDENTITY[kind],
        )
        .order_by(ContactIdentity.created_at)
        .limit(1)
    )
    if value is None:
        raise Conflict("The customer has no identity on this channel.", code="no_recipient")
    return value


async def window_open(session: AsyncSession, interaction: Interaction) -> bool:
    """Whether the customer wrote on this channel account in the last 24 hours."""
    last = await session.scalar(
        select(Message.created_at)
        .join(Interaction, Interaction.id == Message.interaction_id)
        .where(
            Interaction.contact_id == interaction.contact_id,
            Interaction.source_id == interaction.source_id,
            Message.direction == MessageDirection.inbound,
        )
        .order_by(Message.created_at.desc())
        .limit(1)
    )
    from atiende.channels.adapters import whatsapp

    return whatsapp.window_open(last, now(session))


async def enqueue(
    session: AsyncSession,
    interaction: Interaction,
    message: Message,
    *,
    template: dict[str, Any] | None = None,
) -> Delivery | None:
    """Queue an outbound message of a provider channel (nothing for webchat and voice)."""
    if interaction.channel.value not in CHANNEL_KINDS or interaction.source_id is None:
        return None
    account = await session.get(ChannelAccount, interaction.source_id)
    if account is None or not account.is_active:
        raise Conflict("The channel is switched off or removed.", code="channel_unavailable")
    if (
        account.kind is ChannelKind.whatsapp
        and template is None
        and not await window_open(session, interaction)
    ):
        raise WindowClosed()
    delivery = Delivery(
        account_id=account.id,
        message_id=message.id,
        recipient=await _recipient(session, interaction, account.kind),
        template=template,
        status=DeliveryStatus.queued,
        attempts=0,
        created_at=now(session),
    )
    session.add(delivery)
    await session.flush()
    await _schedule(session, delivery)
    return delivery


async def _schedule(session: AsyncSession, delivery: Delivery, delay: float | None = None) -> None:
    await jobs.schedule(
        session,
        DELIVER,
        payload={"delivery_id": str(delivery.id)},
        tenant_id=delivery.tenant_id,
        delay_seconds=delay,
        dedupe_key=f"{DELIVER}:{delivery.id}:{delivery.attempts}",
        max_attempts=3,
    )


def _backoff(attempt: int) -> float:
    return float(min(MAX_BACKOFF_SECONDS, 5.0 * 2.0 ** max(0, attempt - 1)))


async def _files(
    session: AsyncSession, message: Message, blobs: AttachmentStore
) -> list[OutboundFile]:
    files = []
    for ref in message.attachments or []:
        if "id" not in ref:
            continue
        meta, data = await attachments.open(session, uuid.UUID(str(ref["id"])), blobs=blobs)
        files.append(OutboundFile(filename=meta.name, content_type=meta.content_type, content=data))
    return files


async def deliver(  # noqa: PLR0911 - each outcome returns at once
    session: AsyncSession,
    delivery_id: uuid.UUID,
    *,
    settings: Settings,
    blobs: AttachmentStore,
    http: httpx.AsyncClient,
) -> str:
    """Send one queued delivery (in its tenant's scope); returns what happened."""
    from atiende.channels.service import config_of

    delivery = await session.get(Delivery, delivery_id)
    if delivery is None or delivery.status is not DeliveryStatus.queued:
        return "done"
    account = await session.get(ChannelAccount, delivery.account_id, with_for_update=True)
    message = await session.get(Message, delivery.message_id)
    if account is None or message is None:
        return "gone"
    instant = now(session)
    rate = float(account.settings.get("rate_per_second") or DEFAULT_RATE[account.kind])
    slot = max(instant, account.next_send_at or instant)
    wait = (slot - instant).total_seconds()
    if wait > 1.0:  # the account's rate is used up for now: take a later slot
        await _schedule(session, delivery, delay=wait)
        return "rate_limited"
    account.next_send_at = slot + timedelta(seconds=1.0 / max(rate, 0.001))
    request = OutboundRequest(
        to=delivery.recipient,
        text=message.body,
        files=await _files(session, message, blobs),
        template=delivery.template,
        reference=str(message.id),
    )
    delivery.attempts += 1
    try:
        result = await adapter_for(account.kind).send(http, config_of(account, settings), request)
    except DeliveryFailed as error:
        await _fail(session, delivery, message, f"{error.code or 'failed'}: {error}")
        return "failed"
    except (RetryLater, httpx.HTTPError) as error:
        delivery.last_error = f"{type(error).__name__}: {error}"[:1000]
        if delivery.attempts >= MAX_ATTEMPTS:
            await _fail(
                session, delivery, message, f"gave up after {delivery.attempts} attempts: {error}"
            )
            return "failed"
        seconds = error.seconds if isinstance(error, RetryLater) and error.seconds else None
        await _schedule(session, delivery, delay=seconds or _backoff(delivery.attempts))
        return "retry"
    delivery.status = DeliveryStatus.sent
    delivery.provider_message_id = result.provider_message_id
    delivery.sent_at = now(session)
    delivery.last_error = None
    message.provider_id = result.provider_message_id
    await session.flush()
    await conversations.set_message_status(session, message, MessageStatus.sent)
    return "sent"


async def _fail(session: AsyncSession, delivery: Delivery, message: Message, reason: str) -> None:
    delivery.status = DeliveryStatus.failed
    delivery.last_error = reason[:1000]
    await session.flush()
    await conversations.set_message_status(
        session, message, MessageStatus.failed, error=reason[:500]
    )
