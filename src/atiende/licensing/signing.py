"""Licence files and the licence state, as pure functions (no I/O beyond the packaged price
list that ``billing.pricing`` reads once).

A licence file is a JSON document ``{"format", "payload", "signature"}``. The signature is
Ed25519 over the canonical form of the payload (sorted keys, no spaces, UTF-8), so a file may
be re-indented without losing its validity, but any change to a value breaks it. The vendor
keeps the private key; installations trust the public key.
"""

from __future__ import annotations

import base64
import enum
import json
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from pydantic import EmailStr, TypeAdapter
from pydantic import ValidationError as PydanticValidationError

from atiende.billing import pricing
from atiende.core.errors import AtiendeError, ValidationFailed

FORMAT: Final = "atiende-licence/1"
LICENCE_TYPES: Final = ("voice", "omnichannel")
# Only on-premise installations get a licence file; cloud tenants are provisioned instead.
FILE_DEPLOYMENT: Final = "on_premise"
SIGNATURE_BYTES: Final = 64

FORGED: Final = "licence_forged"
EXPIRED: Final = "licence_expired"
MALFORMED: Final = "licence_malformed"

_DOCUMENT_KEYS: Final = frozenset({"format", "payload", "signature"})
_PAYLOAD_KEYS: Final = frozenset(
    {
        "licence_id",
        "customer",
        "deployment",
        "license",
        "agents",
        "addons",
        "issued_at",
        "valid_until",
    }
)
_EMAIL: Final = TypeAdapter(EmailStr)


class LicenceInvalid(AtiendeError):
    """A licence file that cannot be trusted or used: ``licence_forged`` (the signature does
    not match the payload), ``licence_expired`` or ``licence_malformed``."""

    status_code = 422
    code = MALFORMED
    default_message = "The licence file is not valid."

    @property
    def reason(self) -> str:
        return self.error_code


class LicenceTermsInvalid(ValidationFailed):
    """Terms a licence file cannot be issued for, beyond the price list's own rules."""

    code = "licence_terms_invalid"
    default_message = "These licence terms are not allowed."


class LicenceKeyInvalid(ValidationFailed):
    code = "licence_key_invalid"
    default_message = "The key is not an Ed25519 key in PEM format."


def _new_licence_id() -> str:
    return str(uuid.uuid4())


@dataclass(frozen=True, slots=True)
class LicenceTerms:
    """What a licence grants. ``issued_at`` is set on an issued or verified licence."""

    customer: str
    license: str
    agents: int
    valid_until: date
    addons: tuple[str, ...] = ()
    deployment: str = FILE_DEPLOYMENT
    licence_id: str = field(default_factory=_new_licence_id)
    issued_at: datetime | None = None

    def to_payload(self) -> dict[str, Any]:
        if self.issued_at is None:
            raise ValueError("only issued terms have a payload")
        return {
            "licence_id": self.licence_id,
            "customer": self.customer,
            "deployment": self.deployment,
            "license": self.license,
            "agents": self.agents,
            "addons": sorted(set(self.addons)),
            "issued_at": self.issued_at.astimezone(UTC).isoformat(),
            "valid_until": self.valid_until.isoformat(),
        }


class LicenceState(enum.StrEnum):
    active = "active"
    grace = "grace"
    expired = "expired"
    missing = "missing"


@dataclass(frozen=True, slots=True)
class LicenceStatus:
    """The installation's licence on one day.

    ``terms`` is the licence in force (``active``) or the one that lapsed last (``grace``,
    ``expired``). ``grace_ends_on`` is the last day agents may still log in. ``days_left``
    counts days with today included: of validity while ``active``, of grace while ``grace``;
    0 otherwise.
    """

    state: LicenceState
    terms: LicenceTerms | None = None
    grace_ends_on: date | None = None
    days_left: int = 0

    @property
    def agent_login_allowed(self) -> bool:
        return self.state in (LicenceState.active, LicenceState.grace)


# ---------------------------------------------------------------------------------------------
# Keys and signatures


def generate_keypair() -> tuple[bytes, bytes]:
    """A new vendor key pair: (PKCS8 private PEM, SubjectPublicKeyInfo public PEM)."""
    private = Ed25519PrivateKey.generate()
    private_pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private_pem, public_pem


def _private_key(pem: bytes) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as error:
        raise LicenceKeyInvalid("The private key is not an unencrypted PEM key.") from error
    if not isinstance(key, Ed25519PrivateKey):
        raise LicenceKeyInvalid("The private key is not an Ed25519 key.")
    return key


def _public_key(pem: bytes) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError, UnsupportedAlgorithm) as error:
        raise LicenceKeyInvalid("The public key is not a PEM public key.") from error
    if not isinstance(key, Ed25519PublicKey):
        raise LicenceKeyInvalid("The public key is not an Ed25519 key.")
    return key


def canonical(payload: Mapping[str, Any]) -> bytes:
    """The exact bytes that are signed."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


# ---------------------------------------------------------------------------------------------
# Issuing


def check_terms(
    *, deployment: str, license: str, agents: int, addons: Iterable[str], on: date
) -> None:
    """The price list's rules (in force ``on`` that day) for a licence file.

    Only an on-premise installation gets a file (``licence_terms_invalid``); the rest are the
    commercial rules of ``billing.pricing`` (``QuoteRuleBroken``, whose code names the rule).
    """
    if deployment != FILE_DEPLOYMENT:
        raise LicenceTermsInvalid(
            f"Deployment {deployment!r} gets no licence file: only on_premise installations are "
            "licensed (cloud tenants are provisioned).",
            field="deployment",
        )
    price_list = pricing.price_list_at(on)
    pricing.validate_terms(
        pricing.make_terms(
            price_list, deployment=deployment, license=license, agents=agents, addons=addons
        ),
        price_list,
    )


def issue(private_pem: bytes, terms: LicenceTerms, *, issued_at: datetime) -> dict[str, Any]:
    """Sign ``terms`` and return the licence file document."""
    if issued_at.tzinfo is None:
        raise ValueError("issued_at must be timezone-aware")
    check_terms(
        deployment=terms.deployment,
        license=terms.license,
        agents=terms.agents,
        addons=terms.addons,
        on=issued_at.astimezone(UTC).date(),
    )
    try:
        customer = _EMAIL.validate_python(terms.customer)
    except PydanticValidationError as error:
        raise LicenceTermsInvalid(
            f"Customer {terms.customer!r} is not an e-mail address.", field="customer"
        ) from error
    if terms.valid_until < issued_at.astimezone(UTC).date():
        raise LicenceTermsInvalid(
            f"valid_until {terms.valid_until.isoformat()} is before the issue date.",
            field="valid_until",
        )
    key = _private_key(private_pem)
    issued = replace(
        terms,
        customer=customer,
        addons=tuple(sorted(set(terms.addons))),
        issued_at=issued_at.astimezone(UTC),
    )
    payload = issued.to_payload()
    signature = key.sign(canonical(payload))
    return {
        "format": FORMAT,
        "payload": payload,
        "signature": base64.b64encode(signature).decode("ascii"),
    }


def dumps(document: Mapping[str, Any]) -> str:
    """A licence document as the text of a licence file."""
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


# ---------------------------------------------------------------------------------------------
# Verifying


def _malformed(message: str) -> LicenceInvalid:
    return LicenceInvalid(message, code=MALFORMED)


def load(document: bytes | str | Mapping[str, Any]) -> Mapping[str, Any]:
    """The document as a mapping; raises ``LicenceInvalid`` (malformed) if it is not one."""
    if isinstance(document, Mapping):
        return document
    try:
        loaded = json.loads(document)
    except (ValueError, UnicodeDecodeError) as error:
        raise _malformed("The licence file is not JSON.") from error
    if not isinstance(loaded, dict):
        raise _malformed("The licence file is not a JSON object.")
    return loaded


def _envelope(document: Mapping[str, Any]) -> tuple[dict[str, Any], bytes]:
    keys = set(document)
    if keys != _DOCUMENT_KEYS:
        missing, extra = sorted(_DOCUMENT_KEYS - keys), sorted(keys - _DOCUMENT_KEYS)
        raise _malformed(
            "The licence file must have exactly the keys format, payload and signature"
            + (f"; missing: {', '.join(missing)}" if missing else "")
            + (f"; unexpected: {', '.join(extra)}" if extra else "")
            + "."
        )
    if document["format"] != FORMAT:
        raise _malformed(f"Unknown licence format {document['format']!r}; expected {FORMAT!r}.")
    payload, encoded = document["payload"], document["signature"]
    if not isinstance(payload, dict):
        raise _malformed("The payload is not a JSON object.")
    if not isinstance(encoded, str):
        raise _malformed("The signature is not a string.")
    try:
        signature = base64.b64decode(encoded.encode("ascii"), validate=True)
    except ValueError as error:  # binascii.Error and non-ASCII text are ValueErrors
        raise _malformed("The signature is not valid base64.") from error
    # Only the canonical spelling: unused bits of the last character could otherwise be changed
    # without changing the signature.
    if base64.b64encode(signature).decode("ascii") != encoded:
        raise _malformed("The signature is not canonical base64.")
    if len(signature) != SIGNATURE_BYTES:
        raise _malformed(f"The signature is not {SIGNATURE_BYTES} bytes long.")
    return payload, signature


def _text(payload: Mapping[str, Any], key: str) -> str:
    value = payload[key]
    if not isinstance(value, str) or not value:
        raise _malformed(f"{key} must be a non-empty string.")
    return value


def _terms(payload: Mapping[str, Any]) -> LicenceTerms:
    keys = set(payload)
    if keys != _PAYLOAD_KEYS:
        missing, extra = sorted(_PAYLOAD_KEYS - keys), sorted(keys - _PAYLOAD_KEYS)
        raise _malformed(
            "The payload has the wrong keys"
            + (f"; missing: {', '.join(missing)}" if missing else "")
            + (f"; unexpected: {', '.join(extra)}" if extra else "")
            + "."
        )
    licence_id = _text(payload, "licence_id")
    try:
        if str(uuid.UUID(licence_id)) != licence_id:
            raise ValueError(licence_id)
    except ValueError as error:
        raise _malformed("licence_id is not a UUID.") from error
    customer = _text(payload, "customer")
    if "@" not in customer:
        raise _malformed("customer is not an e-mail address.")
    deployment = _text(payload, "deployment")
    if deployment != FILE_DEPLOYMENT:
        raise _malformed(f"deployment must be {FILE_DEPLOYMENT}.")
    license = _text(payload, "license")
    if license not in LICENCE_TYPES:
        raise _malformed(f"license must be one of {', '.join(LICENCE_TYPES)}.")
    agents = payload["agents"]
    if type(agents) is not int or agents < 1:
        raise _malformed("agents must be a positive integer.")
    addons = payload["addons"]
    if (
        not isinstance(addons, list)
        or not all(isinstance(addon, str) and addon for addon in addons)
        or addons != sorted(set(addons))
    ):
        raise _malformed("addons must be a sorted list of distinct add-on codes.")
    try:
        issued_at = datetime.fromisoformat(_text(payload, "issued_at"))
    except ValueError as error:
        raise _malformed("issued_at is not an ISO date-time.") from error
    if issued_at.tzinfo is None:
        raise _malformed("issued_at has no time zone.")
    raw_valid_until = _text(payload, "valid_until")
    try:
        valid_until = date.fromisoformat(raw_valid_until)
    except ValueError as error:
        raise _malformed("valid_until is not an ISO date (YYYY-MM-DD).") from error
    if valid_until.isoformat() != raw_valid_until:
        raise _malformed("valid_until is not an ISO date (YYYY-MM-DD).")
    return LicenceTerms(
        licence_id=licence_id,
        customer=customer,
        deployment=deployment,
        license=license,
        agents=agents,
        addons=tuple(addons),
        issued_at=issued_at.astimezone(UTC),
        valid_until=valid_until,
    )


def verify(
    document: bytes | str | Mapping[str, Any], public_pem: bytes, *, today: date
) -> LicenceTerms:
    """The terms of a genuine licence that is valid ``today`` (through the end of its
    ``valid_until`` day, UTC); raises ``LicenceInvalid`` with the reason otherwise."""
    key = _public_key(public_pem)
    payload, signature = _envelope(load(document))
    try:
        key.verify(signature, canonical(payload))
    except InvalidSignature as error:
        raise LicenceInvalid(
            "The signature does not match the licence: it was changed or not issued by the "
            "vendor whose key this installation trusts.",
            code=FORGED,
        ) from error
    terms = _terms(payload)
    if terms.valid_until < today:
        raise LicenceInvalid(
            f"The licence expired: it was valid until {terms.valid_until.isoformat()}.",
            code=EXPIRED,
            valid_until=terms.valid_until.isoformat(),
        )
    return terms


# ---------------------------------------------------------------------------------------------
# The installation's state


def _issue_order(terms: LicenceTerms) -> tuple[datetime, date, str]:
    issued_at = terms.issued_at or datetime.min.replace(tzinfo=UTC)
    return issued_at, terms.valid_until, terms.licence_id


def decide_status(
    licences: Iterable[LicenceTerms], *, today: date, grace_days: int
) -> LicenceStatus:
    """Which installed licence is in force on ``today`` and what that allows.

    The active licence is the most recently issued one still valid today. With none valid,
    the one that lapsed last decides: agents may log in for ``grace_days`` days after its
    ``valid_until`` (``grace``), and not after that (``expired``).
    """
    installed = list(licences)
    if not installed:
        return LicenceStatus(LicenceState.missing)
    current = [terms for terms in installed if terms.valid_until >= today]
    if current:
        active = max(current, key=_issue_order)
        return LicenceStatus(
            LicenceState.active,
            terms=active,
            grace_ends_on=active.valid_until + timedelta(days=grace_days),
            days_left=(active.valid_until - today).days + 1,
        )
    lapsed = max(installed, key=lambda terms: (terms.valid_until, _issue_order(terms)))
    grace_ends_on = lapsed.valid_until + timedelta(days=grace_days)
    if today <= grace_ends_on:
        return LicenceStatus(
            LicenceState.grace,
            terms=lapsed,
            grace_ends_on=grace_ends_on,
            days_left=(grace_ends_on - today).days + 1,
        )
    return LicenceStatus(LicenceState.expired, terms=lapsed, grace_ends_on=grace_ends_on)
