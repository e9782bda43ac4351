"""Who is acting: passed first to every service call that needs authorisation."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Literal

from atiende.identity.models import TENANT_ROLES, VENDOR_ROLES, Role


@dataclass(frozen=True, slots=True)
class Actor:
    user_id: uuid.UUID | None
    email: str | None
    role: Role
    tenant_id: uuid.UUID | None
    via: Literal["session", "token", "cli", "system"] = "session"

    @classmethod
    def system(cls) -> Actor:
        """The CLI and internal jobs: vendor-admin powers, no user."""
        return cls(user_id=None, email=None, role=Role.vendor_admin, tenant_id=None, via="system")

    @property
    def is_vendor(self) -> bool:
        return self.role in VENDOR_ROLES

    @property
    def is_tenant_user(self) -> bool:
        return self.role in TENANT_ROLES

    def has(self, *roles: Role) -> bool:
        return self.role in roles
