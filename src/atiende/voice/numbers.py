"""A tenant's phone numbers (DIDs), the queue each one's calls wait in and the IVR menu they
hear first.

The only writer of ``voice_numbers``. Call control (``voice.calls``) reads them when a call
enters the application; ``atiende pbx config`` writes them into the dialplan. Every function
runs in a tenant-scoped session: administrators write, supervisors read, and every change is
audited. A number is stored as the dialplan matches it (``pbx.normalise_did``).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from atiende.audit import service as audit
from atiende.conversations.models import Channel
from atiende.core.db import now, require_tenant
from atiende.core.errors import Conflict, NotFound, ValidationFailed
from atiende.identity.actor import Actor
from atiende.routing.models import Queue
from atiende.voice.access import require_admin, require_reader
from atiende.voice.models import IvrMenu, VoiceNumber
from atiende.voice.pbx import PbxConfigInvalid, normalise_did


class NumberCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    number: str = Field(
        min_length=1,
        max_length=40,
        description="2 to 20 digits, optionally after a +; spaces and dashes are dropped.",
    )
    queue_id: uuid.UUID = Field(description="A queue that serves the voice channel.")
    ivr_menu_id: uuid.UUID | None = Field(
        default=None,
        description="An IVR menu callers hear first; the queue takes them by default.",
    )


class NumberUpdate(BaseModel):
    """A partial update; ``ivr_menu_id: null`` given explicitly removes the menu."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    number: str | None = Field(default=None, min_length=1, max_length=40)
    queue_id: uuid.UUID | None = None
    ivr_menu_id: uuid.UUID | None = None


class NumberOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    number: str
    queue_id: uuid.UUID
    ivr_menu_id: uuid.UUID | None
    created_at: datetime


def _require_admin(actor: Actor) -> None:
    require_admin(actor, "phone numbers")


def _require_reader(actor: Actor) -> None:
    require_reader(actor)


def _taken(number: str) -> Conflict:
    return Conflict(
        f"The number {number} is already routed to a queue.",
        code="voice_number_taken",
        field="number",
    )


def _normalised(value: str) -> str:
    try:
        return normalise_did(value)
    except PbxConfigInvalid as error:
        raise ValidationFailed(error.message, code=error.error_code, field="number") from error


def _snapshot(row: VoiceNumber) -> dict[str, Any]:
    return NumberOut.model_validate(row).model_dump(mode="json")


async def _check_queue(session: AsyncSession, queue_id: uuid.UUID) -> Queue:
    queue = await session.get(Queue, queue_id)
    if queue is None:
        raise ValidationFailed("Unknown queue.", code="unknown_queue", field="queue_id")
    if Channel.voice.value not in queue.channels:
        raise ValidationFailed(
            f"Queue {queue.name!r} does not serve voice calls.",
            code="queue_channel_mismatch",
            field="queue_id",
        )
    return queue


async def _check_menu(session: AsyncSession, menu_id: uuid.UUID) -> None:
    if await session.get(IvrMenu, menu_id) is None:
        raise ValidationFailed("Unknown IVR menu.", code="unknown_ivr_menu", field="ivr_menu_id")


async def _flush(session: AsyncSession, number: str) -> None:
    """A concurrent insert of the same number loses on the unique constraint: the same 409."""
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError as error:
        raise _taken(number) from error


async def _number_in_use(
    session: AsyncSession, number: str, *, exclude: uuid.UUID | None = None
) -> bool:
    query = select(VoiceNumber.id).where(VoiceNumber.number == number)
    if exclude is not None:
        query = query.where(VoiceNumber.id != exclude)
    return (await session.scalar(query.limit(1))) is not None


async def list_numbers(session: AsyncSession, actor: Actor) -> Sequence[VoiceNumber]:
    _require_reader(actor)
    return (await session.scalars(select(VoiceNumber).order_by(VoiceNumber.number))).all()


async def dids(session: AsyncSession) -> list[str]:
    """The tenant's numbers, as the dialplan lists them (``atiende pbx config``)."""
    return list(
        (await session.scalars(select(VoiceNumber.number).order_by(VoiceNumber.number))).all()
    )


async def get_number(session: AsyncSession, actor: Actor, number_id: uuid.UUID) -> VoiceNumber:
    _require_reader(actor)
    row = await session.get(VoiceNumber, number_id)
    if row is None:
        raise NotFound("voice_number", "Phone number not found.")
    return row


async def create_number(session: AsyncSession, actor: Actor, data: NumberCreate) -> VoiceNumber:
    """Route calls to ``data.number`` into a voice queue, through an IVR menu when given
    (``did_invalid``, ``unknown_queue``, ``queue_channel_mismatch``, ``unknown_ivr_menu``,
    ``voice_number_taken``)."""
    _require_admin(actor)
    number = _normalised(data.number)
    await _check_queue(session, data.queue_id)
    if data.ivr_menu_id is not None:
        await _check_menu(session, data.ivr_menu_id)
    if await _number_in_use(session, number):
        raise _taken(number)
    row = VoiceNumber(
        number=number,
        queue_id=data.queue_id,
        ivr_menu_id=data.ivr_menu_id,
        created_at=now(session),
    )
    session.add(row)
    await _flush(session, number)
    await audit.record(
        session,
        actor,
        "voice_number.create",
        resource_type="voice_number",
        resource_id=row.id,
        tenant_id=require_tenant(session),
        after=_snapshot(row),
    )
    return row


async def update_number(
    session: AsyncSession, actor: Actor, number_id: uuid.UUID, data: NumberUpdate
) -> VoiceNumber:
    """Change the number, its queue or its IVR menu; the same checks as creating one."""
    _require_admin(actor)
    row = await get_number(session, actor, number_id)
    changes: dict[str, Any] = {}
    if data.number is not None:
        number = _normalised(data.number)
        if number != row.number:
            if await _number_in_use(session, number, exclude=row.id):
                raise _taken(number)
            changes["number"] = number
    if data.queue_id is not None and data.queue_id != row.queue_id:
        await _check_queue(session, data.queue_id)
        changes["queue_id"] = data.queue_id
    if "ivr_menu_id" in data.model_fields_set and data.ivr_menu_id != row.ivr_menu_id:
        if data.ivr_menu_id is not None:
            await _check_menu(session, data.ivr_menu_id)
        changes["ivr_menu_id"] = data.ivr_menu_id
    if not changes:
        return row
    before = _snapshot(row)
    for field, value in changes.items():
        setattr(row, field, value)
    await _flush(session, row.number)
    await audit.record(
        session,
        actor,
        "voice_number.update",
        resource_type="voice_number",
        resource_id=row.id,
        tenant_id=require_tenant(session),
        before=before,
        after=_snapshot(row),
    )
    return row


async def delete_number(session: AsyncSession, actor: Actor, number_id: uuid.UUID) -> None:
    """Calls to a deleted number are refused from then on (call control hangs them up as
    unallocated); calls already waiting stay in their queue."""
    _require_admin(actor)
    row = await get_number(session, actor, number_id)
    before = _snapshot(row)
    await session.delete(row)
    await session.flush()
    await audit.record(
        session,
        actor,
        "voice_number.delete",
        resource_type="voice_number",
        resource_id=number_id,
        tenant_id=require_tenant(session),
        before=before,
    )
