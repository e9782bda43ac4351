"""The SMS channel through Twilio: signed webhooks (the provider's own signature vectors),
inbound SMS/MMS and delivery statuses, sending through a local server that speaks Twilio's
REST API, GSM-7/UCS-2 segments and splitting long text, and downloading MMS media."""

from __future__ import annotations

import base64
import contextlib
import doctest
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from atiende.channels.adapters.twilio_sms import (
    ERROR_DESCRIPTIONS,
    GSM7_BASIC,
    GSM7_EXTENSION,
    MAX_BODY_CHARS,
    TwilioSmsAdapter,
    compute_signature,
    segments,
    signature_matches,
    split_body,
    utf16_units,
)
from atiende.channels.base import (
    AccountConfig,
    DeliveryFailed,
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
from atiende.core.clock import TestClock
from fakes.twilio import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    ERROR_20429,
    ERROR_20500,
    ERROR_21211,
    ERROR_21408,
    ERROR_21610,
    ERROR_21614,
    Answer,
    StoredMedia,
    running_twilio,
)

ADAPTER = TwilioSmsAdapter()
WEBHOOK_URL = "https://cc.example.com/twilio/sms"
STATUS_URL = "https://cc.example.com/twilio/status"

# --- the provider's documented webhook parameters -------------------------------------------

INBOUND_SMS: dict[str, str] = {
    "ToCountry": "US",
    "ToState": "CA",
    "SmsMessageSid": "SM1234567890abcdef1234567890abcdef",
    "NumMedia": "0",
    "ToCity": "SAN FRANCISCO",
    "FromZip": "94105",
    "SmsSid": "SM1234567890abcdef1234567890abcdef",
    "FromState": "CA",
    "SmsStatus": "received",
    "FromCity": "SAN FRANCISCO",
    "Body": "Hi, where is my order?",
    "FromCountry": "US",
    "To": "+14155550100",
    "MessagingServiceSid": "MGXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX",
    "ToZip": "94105",
    "NumSegments": "1",
    "MessageSid": "SM1234567890abcdef1234567890abcdef",
    "AccountSid": "ACXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX",
    "From": "+14155550123",
    "ApiVersion": "2010-04-01",
}
MEDIA_URL = (
    "https://api.twilio.com/2010-04-01/Accounts/ACXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX/Messages/"
    "MM1234567890abcdef1234567890abcdef/Media/ME1234567890abcdef1234567890abcdef"
)
INBOUND_MMS: dict[str, str] = {
    **INBOUND_SMS,
    "SmsMessageSid": "MM1234567890abcdef1234567890abcdef",
    "SmsSid": "MM1234567890abcdef1234567890abcdef",
    "MessageSid": "MM1234567890abcdef1234567890abcdef",
    "NumMedia": "1",
    "Body": "Photo of the receipt",
    "MediaContentType0": "image/jpeg",
    "MediaUrl0": MEDIA_URL,
}
STATUS_DELIVERED: dict[str, str] = {
    "SmsSid": "SMaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "SmsStatus": "delivered",
    "MessageStatus": "delivered",
    "To": "+14155550123",
    "MessageSid": "SMaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "AccountSid": "ACXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX",
    "From": "+14155550100",
    "ApiVersion": "2010-04-01",
    "RawDlrDoneDate": "2601151230",
}
STATUS_UNDELIVERED: dict[str, str] = {
    "SmsSid": "SMaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "SmsStatus": "undelivered",
    "MessageStatus": "undelivered",
    "ErrorCode": "30003",
    "To": "+14155550123",
    "MessageSid": "SMaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "AccountSid": "ACXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX",
    "From": "+14155550100",
    "ApiVersion": "2010-04-01",
}

# The provider's request-validator vectors (auth token "12345").
VECTOR_URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
VECTOR_PARAMS = {
    "CallSid": "CA1234567890ABCDE",
    "Digits": "1234",
    "From": "+14158675309",
    "To": "+18005551212",
    "Caller": "+14158675309",
}
# The same algorithm over the webhooks above, as form bodies byte for byte.
SMS_RAW_BODY = (
    "ToCountry=US&ToState=CA&SmsMessageSid=SM1234567890abcdef1234567890abcdef&NumMedia=0"
    "&ToCity=SAN+FRANCISCO&FromZip=94105&SmsSid=SM1234567890abcdef1234567890abcdef"
    "&FromState=CA&SmsStatus=received&FromCity=SAN+FRANCISCO&Body=Hi%2C+where+is+my+order%3F"
    "&FromCountry=US&To=%2B14155550100&MessagingServiceSid=MGXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"
    "&ToZip=94105&NumSegments=1&MessageSid=SM1234567890abcdef1234567890abcdef"
    "&AccountSid=ACXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX&From=%2B14155550123&ApiVersion=2010-04-01"
)
SMS_SIGNATURE = "2KazCNKN8maI2oVJp3sh8BlNKKg="
DELIVERED_RAW_BODY = (
    "SmsSid=SMaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa&SmsStatus=delivered&MessageStatus=delivered"
    "&To=%2B14155550123&MessageSid=SMaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
    "&AccountSid=ACXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX&From=%2B14155550100&ApiVersion=2010-04-01"
    "&RawDlrDoneDate=2601151230"
)
DELIVERED_SIGNATURE = "96DfMEpoC5Q3xZowOYcOTpBskhU="


def config(**settings_: str) -> AccountConfig:
    return AccountConfig(
        account_id="acc-1",
        settings={"account_sid": ACCOUNT_SID, "from_number": "+14155550100", **settings_},
        secrets={"auth_token": AUTH_TOKEN},
        webhook_url=STATUS_URL,
    )


def form_request(
    params: Mapping[str, str],
    *,
    url: str = WEBHOOK_URL,
    signature: str | None = None,
    body: bytes | None = None,
) -> RawRequest:
    headers = {"content-type": "application/x-www-form-urlencoded"}
    if signature is not None:
        headers["x-twilio-signature"] = signature
    return RawRequest(
        method="POST",
        url=url,
        headers=headers,
        query={},
        body=urlencode(params).encode() if body is None else body,
        form=dict(params),
    )


def signed(params: Mapping[str, str], *, url: str = WEBHOOK_URL) -> RawRequest:
    signature = compute_signature(AUTH_TOKEN, url, {k: [v] for k, v in params.items()})
    return form_request(params, url=url, signature=signature)


# --- X-Twilio-Signature ---------------------------------------------------------------------


def test_the_providers_signature_vector_is_reproduced() -> None:
    params = {name: [value] for name, value in VECTOR_PARAMS.items()}
    assert compute_signature("12345", VECTOR_URL, params) == "RSOYDt4T1cUTdK1PDd93/VVr8B8="


@pytest.mark.parametrize(
    ("url", "signature"),
    [
        (VECTOR_URL, "RSOYDt4T1cUTdK1PDd93/VVr8B8="),
        (VECTOR_URL, "kvajT1Ptam85bY51eRf/AJRuM3w="),  # signed with :443 added
        ("http://mycompany.com/myapp.php?foo=1&bar=2", "0ZXoZLH/DfblKGATFgpif+LLRf4="),  # :80
    ],
)
def test_a_signature_with_or_without_the_default_port_is_accepted(url: str, signature: str) -> None:
    request = form_request(VECTOR_PARAMS, url=url, signature=signature)
    ADAPTER.verify(request, AccountConfig("a", {}, {"auth_token": "12345"}, url))


def test_a_url_with_an_explicit_port_is_also_checked_without_it() -> None:
    params = {name: [value] for name, value in VECTOR_PARAMS.items()}
    signature = compute_signature("12345", VECTOR_URL, params)
    with_port = "https://mycompany.com:443/myapp.php?foo=1&bar=2"
    assert signature_matches("12345", with_port, params, signature)
    assert not signature_matches(
        "12345",
        "https://mycompany.com:8443/myapp.php?foo=1&bar=2",
        params,
        "kvajT1Ptam85bY51eRf/AJRuM3w=",
    )


def test_a_json_body_webhook_is_checked_through_its_body_hash() -> None:
    body = b'{"property": "value", "boolean": true}'
    url = (
        VECTOR_URL + "&bodySHA256=0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620"
    )
    account = AccountConfig("a", {}, {"auth_token": "12345"}, url)
    request = RawRequest(
        "POST", url, {"x-twilio-signature": "a9nBmqA0ju/hNViExpshrM61xv4="}, {}, body
    )
    ADAPTER.verify(request, account)
    tampered = RawRequest(
        "POST", url, {"x-twilio-signature": "a9nBmqA0ju/hNViExpshrM61xv4="}, {}, body + b" "
    )
    with pytest.raises(SignatureInvalid):
        ADAPTER.verify(tampered, account)


@pytest.mark.parametrize(
    ("url", "raw_body", "signature"),
    [
        (WEBHOOK_URL, SMS_RAW_BODY, SMS_SIGNATURE),
        (STATUS_URL, DELIVERED_RAW_BODY, DELIVERED_SIGNATURE),
    ],
)
def test_signed_sms_webhooks_verify(url: str, raw_body: str, signature: str) -> None:
    request = form_request({}, url=url, signature=signature, body=raw_body.encode())
    ADAPTER.verify(request, config())


def test_a_wrong_signature_is_refused() -> None:
    request = form_request({}, signature="2KazCNKN8maI2oVJp3sh8BlNKKh=", body=SMS_RAW_BODY.encode())
    with pytest.raises(SignatureInvalid):
        ADAPTER.verify(request, config())


def test_a_missing_signature_is_refused() -> None:
    with pytest.raises(SignatureInvalid):
        ADAPTER.verify(form_request({}, body=SMS_RAW_BODY.encode()), config())


def test_a_tampered_body_is_refused() -> None:
    body = SMS_RAW_BODY.replace("where+is+my+order", "send+me+a+refund").encode()
    with pytest.raises(SignatureInvalid):
        ADAPTER.verify(form_request({}, signature=SMS_SIGNATURE, body=body), config())


def test_an_added_parameter_is_refused() -> None:
    body = (SMS_RAW_BODY + "&Extra=1").encode()
    with pytest.raises(SignatureInvalid):
        ADAPTER.verify(form_request({}, signature=SMS_SIGNATURE, body=body), config())


def test_a_signature_for_another_url_is_refused() -> None:
    request = form_request(
        {},
        url="https://cc.example.com/twilio/other",
        signature=SMS_SIGNATURE,
        body=SMS_RAW_BODY.encode(),
    )
    with pytest.raises(SignatureInvalid):
        ADAPTER.verify(request, config())


def test_an_account_without_an_auth_token_refuses_everything() -> None:
    request = form_request({}, signature=SMS_SIGNATURE, body=SMS_RAW_BODY.encode())
    account = AccountConfig("a", {"account_sid": ACCOUNT_SID}, {}, WEBHOOK_URL)
    with pytest.raises(SignatureInvalid):
        ADAPTER.verify(request, account)


def test_a_body_that_is_not_utf8_is_refused() -> None:
    request = form_request({}, signature=SMS_SIGNATURE, body=b"Body=\xff\xfe")
    with pytest.raises(SignatureInvalid):
        ADAPTER.verify(request, config())


def test_every_value_of_a_repeated_parameter_is_signed() -> None:
    body = b"MediaUrl=b&MediaUrl=a&Body=x"
    expected = compute_signature(AUTH_TOKEN, WEBHOOK_URL, {"Body": ["x"], "MediaUrl": ["a", "b"]})
    # values sorted: "Body" "x" then "MediaUrl" "a", "MediaUrl" "b"
    assert expected == compute_signature(AUTH_TOKEN, WEBHOOK_URL + "BodyxMediaUrlaMediaUrlb", {})
    ADAPTER.verify(form_request({}, signature=expected, body=body), config())
    with pytest.raises(SignatureInvalid):
        ADAPTER.verify(form_request({}, signature=expected, body=b"MediaUrl=a&Body=x"), config())


def test_a_get_webhook_signs_only_its_url() -> None:
    url = WEBHOOK_URL + "?" + urlencode(INBOUND_SMS)
    signature = compute_signature(AUTH_TOKEN, url, {})
    request = RawRequest("GET", url, {"x-twilio-signature": signature}, dict(INBOUND_SMS), b"")
    ADAPTER.verify(request, config())
    assert ADAPTER.parse(request)[0] == ADAPTER.parse(signed(INBOUND_SMS))[0]


# --- inbound --------------------------------------------------------------------------------


def test_an_inbound_sms_becomes_a_message_from_the_sender_number() -> None:
    assert ADAPTER.parse(signed(INBOUND_SMS)) == [
        InboundMessage(
            provider_message_id="SM1234567890abcdef1234567890abcdef",
            sender_id="+14155550123",
            sender_name=None,
            text="Hi, where is my order?",
            sent_at=None,
            media=(),
            kind="text",
            data={"to": "+14155550100", "from_country": "US"},
        )
    ]


def test_an_inbound_mms_carries_its_media_url() -> None:
    [message] = ADAPTER.parse(signed(INBOUND_MMS))
    assert message == InboundMessage(
        provider_message_id="MM1234567890abcdef1234567890abcdef",
        sender_id="+14155550123",
        sender_name=None,
        text="Photo of the receipt",
        media=(MediaRef(kind="image", provider_ref=MEDIA_URL, content_type="image/jpeg"),),
        kind="media",
        data={"to": "+14155550100", "from_country": "US"},
    )


def test_several_media_keep_their_order_and_kinds() -> None:
    params = {
        **INBOUND_MMS,
        "Body": "",
        "NumMedia": "3",
        "MediaUrl1": MEDIA_URL + "1",
        "MediaContentType1": "application/pdf",
        "MediaUrl2": MEDIA_URL + "2",
        "MediaContentType2": "video/mp4",
    }
    [message] = ADAPTER.parse(signed(params))
    assert isinstance(message, InboundMessage)
    assert message.text == ""
    assert [(m.kind, m.provider_ref) for m in message.media] == [
        ("image", MEDIA_URL),
        ("document", MEDIA_URL + "1"),
        ("video", MEDIA_URL + "2"),
    ]


@pytest.mark.parametrize(
    ("sender", "expected"),
    [("+52 55 1234 5678", "+525512345678"), (" +14155550123 ", "+14155550123"), ("89203", "89203")],
)
def test_the_sender_is_normalised(sender: str, expected: str) -> None:
    [message] = ADAPTER.parse(signed({**INBOUND_SMS, "From": sender}))
    assert isinstance(message, InboundMessage)
    assert message.sender_id == expected


def test_the_delivered_callback_becomes_a_delivered_status() -> None:
    assert ADAPTER.parse(signed(STATUS_DELIVERED, url=STATUS_URL)) == [
        StatusUpdate(provider_message_id="SMaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", status="delivered")
    ]


def test_the_undelivered_callback_is_a_failure_with_twilios_code() -> None:
    assert ADAPTER.parse(signed(STATUS_UNDELIVERED, url=STATUS_URL)) == [
        StatusUpdate(
            provider_message_id="SMaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            status="failed",
            error_code="30003",
            error_message=ERROR_DESCRIPTIONS["30003"],
        )
    ]


@pytest.mark.parametrize(
    ("twilio_status", "status"),
    [
        ("queued", "sent"),
        ("sending", "sent"),
        ("sent", "sent"),
        ("delivered", "delivered"),
        ("read", "read"),
        ("undelivered", "failed"),
        ("failed", "failed"),
    ],
)
def test_each_twilio_status_maps_to_ours(twilio_status: str, status: str) -> None:
    params = {**STATUS_DELIVERED, "MessageStatus": twilio_status, "SmsStatus": twilio_status}
    [update] = ADAPTER.parse(signed(params))
    assert isinstance(update, StatusUpdate)
    assert update.status == status


def test_a_failed_callback_passes_twilios_own_error_message() -> None:
    params = {
        **STATUS_UNDELIVERED,
        "MessageStatus": "failed",
        "ErrorCode": "30008",
        "ErrorMessage": "Unknown error",
    }
    assert ADAPTER.parse(signed(params)) == [
        StatusUpdate(
            provider_message_id="SMaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            status="failed",
            error_code="30008",
            error_message="Unknown error",
        )
    ]


def test_event_ids_tell_messages_and_each_status_apart() -> None:
    undelivered = signed(STATUS_UNDELIVERED, url=STATUS_URL)
    assert ADAPTER.event_id(signed(INBOUND_SMS)) == "SM1234567890abcdef1234567890abcdef"
    assert ADAPTER.event_id(signed(INBOUND_MMS)) == "MM1234567890abcdef1234567890abcdef"
    assert ADAPTER.event_id(signed(STATUS_DELIVERED, url=STATUS_URL)) == (
        "SMaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa:delivered"
    )
    assert ADAPTER.event_id(undelivered) == "SMaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa:undelivered"
    # a redelivery is the same event
    assert ADAPTER.event_id(undelivered) == ADAPTER.event_id(
        signed(STATUS_UNDELIVERED, url=STATUS_URL)
    )


_NO_SID = {key: value for key, value in INBOUND_SMS.items() if "Sid" not in key}


@pytest.mark.parametrize(
    "params",
    [
        _NO_SID,
        {**_NO_SID, "MessageSid": "SM<script>"},
        {**STATUS_DELIVERED, "MessageStatus": ""},
        {**STATUS_DELIVERED, "MessageStatus": "x" * 41},
    ],
)
def test_a_webhook_without_a_usable_id_has_no_event_id(params: dict[str, str]) -> None:
    with pytest.raises(PayloadMalformed):
        ADAPTER.event_id(signed(params))


def test_an_unknown_status_is_kept_under_its_id_but_not_understood() -> None:
    request = signed({**STATUS_DELIVERED, "MessageStatus": "vanished"})
    assert ADAPTER.event_id(request) == "SMaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa:vanished"
    with pytest.raises(PayloadMalformed):
        ADAPTER.parse(request)


@pytest.mark.parametrize(
    "params",
    [
        _NO_SID,
        {**_NO_SID, "MessageSid": "SM<script>"},
        {**INBOUND_SMS, "From": "whatsapp:+14155550123"},
        {**INBOUND_SMS, "From": ""},
        {**INBOUND_SMS, "NumMedia": "two"},
        {**INBOUND_SMS, "NumMedia": "1"},  # no MediaUrl0
        {**INBOUND_SMS, "NumMedia": "1", "MediaUrl0": "file:///etc/passwd"},
        {**INBOUND_SMS, "NumMedia": "11"},
        {**STATUS_DELIVERED, "MessageStatus": "vanished"},
    ],
)
def test_malformed_webhooks_raise_payload_malformed(params: dict[str, str]) -> None:
    with pytest.raises(PayloadMalformed):
        ADAPTER.parse(signed(params))


def test_a_body_that_is_not_a_form_raises_payload_malformed() -> None:
    request = form_request({}, body=b"\xff\xfe\x00")
    with pytest.raises(PayloadMalformed):
        ADAPTER.event_id(request)
    with pytest.raises(PayloadMalformed):
        ADAPTER.parse(request)


def _event_id_and_parse_raise_only_payload_malformed(request: RawRequest) -> None:
    for call in (ADAPTER.event_id, ADAPTER.parse):
        with contextlib.suppress(PayloadMalformed):
            call(request)


@settings(max_examples=300)
@given(st.binary(max_size=400))
def test_arbitrary_bytes_never_crash_event_id_or_parse(body: bytes) -> None:
    _event_id_and_parse_raise_only_payload_malformed(form_request({}, body=body))


_NAMES = st.sampled_from(
    [
        "MessageSid",
        "From",
        "Body",
        "NumMedia",
        "MediaUrl0",
        "MediaContentType0",
        "MessageStatus",
        "ErrorCode",
        "SmsStatus",
        "To",
    ]
)


@settings(max_examples=300)
@given(st.dictionaries(st.one_of(_NAMES, st.text(max_size=10)), st.text(max_size=40)))
def test_arbitrary_forms_never_crash_event_id_or_parse(params: dict[str, str]) -> None:
    _event_id_and_parse_raise_only_payload_malformed(form_request(params))


# --- segments -------------------------------------------------------------------------------


def test_the_gsm_tables_have_their_standard_sizes() -> None:
    assert len(GSM7_BASIC) == 127  # 128 codes, one of them the escape
    assert frozenset("\f^{}\\[~]|€") == GSM7_EXTENSION
    assert not GSM7_BASIC & GSM7_EXTENSION


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", ("GSM-7", 0)),
        ("Hola", ("GSM-7", 1)),
        ("a" * 160, ("GSM-7", 1)),
        ("a" * 161, ("GSM-7", 2)),
        ("a" * 306, ("GSM-7", 2)),
        ("a" * 307, ("GSM-7", 3)),
        ("a" * 1530, ("GSM-7", 10)),
        ("{" * 80, ("GSM-7", 1)),  # 160 septets
        ("{" * 81, ("GSM-7", 2)),
        ("a" * 159 + "€", ("GSM-7", 2)),  # 161 septets
        # 306 septets, but the € cannot straddle the first boundary
        ("a" * 152 + "€" + "a" * 152, ("GSM-7", 3)),
        ("¿Dónde está?", ("UCS-2", 1)),  # ó and á are not GSM-7
        ("Ñandú", ("UCS-2", 1)),
        ("á" * 70, ("UCS-2", 1)),
        ("á" * 71, ("UCS-2", 2)),
        ("á" * 134, ("UCS-2", 2)),
        ("á" * 135, ("UCS-2", 3)),
        ("😀" * 35, ("UCS-2", 1)),  # 70 code units
        ("😀" * 36, ("UCS-2", 2)),  # 33 emoji per concatenated segment
        ("😀" * 67, ("UCS-2", 3)),
        # 134 code units, but the surrogate pair cannot straddle the first boundary
        ("á" * 66 + "😀" + "á" * 66, ("UCS-2", 3)),
        ("price `5`", ("UCS-2", 1)),  # the backtick is not in GSM 03.38
        ("@£$¥ÆæßÉ§¿", ("GSM-7", 1)),
    ],
)
def test_segments(text: str, expected: tuple[str, int]) -> None:
    assert segments(text) == expected


def test_the_documented_segment_examples_hold() -> None:
    docs = Path(__file__).resolve().parents[1] / "docs" / "channels" / "sms.md"
    result = doctest.testfile(
        str(docs), module_relative=False, globs={"segments": segments}, verbose=False
    )
    assert result.attempted >= 3
    assert result.failed == 0


def test_split_body_keeps_short_text_whole_and_drops_empty_text() -> None:
    assert split_body("Hola") == ["Hola"]
    assert split_body("") == []


def test_split_body_cuts_after_ten_segments() -> None:
    assert split_body("a" * 1530) == ["a" * 1530]
    assert split_body("a" * 1531) == ["a" * 1530, "a"]
    assert split_body("á" * 671) == ["á" * 670, "á"]
    assert split_body("😀" * 331) == ["😀" * 330, "😀"]


def test_split_body_with_one_segment_uses_the_single_message_capacity() -> None:
    assert split_body("a" * 321, max_segments=1) == ["a" * 160, "a" * 160, "a"]
    assert split_body("{" * 81, max_segments=1) == ["{" * 80, "{"]


def test_a_gsm_stretch_before_an_emoji_is_its_own_cheaper_part() -> None:
    text = "a" * 1000 + "😀" + "b" * 10
    parts = split_body(text)
    assert parts == ["a" * 1000, "😀" + "b" * 10]
    assert [segments(part) for part in parts] == [("GSM-7", 7), ("UCS-2", 1)]


def test_split_body_refuses_zero_segments() -> None:
    with pytest.raises(ValueError, match="max_segments"):
        split_body("a", max_segments=0)


_SMS_TEXT = st.text(
    alphabet=st.one_of(
        st.sampled_from(sorted(GSM7_BASIC)),
        st.sampled_from(sorted(GSM7_EXTENSION)),
        st.sampled_from(["á", "ó", "ç", "ü", "中", "😀", "👍", "\U0001f3fd", "\u200d"]),
        st.characters(),
    ),
    max_size=4000,
)


@settings(max_examples=200, deadline=None)
@given(_SMS_TEXT, st.integers(min_value=1, max_value=12))
def test_split_body_parts_rejoin_and_each_fits_as_long_as_it_can(
    text: str, max_segments: int
) -> None:
    parts = split_body(text, max_segments)
    assert "".join(parts) == text
    for index, part in enumerate(parts):
        assert part
        assert utf16_units(part) <= MAX_BODY_CHARS
        assert 1 <= segments(part)[1] <= max_segments
        if index + 1 < len(parts):  # one more character would not have fitted
            longer = part + parts[index + 1][0]
            assert segments(longer)[1] > max_segments or utf16_units(longer) > MAX_BODY_CHARS


@settings(max_examples=200)
@given(_SMS_TEXT, st.text(max_size=50))
def test_segments_never_decrease_as_text_grows(text: str, more: str) -> None:
    assert segments(text + more)[1] >= segments(text)[1]


# --- send -----------------------------------------------------------------------------------


def basic_auth() -> str:
    return "Basic " + base64.b64encode(f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode()


async def test_send_posts_the_message_form_with_basic_auth() -> None:
    async with running_twilio() as (fake, server), httpx.AsyncClient() as http:
        result = await ADAPTER.send(
            http,
            config(api_base=server.http),
            OutboundRequest(to="+14155550123", text="Your ticket #4821 has been updated."),
        )
    assert result == SendResult(provider_message_id=f"SM{1:032x}")
    [request] = fake.requests
    assert request.path == f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
    assert request.headers["authorization"] == basic_auth()
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert request.form == [
        ("To", "+14155550123"),
        ("From", "+14155550100"),
        ("Body", "Your ticket #4821 has been updated."),
        ("StatusCallback", "https://cc.example.com/twilio/status"),
    ]


async def test_a_messaging_service_sends_instead_of_a_number() -> None:
    async with running_twilio() as (fake, server), httpx.AsyncClient() as http:
        await ADAPTER.send(
            http,
            config(
                api_base=server.http, messaging_service_sid="MGaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
            ),
            OutboundRequest(to="+14155550123", text="Hola"),
        )
    form = dict(fake.requests[0].form)
    assert form["MessagingServiceSid"] == "MGaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
    assert "From" not in form


async def test_a_long_text_goes_as_several_messages_and_returns_the_first_sid() -> None:
    text = "Línea de atención. " * 60  # UCS-2 (í), 1140 characters
    async with running_twilio() as (fake, server), httpx.AsyncClient() as http:
        result = await ADAPTER.send(
            http, config(api_base=server.http), OutboundRequest(to="+14155550123", text=text)
        )
    bodies = [dict(request.form)["Body"] for request in fake.requests]
    assert bodies == split_body(text)
    assert len(bodies) == 2
    callbacks = [dict(request.form).get("StatusCallback") for request in fake.requests]
    assert callbacks == [STATUS_URL, None]
    assert "".join(bodies) == text
    assert result.provider_message_id == f"SM{1:032x}"


@pytest.mark.parametrize(
    ("answer", "expected_code"),
    [
        (Answer(400, ERROR_21211), "invalid_number"),
        (Answer(400, ERROR_21614), "invalid_number"),
        (Answer(400, ERROR_21610), "opted_out"),
        (Answer(400, ERROR_21408), "21408"),
        (Answer(404, None), "http_404"),
    ],
)
async def test_permanent_errors_fail_the_delivery(answer: Answer, expected_code: str) -> None:
    async with running_twilio() as (fake, server), httpx.AsyncClient() as http:
        fake.answers.append(answer)
        with pytest.raises(DeliveryFailed) as failed:
            await ADAPTER.send(
                http, config(api_base=server.http), OutboundRequest(to="+15551234567", text="Hi")
            )
    assert failed.value.code == expected_code
    if answer.body is not None:
        assert str(failed.value) == answer.body["message"]


async def test_a_wrong_auth_token_fails_with_twilios_code() -> None:
    async with running_twilio() as (_, server), httpx.AsyncClient() as http:
        account = AccountConfig(
            "acc-1",
            {"account_sid": ACCOUNT_SID, "from_number": "+14155550100", "api_base": server.http},
            {"auth_token": "wrong"},
            STATUS_URL,
        )
        with pytest.raises(DeliveryFailed) as failed:
            await ADAPTER.send(http, account, OutboundRequest(to="+14155550123", text="Hi"))
    assert failed.value.code == "20003"


@pytest.mark.parametrize(
    ("answer", "seconds"),
    [
        (Answer(429, ERROR_20429, {"Retry-After": "7"}), 7.0),
        (Answer(429, ERROR_20429), None),
        (Answer(500, ERROR_20500), None),
        (Answer(503, None, {"Retry-After": "Mon, 05 Jan 2026 15:00:30 GMT"}), 30.0),
    ],
)
async def test_rate_limits_and_server_errors_retry_later(
    answer: Answer, seconds: float | None
) -> None:
    adapter = TwilioSmsAdapter(clock=TestClock())  # 2026-01-05 15:00:00 UTC
    async with running_twilio() as (fake, server), httpx.AsyncClient() as http:
        fake.answers.append(answer)
        with pytest.raises(RetryLater) as retry:
            await adapter.send(
                http, config(api_base=server.http), OutboundRequest(to="+14155550123", text="Hi")
            )
    assert retry.value.seconds == seconds


async def test_a_failure_after_the_first_part_is_final_so_no_part_is_sent_twice() -> None:
    async with running_twilio() as (fake, server), httpx.AsyncClient() as http:
        fake.answers.extend([Answer(201, {"sid": "SM" + "1" * 32}), Answer(500, ERROR_20500)])
        with pytest.raises(DeliveryFailed) as failed:
            await ADAPTER.send(
                http, config(api_base=server.http), OutboundRequest(to="+1415", text="a" * 1531)
            )
    assert failed.value.code == "partially_sent"
    assert "1 of 2 parts" in str(failed.value)
    assert len(fake.requests) == 2


async def test_an_unreachable_api_is_retried_later() -> None:
    async with running_twilio() as (_, server):
        gone = server.http
    async with httpx.AsyncClient() as http:
        with pytest.raises(RetryLater):
            await ADAPTER.send(
                http, config(api_base=gone), OutboundRequest(to="+14155550123", text="Hi")
            )


async def test_files_are_refused_before_anything_is_sent() -> None:
    async with running_twilio() as (fake, server), httpx.AsyncClient() as http:
        with pytest.raises(DeliveryFailed) as failed:
            await ADAPTER.send(
                http,
                config(api_base=server.http),
                OutboundRequest(
                    to="+14155550123",
                    text="Your invoice",
                    files=[OutboundFile("invoice.pdf", "application/pdf", b"%PDF-1.4")],
                ),
            )
    assert failed.value.code == "media_not_supported"
    assert fake.requests == []


@pytest.mark.parametrize(
    ("account", "message", "code"),
    [
        (config(), OutboundRequest(to="+14155550123", text=""), "empty_message"),
        (config(account_sid=""), OutboundRequest(to="+14155550123", text="Hi"), "not_configured"),
        (config(from_number=""), OutboundRequest(to="+14155550123", text="Hi"), "not_configured"),
        (
            config(),
            OutboundRequest(to="+14155550123", text="Hi", template={"name": "hello_world"}),
            "template_not_supported",
        ),
    ],
)
async def test_messages_that_cannot_go_fail_without_a_request(
    account: AccountConfig, message: OutboundRequest, code: str
) -> None:
    async with running_twilio() as (fake, server), httpx.AsyncClient() as http:
        account = AccountConfig(
            "acc-1", {**account.settings, "api_base": server.http}, account.secrets, STATUS_URL
        )
        with pytest.raises(DeliveryFailed) as failed:
            await ADAPTER.send(http, account, message)
    assert failed.value.code == code
    assert fake.requests == []


# --- fetch_media ----------------------------------------------------------------------------

JPEG = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 40


async def test_fetch_media_follows_the_redirect_and_keeps_credentials_on_twilio() -> None:
    async with running_twilio() as (fake, server), httpx.AsyncClient() as http:
        fake.media["ME1"] = StoredMedia("image/jpeg", JPEG)
        fake.storage_base = f"http://localhost:{server.port}"  # another origin, like storage
        url = f"{server.http}/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/MM1/Media/ME1"
        downloaded = await ADAPTER.fetch_media(
            http,
            config(api_base=server.http),
            MediaRef(kind="image", provider_ref=url, content_type="image/jpeg"),
            max_bytes=1_000_000,
        )
    assert downloaded == OutboundFile(filename="ME1.jpg", content_type="image/jpeg", content=JPEG)
    media_request, storage_request = fake.requests
    assert media_request.headers["authorization"] == basic_auth()
    assert storage_request.path == "/storage/ME1"
    assert "authorization" not in storage_request.headers


@pytest.mark.parametrize("declare_length", [True, False])
async def test_fetch_media_refuses_more_than_the_byte_cap(declare_length: bool) -> None:
    async with running_twilio() as (fake, server), httpx.AsyncClient() as http:
        fake.media["ME1"] = StoredMedia("image/jpeg", JPEG, declare_length=declare_length)
        url = f"{server.http}/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/MM1/Media/ME1"
        media = MediaRef(kind="image", provider_ref=url)
        with pytest.raises(PayloadMalformed) as refused:
            await ADAPTER.fetch_media(http, config(api_base=server.http), media, max_bytes=9999)
        exact = await ADAPTER.fetch_media(
            http, config(api_base=server.http), media, max_bytes=len(JPEG)
        )
    assert refused.value.error_code == "media_too_large"
    assert exact.content == JPEG


async def test_fetch_media_of_a_missing_file_is_malformed() -> None:
    async with running_twilio() as (_, server), httpx.AsyncClient() as http:
        url = f"{server.http}/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/MM1/Media/ME404"
        with pytest.raises(PayloadMalformed) as refused:
            await ADAPTER.fetch_media(
                http,
                config(api_base=server.http),
                MediaRef(kind="image", provider_ref=url),
                max_bytes=1000,
            )
    assert refused.value.error_code == "media_unavailable"


async def test_fetch_media_without_an_auth_token_is_not_configured() -> None:
    account = AccountConfig("acc-1", {"account_sid": ACCOUNT_SID}, {}, STATUS_URL)
    async with httpx.AsyncClient() as http:
        with pytest.raises(PayloadMalformed) as refused:
            await ADAPTER.fetch_media(
                http, account, MediaRef(kind="image", provider_ref=MEDIA_URL), max_bytes=1000
            )
    assert refused.value.error_code == "not_configured"


async def test_credentials_are_not_sent_to_a_media_url_elsewhere() -> None:
    async with running_twilio() as (fake, server), httpx.AsyncClient() as http:
        fake.media["ME1"] = StoredMedia("image/png", b"\x89PNG\r\n")
        # Twilio's API host is not this server: the media URL points elsewhere.
        url = f"{server.http}/storage/ME1"
        downloaded = await ADAPTER.fetch_media(
            http, config(), MediaRef(kind="image", provider_ref=url), max_bytes=1000
        )
    assert downloaded.content == b"\x89PNG\r\n"
    assert downloaded.content_type == "image/png"
    assert "authorization" not in fake.requests[0].headers
