"""Password hashing (argon2id) and constant-time secret comparison."""

from __future__ import annotations

import hmac
import os

from argon2 import PasswordHasher, profiles
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

# ``ATIENDE_PASSWORD_HASHING=cheapest`` is for test suites only: argon2's cheapest
# parameters make a hash take microseconds instead of a tenth of a second. Existing hashes
# verify whatever the setting, since their parameters travel inside them.
_PROFILES = {
    "default": PasswordHasher,
    "cheapest": lambda: PasswordHasher.from_parameters(profiles.CHEAPEST),
}
_hasher = _PROFILES[os.environ.get("ATIENDE_PASSWORD_HASHING", "default")]()

# Verified against when the e-mail is unknown, so response time does not reveal which
# accounts exist.
_DUMMY_HASH = _hasher.hash("atiende-timing-equaliser")

MIN_PASSWORD_LENGTH = 10


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    try:
        return bool(_hasher.verify(password_hash or _DUMMY_HASH, password)) and bool(password_hash)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    return bool(_hasher.check_needs_rehash(password_hash))


def secrets_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())
