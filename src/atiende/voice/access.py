"""Who may set up telephony: administrators write, supervisors read (one rule for PBXs,
numbers and IVR menus)."""

from __future__ import annotations

from atiende.core.errors import PermissionDenied
from atiende.identity.actor import Actor
from atiende.identity.models import Role


def require_admin(actor: Actor, what: str = "PBXs") -> None:
    """Telephony set-up (PBXs, numbers, IVR menus) is for administrators (and the CLI)."""
    if actor.via == "system" or actor.has(Role.admin, Role.vendor_admin):
        return
    raise PermissionDenied(f"Only administrators configure {what}.")


def require_reader(actor: Actor) -> None:
    """Supervisors read the telephony set-up; agents do not."""
    if actor.via == "system" or actor.has(Role.admin, Role.supervisor, Role.vendor_admin):
        return
    raise PermissionDenied()
