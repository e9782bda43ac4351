"""Identifiers and opaque tokens."""

from __future__ import annotations

import hashlib
import secrets
import uuid


def new_id() -> uuid.UUID:
    return uuid.uuid4()


def new_token(prefix: str, nbytes: int = 32) -> str:
    """A random bearer secret with a readable prefix (``atd_…``, ``ses_…``)."""
    return f"{prefix}_{secrets.token_urlsafe(nbytes)}"


def token_digest(token: str) -> str:
    """What we store for a token: its SHA-256, so a database leak reveals no usable secret."""
    return hashlib.sha256(token.encode()).hexdigest()
