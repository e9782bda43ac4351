"""Secrets at rest (provider tokens, webhook secrets): sealed with a key derived from the
installation's secret key (Fernet: AES-128-CBC + HMAC-SHA256). Rotating ``ATIENDE_SECRET_KEY``
makes sealed secrets unreadable: they must be entered again."""

from __future__ import annotations

import base64
import functools
import json

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


class SecretsUnreadable(RuntimeError):
    """The sealed value was made with another key (or altered)."""


class SecretBox:
    def __init__(self, secret_key: str, *, purpose: bytes = b"atiende secrets at rest") -> None:
        derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"atiende", info=purpose).derive(
            secret_key.encode()
        )
        self._fernet = Fernet(base64.urlsafe_b64encode(derived))

    def seal(self, values: dict[str, str]) -> str:
        return self._fernet.encrypt(json.dumps(values, sort_keys=True).encode()).decode()

    def open(self, sealed: str) -> dict[str, str]:
        try:
            data = json.loads(self._fernet.decrypt(sealed.encode()))
        except (InvalidToken, ValueError) as error:
            raise SecretsUnreadable("sealed with another key, or altered") from error
        return {str(k): str(v) for k, v in data.items()}


@functools.lru_cache(maxsize=16)
def secret_box(secret_key: str, purpose: bytes) -> SecretBox:
    """The box for a key and purpose, made once per process: deriving the key is wasted work
    on a hot path (every webhook opens its channel's secrets)."""
    return SecretBox(secret_key, purpose=purpose)
