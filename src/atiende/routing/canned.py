"""Canned responses: saved replies an agent inserts by typing ``/shortcut``. The only writer
of ``canned_responses``.

Tenant-wide responses (no owner) are managed by supervisors and admins and seen by everyone
in the tenant; personal ones belong to one user, who alone sees and manages them (even an
admin does not see another user's personal responses). Every change is audited.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import ColumnElement, case, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from atiende.audit import service as audit
from atiende.core.db import now
from atiende.core.errors import Conflict, NotFound, PermissionDenied
from atiende.identity.actor import Actor
from atiende.identity.models import Role
from atiende.routing.models import CannedResponse

MANAGERS = frozenset({Role.supervisor, Role.admin})
STAFF = frozenset({Role.admin, Role.supervisor, Role.agent})
_SHORTCUT = re.compile(r"^\w[\w.-]{0,49}$")


def normalise_shortcut(value: str) -> str:
    """``/Hola`` → ``hola``: what the user types after the slash, lower-cased."""
    shortcut = value.strip().removeprefix("/").lower()
    if not _SHORTCUT.match(shortcut):
        raise ValueError("use letters, digits, '.', '_' or '-' (1-50, no spaces)")
    return shortcut


Shortcut = Annotated[str, Field(max_length=51), AfterValidator(normalise_shortcut)]
Body = Annotated[str, Field(min_length=1, max_length=5000)]
CannedScope = Literal["tenant", "personal"]


class CannedCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    shortcut: Shortcut
    body: Body
    scope: CannedScope = Field(
        default="personal",
        description="tenant: for everyone (supervisors and admins); personal: only the caller.",
    )

    @model_validator(mode="after")
    def _not_blank(self) -> CannedCreate:
        if not self.body.strip():
            raise ValueError("body cannot be blank")
        return self


class CannedUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    shortcut: Shortcut | None = None
    body: Body | None = None

    @model_validator(mode="after")
    def _no_nulls(self) -> CannedUpdate:
        for field in self.model_fields_set:
            if getattr(self, field) is None:
                raise ValueError(f"{field} cannot be null")
        if self.body is not None and not self.body.strip():
            raise ValueError("body cannot be blank")
        return self


class CannedOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    scope: CannedScope
    owner_id: uuid.UUID | None
    shortcut: str
    body: str
    created_at: datetime


def to_out(canned: CannedResponse) -> CannedOut:
    return CannedOut(
        id=canned.id,
        scope="personal" if canned.owner_id else "tenant",
        owner_id=canned.owner_id,
        shortcut=canned.shortcut,
        body=canned.body,
        created_at=canned.created_at,
    )


def _snapshot(canned: CannedResponse) -> dict[str, object]:
    return to_out(canned).model_dump(mode="json")


def _require_staff(actor: Actor) -> uuid.UUID:
    if actor.role not in STAFF or actor.user_id is None:
        raise PermissionDenied()
    return actor.user_id


def _visible(user_id: uuid.UUID) -> ColumnElement[bool]:
    return or_(CannedResponse.owner_id.is_(None), CannedResponse.owner_id == user_id)


def _may_manage(actor: Actor, canned: CannedResponse) -> bool:
    if canned.owner_id is None:
        return actor.role in MANAGERS
    return canned.owner_id == actor.user_id


async def _check_unique(
    session: AsyncSession,
    owner_id: uuid.UUID | None,
    shortcut: str,
    exclude: uuid.UUID | None = None,
) -> None:
    # The table's unique constraint does not cover tenant-wide rows (NULL owner), so the
    # rule is checked here for both kinds.
    query = select(CannedResponse.id).where(
        CannedResponse.shortcut == shortcut,
        CannedResponse.owner_id.is_(None)
        if owner_id is None
        else CannedResponse.owner_id == owner_id,
    )
    if exclude is not None:
        query = query.where(CannedResponse.id != exclude)
    if await session.scalar(query.limit(1)) is not None:
        raise _taken(shortcut)


def _taken(shortcut: str) -> Conflict:
    return Conflict(
        f"A canned response /{shortcut} exists.", code="canned_shortcut_taken", field="shortcut"
    )


async def list_canned(
    session: AsyncSession, actor: Actor, *, q: str | None = None, limit: int = 50
) -> list[CannedResponse]:
    """The caller's personal responses and the tenant's, personal first for one shortcut.
    With ``q`` (``/ho`` or ``gracias``): shortcuts starting with it come first, then
    responses whose text contains it."""
    user_id = _require_staff(actor)
    query = select(CannedResponse).where(_visible(user_id))
    order: list[Any] = []
    needle = (q or "").strip().removeprefix("/").lower()
    if needle:
        prefix = func.lower(CannedResponse.shortcut).startswith(needle, autoescape=True)
        query = query.where(
            or_(prefix, func.lower(CannedResponse.body).contains(needle, autoescape=True))
        )
        order.append(case((prefix, 0), else_=1))
    order += [
        CannedResponse.shortcut,
        case((CannedResponse.owner_id.is_(None), 1), else_=0),
    ]
    return list(await session.scalars(query.order_by(*order, CannedResponse.id).limit(limit)))


async def get_canned(session: AsyncSession, actor: Actor, canned_id: uuid.UUID) -> CannedResponse:
    user_id = _require_staff(actor)
    canned = await session.get(CannedResponse, canned_id)
    if canned is None or (canned.owner_id is not None and canned.owner_id != user_id):
        raise NotFound("canned_response")
    return canned


async def create_canned(session: AsyncSession, actor: Actor, data: CannedCreate) -> CannedResponse:
    user_id = _require_staff(actor)
    if data.scope == "tenant" and actor.role not in MANAGERS:
        raise PermissionDenied("Only supervisors and admins create tenant-wide responses.")
    owner_id = None if data.scope == "tenant" else user_id
    await _check_unique(session, owner_id, data.shortcut)
    canned = CannedResponse(
        owner_id=owner_id, shortcut=data.shortcut, body=data.body, created_at=now(session)
    )
    try:
        async with session.begin_nested():
            session.add(canned)
    except IntegrityError as error:  # created concurrently since the check above
        raise _taken(data.shortcut) from error
    await audit.record(
        session,
        actor,
        "canned_response.create",
        resource_type="canned_response",
        resource_id=canned.id,
        tenant_id=canned.tenant_id,
        after=_snapshot(canned),
    )
    return canned


async def update_canned(
    session: AsyncSession, actor: Actor, canned_id: uuid.UUID, data: CannedUpdate
) -> CannedResponse:
    canned = await get_canned(session, actor, canned_id)
    if not _may_manage(actor, canned):
        raise PermissionDenied()
    changes = {
        field: value
        for field, value in data.model_dump(exclude_unset=True).items()
        if getattr(canned, field) != value
    }
    if not changes:
        return canned
    if "shortcut" in changes:
        await _check_unique(session, canned.owner_id, changes["shortcut"], exclude=canned.id)
    before = _snapshot(canned)
    for field, value in changes.items():
        setattr(canned, field, value)
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError as error:
        raise _taken(canned.shortcut) from error
    await audit.record(
        session,
        actor,
        "canned_response.update",
        resource_type="canned_response",
        resource_id=canned.id,
        tenant_id=canned.tenant_id,
        before=before,
        after=_snapshot(canned),
    )
    return canned


async def delete_canned(session: AsyncSession, actor: Actor, canned_id: uuid.UUID) -> None:
    canned = await get_canned(session, actor, canned_id)
    if not _may_manage(actor, canned):
        raise PermissionDenied()
    before = _snapshot(canned)
    await session.delete(canned)
    await session.flush()
    await audit.record(
        session,
        actor,
        "canned_response.delete",
        resource_type="canned_response",
        resource_id=canned_id,
        tenant_id=canned.tenant_id,
        before=before,
    )


def render_list(items: Sequence[CannedResponse]) -> list[CannedOut]:
    return [to_out(c) for c in items]
