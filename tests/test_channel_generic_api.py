"""The generic API channel: bearer-authenticated JSON in, signed JSON out to the customer's
endpoint, and no outbound request to a private address unless the account allows it."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from atiende.channels.adapters.generic_api import (
    ApiInboundMessage,
    ApiStatusReport,
    GenericApiAdapter,
    destination_allowed,
    resolve_host,
    sign,
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
from factories import LiveServer
from fakes.customer_api import (
    Answer,
    FakeCustomer,
    LoopbackInternet,
    StoredFile,
    TlsLiveServer,
    localhost_certificate,
)

TOKEN = "in-3c1d0f6e8b2a4b7c9d5e"
SECRET = "whsec-8e2f1a7c4b9d"
CLOCK = TestClock()  # 2026-01-05 15:00:00 UTC
NOW = int(CLOCK.now().timestamp())
ADAPTER = GenericApiAdapter(clock=CLOCK)
PUBLIC_IP = "93.184.216.34"
DOCS = Path(__file__).resolve().parents[1] / "docs" / "channels" / "api.md"


def account(outbound_url: str = "", *, allow_private: bool = False) -> AccountConfig:
    return AccountConfig(
        account_id="acc-api",
        settings={"outbound_url": outbound_url, "allow_private_network": allow_private},
        secrets={"inbound_token": TOKEN, "signing_secret": SECRET},
        webhook_url="https://cc.example.com/webhooks/api/k3y",
    )


def inbound(body: Any, *, authorization: str | None = f"Bearer {TOKEN}") -> RawRequest:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"content-type": "application/json"}
    if authorization is not None:
        headers["authorization"] = authorization
    return RawRequest("POST", "https://cc.example.com/webhooks/api/k3y", headers, {}, raw)


MESSAGE = {
    "message_id": "msg-1",
    "from": {"id": "user-4821", "name": "Ana López"},
    "text": "Hola, ¿dónde está mi pedido?",
    "sent_at": "2026-01-15T12:30:00-06:00",
}
WITH_FILE = {
    "message_id": "msg-2",
    "from": {"id": "user-4821", "name": None},
    "text": "",
    "attachments": [
        {"url": "https://files.example.com/r/8f2c.jpg", "content_type": "image/jpeg",
         "filename": "recibo.jpg"},
        {"url": "https://files.example.com/r/a1.pdf"},
    ],
}  # fmt: skip

# --- verify ---------------------------------------------------------------------------------


def test_the_inbound_token_authenticates_the_caller() -> None:
    ADAPTER.verify(inbound(MESSAGE), account())
    ADAPTER.verify(inbound(MESSAGE, authorization=f"bearer {TOKEN}"), account())


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}", f"Basic {TOKEN}", TOKEN],
)
def test_a_missing_or_wrong_token_is_refused(authorization: str | None) -> None:
    with pytest.raises(SignatureInvalid):
        ADAPTER.verify(inbound(MESSAGE, authorization=authorization), account())


def test_an_account_without_an_inbound_token_refuses_everything() -> None:
    config = AccountConfig("acc-api", {}, {"signing_secret": SECRET}, "https://x/")
    with pytest.raises(SignatureInvalid):
        ADAPTER.verify(inbound(MESSAGE, authorization="Bearer "), config)
    with pytest.raises(SignatureInvalid):
        ADAPTER.verify(inbound(MESSAGE), config)


# --- parse and event_id ---------------------------------------------------------------------


def test_a_message_becomes_an_inbound_message() -> None:
    assert ADAPTER.parse(inbound(MESSAGE)) == [
        InboundMessage(
            provider_message_id="msg-1",
            sender_id="user-4821",
            sender_name="Ana López",
            text="Hola, ¿dónde está mi pedido?",
            sent_at=datetime(2026, 1, 15, 18, 30, tzinfo=UTC),
            media=(),
            kind="text",
        )
    ]


def test_attachments_become_media_refs() -> None:
    assert ADAPTER.parse(inbound(WITH_FILE)) == [
        InboundMessage(
            provider_message_id="msg-2",
            sender_id="user-4821",
            sender_name=None,
            text="",
            media=(
                MediaRef(
                    kind="image",
                    provider_ref="https://files.example.com/r/8f2c.jpg",
                    content_type="image/jpeg",
                    filename="recibo.jpg",
                ),
                MediaRef(kind="document", provider_ref="https://files.example.com/r/a1.pdf"),
            ),
            kind="media",
        )
    ]


@pytest.mark.parametrize(
    ("report", "expected"),
    [
        (
            {"status": {"message_id": "cust-1", "status": "delivered"}},
            StatusUpdate(provider_message_id="cust-1", status="delivered"),
        ),
        (
            {"status": {"message_id": "cust-1", "status": "read", "error": None}},
            StatusUpdate(provider_message_id="cust-1", status="read"),
        ),
        (
            {"status": {"message_id": "cust-1", "status": "failed", "error": "User blocked"}},
            StatusUpdate(
                provider_message_id="cust-1", status="failed", error_message="User blocked"
            ),
        ),
    ],
)
def test_status_reports_become_status_updates(
    report: dict[str, Any], expected: StatusUpdate
) -> None:
    assert ADAPTER.parse(inbound(report)) == [expected]


def test_event_ids_are_the_callers_message_id_or_the_status_transition() -> None:
    delivered = {"status": {"message_id": "cust-1", "status": "delivered"}}
    read = {"status": {"message_id": "cust-1", "status": "read"}}
    assert ADAPTER.event_id(inbound(MESSAGE)) == "msg-1"
    assert ADAPTER.event_id(inbound(MESSAGE)) == ADAPTER.event_id(inbound(dict(MESSAGE)))
    assert ADAPTER.event_id(inbound(WITH_FILE)) == "msg-2"
    assert ADAPTER.event_id(inbound(delivered)) == "status:cust-1:delivered"
    assert ADAPTER.event_id(inbound(read)) == "status:cust-1:read"


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"\xff\xfe",
        b"[1, 2]",
        b"null",
        b"[" * 100_000 + b"]" * 100_000,
        {**MESSAGE, "from": None},
        {key: value for key, value in MESSAGE.items() if key != "from"},
        {key: value for key, value in MESSAGE.items() if key != "text"},
        {**MESSAGE, "message_id": ""},
        {**MESSAGE, "text": ""},  # neither text nor attachments
        {**MESSAGE, "sent_at": "2026-01-15T12:30:00"},  # no UTC offset
        {**MESSAGE, "sent_at": "yesterday"},
        {**MESSAGE, "unexpected": 1},
        {**MESSAGE, "attachments": [{"url": "file:///etc/passwd"}]},
        {**MESSAGE, "attachments": [{"url": "https://x/y"}] * 11},
        {**MESSAGE, "text": "x" * 10_001},
        {"status": {"message_id": "cust-1", "status": "sent"}},
        {"status": {"message_id": "cust-1"}},
        {"status": "delivered"},
    ],
)
def test_malformed_bodies_raise_payload_malformed(body: Any) -> None:
    with pytest.raises(PayloadMalformed):
        ADAPTER.event_id(inbound(body))
    with pytest.raises(PayloadMalformed):
        ADAPTER.parse(inbound(body))


def _only_payload_malformed(request: RawRequest) -> None:
    for call in (ADAPTER.event_id, ADAPTER.parse):
        with contextlib.suppress(PayloadMalformed):
            call(request)


@settings(max_examples=300)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_crash_event_id_or_parse(body: bytes) -> None:
    _only_payload_malformed(inbound(body))


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(
        st.sampled_from(["message_id", "from", "id", "name", "text", "attachments", "url",
                         "status", "error", "sent_at"]) | st.text(max_size=8),
        children,
        max_size=5,
    ),
    max_leaves=20,
)  # fmt: skip


@settings(max_examples=300)
@given(_JSON)
def test_arbitrary_json_never_crashes_event_id_or_parse(document: Any) -> None:
    _only_payload_malformed(inbound(json.dumps(document).encode()))


def test_the_documented_examples_are_valid() -> None:
    for model in (ApiInboundMessage, ApiStatusReport):
        examples = model.model_json_schema()["examples"]
        assert examples
        for example in examples:
            ADAPTER.parse(inbound(example))


# --- destination_allowed --------------------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808"],
)
def test_public_addresses_are_allowed(address: str) -> None:
    assert destination_allowed("https://customer.example/hook", [address], allow_private=False)


@pytest.mark.parametrize(
    "address",
    [
        "10.0.0.5",  # private
        "172.16.0.1",
        "172.31.255.255",
        "192.168.1.10",
        "127.0.0.1",  # loopback
        "127.255.255.254",
        "169.254.169.254",  # link-local (cloud metadata)
        "0.0.0.0",  # unspecified
        "100.64.0.1",  # shared address space
        "192.0.0.8",
        "192.0.2.1",  # documentation
        "198.18.0.1",  # benchmarking
        "224.0.0.1",  # multicast
        "239.255.255.250",
        "240.0.0.1",  # reserved
        "255.255.255.255",
        "::1",
        "::",
        "fe80::1",
        "fc00::1",
        "fd12:3456:789a::1",
        "fec0::1",  # site-local
        "ff02::1",  # multicast
        "2001:db8::1",  # documentation
        "::ffff:127.0.0.1",  # IPv4-mapped
        "::ffff:10.0.0.1",
        "::ffff:169.254.169.254",
        "::127.0.0.1",  # IPv4-compatible
        "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
        "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
        "2002:7f00:1::",  # 6to4 of 127.0.0.1
        "2002:c0a8:101::",  # 6to4 of 192.168.1.1
        "not-an-address",
        "fe80::1%eth0",
    ],
)
def test_non_public_addresses_are_refused(address: str) -> None:
    assert not destination_allowed("https://customer.example/hook", [address], allow_private=False)
    assert destination_allowed("https://customer.example/hook", [address], allow_private=True)


def test_one_private_address_among_public_ones_is_enough_to_refuse() -> None:
    assert not destination_allowed(
        "https://customer.example/hook", ["93.184.216.34", "10.0.0.5"], allow_private=False
    )


def test_a_host_that_resolves_to_nothing_is_refused() -> None:
    assert not destination_allowed("https://customer.example/hook", [], allow_private=False)


@pytest.mark.parametrize(
    "url",
    [
        "http://localhost/hook",
        "http://LOCALHOST./hook",
        "https://api.localhost:8443/hook",
        "http://127.0.0.1/hook",  # a literal address is checked even if the list says otherwise
        "http://[::1]:8080/hook",
        "http://[::ffff:7f00:1]/hook",
    ],
)
def test_localhost_and_private_literals_are_refused_whatever_they_resolve_to(url: str) -> None:
    assert not destination_allowed(url, [PUBLIC_IP], allow_private=False)
    assert destination_allowed(url, [PUBLIC_IP], allow_private=True)


@pytest.mark.parametrize(
    "url",
    [
        "ftp://customer.example/file",
        "file:///etc/passwd",
        "gopher://customer.example/",
        "customer.example/hook",
        "https://",
        "http://[::1/hook",
    ],
)
def test_only_http_and_https_urls_with_a_host_are_allowed(url: str) -> None:
    assert not destination_allowed(url, [PUBLIC_IP], allow_private=False)
    assert not destination_allowed(url, [PUBLIC_IP], allow_private=True)


@settings(max_examples=200)
@given(st.ip_addresses(), st.booleans())
def test_every_address_is_either_allowed_or_refused_never_an_error(
    address: Any, allow_private: bool
) -> None:
    allowed = destination_allowed("https://h.example/", [str(address)], allow_private)
    if allow_private:
        assert allowed
    elif allowed:
        assert address.is_global
        assert not address.is_multicast


async def test_resolve_host_returns_literals_and_looks_names_up() -> None:
    assert await resolve_host("10.1.2.3", 80) == ["10.1.2.3"]
    assert await resolve_host("::1", 80) == ["::1"]
    assert "127.0.0.1" in await resolve_host("localhost", 80)


# --- send -----------------------------------------------------------------------------------


def _customer_verification() -> Callable[..., bool]:
    """The verification snippet customers copy from the channel's documentation."""
    block = re.search(r"```python\n(.*?)```", DOCS.read_text(), re.DOTALL)
    assert block is not None
    namespace: dict[str, Any] = {}
    exec(block.group(1), namespace)  # noqa: S102 - our own documentation
    verify: Callable[..., bool] = namespace["verify_atiende_signature"]
    return verify


@contextlib.asynccontextmanager
async def customer() -> Any:
    fake = FakeCustomer()
    async with LiveServer(fake.build_app()) as server, httpx.AsyncClient() as http:
        yield fake, server, http


async def test_send_posts_signed_json_to_the_outbound_url() -> None:
    async with customer() as (fake, server, http):
        result = await ADAPTER.send(
            http,
            account(f"{server.http}/hook", allow_private=True),
            OutboundRequest(to="user-4821", text="Su pedido sale hoy 🚚", reference="m-42"),
        )
    assert result == SendResult(provider_message_id="cust-1")
    [request] = fake.requests
    assert request.path == "/hook"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["x-atiende-timestamp"] == str(NOW)
    assert request.headers["idempotency-key"] == "m-42"
    assert json.loads(request.body) == {
        "message_id": "m-42",
        "to": "user-4821",
        "text": "Su pedido sale hoy 🚚",
        "attachments": [],
    }
    expected = hmac.new(SECRET.encode(), f"{NOW}.".encode() + request.body, hashlib.sha256)
    assert request.headers["x-atiende-signature"] == "sha256=" + expected.hexdigest()
    assert request.headers["x-atiende-signature"] == sign(SECRET, str(NOW), request.body)
    verify = _customer_verification()
    signature, timestamp = (
        request.headers["x-atiende-signature"],
        request.headers["x-atiende-timestamp"],
    )
    assert verify(SECRET, timestamp, signature, request.body, now=NOW + 10)
    assert not verify(SECRET, timestamp, signature, request.body + b" ", now=NOW)
    assert not verify("another-secret", timestamp, signature, request.body, now=NOW)
    assert not verify(SECRET, timestamp, signature, request.body, now=NOW + 3600)  # replayed


async def test_files_travel_inline_as_base64() -> None:
    pdf = b"%PDF-1.4\n" + bytes(range(256))
    async with customer() as (fake, server, http):
        await ADAPTER.send(
            http,
            account(f"{server.http}/hook", allow_private=True),
            OutboundRequest(
                to="user-4821",
                text="Su factura",
                files=[OutboundFile("factura.pdf", "application/pdf", pdf)],
                reference="m-43",
            ),
        )
    assert json.loads(fake.requests[0].body)["attachments"] == [
        {
            "filename": "factura.pdf",
            "content_type": "application/pdf",
            "content_base64": base64.b64encode(pdf).decode(),
        }
    ]


@pytest.mark.parametrize(
    ("answer", "provider_id"),
    [
        (Answer(201, {"id": 981}), "981"),
        (Answer(200, {"ok": True}), "m-44"),
        (Answer(202, b"accepted"), "m-44"),
        (Answer(204), "m-44"),
        (Answer(200, {"id": ""}), "m-44"),
        (Answer(200, ["not", "an", "object"]), "m-44"),
        (Answer(200, b'{"id": "' + b"x" * 1_000_000 + b'"}'), "m-44"),  # too long to read
    ],
)
async def test_the_provider_id_is_the_answered_id_or_our_reference(
    answer: Answer, provider_id: str
) -> None:
    async with customer() as (fake, server, http):
        fake.answers.append(answer)
        result = await ADAPTER.send(
            http,
            account(f"{server.http}/hook", allow_private=True),
            OutboundRequest(to="user-4821", text="Hola", reference="m-44"),
        )
    assert result.provider_message_id == provider_id


@pytest.mark.parametrize(
    ("answer", "seconds"),
    [
        (Answer(429, {"error": "slow down"}, {"Retry-After": "30"}), 30.0),
        (Answer(429, None, {"Retry-After": "Mon, 05 Jan 2026 15:02:00 GMT"}), 120.0),
        (Answer(429), None),
        (Answer(500, {"error": "boom"}), None),
        (Answer(503, None, {"Retry-After": "5"}), 5.0),
    ],
)
async def test_rate_limits_and_server_errors_retry_later(
    answer: Answer, seconds: float | None
) -> None:
    async with customer() as (fake, server, http):
        fake.answers.append(answer)
        with pytest.raises(RetryLater) as retry:
            await ADAPTER.send(
                http,
                account(f"{server.http}/hook", allow_private=True),
                OutboundRequest(to="user-4821", text="Hola", reference="m-45"),
            )
    assert retry.value.seconds == seconds


@pytest.mark.parametrize("status", [400, 401, 404, 410, 422])
async def test_client_errors_fail_the_delivery(status: int) -> None:
    async with customer() as (fake, server, http):
        fake.answers.append(Answer(status, {"error": "unknown user"}))
        with pytest.raises(DeliveryFailed) as failed:
            await ADAPTER.send(
                http,
                account(f"{server.http}/hook", allow_private=True),
                OutboundRequest(to="user-0", text="Hola", reference="m-46"),
            )
    assert failed.value.code == f"http_{status}"
    assert "unknown user" in str(failed.value)


async def test_a_redirect_is_not_followed() -> None:
    async with customer() as (fake, server, http):
        fake.answers.append(Answer(307, None, {"Location": f"{server.http}/files/x"}))
        with pytest.raises(DeliveryFailed) as failed:
            await ADAPTER.send(
                http,
                account(f"{server.http}/hook", allow_private=True),
                OutboundRequest(to="user-0", text="Hola", reference="m-47"),
            )
    assert failed.value.code == "http_307"
    assert [request.path for request in fake.requests] == ["/hook"]


async def test_an_unreachable_endpoint_is_retried_later() -> None:
    async with LiveServer(FakeCustomer().build_app()) as server:
        gone = f"{server.http}/hook"
    async with httpx.AsyncClient() as http:
        with pytest.raises(RetryLater):
            await ADAPTER.send(
                http,
                account(gone, allow_private=True),
                OutboundRequest(to="user-0", text="Hola", reference="m-48"),
            )


async def test_a_name_that_does_not_resolve_is_retried_later() -> None:
    async def nowhere(host: str, port: int) -> list[str]:
        raise OSError(f"{host} does not resolve")

    adapter = GenericApiAdapter(clock=CLOCK, resolver=nowhere)
    async with httpx.AsyncClient() as http:
        with pytest.raises(RetryLater):
            await adapter.send(
                http,
                account("https://gone.example/hook"),
                OutboundRequest(to="user-0", text="Hola", reference="m-49"),
            )


@pytest.mark.parametrize(
    ("config", "code"),
    [
        (account(""), "not_configured"),
        (
            AccountConfig(
                "a", {"outbound_url": "https://x.example/"}, {"inbound_token": TOKEN}, ""
            ),
            "not_configured",
        ),
    ],
)
async def test_an_account_without_url_or_secret_cannot_send(
    config: AccountConfig, code: str
) -> None:
    async with httpx.AsyncClient() as http:
        with pytest.raises(DeliveryFailed) as failed:
            await ADAPTER.send(http, config, OutboundRequest(to="user-0", text="Hola"))
    assert failed.value.code == code


# --- SSRF -----------------------------------------------------------------------------------


def resolver(table: dict[str, list[str]]) -> Callable[[str, int], Awaitable[list[str]]]:
    async def resolve(host: str, port: int) -> list[str]:
        return table[host]

    return resolve


@pytest.mark.parametrize(
    "url_template",
    [
        "{base}/hook",  # 127.0.0.1
        "http://localhost:{port}/hook",
        "http://[::ffff:127.0.0.1]:{port}/hook",
        "ftp://127.0.0.1:{port}/hook",
    ],
)
async def test_sending_to_this_machine_is_refused_without_the_private_network_setting(
    url_template: str,
) -> None:
    async with customer() as (fake, server, http):
        url = url_template.format(base=server.http, port=server.port)
        with pytest.raises(DeliveryFailed) as refused:
            await ADAPTER.send(
                http, account(url), OutboundRequest(to="user-0", text="Hola", reference="m-50")
            )
    assert refused.value.code == "destination_not_allowed"
    assert fake.requests == []


async def test_a_public_name_that_resolves_to_a_private_address_is_refused() -> None:
    adapter = GenericApiAdapter(
        clock=CLOCK, resolver=resolver({"hooks.customer.example": [PUBLIC_IP, "10.0.0.7"]})
    )
    async with customer() as (fake, _server, http):
        with pytest.raises(DeliveryFailed) as refused:
            await adapter.send(
                http,
                account("https://hooks.customer.example/hook"),
                OutboundRequest(to="user-0", text="Hola", reference="m-51"),
            )
    assert refused.value.code == "destination_not_allowed"
    assert fake.requests == []


async def test_the_request_goes_to_the_checked_address_with_the_original_host() -> None:
    # The name would resolve differently a second time; the adapter connects to the address
    # it checked instead of resolving again.
    fake = FakeCustomer()
    async with LiveServer(fake.build_app()) as server:
        internet = LoopbackInternet(routes={PUBLIC_IP})
        adapter = GenericApiAdapter(
            clock=CLOCK, resolver=resolver({"hooks.customer.example": [PUBLIC_IP]})
        )
        port = server.port
        async with httpx.AsyncClient(transport=internet) as http:
            result = await adapter.send(
                http,
                account(f"http://hooks.customer.example:{port}/hook"),
                OutboundRequest(to="user-0", text="Hola", reference="m-52"),
            )
    assert result.provider_message_id == "cust-1"
    assert internet.connected_to == [PUBLIC_IP]
    assert fake.requests[0].headers["host"] == f"hooks.customer.example:{port}"


async def test_the_next_checked_address_is_tried_when_one_refuses_the_connection() -> None:
    adapter = GenericApiAdapter(
        clock=CLOCK, resolver=resolver({"hooks.test": ["127.0.0.2", "127.0.0.1"]})
    )
    async with customer() as (fake, server, http):
        port = server.port
        result = await adapter.send(
            http,
            account(f"http://hooks.test:{port}/hook", allow_private=True),
            OutboundRequest(to="user-0", text="Hola", reference="m-53"),
        )
    assert result.provider_message_id == "cust-1"
    assert len(fake.requests) == 1
    assert fake.requests[0].headers["host"] == f"hooks.test:{port}"


@pytest.fixture
def tls(tmp_path: Path) -> tuple[Path, Path, Any]:
    return localhost_certificate(tmp_path)


async def test_https_checks_the_certificate_against_the_urls_host(
    tls: tuple[Path, Path, Any],
) -> None:
    certfile, keyfile, context = tls
    fake = FakeCustomer()
    async with (
        TlsLiveServer(fake.build_app(), certfile, keyfile) as server,
        httpx.AsyncClient(verify=context) as http,
    ):
        port = server.port
        result = await ADAPTER.send(
            http,
            account(f"https://localhost:{port}/hook", allow_private=True),
            OutboundRequest(to="user-0", text="Hola", reference="m-54"),
        )
        # the same server under an address its certificate does not name
        with pytest.raises(RetryLater):
            await ADAPTER.send(
                http,
                account(f"https://127.0.0.1:{port}/hook", allow_private=True),
                OutboundRequest(to="user-0", text="Hola", reference="m-55"),
            )
    assert result.provider_message_id == "cust-1"
    assert [request.headers["host"] for request in fake.requests] == [f"localhost:{port}"]


# --- fetch_media ----------------------------------------------------------------------------

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 20


async def test_fetch_media_downloads_the_attachment() -> None:
    async with customer() as (fake, server, http):
        fake.files["receipt.png"] = StoredFile("image/png", PNG)
        downloaded = await ADAPTER.fetch_media(
            http,
            account(allow_private=True),
            MediaRef(kind="image", provider_ref=f"{server.http}/files/receipt.png"),
            max_bytes=100_000,
        )
    assert downloaded == OutboundFile(filename="receipt.png", content_type="image/png", content=PNG)


async def test_fetch_media_keeps_the_declared_name_and_type() -> None:
    async with customer() as (fake, server, http):
        fake.files["f1"] = StoredFile("application/octet-stream", PNG)
        downloaded = await ADAPTER.fetch_media(
            http,
            account(allow_private=True),
            MediaRef(
                kind="image",
                provider_ref=f"{server.http}/files/f1",
                content_type="image/png",
                filename="recibo.png",
            ),
            max_bytes=100_000,
        )
    assert (downloaded.filename, downloaded.content_type) == ("recibo.png", "image/png")


async def test_fetch_media_follows_redirects_checking_each_hop() -> None:
    async with customer() as (fake, server, http):
        fake.files["receipt.png"] = StoredFile("image/png", PNG)
        target = f"{server.http}/files/receipt.png"
        hop = f"/redirect?to={target}"
        downloaded = await ADAPTER.fetch_media(
            http,
            account(allow_private=True),
            MediaRef(kind="image", provider_ref=f"{server.http}/redirect?to={hop}"),
            max_bytes=100_000,
        )
    assert downloaded.content == PNG
    assert [request.path for request in fake.requests] == [
        "/redirect",
        "/redirect",
        "/files/receipt.png",
    ]


async def test_a_redirect_from_a_public_host_to_a_private_one_is_refused() -> None:
    fake = FakeCustomer()
    fake.files["secret"] = StoredFile("text/plain", b"internal")
    async with LiveServer(fake.build_app()) as server:
        internet = LoopbackInternet(routes={PUBLIC_IP})
        adapter = GenericApiAdapter(
            clock=CLOCK, resolver=resolver({"files.customer.example": [PUBLIC_IP]})
        )
        async with httpx.AsyncClient(transport=internet) as http:
            url = (
                f"http://files.customer.example:{server.port}/redirect"
                f"?to=http://127.0.0.1:{server.port}/files/secret"
            )
            with pytest.raises(PayloadMalformed) as refused:
                await adapter.fetch_media(
                    http, account(), MediaRef(kind="document", provider_ref=url), max_bytes=1000
                )
    assert refused.value.error_code == "destination_not_allowed"
    assert [request.path for request in fake.requests] == ["/redirect"]


async def test_fetch_media_refuses_a_private_url_without_the_setting() -> None:
    async with customer() as (fake, server, http):
        fake.files["receipt.png"] = StoredFile("image/png", PNG)
        with pytest.raises(PayloadMalformed) as refused:
            await ADAPTER.fetch_media(
                http,
                account(),
                MediaRef(kind="image", provider_ref=f"{server.http}/files/receipt.png"),
                max_bytes=100_000,
            )
    assert refused.value.error_code == "destination_not_allowed"
    assert fake.requests == []


async def test_fetch_media_gives_up_after_five_redirects() -> None:
    async with customer() as (fake, server, http):
        url = f"{server.http}/files/x"
        for _ in range(6):
            url = f"{server.http}/redirect?to={url}"
        with pytest.raises(PayloadMalformed) as refused:
            await ADAPTER.fetch_media(
                http,
                account(allow_private=True),
                MediaRef(kind="image", provider_ref=url),
                max_bytes=1000,
            )
    assert refused.value.error_code == "too_many_redirects"
    assert len(fake.requests) == 6


@pytest.mark.parametrize("declare_length", [True, False])
async def test_fetch_media_refuses_more_than_the_byte_cap(declare_length: bool) -> None:
    async with customer() as (fake, server, http):
        fake.files["big"] = StoredFile("image/png", PNG, declare_length=declare_length)
        media = MediaRef(kind="image", provider_ref=f"{server.http}/files/big")
        with pytest.raises(PayloadMalformed) as refused:
            await ADAPTER.fetch_media(
                http, account(allow_private=True), media, max_bytes=len(PNG) - 1
            )
        exact = await ADAPTER.fetch_media(
            http, account(allow_private=True), media, max_bytes=len(PNG)
        )
    assert refused.value.error_code == "media_too_large"
    assert exact.content == PNG


async def test_fetch_media_of_a_missing_file_is_malformed_and_a_busy_server_retries() -> None:
    async with customer() as (_, server, http):
        with pytest.raises(PayloadMalformed) as missing:
            await ADAPTER.fetch_media(
                http,
                account(allow_private=True),
                MediaRef(kind="image", provider_ref=f"{server.http}/files/none"),
                max_bytes=1000,
            )
        with pytest.raises(RetryLater) as busy:
            await ADAPTER.fetch_media(
                http,
                account(allow_private=True),
                MediaRef(kind="image", provider_ref=f"{server.http}/busy"),
                max_bytes=1000,
            )
    assert missing.value.error_code == "media_unavailable"
    assert busy.value.seconds == 12.0
