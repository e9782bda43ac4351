from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, EmailStr, Field, field_validator, model_validator

from atiende.core.security import MIN_PASSWORD_LENGTH
from atiende.identity.models import Role


def check_password_strength(value: str) -> str:
    """The one password rule, for every path that sets a password."""
    if len(value) < MIN_PASSWORD_LENGTH:
        raise ValueError(f"use at least {MIN_PASSWORD_LENGTH} characters")
    if len(value) > 256:
        raise ValueError("use at most 256 characters")
    return value


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: EmailStr
    name: str = Field(min_length=1, max_length=200)
    role: Role
    password: str
    locale: Literal["es", "en"] | None = None
    tenant_id: uuid.UUID | None = Field(
        default=None, description="Only vendor admins set this; tenant admins create in their own."
    )

    _check_password = field_validator("password")(check_password_strength)


class UserUpdate(BaseModel):
    """A partial update: fields left out stay as they are. Only ``locale`` may be set to
    null (back to the negotiated language)."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=200)
    role: Role | None = None
    locale: Literal["es", "en"] | None = None
    is_active: bool | None = None

    @model_validator(mode="after")
    def _no_nulls(self) -> UserUpdate:
        for field in ("name", "role", "is_active"):
            if field in self.model_fields_set and getattr(self, field) is None:
                raise ValueError(f"{field} cannot be null")
        return self


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    tenant_id: uuid.UUID | None
    email: str
    name: str
    role: Role
    locale: str | None
    is_active: bool
    created_at: datetime


class LoginRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: str = Field(min_length=1, max_length=254)
    password: str = Field(min_length=1, max_length=256)


class LoginResponse(BaseModel):
    user: UserOut
    csrf_token: str


class PasswordChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    current_password: str = Field(min_length=1, max_length=256)
    new_password: str

    _check_password = field_validator("new_password")(check_password_strength)


class PreferencesUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    locale: Literal["es", "en"]


class ApiTokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)


class ApiTokenOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class ApiTokenCreated(ApiTokenOut):
    token: str = Field(description="Shown once; store it now.")
