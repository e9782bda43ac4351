"""The generic API channel: any system a customer runs (their app, a bot platform, another
messenger) talks to Atiende over plain HTTPS and JSON.

Inbound, the customer's system posts ``ApiInboundMessage`` or ``ApiStatusReport`` to the
account's webhook URL with ``Authorization: Bearer <inbound_token>``. Outbound, Atiende posts
each agent message to the account's ``outbound_url``, signed with ``X-Atiende-Signature``.

Every outbound request (sending, and downloading the attachments a customer's message points
at) goes only to public addresses unless the account allows private ones: the host is
resolved and every address is checked (``destination_allowed``). Plain HTTP then connects
to the checked address itself, so a DNS answer that changes between check and use cannot
redirect it; HTTPS relies on the certificate, which only the named host can present.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import ipaddress
import json
import socket
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar, Final, Literal
from urllib.parse import urljoin, urlsplit

import httpx
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, model_validator

from atiende.channels.base import (
    AccountConfig,
    ChannelKind,
    DeliveryFailed,
    Inbound,
    InboundMessage,
    MediaRef,
    OutboundFile,
    OutboundRequest,
    PayloadMalformed,
    RawRequest,
    RetryLater,
    SendResult,
    SignatureInvalid,
    StatusUpdate,
    media_kind,
    read_capped,
    retry_after_seconds,
)
from atiende.conversations.schemas import MAX_BODY
from atiende.core.clock import Clock, SystemClock

SIGNATURE_HEADER: Final = "X-Atiende-Signature"
TIMESTAMP_HEADER: Final = "X-Atiende-Timestamp"
MAX_REDIRECTS: Final = 5
MAX_ATTACHMENTS: Final = 10
MAX_ANSWER_BYTES: Final = 64 * 1024  # of the endpoint's answer to a message

# --- the wire format ------------------------------------------------------------------------


class ApiSender(BaseModel):
    """Who wrote the message, in the customer's system."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=200, description="The customer's id for them.")
    name: str | None = Field(default=None, max_length=200, description="A display name.")


class ApiAttachment(BaseModel):
    """A file the message carries, downloadable by Atiende without credentials."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(min_length=1, max_length=2000, pattern=r"(?i)^https?://")
    content_type: str | None = Field(default=None, max_length=200, examples=["image/jpeg"])
    filename: str | None = Field(default=None, max_length=255, examples=["receipt.jpg"])


class ApiInboundMessage(BaseModel):
    """A message from a customer's end user, posted to the account's webhook URL."""

    model_config = ConfigDict(
        extra="forbid",
        populate_by_name=True,
        json_schema_extra={
            "examples": [
                {
                    "message_id": "msg-20260115-0001",
                    "from": {"id": "user-4821", "name": "Ana López"},
                    "text": "Hola, ¿dónde está mi pedido?",
                    "sent_at": "2026-01-15T12:30:00Z",
                },
                {
                    "message_id": "msg-20260115-0002",
                    "from": {"id": "user-4821", "name": None},
                    "text": "Foto del recibo",
                    "attachments": [
                        {
                            "url": "https://files.example.com/r/8f2c.jpg",
                            "content_type": "image/jpeg",
                            "filename": "recibo.jpg",
                        }
                    ],
                },
            ]
        },
    )

    message_id: str = Field(
        min_length=1,
        max_length=200,
        description="The sender's id for this message; a repeated id is accepted once.",
    )
    sender: ApiSender = Field(alias="from")
    text: str = Field(max_length=MAX_BODY, description="May be empty when there are files.")
    attachments: list[ApiAttachment] = Field(default_factory=list, max_length=MAX_ATTACHMENTS)
    sent_at: AwareDatetime | None = Field(
        default=None, description="When the end user sent it, ISO 8601 with a UTC offset."
    )

    @model_validator(mode="after")
    def _has_content(self) -> ApiInboundMessage:
        if not self.text and not self.attachments:
            raise ValueError("A message needs text or attachments.")
        return self


class ApiStatus(BaseModel):
    model_config = ConfigDict(extra="forbid")

    message_id: str = Field(
        min_length=1,
        max_length=200,
        description="The id the endpoint answered when it received the message (its JSON "
        '"id"), else the "message_id" Atiende sent.',
    )
    status: Literal["delivered", "read", "failed"]
    error: str | None = Field(default=None, max_length=1000)


class ApiStatusReport(BaseModel):
    """What happened to a message Atiende sent, posted to the account's webhook URL."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"status": {"message_id": "3f0c9a4e", "status": "delivered"}},
                {
                    "status": {
                        "message_id": "3f0c9a4e",
                        "status": "failed",
                        "error": "The user blocked the app.",
                    }
                },
            ]
        },
    )

    status: ApiStatus


def _decode(body: bytes) -> ApiInboundMessage | ApiStatusReport:
    try:
        document = json.loads(body)
    except (ValueError, RecursionError) as error:
        raise PayloadMalformed("The body is not JSON.") from error
    if not isinstance(document, dict):
        raise PayloadMalformed("The body is not a JSON object.")
    model: type[ApiInboundMessage | ApiStatusReport] = (
        ApiStatusReport if "status" in document else ApiInboundMessage
    )
    try:
        return model.model_validate(document)
    except ValidationError as error:
        raise PayloadMalformed(
            "The body is not a message or a status report.",
            errors=error.errors(include_url=False, include_context=False, include_input=False),
        ) from error


# --- outbound signatures --------------------------------------------------------------------


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """``X-Atiende-Signature``: ``sha256=`` + hex HMAC-SHA256 of ``timestamp.body``."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + digest.hexdigest()


# --- where outbound requests may go ---------------------------------------------------------

_NAT64: Final = ipaddress.IPv6Network("64:ff9b::/96")
#: IETF protocol assignments: not globally reachable, though Python calls most of it global.
_IETF_PROTOCOL: Final = ipaddress.IPv4Network("192.0.0.0/24")


def _address_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address):
        # IPv6 forms that carry an IPv4 address are judged by that address.
        if address.ipv4_mapped is not None:
            return _address_public(address.ipv4_mapped)
        if address in _NAT64:
            return _address_public(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
        if address.sixtofour is not None and not _address_public(address.sixtofour):
            return False
        if address.is_site_local:
            return False
    elif address in _IETF_PROTOCOL:
        return False
    return address.is_global and not (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
    )


def destination_allowed(url: str, resolved_addresses: Iterable[str], allow_private: bool) -> bool:
    """Whether Atiende may send a request to ``url`` whose host resolved to
    ``resolved_addresses``: http(s) only, and unless ``allow_private``, a host that is not
    ``localhost`` and resolves only to public addresses (no private, loopback, link-local,
    multicast, reserved or unspecified one, IPv4 or IPv6, including IPv4 inside IPv6)."""
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").rstrip(".").lower()
    except ValueError:
        return False
    if parts.scheme.lower() not in {"http", "https"} or not host:
        return False
    if allow_private:
        return True
    if host == "localhost" or host.endswith(".localhost"):
        return False
    addresses = [*resolved_addresses, host] if _is_address(host) else list(resolved_addresses)
    return bool(addresses) and all(_text_address_public(text) for text in addresses)


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _text_address_public(text: str) -> bool:
    try:
        return _address_public(ipaddress.ip_address(text))
    except ValueError:
        return False


Resolver = Callable[[str, int], Awaitable[list[str]]]


async def resolve_host(host: str, port: int) -> list[str]:
    """The addresses a host name resolves to (an address literal is its own answer)."""
    try:
        return [str(ipaddress.ip_address(host))]
    except ValueError:
        pass
    infos = await asyncio.get_running_loop().getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class DestinationRefused(Exception):
    """The URL is not one Atiende may call."""


@dataclass(frozen=True, slots=True)
class _Target:
    url: httpx.URL
    addresses: list[str]


def _flag(value: object) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in {"1", "true", "yes", "on"}
    return value is True


async def _read_prefix(response: httpx.Response, limit: int) -> bytes:
    """At most ``limit`` bytes of the body: an endpoint's answer is small, and a huge one is
    not read into memory."""
    content = bytearray()
    async for chunk in response.aiter_bytes():
        content += chunk
        if len(content) >= limit:
            break
    return bytes(content[:limit])


# --- the adapter --------------------------------------------------------------------------


class GenericApiAdapter:
    """A customer's own channel over HTTP + JSON. Settings: ``outbound_url``,
    ``allow_private_network``; secrets: ``inbound_token``, ``signing_secret``."""

    kind: ClassVar[ChannelKind] = ChannelKind.api
    setting_fields: ClassVar[tuple[str, ...]] = ("outbound_url", "allow_private_network")
    secret_fields: ClassVar[tuple[str, ...]] = ("inbound_token", "signing_secret")

    def __init__(self, clock: Clock | None = None, resolver: Resolver | None = None) -> None:
        self._clock = clock or SystemClock()
        self._resolve = resolver or resolve_host

    def handshake(self, request: RawRequest, config: AccountConfig) -> str | None:
        return None

    def verify(self, request: RawRequest, config: AccountConfig) -> None:
        """``Authorization: Bearer <inbound_token>``, compared in constant time."""
        expected = config.secrets.get("inbound_token")
        scheme, _, presented = request.headers.get("authorization", "").strip().partition(" ")
        if not expected or scheme.lower() != "bearer" or not presented.strip():
            raise SignatureInvalid()
        if not hmac.compare_digest(presented.strip().encode(), expected.encode()):
            raise SignatureInvalid()

    def event_id(self, request: RawRequest) -> str:
        document = _decode(request.body)
        if isinstance(document, ApiStatusReport):
            return f"status:{document.status.message_id}:{document.status.status}"
        return document.message_id

    def parse(self, request: RawRequest) -> list[Inbound]:
        document = _decode(request.body)
        if isinstance(document, ApiStatusReport):
            report = document.status
            return [
                StatusUpdate(
                    provider_message_id=report.message_id,
                    status=report.status,
                    error_message=report.error if report.status == "failed" else None,
                )
            ]
        media = tuple(
            MediaRef(
                kind=media_kind(attachment.content_type),
                provider_ref=attachment.url,
                content_type=attachment.content_type,
                filename=attachment.filename,
            )
            for attachment in document.attachments
        )
        sent_at: datetime | None = document.sent_at
        return [
            InboundMessage(
                provider_message_id=document.message_id,
                sender_id=document.sender.id,
                sender_name=document.sender.name,
                text=document.text,
                sent_at=sent_at,
                media=media,
                kind="media" if media else "text",
            )
        ]

    # --- outbound ---

    async def _target(self, url: str, config: AccountConfig) -> _Target:
        """The URL with the addresses it may be called at; raises ``DestinationRefused``, or
        ``OSError`` when the name does not resolve."""
        try:
            parsed = httpx.URL(url)
        except (httpx.InvalidURL, ValueError) as error:
            raise DestinationRefused(f"{url!r} is not a URL.") from error
        if parsed.scheme not in {"http", "https"} or not parsed.raw_host:
            raise DestinationRefused("Only http and https URLs may be called.")
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        host = parsed.raw_host.decode("ascii")
        addresses = [host] if _is_address(host) else await self._resolve(host, port)
        if not addresses:
            raise OSError(f"{parsed.host} resolves to no address.")
        allow_private = _flag(config.settings.get("allow_private_network"))
        if not destination_allowed(str(parsed), addresses, allow_private):
            raise DestinationRefused(
                f"{parsed.host} resolves to an address Atiende may not call "
                "(private, loopback, link-local, multicast or reserved)."
            )
        return _Target(parsed, addresses)

    async def _request(
        self,
        http: httpx.AsyncClient,
        method: str,
        target: _Target,
        *,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """One request to the target; the response is streamed (the caller closes it) and
        redirects are never followed.

        Plain HTTP goes to the checked addresses themselves, in turn until one accepts the
        connection, with the URL's host in the ``Host`` header: resolving the name again
        could give another address. HTTPS keeps the name: the certificate must prove it,
        which no address the name might be moved to can do, and pooled TLS connections are
        only ever reused for the name they were verified for.
        """
        if target.url.scheme == "https":
            request = http.build_request(method, target.url, content=content, headers=headers)
            return await http.send(request, stream=True, follow_redirects=False)
        last_error: httpx.ConnectError | None = None
        for address in target.addresses:
            request = http.build_request(
                method,
                target.url.copy_with(host=address),
                content=content,
                headers={**(headers or {}), "Host": target.url.netloc.decode("ascii")},
            )
            try:
                return await http.send(request, stream=True, follow_redirects=False)
            except httpx.ConnectError as error:  # nothing was sent: the next address is safe
                last_error = error
        assert last_error is not None  # a target always has at least one address
        raise last_error

    async def send(
        self, http: httpx.AsyncClient, config: AccountConfig, message: OutboundRequest
    ) -> SendResult:
        """POST the message to ``outbound_url``, signed. A retry sends the same
        ``message_id``, so the endpoint can tell a repeat from a new message."""
        outbound_url = config.settings.get("outbound_url")
        if not isinstance(outbound_url, str) or not outbound_url.strip():
            raise DeliveryFailed("The channel has no outbound_url.", code="not_configured")
        secret = config.secret("signing_secret")
        reference = message.reference or uuid.uuid4().hex
        body = json.dumps(
            {
                "message_id": reference,
                "to": message.to,
                "text": message.text,
                "attachments": [
                    {
                        "filename": file.filename,
                        "content_type": file.content_type,
                        "content_base64": base64.b64encode(file.content).decode("ascii"),
                    }
                    for file in message.files
                ],
            },
            ensure_ascii=False,
            separators=(",", ":"),
        ).encode()
        timestamp = str(int(self._clock.now().timestamp()))
        headers = {
            "Content-Type": "application/json",
            "Accept": "application/json",
            "Idempotency-Key": reference,
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: sign(secret, timestamp, body),
        }
        try:
            target = await self._target(outbound_url.strip(), config)
        except DestinationRefused as error:
            raise DeliveryFailed(str(error), code="destination_not_allowed") from error
        except OSError as error:
            raise RetryLater(f"The outbound URL's host does not resolve: {error}") from error
        try:
            response = await self._request(http, "POST", target, content=body, headers=headers)
            try:
                answer = await _read_prefix(response, MAX_ANSWER_BYTES)
            finally:
                await response.aclose()
        except httpx.TransportError as error:
            raise RetryLater(f"The endpoint could not be reached: {error!r}") from error
        status = response.status_code
        if response.is_success:
            return SendResult(provider_message_id=_answered_id(answer) or reference)
        excerpt = answer[:200].decode("utf-8", errors="replace")
        if status == 429 or status >= 500:
            seconds = retry_after_seconds(response.headers.get("retry-after"), self._clock)
            raise RetryLater(f"The endpoint answered HTTP {status}: {excerpt}", seconds=seconds)
        raise DeliveryFailed(
            f"The endpoint answered HTTP {status}: {excerpt}", code=f"http_{status}"
        )

    async def fetch_media(
        self, http: httpx.AsyncClient, config: AccountConfig, media: MediaRef, *, max_bytes: int
    ) -> OutboundFile:
        """Download an attachment's URL, following at most five redirects, each of them
        checked like the first URL."""
        url = media.provider_ref
        for _ in range(MAX_REDIRECTS + 1):
            try:
                target = await self._target(url, config)
                response = await self._request(http, "GET", target)
            except DestinationRefused as error:
                raise PayloadMalformed(str(error), code="destination_not_allowed") from error
            except (OSError, httpx.TransportError) as error:
                raise RetryLater(f"The attachment could not be reached: {error!r}") from error
            try:
                location = response.headers.get("location")
                if response.is_redirect and location:
                    url = urljoin(url, location)
                    continue
                return await self._file(response, media, max_bytes)
            except httpx.TransportError as error:
                raise RetryLater(f"The attachment download broke off: {error!r}") from error
            finally:
                await response.aclose()
        raise PayloadMalformed(
            "The attachment redirects too many times.", code="too_many_redirects"
        )

    async def _file(
        self, response: httpx.Response, media: MediaRef, max_bytes: int
    ) -> OutboundFile:
        status = response.status_code
        if status == 429 or status >= 500:
            seconds = retry_after_seconds(response.headers.get("retry-after"), self._clock)
            raise RetryLater(f"The attachment answered HTTP {status}.", seconds=seconds)
        if not response.is_success:
            raise PayloadMalformed(
                f"The attachment answered HTTP {status}.", code="media_unavailable"
            )
        content = await read_capped(response, max_bytes, what="attachment")
        header_type = response.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        stem = urlsplit(media.provider_ref).path.rstrip("/").rsplit("/", 1)[-1]
        return OutboundFile(
            filename=media.filename or stem or "attachment",
            content_type=media.content_type or header_type or "application/octet-stream",
            content=content,
        )


def _answered_id(answer: bytes) -> str | None:
    try:
        document = json.loads(answer)
    except (ValueError, RecursionError):
        return None
    if not isinstance(document, dict):
        return None
    answered = document.get("id")
    if isinstance(answered, bool) or not isinstance(answered, str | int):
        return None
    return str(answered) or None
