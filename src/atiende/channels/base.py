"""What every messaging-channel adapter provides, and the provider-neutral shapes they
translate to and from.

An adapter is the only code that knows a provider's wire format. It is pure where it can be
(``verify``, ``event_id``, ``parse``: bytes in, our dataclasses out) and does I/O only in
``send`` and ``fetch_media``, through the ``httpx.AsyncClient`` it is given (tests point it at
a local server that speaks the provider's API). The service (``channels/service.py``) owns
storage, dedupe, routing, retries and statuses; adapters never touch the database.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar, Protocol

import httpx

from atiende.core.errors import AtiendeError


class ChannelKind(enum.StrEnum):
    whatsapp = "whatsapp"
    telegram = "telegram"
    sms = "sms"
    api = "api"


# --- errors -------------------------------------------------------------------------------


class SignatureInvalid(AtiendeError):
    """The request is not from the provider (bad or missing signature / secret): nothing is
    stored."""

    status_code = 401
    code = "webhook_signature_invalid"
    default_message = "The webhook signature or secret is missing or wrong."


class PayloadMalformed(AtiendeError):
    """Authentic but not understood: kept for inspection, answered with a 4xx."""

    status_code = 400
    code = "webhook_payload_malformed"
    default_message = "The webhook payload is not one this channel understands."


class RetryLater(Exception):
    """The provider asked us to slow down (429, ``retry_after``) or is briefly unavailable
    (5xx, network): try the same delivery again after ``seconds``."""

    def __init__(self, message: str, *, seconds: float | None = None) -> None:
        super().__init__(message)
        self.seconds = seconds


class DeliveryFailed(Exception):
    """The provider refused the message for good (blocked bot, invalid number, outside the
    WhatsApp window…): shown to the agent on the message, never retried."""

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


# --- inbound ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RawRequest:
    """A webhook exactly as it arrived. ``url`` is the full public URL the provider called
    (Twilio signs it); ``headers`` have lower-case names; ``form`` is the parsed
    ``application/x-www-form-urlencoded`` body when there is one."""

    method: str
    url: str
    headers: Mapping[str, str]
    query: Mapping[str, str]
    body: bytes
    form: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class MediaRef:
    """Media the provider holds; ``fetch_media`` downloads it."""

    kind: str  # image | audio | video | document | sticker
    provider_ref: str  # media id (WhatsApp), file_id (Telegram), URL (Twilio, API)
    content_type: str | None = None
    filename: str | None = None
    caption: str | None = None


@dataclass(frozen=True, slots=True)
class InboundMessage:
    provider_message_id: str
    sender_id: str  # the customer's identity on this channel (wa_id, chat id, E.164, …)
    sender_name: str | None
    text: str  # what the desktop shows; for location / contacts / buttons a readable line
    sent_at: datetime | None = None
    media: Sequence[MediaRef] = ()
    kind: str = "text"  # text | media | location | contacts | interactive | button | unsupported
    data: Mapping[str, Any] = field(default_factory=dict)  # structured extras (location…)


@dataclass(frozen=True, slots=True)
class StatusUpdate:
    provider_message_id: str
    status: str  # sent | delivered | read | failed
    at: datetime | None = None
    error_code: str | None = None
    error_message: str | None = None


Inbound = InboundMessage | StatusUpdate


# --- outbound -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OutboundFile:
    filename: str
    content_type: str
    content: bytes


@dataclass(frozen=True, slots=True)
class OutboundRequest:
    """One message to send. ``to`` is the customer's identity on the channel; ``template``
    (WhatsApp) is ``{"name", "language", "parameters": [...]}`` when the message is an
    approved template."""

    to: str
    text: str
    files: Sequence[OutboundFile] = ()
    template: Mapping[str, Any] | None = None
    reference: str | None = None  # our message id, for idempotency headers / logs


@dataclass(frozen=True, slots=True)
class SendResult:
    provider_message_id: str


@dataclass(frozen=True, slots=True)
class AccountConfig:
    """A channel account as the adapter needs it: public settings, decrypted secrets, the
    public URL its webhooks arrive at."""

    account_id: str
    settings: Mapping[str, Any]
    secrets: Mapping[str, str]
    webhook_url: str

    def secret(self, name: str) -> str:
        value = self.secrets.get(name)
        if not value:
            raise DeliveryFailed(f"The channel has no {name!r} configured.", code="not_configured")
        return value


class Adapter(Protocol):
    kind: ClassVar[ChannelKind]
    #: settings (public) and secrets (write-only, encrypted at rest) an account needs
    setting_fields: ClassVar[tuple[str, ...]]
    secret_fields: ClassVar[tuple[str, ...]]

    def handshake(self, request: RawRequest, config: AccountConfig) -> str | None:
        """A provider's GET verification (WhatsApp): the body to answer with, or raise
        ``SignatureInvalid``. ``None`` when the channel has no handshake."""
        ...

    def verify(self, request: RawRequest, config: AccountConfig) -> None:
        """Raise ``SignatureInvalid`` unless the request is the provider's."""
        ...

    def event_id(self, request: RawRequest) -> str:
        """The provider's id of this delivery (the same on a redelivery); raise
        ``PayloadMalformed``."""
        ...

    def parse(self, request: RawRequest) -> list[Inbound]:
        """Messages and statuses in the request; raise ``PayloadMalformed``."""
        ...

    async def send(
        self, http: httpx.AsyncClient, config: AccountConfig, message: OutboundRequest
    ) -> SendResult:
        """Deliver one message; raise ``RetryLater`` or ``DeliveryFailed``."""
        ...

    async def fetch_media(
        self, http: httpx.AsyncClient, config: AccountConfig, media: MediaRef, *, max_bytes: int
    ) -> OutboundFile:
        """Download inbound media (at most ``max_bytes``, else ``PayloadMalformed``)."""
        ...


# --- helpers for adapters -----------------------------------------------------------------


class _Clock(Protocol):
    def now(self) -> datetime: ...


def media_kind(content_type: str | None) -> str:
    """``image``, ``audio``, ``video`` or, for anything else, ``document``."""
    major = (content_type or "").split("/", 1)[0].strip().lower()
    return major if major in {"image", "audio", "video"} else "document"


def retry_after_seconds(value: str | None, clock: _Clock) -> float | None:
    """A ``Retry-After`` header (seconds or an HTTP date) as seconds from now."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, (when - clock.now()).total_seconds())


async def read_capped(response: httpx.Response, max_bytes: int, *, what: str = "media") -> bytes:
    """The body, refused (``media_too_large``) as soon as it passes ``max_bytes``."""
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise PayloadMalformed(
            f"The {what} is larger than {max_bytes} bytes.", code="media_too_large"
        )
    content = bytearray()
    async for chunk in response.aiter_bytes():
        content += chunk
        if len(content) > max_bytes:
            raise PayloadMalformed(
                f"The {what} is larger than {max_bytes} bytes.", code="media_too_large"
            )
    return bytes(content)
