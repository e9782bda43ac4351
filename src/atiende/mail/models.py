"""Outbound e-mail: one row per message, with its attachments, kept so a retry sends the same
bytes under the same Message-ID."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import Enum, ForeignKey, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from atiende.core.db import Base, IdMixin, TenantScoped


class MailStatus(enum.StrEnum):
    queued = "queued"
    sent = "sent"
    failed = "failed"


class OutboundMail(IdMixin, TenantScoped, Base):
    """A message to one recipient. Mail the vendor sends to a tenant (an invoice) carries the
    tenant; mail that belongs to no tenant (to a prospect, to vendor staff) has none and is
    visible only in the system scope."""

    __tablename__ = "outbound_mail"
    tenant_optional = True

    # What the message is for, free text for reporting: "billing.invoice", "identity.invite".
    kind: Mapped[str] = mapped_column(String(100))
    to_address: Mapped[str] = mapped_column(String(254))
    subject: Mapped[str] = mapped_column(String(500))
    text_body: Mapped[str] = mapped_column(Text)
    html_body: Mapped[str | None] = mapped_column(Text)
    # The Message-ID header, fixed when the mail is queued, so a receiver can drop the
    # duplicate a retry after a crash-after-send produces.
    message_id: Mapped[str] = mapped_column(String(255), unique=True)
    status: Mapped[MailStatus] = mapped_column(
        Enum(MailStatus, native_enum=False, length=20, validate_strings=True)
    )
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]


class OutboundMailAttachment(IdMixin, TenantScoped, Base):
    """A file sent with a mail, stored with it (the bytes are what the receiver gets, also on
    a retry). Carries its mail's tenant."""

    __tablename__ = "outbound_mail_attachments"
    __table_args__ = (UniqueConstraint("mail_id", "position"),)
    tenant_optional = True

    mail_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("outbound_mail.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(100))
    content: Mapped[bytes] = mapped_column(LargeBinary)
