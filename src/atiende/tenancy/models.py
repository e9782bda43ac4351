from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Enum, String
from sqlalchemy.orm import Mapped, mapped_column

from atiende.core.db import Base, IdMixin

#: Call recordings are deleted from the PBX after this many days unless the tenant says
#: otherwise (0 keeps them for ever).
DEFAULT_RECORDING_RETENTION_DAYS = 90


class DeploymentMode(enum.StrEnum):
    cloud = "cloud"
    on_premise = "on_premise"


class Tenant(IdMixin, Base):
    __tablename__ = "tenants"

    slug: Mapped[str] = mapped_column(String(63), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    time_zone: Mapped[str] = mapped_column(String(64))
    locale: Mapped[str] = mapped_column(String(8))
    deployment_mode: Mapped[DeploymentMode] = mapped_column(
        Enum(DeploymentMode, native_enum=False, length=20, validate_strings=True)
    )
    # Days a call recording is kept on the PBX after the call; 0 keeps it for ever.
    recording_retention_days: Mapped[int] = mapped_column(
        default=DEFAULT_RECORDING_RETENTION_DAYS,
        server_default=str(DEFAULT_RECORDING_RETENTION_DAYS),
    )
    created_at: Mapped[datetime]
