"""The WhatsApp Cloud API adapter: webhooks parsed into our shapes, signatures and the GET
handshake checked, and every Graph API call made against a local server that answers like
Meta's (``tests/fakes/whatsapp.py``)."""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from atiende.channels.adapters.whatsapp import WhatsAppAdapter, window_open
from atiende.channels.base import (
    AccountConfig,
    ChannelKind,
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
from factories import LiveServer
from fakes import whatsapp as meta

ADAPTER = WhatsAppAdapter()
CUSTOMER = "16505551234"
WAMID = "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA="
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 200
PDF = b"%PDF-1.7\n" + b"x" * 300
OGG = b"OggS" + b"\x00" * 100


def account(api_base: str | None = None, **overrides: Any) -> AccountConfig:
    settings_ = {"phone_number_id": meta.PHONE_NUMBER_ID, "waba_id": meta.WABA_ID}
    if api_base is not None:
        settings_["api_base"] = api_base
    secrets = {
        "access_token": meta.ACCESS_TOKEN,
        "app_secret": meta.APP_SECRET,
        "verify_token": meta.VERIFY_TOKEN,
    }
    for name, value in overrides.items():
        (secrets if name in secrets else settings_)[name] = value
    return AccountConfig(
        account_id="acc_1",
        settings=settings_,
        secrets={k: v for k, v in secrets.items() if v is not None},
        webhook_url="https://atiende.example.com/webhooks/whatsapp/key123",
    )


def post(payload: dict[str, Any] | bytes, signature: str | None = "sign") -> RawRequest:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    headers = {"content-type": "application/json"}
    if signature == "sign":
        headers["x-hub-signature-256"] = meta.sign(body)
    elif signature is not None:
        headers["x-hub-signature-256"] = signature
    return RawRequest(
        method="POST",
        url="https://atiende.example.com/webhooks/whatsapp/key123",
        headers=headers,
        query={},
        body=body,
    )


def envelope(
    messages: list[dict[str, Any]] | None = None,
    statuses: list[dict[str, Any]] | None = None,
    contacts: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    value: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "metadata": {
            "display_phone_number": "15550783881",
            "phone_number_id": meta.PHONE_NUMBER_ID,
        },
    }
    if messages is not None:
        value["contacts"] = (
            contacts
            if contacts is not None
            else [{"profile": {"name": "Sheena Nelson"}, "wa_id": CUSTOMER}]
        )
        value["messages"] = messages
    if statuses is not None:
        value["statuses"] = statuses
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": meta.WABA_ID, "changes": [{"value": value, "field": "messages"}]}],
    }


def message(kind: str, body: Any, **extra: Any) -> dict[str, Any]:
    return {
        "from": CUSTOMER,
        "id": WAMID,
        "timestamp": "1749416383",
        "type": kind,
        kind: body,
        **extra,
    }


def parse_one(payload: dict[str, Any]) -> InboundMessage:
    [found] = ADAPTER.parse(post(payload))
    assert isinstance(found, InboundMessage)
    return found


AT = datetime(2025, 6, 8, 20, 59, 43, tzinfo=UTC)  # 1749416383
META = {"phone_number_id": meta.PHONE_NUMBER_ID}


# --- parsing: messages ------------------------------------------------------------------------


def test_the_text_message_fixture_becomes_one_inbound_message() -> None:
    assert ADAPTER.parse(post(meta.WEBHOOK_TEXT_MESSAGE)) == [
        InboundMessage(
            provider_message_id=WAMID,
            sender_id=CUSTOMER,
            sender_name="Sheena Nelson",
            text="Does it come in another color?",
            sent_at=AT,
            kind="text",
            data=META,
        )
    ]


def test_timestamps_are_aware_utc() -> None:
    found = parse_one(meta.WEBHOOK_TEXT_MESSAGE)
    assert found.sent_at is not None
    assert found.sent_at.utcoffset() == timedelta(0)


def test_the_image_fixture_becomes_a_media_reference_with_its_caption() -> None:
    found = parse_one(envelope([meta.IMAGE_MESSAGE]))
    assert found.kind == "media"
    assert found.text == "Taj Mahal"
    assert found.sent_at == datetime(2025, 4, 11, 4, 8, 16, tzinfo=UTC)
    assert found.media == (
        MediaRef(
            kind="image",
            provider_ref="1003383421387256",
            content_type="image/jpeg",
            filename=None,
            caption="Taj Mahal",
        ),
    )


@pytest.mark.parametrize(
    ("kind", "body", "expected", "data"),
    [
        (
            "audio",
            {"mime_type": "audio/ogg; codecs=opus", "sha256": "x", "id": "2001", "voice": True},
            MediaRef("audio", "2001", "audio/ogg; codecs=opus"),
            {"voice": True},
        ),
        (
            "video",
            {"caption": "Look", "mime_type": "video/mp4", "sha256": "x", "id": "2002"},
            MediaRef("video", "2002", "video/mp4", caption="Look"),
            {},
        ),
        (
            "document",
            {
                "caption": "My invoice",
                "filename": "factura-0042.pdf",
                "mime_type": "application/pdf",
                "sha256": "x",
                "id": "2003",
            },
            MediaRef("document", "2003", "application/pdf", "factura-0042.pdf", "My invoice"),
            {},
        ),
        (
            "sticker",
            {"mime_type": "image/webp", "sha256": "x", "id": "2004", "animated": False},
            MediaRef("sticker", "2004", "image/webp"),
            {"animated": False},
        ),
    ],
)
def test_every_media_type_becomes_a_media_reference(
    kind: str, body: dict[str, Any], expected: MediaRef, data: dict[str, Any]
) -> None:
    found = parse_one(envelope([message(kind, body)]))
    assert found.kind == "media"
    assert found.media == (expected,)
    assert found.text == (expected.caption or "")
    assert found.data == {**META, **data}


def test_a_location_is_a_readable_line_with_its_coordinates_in_data() -> None:
    location = {
        "address": "101 Forest Ave, Palo Alto, CA 94301",
        "latitude": 37.44216251868683,
        "longitude": -122.16153582049394,
        "name": "Philz Coffee",
        "url": "https://philzcoffee.com",
    }
    found = parse_one(envelope([message("location", location)]))
    assert found.kind == "location"
    assert found.text == (
        "📍 Philz Coffee — 101 Forest Ave, Palo Alto, CA 94301 "
        "(37.44216251868683, -122.16153582049394)"
    )
    assert found.data == {
        **META,
        "latitude": 37.44216251868683,
        "longitude": -122.16153582049394,
        "name": "Philz Coffee",
        "address": "101 Forest Ave, Palo Alto, CA 94301",
        "url": "https://philzcoffee.com",
    }


def test_a_bare_pin_still_reads_as_coordinates() -> None:
    found = parse_one(envelope([message("location", {"latitude": 1.5, "longitude": -2})]))
    assert found.text == "📍 1.5, -2.0"


def test_shared_contacts_list_names_and_phones() -> None:
    cards = [
        {
            "name": {"formatted_name": "Barbara J. Johnson", "first_name": "Barbara"},
            "phones": [
                {"phone": "+1 (940) 555-1234", "wa_id": "19405551234", "type": "HOME"},
                {"phone": "+1 (650) 555-1234", "type": "WORK"},
            ],
            "emails": [{"email": "bjohnson@example.com", "type": "HOME"}],
        },
        {"name": {"first_name": "Ana", "last_name": "Pérez"}},
    ]
    found = parse_one(envelope([message("contacts", cards)]))
    assert found.kind == "contacts"
    assert found.text == (
        "👤 Barbara J. Johnson: +1 (940) 555-1234, +1 (650) 555-1234\n👤 Ana Pérez"
    )
    assert found.data["contacts"] == [
        {
            "name": "Barbara J. Johnson",
            "phones": [
                {"phone": "+1 (940) 555-1234", "wa_id": "19405551234", "type": "HOME"},
                {"phone": "+1 (650) 555-1234", "wa_id": None, "type": "WORK"},
            ],
            "emails": ["bjohnson@example.com"],
        },
        {"name": "Ana Pérez", "phones": [], "emails": []},
    ]


def test_a_reply_button_is_interactive_with_its_title_and_id() -> None:
    interactive = {"type": "button_reply", "button_reply": {"id": "change", "title": "Change"}}
    found = parse_one(
        envelope([message("interactive", interactive, context={"from": "15550783881", "id": "w1"})])
    )
    assert (found.kind, found.text) == ("interactive", "Change")
    assert found.data == {**META, "reply_to": "w1", "reply_type": "button_reply", "id": "change"}


def test_a_list_choice_is_interactive_with_its_title_id_and_description() -> None:
    interactive = {
        "type": "list_reply",
        "list_reply": {"id": "priority", "title": "Priority", "description": "Next day"},
    }
    found = parse_one(envelope([message("interactive", interactive)]))
    assert (found.kind, found.text) == ("interactive", "Priority")
    assert found.data == {
        **META,
        "reply_type": "list_reply",
        "id": "priority",
        "description": "Next day",
    }


def test_a_template_quick_reply_is_a_button_with_its_payload() -> None:
    found = parse_one(envelope([message("button", {"payload": "STOP_PROMOS", "text": "Stop"})]))
    assert (found.kind, found.text) == ("button", "Stop")
    assert found.data == {**META, "payload": "STOP_PROMOS"}


def test_a_reaction_carries_its_emoji_and_the_message_it_reacts_to() -> None:
    found = parse_one(envelope([message("reaction", {"message_id": "wamid.ours", "emoji": "👍"})]))
    assert (found.kind, found.text) == ("reaction", "👍")
    assert found.data == {**META, "message_id": "wamid.ours", "emoji": "👍"}


def test_a_removed_reaction_has_no_emoji() -> None:
    found = parse_one(envelope([message("reaction", {"message_id": "wamid.ours"})]))
    assert (found.kind, found.text, found.data["emoji"]) == ("reaction", "", None)


def test_an_unsupported_message_is_kept_with_a_readable_reason() -> None:
    unsupported = message("unsupported", {"type": "poll_creation"})
    unsupported["errors"] = [
        {
            "code": 131051,
            "title": "Message type unknown",
            "message": "Message type unknown",
            "error_data": {"details": "Message type is currently not supported."},
        }
    ]
    found = parse_one(envelope([unsupported]))
    assert found.kind == "unsupported"
    assert found.text == (
        "Unsupported WhatsApp message (poll_creation): (#131051) Message type unknown — "
        "Message type is currently not supported."
    )
    assert found.data == {**META, "type": "poll_creation", "error_code": "131051"}


def test_a_type_we_do_not_know_is_unsupported_not_lost() -> None:
    found = parse_one(envelope([message("order", {"catalog_id": "1", "product_items": []})]))
    assert (found.kind, found.text) == ("unsupported", "Unsupported WhatsApp message (order)")
    assert found.provider_message_id == WAMID


def test_the_sender_name_comes_from_the_matching_contact() -> None:
    contacts = [
        {"profile": {"name": "Someone Else"}, "wa_id": "34600000000"},
        {"profile": {"name": "Sheena Nelson"}, "wa_id": CUSTOMER},
    ]
    found = parse_one(envelope([message("text", {"body": "hi"})], contacts=contacts))
    assert (found.sender_id, found.sender_name) == (CUSTOMER, "Sheena Nelson")


def test_a_message_without_a_phone_number_uses_the_business_scoped_user_id() -> None:
    text = message("text", {"body": "hi"})
    del text["from"]
    text["from_user_id"] = "US.13491208655302741918"
    contacts = [{"profile": {"name": "Sheena"}, "user_id": "US.13491208655302741918"}]
    found = parse_one(envelope([text], contacts=contacts))
    assert (found.sender_id, found.sender_name) == ("US.13491208655302741918", "Sheena")


def test_a_batch_yields_every_message_and_status_of_every_entry_and_change() -> None:
    first = envelope([message("text", {"body": "one"})])
    second = envelope([{**message("text", {"body": "two"}), "id": "wamid.2"}])
    statuses = envelope(statuses=[{"id": "wamid.ours", "status": "delivered", "timestamp": "1"}])
    other_field = {"field": "message_template_status_update", "value": {"event": "APPROVED"}}
    payload = {
        "object": "whatsapp_business_account",
        "entry": [
            {"id": "1", "changes": first["entry"][0]["changes"] + [other_field]},
            {"id": "2", "changes": second["entry"][0]["changes"] + statuses["entry"][0]["changes"]},
        ],
    }
    found = ADAPTER.parse(post(payload))
    assert [type(item).__name__ for item in found] == [
        "InboundMessage",
        "InboundMessage",
        "StatusUpdate",
    ]
    assert [getattr(item, "text", None) for item in found[:2]] == ["one", "two"]


def test_changes_for_other_fields_are_ignored() -> None:
    payload = {
        "object": "whatsapp_business_account",
        "entry": [{"id": "1", "changes": [{"field": "account_update", "value": {"x": 1}}]}],
    }
    assert ADAPTER.parse(post(payload)) == []


# --- parsing: statuses ------------------------------------------------------------------------

OUR_WAMID = "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQUFERjg0NDEzNDdFODU3MUMxMAA="
FAILED_WAMID = "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI0QUQ2MjA4NEYyRkExNjMyREUA"


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (
            meta.WEBHOOK_STATUS_SENT,
            StatusUpdate(OUR_WAMID, "sent", datetime(2025, 6, 15, 23, 27, 53, tzinfo=UTC)),
        ),
        (
            meta.WEBHOOK_STATUS_DELIVERED,
            StatusUpdate(OUR_WAMID, "delivered", datetime(2025, 6, 15, 23, 27, 55, tzinfo=UTC)),
        ),
        (
            meta.WEBHOOK_STATUS_READ,
            StatusUpdate(OUR_WAMID, "read", datetime(2025, 6, 15, 23, 28, 0, tzinfo=UTC)),
        ),
        (
            meta.WEBHOOK_STATUS_FAILED,
            StatusUpdate(
                FAILED_WAMID,
                "failed",
                datetime(2025, 6, 28, 20, 34, 48, tzinfo=UTC),
                error_code="131049",
                error_message=(
                    "(#131049) This message was not delivered to maintain healthy ecosystem "
                    "engagement. — In order to maintain a healthy ecosystem engagement, the "
                    "message failed to be delivered."
                ),
            ),
        ),
        (
            meta.WEBHOOK_STATUS_FAILED_131047,
            StatusUpdate(
                FAILED_WAMID,
                "failed",
                datetime(2025, 6, 28, 20, 34, 48, tzinfo=UTC),
                error_code="outside_window",
                error_message=(
                    "(#131047) Re-engagement message — Message failed to send because more than "
                    "24 hours have passed since the customer last replied to this number."
                ),
            ),
        ),
    ],
    ids=["sent", "delivered", "read", "failed", "failed_outside_window"],
)
def test_every_status_fixture_becomes_a_status_update(
    payload: dict[str, Any], expected: StatusUpdate
) -> None:
    assert ADAPTER.parse(post(payload)) == [expected]


def test_a_played_voice_message_counts_as_read_and_unknown_statuses_are_skipped() -> None:
    payload = envelope(
        statuses=[
            {"id": "w1", "status": "played", "timestamp": "1750030080"},
            {"id": "w2", "status": "deleted", "timestamp": "1750030080"},
        ]
    )
    assert [(s.provider_message_id, s.status) for s in ADAPTER.parse(post(payload))] == [
        ("w1", "read")
    ]


# --- signatures and the handshake -----------------------------------------------------------


def test_the_official_signature_vector_passes() -> None:
    vector = meta.SIGNATURE_VECTOR
    request = post(vector["raw_body"].encode(), signature=vector["x_hub_signature_256"])
    ADAPTER.verify(request, account(app_secret=vector["app_secret"]))


def test_a_signed_webhook_passes() -> None:
    ADAPTER.verify(post(meta.WEBHOOK_TEXT_MESSAGE), account())


def test_an_upper_case_hex_signature_passes() -> None:
    body = b'{"object": "whatsapp_business_account", "entry": []}'
    ADAPTER.verify(post(body, signature="sha256=" + meta.sign(body)[7:].upper()), account())


@pytest.mark.parametrize(
    "signature",
    [
        None,
        "",
        "sha256=",
        "sha256=" + "0" * 64,
        "sha1=0c61947b610d4f45e65f3d680e26027121ec2413",
        meta.sign(b"test")[7:],  # the hex without its prefix
        "sha256=ünïcode",
    ],
    ids=["missing", "empty", "no_hex", "wrong", "sha1", "no_prefix", "non_ascii"],
)
def test_a_missing_or_wrong_signature_is_refused(signature: str | None) -> None:
    with pytest.raises(SignatureInvalid):
        ADAPTER.verify(post(b"test", signature=signature), account())


def test_a_tampered_body_is_refused() -> None:
    request = post(meta.WEBHOOK_TEXT_MESSAGE)
    tampered = RawRequest(
        method=request.method,
        url=request.url,
        headers=request.headers,
        query={},
        body=request.body.replace(b"another color", b"another colour"),
    )
    with pytest.raises(SignatureInvalid):
        ADAPTER.verify(tampered, account())


def test_a_signature_made_with_another_secret_is_refused() -> None:
    body = json.dumps(meta.WEBHOOK_TEXT_MESSAGE).encode()
    with pytest.raises(SignatureInvalid):
        ADAPTER.verify(post(body, signature=meta.sign(body, "other-secret")), account())


def test_without_an_app_secret_nothing_is_accepted() -> None:
    with pytest.raises(SignatureInvalid):
        ADAPTER.verify(post(meta.WEBHOOK_TEXT_MESSAGE), account(app_secret=None))


def _verification(query: dict[str, str]) -> RawRequest:
    return RawRequest(
        method="GET",
        url="https://atiende.example.com/webhooks/whatsapp/key123",
        headers={},
        query=query,
        body=b"",
    )


def test_the_verification_request_is_answered_with_the_challenge() -> None:
    assert ADAPTER.handshake(_verification(meta.VERIFY_GET_QUERY), account()) == "1158201444"


@pytest.mark.parametrize(
    "query",
    [
        {**meta.VERIFY_GET_QUERY, "hub.verify_token": "wrong"},
        {**meta.VERIFY_GET_QUERY, "hub.mode": "unsubscribe"},
        {"hub.mode": "subscribe", "hub.challenge": "1158201444"},
        {},
    ],
    ids=["wrong_token", "wrong_mode", "no_token", "nothing"],
)
def test_a_verification_with_the_wrong_token_or_mode_is_refused(query: dict[str, str]) -> None:
    with pytest.raises(SignatureInvalid):
        ADAPTER.handshake(_verification(query), account())


def test_no_verification_passes_while_no_verify_token_is_configured() -> None:
    query = {**meta.VERIFY_GET_QUERY, "hub.verify_token": ""}
    with pytest.raises(SignatureInvalid):
        ADAPTER.handshake(_verification(query), account(verify_token=None))


def test_a_challenge_that_is_not_a_plain_token_is_not_echoed() -> None:
    query = {**meta.VERIFY_GET_QUERY, "hub.challenge": "<script>alert(1)</script>"}
    with pytest.raises(PayloadMalformed):
        ADAPTER.handshake(_verification(query), account())


# --- event ids and malformed payloads ----------------------------------------------------------


def test_the_event_id_is_the_sha256_of_the_body_and_stable_across_redeliveries() -> None:
    first, again = post(meta.WEBHOOK_TEXT_MESSAGE), post(meta.WEBHOOK_TEXT_MESSAGE)
    assert ADAPTER.event_id(first) == ADAPTER.event_id(again)
    assert ADAPTER.event_id(first) == hashlib.sha256(first.body).hexdigest()


def test_different_deliveries_have_different_event_ids() -> None:
    ids = {
        ADAPTER.event_id(post(payload))
        for payload in (
            meta.WEBHOOK_TEXT_MESSAGE,
            meta.WEBHOOK_STATUS_SENT,
            meta.WEBHOOK_STATUS_DELIVERED,
            meta.WEBHOOK_STATUS_READ,
        )
    }
    assert len(ids) == 4


def _with_message(**changes: Any) -> dict[str, Any]:
    payload = copy.deepcopy(meta.WEBHOOK_TEXT_MESSAGE)
    payload["entry"][0]["changes"][0]["value"]["messages"][0].update(changes)
    return payload


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"\xff\xfe",
        b"[]",
        b'"text"',
        b'{"object": "page", "entry": []}',
        b'{"object": "whatsapp_business_account"}',
        b'{"object": "whatsapp_business_account", "entry": {}}',
        b'{"object": "whatsapp_business_account", "entry": [{"changes": [{"field": "messages"}]}]}',
        json.dumps(_with_message(id=None)).encode(),
        json.dumps(_with_message(timestamp="yesterday")).encode(),
        json.dumps(_with_message(timestamp="99999999999999999999")).encode(),
        json.dumps(_with_message(text="plain")).encode(),
        json.dumps(
            envelope([{"id": "w1", "type": "text", "text": {"body": "?"}}], contacts=[])
        ).encode(),
        b"[" * 100_000,
    ],
)
def test_a_payload_we_do_not_understand_is_malformed(body: bytes) -> None:
    with pytest.raises(PayloadMalformed):
        ADAPTER.parse(post(body))


@given(st.binary(max_size=512))
def test_arbitrary_bytes_never_raise_anything_but_malformed(body: bytes) -> None:
    request = post(body, signature=None)
    assert len(ADAPTER.event_id(request)) == 64
    with contextlib.suppress(PayloadMalformed):
        ADAPTER.parse(request)


_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()
    | st.text(max_size=20)
    | st.sampled_from(["text", "image", "interactive", "button_reply", "failed", "123"]),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "object",
                    "entry",
                    "changes",
                    "field",
                    "value",
                    "messages",
                    "statuses",
                    "contacts",
                    "id",
                    "from",
                    "type",
                    "text",
                    "body",
                    "timestamp",
                    "status",
                    "errors",
                    "code",
                    "interactive",
                    "button_reply",
                    "location",
                    "latitude",
                    "image",
                    "profile",
                    "wa_id",
                ]
            )
            | st.text(max_size=8),
            children,
            max_size=5,
        )
    ),
    max_leaves=30,
)


@given(_json_values)
@settings(suppress_health_check=[HealthCheck.too_slow])
def test_arbitrary_json_never_raises_anything_but_malformed(value: Any) -> None:
    request = post(json.dumps(value, allow_nan=True).encode(), signature=None)
    with contextlib.suppress(PayloadMalformed):
        ADAPTER.parse(request)


@given(st.lists(_json_values, max_size=3), st.lists(_json_values, max_size=3))
@settings(suppress_health_check=[HealthCheck.too_slow])
def test_arbitrary_messages_and_statuses_in_a_real_envelope_never_crash(
    messages: list[Any], statuses: list[Any]
) -> None:
    payload = envelope(messages=messages, statuses=statuses)
    try:
        found = ADAPTER.parse(post(payload))
    except PayloadMalformed:
        return
    assert all(isinstance(item, InboundMessage | StatusUpdate) for item in found)


@given(
    st.sampled_from(
        [
            "text",
            "image",
            "document",
            "location",
            "contacts",
            "interactive",
            "button",
            "reaction",
            "unsupported",
            "sticker",
        ]
    ),
    _json_values,
)
@settings(suppress_health_check=[HealthCheck.too_slow])
def test_arbitrary_bodies_of_each_message_type_never_crash(kind: str, body: Any) -> None:
    with contextlib.suppress(PayloadMalformed):
        ADAPTER.parse(post(envelope([message(kind, body)])))


# --- the 24-hour window --------------------------------------------------------------------


def test_the_window_is_open_for_24_hours_after_the_customer_wrote() -> None:
    wrote = datetime(2026, 1, 5, 15, 0, tzinfo=UTC)
    assert window_open(wrote, wrote + timedelta(hours=23, minutes=59, seconds=59))
    assert not window_open(wrote, wrote + timedelta(hours=24))
    assert not window_open(wrote, wrote + timedelta(days=3))
    assert WhatsAppAdapter.window_open(wrote, wrote) is True


def test_the_window_is_closed_when_the_customer_never_wrote() -> None:
    assert not window_open(None, datetime(2026, 1, 5, tzinfo=UTC))


# --- outbound, against the fake Graph API ---------------------------------------------------


@pytest.fixture
async def graph() -> AsyncIterator[meta.FakeGraph]:
    fake = meta.FakeGraph()
    async with LiveServer(fake.app) as server:
        fake.base = f"{server.http}/{meta.VERSION}"
        yield fake


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as client:
        yield client


def on(graph: meta.FakeGraph, **overrides: Any) -> AccountConfig:
    return account(overrides.pop("api_base", graph.base), **overrides)


MESSAGES_PATH = f"/{meta.VERSION}/{meta.PHONE_NUMBER_ID}/messages"
MEDIA_PATH = f"/{meta.VERSION}/{meta.PHONE_NUMBER_ID}/media"


def test_the_adapter_declares_its_kind_settings_and_secrets() -> None:
    assert WhatsAppAdapter.kind is ChannelKind.whatsapp
    assert WhatsAppAdapter.setting_fields == (
        "phone_number_id",
        "waba_id",
        "api_base",
        "rate_per_second",
    )
    assert WhatsAppAdapter.secret_fields == ("access_token", "app_secret", "verify_token")


def test_the_send_rate_defaults_to_80_per_second() -> None:
    assert ADAPTER.send_rate(account()) == 80.0
    assert ADAPTER.send_rate(account(rate_per_second=20)) == 20.0
    assert ADAPTER.send_rate(account(rate_per_second="lots")) == 80.0


async def test_a_text_is_posted_to_the_messages_endpoint_with_the_bearer_token(
    graph: meta.FakeGraph, http: httpx.AsyncClient
) -> None:
    graph.reply("messages", 200, meta.SEND_TEXT_RESPONSE)
    text = meta.SEND_TEXT_REQUEST["text"]["body"]
    result = await ADAPTER.send(http, on(graph), OutboundRequest(to="+16505551234", text=text))

    assert result == SendResult("wamid.HBgLMTY0NjcwNDM1OTUVAgARGBI1RjQyNUE3NEYxMzAzMzQ5MkEA")
    [call] = graph.requests
    assert (call.method, call.path) == ("POST", MESSAGES_PATH)
    assert call.headers["authorization"] == f"Bearer {meta.ACCESS_TOKEN}"
    assert call.headers["content-type"] == "application/json"
    assert call.json() == {
        **meta.SEND_TEXT_REQUEST,
        "text": {"preview_url": False, "body": text},
    }


async def test_a_template_with_parameters_is_sent_exactly_as_documented(
    graph: meta.FakeGraph, http: httpx.AsyncClient
) -> None:
    graph.reply("messages", 200, meta.SEND_TEMPLATE_RESPONSE_PACED)
    request = OutboundRequest(
        to="+16505551234",
        text="Subscribe: newsletter",
        template={"name": "Subscribe", "language": "en_US", "parameters": ["newsletter"]},
    )
    result = await ADAPTER.send(http, on(graph), request)

    assert result == SendResult("wamid.HBgLMTY0NjcwNDM1OTUVAgARGBI4MjZGRDA0OUE2OTQ3RkEyMzcA")
    assert graph.calls("/messages")[0].json() == meta.SEND_TEMPLATE_WITH_PARAMS_REQUEST


async def test_a_template_without_parameters_has_no_components(
    graph: meta.FakeGraph, http: httpx.AsyncClient
) -> None:
    request = OutboundRequest(
        to="+16505551234", text="", template={"name": "hello_world", "language": "en_US"}
    )
    await ADAPTER.send(http, on(graph), request)
    sent = graph.calls("/messages")[0].json()
    assert sent == {
        **meta.SEND_TEMPLATE_HELLO_WORLD_REQUEST,
        "recipient_type": "individual",
        "template": {
            "name": "hello_world",
            "language": {"policy": "deterministic", "code": "en_US"},
        },
    }


async def test_named_template_parameters_carry_their_names(
    graph: meta.FakeGraph, http: httpx.AsyncClient
) -> None:
    template = {"name": "order_ready", "language": "es", "parameters": {"first_name": "Ana"}}
    await ADAPTER.send(http, on(graph), OutboundRequest(CUSTOMER, "", template=template))
    assert graph.calls("/messages")[0].json()["template"]["components"] == [
        {
            "type": "body",
            "parameters": [{"type": "text", "parameter_name": "first_name", "text": "Ana"}],
        }
    ]


async def test_files_are_uploaded_first_then_sent_by_id_with_the_caption_on_the_first(
    graph: meta.FakeGraph, http: httpx.AsyncClient
) -> None:
    files = (
        OutboundFile("foto.png", "image/png", PNG),
        OutboundFile("../factura 42.pdf", "application/pdf", PDF),
    )
    result = await ADAPTER.send(
        http, on(graph), OutboundRequest(CUSTOMER, "Aquí tiene", files=files)
    )

    assert [(r.method, r.path) for r in graph.requests] == [
        ("POST", MEDIA_PATH),
        ("POST", MEDIA_PATH),
        ("POST", MESSAGES_PATH),
        ("POST", MESSAGES_PATH),
    ]
    first_upload, second_upload = graph.calls("/media")
    assert first_upload.headers["authorization"] == f"Bearer {meta.ACCESS_TOKEN}"
    assert first_upload.headers["content-type"].startswith("multipart/form-data")
    assert first_upload.form == {
        "messaging_product": "whatsapp",
        "type": "image/png",
        "file": {"filename": "foto.png", "content_type": "image/png", "content": PNG},
    }
    assert second_upload.form["file"]["filename"] == "factura 42.pdf"
    assert second_upload.form["type"] == "application/pdf"

    image, document = (call.json() for call in graph.calls("/messages"))
    image_id = image["image"]["id"]
    assert image == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": CUSTOMER,
        "type": "image",
        "image": {"id": image_id, "caption": "Aquí tiene"},
    }
    assert document["type"] == "document"
    assert document["document"] == {"id": document["document"]["id"], "filename": "factura 42.pdf"}
    assert image_id != document["document"]["id"]
    assert result.provider_message_id.startswith("wamid.fake")


async def test_text_goes_first_when_the_first_file_cannot_carry_a_caption(
    graph: meta.FakeGraph, http: httpx.AsyncClient
) -> None:
    files = (OutboundFile("nota.ogg", "audio/ogg", OGG),)
    result = await ADAPTER.send(http, on(graph), OutboundRequest(CUSTOMER, "Escuche", files=files))
    text, audio = (call.json() for call in graph.calls("/messages"))
    assert text["text"] == {"preview_url": False, "body": "Escuche"}
    assert audio["type"] == "audio"
    assert "caption" not in audio["audio"]
    first_sent = graph.calls("/messages")[0]
    assert first_sent.json()["type"] == "text"
    assert result.provider_message_id == "wamid.fake2"  # the upload took id 1


async def test_an_image_type_whatsapp_does_not_take_goes_as_a_document(
    graph: meta.FakeGraph, http: httpx.AsyncClient
) -> None:
    gif = OutboundFile("anim.gif", "image/gif", b"GIF89a" + b"\x00" * 50)
    await ADAPTER.send(http, on(graph), OutboundRequest(CUSTOMER, "", files=(gif,)))
    [sent] = graph.calls("/messages")
    assert sent.json()["type"] == "document"
    assert sent.json()["document"]["filename"] == "anim.gif"


async def test_a_failed_upload_sends_nothing(
    graph: meta.FakeGraph, http: httpx.AsyncClient
) -> None:
    graph.reply("media", 500, meta.graph_error(131016, "Service unavailable"))
    files = (
        OutboundFile("a.png", "image/png", PNG),
        OutboundFile("b.png", "image/png", PNG),
    )
    with pytest.raises(RetryLater):
        await ADAPTER.send(http, on(graph), OutboundRequest(CUSTOMER, "hi", files=files))
    assert graph.calls("/messages") == []


@pytest.mark.parametrize(
    ("status", "body", "headers", "seconds"),
    [
        (429, meta.graph_error(130429, "Rate limit hit"), {"Retry-After": "7"}, 7.0),
        (429, b"Too Many Requests", {}, 30.0),
        (400, meta.graph_error(130429, "(#130429) Rate limit hit"), {}, 5.0),
        (400, meta.graph_error(131056, "(#131056) Pair rate limit hit"), {}, 10.0),
        (400, meta.graph_error(131048, "(#131048) Spam rate limit hit"), {}, 300.0),
        (400, meta.graph_error(80007, "(#80007) Rate limit issues"), {}, 300.0),
        (403, meta.graph_error(4, "(#4) Application request limit reached"), {}, 300.0),
        (
            400,
            meta.graph_error(4, "(#4) Application request limit reached"),
            {"Retry-After": "12"},
            12.0,
        ),
    ],
    ids=["429_retry_after", "429_plain", "130429", "131056", "131048", "80007", "4", "4_header"],
)
async def test_throttling_asks_to_retry_later(
    *,
    graph: meta.FakeGraph,
    http: httpx.AsyncClient,
    status: int,
    body: Any,
    headers: dict[str, str],
    seconds: float,
) -> None:
    graph.reply("messages", status, body, **headers)
    with pytest.raises(RetryLater) as caught:
        await ADAPTER.send(http, on(graph), OutboundRequest(CUSTOMER, "hola"))
    assert caught.value.seconds == seconds


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (500, meta.graph_error(131000, "Something went wrong")),
        (502, b"<html>Bad gateway</html>"),
        (503, meta.graph_error(131016, "Service unavailable")),
        (400, meta.graph_error(2, "Service temporarily unavailable")),
    ],
    ids=["500", "502_html", "503", "code_2"],
)
async def test_an_outage_asks_to_retry_later_with_backoff(
    graph: meta.FakeGraph, http: httpx.AsyncClient, status: int, body: Any
) -> None:
    graph.reply("messages", status, body)
    with pytest.raises(RetryLater) as caught:
        await ADAPTER.send(http, on(graph), OutboundRequest(CUSTOMER, "hola"))
    assert caught.value.seconds is None


async def test_an_unreachable_api_asks_to_retry_later(http: httpx.AsyncClient) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = account(f"http://127.0.0.1:{port}/{meta.VERSION}")
    with pytest.raises(RetryLater):
        await ADAPTER.send(http, config, OutboundRequest(CUSTOMER, "hola"))


@pytest.mark.parametrize(
    ("status", "body", "code", "in_message"),
    [
        (400, meta.ERROR_131047, "outside_window", "more than 24 hours have passed"),
        (403, meta.ERROR_131005, "131005", "Access denied"),
        (401, meta.ERROR_GRAPH_GENERIC, "auth", "Message describing the error"),
        (400, meta.graph_error(131026, "Message undeliverable"), "131026", "undeliverable"),
        (404, b"Not found", "http_404", "HTTP 404"),
    ],
    ids=["131047", "131005", "190", "131026", "no_body"],
)
async def test_a_refusal_fails_the_delivery_with_the_provider_code(
    *,
    graph: meta.FakeGraph,
    http: httpx.AsyncClient,
    status: int,
    body: Any,
    code: str,
    in_message: str,
) -> None:
    graph.reply("messages", status, body)
    with pytest.raises(DeliveryFailed) as caught:
        await ADAPTER.send(http, on(graph), OutboundRequest(CUSTOMER, "hola"))
    assert caught.value.code == code
    assert in_message in str(caught.value)


async def test_a_wrong_access_token_fails_as_auth(
    graph: meta.FakeGraph, http: httpx.AsyncClient
) -> None:
    with pytest.raises(DeliveryFailed) as caught:
        await ADAPTER.send(
            http, on(graph, access_token="EAA-revoked"), OutboundRequest(CUSTOMER, "hola")
        )
    assert caught.value.code == "auth"
    assert graph.requests[0].headers["authorization"] == "Bearer EAA-revoked"


async def test_a_success_without_a_message_id_fails_instead_of_resending(
    graph: meta.FakeGraph, http: httpx.AsyncClient
) -> None:
    graph.reply("messages", 200, {"messaging_product": "whatsapp", "messages": []})
    with pytest.raises(DeliveryFailed) as caught:
        await ADAPTER.send(http, on(graph), OutboundRequest(CUSTOMER, "hola"))
    assert caught.value.code == "unexpected_response"


@pytest.mark.parametrize(
    ("request_", "code"),
    [
        (OutboundRequest(CUSTOMER, "   "), "empty_message"),
        (OutboundRequest(CUSTOMER, "x" * 4097), "text_too_long"),
        (OutboundRequest(CUSTOMER, "", template={"name": "x"}), "invalid_template"),
        (
            OutboundRequest(
                CUSTOMER, "", template={"name": "x", "language": "es", "parameters": 5}
            ),
            "invalid_template",
        ),
    ],
    ids=["empty", "too_long", "template_without_language", "template_bad_parameters"],
)
async def test_what_cannot_be_sent_fails_before_calling_the_api(
    graph: meta.FakeGraph, http: httpx.AsyncClient, request_: OutboundRequest, code: str
) -> None:
    with pytest.raises(DeliveryFailed) as caught:
        await ADAPTER.send(http, on(graph), request_)
    assert caught.value.code == code
    assert graph.requests == []


async def test_a_file_over_100_mib_fails_before_uploading(
    graph: meta.FakeGraph, http: httpx.AsyncClient
) -> None:
    huge = OutboundFile("huge.zip", "application/zip", b"\x00" * (100 * 1024 * 1024 + 1))
    with pytest.raises(DeliveryFailed) as caught:
        await ADAPTER.send(http, on(graph), OutboundRequest(CUSTOMER, "", files=(huge,)))
    assert caught.value.code == "file_too_large"
    assert graph.requests == []


@pytest.mark.parametrize(
    "overrides",
    [
        {"phone_number_id": None},
        {"phone_number_id": "../../me"},
        {"api_base": "ftp://graph.example"},
        {"access_token": None},
    ],
    ids=["no_phone_number_id", "path_in_id", "bad_api_base", "no_token"],
)
async def test_a_channel_that_is_not_configured_fails_as_not_configured(
    graph: meta.FakeGraph, http: httpx.AsyncClient, overrides: dict[str, Any]
) -> None:
    config = on(graph, **overrides)
    with pytest.raises(DeliveryFailed) as caught:
        await ADAPTER.send(http, config, OutboundRequest(CUSTOMER, "hola"))
    assert caught.value.code == "not_configured"
    assert graph.requests == []


# --- fetching media -----------------------------------------------------------------------------


async def test_media_is_fetched_by_id_then_downloaded_with_the_token(
    graph: meta.FakeGraph, http: httpx.AsyncClient
) -> None:
    graph.add_media("1003383421387256", PNG, "image/png")
    ref = MediaRef("image", "1003383421387256", "image/png", caption="Taj Mahal")
    fetched = await ADAPTER.fetch_media(http, on(graph), ref, max_bytes=16 * 1024 * 1024)

    assert fetched == OutboundFile("image-1003383421387256.png", "image/png", PNG)
    info, download = graph.requests
    assert (info.method, info.path) == ("GET", f"/{meta.VERSION}/1003383421387256")
    assert info.query == {"phone_number_id": meta.PHONE_NUMBER_ID}
    assert info.headers["authorization"] == f"Bearer {meta.ACCESS_TOKEN}"
    assert (download.method, download.path) == ("GET", "/download/1003383421387256")
    assert download.headers["authorization"] == f"Bearer {meta.ACCESS_TOKEN}"


async def test_a_document_keeps_its_file_name_and_the_base_media_type(
    graph: meta.FakeGraph, http: httpx.AsyncClient
) -> None:
    graph.add_media("2003", PDF, "application/pdf")
    graph.add_media("2001", OGG, "audio/ogg; codecs=opus")
    document = await ADAPTER.fetch_media(
        http, on(graph), MediaRef("document", "2003", filename="../factura.pdf"), max_bytes=10_000
    )
    voice = await ADAPTER.fetch_media(http, on(graph), MediaRef("audio", "2001"), max_bytes=10_000)
    assert (document.filename, document.content_type) == ("factura.pdf", "application/pdf")
    assert (voice.filename, voice.content_type, voice.content) == (
        "audio-2001.ogg",
        "audio/ogg",
        OGG,
    )


async def test_media_declared_larger_than_the_limit_is_not_downloaded(
    graph: meta.FakeGraph, http: httpx.AsyncClient
) -> None:
    graph.add_media("3001", PNG, "image/png", declared_size=20 * 1024 * 1024)
    with pytest.raises(PayloadMalformed) as caught:
        await ADAPTER.fetch_media(
            http, on(graph), MediaRef("image", "3001"), max_bytes=16 * 1024 * 1024
        )
    assert caught.value.error_code == "media_too_large"
    assert graph.calls("/download/3001") == []


@pytest.mark.parametrize("chunked", [False, True], ids=["content_length", "streamed"])
async def test_media_larger_than_the_limit_is_cut_off_while_downloading(
    graph: meta.FakeGraph, http: httpx.AsyncClient, chunked: bool
) -> None:
    graph.add_media("3002", b"x" * 5000, "image/png", declared_size=None, chunked=chunked)
    with pytest.raises(PayloadMalformed) as caught:
        await ADAPTER.fetch_media(http, on(graph), MediaRef("image", "3002"), max_bytes=4096)
    assert caught.value.error_code == "media_too_large"
    assert len(graph.calls("/download/3002")) == 1


async def test_media_exactly_at_the_limit_is_accepted(
    graph: meta.FakeGraph, http: httpx.AsyncClient
) -> None:
    graph.add_media("3003", b"y" * 4096, "image/jpeg", chunked=True)
    fetched = await ADAPTER.fetch_media(http, on(graph), MediaRef("image", "3003"), max_bytes=4096)
    assert fetched.content == b"y" * 4096
    assert fetched.filename == "image-3003.jpg"


async def test_unknown_media_is_unavailable(graph: meta.FakeGraph, http: httpx.AsyncClient) -> None:
    with pytest.raises(PayloadMalformed) as caught:
        await ADAPTER.fetch_media(http, on(graph), MediaRef("image", "404404"), max_bytes=4096)
    assert caught.value.error_code == "media_unavailable"
    assert "does not exist" in caught.value.message


async def test_a_media_outage_asks_to_retry_later(
    graph: meta.FakeGraph, http: httpx.AsyncClient
) -> None:
    graph.add_media("3004", PNG, "image/png")
    graph.reply("download", 503, b"busy", **{"Retry-After": "4"})
    with pytest.raises(RetryLater) as caught:
        await ADAPTER.fetch_media(http, on(graph), MediaRef("image", "3004"), max_bytes=4096)
    assert caught.value.seconds == 4.0


async def test_a_media_id_that_is_not_an_id_is_refused_without_a_request(
    graph: meta.FakeGraph, http: httpx.AsyncClient
) -> None:
    with pytest.raises(PayloadMalformed):
        await ADAPTER.fetch_media(http, on(graph), MediaRef("image", "../me"), max_bytes=4096)
    assert graph.requests == []


async def test_the_token_is_never_sent_to_a_plain_http_address_elsewhere(
    graph: meta.FakeGraph, http: httpx.AsyncClient
) -> None:
    graph.reply(
        "media_info",
        200,
        {"url": "http://evil.example/steal", "mime_type": "image/png", "id": "3005"},
    )
    with pytest.raises(PayloadMalformed) as caught:
        await ADAPTER.fetch_media(http, on(graph), MediaRef("image", "3005"), max_bytes=4096)
    assert caught.value.error_code == "media_unavailable"
    assert len(graph.requests) == 1


# --- templates ----------------------------------------------------------------------------------


def _template(name: str, status: str, body: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "parameter_format": extra.pop("parameter_format", "POSITIONAL"),
        "components": [
            {"type": "HEADER", "format": "TEXT", "text": "Hola"},
            {"type": "BODY", "text": body},
            {"type": "FOOTER", "text": "Atiende"},
        ],
        "language": extra.pop("language", "es"),
        "status": status,
        "category": "UTILITY",
        "id": extra.pop("id", "123"),
    }


async def test_templates_are_synced_across_pages_with_their_placeholders(
    graph: meta.FakeGraph, http: httpx.AsyncClient
) -> None:
    graph.template_pages = [
        [
            _template("order_ready", "APPROVED", "Hola {{1}}, su pedido {{2}} está listo. {{1}}"),
            _template("promo", "PENDING", "Oferta"),
        ],
        [
            _template(
                "reservation",
                "APPROVED",
                "Mesa para {{guests}} el {{ date }}",
                parameter_format="NAMED",
                language="en_US",
            ),
            {"status": "APPROVED"},  # no name: skipped
        ],
    ]
    templates = await ADAPTER.sync_templates(http, on(graph))

    assert [(t["name"], t["language"], t["usable"]) for t in templates] == [
        ("order_ready", "es", True),
        ("promo", "es", False),
        ("reservation", "en_US", True),
    ]
    assert templates[0]["body"] == "Hola {{1}}, su pedido {{2}} está listo. {{1}}"
    assert templates[0]["parameters"] == ["1", "2"]
    assert templates[0]["status"] == "APPROVED"
    assert templates[0]["category"] == "UTILITY"
    assert templates[2]["parameters"] == ["guests", "date"]
    assert templates[2]["parameter_format"] == "NAMED"
    assert [c["type"] for c in templates[0]["components"]] == ["HEADER", "BODY", "FOOTER"]

    first, second = graph.requests
    assert first.path == f"/{meta.VERSION}/{meta.WABA_ID}/message_templates"
    assert first.headers["authorization"] == f"Bearer {meta.ACCESS_TOKEN}"
    assert first.query["limit"] == "100"
    assert "after" not in first.query
    assert second.query["after"] == "page1"


async def test_template_sync_maps_errors_like_sending(
    graph: meta.FakeGraph, http: httpx.AsyncClient
) -> None:
    graph.reply("templates", 400, meta.graph_error(80007, "(#80007) Rate limit issues"))
    with pytest.raises(RetryLater):
        await ADAPTER.sync_templates(http, on(graph))
    with pytest.raises(DeliveryFailed) as caught:
        await ADAPTER.sync_templates(http, on(graph, access_token="EAA-revoked"))
    assert caught.value.code == "auth"
    with pytest.raises(DeliveryFailed) as caught:
        await ADAPTER.sync_templates(http, on(graph, waba_id=None))
    assert caught.value.code == "not_configured"
