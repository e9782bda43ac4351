from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Annotated, Literal
from zoneinfo import available_timezones

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from atiende.tenancy.models import DEFAULT_RECORDING_RETENTION_DAYS, DeploymentMode

SUPPORTED_LOCALES = ("es", "en")
Locale = Literal["es", "en"]
_SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
MAX_RECORDING_RETENTION_DAYS = 3650
RetentionDays = Annotated[
    int,
    Field(
        ge=0,
        le=MAX_RECORDING_RETENTION_DAYS,
        description="Days a call recording is kept after the call; 0 keeps it for ever.",
    ),
]


def _valid_time_zone(value: str) -> str:
    if value not in available_timezones():
        raise ValueError(f"unknown IANA time zone {value!r}")
    return value


def _valid_slug(value: str) -> str:
    if not _SLUG.match(value):
        raise ValueError("use lowercase letters, digits and dashes (1-63 characters)")
    return value


TimeZone = Annotated[str, AfterValidator(_valid_time_zone)]
Slug = Annotated[str, AfterValidator(_valid_slug)]


class TenantCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    slug: Slug
    time_zone: TimeZone = "America/Mexico_City"
    locale: Locale = "es"
    deployment_mode: DeploymentMode = DeploymentMode.cloud
    recording_retention_days: RetentionDays = DEFAULT_RECORDING_RETENTION_DAYS


class TenantUpdate(BaseModel):
    """A partial update: fields left out stay as they are; none of them may be null."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=200)
    time_zone: TimeZone | None = None
    locale: Locale | None = None
    recording_retention_days: RetentionDays | None = None

    @model_validator(mode="after")
    def _no_nulls(self) -> TenantUpdate:
        for field in self.model_fields_set:
            if getattr(self, field) is None:
                raise ValueError(f"{field} cannot be null")
        return self


class TenantOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    slug: str
    name: str
    time_zone: str
    locale: str
    deployment_mode: DeploymentMode
    recording_retention_days: int
    created_at: datetime
