"""SMS and MMS through Twilio Programmable Messaging (or any service that speaks its API).

Inbound messages and delivery statuses arrive as signed form posts at the account's webhook
URL (Atiende passes that same URL as ``StatusCallback`` when it sends). Outbound text goes
through the Messages resource; text longer than one API call allows is split at SMS segment
boundaries (``split_body``) and sent as several messages.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import mimetypes
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Final, Literal
from urllib.parse import parse_qs, quote, urlsplit

import httpx
import phonenumbers

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
from atiende.core.clock import Clock, SystemClock

DEFAULT_API_BASE: Final = "https://api.twilio.com"
MAX_BODY_CHARS: Final = 1600  # Twilio refuses a longer Body (error 21617)
DEFAULT_MAX_SEGMENTS: Final = 10  # Twilio's advice for a single message
MAX_MEDIA: Final = 10  # media items Twilio attaches to one MMS
#: The answer to an inbound-message webhook: TwiML that asks Twilio for no automatic reply.
TWIML_EMPTY_RESPONSE: Final = '<?xml version="1.0" encoding="UTF-8"?><Response />'
TWIML_CONTENT_TYPE: Final = "text/xml"

# --- GSM 03.38 and segments ---------------------------------------------------------------

#: The GSM 03.38 default alphabet (one septet each); the escape code 0x1B is not a character.
GSM7_BASIC: Final = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
#: The extension table: each is sent as the escape septet plus one, so it costs two.
GSM7_EXTENSION: Final = frozenset("\f^{}\\[~]|€")

Encoding = Literal["GSM-7", "UCS-2"]

_GSM7_SINGLE, _GSM7_CONCATENATED = 160, 153  # septets per segment
_UCS2_SINGLE, _UCS2_CONCATENATED = 70, 67  # UTF-16 code units per segment


def encoding_of(text: str) -> Encoding:
    """GSM-7 when every character is in the GSM 03.38 tables, else UCS-2."""
    if all(ch in GSM7_BASIC or ch in GSM7_EXTENSION for ch in text):
        return "GSM-7"
    return "UCS-2"


def utf16_units(text: str) -> int:
    """Length in UTF-16 code units: a character outside the BMP (most emoji) counts two."""
    return sum(2 if ord(ch) > 0xFFFF else 1 for ch in text)


def segments(text: str) -> tuple[Encoding, int]:
    """How the text goes over the air: its encoding and the number of SMS segments.

    A single message holds 160 septets (GSM-7) or 70 UTF-16 code units (UCS-2); a
    concatenated one 153 or 67 per segment, because each segment carries a header. An
    extension character (two septets) or a surrogate pair (two code units) is never split
    between segments, so a segment can end one short. The empty text is zero segments.
    """
    encoding = encoding_of(text)
    if encoding == "GSM-7":
        costs = [2 if ch in GSM7_EXTENSION else 1 for ch in text]
        single, concatenated = _GSM7_SINGLE, _GSM7_CONCATENATED
    else:
        costs = [2 if ord(ch) > 0xFFFF else 1 for ch in text]
        single, concatenated = _UCS2_SINGLE, _UCS2_CONCATENATED
    total = sum(costs)
    if total == 0:
        return encoding, 0
    if total <= single:
        return encoding, 1
    parts, used = 1, 0
    for cost in costs:
        if used + cost > concatenated:
            parts, used = parts + 1, 0
        used += cost
    return encoding, parts


def _fits(part: str, max_segments: int) -> bool:
    return utf16_units(part) <= MAX_BODY_CHARS and segments(part)[1] <= max_segments


def split_body(text: str, max_segments: int = DEFAULT_MAX_SEGMENTS) -> list[str]:
    """The text cut into API calls: each part at most 1600 characters and ``max_segments``
    segments, each as long as it can be, so every cut falls on a segment boundary.

    The parts join back to the text exactly. Cuts fall between characters, so an extension
    character's escape pair and a surrogate pair always stay together. A part is encoded on
    its own: a GSM-7 stretch before the first emoji still gets 153 septets per segment.
    """
    if max_segments < 1:
        raise ValueError("max_segments must be at least 1")
    parts: list[str] = []
    rest = text
    while rest:
        cut = _longest_fitting_prefix(rest, max_segments)
        parts.append(rest[:cut])
        rest = rest[cut:]
    return parts


def _longest_fitting_prefix(text: str, max_segments: int) -> int:
    # Segments never decrease as a prefix grows (UCS-2 costs more per character than GSM-7
    # ever does), so a binary search finds the longest prefix that fits.
    high = min(len(text), MAX_BODY_CHARS)
    if _fits(text[:high], max_segments):
        return high
    low = 1  # one character always fits: at most two septets or two code units
    while high - low > 1:
        middle = (low + high) // 2
        if _fits(text[:middle], max_segments):
            low = middle
        else:
            high = middle
    return low


# --- X-Twilio-Signature ---------------------------------------------------------------------


def compute_signature(auth_token: str, url: str, params: Mapping[str, Sequence[str]]) -> str:
    """Twilio's request signature: the URL, then for each parameter name in sorted order its
    distinct values sorted, each appended as name + value; HMAC-SHA1 with the auth token,
    base64."""
    data = url
    for name in sorted(params):
        for value in sorted(set(params[name])):
            data += name + value
    digest = hmac.new(auth_token.encode(), data.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def _url_variants(url: str) -> tuple[str, str]:
    """The URL without its port and with the scheme's default port added: Twilio signs one
    or the other depending on the product, so either must be accepted. Only the authority
    changes; the rest stays byte for byte as it was signed."""
    parts = urlsplit(url)
    start = len(parts.scheme) + 3  # after "scheme://"
    netloc = url[start : start + len(parts.netloc)]
    userinfo, at, hostport = netloc.rpartition("@")
    if hostport.startswith("["):
        host, _, port_part = hostport.partition("]")
        host += "]"
        port = port_part.removeprefix(":")
    else:
        host, _, port = hostport.partition(":")

    def with_authority(authority: str) -> str:
        return url[:start] + userinfo + at + authority + url[start + len(netloc) :]

    if port:
        return with_authority(host), url
    default = "443" if parts.scheme == "https" else "80"
    return url, with_authority(f"{host}:{default}")


def signature_matches(
    auth_token: str, url: str, params: Mapping[str, Sequence[str]], signature: str
) -> bool:
    """Whether ``signature`` is Twilio's for this URL and these POST parameters."""
    presented = signature.encode()
    matches = False
    for variant in _url_variants(url):
        expected = compute_signature(auth_token, variant, params).encode()
        # no short-circuit: both comparisons always run
        matches = hmac.compare_digest(expected, presented) | matches
    return matches


def _decode_form(body: bytes) -> dict[str, list[str]]:
    """An ``application/x-www-form-urlencoded`` body with every value of every name; raises
    ``ValueError`` when it is not UTF-8."""
    return parse_qs(body.decode("utf-8"), keep_blank_values=True, errors="strict")


def _signed_params(request: RawRequest) -> dict[str, list[str]]:
    query = parse_qs(urlsplit(request.url).query, keep_blank_values=True)
    if "bodySHA256" in query:
        # A JSON-body webhook: the body is covered by its hash in the signed URL.
        expected = hashlib.sha256(request.body).hexdigest().encode()
        if not hmac.compare_digest(expected, query["bodySHA256"][0].encode()):
            raise SignatureInvalid("The body does not match its signed hash.")
        return {}
    if request.method.upper() != "POST":
        return {}  # a GET webhook carries its parameters in the signed URL
    try:
        return _decode_form(request.body)
    except ValueError as error:
        raise SignatureInvalid("The body is not a form.") from error


# --- inbound ------------------------------------------------------------------------------

#: Twilio's ``MessageStatus`` → ours. ``received``/``receiving`` mark an inbound message.
_STATUSES: Final[Mapping[str, str]] = {
    "accepted": "sent",
    "scheduled": "sent",
    "queued": "sent",
    "sending": "sent",
    "sent": "sent",
    "partially_delivered": "sent",
    "delivered": "delivered",
    "read": "read",
    "undelivered": "failed",
    "failed": "failed",
    "canceled": "failed",
}
_INBOUND_STATUSES: Final = frozenset({"received", "receiving"})

#: What the agent reads next to a failed message, for the usual delivery error codes.
ERROR_DESCRIPTIONS: Final[Mapping[str, str]] = {
    "30001": "Queue overflow: too many messages were waiting to be sent.",
    "30002": "The Twilio account is suspended.",
    "30003": "The destination handset is unreachable (switched off or out of coverage).",
    "30004": "The message was blocked (the recipient or their carrier blocks it).",
    "30005": "The destination number is unknown or no longer in service.",
    "30006": "The destination is a landline or its carrier cannot receive SMS.",
    "30007": "The carrier filtered the message as spam or abuse.",
    "30008": "The carrier reported an unknown error.",
    "30010": "The message price exceeds the configured maximum.",
    "21610": "The recipient has opted out (replied STOP).",
}


def _form(request: RawRequest) -> dict[str, str]:
    """The webhook's parameters, one value per name (Twilio never repeats one)."""
    if request.method.upper() != "POST":
        return dict(request.query)
    try:
        decoded = _decode_form(request.body)
    except ValueError as error:
        raise PayloadMalformed("The body is not an url-encoded form.") from error
    return {name: values[-1] for name, values in decoded.items()}


def _message_sid(form: Mapping[str, str]) -> str:
    sid = form.get("MessageSid") or form.get("SmsMessageSid") or form.get("SmsSid") or ""
    if not (2 <= len(sid) <= 64 and sid.isascii() and sid.isalnum()):
        raise PayloadMalformed("The request has no valid MessageSid.")
    return sid


def _status_of(form: Mapping[str, str]) -> str | None:
    """The outbound status a callback reports, or ``None`` for an inbound message."""
    status = form.get("MessageStatus")
    if status is None or status in _INBOUND_STATUSES:
        return None
    if status not in _STATUSES:
        raise PayloadMalformed(f"Unknown MessageStatus {status[:40]!r}.")
    return status


def normalise_sender(value: str) -> str:
    """A ``From`` address as a contact identity: E.164 for phone numbers, the digits of a
    short code as they are. Other channel addresses (``whatsapp:…``) are not SMS."""
    value = value.strip()
    if value.isascii() and value.isdigit() and 3 <= len(value) <= 8:
        return value  # a short code
    if not value.startswith("+"):
        raise PayloadMalformed("The sender is not a phone number.")
    try:
        parsed = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException as error:
        raise PayloadMalformed("The sender is not a phone number.") from error
    if not phonenumbers.is_possible_number(parsed):
        raise PayloadMalformed("The sender is not a phone number.")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def _inbound(form: Mapping[str, str]) -> InboundMessage:
    sid = _message_sid(form)
    sender = normalise_sender(form.get("From", ""))
    raw_count = form.get("NumMedia", "0") or "0"
    if not (raw_count.isascii() and raw_count.isdigit()) or int(raw_count) > MAX_MEDIA:
        raise PayloadMalformed("NumMedia is not a count of media.")
    media: list[MediaRef] = []
    for index in range(int(raw_count)):
        url = form.get(f"MediaUrl{index}", "")
        if not url.lower().startswith(("https://", "http://")):
            raise PayloadMalformed(f"MediaUrl{index} is missing or not a URL.")
        content_type = form.get(f"MediaContentType{index}") or None
        media.append(
            MediaRef(kind=media_kind(content_type), provider_ref=url, content_type=content_type)
        )
    data = {
        key: form[param]
        for key, param in (("to", "To"), ("from_country", "FromCountry"))
        if form.get(param)
    }
    return InboundMessage(
        provider_message_id=sid,
        sender_id=sender,
        sender_name=None,
        text=form.get("Body", ""),
        media=tuple(media),
        kind="media" if media else "text",
        data=data,
    )


def _status_update(form: Mapping[str, str], twilio_status: str) -> StatusUpdate:
    status = _STATUSES[twilio_status]
    if status != "failed":
        return StatusUpdate(provider_message_id=_message_sid(form), status=status)
    error_code = form.get("ErrorCode") or None
    if twilio_status == "canceled" and error_code is None:
        error_code = "canceled"
    error_message = form.get("ErrorMessage") or ERROR_DESCRIPTIONS.get(error_code or "")
    return StatusUpdate(
        provider_message_id=_message_sid(form),
        status=status,
        error_code=error_code,
        error_message=error_message,
    )


# --- outbound helpers -----------------------------------------------------------------------


def _twilio_error(response: httpx.Response) -> tuple[int | None, str]:
    """Twilio's error code and message from either of its error body shapes."""
    try:
        body: Any = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        return None, f"Twilio answered HTTP {response.status_code}."
    code = body.get("code")
    message = body.get("message") or body.get("detail") or body.get("title")
    return (
        code if isinstance(code, int) and not isinstance(code, bool) else None,
        str(message) if message else f"Twilio answered HTTP {response.status_code}.",
    )


def _failure(response: httpx.Response, clock: Clock) -> RetryLater | DeliveryFailed:
    code, message = _twilio_error(response)
    status = response.status_code
    if status == 429 or code == 20429 or status >= 500:
        seconds = retry_after_seconds(response.headers.get("retry-after"), clock)
        return RetryLater(message, seconds=seconds)
    if code == 21610:
        return DeliveryFailed(message, code="opted_out")
    if code in (21211, 21614):
        return DeliveryFailed(message, code="invalid_number")
    return DeliveryFailed(message, code=str(code) if code is not None else f"http_{status}")


def _setting(config: AccountConfig, name: str) -> str:
    value = config.settings.get(name)
    return value.strip() if isinstance(value, str) else ""


def _same_origin(url: str, other: str) -> bool:
    a, b = urlsplit(url), urlsplit(other)
    return (a.scheme, a.hostname, a.port) == (b.scheme, b.hostname, b.port)


def _is_twilio_host(url: str) -> bool:
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    return parts.scheme == "https" and (host == "twilio.com" or host.endswith(".twilio.com"))


# --- the adapter --------------------------------------------------------------------------


class TwilioSmsAdapter:
    """SMS/MMS through Twilio. Settings: ``account_sid``, ``from_number`` (E.164) or
    ``messaging_service_sid``, ``api_base``; secret: ``auth_token``."""

    kind: ClassVar[ChannelKind] = ChannelKind.sms
    setting_fields: ClassVar[tuple[str, ...]] = (
        "account_sid",
        "from_number",
        "messaging_service_sid",
        "api_base",
    )
    secret_fields: ClassVar[tuple[str, ...]] = ("auth_token",)

    def __init__(self, clock: Clock | None = None) -> None:
        self._clock = clock or SystemClock()

    def handshake(self, request: RawRequest, config: AccountConfig) -> str | None:
        return None

    def verify(self, request: RawRequest, config: AccountConfig) -> None:
        """Check ``X-Twilio-Signature`` against ``request.url``, which must be the URL exactly
        as configured in Twilio (scheme, host, path and query)."""
        signature = request.headers.get("x-twilio-signature")
        auth_token = config.secrets.get("auth_token")
        if not signature or not auth_token:
            raise SignatureInvalid()
        if not signature_matches(auth_token, request.url, _signed_params(request), signature):
            raise SignatureInvalid()

    def event_id(self, request: RawRequest) -> str:
        # An unknown status still has an id, so the callback is kept (and ``parse`` says
        # what is wrong with it) instead of being refused.
        form = _form(request)
        sid = _message_sid(form)
        status = form.get("MessageStatus")
        if status is None or status in _INBOUND_STATUSES:
            return sid
        if not (0 < len(status) <= 40 and status.isascii() and status.isprintable()):
            raise PayloadMalformed("MessageStatus is not a status.")
        return f"{sid}:{status}"

    def parse(self, request: RawRequest) -> list[Inbound]:
        form = _form(request)
        status = _status_of(form)
        if status is None:
            return [_inbound(form)]
        return [_status_update(form, status)]

    async def send(
        self, http: httpx.AsyncClient, config: AccountConfig, message: OutboundRequest
    ) -> SendResult:
        """Send the text, split into several messages when it is longer than one may be.
        The result carries the first message's sid, and only the first asks for status
        callbacks: its statuses are the ones the message shows. A failure after some parts
        went out is final (``partially_sent``), so a retry never sends those parts twice."""
        if message.files:
            raise DeliveryFailed(
                "Twilio needs a public URL for each file; SMS sends text only.",
                code="media_not_supported",
            )
        if message.template is not None:
            raise DeliveryFailed("SMS has no message templates.", code="template_not_supported")
        parts = split_body(message.text)
        if not parts:
            raise DeliveryFailed("The message has no text.", code="empty_message")
        account_sid = _setting(config, "account_sid")
        if not account_sid:
            raise DeliveryFailed("The channel has no account_sid.", code="not_configured")
        auth_token = config.secret("auth_token")
        sender: dict[str, str]
        if service_sid := _setting(config, "messaging_service_sid"):
            sender = {"MessagingServiceSid": service_sid}
        elif from_number := _setting(config, "from_number"):
            sender = {"From": from_number}
        else:
            raise DeliveryFailed(
                "The channel has neither from_number nor messaging_service_sid.",
                code="not_configured",
            )
        api_base = (_setting(config, "api_base") or DEFAULT_API_BASE).rstrip("/")
        url = f"{api_base}/2010-04-01/Accounts/{quote(account_sid, safe='')}/Messages.json"
        sids: list[str] = []
        for index, part in enumerate(parts):
            form = {"To": message.to, **sender, "Body": part}
            if index == 0:  # the later parts' sids are not ours to follow
                form["StatusCallback"] = config.webhook_url
            try:
                sids.append(await self._create(http, url, (account_sid, auth_token), form))
            except (RetryLater, DeliveryFailed) as error:
                if index == 0:
                    raise
                raise DeliveryFailed(
                    f"{index} of {len(parts)} parts were sent, then: {error}",
                    code="partially_sent",
                ) from error
        return SendResult(provider_message_id=sids[0])

    async def _create(
        self, http: httpx.AsyncClient, url: str, auth: tuple[str, str], form: dict[str, str]
    ) -> str:
        try:
            response = await http.post(
                url, data=form, auth=auth, headers={"Accept": "application/json"}
            )
        except httpx.TransportError as error:
            raise RetryLater(f"Twilio could not be reached: {error!r}") from error
        if not response.is_success:
            raise _failure(response, self._clock)
        try:
            sid = response.json().get("sid")
        except (ValueError, AttributeError):
            sid = None
        if not isinstance(sid, str) or not sid:
            raise DeliveryFailed("Twilio's answer has no message sid.", code="unexpected_response")
        return sid

    async def fetch_media(
        self, http: httpx.AsyncClient, config: AccountConfig, media: MediaRef, *, max_bytes: int
    ) -> OutboundFile:
        """Download a ``MediaUrl``. Twilio answers with a redirect to its storage, which is
        followed; the account's credentials go only to Twilio's API (httpx drops them on a
        redirect to another origin)."""
        url = media.provider_ref
        if urlsplit(url).scheme not in {"http", "https"}:
            raise PayloadMalformed("The media URL is not http(s).")
        api_base = _setting(config, "api_base") or DEFAULT_API_BASE
        auth: tuple[str, str] | None = None
        if _same_origin(url, api_base) or _is_twilio_host(url):
            auth_token = config.secrets.get("auth_token")
            if not auth_token:
                raise PayloadMalformed("The channel has no auth_token.", code="not_configured")
            auth = (_setting(config, "account_sid"), auth_token)
        try:
            async with http.stream("GET", url, auth=auth, follow_redirects=True) as response:
                if response.status_code == 429 or response.status_code >= 500:
                    seconds = retry_after_seconds(response.headers.get("retry-after"), self._clock)
                    raise RetryLater(
                        f"The media answered HTTP {response.status_code}.", seconds=seconds
                    )
                if not response.is_success:
                    raise PayloadMalformed(
                        f"The media answered HTTP {response.status_code}.",
                        code="media_unavailable",
                    )
                content = await read_capped(response, max_bytes)
                header_type = response.headers.get("content-type", "")
        except httpx.TransportError as error:
            raise RetryLater(f"The media could not be downloaded: {error!r}") from error
        content_type = (
            header_type.split(";", 1)[0].strip().lower()
            or media.content_type
            or "application/octet-stream"
        )
        return OutboundFile(
            filename=media.filename or _filename_for(url, content_type),
            content_type=content_type,
            content=content,
        )


def _filename_for(url: str, content_type: str) -> str:
    stem = urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1] or "media"
    extension = mimetypes.guess_extension(content_type) or ""
    return stem if "." in stem else stem + extension
