"""A tenant's IVR menus: the only writer of ``ivr_menus``, and ``load_menus`` for call control.

Administrators write, supervisors read, and every change is audited (``ivr_menu.create``,
``.update``, ``.delete``). A menu is checked whole before it is stored: its prompts are media
URIs ``voice.ivr`` accepts, every option's queue takes calls and every option's menu exists.
A menu that a number or another menu sends callers to cannot be deleted
(``ivr_menu_in_use``); change those first.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from atiende.audit import service as audit
from atiende.conversations.models import Channel
from atiende.core.db import in_tenant, now, require_tenant
from atiende.core.errors import Conflict, NotFound, ValidationFailed
from atiende.identity.actor import Actor
from atiende.routing.models import Queue
from atiende.voice import ivr
from atiende.voice.access import require_admin, require_reader
from atiende.voice.models import IvrMenu, VoiceNumber

log = logging.getLogger(__name__)


class MenuCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str = Field(min_length=1, max_length=100)
    prompt: str = Field(
        min_length=1,
        max_length=500,
        description="Asterisk media URIs separated by commas: sound:, recording:, digits:, "
        "number:, tone:.",
    )
    invalid_prompt: str = Field(default=ivr.DEFAULT_INVALID_PROMPT, min_length=1, max_length=500)
    timeout_seconds: int = Field(default=5, ge=ivr.MIN_TIMEOUT_SECONDS, le=ivr.MAX_TIMEOUT_SECONDS)
    max_attempts: int = Field(default=3, ge=ivr.MIN_ATTEMPTS, le=ivr.MAX_ATTEMPTS)
    options: dict[str, Any] = Field(
        default_factory=dict,
        description='By key (0-9, *, #): {"action": "queue"|"menu"|"repeat"|"hangup"|'
        '"number"|"voicemail", "queue_id"?, "menu_id"?, "number"?}. A queue or voicemail '
        "option without queue_id uses the number's queue; a number option forwards the call "
        "to its number (E.164) through the PBX's outbound route.",
    )
    timeout_action: dict[str, Any] | None = Field(
        default=None,
        description="When the attempts run out: queue, menu, hangup, number or voicemail "
        "(the option shape); "
        "null sends the call to the number's queue.",
    )


class MenuUpdate(BaseModel):
    """A partial update; ``timeout_action: null`` given explicitly clears it."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str | None = Field(default=None, min_length=1, max_length=100)
    prompt: str | None = Field(default=None, min_length=1, max_length=500)
    invalid_prompt: str | None = Field(default=None, min_length=1, max_length=500)
    timeout_seconds: int | None = Field(
        default=None, ge=ivr.MIN_TIMEOUT_SECONDS, le=ivr.MAX_TIMEOUT_SECONDS
    )
    max_attempts: int | None = Field(default=None, ge=ivr.MIN_ATTEMPTS, le=ivr.MAX_ATTEMPTS)
    options: dict[str, Any] | None = None
    timeout_action: dict[str, Any] | None = None


class MenuOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    prompt: str
    invalid_prompt: str
    timeout_seconds: int
    max_attempts: int
    options: dict[str, dict[str, str]]
    timeout_action: dict[str, str] | None
    created_at: datetime


def _require_admin(actor: Actor) -> None:
    require_admin(actor, "IVR menus")


def _require_reader(actor: Actor) -> None:
    require_reader(actor)


def _taken(name: str) -> Conflict:
    return Conflict(
        f"There is already an IVR menu called {name!r}.", code="ivr_menu_name_taken", field="name"
    )


def _snapshot(row: IvrMenu) -> dict[str, Any]:
    return MenuOut.model_validate(row).model_dump(mode="json")


def _invalid(error: ivr.IvrInvalid, code: str) -> ValidationFailed:
    return ValidationFailed(error.message, code=code, field=error.field)


async def _name_taken(session: AsyncSession, name: str, *, exclude: uuid.UUID | None) -> bool:
    """Case-insensitive: "Main" and "main" would confuse everyone."""
    query = select(IvrMenu.id).where(func.lower(IvrMenu.name) == name.lower())
    if exclude is not None:
        query = query.where(IvrMenu.id != exclude)
    return (await session.scalar(query.limit(1))) is not None


async def _flush(session: AsyncSession, name: str) -> None:
    """A concurrent create of the same name loses on the unique constraint: the same 409."""
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError as error:
        raise _taken(name) from error


def _checked_media(text: str, field: str) -> str:
    try:
        return ivr.media_text(ivr.parse_media(text, field=field))
    except ivr.IvrInvalid as error:
        raise _invalid(error, "ivr_prompt_invalid") from error


async def _checked_targets(
    session: AsyncSession, targets: Iterable[tuple[str, ivr.Option]]
) -> None:
    """Every option's queue exists and takes calls, every option's menu exists."""
    for field, option in targets:
        if option.queue_id is not None:
            queue = await session.get(Queue, option.queue_id)
            if queue is None:
                raise ValidationFailed(
                    "Unknown queue.", code="unknown_queue", field=f"{field}.queue_id"
                )
            if Channel.voice.value not in queue.channels:
                raise ValidationFailed(
                    f"Queue {queue.name!r} does not serve voice calls.",
                    code="queue_channel_mismatch",
                    field=f"{field}.queue_id",
                )
        if option.menu_id is not None and await session.get(IvrMenu, option.menu_id) is None:
            raise ValidationFailed(
                "Unknown IVR menu.", code="unknown_ivr_menu", field=f"{field}.menu_id"
            )


async def _checked_options(
    session: AsyncSession, options: dict[str, Any], timeout_action: dict[str, Any] | None
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The options and the timeout action as stored: checked, in key order, ids as text."""
    try:
        parsed = ivr.parse_options(options)
        action = (
            None
            if timeout_action is None
            else ivr.parse_option(timeout_action, field="timeout_action", timeout_action=True)
        )
    except ivr.IvrInvalid as error:
        raise _invalid(error, "ivr_option_invalid") from error
    targets = [(f"options.{digit}", option) for digit, option in parsed.items()]
    if action is not None:
        targets.append(("timeout_action", action))
    await _checked_targets(session, targets)
    return (
        {digit: ivr.option_json(option) for digit, option in parsed.items()},
        None if action is None else ivr.option_json(action),
    )


async def list_menus(session: AsyncSession, actor: Actor) -> Sequence[IvrMenu]:
    _require_reader(actor)
    return (await session.scalars(select(IvrMenu).order_by(IvrMenu.name))).all()


async def get_menu(session: AsyncSession, actor: Actor, menu_id: uuid.UUID) -> IvrMenu:
    _require_reader(actor)
    row = await session.get(IvrMenu, menu_id)
    if row is None:
        raise NotFound("ivr_menu", "IVR menu not found.")
    return row


async def create_menu(session: AsyncSession, actor: Actor, data: MenuCreate) -> IvrMenu:
    """Store a menu (``ivr_menu_name_taken``, ``ivr_prompt_invalid``, ``ivr_option_invalid``,
    ``unknown_queue``, ``queue_channel_mismatch``, ``unknown_ivr_menu``)."""
    _require_admin(actor)
    if await _name_taken(session, data.name, exclude=None):
        raise _taken(data.name)
    prompt = _checked_media(data.prompt, "prompt")
    invalid_prompt = _checked_media(data.invalid_prompt, "invalid_prompt")
    options, timeout_action = await _checked_options(session, data.options, data.timeout_action)
    row = IvrMenu(
        name=data.name,
        prompt=prompt,
        invalid_prompt=invalid_prompt,
        timeout_seconds=data.timeout_seconds,
        max_attempts=data.max_attempts,
        options=options,
        timeout_action=timeout_action,
        created_at=now(session),
    )
    session.add(row)
    await _flush(session, data.name)
    await audit.record(
        session,
        actor,
        "ivr_menu.create",
        resource_type="ivr_menu",
        resource_id=row.id,
        tenant_id=require_tenant(session),
        after=_snapshot(row),
    )
    return row


async def update_menu(
    session: AsyncSession, actor: Actor, menu_id: uuid.UUID, data: MenuUpdate
) -> IvrMenu:
    """Change what is given, with the same checks as creating; ``options`` replaces them all.
    Calls already in the menu keep the version they started with."""
    _require_admin(actor)
    row = await get_menu(session, actor, menu_id)
    given = data.model_fields_set
    values: dict[str, Any] = {}
    if data.name is not None:
        if await _name_taken(session, data.name, exclude=row.id):
            raise _taken(data.name)
        values["name"] = data.name
    if data.prompt is not None:
        values["prompt"] = _checked_media(data.prompt, "prompt")
    if data.invalid_prompt is not None:
        values["invalid_prompt"] = _checked_media(data.invalid_prompt, "invalid_prompt")
    if data.timeout_seconds is not None:
        values["timeout_seconds"] = data.timeout_seconds
    if data.max_attempts is not None:
        values["max_attempts"] = data.max_attempts
    if data.options is not None or "timeout_action" in given:
        options, timeout_action = await _checked_options(
            session,
            row.options if data.options is None else data.options,
            data.timeout_action if "timeout_action" in given else row.timeout_action,
        )
        values["options"] = options
        values["timeout_action"] = timeout_action
    changes = {field: value for field, value in values.items() if getattr(row, field) != value}
    if not changes:
        return row
    before = _snapshot(row)
    for field, value in changes.items():
        setattr(row, field, value)
    await _flush(session, row.name)
    await audit.record(
        session,
        actor,
        "ivr_menu.update",
        resource_type="ivr_menu",
        resource_id=row.id,
        tenant_id=require_tenant(session),
        before=before,
        after=_snapshot(row),
    )
    return row


def _targets_of(row: IvrMenu) -> set[str]:
    """The menu ids a stored menu sends callers to."""
    actions = [*row.options.values(), row.timeout_action or {}]
    return {str(action["menu_id"]) for action in actions if action.get("menu_id")}


async def delete_menu(session: AsyncSession, actor: Actor, menu_id: uuid.UUID) -> None:
    """Refused while a number plays the menu or another menu sends callers to it
    (``ivr_menu_in_use``, with their ids). Calls in the menu finish it as they started."""
    _require_admin(actor)
    row = await get_menu(session, actor, menu_id)
    numbers = (
        await session.scalars(select(VoiceNumber.id).where(VoiceNumber.ivr_menu_id == row.id))
    ).all()
    menus = [
        other.id
        for other in (await session.scalars(select(IvrMenu))).all()
        if other.id != row.id and str(row.id) in _targets_of(other)
    ]
    if numbers or menus:
        raise Conflict(
            "Numbers or other menus send callers to this menu; change them first.",
            code="ivr_menu_in_use",
            number_ids=sorted(str(i) for i in numbers),
            menu_ids=sorted(str(i) for i in menus),
        )
    before = _snapshot(row)
    await session.delete(row)
    await session.flush()
    await audit.record(
        session,
        actor,
        "ivr_menu.delete",
        resource_type="ivr_menu",
        resource_id=menu_id,
        tenant_id=require_tenant(session),
        before=before,
    )


# --- for call control ---------------------------------------------------------------------------


def _live(option: ivr.Option, voice_queues: set[uuid.UUID], menu_ids: set[uuid.UUID]) -> ivr.Option:
    """An option whose queue was deleted (or no longer takes calls) or whose menu is gone
    sends the caller to the number's queue instead."""
    if option.queue_id is not None and option.queue_id not in voice_queues:
        # a voicemail option keeps its kind: the message goes to the number's queue
        kind = option.action if option.action is ivr.OptionKind.voicemail else ivr.OptionKind.queue
        return ivr.Option(kind)
    if option.menu_id is not None and option.menu_id not in menu_ids:
        return ivr.Option(ivr.OptionKind.queue)
    return option


async def load_menus(session: AsyncSession, tenant_id: uuid.UUID) -> dict[uuid.UUID, ivr.Menu]:
    """The tenant's menus for ``ivr.start`` (read once per call: a call keeps the version of
    the menus it started with). A target that has gone since the menu was saved becomes the
    number's queue; a stored menu that no longer parses is left out (and logged), so calls to
    its numbers go to the number's queue."""
    async with in_tenant(session, tenant_id):
        rows = (await session.scalars(select(IvrMenu))).all()
        queues = (await session.execute(select(Queue.id, Queue.channels))).all()
    voice_queues = {queue_id for queue_id, channels in queues if Channel.voice.value in channels}
    menu_ids = {row.id for row in rows}
    menus: dict[uuid.UUID, ivr.Menu] = {}
    for row in rows:
        try:
            options = {
                digit: _live(option, voice_queues, menu_ids)
                for digit, option in ivr.parse_options(row.options).items()
            }
            timeout_action = (
                None
                if row.timeout_action is None
                else _live(
                    ivr.parse_option(
                        row.timeout_action, field="timeout_action", timeout_action=True
                    ),
                    voice_queues,
                    menu_ids,
                )
            )
            menus[row.id] = ivr.Menu(
                id=row.id,
                name=row.name,
                prompt=ivr.parse_media(row.prompt),
                invalid_prompt=ivr.parse_media(row.invalid_prompt, field="invalid_prompt"),
                timeout_seconds=row.timeout_seconds,
                max_attempts=row.max_attempts,
                options=options,
                timeout_action=timeout_action,
            )
        except ivr.IvrInvalid as error:
            log.warning("IVR menu %s (%r) is not valid, skipped: %s", row.id, row.name, error)
    return menus
