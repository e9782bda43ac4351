"""Typed input and output of the webchat channel: widget administration and the visitor API."""

from __future__ import annotations

import ipaddress
import re
import uuid
from datetime import datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

Locale = Literal["es", "en"]
PrechatMode = Literal["required", "optional", "off"]

MAX_ATTACHMENT_BYTES = 25 * 1024 * 1024
DEFAULT_ATTACHMENT_BYTES = 10 * 1024 * 1024
DEFAULT_ATTACHMENT_TYPES = (
    "image/png",
    "image/jpeg",
    "image/gif",
    "image/webp",
    "application/pdf",
    "text/plain",
)
MAX_MESSAGE_CHARS = 4000

_COLOUR = re.compile(r"^#[0-9a-fA-F]{6}$")
_MIME = re.compile(r"^[a-z0-9][a-z0-9.+-]*/[a-z0-9][a-z0-9.+-]*$")
_HOST_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_DEFAULT_PORTS = {"http": 80, "https": 443}


def normalise_origin(value: str) -> str:
    """``scheme://host[:port]`` in the form browsers send in ``Origin``: lower-case, no
    default port, no path. Raises ``ValueError`` for anything else."""
    raw = value.strip()
    parts = urlsplit(raw)
    if parts.scheme not in _DEFAULT_PORTS:
        raise ValueError("an origin starts with https:// (or http:// for local development)")
    if parts.path not in {"", "/"} or parts.query or parts.fragment or "@" in parts.netloc:
        raise ValueError("an origin is only scheme://host[:port], without path or query")
    host = (parts.hostname or "").lower()
    try:
        port = parts.port
    except ValueError as error:
        raise ValueError("the port of an origin must be a number from 1 to 65535") from error
    if not host or not _valid_host(host):
        raise ValueError("the origin has no valid host name")
    shown_host = f"[{host}]" if ":" in host else host
    if port is None or port == _DEFAULT_PORTS[parts.scheme]:
        return f"{parts.scheme}://{shown_host}"
    return f"{parts.scheme}://{shown_host}:{port}"


def page_origin(origin: str | None, host: str | None, scheme: str) -> str | None:
    """The calling page's origin, normalised. A request without ``Origin`` (a same-origin
    GET, a non-browser client) counts as coming from this server's own origin; ``null``
    (sandboxed frames, ``file://``) and malformed values give None."""
    if origin is None:
        if not host:
            return None
        origin = f"{'https' if scheme in {'https', 'wss'} else 'http'}://{host}"
    try:
        return normalise_origin(origin)
    except ValueError:
        return None


def _valid_host(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        pass
    labels = host.split(".")
    return len(host) <= 253 and all(_HOST_LABEL.match(label) for label in labels)


def _origins(values: list[str]) -> list[str]:
    normalised: list[str] = []
    for value in values:
        origin = normalise_origin(value)
        if origin not in normalised:
            normalised.append(origin)
    return normalised


def _colour(value: str) -> str:
    if not _COLOUR.match(value):
        raise ValueError("use a colour like #3b5bdb")
    return value.lower()


def _mime_types(values: list[str]) -> list[str]:
    cleaned: list[str] = []
    for value in values:
        kind = value.strip().lower()
        if not _MIME.match(kind):
            raise ValueError(f"{value!r} is not a media type like image/png")
        if kind not in cleaned:
            cleaned.append(kind)
    return cleaned


Origins = Annotated[list[str], Field(max_length=50), AfterValidator(_origins)]
ThemeColour = Annotated[str, AfterValidator(_colour)]
MimeTypes = Annotated[list[str], Field(max_length=50), AfterValidator(_mime_types)]
AttachmentBytes = Annotated[int, Field(ge=1, le=MAX_ATTACHMENT_BYTES)]


class PrechatConfig(BaseModel):
    """Which fields the pre-chat form asks for."""

    model_config = ConfigDict(extra="forbid")

    name: PrechatMode = "optional"
    email: PrechatMode = "optional"
    phone: PrechatMode = "off"


class WidgetCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    queue_id: uuid.UUID
    allowed_origins: Origins = Field(default_factory=list)
    theme_color: ThemeColour = "#3b5bdb"
    greeting: str | None = Field(default=None, max_length=500)
    offline_message: str | None = Field(default=None, max_length=1000)
    prechat: PrechatConfig = Field(default_factory=PrechatConfig)
    default_locale: Locale = "es"
    max_attachment_bytes: AttachmentBytes = DEFAULT_ATTACHMENT_BYTES
    # Media types visitors may attach (exact types); an empty list turns attachments off.
    allowed_attachment_types: MimeTypes = Field(
        default_factory=lambda: list(DEFAULT_ATTACHMENT_TYPES)
    )
    is_active: bool = True


class WidgetUpdate(BaseModel):
    """A partial update: fields left out stay as they are. Only the texts may be null."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=100)
    queue_id: uuid.UUID | None = None
    allowed_origins: Origins | None = None
    theme_color: ThemeColour | None = None
    greeting: str | None = Field(default=None, max_length=500)
    offline_message: str | None = Field(default=None, max_length=1000)
    prechat: PrechatConfig | None = None
    default_locale: Locale | None = None
    max_attachment_bytes: AttachmentBytes | None = None
    allowed_attachment_types: MimeTypes | None = None
    is_active: bool | None = None

    @model_validator(mode="after")
    def _no_nulls(self) -> WidgetUpdate:
        for field in self.model_fields_set - {"greeting", "offline_message"}:
            if getattr(self, field) is None:
                raise ValueError(f"{field} cannot be null")
        return self


class WidgetOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    key: str
    name: str
    queue_id: uuid.UUID
    allowed_origins: list[str]
    theme_color: str
    greeting: str | None
    offline_message: str | None
    prechat: PrechatConfig
    default_locale: str
    max_attachment_bytes: int
    allowed_attachment_types: list[str]
    is_active: bool
    created_at: datetime


# --- the visitor API ------------------------------------------------------------------------


class AttachmentLimits(BaseModel):
    max_bytes: int
    types: list[str]


class PublicConfig(BaseModel):
    """What a page may know about a widget: no ids, no queue, no origins."""

    theme_color: str
    greeting: str
    offline_message: str
    prechat: PrechatConfig
    locale: str
    default_locale: str
    open: bool
    attachments: AttachmentLimits
    texts: dict[str, str]


class SessionCreate(BaseModel):
    """The pre-chat form. Fields the widget turned off are ignored when sent."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, max_length=200)
    email: str | None = Field(default=None, max_length=254)
    phone: str | None = Field(default=None, max_length=40)
    locale: Locale | None = None
    page_url: str | None = Field(default=None, max_length=2000)


class VisitorOut(BaseModel):
    visitor_id: uuid.UUID
    name: str | None
    email: str | None
    phone: str | None
    locale: str | None
    open: bool


class SessionCreated(VisitorOut):
    # The secret the widget keeps in localStorage; shown once, only its digest is stored.
    token: str


class VisitorMessageIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    body: str = Field(default="", max_length=MAX_MESSAGE_CHARS)
    # The widget's id for this message (a UUID); a re-send with the same id stores nothing new.
    client_id: str = Field(min_length=1, max_length=100)
    attachment_ids: list[uuid.UUID] = Field(default_factory=list, max_length=10)

    @model_validator(mode="after")
    def _not_empty(self) -> VisitorMessageIn:
        if not self.body.strip() and not self.attachment_ids:
            raise ValueError("a message needs a body or an attachment")
        return self


class VisitorMessageOut(BaseModel):
    """A message as the visitor sees it: theirs (inbound) or to them (outbound)."""

    id: uuid.UUID
    interaction_id: uuid.UUID
    direction: str
    author_kind: str
    body: str
    attachments: list[dict[str, Any]]
    client_id: str | None
    status: str
    created_at: datetime


class MessageHistory(BaseModel):
    messages: list[VisitorMessageOut]
    # The newest event id of the tenant when this was read: the websocket resumes from it.
    last_event_id: int
    # Status of the visitor's newest interaction as the visitor sees it (``ended`` when they
    # ended it while an agent still has it), or null before the first message.
    status: str | None


class TypingIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    typing: bool = True


class ReadIn(BaseModel):
    """Mark the agent's messages read: all of them, or those up to one message."""

    model_config = ConfigDict(extra="forbid")

    up_to: uuid.UUID | None = None


class ReadOut(BaseModel):
    marked: int


class EndOut(BaseModel):
    """The visitor's newest conversation after ending it: ``abandoned`` (no agent had taken
    it), ``ended`` (an agent had it and finishes it), or whatever it already was."""

    status: str | None


class AttachmentOut(BaseModel):
    id: uuid.UUID
    name: str
    content_type: str
    size: int
