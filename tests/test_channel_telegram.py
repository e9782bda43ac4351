"""Telegram adapter: updates from private chats become messages (groups, channels and edits
are ignored), the webhook secret header authenticates the sender, and outbound calls reach a
local Bot API that answers like Telegram, errors included."""

from __future__ import annotations

import contextlib
import copy
import json
import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from atiende.channels.adapters.telegram import ALLOWED_UPDATES, TelegramAdapter, split_text
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
)
from fakes.telegram import (
    ERROR_400_CHAT_NOT_FOUND,
    ERROR_400_MIGRATED,
    ERROR_403_BLOCKED,
    ERROR_429_RETRY_AFTER,
    ERROR_500,
    FakeTelegram,
    fake_telegram,
)

TOKEN = "123456789:AAEhBOweik6ad9r_QXMENQjcrGbqCr4K-Ec"
SECRET = "s3cr3t_Token-123"
WEBHOOK_URL = "https://atiende.example.com/webhooks/telegram/Zk3fJ9qLw2"
adapter = TelegramAdapter()

# --- updates (the provider's samples and schema-accurate constructions) -------------------

CUSTOMER = {
    "id": 1111111,
    "is_bot": False,
    "first_name": "Test Firstname",
    "last_name": "Test Lastname",
    "username": "Testusername",
    "language_code": "en",
}
PRIVATE_CHAT = {
    "id": 1111111,
    "first_name": "Test Firstname",
    "last_name": "Test Lastname",
    "username": "Testusername",
    "type": "private",
}
UPDATE_TEXT_PRIVATE: dict[str, Any] = {
    "update_id": 10000,
    "message": {
        "message_id": 1365,
        "from": CUSTOMER,
        "chat": PRIVATE_CHAT,
        "date": 1441645532,
        "text": "Hello, I need help with my order",
    },
}
UPDATE_TEXT_PRIVATE_OFFICIAL_SAMPLE: dict[str, Any] = {
    "update_id": 10000,
    "message": {
        "date": 1441645532,
        "chat": {
            "last_name": "Test Lastname",
            "id": 1111111,
            "type": "private",
            "first_name": "Test Firstname",
            "username": "Testusername",
        },
        "message_id": 1365,
        "from": {
            "last_name": "Test Lastname",
            "id": 1111111,
            "first_name": "Test Firstname",
            "username": "Testusername",
        },
        "text": "/start",
    },
}
UPDATE_COMMAND_START: dict[str, Any] = {
    "update_id": 10001,
    "message": {
        "message_id": 1366,
        "from": CUSTOMER,
        "chat": PRIVATE_CHAT,
        "date": 1441645540,
        "text": "/start",
        "entities": [{"offset": 0, "length": 6, "type": "bot_command"}],
    },
}
UPDATE_PHOTO_PRIVATE: dict[str, Any] = {
    "update_id": 10002,
    "message": {
        "message_id": 1367,
        "from": CUSTOMER,
        "chat": PRIVATE_CHAT,
        "date": 1441645600,
        "photo": [
            {
                "file_id": "AgACAgIAAxkBAAIBQ2Y1_small",
                "file_unique_id": "AQADsmall",
                "file_size": 1234,
                "width": 90,
                "height": 67,
            },
            {
                "file_id": "AgACAgIAAxkBAAIBQ2Y1_medium",
                "file_unique_id": "AQADmedium",
                "file_size": 15432,
                "width": 320,
                "height": 240,
            },
            {
                "file_id": "AgACAgIAAxkBAAIBQ2Y1_large",
                "file_unique_id": "AQADlarge",
                "file_size": 81234,
                "width": 1280,
                "height": 960,
            },
        ],
        "caption": "Photo of the damaged item",
    },
}
UPDATE_CALLBACK_QUERY: dict[str, Any] = {
    "update_id": 10003,
    "callback_query": {
        "id": "4382bfdwdsb323b2d9",
        "from": CUSTOMER,
        "message": {
            "message_id": 1368,
            "from": {
                "id": 123456789,
                "is_bot": True,
                "first_name": "Support Bot",
                "username": "support_bot",
            },
            "chat": PRIVATE_CHAT,
            "date": 1441645700,
            "text": "Was this answer helpful?",
            "reply_markup": {
                "inline_keyboard": [
                    [
                        {"text": "Yes", "callback_data": "csat:yes"},
                        {"text": "No", "callback_data": "csat:no"},
                    ]
                ]
            },
        },
        "chat_instance": "-8901234567890123456",
        "data": "csat:yes",
    },
}
UPDATE_CALLBACK_QUERY_OFFICIAL_SAMPLE: dict[str, Any] = {
    "update_id": 10000,
    "callback_query": {
        "id": "4382bfdwdsb323b2d9",
        "from": {
            "last_name": "Test Lastname",
            "type": "private",
            "id": 1111111,
            "first_name": "Test Firstname",
            "username": "Testusername",
        },
        "data": "Data from button callback",
        "inline_message_id": "1234csdbsk4839",
    },
}
WEBHOOK_HEADERS = {
    "Content-Type": "application/json",
    "X-Telegram-Bot-Api-Secret-Token": "s3cr3t_Token-123",
}


def _config(api_base: str = "https://api.telegram.org", **secrets: str) -> AccountConfig:
    return AccountConfig(
        account_id="acc-1",
        settings={"api_base": api_base},
        secrets={"bot_token": TOKEN, "webhook_secret": SECRET, **secrets},
        webhook_url=WEBHOOK_URL,
    )


def _request(
    body: Any, headers: dict[str, str] | None = None, *, raw: bytes | None = None
) -> RawRequest:
    given = WEBHOOK_HEADERS if headers is None else headers
    return RawRequest(
        method="POST",
        url=WEBHOOK_URL,
        headers={k.lower(): v for k, v in given.items()},
        query={},
        body=raw if raw is not None else json.dumps(body).encode(),
    )


def _message_update(
    content: dict[str, Any], *, chat: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {
        "update_id": 20000,
        "message": {
            "message_id": 1400,
            "from": CUSTOMER,
            "chat": chat or PRIVATE_CHAT,
            "date": 1441645600,
            **content,
        },
    }


SENT_AT = datetime(2015, 9, 7, 17, 6, 40, tzinfo=UTC)


def _one(update: dict[str, Any]) -> InboundMessage:
    items = adapter.parse(_request(update))
    assert len(items) == 1
    item = items[0]
    assert isinstance(item, InboundMessage)
    return item


# --- the account ----------------------------------------------------------------------------


def test_the_account_needs_a_bot_token_and_a_webhook_secret() -> None:
    assert TelegramAdapter.kind is ChannelKind.telegram
    assert TelegramAdapter.setting_fields == ("api_base", "bot_username")
    assert TelegramAdapter.secret_fields == ("bot_token", "webhook_secret")
    assert adapter.handshake(_request({}), _config()) is None


# --- verify ---------------------------------------------------------------------------------


def test_the_secret_token_header_authenticates_an_update() -> None:
    adapter.verify(_request(UPDATE_TEXT_PRIVATE), _config())


@pytest.mark.parametrize(
    "headers",
    [
        {"Content-Type": "application/json"},
        {"X-Telegram-Bot-Api-Secret-Token": "wrong"},
        {"X-Telegram-Bot-Api-Secret-Token": SECRET + "x"},
        {"X-Telegram-Bot-Api-Secret-Token": SECRET[:-1]},
        {"X-Telegram-Bot-Api-Secret-Token": SECRET.upper()},
        {"X-Telegram-Bot-Api-Secret-Token": ""},
        {"X-Telegram-Bot-Api-Secret-Token": "s3cr3t_Tökén-123"},
    ],
    ids=["missing", "wrong", "longer", "shorter", "other-case", "empty", "non-ascii"],
)
def test_a_missing_or_wrong_secret_token_is_refused(headers: dict[str, str]) -> None:
    with pytest.raises(SignatureInvalid):
        adapter.verify(_request(UPDATE_TEXT_PRIVATE, headers), _config())


def test_an_account_without_a_webhook_secret_accepts_nothing() -> None:
    config = _config(webhook_secret="")
    with pytest.raises(SignatureInvalid):
        adapter.verify(
            _request(UPDATE_TEXT_PRIVATE, {"X-Telegram-Bot-Api-Secret-Token": ""}), config
        )


def test_the_header_name_is_matched_in_any_case() -> None:
    request = RawRequest(
        method="POST",
        url=WEBHOOK_URL,
        headers={"X-Telegram-Bot-Api-Secret-Token": SECRET},
        query={},
        body=json.dumps(UPDATE_TEXT_PRIVATE).encode(),
    )
    adapter.verify(request, _config())


def test_only_the_header_authenticates_since_telegram_signs_no_body() -> None:
    # Whatever the body (even one that is not JSON), the secret is what counts: verification
    # never reads the body, and a wrong secret is refused for any body.
    adapter.verify(_request(None, raw=b"not json"), _config())
    with pytest.raises(SignatureInvalid):
        adapter.verify(
            _request(None, {"X-Telegram-Bot-Api-Secret-Token": "nope"}, raw=b"{}"), _config()
        )


# --- event_id -------------------------------------------------------------------------------


def test_the_event_id_is_the_update_id() -> None:
    request = _request(UPDATE_TEXT_PRIVATE)
    assert adapter.event_id(request) == "10000"
    assert adapter.event_id(request) == adapter.event_id(_request(UPDATE_TEXT_PRIVATE))
    assert adapter.event_id(_request(UPDATE_COMMAND_START)) == "10001"
    assert adapter.event_id(_request(UPDATE_CALLBACK_QUERY)) == "10003"


def test_the_event_id_of_an_update_of_a_type_we_ignore_is_still_its_update_id() -> None:
    assert adapter.event_id(_request({"update_id": 77, "poll": {"id": "1"}})) == "77"


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"not json",
        b"\xff\xfe\x00",
        b"[1, 2]",
        b'"text"',
        b"{}",
        b'{"update_id": "10000"}',
        b'{"update_id": true}',
        b'{"update_id": 1.5}',
        b'{"update_id": null, "message": {}}',
        b"[" * 100_000,
    ],
)
def test_a_body_without_an_integer_update_id_is_malformed(raw: bytes) -> None:
    request = _request(None, raw=raw)
    with pytest.raises(PayloadMalformed):
        adapter.event_id(request)
    with pytest.raises(PayloadMalformed):
        adapter.parse(request)


# --- parse: messages ------------------------------------------------------------------------


def test_a_private_text_message() -> None:
    assert adapter.parse(_request(UPDATE_TEXT_PRIVATE)) == [
        InboundMessage(
            provider_message_id="1111111:1365",
            sender_id="1111111",
            sender_name="Test Firstname Test Lastname",
            text="Hello, I need help with my order",
            sent_at=datetime(2015, 9, 7, 17, 5, 32, tzinfo=UTC),
            kind="text",
        )
    ]


def test_the_official_sample_without_is_bot_or_entities_is_a_start_command() -> None:
    assert adapter.parse(_request(UPDATE_TEXT_PRIVATE_OFFICIAL_SAMPLE)) == [
        InboundMessage(
            provider_message_id="1111111:1365",
            sender_id="1111111",
            sender_name="Test Firstname Test Lastname",
            text="/start",
            sent_at=datetime(2015, 9, 7, 17, 5, 32, tzinfo=UTC),
            kind="command",
            data={"command": "start", "args": ""},
        )
    ]


def test_start_is_a_command() -> None:
    assert adapter.parse(_request(UPDATE_COMMAND_START)) == [
        InboundMessage(
            provider_message_id="1111111:1366",
            sender_id="1111111",
            sender_name="Test Firstname Test Lastname",
            text="/start",
            sent_at=datetime(2015, 9, 7, 17, 5, 40, tzinfo=UTC),
            kind="command",
            data={"command": "start", "args": ""},
        )
    ]


def test_a_deep_link_start_carries_its_payload() -> None:
    item = _one(_message_update({"text": "/start@support_bot order-42"}))
    assert item.kind == "command"
    assert item.text == "/start@support_bot order-42"
    assert item.data == {"command": "start", "args": "order-42"}


def test_text_that_merely_starts_with_a_slash_is_text() -> None:
    item = _one(_message_update({"text": "/home/user/file.txt is missing"}))
    assert item.kind == "text"
    assert item.data == {}


def test_a_photo_is_its_largest_size_with_the_caption_as_text() -> None:
    assert adapter.parse(_request(UPDATE_PHOTO_PRIVATE)) == [
        InboundMessage(
            provider_message_id="1111111:1367",
            sender_id="1111111",
            sender_name="Test Firstname Test Lastname",
            text="Photo of the damaged item",
            sent_at=SENT_AT,
            media=(
                MediaRef(
                    kind="image",
                    provider_ref="AgACAgIAAxkBAAIBQ2Y1_large",
                    content_type="image/jpeg",
                    caption="Photo of the damaged item",
                ),
            ),
            kind="media",
        )
    ]


def test_the_largest_photo_wins_whatever_the_order() -> None:
    update = copy.deepcopy(UPDATE_PHOTO_PRIVATE)
    update["message"]["photo"].reverse()
    del update["message"]["caption"]
    item = _one(update)
    assert [m.provider_ref for m in item.media] == ["AgACAgIAAxkBAAIBQ2Y1_large"]
    assert item.text == ""


@pytest.mark.parametrize(
    ("content", "media"),
    [
        (
            {
                "document": {
                    "file_name": "invoice.pdf",
                    "mime_type": "application/pdf",
                    "file_id": "BQACAgIAAxkBAAIBRGY1_doc",
                    "file_unique_id": "AgADdoc",
                    "file_size": 52341,
                },
                "caption": "My invoice",
            },
            MediaRef(
                "document",
                "BQACAgIAAxkBAAIBRGY1_doc",
                "application/pdf",
                "invoice.pdf",
                "My invoice",
            ),
        ),
        (
            {
                "audio": {
                    "file_id": "CQACAgIAAxkBAAIBRWY1_audio",
                    "file_unique_id": "AgADaudio",
                    "duration": 184,
                    "performer": "Band",
                    "title": "Song",
                    "file_name": "song.mp3",
                    "mime_type": "audio/mpeg",
                    "file_size": 2941234,
                }
            },
            MediaRef("audio", "CQACAgIAAxkBAAIBRWY1_audio", "audio/mpeg", "song.mp3"),
        ),
        (
            {
                "voice": {
                    "file_id": "AwACAgIAAxkBAAIBRmY1_voice",
                    "file_unique_id": "AgADvoice",
                    "duration": 4,
                    "mime_type": "audio/ogg",
                    "file_size": 10503,
                }
            },
            MediaRef("audio", "AwACAgIAAxkBAAIBRmY1_voice", "audio/ogg"),
        ),
        (
            {
                "video": {
                    "file_id": "BAACAgIAAxkBAAIBR2Y1_video",
                    "file_unique_id": "AgADvideo",
                    "width": 1280,
                    "height": 720,
                    "duration": 12,
                    "mime_type": "video/mp4",
                    "file_size": 1843456,
                },
                "caption": "It makes this noise",
            },
            MediaRef(
                "video", "BAACAgIAAxkBAAIBR2Y1_video", "video/mp4", None, "It makes this noise"
            ),
        ),
        (
            {
                "animation": {
                    "file_id": "CgACAgIAAxkBAAIBSGY1_gif",
                    "file_unique_id": "AgADgif",
                    "width": 320,
                    "height": 240,
                    "duration": 3,
                    "file_name": "dance.mp4",
                    "mime_type": "video/mp4",
                },
                "document": {
                    "file_id": "CgACAgIAAxkBAAIBSGY1_gif",
                    "file_unique_id": "AgADgif",
                    "file_name": "dance.mp4",
                    "mime_type": "video/mp4",
                },
            },
            MediaRef("video", "CgACAgIAAxkBAAIBSGY1_gif", "video/mp4", "dance.mp4"),
        ),
        (
            {
                "video_note": {
                    "file_id": "DQACAgIAAxkBAAIBSWY1_note",
                    "file_unique_id": "AgADnote",
                    "length": 240,
                    "duration": 6,
                }
            },
            MediaRef("video", "DQACAgIAAxkBAAIBSWY1_note", "video/mp4"),
        ),
    ],
    ids=["document", "audio", "voice", "video", "animation", "video_note"],
)
def test_files_become_media_to_download(content: dict[str, Any], media: MediaRef) -> None:
    assert adapter.parse(_request(_message_update(content))) == [
        InboundMessage(
            provider_message_id="1111111:1400",
            sender_id="1111111",
            sender_name="Test Firstname Test Lastname",
            text=content.get("caption", ""),
            sent_at=SENT_AT,
            media=(media,),
            kind="media",
        )
    ]


@pytest.mark.parametrize(
    ("flags", "content_type"),
    [
        ({}, "image/webp"),
        ({"is_animated": True}, "application/x-tgsticker"),
        ({"is_video": True}, "video/webm"),
    ],
    ids=["static", "animated", "video"],
)
def test_a_sticker_is_media_with_its_emoji_as_text(
    flags: dict[str, Any], content_type: str
) -> None:
    sticker = {
        "file_id": "CAACAgIAAxkBAAIBSmY1_sticker",
        "file_unique_id": "AgADsticker",
        "type": "regular",
        "width": 512,
        "height": 512,
        "is_animated": False,
        "is_video": False,
        "emoji": "👍",
        **flags,
    }
    item = _one(_message_update({"sticker": sticker}))
    assert item.kind == "media"
    assert item.text == "👍"
    assert item.data == {"emoji": "👍"}
    assert item.media == (MediaRef("sticker", "CAACAgIAAxkBAAIBSmY1_sticker", content_type),)


def test_a_location_is_readable_with_its_coordinates_in_data() -> None:
    item = _one(_message_update({"location": {"latitude": 19.432608, "longitude": -99.133209}}))
    assert item.kind == "location"
    assert item.text == "19.432608, -99.133209"
    assert item.data == {"latitude": 19.432608, "longitude": -99.133209}
    assert item.media == ()


def test_a_venue_is_a_location_with_its_name_and_address() -> None:
    location = {"latitude": 19.4326, "longitude": -99.1332}
    venue = {"location": location, "title": "Zócalo", "address": "Plaza de la Constitución"}
    item = _one(_message_update({"venue": venue, "location": location}))
    assert item.kind == "location"
    assert item.text == "Zócalo\nPlaza de la Constitución\n19.4326, -99.1332"
    assert item.data == {
        "latitude": 19.4326,
        "longitude": -99.1332,
        "name": "Zócalo",
        "address": "Plaza de la Constitución",
    }


def test_a_shared_contact_is_readable_with_its_fields_in_data() -> None:
    contact = {
        "phone_number": "+5215512345678",
        "first_name": "Ana",
        "last_name": "López",
        "user_id": 2222222,
    }
    item = _one(_message_update({"contact": contact}))
    assert item.kind == "contacts"
    assert item.text == "Ana López +5215512345678"
    assert item.data == {"phone": "+5215512345678", "name": "Ana López", "user_id": 2222222}


def test_a_message_we_cannot_show_arrives_as_unsupported() -> None:
    poll = {"id": "5", "question": "?", "options": [], "total_voter_count": 0}
    item = _one(_message_update({"poll": poll}))
    assert item.kind == "unsupported"
    assert item.text == "[Telegram: poll]"
    assert item.data == {"fields": ["poll"]}
    assert item.provider_message_id == "1111111:1400"


def test_the_name_falls_back_to_the_username() -> None:
    chat = {"id": 3333333, "type": "private", "username": "only_handle"}
    item = _one(_message_update({"text": "hi"}, chat=chat))
    assert item.sender_id == "3333333"
    assert item.sender_name == "only_handle"
    assert item.provider_message_id == "3333333:1400"


# --- parse: what is ignored -----------------------------------------------------------------


@pytest.mark.parametrize("chat_type", ["group", "supergroup", "channel"])
def test_group_and_channel_messages_are_ignored(chat_type: str) -> None:
    chat = {"id": -1001234567890, "title": "Customers", "type": chat_type}
    assert adapter.parse(_request(_message_update({"text": "hello all"}, chat=chat))) == []


@pytest.mark.parametrize(
    "kind",
    ["edited_message", "channel_post", "edited_channel_post", "my_chat_member", "poll"],
)
def test_updates_other_than_messages_and_button_presses_are_ignored(kind: str) -> None:
    update = {"update_id": 30000, kind: copy.deepcopy(UPDATE_TEXT_PRIVATE["message"])}
    assert adapter.parse(_request(update)) == []


def test_an_update_of_no_known_type_is_malformed() -> None:
    with pytest.raises(PayloadMalformed):
        adapter.parse(_request({"update_id": 30001, "something_new": {}}))


# --- parse: button presses ------------------------------------------------------------------


def test_a_button_press_is_an_interactive_answer_from_the_chat() -> None:
    assert adapter.parse(_request(UPDATE_CALLBACK_QUERY)) == [
        InboundMessage(
            provider_message_id="1111111:callback:4382bfdwdsb323b2d9",
            sender_id="1111111",
            sender_name="Test Firstname Test Lastname",
            text="csat:yes",
            kind="interactive",
            data={
                "callback_query_id": "4382bfdwdsb323b2d9",
                "chat_instance": "-8901234567890123456",
                "message_id": "1111111:1368",
            },
        )
    ]


def test_a_press_on_an_inline_message_comes_from_the_user() -> None:
    assert adapter.parse(_request(UPDATE_CALLBACK_QUERY_OFFICIAL_SAMPLE)) == [
        InboundMessage(
            provider_message_id="1111111:callback:4382bfdwdsb323b2d9",
            sender_id="1111111",
            sender_name="Test Firstname Test Lastname",
            text="Data from button callback",
            kind="interactive",
            data={
                "callback_query_id": "4382bfdwdsb323b2d9",
                "inline_message_id": "1234csdbsk4839",
            },
        )
    ]


def test_a_button_press_in_a_group_is_ignored() -> None:
    update = copy.deepcopy(UPDATE_CALLBACK_QUERY)
    update["callback_query"]["message"]["chat"] = {"id": -100, "title": "G", "type": "group"}
    assert adapter.parse(_request(update)) == []


# --- parse: malformed -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "update",
    [
        {"update_id": 1, "message": "hello"},
        {"update_id": 1, "message": None},
        {"update_id": 1, "message": {"message_id": 1, "date": 1, "text": "x"}},
        {"update_id": 1, "message": {"message_id": 1, "chat": {"id": "1", "type": "private"}}},
        {"update_id": 1, "message": {"message_id": 1, "chat": {"id": 1}}},
        {"update_id": 1, "message": {"chat": {"id": 1, "type": "private"}, "text": "x"}},
        _message_update({"text": 42}),
        _message_update({"photo": []}),
        _message_update({"photo": [{"width": 1, "height": 1}]}),
        _message_update({"photo": "AgAC"}),
        _message_update({"document": {"file_name": "x.pdf"}}),
        _message_update({"location": {"latitude": "19.4", "longitude": -99.1}}),
        _message_update({"contact": {"first_name": "Ana"}}),
        _message_update({"text": "x", "date": 10**20}),
        {"update_id": 1, "callback_query": {"from": CUSTOMER, "data": "x"}},
        {"update_id": 1, "callback_query": {"id": "q", "data": "x"}},
        {"update_id": 1, "callback_query": {"id": "q", "from": CUSTOMER, "data": 7}},
    ],
)
def test_a_wrongly_shaped_update_is_malformed(update: dict[str, Any]) -> None:
    with pytest.raises(PayloadMalformed):
        adapter.parse(_request(update))


TELEGRAM_KEYS = [
    "update_id", "message", "callback_query", "edited_message", "channel_post", "chat", "id",
    "type", "message_id", "date", "from", "text", "caption", "photo", "file_id", "width",
    "height", "file_size", "document", "sticker", "location", "latitude", "longitude", "venue",
    "contact", "phone_number", "first_name", "last_name", "username", "data", "is_video",
    "is_animated", "emoji", "mime_type", "file_name", "user_id", "game_short_name",
    "inline_message_id", "chat_instance", "title", "address", "voice", "audio", "video",
    "animation", "video_note", "poll",
]  # fmt: skip
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()
    | st.text(max_size=12)
    | st.sampled_from(["private", "group", "/start x", "", "AgAC_id"])
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(TELEGRAM_KEYS) | st.text(max_size=4), children, max_size=6
        )
    ),
    max_leaves=40,
)
# Well-formed updates whose parts are sometimes junk, so every branch of the parser runs.
IDS = st.integers(-(2**52), 2**52)
SHORT = st.text(max_size=8)
USER = st.fixed_dictionaries(
    {"id": IDS}, optional={"first_name": SHORT, "last_name": SHORT, "username": SHORT}
)
CHAT = st.fixed_dictionaries(
    {"id": IDS, "type": st.sampled_from(["private", "private", "group", "channel"])},
    optional={"first_name": SHORT, "username": SHORT},
)
FILE = st.fixed_dictionaries(
    {"file_id": SHORT},
    optional={
        "file_name": SHORT,
        "mime_type": SHORT,
        "file_size": st.integers(0, 2**31),
        "emoji": SHORT,
        "is_video": st.booleans(),
        "is_animated": st.booleans(),
    },
)
PHOTO_SIZE = st.fixed_dictionaries(
    {"file_id": SHORT},
    optional={"width": st.integers(0, 5000), "height": st.integers(0, 5000), "file_size": IDS},
)
LOCATION = st.fixed_dictionaries(
    {"latitude": st.floats(-90, 90), "longitude": st.floats(-180, 180)}
)
CONTENT = st.one_of(
    st.fixed_dictionaries(
        {"text": SHORT | st.sampled_from(["/start", "/start order-1", "/help@bot a b"])}
    ),
    st.fixed_dictionaries(
        {"photo": st.lists(PHOTO_SIZE, min_size=1, max_size=3)}, optional={"caption": SHORT}
    ),
    st.sampled_from(
        ["animation", "video", "video_note", "voice", "audio", "document", "sticker"]
    ).flatmap(lambda key: st.fixed_dictionaries({key: FILE}, optional={"caption": SHORT})),
    st.fixed_dictionaries({"location": LOCATION}),
    st.fixed_dictionaries(
        {"venue": st.fixed_dictionaries({"location": LOCATION}, optional={"title": SHORT})}
    ),
    st.fixed_dictionaries(
        {"contact": st.fixed_dictionaries({"phone_number": SHORT}, optional={"user_id": IDS})}
    ),
    st.dictionaries(st.sampled_from(TELEGRAM_KEYS), JSON_VALUES, max_size=3),
)
MESSAGE = st.builds(
    lambda base, content: {**base, **content},
    st.fixed_dictionaries(
        {"message_id": IDS, "chat": CHAT},
        optional={"date": st.integers(0, 2**34), "from": USER},
    ),
    CONTENT,
)
CALLBACK = st.fixed_dictionaries(
    {"id": SHORT, "from": USER},
    optional={
        "data": SHORT,
        "game_short_name": SHORT,
        "message": MESSAGE,
        "chat_instance": SHORT,
        "inline_message_id": SHORT,
    },
)
UPDATES = st.builds(
    lambda update_id, kind, body: {"update_id": update_id, kind: body},
    IDS,
    st.sampled_from(["message", "message", "edited_message", "channel_post"]),
    MESSAGE,
) | st.builds(
    lambda update_id, body: {"update_id": update_id, "callback_query": body}, IDS, CALLBACK
)


def _only_payload_malformed(body: bytes) -> None:
    request = _request(None, raw=body)
    for call in (adapter.event_id, adapter.parse):
        with contextlib.suppress(PayloadMalformed):
            call(request)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_crash_event_id_or_parse(body: bytes) -> None:
    _only_payload_malformed(body)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(JSON_VALUES | UPDATES)
def test_arbitrary_json_never_crashes_event_id_or_parse(value: Any) -> None:
    _only_payload_malformed(json.dumps(value).encode())


# --- outbound against a local Bot API -------------------------------------------------------


@pytest.fixture
async def telegram() -> AsyncIterator[FakeTelegram]:
    async with fake_telegram(TOKEN) as fake:
        yield fake


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as client:
        yield client


def _send(
    to: str = "1111111", text: str = "", files: tuple[OutboundFile, ...] = ()
) -> OutboundRequest:
    return OutboundRequest(to=to, text=text, files=files, reference="msg-1")


PNG = OutboundFile("damage.png", "image/png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)
PDF = OutboundFile("invoice.pdf", "application/pdf", b"%PDF-1.4\n" + b"0" * 64)


async def test_text_goes_out_with_send_message(
    telegram: FakeTelegram, http: httpx.AsyncClient
) -> None:
    result = await adapter.send(
        http, _config(telegram.base), _send(text="Thanks! An agent will reply shortly.")
    )
    assert result == SendResult(provider_message_id="1111111:2000")
    [call] = telegram.requests
    assert (call.http_method, call.path) == ("POST", f"/bot{TOKEN}/sendMessage")
    assert call.headers["content-type"] == "application/json"
    assert call.json == {"chat_id": 1111111, "text": "Thanks! An agent will reply shortly."}


async def test_a_long_text_goes_out_in_pieces_telegram_accepts(
    telegram: FakeTelegram, http: httpx.AsyncClient
) -> None:
    text = ("Paragraph " + "x" * 90 + "\n") * 60  # 6060 characters
    result = await adapter.send(http, _config(telegram.base), _send(text=text))
    calls = telegram.calls("sendMessage")
    assert len(calls) == 2
    assert all(len(c.json["text"]) <= 4096 for c in calls)
    assert "\n".join(c.json["text"] for c in calls) == text  # cut at a line break
    assert result.provider_message_id == "1111111:2000"


async def test_files_go_out_as_photo_and_document_with_the_text_as_first_caption(
    telegram: FakeTelegram, http: httpx.AsyncClient
) -> None:
    result = await adapter.send(
        http, _config(telegram.base), _send(text="Here is the label", files=(PNG, PDF))
    )
    assert result.provider_message_id == "1111111:2000"
    photo, document = telegram.requests
    assert photo.path == f"/bot{TOKEN}/sendPhoto"
    assert photo.headers["content-type"].startswith("multipart/form-data")
    assert photo.form == {"chat_id": "1111111", "caption": "Here is the label"}
    assert photo.files["photo"].filename == "damage.png"
    assert photo.files["photo"].content_type == "image/png"
    assert photo.files["photo"].content == PNG.content
    assert document.path == f"/bot{TOKEN}/sendDocument"
    assert document.form == {"chat_id": "1111111"}
    assert document.files["document"].filename == "invoice.pdf"
    assert document.files["document"].content == PDF.content
    assert telegram.calls("sendMessage") == []


async def test_an_image_telegram_would_flatten_goes_as_a_document(
    telegram: FakeTelegram, http: httpx.AsyncClient
) -> None:
    gif = OutboundFile("dance.gif", "image/gif", b"GIF89a" + b"\x00" * 32)
    await adapter.send(http, _config(telegram.base), _send(files=(gif,)))
    [call] = telegram.requests
    assert call.method == "sendDocument"
    assert call.form == {"chat_id": "1111111"}


async def test_a_text_too_long_for_a_caption_goes_first_as_a_message(
    telegram: FakeTelegram, http: httpx.AsyncClient
) -> None:
    text = "y" * 1500
    await adapter.send(http, _config(telegram.base), _send(text=text, files=(PNG,)))
    message, photo = telegram.requests
    assert message.method == "sendMessage"
    assert message.json == {"chat_id": 1111111, "text": text}
    assert photo.method == "sendPhoto"
    assert photo.form == {"chat_id": "1111111"}


@pytest.mark.parametrize(
    ("message", "code"),
    [
        (OutboundRequest(to="1111111", text="  "), "empty_message"),
        (OutboundRequest(to="+52 55 1234", text="hi"), "invalid_recipient"),
    ],
)
async def test_a_message_that_cannot_be_sent_fails_without_a_call(
    telegram: FakeTelegram, http: httpx.AsyncClient, message: OutboundRequest, code: str
) -> None:
    with pytest.raises(DeliveryFailed) as failure:
        await adapter.send(http, _config(telegram.base), message)
    assert failure.value.code == code
    assert telegram.requests == []


async def test_a_rate_limit_is_retried_after_telegrams_hint(
    telegram: FakeTelegram, http: httpx.AsyncClient
) -> None:
    telegram.answer_next("sendMessage", 429, ERROR_429_RETRY_AFTER)
    with pytest.raises(RetryLater) as retry:
        await adapter.send(http, _config(telegram.base), _send(text="hi"))
    assert retry.value.seconds == 5
    assert "retry after 5" in str(retry.value)
    # the next attempt goes through
    result = await adapter.send(http, _config(telegram.base), _send(text="hi"))
    assert result.provider_message_id == "1111111:2000"


@pytest.mark.parametrize(
    ("status", "body"),
    [(500, ERROR_500), (502, "<html>Bad Gateway</html>"), (429, "Too Many Requests")],
    ids=["500", "502-html", "429-no-hint"],
)
async def test_server_trouble_is_retried_later(
    telegram: FakeTelegram, http: httpx.AsyncClient, status: int, body: Any
) -> None:
    telegram.answer_next("sendMessage", status, body)
    with pytest.raises(RetryLater) as retry:
        await adapter.send(http, _config(telegram.base), _send(text="hi"))
    assert retry.value.seconds is None


@pytest.mark.parametrize(
    ("status", "body", "code"),
    [
        (403, ERROR_403_BLOCKED, "bot_blocked"),
        (400, ERROR_400_CHAT_NOT_FOUND, "chat_not_found"),
        (400, ERROR_400_MIGRATED, "chat_migrated"),
        (
            403,
            {"ok": False, "error_code": 403, "description": "Forbidden: user is deactivated"},
            "user_deactivated",
        ),
        (
            400,
            {"ok": False, "error_code": 400, "description": "Bad Request: can't parse entities"},
            "bad_request",
        ),
        (
            409,
            {
                "ok": False,
                "error_code": 409,
                "description": "Conflict: terminated by other request",
            },
            "telegram_409",
        ),
    ],
    ids=["blocked", "chat-not-found", "migrated", "deactivated", "bad-request", "conflict"],
)
async def test_a_refusal_fails_the_message_for_good(
    telegram: FakeTelegram, http: httpx.AsyncClient, status: int, body: dict[str, Any], code: str
) -> None:
    telegram.answer_next("sendMessage", status, body)
    with pytest.raises(DeliveryFailed) as failure:
        await adapter.send(http, _config(telegram.base), _send(text="hi"))
    assert failure.value.code == code
    assert body["description"] in str(failure.value)


@pytest.mark.parametrize(
    "body", ["<html>ok</html>", {"ok": True, "result": True}], ids=["not-json", "no-message"]
)
async def test_a_success_without_the_sent_message_fails_without_a_retry(
    telegram: FakeTelegram, http: httpx.AsyncClient, body: Any
) -> None:
    telegram.answer_next("sendMessage", 200, body)
    with pytest.raises(DeliveryFailed) as failure:
        await adapter.send(http, _config(telegram.base), _send(text="hi"))
    assert failure.value.code == "unexpected_response"


async def test_a_migrated_group_names_its_new_chat_id(
    telegram: FakeTelegram, http: httpx.AsyncClient
) -> None:
    telegram.answer_next("sendPhoto", 400, ERROR_400_MIGRATED)
    with pytest.raises(DeliveryFailed) as failure:
        await adapter.send(http, _config(telegram.base), _send(to="-4001234", files=(PNG,)))
    assert failure.value.code == "chat_migrated"
    assert "-1001234567890" in str(failure.value)


async def test_a_wrong_token_fails_without_showing_the_token(
    telegram: FakeTelegram, http: httpx.AsyncClient
) -> None:
    other = "987654321:WrongTokenWrongTokenWrongToken_xyz"
    with pytest.raises(DeliveryFailed) as failure:
        await adapter.send(http, _config(telegram.base, bot_token=other), _send(text="hi"))
    assert failure.value.code == "invalid_token"
    assert other not in str(failure.value)
    assert telegram.requests[0].path == f"/bot{other}/sendMessage"


@pytest.mark.parametrize("token", ["", "not a token", "123/../../x", "123:abc?x=1"])
async def test_a_token_that_cannot_be_one_is_refused_before_any_call(
    telegram: FakeTelegram, http: httpx.AsyncClient, token: str
) -> None:
    with pytest.raises(DeliveryFailed) as failure:
        await adapter.send(http, _config(telegram.base, bot_token=token), _send(text="hi"))
    assert failure.value.code in {"not_configured", "invalid_token"}
    assert telegram.requests == []


async def test_an_unreachable_api_is_retried_later(http: httpx.AsyncClient) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(RetryLater) as retry:
        await adapter.send(http, _config(f"http://127.0.0.1:{port}"), _send(text="hi"))
    assert TOKEN not in str(retry.value)


def test_split_text_cuts_at_line_breaks_within_the_limit() -> None:
    assert split_text("aaaa\nbbbb\ncc", limit=10) == ["aaaa\nbbbb", "cc"]
    assert split_text("a" * 25, limit=10) == ["a" * 10, "a" * 10, "a" * 5]
    assert split_text("😀" * 6, limit=10) == ["😀" * 5, "😀"]  # two UTF-16 units each
    assert split_text("short") == ["short"]


@given(st.text(max_size=400), st.integers(min_value=2, max_value=50))
def test_split_text_pieces_fit_and_lose_only_the_whitespace_they_were_cut_at(
    text: str, limit: int
) -> None:
    pieces = split_text(text, limit=limit)
    assert all(0 < len(p.encode("utf-16-le")) // 2 <= limit for p in pieces)
    assert all(p.strip() for p in pieces)
    assert "".join("".join(p.split()) for p in pieces) == "".join(text.split())


# --- the extra calls: setWebhook, getMe, answerCallbackQuery --------------------------------


async def test_set_webhook_points_the_bot_at_the_account_url_with_its_secret(
    telegram: FakeTelegram, http: httpx.AsyncClient
) -> None:
    await adapter.set_webhook(http, _config(telegram.base))
    [call] = telegram.requests
    assert call.path == f"/bot{TOKEN}/setWebhook"
    assert call.json == {
        "url": WEBHOOK_URL,
        "secret_token": SECRET,
        "allowed_updates": ["message", "callback_query"],
        "drop_pending_updates": False,
    }
    assert list(ALLOWED_UPDATES) == call.json["allowed_updates"]


async def test_set_webhook_reports_telegrams_refusal(
    telegram: FakeTelegram, http: httpx.AsyncClient
) -> None:
    config = AccountConfig(
        account_id="acc-1",
        settings={"api_base": telegram.base},
        secrets={"bot_token": TOKEN, "webhook_secret": SECRET},
        webhook_url="http://insecure.example.com/webhooks/telegram/k",
    )
    with pytest.raises(DeliveryFailed) as failure:
        await adapter.set_webhook(http, config)
    assert failure.value.code == "bad_request"
    assert "HTTPS" in str(failure.value)


@pytest.mark.parametrize("secret", ["has space", "x" * 257, "bad/char", "ünï"])
async def test_set_webhook_refuses_a_secret_telegram_would_reject(
    telegram: FakeTelegram, http: httpx.AsyncClient, secret: str
) -> None:
    with pytest.raises(DeliveryFailed) as failure:
        await adapter.set_webhook(http, _config(telegram.base, webhook_secret=secret))
    assert failure.value.code == "invalid_webhook_secret"
    assert telegram.requests == []


async def test_set_webhook_without_a_secret_is_not_configured(
    telegram: FakeTelegram, http: httpx.AsyncClient
) -> None:
    with pytest.raises(DeliveryFailed) as failure:
        await adapter.set_webhook(http, _config(telegram.base, webhook_secret=""))
    assert failure.value.code == "not_configured"
    assert telegram.requests == []


async def test_get_me_returns_the_bot_user(telegram: FakeTelegram, http: httpx.AsyncClient) -> None:
    me = await adapter.get_me(http, _config(telegram.base))
    assert me["username"] == "support_bot"
    assert me["is_bot"] is True
    assert me["id"] == 123456789
    [call] = telegram.requests
    assert call.path == f"/bot{TOKEN}/getMe"


async def test_get_me_with_a_revoked_token_fails(
    telegram: FakeTelegram, http: httpx.AsyncClient
) -> None:
    telegram.answer_next(
        "getMe", 401, {"ok": False, "error_code": 401, "description": "Unauthorized"}
    )
    with pytest.raises(DeliveryFailed) as failure:
        await adapter.get_me(http, _config(telegram.base))
    assert failure.value.code == "invalid_token"


async def test_answer_callback_stops_the_buttons_spinner(
    telegram: FakeTelegram, http: httpx.AsyncClient
) -> None:
    [press] = adapter.parse(_request(UPDATE_CALLBACK_QUERY))
    assert isinstance(press, InboundMessage)
    await adapter.answer_callback(http, _config(telegram.base), press.data["callback_query_id"])
    [call] = telegram.requests
    assert call.path == f"/bot{TOKEN}/answerCallbackQuery"
    assert call.json == {"callback_query_id": "4382bfdwdsb323b2d9"}


async def test_answering_a_callback_too_old_to_answer_is_not_an_error(
    telegram: FakeTelegram, http: httpx.AsyncClient
) -> None:
    telegram.answer_next(
        "answerCallbackQuery",
        400,
        {
            "ok": False,
            "error_code": 400,
            "description": "Bad Request: query is too old and response timeout expired or "
            "query ID is invalid",
        },
    )
    await adapter.answer_callback(http, _config(telegram.base), "4382bfdwdsb323b2d9")
    telegram.answer_next("answerCallbackQuery", 403, ERROR_403_BLOCKED)
    with pytest.raises(DeliveryFailed):
        await adapter.answer_callback(http, _config(telegram.base), "4382bfdwdsb323b2d9")


# --- fetch_media ----------------------------------------------------------------------------

JPEG = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 40


async def test_a_received_photo_is_downloaded_through_get_file(
    telegram: FakeTelegram, http: httpx.AsyncClient
) -> None:
    telegram.add_file("AgACAgIAAxkBAAIBQ2Y1_large", "photos/file_0.jpg", JPEG)
    [item] = adapter.parse(_request(UPDATE_PHOTO_PRIVATE))
    assert isinstance(item, InboundMessage)
    file = await adapter.fetch_media(http, _config(telegram.base), item.media[0], max_bytes=1 << 20)
    assert file == OutboundFile(filename="file_0.jpg", content_type="image/jpeg", content=JPEG)
    get_file, download = telegram.requests
    assert get_file.path == f"/bot{TOKEN}/getFile"
    assert get_file.json == {"file_id": "AgACAgIAAxkBAAIBQ2Y1_large"}
    assert (download.http_method, download.path) == ("GET", f"/file/bot{TOKEN}/photos/file_0.jpg")


async def test_a_document_keeps_its_name_and_a_bare_file_gets_its_type_from_the_path(
    telegram: FakeTelegram, http: httpx.AsyncClient
) -> None:
    telegram.add_file("doc-1", "documents/file_3.pdf", b"%PDF-1.4 ...")
    named = MediaRef("document", "doc-1", "application/pdf", "invoice.pdf")
    bare = MediaRef("document", "doc-1")
    config = _config(telegram.base)
    assert await adapter.fetch_media(http, config, named, max_bytes=1000) == OutboundFile(
        "invoice.pdf", "application/pdf", b"%PDF-1.4 ..."
    )
    assert await adapter.fetch_media(http, config, bare, max_bytes=1000) == OutboundFile(
        "file_3.pdf", "application/pdf", b"%PDF-1.4 ..."
    )


async def test_a_file_over_the_limit_by_its_reported_size_is_not_downloaded(
    telegram: FakeTelegram, http: httpx.AsyncClient
) -> None:
    telegram.add_file("big", "videos/file_9.mp4", b"v" * 5000)
    with pytest.raises(PayloadMalformed) as error:
        await adapter.fetch_media(
            http, _config(telegram.base), MediaRef("video", "big", "video/mp4"), max_bytes=4999
        )
    assert error.value.error_code == "media_too_large"
    assert [r.method for r in telegram.requests] == ["getFile"]


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_a_file_over_the_limit_without_a_reported_size_stops_downloading(
    telegram: FakeTelegram, http: httpx.AsyncClient, chunked: bool
) -> None:
    telegram.add_file("big", "videos/file_9.mp4", b"v" * 5000, report_size=False, chunked=chunked)
    media = MediaRef("video", "big", "video/mp4")
    with pytest.raises(PayloadMalformed) as error:
        await adapter.fetch_media(http, _config(telegram.base), media, max_bytes=4999)
    assert error.value.error_code == "media_too_large"
    exact = await adapter.fetch_media(http, _config(telegram.base), media, max_bytes=5000)
    assert exact.content == b"v" * 5000


async def test_a_file_telegram_will_not_hand_out_is_malformed(
    telegram: FakeTelegram, http: httpx.AsyncClient
) -> None:
    config = _config(telegram.base)
    with pytest.raises(PayloadMalformed):
        await adapter.fetch_media(http, config, MediaRef("image", "unknown"), max_bytes=1000)
    telegram.answer_next(
        "getFile",
        400,
        {"ok": False, "error_code": 400, "description": "Bad Request: file is too big"},
    )
    with pytest.raises(PayloadMalformed) as error:
        await adapter.fetch_media(http, config, MediaRef("video", "huge"), max_bytes=1000)
    assert error.value.error_code == "media_too_large"


async def test_file_server_trouble_is_retried_later(
    telegram: FakeTelegram, http: httpx.AsyncClient
) -> None:
    telegram.add_file("f", "photos/file_1.jpg", JPEG)
    telegram.answer_next("download", 502, "Bad Gateway")
    with pytest.raises(RetryLater):
        await adapter.fetch_media(
            http, _config(telegram.base), MediaRef("image", "f"), max_bytes=1 << 20
        )
    telegram.answer_next("getFile", 500, ERROR_500)
    with pytest.raises(RetryLater):
        await adapter.fetch_media(
            http, _config(telegram.base), MediaRef("image", "f"), max_bytes=1 << 20
        )


@pytest.mark.parametrize("path", ["../secrets.txt", "/etc/passwd", "photos/a.jpg?x=1", ""])
async def test_a_file_path_that_leaves_the_file_area_is_refused(
    telegram: FakeTelegram, http: httpx.AsyncClient, path: str
) -> None:
    telegram.answer_next(
        "getFile",
        200,
        {"ok": True, "result": {"file_id": "f", "file_unique_id": "u", "file_path": path}},
    )
    with pytest.raises(PayloadMalformed):
        await adapter.fetch_media(
            http, _config(telegram.base), MediaRef("image", "f"), max_bytes=1000
        )
    assert [r.method for r in telegram.requests] == ["getFile"]
