"""Telephony records owned by a tenant: the PBX extensions its users dial from, and the PBXs
(Asterisk servers) Atiende drives through ARI."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from atiende.core.db import Base, IdMixin, TenantScoped

DEFAULT_APP_NAME = "atiende"


class Extension(IdMixin, TenantScoped, Base):
    """A PBX user: an extension number, held by one user (agent, supervisor or admin) or
    free. Cloud tenants get one per purchased PBX user."""

    __tablename__ = "extensions"
    __table_args__ = (UniqueConstraint("tenant_id", "number"),)

    number: Mapped[str] = mapped_column(String(20))
    user_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), unique=True
    )
    created_at: Mapped[datetime]


class Pbx(IdMixin, TenantScoped, Base):
    """An Asterisk server of a tenant, reached through its REST interface (ARI) as the Stasis
    application ``app_name``. A tenant may have several."""

    __tablename__ = "pbxs"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)

    name: Mapped[str] = mapped_column(String(100))
    # The ARI base URL, e.g. http://10.0.0.5:8088/ari
    ari_url: Mapped[str] = mapped_column(String(500))
    ari_username: Mapped[str] = mapped_column(String(100))
    # {"ari_password": ...} sealed with the installation's key (core/sealing.py); never
    # returned or printed unless asked for explicitly.
    sealed_ari_password: Mapped[str] = mapped_column(Text)
    app_name: Mapped[str] = mapped_column(String(100), default=DEFAULT_APP_NAME)
    created_at: Mapped[datetime]
