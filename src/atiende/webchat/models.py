from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from atiende.core.db import Base, IdMixin, TenantScoped


class Widget(IdMixin, TenantScoped, Base):
    """One embeddable chat launcher, identified on pages by its public ``key``."""

    __tablename__ = "webchat_widgets"

    key: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    queue_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("queues.id", ondelete="RESTRICT"))
    # Origins allowed to embed it ("https://shop.example.com"); empty = any.
    allowed_origins: Mapped[list[str]] = mapped_column(JSON, default=list)
    theme_color: Mapped[str] = mapped_column(String(16), default="#3b5bdb")
    greeting: Mapped[str | None] = mapped_column(Text)
    offline_message: Mapped[str | None] = mapped_column(Text)
    # Pre-chat form: {"name": "required"|"optional"|"off", "email": ..., "phone": ...}
    prechat: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    default_locale: Mapped[str] = mapped_column(String(8), default="es")
    max_attachment_bytes: Mapped[int] = mapped_column(default=10 * 1024 * 1024)
    allowed_attachment_types: Mapped[list[str]] = mapped_column(JSON, default=list)
    is_active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime]


class Visitor(IdMixin, TenantScoped, Base):
    """A browser that talks through a widget. Its secret token (kept in the page's storage)
    is what brings the history back across page loads; only its digest is stored."""

    __tablename__ = "webchat_visitors"

    widget_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("webchat_widgets.id", ondelete="CASCADE"), index=True
    )
    token_digest: Mapped[str] = mapped_column(String(64), unique=True)
    contact_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"))
    locale: Mapped[str | None] = mapped_column(String(8))
    meta: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]
