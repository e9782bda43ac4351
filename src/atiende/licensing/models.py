from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from atiende.core.db import Base, IdMixin


class InstalledLicence(IdMixin, Base):
    """A verified licence file installed on this installation.

    Installation-wide, not a tenant's row: an on-premise installation is licensed as a whole.
    The columns repeat the signed terms for queries; ``document`` keeps the file as installed.
    """

    __tablename__ = "installed_licences"

    licence_id: Mapped[str] = mapped_column(String(36), unique=True)
    document: Mapped[dict[str, Any]] = mapped_column(JSON)
    customer: Mapped[str] = mapped_column(String(254))
    license: Mapped[str] = mapped_column(String(20))
    agents: Mapped[int]
    addons: Mapped[list[str]] = mapped_column(JSON)
    issued_at: Mapped[datetime]
    valid_until: Mapped[date]
    installed_at: Mapped[datetime]
    installed_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
