"""WhatsApp Business Platform, Cloud API (Meta): webhooks in, Graph API calls out.

Inbound: Meta verifies the callback URL with a GET (``hub.mode``, ``hub.verify_token``,
``hub.challenge``) and then POSTs batches signed with ``X-Hub-Signature-256`` (HMAC-SHA256 of
the raw body with the app secret). One POST may hold many messages and statuses for several
phone numbers, and a redelivery repeats the same body, so a delivery is identified by the
SHA-256 of its body.

Outbound: ``POST /{phone_number_id}/messages`` with a bearer token; files are uploaded first
with ``POST /{phone_number_id}/media`` and then sent by media id. Free-form messages are only
accepted inside the 24-hour customer service window (``window_open``); outside it only
approved templates (``sync_templates``) may be sent.

Wire formats follow the provider's API reference.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import mimetypes
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Final
from urllib.parse import urlsplit

import httpx

from atiende.attachments.media import normalise_media_type, safe_name
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
)

DEFAULT_API_BASE: Final = "https://graph.facebook.com/v25.0"
DEFAULT_RATE_PER_SECOND: Final = 80.0
CUSTOMER_SERVICE_WINDOW: Final = timedelta(hours=24)

MAX_TEXT: Final = 4096  # characters in a text message body
MAX_CAPTION: Final = 1024  # characters in a media caption
MAX_TEMPLATE_PAGES: Final = 50

SIGNATURE_HEADER: Final = "x-hub-signature-256"
_SIGNATURE = re.compile(r"sha256=([0-9a-fA-F]{64})")
# Meta's challenge is a number; anything else is not echoed back.
_CHALLENGE = re.compile(r"[A-Za-z0-9_.\-]{1,256}")
_GRAPH_ID = re.compile(r"[A-Za-z0-9_\-]{1,128}")
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z0-9_]+)\s*\}\}")

# Which of our files WhatsApp takes as which message type, and the size each allows; any
# other type, or a file over its type's limit, goes as a document.
_MiB: Final = 1024 * 1024
_MEDIA_TYPES: Final[dict[str, tuple[frozenset[str], int]]] = {
    "image": (frozenset({"image/jpeg", "image/png"}), 5 * _MiB),
    "video": (frozenset({"video/mp4", "video/3gpp"}), 16 * _MiB),
    "audio": (
        frozenset({"audio/aac", "audio/amr", "audio/mpeg", "audio/mp4", "audio/ogg"}),
        16 * _MiB,
    ),
}
_MAX_DOCUMENT: Final = 100 * _MiB
# File name extensions for the types WhatsApp delivers (the system's table varies).
_EXTENSIONS: Final = {
    "image/jpeg": ".jpg",
    "image/png": ".png",
    "image/webp": ".webp",
    "audio/ogg": ".ogg",
    "audio/mpeg": ".mp3",
    "audio/aac": ".aac",
    "audio/amr": ".amr",
    "audio/mp4": ".m4a",
    "video/mp4": ".mp4",
    "video/3gpp": ".3gp",
    "application/pdf": ".pdf",
}
_CAPTIONED: Final = frozenset({"image", "video", "document"})
_MEDIA_MESSAGES: Final = frozenset({"image", "audio", "video", "document", "sticker"})

_STATUSES: Final = {
    "sent": "sent",
    "delivered": "delivered",
    "read": "read",
    "played": "read",  # a voice message was played: it was read
    "failed": "failed",
}

# Graph error codes that mean "slow down" (with our wait when no Retry-After is given) and
# those that mean the platform is briefly unavailable.
_THROTTLED: Final = {4: 300.0, 80007: 300.0, 130429: 5.0, 131048: 300.0, 131056: 10.0}
_THROTTLED_DEFAULT: Final = 30.0
_TRANSIENT: Final = frozenset({1, 2, 131000, 131016, 133004})
OUTSIDE_WINDOW: Final = 131047
TOKEN_EXPIRED: Final = 190


def window_open(last_inbound_at: datetime | None, now: datetime) -> bool:
    """Whether free-form messages may be sent: the customer wrote to us in the last 24 hours.

    Only the customer's messages open or refresh the window; ours never do. Outside it the
    only thing WhatsApp accepts is an approved template.
    """
    if last_inbound_at is None:
        return False
    return now < last_inbound_at + CUSTOMER_SERVICE_WINDOW


class WhatsAppAdapter:
    kind: ClassVar[ChannelKind] = ChannelKind.whatsapp
    setting_fields: ClassVar[tuple[str, ...]] = (
        "phone_number_id",
        "waba_id",
        "api_base",
        "rate_per_second",
    )
    secret_fields: ClassVar[tuple[str, ...]] = ("access_token", "app_secret", "verify_token")

    window_open = staticmethod(window_open)

    # --- inbound --------------------------------------------------------------------------

    def handshake(self, request: RawRequest, config: AccountConfig) -> str | None:
        expected = config.secrets.get("verify_token") or ""
        given = request.query.get("hub.verify_token") or ""
        if (
            request.query.get("hub.mode") != "subscribe"
            or not expected
            or not hmac.compare_digest(given.encode(), expected.encode())
        ):
            raise SignatureInvalid("The verify token is missing or wrong.")
        challenge = request.query.get("hub.challenge") or ""
        if not _CHALLENGE.fullmatch(challenge):
            raise PayloadMalformed("The verification request has no usable hub.challenge.")
        return challenge

    def verify(self, request: RawRequest, config: AccountConfig) -> None:
        app_secret = config.secrets.get("app_secret") or ""
        header = request.headers.get(SIGNATURE_HEADER) or ""
        match = _SIGNATURE.fullmatch(header.strip())
        if not app_secret or match is None:
            raise SignatureInvalid()
        expected = hmac.new(app_secret.encode(), request.body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected.encode(), match.group(1).lower().encode()):
            raise SignatureInvalid()

    def event_id(self, request: RawRequest) -> str:
        # Meta has no delivery id; a redelivery repeats the exact body.
        return hashlib.sha256(request.body).hexdigest()

    def parse(self, request: RawRequest) -> list[Inbound]:
        try:
            payload = json.loads(request.body)
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            raise PayloadMalformed("The body is not JSON.") from exc
        root = _obj(payload, "body")
        if root.get("object") != "whatsapp_business_account":
            raise PayloadMalformed("The body is not a WhatsApp Business Account notification.")
        found: list[Inbound] = []
        for entry in _list(root.get("entry"), "entry"):
            for raw in _list(_obj(entry, "entry[]").get("changes", []), "changes"):
                change = _obj(raw, "changes[]")
                if change.get("field") != "messages":
                    continue  # templates, account and quality updates are not conversations
                found.extend(_parse_value(_obj(change.get("value"), "value")))
        return found

    # --- outbound -------------------------------------------------------------------------

    def send_rate(self, config: AccountConfig) -> float:
        """Messages per second the account may send (Cloud API default throughput: 80)."""
        value = config.settings.get("rate_per_second")
        if (
            isinstance(value, int | float)
            and not isinstance(value, bool)
            and math.isfinite(value)
            and value > 0
        ):
            return float(value)
        return DEFAULT_RATE_PER_SECOND

    async def send(
        self, http: httpx.AsyncClient, config: AccountConfig, message: OutboundRequest
    ) -> SendResult:
        graph = _Graph(http, config)
        phone_number_id = _setting(config, "phone_number_id")
        messages_url = f"{graph.base}/{phone_number_id}/messages"

        if message.template is not None:
            payload = _template_payload(message.to, message.template)
            return SendResult(await graph.send_message(messages_url, payload))

        text = message.text
        has_text = bool(text.strip())
        if len(text) > MAX_TEXT:
            raise DeliveryFailed(
                f"WhatsApp text messages hold at most {MAX_TEXT} characters.",
                code="text_too_long",
            )
        if not message.files:
            if not has_text:
                raise DeliveryFailed("There is nothing to send.", code="empty_message")
            return SendResult(
                await graph.send_message(messages_url, _text_payload(message.to, text))
            )

        kinds = [_outbound_media_type(file) for file in message.files]
        caption_first = has_text and kinds[0] in _CAPTIONED and len(text) <= MAX_CAPTION
        # Every upload happens before the first message goes out, so a failed upload (and its
        # retry) never leaves the customer with half a message.
        media_ids = [
            await graph.upload(f"{graph.base}/{phone_number_id}/media", file)
            for file in message.files
        ]
        first_id: str | None = None
        if has_text and not caption_first:
            first_id = await graph.send_message(messages_url, _text_payload(message.to, text))
        for index, (kind, file, media_id) in enumerate(
            zip(kinds, message.files, media_ids, strict=True)
        ):
            body: dict[str, Any] = {"id": media_id}
            if index == 0 and caption_first:
                body["caption"] = text
            if kind == "document":
                body["filename"] = safe_name(file.filename)
            sent = await graph.send_message(
                messages_url,
                {
                    "messaging_product": "whatsapp",
                    "recipient_type": "individual",
                    "to": message.to,
                    "type": kind,
                    kind: body,
                },
            )
            first_id = first_id or sent
        assert first_id is not None
        return SendResult(first_id)

    async def fetch_media(
        self, http: httpx.AsyncClient, config: AccountConfig, media: MediaRef, *, max_bytes: int
    ) -> OutboundFile:
        graph = _Graph(http, config)
        if not _GRAPH_ID.fullmatch(media.provider_ref):
            raise PayloadMalformed("The media id is not a WhatsApp media id.")
        params = {}
        if phone_number_id := config.settings.get("phone_number_id"):
            params["phone_number_id"] = str(phone_number_id)
        response = await graph.request(
            "GET", f"{graph.base}/{media.provider_ref}", params=params, media=True
        )
        try:
            info = _response_json(response)
        except DeliveryFailed as exc:
            raise PayloadMalformed(str(exc), code="media_unavailable") from exc
        url = info.get("url")
        if not isinstance(url, str) or not graph.may_receive_token(url):
            raise PayloadMalformed("The media has no download address.", code="media_unavailable")
        declared_size = _int_or_none(info.get("file_size"))
        if declared_size is not None and declared_size > max_bytes:
            raise _too_large(max_bytes)
        content_type = normalise_media_type(
            _str_or_none(info.get("mime_type")) or media.content_type
        )
        content = await graph.download(url, max_bytes)
        return OutboundFile(
            filename=_media_filename(media, content_type),
            content_type=content_type or "application/octet-stream",
            content=content,
        )

    async def sync_templates(
        self, http: httpx.AsyncClient, config: AccountConfig
    ) -> list[dict[str, Any]]:
        """Every message template of the WhatsApp Business Account, all pages.

        Each item: ``name``, ``language``, ``status``, ``category``, ``parameter_format``
        (``POSITIONAL`` or ``NAMED``), ``body`` (the body text with its ``{{n}}`` /
        ``{{name}}`` placeholders), ``parameters`` (the placeholders' names in order),
        ``components`` (as Meta returns them) and ``usable`` (only ``APPROVED`` templates can be
        sent). Raises ``RetryLater`` / ``DeliveryFailed`` like ``send``.
        """
        graph = _Graph(http, config)
        url = f"{graph.base}/{_setting(config, 'waba_id')}/message_templates"
        params: dict[str, str] = {
            "fields": "name,language,status,category,parameter_format,components",
            "limit": "100",
        }
        templates: list[dict[str, Any]] = []
        for _ in range(MAX_TEMPLATE_PAGES):
            page = _response_json(await graph.request("GET", url, params=params))
            data = page.get("data")
            for item in data if isinstance(data, list) else []:
                if (template := _template_summary(item)) is not None:
                    templates.append(template)
            paging = page.get("paging")
            paging = paging if isinstance(paging, dict) else {}
            cursors = paging.get("cursors")
            after = cursors.get("after") if isinstance(cursors, dict) else None
            if not paging.get("next") or not isinstance(after, str) or not after:
                break
            params = {**params, "after": after}
        return templates


# --- inbound parsing ----------------------------------------------------------------------


def _parse_value(value: dict[str, Any]) -> list[Inbound]:
    metadata = value.get("metadata")
    phone_number_id = (
        _str_or_none(metadata.get("phone_number_id")) if isinstance(metadata, dict) else None
    )
    contacts = [_obj(c, "contacts[]") for c in _list(value.get("contacts", []), "contacts")]
    found: list[Inbound] = []
    for raw in _list(value.get("messages", []), "messages"):
        found.append(_parse_message(_obj(raw, "messages[]"), contacts, phone_number_id))
    for raw in _list(value.get("statuses", []), "statuses"):
        status = _parse_status(_obj(raw, "statuses[]"))
        if status is not None:
            found.append(status)
    return found


@dataclass(frozen=True, slots=True)
class _Content:
    """What one message type contributes to an ``InboundMessage``."""

    text: str
    kind: str
    media: tuple[MediaRef, ...] = ()
    data: dict[str, Any] = field(default_factory=dict)


def _parse_message(
    message: dict[str, Any], contacts: list[dict[str, Any]], phone_number_id: str | None
) -> InboundMessage:
    message_id = _str(message.get("id"), "messages[].id")
    sender_id, sender_name = _sender(message, contacts)
    message_type = _str(message.get("type"), "messages[].type")
    sent_at = _time(message.get("timestamp"))
    data: dict[str, Any] = {}
    if phone_number_id:
        data["phone_number_id"] = phone_number_id
    context = message.get("context")
    if isinstance(context, dict) and isinstance(context.get("id"), str):
        data["reply_to"] = context["id"]
    if isinstance(message.get("referral"), dict):
        data["referral"] = message["referral"]

    reader = _READERS.get(message_type)
    content = (
        reader(message_type, message.get(message_type))
        if reader is not None
        else _unsupported(message_type, message)
    )
    return InboundMessage(
        provider_message_id=message_id,
        sender_id=sender_id,
        sender_name=sender_name,
        text=content.text,
        sent_at=sent_at,
        media=content.media,
        kind=content.kind,
        data={**data, **content.data},
    )


def _text(_: str, body: Any) -> _Content:
    return _Content(_str(_obj(body, "text").get("body"), "text.body"), "text")


def _media(message_type: str, body: Any) -> _Content:
    item = _obj(body, message_type)
    caption = _str_or_none(item.get("caption"))
    ref = MediaRef(
        kind=message_type,
        provider_ref=_str(item.get("id"), f"{message_type}.id"),
        content_type=_str_or_none(item.get("mime_type")),
        filename=_str_or_none(item.get("filename")),
        caption=caption,
    )
    flags = {flag: item[flag] for flag in ("voice", "animated") if isinstance(item.get(flag), bool)}
    return _Content(caption or "", "media", (ref,), flags)


def _location(_: str, body: Any) -> _Content:
    location = _obj(body, "location")
    latitude = _number(location.get("latitude"), "location.latitude")
    longitude = _number(location.get("longitude"), "location.longitude")
    name = _str_or_none(location.get("name"))
    address = _str_or_none(location.get("address"))
    label = " — ".join(part for part in (name, address) if part)
    text = f"📍 {label} ({latitude}, {longitude})" if label else f"📍 {latitude}, {longitude}"
    data = {
        "latitude": latitude,
        "longitude": longitude,
        "name": name,
        "address": address,
        "url": _str_or_none(location.get("url")),
    }
    return _Content(text, "location", data=data)


def _contacts(_: str, body: Any) -> _Content:
    shared: list[dict[str, Any]] = []
    lines: list[str] = []
    for raw in _list(body, "contacts"):
        card = _obj(raw, "contacts[]")
        names = _dict_or_empty(card.get("name"))
        name = _str_or_none(names.get("formatted_name")) or " ".join(
            part
            for part in (
                _str_or_none(names.get("first_name")),
                _str_or_none(names.get("last_name")),
            )
            if part
        )
        phones = [
            {
                "phone": _str_or_none(phone.get("phone")),
                "wa_id": _str_or_none(phone.get("wa_id")),
                "type": _str_or_none(phone.get("type")),
            }
            for phone in _dicts(card.get("phones"))
        ]
        emails = [
            address
            for email in _dicts(card.get("emails"))
            if (address := _str_or_none(email.get("email")))
        ]
        shared.append({"name": name or None, "phones": phones, "emails": emails})
        numbers = ", ".join(n for p in phones if (n := p["phone"] or p["wa_id"]))
        line = f"👤 {name or '?'}"
        lines.append(f"{line}: {numbers}" if numbers else line)
    return _Content("\n".join(lines), "contacts", data={"contacts": shared})


def _interactive(_: str, body: Any) -> _Content:
    interactive = _obj(body, "interactive")
    reply_type = _str_or_none(interactive.get("type")) or ""
    if reply_type in {"button_reply", "list_reply"}:
        reply = _obj(interactive.get(reply_type), reply_type)
        data: dict[str, Any] = {"reply_type": reply_type, "id": _str_or_none(reply.get("id"))}
        if description := _str_or_none(reply.get("description")):
            data["description"] = description
        return _Content(_str_or_none(reply.get("title")) or "", "interactive", data=data)
    if reply_type == "nfm_reply":  # a WhatsApp Flow was submitted
        reply = _obj(interactive.get("nfm_reply"), "nfm_reply")
        name = _str_or_none(reply.get("name"))
        data = {
            "reply_type": reply_type,
            "name": name,
            "response_json": _str_or_none(reply.get("response_json")),
        }
        return _Content(_str_or_none(reply.get("body")) or name or "", "interactive", data=data)
    return _Content(
        f"Unsupported WhatsApp reply ({reply_type or 'unknown'})",
        "unsupported",
        data={"type": "interactive", "reply_type": reply_type or None},
    )


def _button(_: str, body: Any) -> _Content:
    """A quick-reply button of a template message."""
    button = _obj(body, "button")
    payload = _str_or_none(button.get("payload"))
    return _Content(
        _str_or_none(button.get("text")) or payload or "", "button", data={"payload": payload}
    )


def _reaction(_: str, body: Any) -> _Content:
    reaction = _obj(body, "reaction")
    emoji = _str_or_none(reaction.get("emoji"))  # absent when the customer removes it
    data = {"message_id": _str_or_none(reaction.get("message_id")), "emoji": emoji}
    return _Content(emoji or "", "reaction", data=data)


_READERS: Final[dict[str, Callable[[str, Any], _Content]]] = {
    "text": _text,
    **dict.fromkeys(("image", "audio", "video", "document", "sticker"), _media),
    "location": _location,
    "contacts": _contacts,
    "interactive": _interactive,
    "button": _button,
    "reaction": _reaction,
}


def _unsupported(message_type: str, message: dict[str, Any]) -> _Content:
    """Types Cloud API cannot show us (``unsupported``, ``unknown``) and types we do not
    handle (orders, system notices…): a readable line, never a lost message."""
    body = message.get(message_type)
    subtype = (
        _str_or_none(body.get("type"))
        if message_type == "unsupported" and isinstance(body, dict)
        else None
    )
    text = f"Unsupported WhatsApp message ({subtype or message_type})"
    data: dict[str, Any] = {"type": subtype or message_type}
    if message_type == "system" and isinstance(body, dict):
        text = _str_or_none(body.get("body")) or text
    errors = message.get("errors")
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        code, detail = _error_code_and_message(errors[0])
        data["error_code"] = code
        if detail:
            text = f"{text}: {detail}"
    return _Content(text, "unsupported", data=data)


def _sender(message: dict[str, Any], contacts: list[dict[str, Any]]) -> tuple[str, str | None]:
    sender = _str_or_none(message.get("from"))
    contact = None
    for candidate in contacts:
        if sender is not None and candidate.get("wa_id") == sender:
            contact = candidate
            break
    if contact is None and len(contacts) == 1:
        contact = contacts[0]
    if sender is None and contact is not None:
        # Newer payloads may carry only the business-scoped user id.
        sender = _str_or_none(contact.get("wa_id")) or _str_or_none(contact.get("user_id"))
    sender = sender or _str_or_none(message.get("from_user_id"))
    if not sender:
        raise PayloadMalformed("A message has no sender.")
    name = None
    if contact is not None and isinstance(contact.get("profile"), dict):
        name = _str_or_none(contact["profile"].get("name"))
    return sender, name


def _parse_status(status: dict[str, Any]) -> StatusUpdate | None:
    message_id = _str(status.get("id"), "statuses[].id")
    ours = _STATUSES.get(_str(status.get("status"), "statuses[].status"))
    if ours is None:
        return None  # e.g. "deleted", "warning": nothing we track
    error_code = error_message = None
    errors = status.get("errors")
    if ours == "failed" and isinstance(errors, list) and errors and isinstance(errors[0], dict):
        error_code, error_message = _error_code_and_message(errors[0])
    return StatusUpdate(
        provider_message_id=message_id,
        status=ours,
        at=_time(status.get("timestamp")),
        error_code=error_code,
        error_message=error_message,
    )


def _error_code_and_message(error: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """A Graph or webhook error as (our code, a readable line): the numeric code as a string,
    except the ones the desktop acts on (``outside_window``, ``auth``)."""
    raw_code = error.get("code")
    code = raw_code if isinstance(raw_code, int) and not isinstance(raw_code, bool) else None
    details = error.get("error_data")
    detail = _str_or_none(details.get("details")) if isinstance(details, dict) else None
    summary = (
        _str_or_none(error.get("message"))
        or _str_or_none(error.get("title"))
        or _str_or_none(error.get("error_user_msg"))
    )
    parts: list[str] = []
    for part in (summary, detail):
        if part and part not in parts:
            parts.append(part)
    text = " — ".join(parts)
    if code is not None and f"#{code}" not in text:
        text = f"(#{code}) {text}" if text else f"(#{code})"
    return _our_code(code), text or None


def _our_code(code: int | None) -> str | None:
    if code == OUTSIDE_WINDOW:
        return "outside_window"
    if code == TOKEN_EXPIRED:
        return "auth"
    return None if code is None else str(code)


# --- outbound payloads --------------------------------------------------------------------


def _text_payload(to: str, text: str) -> dict[str, Any]:
    return {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": to,
        "type": "text",
        "text": {"preview_url": False, "body": text},
    }


def _template_payload(to: str, template: Mapping[str, Any]) -> dict[str, Any]:
    """``{"name", "language", "parameters"}`` → a template message. ``parameters`` is a list
    (positional ``{{1}}``…: strings become text parameters, objects are sent as given) or a
    mapping (named ``{{first_name}}``…); ``components``, when given, replaces them."""
    name = template.get("name")
    language = template.get("language")
    if not isinstance(name, str) or not name or not isinstance(language, str) or not language:
        raise DeliveryFailed("A template needs a name and a language.", code="invalid_template")
    body: dict[str, Any] = {
        "name": name,
        "language": {"policy": "deterministic", "code": language},
    }
    components = template.get("components")
    parameters = template.get("parameters") or []
    if isinstance(components, list):
        body["components"] = components
    elif parameters:
        if isinstance(parameters, Mapping):
            values = [
                {"type": "text", "parameter_name": str(key), "text": str(value)}
                for key, value in parameters.items()
            ]
        elif isinstance(parameters, list | tuple):
            values = [
                dict(value) if isinstance(value, Mapping) else {"type": "text", "text": str(value)}
                for value in parameters
            ]
        else:
            raise DeliveryFailed("Template parameters must be a list.", code="invalid_template")
        body["components"] = [{"type": "body", "parameters": values}]
    return {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": to,
        "type": "template",
        "template": body,
    }


def _outbound_media_type(file: OutboundFile) -> str:
    content_type = normalise_media_type(file.content_type)
    size = len(file.content)
    for kind, (types, limit) in _MEDIA_TYPES.items():
        if content_type in types and size <= limit:
            return kind
    if size > _MAX_DOCUMENT:
        raise DeliveryFailed(
            f"{safe_name(file.filename)} is larger than WhatsApp's 100 MiB limit.",
            code="file_too_large",
        )
    return "document"


def _template_summary(item: Any) -> dict[str, Any] | None:
    if not isinstance(item, dict):
        return None
    name, language = _str_or_none(item.get("name")), _str_or_none(item.get("language"))
    if not name or not language:
        return None
    components = item.get("components")
    components = (
        [c for c in components if isinstance(c, dict)] if isinstance(components, list) else []
    )
    body = next(
        (
            text
            for c in components
            if str(c.get("type", "")).upper() == "BODY"
            and (text := _str_or_none(c.get("text"))) is not None
        ),
        "",
    )
    parameters: list[str] = []
    for placeholder in _PLACEHOLDER.findall(body):
        if placeholder not in parameters:
            parameters.append(placeholder)
    status = (_str_or_none(item.get("status")) or "").upper()
    return {
        "name": name,
        "language": language,
        "status": status,
        "category": (_str_or_none(item.get("category")) or "").upper(),
        "parameter_format": (_str_or_none(item.get("parameter_format")) or "POSITIONAL").upper(),
        "body": body,
        "parameters": parameters,
        "components": components,
        "usable": status == "APPROVED",
    }


def _media_filename(media: MediaRef, content_type: str) -> str:
    """The customer's file name for documents; otherwise ``<kind>-<media id>.<ext>``."""
    if media.filename:
        return safe_name(media.filename)
    extension = _EXTENSIONS.get(content_type) or (
        mimetypes.guess_extension(content_type) or "" if content_type else ""
    )
    return safe_name(f"{media.kind}-{media.provider_ref}{extension}")


# --- the Graph API ------------------------------------------------------------------------


class _Graph:
    """Calls to the Graph API for one account, with its errors mapped to ours."""

    def __init__(self, http: httpx.AsyncClient, config: AccountConfig) -> None:
        self.http = http
        self.base = _api_base(config)
        self.token = config.secret("access_token")

    @property
    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    async def request(
        self, method: str, url: str, *, media: bool = False, **kwargs: Any
    ) -> httpx.Response:
        try:
            response = await self.http.request(method, url, headers=self._auth, **kwargs)
        except httpx.TransportError as exc:
            raise RetryLater(f"WhatsApp could not be reached: {exc!r}") from exc
        if not response.is_success:
            _raise_for_graph(response, media=media)
        return response

    async def send_message(self, url: str, payload: dict[str, Any]) -> str:
        answer = _response_json(await self.request("POST", url, json=payload))
        messages = answer.get("messages")
        first = messages[0] if isinstance(messages, list) and messages else None
        message_id = first.get("id") if isinstance(first, dict) else None
        if not isinstance(message_id, str) or not message_id:
            # Accepted or not, we cannot tell; resending could duplicate it.
            raise DeliveryFailed(
                "WhatsApp answered without a message id.", code="unexpected_response"
            )
        return message_id

    async def upload(self, url: str, file: OutboundFile) -> str:
        content_type = normalise_media_type(file.content_type) or "application/octet-stream"
        response = await self.request(
            "POST",
            url,
            data={"messaging_product": "whatsapp", "type": content_type},
            files={"file": (safe_name(file.filename), file.content, content_type)},
        )
        media_id = _response_json(response).get("id")
        if not isinstance(media_id, str) or not media_id:
            raise DeliveryFailed(
                "WhatsApp answered an upload without a media id.", code="unexpected_response"
            )
        return media_id

    def may_receive_token(self, url: str) -> bool:
        """Only HTTPS addresses (Meta's media host) or the configured API's own origin get
        the bearer token."""
        target, base = urlsplit(url), urlsplit(self.base)
        if not target.netloc:
            return False
        return target.scheme == "https" or (target.scheme, target.netloc) == (
            base.scheme,
            base.netloc,
        )

    async def download(self, url: str, max_bytes: int) -> bytes:
        try:
            async with self.http.stream("GET", url, headers=self._auth) as response:
                if not response.is_success:
                    await response.aread()
                    _raise_for_graph(response, media=True)
                length = _int_or_none(response.headers.get("content-length"))
                if length is not None and length > max_bytes:
                    raise _too_large(max_bytes)
                chunks: list[bytes] = []
                received = 0
                async for chunk in response.aiter_bytes():
                    received += len(chunk)
                    if received > max_bytes:
                        raise _too_large(max_bytes)
                    chunks.append(chunk)
        except httpx.TransportError as exc:
            raise RetryLater(f"The WhatsApp media could not be downloaded: {exc!r}") from exc
        return b"".join(chunks)


def _raise_for_graph(response: httpx.Response, *, media: bool = False) -> None:
    """Map a failed Graph call: throttling and outages → ``RetryLater``; a refusal →
    ``DeliveryFailed`` (for a media download, ``PayloadMalformed``)."""
    status = response.status_code
    error: Mapping[str, Any] = {}
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        error = body["error"]
    raw_code = error.get("code")
    graph_code = raw_code if isinstance(raw_code, int) and not isinstance(raw_code, bool) else None
    code, text = _error_code_and_message(error)
    message = text or f"WhatsApp answered HTTP {status}."
    if status == 429 or graph_code in _THROTTLED:
        seconds = _retry_after(response)
        if seconds is None:
            seconds = _THROTTLED.get(graph_code or 0, _THROTTLED_DEFAULT)
        raise RetryLater(message, seconds=seconds)
    if status >= 500 or graph_code in _TRANSIENT:
        raise RetryLater(message, seconds=_retry_after(response))
    if status == 401 and code is None:
        code = "auth"
    code = code or f"http_{status}"
    if media:
        raise PayloadMalformed(message, code="media_unavailable", provider_code=code)
    raise DeliveryFailed(message, code=code)


def _retry_after(response: httpx.Response) -> float | None:
    try:
        seconds = float(response.headers.get("retry-after", ""))
    except ValueError:
        return None  # absent, or an HTTP date: our default applies
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def _response_json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise DeliveryFailed(
            "WhatsApp answered something that is not JSON.", code="unexpected_response"
        )
    return body


def _too_large(max_bytes: int) -> PayloadMalformed:
    return PayloadMalformed(
        f"The WhatsApp media is larger than {max_bytes} bytes.", code="media_too_large"
    )


def _api_base(config: AccountConfig) -> str:
    base = config.settings.get("api_base") or DEFAULT_API_BASE
    if not isinstance(base, str) or urlsplit(base).scheme not in {"http", "https"}:
        raise DeliveryFailed("The channel's api_base is not an http(s) URL.", code="not_configured")
    return base.rstrip("/")


def _setting(config: AccountConfig, name: str) -> str:
    """A Graph object id from the settings (it goes into URL paths, so only id characters)."""
    value = config.settings.get(name)
    text = str(value) if isinstance(value, str | int) and not isinstance(value, bool) else ""
    if not _GRAPH_ID.fullmatch(text):
        raise DeliveryFailed(
            f"The channel has no valid {name!r} configured.", code="not_configured"
        )
    return text


# --- JSON shape helpers: anything unexpected is PayloadMalformed --------------------------


def _obj(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise PayloadMalformed(f"{where} is not an object.")
    return value


def _list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise PayloadMalformed(f"{where} is not a list.")
    return value


def _str(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise PayloadMalformed(f"{where} is missing or not a string.")
    return value


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _dict_or_empty(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _dicts(value: Any) -> list[dict[str, Any]]:
    """The objects of an optional list, ignoring anything else in it."""
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _int_or_none(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def _number(value: Any, where: str) -> float:
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            value = None
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        raise PayloadMalformed(f"{where} is not a number.")
    return float(value)


def _time(value: Any) -> datetime | None:
    """Unix seconds (Meta sends them as strings) → aware UTC."""
    if value is None:
        return None
    seconds = _int_or_none(value)
    if seconds is None:
        raise PayloadMalformed("A timestamp is not a number of seconds.")
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError) as exc:
        raise PayloadMalformed("A timestamp is out of range.") from exc
