from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from atiende.core.db import Base, IdMixin, TenantScoped


class Attachment(IdMixin, TenantScoped, Base):
    """One uploaded file. The bytes live in the attachment store under ``storage_key``; the
    client's file name is kept only as metadata and never becomes part of a path."""

    __tablename__ = "attachments"

    name: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(100))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    storage_key: Mapped[str] = mapped_column(String(200))
    # Who uploaded it: a user (agent, supervisor, admin) or a webchat visitor.
    uploader_kind: Mapped[str] = mapped_column(String(20))
    uploader_id: Mapped[uuid.UUID | None]
    created_at: Mapped[datetime]
