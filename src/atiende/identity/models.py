from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import Enum, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from atiende.core.db import Base, IdMixin, TenantScoped


class Role(enum.StrEnum):
    admin = "admin"
    supervisor = "supervisor"
    agent = "agent"
    vendor_admin = "vendor_admin"
    vendor_billing = "vendor_billing"
    vendor_support = "vendor_support"
    buyer = "buyer"  # a customer of the vendor: the portal's user, in no tenant

    @property
    def is_vendor(self) -> bool:
        return self.value.startswith("vendor_")


TENANT_ROLES = frozenset({Role.admin, Role.supervisor, Role.agent})
VENDOR_ROLES = frozenset({Role.vendor_admin, Role.vendor_billing, Role.vendor_support})


class User(IdMixin, TenantScoped, Base):
    """A person who logs in. Tenant users carry their tenant; vendor staff carry none."""

    __tablename__ = "users"
    tenant_optional = True

    email: Mapped[str] = mapped_column(String(254), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[Role] = mapped_column(
        Enum(Role, native_enum=False, length=20, validate_strings=True)
    )
    password_hash: Mapped[str] = mapped_column(String(200))
    locale: Mapped[str | None] = mapped_column(String(8))
    is_active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime]
    password_changed_at: Mapped[datetime]


class WebSession(IdMixin, Base):
    """A browser login. Looked up by the digest of the cookie value, never tenant-scoped
    because it is what establishes the scope."""

    __tablename__ = "web_sessions"

    token_digest: Mapped[str] = mapped_column(String(64), unique=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]


class ApiToken(IdMixin, TenantScoped, Base):
    """A bearer token for integrations; acts as its user, with the user's role."""

    __tablename__ = "api_tokens"
    tenant_optional = True

    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(100))
    token_digest: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(12))
    created_at: Mapped[datetime]
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class LoginAttempt(IdMixin, Base):
    """Failed logins, counted per e-mail and per client address to rate-limit guessing."""

    __tablename__ = "login_attempts"

    email: Mapped[str] = mapped_column(String(254), index=True)
    client_ip: Mapped[str] = mapped_column(String(64), index=True)
    attempted_at: Mapped[datetime] = mapped_column(index=True)
