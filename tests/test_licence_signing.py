"""Licence files, without a database: Ed25519 over the canonical payload; any change to a value
is caught; expired and malformed files are told apart; the state an installation is in."""

from __future__ import annotations

import base64
import json
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from atiende.core.errors import AtiendeError
from atiende.licensing import signing
from atiende.licensing.signing import (
    LicenceInvalid,
    LicenceKeyInvalid,
    LicenceState,
    LicenceTerms,
)

PRIVATE, PUBLIC = signing.generate_keypair()
ISSUED_AT = datetime(2026, 11, 25, 21, 30, tzinfo=UTC)
TODAY = date(2026, 11, 25)


def _terms(**fields: Any) -> LicenceTerms:
    values: dict[str, Any] = {
        "customer": "it@acme.example",
        "license": "omnichannel",
        "agents": 15,
        "addons": ("support_24x7", "reports"),
        "valid_until": date(2027, 11, 30),
    }
    return LicenceTerms(**(values | fields))


def _document(**fields: Any) -> dict[str, Any]:
    return signing.issue(PRIVATE, _terms(**fields), issued_at=ISSUED_AT)


def _signed(payload: dict[str, Any]) -> dict[str, Any]:
    """A document whose signature is genuine for whatever payload it is given."""
    key = serialization.load_pem_private_key(PRIVATE, password=None)
    assert isinstance(key, Ed25519PrivateKey)
    signature = key.sign(signing.canonical(payload))
    return {
        "format": signing.FORMAT,
        "payload": payload,
        "signature": base64.b64encode(signature).decode(),
    }


def _reason(document: Any, *, today: date = TODAY, public: bytes = PUBLIC) -> str:
    with pytest.raises(LicenceInvalid) as caught:
        signing.verify(document, public, today=today)
    assert caught.value.status_code == 422
    return caught.value.reason


# -- keys and the file format ----------------------------------------------------------------


def test_keypair_is_pkcs8_private_and_subject_public_key_info_public() -> None:
    private_pem, public_pem = signing.generate_keypair()
    assert private_pem.startswith(b"-----BEGIN PRIVATE KEY-----")
    assert public_pem.startswith(b"-----BEGIN PUBLIC KEY-----")
    private = serialization.load_pem_private_key(private_pem, password=None)
    assert isinstance(private, Ed25519PrivateKey)
    assert (
        private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        == public_pem
    )
    assert signing.generate_keypair()[0] != private_pem, "every pair is new"


def test_an_issued_document_carries_the_terms_and_a_signature_over_the_canonical_payload() -> None:
    document = _document()
    assert set(document) == {"format", "payload", "signature"}
    assert document["format"] == "atiende-licence/1"
    payload = document["payload"]
    assert payload == {
        "licence_id": payload["licence_id"],
        "customer": "it@acme.example",
        "deployment": "on_premise",
        "license": "omnichannel",
        "agents": 15,
        "addons": ["reports", "support_24x7"],
        "issued_at": "2026-11-25T21:30:00+00:00",
        "valid_until": "2027-11-30",
    }
    assert len(payload["licence_id"]) == 36
    canonical = json.dumps(
        payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False
    ).encode()
    public = serialization.load_pem_public_key(PUBLIC)
    public.verify(base64.b64decode(document["signature"]), canonical)  # type: ignore[union-attr]


def test_each_issued_licence_gets_its_own_id() -> None:
    assert _document()["payload"]["licence_id"] != _document()["payload"]["licence_id"]


def test_a_genuine_licence_verifies_to_its_terms_from_bytes_text_or_a_mapping() -> None:
    document = _document()
    text = signing.dumps(document)
    for form in (document, text, text.encode()):
        terms = signing.verify(form, PUBLIC, today=TODAY)
        assert terms.licence_id == document["payload"]["licence_id"]
        assert terms.customer == "it@acme.example"
        assert (terms.license, terms.agents, terms.deployment) == ("omnichannel", 15, "on_premise")
        assert terms.addons == ("reports", "support_24x7")
        assert terms.issued_at == ISSUED_AT
        assert terms.valid_until == date(2027, 11, 30)
        assert terms.to_payload() == document["payload"]


def test_layout_does_not_matter_only_values_do() -> None:
    document = _document()
    compact = json.dumps(document, separators=(",", ":"))
    spread = json.dumps(document, indent=8, sort_keys=True)
    for text in (compact, spread):
        assert signing.verify(text, PUBLIC, today=TODAY).agents == 15


def test_a_customer_address_with_non_ascii_text_signs_and_verifies() -> None:
    document = _document(customer="soporte@compañía.example")
    assert signing.verify(signing.dumps(document).encode(), PUBLIC, today=TODAY).customer == (
        "soporte@compañía.example"
    )


# -- forged ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("agents", 500),
        ("license", "voice"),
        ("addons", ["openai", "reports", "support_24x7"]),
        ("valid_until", "2099-12-31"),
        ("customer", "other@acme.example"),
        ("licence_id", "00000000-0000-4000-8000-000000000000"),
        ("issued_at", "2026-11-25T21:30:01+00:00"),
    ],
)
def test_any_edit_of_a_payload_value_is_forged(key: str, value: Any) -> None:
    document = _document()
    document["payload"][key] = value
    assert _reason(document) == "licence_forged"


def test_a_licence_signed_by_another_vendor_key_is_forged() -> None:
    other_private, _ = signing.generate_keypair()
    document = signing.issue(other_private, _terms(), issued_at=ISSUED_AT)
    assert _reason(document) == "licence_forged"


def test_a_signature_copied_from_another_licence_is_forged() -> None:
    document = _document()
    document["signature"] = _document(agents=20)["signature"]
    assert _reason(document) == "licence_forged"


def test_every_single_bit_flip_anywhere_in_the_file_is_refused() -> None:
    original = signing.dumps(_document()).encode()
    reasons: set[str] = set()
    for position in range(len(original)):
        for bit in (0x01, 0x20):
            tampered = bytearray(original)
            tampered[position] ^= bit
            reasons.add(_reason(bytes(tampered)))
    assert reasons <= {"licence_forged", "licence_malformed"}
    assert reasons == {"licence_forged", "licence_malformed"}, "both kinds of damage occur"


# -- expired ---------------------------------------------------------------------------------


def test_a_licence_is_valid_through_the_end_of_its_last_day() -> None:
    document = _document(valid_until=date(2026, 12, 31))
    assert signing.verify(document, PUBLIC, today=date(2026, 12, 31)).agents == 15
    assert _reason(document, today=date(2027, 1, 1)) == "licence_expired"


def test_an_expired_licence_names_its_last_day() -> None:
    with pytest.raises(LicenceInvalid) as caught:
        signing.verify(_document(valid_until=date(2026, 12, 31)), PUBLIC, today=date(2027, 2, 1))
    assert caught.value.error_code == "licence_expired"
    assert "2026-12-31" in caught.value.message


def test_an_edited_expired_licence_is_forged_rather_than_expired() -> None:
    document = _document(valid_until=date(2026, 12, 31))
    document["payload"]["valid_until"] = "2027-12-31"
    assert _reason(document, today=date(2027, 2, 1)) == "licence_forged"


# -- malformed -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [b"", b"not json", b"\xff\xfe\x00garbage", b"[1, 2]", b'"licence"', b"null", b"{"],
)
def test_a_file_that_is_not_a_json_object_is_malformed(text: bytes) -> None:
    assert _reason(text) == "licence_malformed"


def _broken_envelope(change: str) -> dict[str, Any]:
    document = _document()
    signature = document["signature"]
    if change == "no_signature":
        del document["signature"]
    elif change == "no_payload":
        del document["payload"]
    elif change == "extra_key":
        document["comment"] = "hi"
    elif change == "format":
        document["format"] = "atiende-licence/2"
    elif change == "payload_list":
        document["payload"] = list(document["payload"].items())
    elif change == "signature_number":
        document["signature"] = 12
    elif change == "signature_not_base64":
        document["signature"] = "*" + signature[1:]
    elif change == "signature_non_ascii":
        document["signature"] = "ñ" + signature[1:]
    elif change == "signature_short":
        document["signature"] = base64.b64encode(base64.b64decode(signature)[:32]).decode()
    elif change == "signature_unpadded":
        document["signature"] = signature.rstrip("=")
    elif change == "signature_non_canonical":
        # The last character before the padding has unused low bits: set them.
        alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
        body = signature.rstrip("=")
        last = alphabet[alphabet.index(body[-1]) ^ 0x01]
        document["signature"] = body[:-1] + last + "=" * (len(signature) - len(body))
        assert base64.b64decode(document["signature"]) == base64.b64decode(signature)
    return document


@pytest.mark.parametrize(
    "change",
    [
        "no_signature",
        "no_payload",
        "extra_key",
        "format",
        "payload_list",
        "signature_number",
        "signature_not_base64",
        "signature_non_ascii",
        "signature_short",
        "signature_unpadded",
        "signature_non_canonical",
    ],
)
def test_a_broken_envelope_is_malformed(change: str) -> None:
    assert _reason(_broken_envelope(change)) == "licence_malformed"


def _good_payload() -> dict[str, Any]:
    payload: dict[str, Any] = _document()["payload"]
    return payload


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("agents", "15"),
        ("agents", True),
        ("agents", 15.0),
        ("agents", 0),
        ("addons", "reports"),
        ("addons", ["support_24x7", "reports"]),
        ("addons", ["reports", "reports"]),
        ("addons", [1]),
        ("license", "video"),
        ("deployment", "cloud"),
        ("customer", "nobody"),
        ("customer", None),
        ("licence_id", "not-a-uuid"),
        ("issued_at", "yesterday"),
        ("issued_at", "2026-11-25T21:30:00"),
        ("valid_until", "31/12/2027"),
        ("valid_until", "20271231"),
        ("valid_until", 20271231),
    ],
)
def test_a_genuinely_signed_payload_with_a_wrong_value_is_malformed(key: str, value: Any) -> None:
    payload = _good_payload()
    payload[key] = value
    assert _reason(_signed(payload)) == "licence_malformed"


@pytest.mark.parametrize("key", ["agents", "valid_until", "licence_id"])
def test_a_genuinely_signed_payload_missing_a_key_is_malformed(key: str) -> None:
    payload = _good_payload()
    del payload[key]
    with pytest.raises(LicenceInvalid) as caught:
        signing.verify(_signed(payload), PUBLIC, today=TODAY)
    assert caught.value.reason == "licence_malformed"
    assert key in caught.value.message


def test_a_genuinely_signed_payload_with_an_extra_key_is_malformed() -> None:
    payload = _good_payload() | {"unlimited": True}
    assert _reason(_signed(payload)) == "licence_malformed"


def test_the_helper_signs_a_good_payload_validly() -> None:
    assert signing.verify(_signed(_good_payload()), PUBLIC, today=TODAY).agents == 15


# -- keys that are not the vendor's kind -----------------------------------------------------


def test_a_public_key_that_is_not_ed25519_is_refused() -> None:
    ec_public = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    for public in (ec_public, b"not a key", PRIVATE):
        with pytest.raises(LicenceKeyInvalid):
            signing.verify(_document(), public, today=TODAY)


def test_a_private_key_that_is_not_ed25519_is_refused() -> None:
    ec_private = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    for private in (ec_private, b"not a key", PUBLIC):
        with pytest.raises(LicenceKeyInvalid):
            signing.issue(private, _terms(), issued_at=ISSUED_AT)


# -- issuing follows the price list ----------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "code", "words"),
    [
        ({"deployment": "cloud"}, "licence_terms_invalid", "on_premise"),
        ({"agents": 12}, "agents_not_in_step", "steps of 5"),
        ({"agents": 5}, "agents_below_minimum", "at least 10"),
        ({"agents": 0}, "agents_not_positive", "positive"),
        ({"license": "video"}, "unknown_license", "video"),
        ({"addons": ("reports", "coffee")}, "unknown_addon", "coffee"),
        ({"addons": ("reports", "reports")}, "duplicate_addon", "twice"),
        ({"customer": "not an address"}, "licence_terms_invalid", "e-mail"),
        ({"valid_until": date(2026, 11, 24)}, "licence_terms_invalid", "before the issue date"),
    ],
)
def test_terms_outside_the_price_list_are_refused_naming_the_rule(
    fields: dict[str, Any], code: str, words: str
) -> None:
    with pytest.raises(AtiendeError) as caught:
        _document(**fields)
    assert caught.value.status_code == 422
    assert caught.value.error_code == code
    assert words in caught.value.message


@pytest.mark.parametrize("agents", [10, 15, 20, 105])
def test_on_premise_agent_counts_from_ten_in_steps_of_five_are_accepted(agents: int) -> None:
    assert signing.verify(_document(agents=agents), PUBLIC, today=TODAY).agents == agents


def test_a_licence_may_end_on_its_issue_day() -> None:
    document = _document(valid_until=ISSUED_AT.date())
    assert signing.verify(document, PUBLIC, today=ISSUED_AT.date()).valid_until == TODAY


def test_issuing_needs_an_aware_issue_time() -> None:
    with pytest.raises(ValueError, match="timezone"):
        signing.issue(PRIVATE, _terms(), issued_at=datetime(2026, 11, 25, 21, 30))  # noqa: DTZ001


# -- the installation's state ----------------------------------------------------------------


def _installed(
    valid_until: date, *, issued: datetime = ISSUED_AT, agents: int = 10
) -> LicenceTerms:
    return replace(_terms(valid_until=valid_until, agents=agents), issued_at=issued)


def test_no_licence_installed_is_missing() -> None:
    status = signing.decide_status([], today=TODAY, grace_days=14)
    assert status.state is LicenceState.missing
    assert status.terms is None
    assert not status.agent_login_allowed


def test_a_licence_is_active_through_its_last_day_then_in_grace_then_expired() -> None:
    licence = _installed(date(2026, 12, 31))

    def at(day: date) -> signing.LicenceStatus:
        return signing.decide_status([licence], today=day, grace_days=14)

    assert (at(date(2026, 12, 1)).state, at(date(2026, 12, 1)).days_left) == (
        LicenceState.active,
        31,
    )
    assert (at(date(2026, 12, 31)).state, at(date(2026, 12, 31)).days_left) == (
        LicenceState.active,
        1,
    )
    first_grace = at(date(2027, 1, 1))
    assert (first_grace.state, first_grace.days_left) == (LicenceState.grace, 14)
    assert first_grace.grace_ends_on == date(2027, 1, 14)
    assert first_grace.terms == licence
    assert first_grace.agent_login_allowed
    last_grace = at(date(2027, 1, 14))
    assert (last_grace.state, last_grace.days_left) == (LicenceState.grace, 1)
    expired = at(date(2027, 1, 15))
    assert (expired.state, expired.days_left) == (LicenceState.expired, 0)
    assert expired.terms == licence
    assert not expired.agent_login_allowed


def test_without_grace_days_a_lapsed_licence_is_expired_the_next_day() -> None:
    status = signing.decide_status(
        [_installed(date(2026, 12, 31))], today=date(2027, 1, 1), grace_days=0
    )
    assert status.state is LicenceState.expired


def test_the_newest_issued_valid_licence_is_active() -> None:
    older = _installed(date(2027, 12, 31), agents=50)
    newer = _installed(date(2027, 6, 30), issued=ISSUED_AT + timedelta(days=1), agents=10)
    status = signing.decide_status([newer, older], today=TODAY, grace_days=14)
    assert status.terms == newer
    assert status.days_left == (date(2027, 6, 30) - TODAY).days + 1


def test_a_newer_but_lapsed_licence_gives_way_to_an_older_valid_one() -> None:
    older = _installed(date(2027, 12, 31), agents=50)
    newer_lapsed = _installed(date(2026, 11, 1), issued=ISSUED_AT + timedelta(days=1))
    status = signing.decide_status([newer_lapsed, older], today=TODAY, grace_days=14)
    assert (status.state, status.terms) == (LicenceState.active, older)


def test_with_none_valid_the_licence_that_lapsed_last_sets_the_grace() -> None:
    first = _installed(date(2026, 11, 10))
    second = _installed(date(2026, 11, 20), issued=ISSUED_AT - timedelta(days=30))
    status = signing.decide_status([first, second], today=TODAY, grace_days=14)
    assert (status.state, status.terms) == (LicenceState.grace, second)
    assert status.grace_ends_on == date(2026, 12, 4)


@given(
    valid_until=st.dates(min_value=date(2026, 1, 1), max_value=date(2030, 12, 31)),
    offset=st.integers(min_value=-400, max_value=400),
    grace_days=st.integers(min_value=0, max_value=60),
)
def test_agents_may_log_in_exactly_until_the_grace_runs_out(
    valid_until: date, offset: int, grace_days: int
) -> None:
    today = valid_until + timedelta(days=offset)
    status = signing.decide_status([_installed(valid_until)], today=today, grace_days=grace_days)
    assert status.agent_login_allowed == (offset <= grace_days)
    assert (status.state is LicenceState.active) == (offset <= 0)
    assert status.days_left >= (1 if status.agent_login_allowed else 0)
