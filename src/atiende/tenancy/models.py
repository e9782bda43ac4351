from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Enum, String
from sqlalchemy.orm import Mapped, mapped_column

from atiende.core.db import Base, IdMixin


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
    created_at: Mapped[datetime]
