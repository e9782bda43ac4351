"""Whether the tenant's phones are connected: the registration state of each extension, asked
from the PBXs when someone looks (nothing is stored).

Asterisk calls a PJSIP endpoint ``online`` while a device is registered to it and
``offline`` when none is. An extension counts as connected when any of the tenant's PBXs
says so, as disconnected when a PBX says it is offline or does not know it, and as
``unknown`` when no PBX answered (or the tenant has none). The PBXs are asked at the same
time, each with a short time-out, so one that is away costs the others nothing.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from atiende.audit import service as audit
from atiende.core.config import Settings
from atiende.core.db import now, require_tenant
from atiende.core.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from atiende.core.events import emit
from atiende.identity.actor import Actor
from atiende.identity.models import Role, User
from atiende.voice.access import require_admin
from atiende.voice.ari import AriError, Endpoint
from atiende.voice.ari_events import AriEventMalformed
from atiende.voice.calls import ExtensionChanged
from atiende.voice.models import Extension, Pbx
from atiende.voice.service import ari_client

log = logging.getLogger(__name__)

PhoneState = Literal["online", "offline", "unknown"]
TECHNOLOGY: Final = "PJSIP"
#: Each PBX gets this long to answer; the page waits for the slowest.
STATE_TIMEOUT_SECONDS: Final = 3.0


class ExtensionOut(BaseModel):
    id: uuid.UUID
    number: str
    user_id: uuid.UUID | None
    user_name: str | None
    state: PhoneState
    auto_answer: bool = Field(
        default=False,
        description="Offered calls ask the phone to answer by itself (phones that allow it).",
    )


class ExtensionSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    auto_answer: bool = Field(
        description="Ask the phone to answer offered calls by itself (Call-Info answer-after=0"
        " and Alert-Info auto-answer, honoured by most desk phones and softphones when allowed)."
    )


@dataclass(frozen=True, slots=True)
class _Answer:
    """One PBX's answer: the states it reported by extension, or None when it did not
    answer."""

    states: dict[str, str] | None


def combine(answers: Iterable[dict[str, str] | None], number: str) -> PhoneState:
    """One extension's state from every PBX's answer (pure): ``online`` anywhere wins; then
    a PBX that says ``offline``, or does not know the extension, makes it ``offline``; no
    answer, or only Asterisk's own ``unknown``, is ``unknown``."""
    reached = [states.get(number, "offline") for states in answers if states is not None]
    if "online" in reached:
        return "online"
    return "offline" if "offline" in reached else "unknown"


async def _list_states(settings: Settings, pbx: Pbx) -> _Answer:
    try:
        async with ari_client(settings, pbx, timeout=STATE_TIMEOUT_SECONDS) as client:
            endpoints = await client.endpoints(TECHNOLOGY)
    except (AriError, AriEventMalformed) as error:
        log.info("PBX %s: endpoint states unavailable: %s", pbx.name, error)
        return _Answer(None)
    return _Answer({e.resource: e.state for e in endpoints})


async def _one_state(settings: Settings, pbx: Pbx, number: str) -> _Answer:
    try:
        async with ari_client(settings, pbx, timeout=STATE_TIMEOUT_SECONDS) as client:
            found: Endpoint | None = await client.endpoint(TECHNOLOGY, number)
    except (AriError, AriEventMalformed) as error:
        log.info("PBX %s: the state of %s is unavailable: %s", pbx.name, number, error)
        return _Answer(None)
    return _Answer({} if found is None else {number: found.state})


async def _pbxs(session: AsyncSession) -> Sequence[Pbx]:
    return (await session.scalars(select(Pbx).order_by(Pbx.name))).all()


async def list_extensions(
    session: AsyncSession, actor: Actor, *, settings: Settings
) -> list[ExtensionOut]:
    """The tenant's extensions with who holds each and whether its phone is connected
    (supervisors and administrators). One ``GET /endpoints/PJSIP`` per PBX."""
    if not actor.has(Role.admin, Role.supervisor):
        raise PermissionDenied()
    rows = (
        await session.execute(
            select(Extension, User.name)
            .outerjoin(User, User.id == Extension.user_id)
            .order_by(Extension.number)
        )
    ).all()
    answers: list[_Answer] = []
    if rows:
        pbxs = await _pbxs(session)
        answers = list(await asyncio.gather(*(_list_states(settings, pbx) for pbx in pbxs)))
    return [
        ExtensionOut(
            id=extension.id,
            number=extension.number,
            user_id=extension.user_id,
            user_name=user_name,
            state=combine((a.states for a in answers), extension.number),
            auto_answer=extension.auto_answer,
        )
        for extension, user_name in rows
    ]


async def my_extension(session: AsyncSession, actor: Actor, *, settings: Settings) -> ExtensionOut:
    """The caller's own extension and its phone's state (``GET /endpoints/PJSIP/{number}``
    on each PBX): the desktop's phone indicator. ``extension_not_found`` when the user has
    none."""
    row = None
    if actor.user_id is not None:
        row = await session.scalar(select(Extension).where(Extension.user_id == actor.user_id))
    if row is None:
        raise NotFound("extension", "You have no phone extension.")
    pbxs = await _pbxs(session)
    answers = await asyncio.gather(*(_one_state(settings, pbx, row.number) for pbx in pbxs))
    user = await session.get(User, actor.user_id)
    return ExtensionOut(
        id=row.id,
        number=row.number,
        user_id=row.user_id,
        user_name=user.name if user is not None else None,
        state=combine((a.states for a in answers), row.number),
        auto_answer=row.auto_answer,
    )


async def set_my_extension(
    session: AsyncSession, actor: Actor, data: ExtensionSettings, *, settings: Settings
) -> ExtensionOut:
    """The caller's own phone settings (auto-answer); audited."""
    user_id = actor.user_id
    row = None
    if user_id is not None:
        row = await session.scalar(select(Extension).where(Extension.user_id == user_id))
    if row is None or user_id is None:
        raise NotFound("extension", "You have no phone extension.")
    if row.auto_answer != data.auto_answer:
        before = {"auto_answer": row.auto_answer}
        row.auto_answer = data.auto_answer
        await audit.record(
            session,
            actor,
            "extension.update",
            resource_type="extension",
            resource_id=row.id,
            tenant_id=require_tenant(session),
            before=before,
            after={"auto_answer": row.auto_answer},
        )
        await emit(
            session,
            ExtensionChanged(user_id=user_id, number=row.number, auto_answer=row.auto_answer),
            audience=[user_id],
        )
    return await my_extension(session, actor, settings=settings)


# --- extensions by hand (on premise; cloud tenants get theirs with their subscription) ----------

EXTENSION_PATTERN: Final = r"^[0-9]{2,10}$"


class ExtensionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    number: str = Field(pattern=EXTENSION_PATTERN, description="2 to 10 digits, e.g. 1001.")
    user_id: uuid.UUID | None = Field(default=None, description="Who holds it (or nobody yet).")


async def add_extension(session: AsyncSession, actor: Actor, data: ExtensionCreate) -> Extension:
    """A PBX user by hand, held by a user of the tenant or free; audited. Its phone's SIP
    secret is set on the PBX (``atiende pbx config --generate-secrets`` prints one)."""
    require_admin(actor, "extensions")
    if await session.scalar(select(Extension.id).where(Extension.number == data.number)):
        raise Conflict(
            f"Extension {data.number} exists.", code="extension_number_taken", field="number"
        )
    if data.user_id is not None:
        if await session.get(User, data.user_id) is None:
            raise ValidationFailed("Unknown user.", code="unknown_user", field="user_id")
        if await session.scalar(select(Extension.id).where(Extension.user_id == data.user_id)):
            raise Conflict("That user holds an extension already.", code="user_has_extension")
    row = Extension(number=data.number, user_id=data.user_id, created_at=now(session))
    session.add(row)
    await session.flush()
    await audit.record(
        session,
        actor,
        "extension.create",
        resource_type="extension",
        resource_id=row.id,
        tenant_id=require_tenant(session),
        after={"number": row.number, "user_id": str(row.user_id) if row.user_id else None},
    )
    return row
