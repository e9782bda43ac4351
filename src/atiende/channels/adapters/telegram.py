"""Telegram: a bot created with @BotFather receives updates by webhook and answers through the
Bot API (``{api_base}/bot<token>/<method>``).

Inbound: one JSON ``Update`` per webhook, authenticated by the ``X-Telegram-Bot-Api-Secret-Token``
header that Telegram sends with the ``secret_token`` given to ``setWebhook``. Only private
chats become conversations; group and channel traffic and edited messages are acknowledged
and ignored. Outbound: ``sendMessage`` for text, ``sendPhoto`` / ``sendDocument`` (multipart
uploads) for files. Besides the ``Adapter`` protocol, the service calls ``set_webhook``,
``get_me`` and ``answer_callback`` (see ``docs/channels/telegram.md``).
"""

from __future__ import annotations

import hmac
import json
import mimetypes
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import PurePosixPath
from typing import Any, ClassVar, TypeGuard
from urllib.parse import quote

import httpx

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
)

DEFAULT_API_BASE = "https://api.telegram.org"
SECRET_HEADER = "x-telegram-bot-api-secret-token"  # noqa: S105 (a header name)
#: what ``set_webhook`` subscribes to; everything else never reaches the webhook
ALLOWED_UPDATES = ("message", "callback_query")
MAX_TEXT = 4096  # sendMessage text, in UTF-16 code units
MAX_CAPTION = 1024  # sendPhoto / sendDocument caption, in UTF-16 code units
MAX_PHOTO_BYTES = 10 * 1024 * 1024  # larger images go as documents
PHOTO_TYPES = frozenset({"image/jpeg", "image/png", "image/webp"})

_TOKEN = re.compile(r"\d+:[A-Za-z0-9_-]+")
_WEBHOOK_SECRET = re.compile(r"[A-Za-z0-9_-]{1,256}")
_COMMAND = re.compile(r"/([A-Za-z0-9_]{1,64})(?:@[A-Za-z0-9_]+)?(?:\s+(.*))?", re.DOTALL)

#: update types of the Bot API that carry nothing for a contact center (or that
#: ``set_webhook`` does not subscribe to): acknowledged and ignored
_IGNORED_UPDATES = frozenset(
    {
        "edited_message",
        "channel_post",
        "edited_channel_post",
        "business_connection",
        "business_message",
        "edited_business_message",
        "deleted_business_messages",
        "message_reaction",
        "message_reaction_count",
        "inline_query",
        "chosen_inline_result",
        "shipping_query",
        "pre_checkout_query",
        "purchased_paid_media",
        "poll",
        "poll_answer",
        "my_chat_member",
        "chat_member",
        "chat_join_request",
        "chat_boost",
        "removed_chat_boost",
    }
)

#: message fields that describe a message rather than being its content
_MESSAGE_META = frozenset(
    {
        "message_id",
        "message_thread_id",
        "from",
        "sender_chat",
        "sender_boost_count",
        "sender_business_bot",
        "date",
        "business_connection_id",
        "chat",
        "forward_origin",
        "is_topic_message",
        "is_automatic_forward",
        "reply_to_message",
        "external_reply",
        "quote",
        "reply_to_story",
        "via_bot",
        "edit_date",
        "has_protected_content",
        "is_from_offline",
        "media_group_id",
        "author_signature",
        "entities",
        "caption",
        "caption_entities",
        "show_caption_above_media",
        "has_media_spoiler",
        "link_preview_options",
        "effect_id",
        "reply_markup",
    }
)


# --- reading JSON safely ------------------------------------------------------------------


def _load(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as error:
        raise PayloadMalformed("The Telegram update is not JSON.") from error
    if not isinstance(data, dict):
        raise PayloadMalformed("The Telegram update is not a JSON object.")
    return data


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _int(obj: Mapping[str, Any], key: str, where: str) -> int:
    value = obj.get(key)
    if not _is_int(value):
        raise PayloadMalformed(f"{where}.{key} must be an integer.")
    return int(value)


def _opt_int(obj: Mapping[str, Any], key: str, where: str) -> int | None:
    return None if obj.get(key) is None else _int(obj, key, where)


def _opt_str(obj: Mapping[str, Any], key: str, where: str) -> str | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise PayloadMalformed(f"{where}.{key} must be a string.")
    return value


def _str(obj: Mapping[str, Any], key: str, where: str) -> str:
    value = _opt_str(obj, key, where)
    if value is None:
        raise PayloadMalformed(f"{where}.{key} is missing.")
    return value


def _obj(obj: Mapping[str, Any], key: str, where: str) -> dict[str, Any]:
    value = _opt_obj(obj, key, where)
    if value is None:
        raise PayloadMalformed(f"{where}.{key} is missing.")
    return value


def _opt_obj(obj: Mapping[str, Any], key: str, where: str) -> dict[str, Any] | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise PayloadMalformed(f"{where}.{key} must be an object.")
    return value


def _number(obj: Mapping[str, Any], key: str, where: str) -> float:
    value = obj.get(key)
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise PayloadMalformed(f"{where}.{key} must be a number.")
    return float(value)


def _timestamp(value: int | None) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.fromtimestamp(value, tz=UTC)
    except (OverflowError, OSError, ValueError) as error:
        raise PayloadMalformed("A Telegram date is out of range.") from error


def _person_name(obj: Mapping[str, Any], where: str) -> str | None:
    """``first last`` or else the username, as Telegram shows the person."""
    parts = [_opt_str(obj, "first_name", where), _opt_str(obj, "last_name", where)]
    name = " ".join(p.strip() for p in parts if p and p.strip())
    return name or _opt_str(obj, "username", where) or None


def _update_id(update: Mapping[str, Any]) -> int:
    return _int(update, "update_id", "update")


# --- the adapter --------------------------------------------------------------------------


class _Refusal(Exception):
    """An answer of the Bot API with ``ok: false`` that is not worth retrying."""

    def __init__(
        self, error_code: int, description: str, parameters: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__(description)
        self.error_code = error_code
        self.description = description
        self.parameters: Mapping[str, Any] = parameters or {}


class TelegramAdapter:
    kind: ClassVar[ChannelKind] = ChannelKind.telegram
    setting_fields: ClassVar[tuple[str, ...]] = ("api_base", "bot_username")
    secret_fields: ClassVar[tuple[str, ...]] = ("bot_token", "webhook_secret")

    # --- inbound (pure) ---------------------------------------------------------------

    def handshake(self, request: RawRequest, config: AccountConfig) -> str | None:
        return None

    def verify(self, request: RawRequest, config: AccountConfig) -> None:
        """The header must equal the account's ``webhook_secret``. Telegram signs nothing
        else: the body is protected by TLS, the secret proves the sender."""
        expected = config.secrets.get("webhook_secret") or ""
        given = request.headers.get(SECRET_HEADER)
        if given is None:
            given = next(
                (v for k, v in request.headers.items() if k.lower() == SECRET_HEADER), None
            )
        if (
            not expected
            or given is None
            or not hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))
        ):
            raise SignatureInvalid()

    def event_id(self, request: RawRequest) -> str:
        """``update_id``: the same on every redelivery of an update. Only it is checked here,
        so an authentic update of any shape is stored (and answered 200) once."""
        return str(_update_id(_load(request.body)))

    def parse(self, request: RawRequest) -> list[Inbound]:
        update = _load(request.body)
        _update_id(update)
        if "message" in update:
            return _message(_obj(update, "message", "update"))
        if "callback_query" in update:
            return _callback_query(_obj(update, "callback_query", "update"))
        if any(key in _IGNORED_UPDATES for key in update):
            return []
        raise PayloadMalformed("The Telegram update has no type this channel knows.")

    # --- outbound ---------------------------------------------------------------------

    async def send(
        self, http: httpx.AsyncClient, config: AccountConfig, message: OutboundRequest
    ) -> SendResult:
        """Text with ``sendMessage`` (split at 4096 characters), files with ``sendPhoto`` or
        ``sendDocument``, the text as the first file's caption when it fits (1024). The
        result is the first message Telegram created, ``<chat id>:<message id>``."""
        chat_id = _chat_id(message.to)
        text = message.text or ""
        if not message.files and not text.strip():
            raise DeliveryFailed("The message has no text and no files.", code="empty_message")
        caption = (
            text if message.files and text.strip() and _utf16_len(text) <= MAX_CAPTION else None
        )
        sent: list[str] = []
        try:
            if text.strip() and caption is None:
                for chunk in split_text(text):
                    result = await _call(
                        http, config, "sendMessage", json={"chat_id": chat_id, "text": chunk}
                    )
                    sent.append(_message_ref(result))
            for index, file in enumerate(message.files):
                method, part = (
                    ("sendPhoto", "photo") if _is_photo(file) else ("sendDocument", "document")
                )
                form = {"chat_id": str(chat_id)}
                if index == 0 and caption is not None:
                    form["caption"] = caption
                result = await _call(
                    http,
                    config,
                    method,
                    data=form,
                    files={part: (file.filename, file.content, file.content_type)},
                )
                sent.append(_message_ref(result))
        except _Refusal as refusal:
            raise _delivery_failed(refusal) from None
        return SendResult(provider_message_id=sent[0])

    async def fetch_media(
        self, http: httpx.AsyncClient, config: AccountConfig, media: MediaRef, *, max_bytes: int
    ) -> OutboundFile:
        """``getFile`` then the download. A file Telegram will not hand out (too big for
        bots, unknown id) or one over ``max_bytes`` raises ``PayloadMalformed``; network
        trouble and 5xx raise ``RetryLater``."""
        try:
            token = _token(config)
            api_base = _api_base(config)
            info = await _call(http, config, "getFile", json={"file_id": media.provider_ref})
        except _Refusal as refusal:
            code = "media_too_large" if "too big" in refusal.description.lower() else None
            raise PayloadMalformed(
                f"Telegram did not hand out the file: {refusal.description}", code=code
            ) from None
        except DeliveryFailed as error:
            raise PayloadMalformed(str(error), code=error.code) from None
        if not isinstance(info, dict):
            raise PayloadMalformed("getFile answered without a File.")
        file_path = _opt_str(info, "file_path", "file")
        file_size = _opt_int(info, "file_size", "file")
        if not file_path or not _safe_file_path(file_path):
            raise PayloadMalformed("getFile answered without a usable file_path.")
        if file_size is not None and file_size > max_bytes:
            raise _too_large(max_bytes)
        url = f"{api_base}/file/bot{token}/{quote(file_path, safe='/')}"
        content, served_type = await _download(http, url, max_bytes=max_bytes)
        content_type = (
            media.content_type
            or served_type
            or mimetypes.guess_type(file_path)[0]
            or "application/octet-stream"
        )
        return OutboundFile(
            filename=media.filename or PurePosixPath(file_path).name,
            content_type=content_type,
            content=content,
        )

    # --- extra calls the service makes ------------------------------------------------

    async def set_webhook(self, http: httpx.AsyncClient, config: AccountConfig) -> None:
        """Point the bot at ``config.webhook_url`` with the account's ``webhook_secret``;
        updates Telegram is holding are kept (delivered once the webhook works)."""
        secret = config.secret("webhook_secret")
        if not _WEBHOOK_SECRET.fullmatch(secret):
            raise DeliveryFailed(
                "The webhook secret must be 1-256 characters of A-Z, a-z, 0-9, _ and -.",
                code="invalid_webhook_secret",
            )
        body = {
            "url": config.webhook_url,
            "secret_token": secret,
            "allowed_updates": list(ALLOWED_UPDATES),
            "drop_pending_updates": False,
        }
        try:
            await _call(http, config, "setWebhook", json=body)
        except _Refusal as refusal:
            raise _delivery_failed(refusal) from None

    async def get_me(self, http: httpx.AsyncClient, config: AccountConfig) -> dict[str, Any]:
        """The bot's own ``User`` (``id``, ``first_name``, ``username``, …): checks the token
        and gives ``bot_username``."""
        try:
            result = await _call(http, config, "getMe", json={})
        except _Refusal as refusal:
            raise _delivery_failed(refusal) from None
        if not isinstance(result, dict):
            raise DeliveryFailed("getMe answered without a User.", code="unexpected_response")
        return result

    async def answer_callback(
        self, http: httpx.AsyncClient, config: AccountConfig, callback_query_id: str
    ) -> None:
        """Stop the spinner on the customer's button. A query that is too old to answer
        needs nothing more: the app has already given up on it."""
        try:
            await _call(
                http, config, "answerCallbackQuery", json={"callback_query_id": callback_query_id}
            )
        except _Refusal as refusal:
            if "query is too old" in refusal.description.lower():
                return
            raise _delivery_failed(refusal) from None


# --- parsing ------------------------------------------------------------------------------


def _message(message: dict[str, Any]) -> list[Inbound]:
    where = "message"
    chat = _obj(message, "chat", where)
    chat_id = _int(chat, "id", "chat")
    chat_type = _str(chat, "type", "chat")
    message_id = _int(message, "message_id", where)
    sent_at = _timestamp(_opt_int(message, "date", where))
    if chat_type != "private":
        return []  # groups, supergroups and channels are not conversations with a customer
    sender = _opt_obj(message, "from", where)
    name = _person_name(chat, "chat") or (_person_name(sender, "from") if sender else None)
    kind, text, media, data = _content(message)
    return [
        InboundMessage(
            provider_message_id=f"{chat_id}:{message_id}",
            sender_id=str(chat_id),
            sender_name=name,
            text=text,
            sent_at=sent_at,
            media=media,
            kind=kind,
            data=data,
        )
    ]


def _media(
    obj: Mapping[str, Any],
    where: str,
    kind: str,
    caption: str | None,
    default_type: str | None = None,
) -> MediaRef:
    return MediaRef(
        kind=kind,
        provider_ref=_str(obj, "file_id", where),
        content_type=_opt_str(obj, "mime_type", where) or default_type,
        filename=_opt_str(obj, "file_name", where),
        caption=caption,
    )


Content = tuple[str, str, tuple[MediaRef, ...], dict[str, Any]]
"""What a message carries: (kind, text, media, data)."""


def _content(message: Mapping[str, Any]) -> Content:
    caption = _opt_str(message, "caption", "message")
    text = _opt_str(message, "text", "message")
    if text is not None:
        return _text(text)
    for extract in (_photo, _file, _sticker, _location, _contact):
        found = extract(message, caption)
        if found is not None:
            return found
    # a poll, dice, game, story, service message…: shown as such, its fields kept by name
    fields = sorted(k for k in message if k not in _MESSAGE_META)
    label = fields[0] if fields else "message"
    return "unsupported", f"[Telegram: {label}]", (), {"fields": fields}


def _text(text: str) -> Content:
    command = _COMMAND.fullmatch(text.strip())
    if command:
        args = (command.group(2) or "").strip()
        return "command", text, (), {"command": command.group(1), "args": args}
    return "text", text, (), {}


def _photo(message: Mapping[str, Any], caption: str | None) -> Content | None:
    photo = message.get("photo")
    if photo is None:
        return None
    if not isinstance(photo, list) or not photo:
        raise PayloadMalformed("message.photo must be a non-empty array.")
    sizes = []
    for size in photo:
        if not isinstance(size, dict):
            raise PayloadMalformed("message.photo holds a size that is not an object.")
        width = _opt_int(size, "width", "photo") or 0
        height = _opt_int(size, "height", "photo") or 0
        sizes.append((width * height, _opt_int(size, "file_size", "photo") or 0, size))
    largest = max(sizes, key=lambda s: (s[0], s[1]))[2]
    ref = MediaRef(
        kind="image",
        provider_ref=_str(largest, "file_id", "photo"),
        content_type="image/jpeg",  # Telegram re-encodes every photo as JPEG
        caption=caption,
    )
    return "media", caption or "", (ref,), {}


#: (message field, MediaRef kind, type when Telegram gives none); ``animation`` comes before
#: ``document`` because an animation also carries a ``document`` for old clients
_FILES = (
    ("animation", "video", "video/mp4"),
    ("video", "video", "video/mp4"),
    ("video_note", "video", "video/mp4"),
    ("voice", "audio", "audio/ogg"),
    ("audio", "audio", "audio/mpeg"),
    ("document", "document", None),
)


def _file(message: Mapping[str, Any], caption: str | None) -> Content | None:
    for key, kind, default_type in _FILES:
        item = _opt_obj(message, key, "message")
        if item is not None:
            return "media", caption or "", (_media(item, key, kind, caption, default_type),), {}
    return None


def _sticker(message: Mapping[str, Any], caption: str | None) -> Content | None:
    sticker = _opt_obj(message, "sticker", "message")
    if sticker is None:
        return None
    sticker_type = (
        "video/webm"
        if sticker.get("is_video") is True
        else "application/x-tgsticker"
        if sticker.get("is_animated") is True
        else "image/webp"
    )
    emoji = _opt_str(sticker, "emoji", "sticker") or ""
    ref = _media(sticker, "sticker", "sticker", None, sticker_type)
    return "media", emoji, (ref,), {"emoji": emoji} if emoji else {}


def _location(message: Mapping[str, Any], caption: str | None) -> Content | None:
    venue = _opt_obj(message, "venue", "message")
    location = _opt_obj(venue, "location", "venue") if venue else None
    location = location or _opt_obj(message, "location", "message")
    if location is None:
        return None
    latitude = _number(location, "latitude", "location")
    longitude = _number(location, "longitude", "location")
    data: dict[str, Any] = {"latitude": latitude, "longitude": longitude}
    lines = []
    if venue is not None:
        data["name"] = _opt_str(venue, "title", "venue")
        data["address"] = _opt_str(venue, "address", "venue")
        lines = [v for v in (data["name"], data["address"]) if v]
    lines.append(f"{latitude}, {longitude}")
    return "location", "\n".join(lines), (), data


def _contact(message: Mapping[str, Any], caption: str | None) -> Content | None:
    contact = _opt_obj(message, "contact", "message")
    if contact is None:
        return None
    phone = _str(contact, "phone_number", "contact")
    name = _person_name(contact, "contact")
    data: dict[str, Any] = {"phone": phone, "name": name}
    user_id = _opt_int(contact, "user_id", "contact")
    if user_id is not None:
        data["user_id"] = user_id
    return "contacts", " ".join(v for v in (name, phone) if v), (), data


def _callback_query(query: dict[str, Any]) -> list[Inbound]:
    """A press on one of our inline buttons: its ``data`` is the answer."""
    where = "callback_query"
    query_id = _str(query, "id", where)
    user = _obj(query, "from", where)
    user_id = _int(user, "id", "from")
    answer = _opt_str(query, "data", where) or _opt_str(query, "game_short_name", where)
    message = _opt_obj(query, "message", where)
    data: dict[str, Any] = {"callback_query_id": query_id}
    chat_instance = _opt_str(query, "chat_instance", where)
    if chat_instance is not None:
        data["chat_instance"] = chat_instance
    sender = user_id
    if message is not None:
        chat = _obj(message, "chat", "message")
        sender = _int(chat, "id", "chat")
        if _str(chat, "type", "chat") != "private":
            return []
        data["message_id"] = f"{sender}:{_int(message, 'message_id', 'message')}"
    inline_message_id = _opt_str(query, "inline_message_id", where)
    if inline_message_id is not None:
        data["inline_message_id"] = inline_message_id
    if answer is None:
        return []  # no payload to show (nothing but a game button carries none)
    return [
        InboundMessage(
            provider_message_id=f"{sender}:callback:{query_id}",
            sender_id=str(sender),
            sender_name=_person_name(user, "from"),
            text=answer,
            kind="interactive",
            data=data,
        )
    ]


# --- calling the Bot API ------------------------------------------------------------------


def _token(config: AccountConfig) -> str:
    token = config.secret("bot_token")
    if not _TOKEN.fullmatch(token):
        raise DeliveryFailed(
            "The bot token is not one @BotFather gives (<digits>:<letters>).",
            code="invalid_token",
        )
    return token


def _api_base(config: AccountConfig) -> str:
    base = str(config.settings.get("api_base") or DEFAULT_API_BASE).rstrip("/")
    try:
        url = httpx.URL(base)
    except httpx.InvalidURL:
        url = None
    if url is None or url.scheme not in ("http", "https") or not url.host:
        raise DeliveryFailed(f"The api_base {base!r} is not an HTTP URL.", code="not_configured")
    return base


def _chat_id(to: str) -> int | str:
    value = to.strip()
    if re.fullmatch(r"-?\d{1,20}", value):
        return int(value)
    if re.fullmatch(r"@[A-Za-z0-9_]{4,64}", value):
        return value  # a public @channel or @supergroup username
    raise DeliveryFailed(f"{to!r} is not a Telegram chat id.", code="invalid_recipient")


async def _call(
    http: httpx.AsyncClient,
    config: AccountConfig,
    method: str,
    *,
    json: Mapping[str, Any] | None = None,
    data: Mapping[str, str] | None = None,
    files: Mapping[str, tuple[str, bytes, str]] | None = None,
) -> Any:
    """POST one Bot API method; the ``result`` on ``ok: true``. Rate limits, 5xx and network
    trouble raise ``RetryLater``; any other refusal raises ``_Refusal``. Messages never
    carry the URL: it holds the token."""
    url = f"{_api_base(config)}/bot{_token(config)}/{method}"
    try:
        if files is not None:
            response = await http.post(url, data=dict(data or {}), files=dict(files))
        else:
            response = await http.post(url, json=dict(json or {}))
    except httpx.TransportError as error:
        raise RetryLater(
            f"Telegram could not be reached ({type(error).__name__}: {error})."
        ) from None
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and body.get("ok") is True:
        return body.get("result")
    status = response.status_code
    if not isinstance(body, dict):
        if status == 429 or status >= 500:
            raise RetryLater(f"Telegram answered HTTP {status}.")
        if status < 300:  # not retried: the call may have taken effect
            raise DeliveryFailed(
                f"Telegram answered HTTP {status} without a Bot API answer.",
                code="unexpected_response",
            )
        raise _Refusal(status, f"HTTP {status} without a Bot API answer")
    error_code = body.get("error_code")
    code = int(error_code) if _is_int(error_code) else status
    description = str(body.get("description") or f"HTTP {status}")
    parameters = body.get("parameters")
    parameters = parameters if isinstance(parameters, dict) else {}
    retry_after = parameters.get("retry_after")
    if isinstance(retry_after, int | float) and not isinstance(retry_after, bool):
        raise RetryLater(f"Telegram: {description}", seconds=max(float(retry_after), 0.0))
    if code == 429 or code >= 500 or status >= 500:
        raise RetryLater(f"Telegram: {description}")
    raise _Refusal(code, description, parameters)


def _delivery_failed(refusal: _Refusal) -> DeliveryFailed:
    description = refusal.description
    lower = description.lower()
    migrated = refusal.parameters.get("migrate_to_chat_id")
    if migrated is not None:
        return DeliveryFailed(
            f"The group became a supergroup with chat id {migrated}; Telegram no longer "
            f"accepts messages for the old id ({description}).",
            code="chat_migrated",
        )
    if refusal.error_code == 403:
        code = (
            "bot_blocked"
            if "bot was blocked by the user" in lower
            else "user_deactivated"
            if "user is deactivated" in lower
            else "forbidden"
        )
    elif refusal.error_code == 400 and "chat not found" in lower:
        code = "chat_not_found"
    elif refusal.error_code in (401, 404):
        code = "invalid_token"  # Telegram's answer to a token it does not know
    elif refusal.error_code == 400:
        code = "bad_request"
    else:
        code = f"telegram_{refusal.error_code}"
    return DeliveryFailed(f"Telegram refused the request: {description}", code=code)


def _message_ref(result: Any) -> str:
    """``<chat id>:<message id>`` of a Message Telegram returned."""
    if isinstance(result, dict):
        chat = result.get("chat")
        message_id = result.get("message_id")
        if isinstance(chat, dict) and _is_int(chat.get("id")) and _is_int(message_id):
            return f"{chat['id']}:{message_id}"
    raise DeliveryFailed("Telegram answered without the sent message.", code="unexpected_response")


def _is_photo(file: OutboundFile) -> bool:
    content_type = file.content_type.split(";")[0].strip().lower()
    return content_type in PHOTO_TYPES and len(file.content) <= MAX_PHOTO_BYTES


def _utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def split_text(text: str, limit: int = MAX_TEXT) -> list[str]:
    """Pieces of at most ``limit`` UTF-16 units (how Telegram counts), cut at a line break
    or else a space when one is in the second half of the piece; blank pieces dropped."""
    pieces: list[str] = []
    rest = text
    while _utf16_len(rest) > limit:
        units = 0
        cut = 0
        for char in rest:
            units += 2 if ord(char) > 0xFFFF else 1
            if units > limit:
                break
            cut += 1
        breaks = [rest.rfind(sep, 0, cut) for sep in ("\n", " ")]
        at = next((b for b in breaks if b >= cut // 2), -1)
        if at > 0:
            pieces.append(rest[:at])
            rest = rest[at + 1 :]
        else:
            pieces.append(rest[:cut])
            rest = rest[cut:]
    pieces.append(rest)
    return [p for p in pieces if p.strip()]


def _safe_file_path(path: str) -> bool:
    parts = path.split("/")
    return (
        not path.startswith("/")
        and ".." not in parts
        and not any(c in path for c in "?#\\")
        and "://" not in path
    )


def _too_large(max_bytes: int) -> PayloadMalformed:
    return PayloadMalformed(
        f"The file is larger than {max_bytes} bytes.", code="media_too_large", max_bytes=max_bytes
    )


async def _download(
    http: httpx.AsyncClient, url: str, *, max_bytes: int
) -> tuple[bytes, str | None]:
    """The file's bytes (stopping past ``max_bytes``) and the type the server gave, if any."""
    try:
        async with http.stream("GET", url) as response:
            status = response.status_code
            if status == 429 or status >= 500:
                raise RetryLater(f"Telegram's file server answered HTTP {status}.")
            if status >= 300:
                raise PayloadMalformed(f"Telegram's file server answered HTTP {status}.")
            length = response.headers.get("content-length")
            if length and length.isdigit() and int(length) > max_bytes:
                raise _too_large(max_bytes)
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > max_bytes:
                    raise _too_large(max_bytes)
                chunks.append(chunk)
            served = response.headers.get("content-type", "").split(";")[0].strip().lower()
    except httpx.TransportError as error:
        raise RetryLater(
            f"Telegram's file server could not be reached ({type(error).__name__}: {error})."
        ) from None
    generic = {"", "application/octet-stream", "binary/octet-stream"}
    return b"".join(chunks), None if served in generic else served
