from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import Enum, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from atiende.core.db import Base, IdMixin, TenantScoped


class IdentityKind(enum.StrEnum):
    """How a customer is reached; values are normalised before they are stored."""

    phone = "phone"  # E.164
    whatsapp = "whatsapp"  # WhatsApp id (wa_id, digits)
    telegram = "telegram"  # Telegram chat id
    webchat = "webchat"  # webchat visitor id
    email = "email"  # lower-cased address
    api = "api"  # an id in a customer's own channel


class Contact(IdMixin, TenantScoped, Base):
    __tablename__ = "contacts"

    name: Mapped[str | None] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(254))
    phone: Mapped[str | None] = mapped_column(String(32))
    # A merged contact keeps pointing at the survivor, so old references still resolve.
    merged_into_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("contacts.id", ondelete="SET NULL"), index=True
    )
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class ContactIdentity(IdMixin, TenantScoped, Base):
    __tablename__ = "contact_identities"
    __table_args__ = (UniqueConstraint("tenant_id", "kind", "value"),)

    contact_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("contacts.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[IdentityKind] = mapped_column(
        Enum(IdentityKind, native_enum=False, length=20, validate_strings=True)
    )
    value: Mapped[str] = mapped_column(String(254))
    created_at: Mapped[datetime]
